//! Workload-attestation test support: trusted issuers, workload tokens
//! shaped like Kubernetes projected tokens, GitHub Actions OIDC tokens and
//! SPIRE JWT-SVIDs, and the token requests that present them.

use super::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const K8S: &str = "https://kubernetes.default.svc.cluster.local";
pub const GITHUB: &str = "https://token.actions.githubusercontent.com";
pub const SERVICE_ACCOUNT: &str = "system:serviceaccount:prod:api";
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub const JWT_SPIFFE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";
pub const WORKLOAD: &str = "spiffe://example.org/ns/prod/sa/api";

pub static JTI: AtomicUsize = AtomicUsize::new(0);

pub fn fresh_jti() -> String {
    format!("jti-{}-{}", now(), JTI.fetch_add(1, Ordering::SeqCst))
}

/// The issuer identifier: the `aud` workload tokens are minted for.
pub async fn issuer_of(server: &Server) -> String {
    server.discovery().await["issuer"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `POST /admin/trusted-issuers`, which must succeed.
pub async fn trust(server: &Server, body: Value) -> Value {
    let (status, created) = server
        .admin(Method::POST, "/admin/trusted-issuers", Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// An OIDC issuer whose keys are `key`'s, given inline.
pub async fn trust_oidc(server: &Server, issuer: &str, key: &ClientKey, extra: Value) -> Value {
    let mut body = json!({"kind": "oidc", "issuer": issuer, "jwks": {"keys": [key.public_jwk]}});
    for (name, value) in extra.as_object().into_iter().flatten() {
        body[name] = value.clone();
    }
    trust(server, body).await
}

/// A SPIFFE bundle (a JWK Set) whose one JWT-SVID authority is `key`.
pub fn jwt_svid_bundle(key: &ClientKey) -> Value {
    let mut jwk = key.public_jwk.clone();
    jwk["use"] = json!("jwt-svid");
    jwk.as_object_mut().unwrap().remove("alg");
    json!({"keys": [jwk], "spiffe_sequence": 1, "spiffe_refresh_hint": 300})
}

/// `GET /admin/trusted-issuers`, which must succeed.
pub async fn listed_issuers(server: &Server) -> Value {
    let (status, body) = server
        .admin(Method::GET, "/admin/trusted-issuers", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Registers a client, which must succeed; its id.
pub async fn register_ok(server: &Server, metadata: Value) -> String {
    let (status, body) = server.register(metadata).await;
    assert_eq!(status, 201, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// A `federated_jwt` client_credentials client for `credentials`.
pub async fn federated_client(server: &Server, credentials: Value) -> String {
    register_ok(
        server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": credentials}),
    )
    .await
}

/// A Kubernetes projected service-account token's claims (kube-apiserver's
/// shape) for `aud`, one hour long.
pub fn kubernetes_claims(aud: &str, sub: &str, namespace: &str) -> Value {
    let t = now();
    json!({
        "aud": [aud],
        "exp": t + 3_600,
        "iat": t,
        "nbf": t,
        "iss": K8S,
        "jti": fresh_jti(),
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "2b9f0a50-6a1c-4f3e-8b67-1c2d3e4f5a6b"},
            "pod": {"name": "api-7d9c8b6f5-x2x4z", "uid": "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"},
            "serviceaccount": {"name": "api", "uid": "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f"},
            "warnafter": t + 3_000
        },
        "sub": sub
    })
}

/// A GitHub Actions OIDC token's claims for `aud`.
pub fn github_claims(aud: &str, repository: &str) -> Value {
    let t = now();
    json!({
        "jti": fresh_jti(),
        "sub": "repo:acme/api:environment:prod",
        "environment": "prod",
        "aud": aud,
        "ref": "refs/heads/main",
        "sha": "d6f8ab1c0e2f4a3b5c7d9e1f0a2b4c6d8e0f1a3b",
        "repository": repository,
        "repository_owner": "acme",
        "repository_visibility": "private",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "deploy",
        "event_name": "workflow_dispatch",
        "ref_type": "branch",
        "job_workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
        "iss": GITHUB,
        "nbf": t - 60,
        "exp": t + 300,
        "iat": t
    })
}

/// A SPIRE JWT-SVID's claims: no `iss`, no `jti`, `aud` an array.
pub fn svid_claims(sub: &str, aud: Value) -> Value {
    json!({"aud": aud, "exp": now() + 300, "iat": now(), "sub": sub})
}

pub async fn token(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let endpoint = server.endpoint("token_endpoint").await;
    let (status, _, body) = server.post_form(&endpoint, None, form).await;
    (status, body)
}

/// client_credentials authenticated by a federated token.
pub async fn federated_token(server: &Server, client_id: &str, assertion: &str) -> (u16, Value) {
    token(
        server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// client_credentials authenticated by a JWT-SVID.
pub async fn spiffe_token(server: &Server, client_id: Option<&str>, svid: &str) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_SPIFFE),
        ("client_assertion", svid),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    token(server, &form).await
}

/// The JWT bearer grant without client authentication.
pub async fn bearer_grant(
    server: &Server,
    assertion: &str,
    client_id: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", GRANT_JWT_BEARER), ("assertion", assertion)];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    token(server, &form).await
}

/// The claims of the access token in a successful token response.
pub fn access_claims(status: u16, body: &Value) -> Value {
    assert_eq!(status, 200, "{body}");
    jwt_parts(body["access_token"].as_str().unwrap()).1
}

#[track_caller]
pub fn assert_refused(got: (u16, Value), status: u16, error: &str, case: &str) {
    let (got_status, body) = got;
    assert_eq!(
        (got_status, body["error"].as_str()),
        (status, Some(error)),
        "{case}: {body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{case}: a refusal says why: {body}"
    );
}
