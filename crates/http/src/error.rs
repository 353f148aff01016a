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
        ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorCode::AccessDenied => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let OAuthError { code, description } = self.0;
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
            ErrorCode::InvalidToken => {
                let challenge = format!(
                    "Bearer realm=\"custos\", error=\"invalid_token\", error_description=\"{}\"",
                    description.replace(['"', '\\'], "'")
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
