//! DPoP (RFC 9449) at the token endpoint, for client credentials: proofs
//! bind tokens (`cnf.jkt`, `token_type: DPoP`), are used once across
//! replicas, are held to the request's method and URL, can be required per
//! client, and can be required to carry a server nonce.

mod common;

use common::{enc, jwt_parts, ClientKey, Database, Server, SHARED_ISSUER};
use serde_json::{json, Value};

/// POSTs a client_credentials request with Basic auth and `dpop` as the
/// DPoP header.
async fn token_with_proof(
    server: &Server,
    endpoint: &str,
    client: (&str, &str),
    dpop: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = server
        .http
        .post(endpoint)
        .basic_auth(enc(client.0), Some(enc(client.1)))
        .form(&[("grant_type", "client_credentials")]);
    if let Some(proof) = dpop {
        request = request.header("DPoP", proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

async fn rfc9449_5_a_proof_binds_the_token_to_its_key(db: Database) {
    let server = Server::start(&db).await;
    let metadata = server.discovery().await;
    let algs = metadata["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.iter().any(|a| a == "ES256"), "{metadata}");
    let endpoint = server.endpoint("token_endpoint").await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let key = ClientKey::generate("dpop");
    let proof = key.dpop_proof("POST", &endpoint, &json!({}));
    let (status, _, body) =
        token_with_proof(&server, &endpoint, (&id, &secret), Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let token = body["access_token"].as_str().unwrap();
    let (_, claims) = jwt_parts(token);
    assert_eq!(claims["cnf"]["jkt"], key.jkt(), "RFC 9449 section 6.1");

    // RFC 9449 §6.2: introspection shows the binding.
    let (rs_id, rs_secret) = server.secret_client("client_secret_basic", "").await;
    let introspection = server.endpoint("introspection_endpoint").await;
    let (status, _, body) = server
        .post_form(
            &introspection,
            Some((&rs_id, &rs_secret)),
            &[("token", token)],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["cnf"]["jkt"], key.jkt());

    // Without a proof the same client gets a Bearer token without cnf.
    let (status, _, body) = token_with_proof(&server, &endpoint, (&id, &secret), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert!(claims.get("cnf").is_none());
}

async fn rfc9449_4_3_proofs_are_held_to_the_request(db: Database) {
    let server = Server::start(&db).await;
    let endpoint = server.endpoint("token_endpoint").await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let key = ClientKey::generate("dpop");
    let now = common::now();
    for (why, proof) in [
        (
            "another method",
            key.dpop_proof("GET", &endpoint, &json!({})),
        ),
        (
            "another URL",
            key.dpop_proof("POST", &format!("{}/introspect", server.url), &json!({})),
        ),
        (
            "too old",
            key.dpop_proof("POST", &endpoint, &json!({"iat": now - 600})),
        ),
        (
            "from the future",
            key.dpop_proof("POST", &endpoint, &json!({"iat": now + 600})),
        ),
        (
            "no jti",
            key.dpop_proof("POST", &endpoint, &json!({"jti": null})),
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ] {
        let (status, _, body) =
            token_with_proof(&server, &endpoint, (&id, &secret), Some(&proof)).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_dpop_proof", "{why}");
    }
    // RFC 9449 §4.3: the query is not part of htu.
    let proof = key.dpop_proof("POST", &endpoint, &json!({}));
    let (status, _, body) = token_with_proof(
        &server,
        &format!("{endpoint}?x=1"),
        (&id, &secret),
        Some(&proof),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Refused proofs and wrong clients are audited like any refusal.
    let refused = server
        .events(&format!("?client_id={id}&type=token.refused"))
        .await;
    assert!(refused.len() >= 6);
    assert!(refused
        .iter()
        .all(|e| e["reason"].as_str().unwrap().contains("invalid_dpop_proof")));
}

/// RFC 9449 §11.1: a proof is accepted once, across replicas.
async fn rfc9449_11_1_a_replayed_proof_is_refused_on_every_replica(db: Database) {
    let env = [("CUSTOS_ISSUER", SHARED_ISSUER)];
    let first = Server::start_with(&db, &env).await;
    let second = Server::start_with(&db, &env).await;
    let (id, secret) = first.secret_client("client_secret_basic", "read").await;
    let endpoint = format!("{SHARED_ISSUER}/token");
    let key = ClientKey::generate("dpop");
    let proof = key.dpop_proof("POST", &endpoint, &json!({}));
    let (status, _, body) = token_with_proof(
        &first,
        &format!("{}/token", first.url),
        (&id, &secret),
        Some(&proof),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for server in [&first, &second] {
        let (status, _, body) = token_with_proof(
            server,
            &format!("{}/token", server.url),
            (&id, &secret),
            Some(&proof),
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_dpop_proof");
        assert!(body["error_description"].as_str().unwrap().contains("jti"));
    }
}

/// RFC 9449 §5.2: a client registered with `dpop_bound_access_tokens` gets
/// nothing without a proof.
async fn rfc9449_5_2_dpop_bound_clients_need_a_proof(db: Database) {
    let server = Server::start(&db).await;
    let (status, client) = server
        .register(json!({"grant_types": ["client_credentials"], "scope": "read", "dpop_bound_access_tokens": true}))
        .await;
    assert_eq!(status, 201, "{client}");
    assert_eq!(client["dpop_bound_access_tokens"], true);
    let (id, secret) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let endpoint = server.endpoint("token_endpoint").await;
    let (status, _, body) = token_with_proof(&server, &endpoint, (id, secret), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_dpop_proof");
    let key = ClientKey::generate("dpop");
    let proof = key.dpop_proof("POST", &endpoint, &json!({}));
    let (status, _, body) = token_with_proof(&server, &endpoint, (id, secret), Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
}

/// RFC 9449 §8: with server nonces on, a proof without the current nonce
/// gets `use_dpop_nonce` and a `DPoP-Nonce` header; one with it succeeds
/// (and the answer carries the nonce to use next).
async fn rfc9449_8_server_nonces(db: Database) {
    let server = Server::start_with(&db, &[("CUSTOS_DPOP_NONCE", "true")]).await;
    let endpoint = server.endpoint("token_endpoint").await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let key = ClientKey::generate("dpop");
    let proof = key.dpop_proof("POST", &endpoint, &json!({}));
    let (status, headers, body) =
        token_with_proof(&server, &endpoint, (&id, &secret), Some(&proof)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "use_dpop_nonce");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let proof = key.dpop_proof("POST", &endpoint, &json!({"nonce": "made-up"}));
    let (status, _, body) =
        token_with_proof(&server, &endpoint, (&id, &secret), Some(&proof)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("use_dpop_nonce"))
    );
    let proof = key.dpop_proof("POST", &endpoint, &json!({"nonce": nonce}));
    let (status, headers, body) =
        token_with_proof(&server, &endpoint, (&id, &secret), Some(&proof)).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("dpop-nonce"));
}

on_both_engines!(
    rfc9449_5_a_proof_binds_the_token_to_its_key,
    rfc9449_4_3_proofs_are_held_to_the_request,
    rfc9449_11_1_a_replayed_proof_is_refused_on_every_replica,
    rfc9449_5_2_dpop_bound_clients_need_a_proof,
    rfc9449_8_server_nonces,
);
