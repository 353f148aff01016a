//! The HTTP edge without a socket: the router driven with `oneshot`, over a
//! real service on a fresh SQLite file and a moved clock. What is decided
//! here is the edge's own: statuses, headers, body limits, error mapping.

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use custos_service::clock::ManualClock;
use custos_service::crypto::MasterKey;
use custos_service::{NoJwksFetching, Secret, Service, ServiceConfig};
use custos_store::ConnectOptions;
use serde_json::Value;
use std::sync::Arc;
use tower::ServiceExt;

const ADMIN: &str = "edge-admin-token-0123456789";
const ISSUER: &str = "https://as.example/tenant";

async fn app() -> Router {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("custos_edge_{}_{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = custos_store::connect(&ConnectOptions {
        url: format!("sqlite://{}", dir.join("edge.db").display()),
        max_connections: 4,
    })
    .await
    .unwrap();
    let mut config = ServiceConfig::new(ISSUER);
    config.admin_token = Some(Secret::new(ADMIN));
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let master = MasterKey::from_secret(&"e".repeat(40)).unwrap();
    let (service, _writer) = Service::start(store, config, master, clock, Arc::new(NoJwksFetching))
        .await
        .unwrap();
    custos_http::router(service, custos_http::TrustedProxies::default())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, header::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn token_request(body: &str) -> Request<Body> {
    Request::post("/tenant/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn rfc8414_3_discovery_under_the_issuer_path_lists_the_tables() {
    let app = app().await;
    let request = Request::get("/.well-known/oauth-authorization-server/tenant")
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["issuer"], ISSUER);
    assert_eq!(body["token_endpoint"], format!("{ISSUER}/token"));
    assert_eq!(
        body["grant_types_supported"],
        serde_json::json!([
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        body["authorization_endpoint"],
        format!("{ISSUER}/authorize")
    );
    assert_eq!(
        body["token_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "federated_jwt",
            "spiffe_jwt",
            "none"
        ])
    );
    assert_eq!(headers[header::CACHE_CONTROL], "public, max-age=300");
}

#[tokio::test]
async fn rfc6749_5_2_errors_are_json_and_never_cached() {
    let app = app().await;
    let (status, headers, body) = send(&app, token_request("grant_type=password")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");

    let (status, headers, body) = send(&app, token_request("grant_type=client_credentials")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert!(headers[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Basic"));

    let request = Request::get("/nowhere").body(Body::empty()).unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn rfc6749_3_2_token_requests_must_be_forms() {
    let app = app().await;
    let request = Request::post("/tenant/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    let (status, _, body) = send(
        &app,
        token_request("grant_type=client_credentials&grant_type=client_credentials"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "RFC 6749 section 3.1: {body}"
    );
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_reading() {
    let app = app().await;
    // The body is never produced: were it read, the request would hang.
    let (sender, body) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let stream = tokio_stream_from(body);
    let request = Request::post("/tenant/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, "10000000")
        .body(Body::from_stream(stream))
        .unwrap();
    let (status, _, body) =
        tokio::time::timeout(std::time::Duration::from_secs(5), send(&app, request))
            .await
            .expect("refused without waiting for the body");
    drop(sender);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "invalid_request");
}

fn tokio_stream_from(
    mut receiver: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test]
async fn the_brake_answers_429_with_the_seconds_it_computed() {
    let app = app().await;
    let wrong = || {
        Request::get("/tenant/admin/clients")
            .header(header::AUTHORIZATION, "Bearer wrong")
            .body(Body::empty())
            .unwrap()
    };
    for _ in 0..10 {
        let (status, _, _) = send(&app, wrong()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = send(&app, wrong()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"], "temporarily_unavailable");
    // The clock has not moved: the whole 60 s window remains.
    assert_eq!(headers[header::RETRY_AFTER], "60");
}

#[tokio::test]
async fn rfc6750_3_1_admin_without_credentials_gets_a_bare_challenge() {
    let app = app().await;
    let request = Request::get("/tenant/admin/clients")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer realm=\"custos\"");
}

#[tokio::test]
async fn a_token_over_the_edge_names_its_audience_and_is_not_cached() {
    let app = app().await;
    let request = Request::post("/tenant/register")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"grant_types":["client_credentials"],"scope":"read"}"#,
        ))
        .unwrap();
    let (status, headers, client) = send(&app, request).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap()
    ));
    let request = Request::post("/tenant/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    assert!(body.get("refresh_token").is_none());
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
}
