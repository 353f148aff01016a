//! The `custos-verifier` crate against the real server, on SQLite and
//! PostgreSQL: what a Rust MCP server sees of custos's tokens — keys found
//! by discovery, Bearer and DPoP-bound tokens, audience, scopes, the
//! delegation chain, and the refusals with their challenges.

mod common;

use common::*;
use custos_verifier::{DpopPolicy, HttpJwks, Request, Verifier};
use reqwest::Method;
use serde_json::json;

const MCP: &str = "https://mcp.example.com/mcp";

async fn verifier_accepts_custos_tokens(db: Database) {
    let server = Server::start(&db).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": MCP, "scopes": ["mcp:tools", "mcp:admin"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (id, secret) = server
        .secret_client("client_secret_basic", "mcp:tools mcp:admin")
        .await;
    let issuer = server.discovery().await["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    let verifier = Verifier::builder(&issuer, MCP)
        .jwks(
            HttpJwks::discover(&issuer)
                .unwrap()
                .allow_insecure_http(true),
        )
        .required_scopes(["mcp:tools"])
        .build()
        .unwrap();

    // A Bearer token for the MCP server.
    let (status, token) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", MCP),
                ("scope", "mcp:tools"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap();
    let bearer = format!("Bearer {access}");
    let verified = verifier
        .verify(&Request::new("POST", MCP).authorization(&bearer))
        .await
        .unwrap();
    assert_eq!(verified.client_id(), id);
    assert!(verified.has_scope("mcp:tools"));

    // Scopes the route needs and the token lacks: 403 insufficient_scope.
    let refusal = verifier
        .verify_with_scopes(
            &Request::new("POST", MCP).authorization(&bearer),
            &["mcp:admin"],
        )
        .await
        .unwrap_err();
    assert_eq!(refusal.status(), 403);

    // A token for another resource: refused, with the challenge MCP
    // clients follow (RFC 9728 resource_metadata).
    let (_, other) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let other = format!("Bearer {}", other["access_token"].as_str().unwrap());
    let refusal = verifier
        .verify(&Request::new("POST", MCP).authorization(&other))
        .await
        .unwrap_err();
    assert_eq!(refusal.status(), 401);
    let challenges = refusal.challenges().join("\n");
    assert!(challenges.contains("resource_metadata="), "{challenges}");
    assert!(challenges.contains("invalid_token"), "{challenges}");

    // A DPoP-bound token: accepted with a proof of its key for this
    // request (ath included), refused as a Bearer token.
    let key = ClientKey::generate("dpop");
    let endpoint = server.endpoint("token_endpoint").await;
    let response = server
        .http
        .post(&endpoint)
        .basic_auth(enc(&id), Some(enc(&secret)))
        .header("DPoP", key.dpop_proof("POST", &endpoint, &json!({})))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", MCP),
            ("scope", "mcp:tools"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bound: serde_json::Value = response.json().await.unwrap();
    assert_eq!(bound["token_type"], "DPoP");
    let bound = bound["access_token"].as_str().unwrap();
    let ath = custos_verifier::access_token_hash(bound);
    let proof = key.dpop_proof("POST", MCP, &json!({"ath": ath}));
    let dpop = format!("DPoP {bound}");
    let verified = verifier
        .verify(&Request::new("POST", MCP).authorization(&dpop).dpop(&proof))
        .await
        .unwrap();
    assert_eq!(verified.dpop_thumbprint(), Some(key.jkt().as_str()));
    // The same proof again is a replay.
    assert!(verifier
        .verify(&Request::new("POST", MCP).authorization(&dpop).dpop(&proof))
        .await
        .is_err());
    let as_bearer = format!("Bearer {bound}");
    assert!(verifier
        .verify(&Request::new("POST", MCP).authorization(&as_bearer))
        .await
        .is_err());
    // A proof for another URL.
    let elsewhere = key.dpop_proof(
        "POST",
        "https://mcp.example.com/other",
        &json!({"ath": ath}),
    );
    assert!(verifier
        .verify(
            &Request::new("POST", MCP)
                .authorization(&dpop)
                .dpop(&elsewhere)
        )
        .await
        .is_err());

    // A server that requires DPoP refuses Bearer tokens.
    let strict = Verifier::builder(&issuer, MCP)
        .jwks(
            HttpJwks::discover(&issuer)
                .unwrap()
                .allow_insecure_http(true),
        )
        .dpop(DpopPolicy::Required)
        .build()
        .unwrap();
    assert!(strict
        .verify(&Request::new("POST", MCP).authorization(&bearer))
        .await
        .is_err());
}

on_both_engines!(verifier_accepts_custos_tokens);
