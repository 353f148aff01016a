//! `HttpJwks` against a local server: discovery, limits, no redirects.

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use custos_verifier::testing::TestIssuer;
use custos_verifier::{HttpJwks, JwksError, JwksSource};
use serde_json::json;
use std::time::Duration;
use tokio::net::TcpListener;

async fn serve(app: impl FnOnce(&str) -> Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app(&base);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

#[tokio::test]
async fn discovers_and_fetches() {
    let issuer = TestIssuer::new("unused");
    let jwks = issuer.jwks_document();
    let base = serve(|base| {
        let metadata =
            json!({"issuer": format!("{base}/tenant"), "jwks_uri": format!("{base}/keys")});
        Router::new()
            .route(
                "/.well-known/oauth-authorization-server/tenant",
                get(move || async move { Json(metadata) }),
            )
            .route("/keys", get(move || async move { Json(jwks) }))
    })
    .await;
    let source = HttpJwks::discover(format!("{base}/tenant"))
        .unwrap()
        .allow_insecure_http(true);
    let set = source.fetch().await.unwrap();
    assert_eq!(set.keys()[0].kid(), Some(issuer.kid()));

    // The metadata must be about the issuer asked for.
    let source = HttpJwks::discover(format!("{base}/other"))
        .unwrap()
        .allow_insecure_http(true);
    assert!(source.fetch().await.is_err());
}

#[tokio::test]
async fn metadata_for_another_issuer_is_refused() {
    let base = serve(|_| {
        Router::new().route(
            "/.well-known/oauth-authorization-server",
            get(|| async { Json(json!({"issuer": "https://evil.example", "jwks_uri": "https://evil.example/jwks"})) }),
        )
    })
    .await;
    let source = HttpJwks::discover(base).unwrap().allow_insecure_http(true);
    assert!(matches!(source.fetch().await, Err(JwksError::Metadata(_))));
}

#[tokio::test]
async fn redirects_are_not_followed_and_sizes_are_limited() {
    let issuer = TestIssuer::new("unused");
    let jwks = issuer.jwks_document();
    let base = serve(|_| {
        Router::new()
            .route(
                "/moved",
                get(|| async {
                    (StatusCode::FOUND, [(header::LOCATION, "/keys")]).into_response()
                }),
            )
            .route("/keys", get(move || async move { Json(jwks) }))
            .route("/huge", get(|| async { "x".repeat(1024 * 1024) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/broken", get(|| async { "not json" }))
    })
    .await;
    let source = |path: &str| {
        HttpJwks::new(format!("{base}{path}"))
            .unwrap()
            .allow_insecure_http(true)
    };
    assert!(source("/keys").fetch().await.is_ok());
    let error = source("/moved").fetch().await.unwrap_err();
    assert!(error.to_string().contains("302"), "{error}");
    let error = source("/huge").fetch().await.unwrap_err();
    assert!(error.to_string().contains("larger"), "{error}");
    let error = source("/keys")
        .max_response_bytes(10)
        .fetch()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("larger"), "{error}");
    let error = source("/slow")
        .timeout(Duration::from_millis(200))
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(error, JwksError::Fetch { .. }), "{error}");
    assert!(matches!(
        source("/broken").fetch().await,
        Err(JwksError::Jwk(_))
    ));
    // Plain http without the explicit allowance.
    let plain = HttpJwks::new(format!("{base}/keys")).unwrap();
    assert!(matches!(
        plain.fetch().await,
        Err(JwksError::InsecureUrl(_))
    ));
}
