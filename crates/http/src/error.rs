//! The one place where errors become HTTP responses.
//!
//! RFC 6749 §5.2: JSON `{"error", "error_description"}`, 400 for request
//! errors, 401 with `WWW-Authenticate` for `invalid_client`. RFC 6750 §3:
//! 401 with a Bearer challenge for `invalid_token`, and a bare challenge
//! when no credentials came at all (§3.1). A throttled caller gets 429
//! with the `Retry-After` the brake computed. Internal errors were logged
//! where they happened and say nothing more here. `Cache-Control:
//! no-store` is added to every response that sets no caching of its own,
//! errors included, by one layer in `lib.rs`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use custos_protocol::{ErrorCode, OAuthError};
use custos_service::ServiceError;
use serde_json::json;

/// RFC 9449 §8: the header carrying a server-provided DPoP nonce.
pub const DPOP_NONCE: &str = "dpop-nonce";

/// An error on its way out: the service's, or one the edge found before
/// the service was asked.
#[derive(Debug)]
pub enum ApiError {
    Service(ServiceError),
    /// The request body exceeds the limit (413; `invalid_request`).
    PayloadTooLarge(String),
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError::Service(error)
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        ApiError::Service(error.into())
    }
}

/// The status for an OAuth error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, description) = match &self {
            ApiError::PayloadTooLarge(d) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request", d.as_str())
            }
            ApiError::Service(error) => {
                let status = match error {
                    ServiceError::OAuth(e) => status_of(e.code),
                    ServiceError::MissingCredentials(_) => StatusCode::UNAUTHORIZED,
                    ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                    ServiceError::Conflict(_) => StatusCode::CONFLICT,
                    ServiceError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                    ServiceError::UseDpopNonce { .. } => StatusCode::BAD_REQUEST,
                    ServiceError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, error.code(), error.description())
            }
        };
        let description = sanitize_description(description);
        let mut response = (
            status,
            Json(json!({"error": code, "error_description": description})),
        )
            .into_response();
        let headers = response.headers_mut();
        let challenge = match &self {
            ApiError::Service(ServiceError::OAuth(e)) if e.code == ErrorCode::InvalidClient => {
                Some(HeaderValue::from_static("Basic realm=\"custos\""))
            }
            ApiError::Service(ServiceError::OAuth(e)) if e.code == ErrorCode::InvalidToken => {
                Some(
                    HeaderValue::from_str(&format!(
                        "Bearer realm=\"custos\", error=\"invalid_token\", error_description=\"{description}\""
                    ))
                    .unwrap_or_else(|_| {
                        HeaderValue::from_static("Bearer realm=\"custos\", error=\"invalid_token\"")
                    }),
                )
            }
            ApiError::Service(ServiceError::MissingCredentials(_)) => {
                Some(HeaderValue::from_static("Bearer realm=\"custos\""))
            }
            _ => None,
        };
        if let Some(challenge) = challenge {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let ApiError::Service(ServiceError::Throttled { retry_after, .. }) = &self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if let ApiError::Service(ServiceError::UseDpopNonce { nonce, .. }) = &self {
            if let Ok(value) = HeaderValue::from_str(nonce) {
                headers.insert(DPOP_NONCE, value);
            }
        }
        response
    }
}

/// RFC 6749 §5.2: `error_description` may hold only %x20-21 / %x23-5B /
/// %x5D-7E. Descriptions echo request text, so every one is made to fit:
/// quotes become apostrophes, backslashes slashes, "§" the word "section",
/// anything else outside the set a question mark.
pub fn sanitize_description(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push('\''),
            '\\' => out.push('/'),
            '§' => out.push_str("section "),
            '\x20'..='\x7e' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.truncate(out.trim_end().len());
    out.replace("section  ", "section ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_5_2_error_description_characters() {
        let clean = sanitize_description("resource 'https://a/\"q\\é' (RFC 8707 §2)\n");
        assert!(
            clean.bytes().all(|b| b == 0x20
                || b == 0x21
                || (0x23..=0x5B).contains(&b)
                || (0x5D..=0x7E).contains(&b)),
            "{clean}"
        );
        assert_eq!(clean, "resource 'https://a/'q/?' (RFC 8707 section 2)?");
    }

    #[test]
    fn throttled_carries_the_computed_retry_after() {
        let response = ApiError::Service(ServiceError::Throttled {
            retry_after: 17,
            description: "slow down".into(),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "17");
    }

    #[test]
    fn rfc9449_8_use_dpop_nonce_carries_the_nonce() {
        let response = ApiError::Service(ServiceError::UseDpopNonce {
            nonce: "n0nce".into(),
            description: "use it".into(),
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[DPOP_NONCE], "n0nce");
    }

    #[test]
    fn rfc6750_3_1_no_credentials_gets_a_bare_challenge() {
        let response =
            ApiError::Service(ServiceError::missing_credentials("log in")).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer realm=\"custos\""
        );
    }
}
