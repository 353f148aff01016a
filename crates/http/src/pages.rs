//! The person's pages (login, consent, errors), rendered on the server
//! from the templates in `http/templates` (minijinja, HTML auto-escaped).
//! No script at all; a strict Content-Security-Policy, no framing, no
//! referrer; readable without JavaScript, usable from a keyboard.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde::Serialize;
use std::sync::OnceLock;

/// Where the stylesheet is served, below the issuer's path.
pub const ASSETS: &str = "/assets";

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in [
            ("base.html", include_str!("../templates/base.html")),
            ("login.html", include_str!("../templates/login.html")),
            ("consent.html", include_str!("../templates/consent.html")),
            ("error.html", include_str!("../templates/error.html")),
        ] {
            // The templates are part of the binary and tested; a broken one
            // shows as a rendering error below, not a panic.
            if let Err(error) = env.add_template(name, source) {
                tracing::error!(template = name, error = %error, "a page template does not parse");
            }
        }
        env
    })
}

/// Renders `name` with `context` as an HTML response with the pages'
/// security headers.
pub fn render<S: Serialize>(status: StatusCode, name: &str, context: S) -> Response {
    let body = environment()
        .get_template(name)
        .and_then(|t| t.render(context));
    let (status, body) = match body {
        Ok(body) => (status, body),
        Err(error) => {
            tracing::error!(template = name, error = %error, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "<!doctype html><title>custos</title><p>The page could not be shown.</p>"
                    .to_owned(),
            )
        }
    };
    let mut response = (status, body).into_response();
    secure(&mut response);
    response
}

/// Headers every page carries.
pub fn secure(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Nothing leaves for other sites; same-origin posts keep their
    // `Origin` (under `no-referrer` browsers send `Origin: null`, which the
    // cross-site check could not tell from an attacker's page).
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// The stylesheet.
pub async fn stylesheet() -> Response {
    let mut response = include_str!("../templates/custos.css").into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(response: Response) -> String {
        let bytes = futures_executor(axum::body::to_bytes(response.into_body(), 1 << 20));
        String::from_utf8(bytes.unwrap().to_vec()).unwrap()
    }

    fn futures_executor<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn pages_escape_what_they_show_and_carry_no_script() {
        let response = render(
            StatusCode::OK,
            "login.html",
            json!({
                "assets": "/assets", "action": "/authorize", "pending": "p", "csrf": "c",
                "client": {"name": "<script>alert(1)</script>", "client_id": "x", "contacts": []},
            }),
        );
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let html = body(response);
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains(r#"name="username""#) && html.contains(r#"name="password""#));
    }
}
