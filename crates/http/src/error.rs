//! The one place where domain errors become HTTP responses.
//!
//! RFC 6749 §5.2: JSON `{"error", "error_description"}`, 400 for request
//! errors, 401 with `WWW-Authenticate` for `invalid_client`. RFC 6750 §3:
//! 401 with a Bearer challenge for `invalid_token`. Internal errors were
//! logged where they happened and say nothing more here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use custos_protocol::{ErrorCode, OAuthError};
use serde_json::json;

/// An `OAuthError` on its way out.
pub struct ApiError(pub OAuthError);

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        ApiError(error)
    }
}

pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidClient | ErrorCode::InvalidToken | ErrorCode::MissingCredentials => {
            StatusCode::UNAUTHORIZED
        }
        ErrorCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TemporarilyUnavailable => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let OAuthError { code, description } = self.0;
        let description = sanitize_description(&description);
        let status = status_of(code);
        let mut response = (
            status,
            Json(json!({"error": code.as_str(), "error_description": description})),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        match code {
            ErrorCode::InvalidClient => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"custos\""),
                );
            }
            ErrorCode::MissingCredentials => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"custos\""),
                );
            }
            ErrorCode::TemporarilyUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            ErrorCode::InvalidToken => {
                let challenge = format!(
                    "Bearer realm=\"custos\", error=\"invalid_token\", error_description=\"{description}\""
                );
                let value = HeaderValue::from_str(&challenge).unwrap_or_else(|_| {
                    HeaderValue::from_static("Bearer realm=\"custos\", error=\"invalid_token\"")
                });
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
            _ => {}
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
}
