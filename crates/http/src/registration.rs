//! RFC 7591 registration and RFC 7592 management endpoints.

use crate::error::ApiError;
use crate::extract::{bearer, json_body, Context};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

fn client_information(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

pub async fn register(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?;
    let body = json_body(&headers, body).await?;
    let created = state
        .service
        .registration
        .register_client(token, &body, &ctx)
        .await?;
    Ok(client_information(StatusCode::CREATED, created))
}

pub async fn read(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let body = state
        .service
        .registration
        .read_registration(&client_id, bearer(&headers)?, &ctx)
        .await?;
    Ok(client_information(StatusCode::OK, body))
}

pub async fn update(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let token = bearer(&headers)?;
    let body = json_body(&headers, body).await?;
    let updated = state
        .service
        .registration
        .update_registration(&client_id, token, &body, &ctx)
        .await?;
    Ok(client_information(StatusCode::OK, updated))
}

pub async fn delete(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .registration
        .delete_registration(&client_id, bearer(&headers)?, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
