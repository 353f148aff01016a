//! The OAuth endpoints: discovery, JWKS, token, introspection, revocation.
//! Each handler extracts, calls one service method, and maps the result.

use crate::error::ApiError;
use crate::extract::{form, Context, Proof};
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn discovery(State(state): State<AppState>) -> Response {
    let mut response = Json(state.service.discovery_document()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// JWKS responses may be cached for this long; the key activation delay is
/// longer, so a cached set always holds the key that signs.
pub const JWKS_MAX_AGE_SECS: u32 = 60;

pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.service.jwks().as_ref().clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECS}"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    response
}

pub async fn token(
    State(state): State<AppState>,
    Context(ctx): Context,
    Proof(proof): Proof,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = form(&headers, body).await?;
    let response = state.service.token.issue(&form, &proof, &ctx).await?;
    let nonce = response.dpop_nonce.clone();
    let mut response = Json(response).into_response();
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(&n).ok()) {
        response
            .headers_mut()
            .insert(crate::error::DPOP_NONCE, value);
    }
    Ok(response)
}

pub async fn introspect(
    State(state): State<AppState>,
    Context(ctx): Context,
    Proof(proof): Proof,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = form(&headers, body).await?;
    let response = state
        .service
        .token_state
        .introspect(&form, &proof, &ctx)
        .await?;
    Ok(Json(response).into_response())
}

pub async fn revoke(
    State(state): State<AppState>,
    Context(ctx): Context,
    Proof(proof): Proof,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let form = form(&headers, body).await?;
    state
        .service
        .token_state
        .revoke(&form, &proof, &ctx)
        .await?;
    Ok(StatusCode::OK)
}

/// RFC 9126 §2: a pushed authorization request; 201 with `request_uri`.
pub async fn par(
    State(state): State<AppState>,
    Context(ctx): Context,
    Proof(proof): Proof,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let form = form(&headers, body).await?;
    let pushed = state.service.par.push(&form, &proof, &ctx).await?;
    Ok((StatusCode::CREATED, Json(pushed)).into_response())
}
