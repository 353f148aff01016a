//! The HTTP edge: the only crate that knows HTTP. Routes, extractors, and
//! the mapping of domain errors to responses (in `error`, once).

mod admin;
mod authorize;
pub mod client_addr;
pub mod error;
pub mod extract;
mod oauth;
pub mod pages;
mod registration;

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use custos_protocol::discovery::paths;
use custos_service::{Service, ServiceError};
use std::sync::Arc;
use tower_http::set_header::SetResponseHeaderLayer;

pub use client_addr::TrustedProxies;
pub use extract::PeerCertificates;
pub use oauth::JWKS_MAX_AGE_SECS;

#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub trusted_proxies: Arc<TrustedProxies>,
    /// The issuer's scheme and authority (`https://as.example`): with a
    /// request's path, the URL the client addressed.
    pub origin: Arc<str>,
    /// The issuer's path ("" for none): the prefix of every endpoint.
    pub issuer_path: Arc<str>,
    /// Cookies get `Secure` (the issuer is https).
    pub secure_cookies: bool,
}

/// The whole application. Endpoints live under the issuer's path (RFC 8414
/// §3: the metadata of an issuer with a path is at
/// `/.well-known/oauth-authorization-server{path}`).
pub fn router(service: Arc<Service>, trusted_proxies: TrustedProxies) -> Router {
    let issuer_path = issuer_path(service.issuer());
    let origin = service
        .issuer()
        .strip_suffix(issuer_path.as_str())
        .unwrap_or(service.issuer())
        .into();
    let secure_cookies = service.issuer().starts_with("https://");
    let state = AppState {
        service,
        trusted_proxies: Arc::new(trusted_proxies),
        origin,
        issuer_path: issuer_path.as_str().into(),
        secure_cookies,
    };
    let endpoints = Router::new()
        .route(
            paths::AUTHORIZATION,
            get(authorize::get).post(authorize::post),
        )
        .route(
            &format!("{}/custos.css", pages::ASSETS),
            get(pages::stylesheet),
        )
        .route(paths::TOKEN, post(oauth::token))
        .route(paths::PAR, post(oauth::par))
        .route(paths::INTROSPECTION, post(oauth::introspect))
        .route(paths::REVOCATION, post(oauth::revoke))
        .route(paths::JWKS, get(oauth::jwks))
        .route(paths::REGISTRATION, post(registration::register))
        .route(
            &format!("{}/{{client_id}}", paths::REGISTRATION),
            get(registration::read)
                .put(registration::update)
                .delete(registration::delete),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::discovery),
        )
        .route("/.well-known/openid-configuration", get(oauth::discovery))
        .nest("/admin", admin::routes(state.clone()));
    let app = if issuer_path.is_empty() {
        endpoints
    } else {
        Router::new().nest(&issuer_path, endpoints).route(
            &format!("/.well-known/oauth-authorization-server{issuer_path}"),
            get(oauth::discovery),
        )
    };
    app.route("/healthz", get(|| async { "ok" }))
        // Browsers ask for it on every page; there is none.
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(refuse_nul))
        // Nothing custos answers may be cached unless the handler says so
        // (discovery, JWKS): tokens, codes, secrets and errors alike
        // (RFC 6749 §5.1, RFC 7591 §3.2.1).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::PRAGMA,
            HeaderValue::from_static("no-cache"),
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
}

/// Longest a request may take, body included: a client trickling its body
/// cannot hold a connection and a task forever.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A NUL in the path or query (`%00`) reaches no handler: no identifier
/// has one, and PostgreSQL refuses it in text.
async fn refuse_nul(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = request.uri();
    let has_nul = |text: &str| {
        text.as_bytes()
            .windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
    };
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return error::ApiError::from(custos_protocol::OAuthError::invalid_request(
            "the request URI must not contain NUL characters",
        ))
        .into_response();
    }
    next.run(request).await
}

async fn not_found() -> error::ApiError {
    ServiceError::not_found("no such endpoint; see /.well-known/oauth-authorization-server").into()
}

/// The path of the issuer URL, without a trailing slash ("" for none).
fn issuer_path(issuer: &str) -> String {
    let after_scheme = issuer.split_once("://").map_or(issuer, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].trim_end_matches('/').to_owned(),
        None => String::new(),
    }
}
