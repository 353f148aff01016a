//! The authorization endpoint and the person's pages: extract the request
//! (query or form), the session cookie and the context; call the use case;
//! answer with a page, a 303, or an error page. Never a 307 (RFC 9700
//! §4.12), never CORS, never a token in a URL.

use crate::error::ApiError;
use crate::extract::{form, Context};
use crate::pages::{render, ASSETS};
use crate::AppState;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use custos_protocol::discovery::paths;
use custos_protocol::form::FormParams;
use custos_service::authorize::{AuthorizeAnswer, AuthorizeOutcome, SESSION_COOKIE};
use serde_json::json;

/// `GET /authorize?…`.
pub async fn get(
    State(state): State<AppState>,
    Context(ctx): Context,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let form = match FormParams::parse(query.unwrap_or_default().as_bytes()) {
        Ok(form) => form,
        Err(error) => return error_page(&state, error.code.as_str(), &error.description),
    };
    let answer = state
        .service
        .authorize
        .start(&form, session_cookie(&state, &headers), &ctx)
        .await;
    respond(&state, answer)
}

/// `POST /authorize`: a page's form (`step`), or an authorization request
/// sent as a form.
pub async fn post(
    State(state): State<AppState>,
    Context(ctx): Context,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match form(&headers, body).await {
        Ok(form) => form,
        Err(ApiError::PayloadTooLarge(d)) => return error_page(&state, "invalid_request", &d),
        Err(ApiError::Service(e)) => return error_page(&state, e.code(), e.description()),
    };
    let session = session_cookie(&state, &headers);
    let answer = if form.contains("step") {
        // The person's own pages post here; a cross-site post is a login
        // (or consent) CSRF attempt, whatever its tokens say.
        if cross_site(&state, &headers) {
            return error_page(
                &state,
                "invalid_request",
                "this form was sent from another site; start again from the application",
            );
        }
        state.service.authorize.submit(&form, session, &ctx).await
    } else {
        state.service.authorize.start(&form, session, &ctx).await
    };
    respond(&state, answer)
}

/// A request a browser says came from another site: `Sec-Fetch-Site:
/// cross-site`, or an `Origin` other than the issuer's (`null` counts as
/// other unless the browser also says `Sec-Fetch-Site: same-origin`).
fn cross_site(state: &AppState, headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if fetch_site == Some("cross-site") {
        return true;
    }
    let same_origin = fetch_site == Some("same-origin");
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|origin| {
            !(origin.eq_ignore_ascii_case(&state.origin) || (origin == "null" && same_origin))
        })
}

fn respond(state: &AppState, answer: AuthorizeAnswer) -> Response {
    let action = format!("{}{}", state.issuer_path, paths::AUTHORIZATION);
    let assets = format!("{}{}", state.issuer_path, ASSETS);
    let mut response = match answer.outcome {
        AuthorizeOutcome::Login(page) => render(
            StatusCode::OK,
            "login.html",
            json!({"assets": assets, "action": action, "client": page.client, "pending": page.pending,
                   "csrf": page.csrf, "username": page.username, "error": page.error}),
        ),
        AuthorizeOutcome::Consent(page) => render(
            StatusCode::OK,
            "consent.html",
            json!({"assets": assets, "action": action, "client": page.client, "username": page.username,
                   "scopes": page.scopes, "resources": page.resources,
                   "authorization_details": page.authorization_details, "pending": page.pending,
                   "csrf": page.csrf}),
        ),
        AuthorizeOutcome::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
            Err(_) => error_page(state, "server_error", "the redirect could not be formed"),
        },
        AuthorizeOutcome::Error(error) => {
            error_page(state, error.code.as_str(), &error.description)
        }
    };
    if let Some((value, max_age)) = answer.set_session {
        // Under https the `__Host-` prefix: no sibling subdomain can set or
        // shadow the session (it requires Secure, Path=/ and no Domain).
        let cookie = if state.secure_cookies {
            format!(
                "{SECURE_SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax; Secure"
            )
        } else {
            let path = if state.issuer_path.is_empty() {
                "/"
            } else {
                &state.issuer_path
            };
            format!(
                "{SESSION_COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax"
            )
        };
        if let Ok(cookie) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

fn error_page(state: &AppState, error: &str, description: &str) -> Response {
    let status = match error {
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    render(
        status,
        "error.html",
        json!({"assets": format!("{}{}", state.issuer_path, ASSETS), "error": error,
               "description": crate::error::sanitize_description(description)}),
    )
}

/// The session cookie's name under https.
const SECURE_SESSION_COOKIE: &str = "__Host-custos_session";

/// The value of the session cookie, if the request carries one (under
/// https only the `__Host-` one).
fn session_cookie<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<&'h str> {
    let name = if state.secure_cookies {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    };
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
}
