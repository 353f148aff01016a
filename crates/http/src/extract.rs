//! Reading requests: bodies with a size limit and a content type, forms,
//! the `Authorization` header, the client proof, the request context. Every
//! failure is an `ApiError`, never a panic or an HTML error page.

use crate::error::ApiError;
use crate::AppState;
use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use custos_protocol::form::FormParams;
use custos_protocol::OAuthError;
use custos_service::{ClientProof, RequestContext};
use std::net::SocketAddr;

/// Largest request body accepted: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Oversized bodies up to this size are read (and dropped) before the 413.
const MAX_DRAINED_BYTES: usize = 1024 * 1024;

/// The request's context: the client's address when the transport knows
/// it (the TCP peer, or what trusted proxies say in `X-Forwarded-For`, see
/// `client_addr`) and the time, read once.
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
        Ok(Context(state.service.request_context(source_addr)))
    }
}

/// The TLS peer's certificate chain (leaf first, DER), put in the request
/// extensions by the TLS acceptor when the client presented one.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Vec<Vec<u8>>);

/// Everything the transport saw that may prove who the client is.
pub struct Proof(pub ClientProof);

impl FromRequestParts<AppState> for Proof {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let authorization = authorization(&parts.headers)?.map(str::to_owned);
        let dpop = single_header(&parts.headers, "dpop")?.map(str::to_owned);
        let peer_certificates = parts
            .extensions
            .get::<PeerCertificates>()
            .map(|p| p.0.clone())
            .unwrap_or_default();
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
        Ok(Proof(ClientProof {
            authorization,
            dpop,
            peer_certificates,
            method: parts.method.as_str().to_owned(),
            url: format!("{}{}", state.origin, path),
        }))
    }
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`]; a declared
/// `Content-Length` over the limit is refused before reading anything.
pub async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "the request body is larger than {MAX_BODY_BYTES} bytes or could not be read"
        ))
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(length) = declared.filter(|n| *n > MAX_BODY_BYTES as u64) {
        // A modestly oversized body is read and dropped first, so the client
        // (which may be busy sending it) gets the 413 rather than a reset
        // connection; anything larger is refused before a byte is read.
        if length <= MAX_DRAINED_BYTES as u64 {
            let _ = to_bytes(body, MAX_DRAINED_BYTES).await;
        }
        return Err(too_large());
    }
    to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

/// A form body (`application/x-www-form-urlencoded`, RFC 6749 §3.2),
/// parsed: repeated parameters refused (§3.1).
pub async fn form(headers: &HeaderMap, body: Body) -> Result<FormParams, ApiError> {
    require_content_type(headers, "application/x-www-form-urlencoded")?;
    let bytes = read_body(headers, body).await?;
    Ok(FormParams::parse(&bytes)?)
}

/// A JSON body: `application/json`.
pub async fn json_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    require_content_type(headers, "application/json")?;
    read_body(headers, body).await
}

fn require_content_type(headers: &HeaderMap, wanted: &str) -> Result<(), ApiError> {
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match media_type {
        Some(t) if t.eq_ignore_ascii_case(wanted) => Ok(()),
        _ => Err(OAuthError::invalid_request(format!("the request body must be {wanted}")).into()),
    }
}

/// A header that may appear at most once, as text, if present and visible
/// ASCII.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(format!("more than one {name} header")).into());
    }
    first.to_str().map(Some).map_err(|_| {
        OAuthError::invalid_request(format!("the {name} header is not visible ASCII")).into()
    })
}

/// The `Authorization` header as text, if present and visible ASCII.
pub fn authorization(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    single_header(headers, AUTHORIZATION.as_str())
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
        _ => Err(OAuthError::invalid_token("expected 'Authorization: Bearer <token>'").into()),
    }
}
