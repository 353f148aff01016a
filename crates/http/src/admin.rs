//! The admin API (`/admin/*`): JSON over HTTP behind the admin bearer
//! token. Off (404) when no admin token is configured.

use crate::error::ApiError;
use crate::extract::{bearer, read_body, Context};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use custos_governance::{AuditEvent, EventFilter};
use custos_protocol::OAuthError;
use custos_service::ServiceError;
use serde::Deserialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/users", post(create_user))
        .route("/resources", post(create_resource).get(list_resources))
        .route(
            "/trusted-issuers",
            post(create_trusted_issuer).get(list_trusted_issuers),
        )
        .route("/trusted-issuers/{id}", delete(delete_trusted_issuer))
        .route("/policies", post(create_policy).get(list_policies))
        .route("/policies/{id}", delete(delete_policy))
        .route("/initial-access-tokens", post(create_initial_access_token))
        .route("/clients", get(list_clients))
        .route("/clients/{client_id}", delete(delete_client))
        .route("/clients/{client_id}/rotate-secret", post(rotate_secret))
        .route("/events", get(events))
        .route("/consents", get(list_consents))
        .route("/consents/{username}/{client_id}", delete(revoke_consents))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route_layer(axum::middleware::from_fn_with_state(state, require_admin))
}

async fn require_admin(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if !state.service.admin.enabled() {
        return ApiError::from(ServiceError::not_found(
            "the admin API is off: set CUSTOS_ADMIN_TOKEN to enable it",
        ))
        .into_response();
    }
    let checked = match bearer(&headers) {
        Ok(token) => state
            .service
            .admin
            .authorize(token, &ctx)
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

async fn create_user(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(&headers, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.admin.create_user(&body, &ctx).await?),
    ))
}

async fn create_resource(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(&headers, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.admin.create_resource(&body, &ctx).await?),
    ))
}

async fn create_trusted_issuer(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(&headers, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .service
                .admin
                .create_trusted_issuer(&body, &ctx)
                .await?,
        ),
    ))
}

async fn create_policy(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(&headers, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(state.service.admin.create_policy(&body, &ctx).await?),
    ))
}

async fn list_policies(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.service.admin.list_policies().await?))
}

async fn delete_policy(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.admin.delete_policy(&id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_trusted_issuers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.service.admin.list_trusted_issuers().await?))
}

async fn delete_trusted_issuer(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.admin.delete_trusted_issuer(&id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_resources(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.service.admin.list_resources().await?))
}

async fn create_initial_access_token(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let body = read_body(&headers, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .service
                .admin
                .create_initial_access_token(&body, &ctx)
                .await?,
        ),
    ))
}

async fn list_clients(
    State(state): State<AppState>,
    Context(ctx): Context,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.service.admin.client_inventory(&ctx).await?))
}

async fn delete_client(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(client_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.service.admin.disable_client(&client_id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_secret(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path(client_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        state
            .service
            .admin
            .rotate_client_secret(&client_id, &ctx)
            .await?,
    ))
}

#[derive(Deserialize)]
struct ConsentQuery {
    username: Option<String>,
}

async fn list_consents(
    State(state): State<AppState>,
    query: Result<Query<ConsentQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| OAuthError::invalid_request(format!("bad query: {}", e.body_text())))?;
    Ok(Json(
        state
            .service
            .admin
            .consents(query.username.as_deref())
            .await?,
    ))
}

async fn revoke_consents(
    State(state): State<AppState>,
    Context(ctx): Context,
    Path((username, client_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .service
        .admin
        .revoke_consents(&username, &client_id, &ctx)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_keys(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.service.admin.signing_keys()))
}

async fn rotate_keys(
    State(state): State<AppState>,
    Context(ctx): Context,
) -> Result<impl IntoResponse, ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.service.admin.rotate_signing_key(&ctx).await?),
    ))
}

#[derive(Deserialize)]
struct EventQuery {
    client_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

/// Largest page of events.
const MAX_EVENTS: u32 = 10_000;

async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) =
        query.map_err(|e| OAuthError::invalid_request(format!("bad query: {}", e.body_text())))?;
    let since_ms = query.since.as_deref().map(parse_since).transpose()?;
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_EVENTS {
        return Err(OAuthError::invalid_request(format!(
            "limit must be between 1 and {MAX_EVENTS}"
        ))
        .into());
    }
    let filter = EventFilter {
        client_id: query.client_id,
        event_type: query.event_type,
        since_ms,
        limit,
    };
    let events = state.service.admin.audit_events(&filter).await?;
    Ok(Json(Value::Array(events.iter().map(event_json).collect())))
}

/// `since`: RFC 3339, or seconds since the epoch.
fn parse_since(text: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds
            .checked_mul(1000)
            .ok_or_else(|| OAuthError::invalid_request("since is out of range").into());
    }
    OffsetDateTime::parse(text, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            OAuthError::invalid_request(
                "since must be RFC 3339 (2026-01-31T12:00:00Z) or epoch seconds",
            )
            .into()
        })
}

fn event_json(event: &AuditEvent) -> Value {
    let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(event.time_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok());
    json!({
        "id": event.id,
        "time": time,
        "type": event.event_type,
        "client_id": event.client_id,
        "grant_type": event.grant_type,
        "scope": event.scope,
        "resource": event.resource,
        "result": event.outcome.as_str(),
        "reason": event.reason,
        "source_addr": event.source_addr,
        "auth_method": event.auth_method,
        "attested_id": event.attested_id,
        "policy": event.policy,
        "task_id": event.task_id,
    })
}
