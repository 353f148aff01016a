//! A protected axum app on an ephemeral port, called with reqwest, with
//! its issuer's keys fetched over HTTP from a stand-in authorization
//! server (plain HTTP on loopback, allowed explicitly).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use custos_verifier::axum::{Authenticated, RequireToken};
use custos_verifier::testing::{TestIssuer, TestKey};
use custos_verifier::{HttpJwks, Verifier};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// A stand-in custos: RFC 8414 metadata and the JWKS, counting JWKS hits.
async fn authorization_server(issuer_key: TestKey) -> (TestIssuer, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer_url = format!("http://{}", listener.local_addr().unwrap());
    let issuer = TestIssuer::with_key(issuer_url.clone(), issuer_key);
    let hits = Arc::new(AtomicUsize::new(0));
    let jwks = issuer.jwks_document();
    let metadata = json!({"issuer": issuer_url, "jwks_uri": format!("{issuer_url}/jwks")});
    let counter = Arc::clone(&hits);
    let app = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { Json(metadata) }),
        )
        .route(
            "/jwks",
            get(move || async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Json(jwks)
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (issuer, hits)
}

struct App {
    base: String,
    issuer: TestIssuer,
    jwks_hits: Arc<AtomicUsize>,
    client: reqwest::Client,
}

impl App {
    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

async fn mcp(Authenticated(token): Authenticated, Json(call): Json<Value>) -> Json<Value> {
    Json(json!({
        "jsonrpc": "2.0", "id": call["id"],
        "result": {"subject": token.subject(), "client_id": token.client_id()},
    }))
}

async fn whoami(token: Option<Authenticated>) -> String {
    token.map_or("anonymous".into(), |Authenticated(t)| {
        t.subject().to_owned()
    })
}

async fn state_route(
    State(greeting): State<&'static str>,
    Authenticated(t): Authenticated,
) -> String {
    format!("{greeting} {}", t.subject())
}

async fn start() -> App {
    let (issuer, jwks_hits) = authorization_server(TestKey::es256()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks = HttpJwks::discover(issuer.issuer())
        .unwrap()
        .allow_insecure_http(true);
    let verifier = Verifier::builder(issuer.issuer(), format!("{base}/mcp"))
        .jwks(jwks)
        .metadata(|m| m.resource_name = Some("Test MCP".into()))
        .build()
        .unwrap();
    let protected = Router::new()
        .route("/mcp", post(mcp))
        .layer(RequireToken::new(verifier.clone()).scopes(["mcp:tools"]));
    let nested = Router::new().route("/items", get(whoami));
    let with_state = Router::new()
        .route("/state", get(state_route))
        .with_state("hello");
    let open = Router::new()
        .route("/whoami", get(whoami))
        .nest("/v1", nested)
        .merge(with_state)
        .layer(Extension(verifier.clone()));
    let app = Router::new()
        .merge(protected)
        .merge(open)
        .merge(verifier.metadata_router());
    tokio::spawn(async move { axum::serve(listener, app).await });
    App {
        base,
        issuer,
        jwks_hits,
        client: reqwest::Client::new(),
    }
}

fn challenges(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn mcp_discovery_flow_no_token_then_metadata() {
    let app = start().await;
    let response = app
        .client
        .post(app.resource())
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = &challenges(&response)[0];
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", app.base);
    assert_eq!(
        challenge,
        &format!(r#"Bearer resource_metadata="{metadata_url}""#)
    );

    // RFC 9728 §3: the client follows it.
    let response = app.client.get(&metadata_url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["resource"], app.resource());
    assert_eq!(
        metadata["authorization_servers"],
        json!([app.issuer.issuer()])
    );
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    assert_eq!(metadata["resource_name"], "Test MCP");
}

#[tokio::test]
async fn bearer_token_scope_and_errors() {
    let app = start().await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
    let token = app.issuer.token(&app.resource()).scope("mcp:tools").sign();
    let response = app
        .client
        .post(app.resource())
        .bearer_auth(&token)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["subject"], "alice");
    assert_eq!(body["id"], 7);

    let token = app.issuer.token(&app.resource()).scope("other").sign();
    let response = app
        .client
        .post(app.resource())
        .bearer_auth(&token)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(challenges(&response)[0].contains(r#"error="insufficient_scope""#));
    assert!(challenges(&response)[0].contains(r#"scope="mcp:tools""#));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    // A token for another resource (MCP: audience binding).
    let token = app
        .issuer
        .token("https://elsewhere.example")
        .scope("mcp:tools")
        .sign();
    let response = app
        .client
        .post(app.resource())
        .bearer_auth(&token)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenges(&response)[0].starts_with(r#"Bearer error="invalid_token""#));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    // One JWKS fetch served all of it.
    assert_eq!(app.jwks_hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dpop_through_the_layer() {
    let app = start().await;
    let key = TestKey::es256();
    let token = app
        .issuer
        .token(&app.resource())
        .scope("mcp:tools")
        .dpop_bound(&key)
        .sign();
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let proof = key
        .proof("POST", &app.resource())
        .access_token(&token)
        .sign();
    let send = |proof: String| {
        app.client
            .post(app.resource())
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .json(&call)
            .send()
    };
    let response = send(proof.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(proof).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenges(&response)[0].starts_with(r#"DPoP error="invalid_dpop_proof""#));
    // Proof for another URL.
    let proof = key
        .proof("POST", &format!("{}/other", app.base))
        .access_token(&token)
        .sign();
    assert_eq!(
        send(proof).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // As Bearer: refused.
    let response = app
        .client
        .post(app.resource())
        .bearer_auth(&token)
        .json(&call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn extractor_with_extension_optional_and_nested_routes() {
    let app = start().await;
    let url = format!("{}/whoami", app.base);
    let text = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "anonymous");
    let token = app.issuer.token(&app.resource()).subject("bob").sign();
    let response = app
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "bob");
    let response = app
        .client
        .get(&url)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Nested: the DPoP htu is the full path the client used.
    let key = TestKey::es256();
    let token = app.issuer.token(&app.resource()).dpop_bound(&key).sign();
    let nested = format!("{}/v1/items", app.base);
    let proof = key.proof("GET", &nested).access_token(&token).sign();
    let response = app
        .client
        .get(&nested)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "alice");

    let token = app.issuer.token(&app.resource()).sign();
    let response = app
        .client
        .get(format!("{}/state", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "hello alice");
}

#[tokio::test]
async fn extractor_without_a_verifier_is_a_server_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/",
        get(|Authenticated(t): Authenticated| async move { t.subject().to_owned() }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let response = reqwest::get(&base).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
