//! An MCP server endpoint that accepts custos access tokens.
//!
//! ```sh
//! CUSTOS_ISSUER=https://auth.example.com \
//! RESOURCE_URL=https://mcp.example.com/mcp \
//!     cargo run -p custos-verifier --example mcp_server
//! ```
//!
//! - `CUSTOS_ISSUER`: the custos issuer (its keys are found through
//!   `/.well-known/oauth-authorization-server`).
//! - `RESOURCE_URL`: this server's canonical URI, the `resource` clients ask
//!   tokens for and the `aud` they must carry.
//! - `LISTEN` (default `127.0.0.1:8080`), `REQUIRED_SCOPE` (default
//!   `mcp:tools`), `DPOP_REQUIRED=1` to accept DPoP-bound tokens only,
//!   `CUSTOS_ALLOW_HTTP=1` for an issuer on plain HTTP (loopback tests).
//!
//! Without a token, `POST /mcp` answers 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…"`; the metadata is served
//! at `/.well-known/oauth-protected-resource/mcp`. `tools/call` of the
//! `admin_reset` tool also needs the `mcp:admin` scope (403 otherwise).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use custos_verifier::axum::{Authenticated, RequireToken};
use custos_verifier::{DpopPolicy, HttpJwks, Verifier};
use serde_json::{json, Value};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

async fn mcp(
    State(verifier): State<Verifier>,
    Authenticated(token): Authenticated,
    Json(call): Json<Value>,
) -> Response {
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let result = match call.get("method").and_then(Value::as_str) {
        Some("initialize") => json!({
            "protocolVersion": "2025-06-18",
            "serverInfo": {"name": "custos-verifier example", "version": "0.1.0"},
            "capabilities": {"tools": {}},
        }),
        Some("tools/list") => json!({"tools": [
            {"name": "whoami", "inputSchema": {"type": "object"}},
            {"name": "admin_reset", "inputSchema": {"type": "object"}},
        ]}),
        Some("tools/call") => {
            let tool = call["params"]["name"].as_str().unwrap_or_default();
            if tool == "admin_reset" {
                // A per-tool scope: 403 insufficient_scope with its challenge.
                if let Err(rejection) = verifier.check_scopes(&token, &["mcp:admin"]) {
                    return rejection.into_response();
                }
            }
            let text = format!(
                "{tool}: subject {}, client {}, acting: {:?}",
                token.subject(),
                token.client_id(),
                token
                    .actors()
                    .iter()
                    .map(|a| a.subject.as_str())
                    .collect::<Vec<_>>()
            );
            json!({"content": [{"type": "text", "text": text}]})
        }
        _ => {
            return Json(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": "method not found"}}))
            .into_response()
        }
    };
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = env("CUSTOS_ISSUER")?;
    let resource = env("RESOURCE_URL")?;
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let scope = std::env::var("REQUIRED_SCOPE").unwrap_or_else(|_| "mcp:tools".into());
    let allow_http = std::env::var("CUSTOS_ALLOW_HTTP").is_ok_and(|v| v == "1");
    let dpop = match std::env::var("DPOP_REQUIRED").is_ok_and(|v| v == "1") {
        true => DpopPolicy::Required,
        false => DpopPolicy::Allowed,
    };

    let verifier = Verifier::builder(&issuer, &resource)
        .jwks(HttpJwks::discover(&issuer)?.allow_insecure_http(allow_http))
        .required_scopes([scope])
        .dpop(dpop)
        .metadata(|m| {
            m.resource_name = Some("custos-verifier example MCP server".into());
            m.scopes_supported.push("mcp:admin".into());
        })
        .build()?;
    match verifier.warm_up().await {
        Ok(keys) => eprintln!("{keys} signing key(s) of {issuer}"),
        Err(error) => eprintln!("keys not available yet ({error}); retrying on demand"),
    }

    let path = url::Url::parse(&resource)?.path().to_owned();
    let app = Router::new()
        .route(&path, post(mcp))
        .layer(RequireToken::new(verifier.clone()))
        .with_state(verifier.clone())
        .merge(verifier.metadata_router());

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!(
        "MCP endpoint {resource} on {listen}; metadata at {}",
        verifier.resource_metadata_url().unwrap_or("(none)")
    );
    axum::serve(listener, app).await?;
    Ok(())
}
