//! Reading requests: bodies with a size limit and a content type, the
//! `Authorization` header, the peer address. Every failure is an
//! `OAuthError`, never a panic or an HTML error page.

use crate::error::ApiError;
use crate::AppState;
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use custos_protocol::{ErrorCode, OAuthError};
use custos_service::RequestContext;
use std::net::SocketAddr;

/// Largest request body accepted: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The client's address, when the transport knows it: the TCP peer, or
/// what trusted proxies say in `X-Forwarded-For` (see `client_addr`).
pub struct Context(pub RequestContext);

impl FromRequestParts<AppState> for Context {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let source_addr =
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| {
                    let forwarded = parts
                        .headers
                        .get_all("x-forwarded-for")
                        .iter()
                        .filter_map(|v| v.to_str().ok());
                    state
                        .trusted_proxies
                        .client_addr(addr.ip(), forwarded)
                        .to_string()
                });
        Ok(Context(RequestContext { source_addr }))
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`].
pub async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError(OAuthError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes or could not be read"),
        ))
    })
}

/// A form body: `application/x-www-form-urlencoded` (RFC 6749 §3.2).
pub async fn form_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    require_content_type(headers, "application/x-www-form-urlencoded")?;
    read_body(body).await
}

/// A JSON body: `application/json`.
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    require_content_type(headers, "application/json")?;
    read_body(body).await
}

fn require_content_type(headers: &HeaderMap, wanted: &str) -> Result<(), ApiError> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match media_type {
        Some(t) if t.eq_ignore_ascii_case(wanted) => Ok(()),
        _ => Err(ApiError(OAuthError::invalid_request(format!(
            "the request body must be {wanted}"
        )))),
    }
}

/// The `Authorization` header as text, if present and visible ASCII.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError(OAuthError::invalid_request(
            "more than one Authorization header",
        )));
    }
    first.to_str().map(Some).map_err(|_| {
        ApiError(OAuthError::invalid_request(
            "the Authorization header is not visible ASCII",
        ))
    })
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = authorization(headers)? else {
        return Ok(None);
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError(OAuthError::invalid_token(
            "expected 'Authorization: Bearer <token>'",
        ))),
    }
}
