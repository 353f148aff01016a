use super::*;
use crate::test_keys::{test_key, TestKey};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const NOW: i64 = 1_790_000_000;

fn key(kid: &str) -> TestKey {
    test_key(kid)
}

fn sign(key: &TestKey, kid: &str, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

/// A Kubernetes projected service-account token (kube-apiserver's claims).
fn kubernetes_claims() -> Value {
    json!({
        "aud": ["https://custos.example"],
        "exp": NOW + 3_607,
        "iat": NOW,
        "nbf": NOW,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "jti": "8f0c5f2e-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
        "kubernetes.io": {
            "namespace": "prod",
            "node": {"name": "node-1", "uid": "2b9f0a50-6a1c-4f3e-8b67-1c2d3e4f5a6b"},
            "pod": {"name": "api-7d9c8b6f5-x2x4z", "uid": "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e"},
            "serviceaccount": {"name": "api", "uid": "c3d4e5f6-a7b8-4c9d-8e0f-2a3b4c5d6e7f"},
            "warnafter": NOW + 3_000
        },
        "sub": "system:serviceaccount:prod:api"
    })
}

/// A GitHub Actions OIDC token (token.actions.githubusercontent.com).
fn github_claims() -> Value {
    json!({
        "jti": "example-id",
        "sub": "repo:acme/api:environment:prod",
        "environment": "prod",
        "aud": "https://custos.example",
        "ref": "refs/heads/main",
        "sha": "example-sha",
        "repository": "acme/api",
        "repository_owner": "acme",
        "actor_id": "12",
        "repository_visibility": "private",
        "repository_id": "74",
        "repository_owner_id": "65",
        "run_id": "example-run-id",
        "run_number": "10",
        "run_attempt": "2",
        "runner_environment": "github-hosted",
        "actor": "octocat",
        "workflow": "example-workflow",
        "head_ref": "",
        "base_ref": "",
        "event_name": "workflow_dispatch",
        "ref_type": "branch",
        "job_workflow_ref": "acme/api/.github/workflows/deploy.yml@refs/heads/main",
        "iss": "https://token.actions.githubusercontent.com",
        "nbf": NOW - 60,
        "exp": NOW + 300,
        "iat": NOW
    })
}

/// A SPIRE JWT-SVID: no iss unless configured, no jti, aud an array.
fn spire_claims() -> Value {
    json!({
        "aud": ["https://custos.example"],
        "exp": NOW + 300,
        "iat": NOW,
        "sub": "spiffe://example.org/ns/prod/sa/api"
    })
}

fn audiences() -> Vec<String> {
    vec![
        "https://custos.example".into(),
        "https://custos.example/token".into(),
    ]
}

fn rules<'a>(issuer: Option<&'a str>, audiences: &'a [String]) -> WorkloadJwtRules<'a> {
    WorkloadJwtRules {
        issuer,
        audiences,
        only_these_audiences: false,
        now: NOW,
        leeway: 30,
        max_lifetime: i64::from(DEFAULT_MAX_TOKEN_LIFETIME),
    }
}

#[test]
fn a_kubernetes_projected_token_verifies_with_its_nested_claims() {
    let k = key("k8s-1");
    let token = sign(&k, "k8s-1", None, &kubernetes_claims());
    let audiences = audiences();
    let verified = verify_workload_jwt(
        &token,
        &k.jwks.keys,
        &rules(
            Some("https://kubernetes.default.svc.cluster.local"),
            &audiences,
        ),
    )
    .unwrap();
    assert_eq!(verified.sub, "system:serviceaccount:prod:api");
    assert_eq!(verified.claims["kubernetes.io"]["namespace"], "prod");
    // Reusable: nothing here records the jti.
    assert!(verify_workload_jwt(
        &token,
        &k.jwks.keys,
        &rules(
            Some("https://kubernetes.default.svc.cluster.local"),
            &audiences
        )
    )
    .is_ok());
}

#[test]
fn a_github_actions_token_verifies() {
    let k = key("gh");
    let token = sign(&k, "gh", Some("JWT"), &github_claims());
    let audiences = audiences();
    let verified = verify_workload_jwt(
        &token,
        &k.jwks.keys,
        &rules(
            Some("https://token.actions.githubusercontent.com"),
            &audiences,
        ),
    )
    .unwrap();
    assert_eq!(verified.claims["repository"], "acme/api");
    assert_eq!(verified.jti.as_deref(), Some("example-id"));
}

#[test]
fn spiffe_jwt_svid_3_1_aud_must_be_the_issuer_and_nothing_else() {
    let k = key("spire");
    let audiences = vec!["https://custos.example".to_owned()];
    let mut only = rules(None, &audiences);
    only.only_these_audiences = true;
    let token = sign(&k, "spire", Some("JWT"), &spire_claims());
    let verified = verify_workload_jwt(&token, &k.jwks.keys, &only).unwrap();
    assert_eq!(verified.iss, None, "iss is optional on a JWT-SVID");
    let mut two = spire_claims();
    two["aud"] = json!(["https://custos.example", "https://other.example"]);
    let token = sign(&k, "spire", None, &two);
    assert!(verify_workload_jwt(&token, &k.jwks.keys, &only).is_err());
}

#[test]
fn rfc7523_3_wrong_issuer_audience_or_times_are_refused() {
    let k = key("k");
    let audiences = audiences();
    let iss = "https://kubernetes.default.svc.cluster.local";
    let check = |claims: Value| {
        let token = sign(&k, "k", None, &claims);
        verify_workload_jwt(&token, &k.jwks.keys, &rules(Some(iss), &audiences))
    };
    assert!(check(kubernetes_claims()).is_ok());
    let mut c = kubernetes_claims();
    c["iss"] = json!("https://evil.example");
    assert!(check(c).unwrap_err().contains("iss"));
    let mut c = kubernetes_claims();
    c["aud"] = json!(["https://other.example"]);
    assert!(check(c).unwrap_err().contains("aud"));
    let mut c = kubernetes_claims();
    c.as_object_mut().unwrap().remove("aud");
    assert!(check(c).is_err());
    let mut c = kubernetes_claims();
    c["exp"] = json!(NOW - 31);
    assert!(check(c).unwrap_err().contains("expired"));
    let mut c = kubernetes_claims();
    c.as_object_mut().unwrap().remove("exp");
    assert!(check(c).is_err());
    let mut c = kubernetes_claims();
    c["nbf"] = json!(NOW + 120);
    assert!(check(c).unwrap_err().contains("nbf"));
    let mut c = kubernetes_claims();
    c["iat"] = json!(NOW + 120);
    assert!(check(c).is_err());
    // Clock skew within the leeway is tolerated.
    let mut c = kubernetes_claims();
    c["nbf"] = json!(NOW + 20);
    assert!(check(c).is_ok());
    // Longer than the issuer allows.
    let mut c = kubernetes_claims();
    c["exp"] = json!(NOW + 30 * 86_400);
    assert!(check(c).unwrap_err().contains("maximum"));
}

#[test]
fn signatures_keys_algorithms_and_types_are_checked() {
    let k = key("k");
    let other = key("k");
    let audiences = audiences();
    let iss = Some("https://kubernetes.default.svc.cluster.local");
    let token = sign(&other, "k", None, &kubernetes_claims());
    assert!(
        verify_workload_jwt(&token, &k.jwks.keys, &rules(iss, &audiences))
            .unwrap_err()
            .contains("signature")
    );
    let token = sign(&k, "unknown-kid", None, &kubernetes_claims());
    assert!(
        verify_workload_jwt(&token, &k.jwks.keys, &rules(iss, &audiences))
            .unwrap_err()
            .contains("kid")
    );
    let token = sign(&k, "k", Some("at+jwt"), &kubernetes_claims());
    assert!(verify_workload_jwt(&token, &k.jwks.keys, &rules(iss, &audiences)).is_err());
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &kubernetes_claims(),
        &EncodingKey::from_secret(b"secret"),
    )
    .unwrap();
    assert!(
        verify_workload_jwt(&hs, &k.jwks.keys, &rules(iss, &audiences))
            .unwrap_err()
            .contains("asymmetric")
    );
    let huge = "a".repeat(MAX_WORKLOAD_JWT + 1);
    assert!(verify_workload_jwt(&huge, &k.jwks.keys, &rules(iss, &audiences)).is_err());
    assert!(verify_workload_jwt("not.a.jwt", &k.jwks.keys, &rules(iss, &audiences)).is_err());
}

#[test]
fn unverified_names_read_iss_and_sub() {
    let k = key("k");
    let token = sign(&k, "k", None, &kubernetes_claims());
    assert_eq!(
        unverified_issuer_and_subject(&token).unwrap(),
        (
            Some("https://kubernetes.default.svc.cluster.local".into()),
            "system:serviceaccount:prod:api".into()
        )
    );
    assert!(unverified_issuer_and_subject("garbage").is_err());
}

#[test]
fn trusted_issuers_are_validated() {
    let ok = validate_trusted_issuer(
        &json!({"kind": "oidc", "issuer": "https://token.actions.githubusercontent.com"}),
        false,
    )
    .unwrap();
    assert_eq!(ok.name(), "https://token.actions.githubusercontent.com");
    assert!(matches!(
        ok,
        TrustedIssuerConfig::Oidc {
            max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            single_use: false,
            id_jag: false,
            ..
        }
    ));
    for bad in [
        json!({"kind": "oidc"}),
        json!({"kind": "oidc", "issuer": "http://insecure.example"}),
        json!({"kind": "oidc", "issuer": "https://a.example", "jwks_uri": "https://a.example/k", "jwks": {"keys": []}}),
        json!({"kind": "oidc", "issuer": "https://a.example", "max_token_lifetime": 0}),
        json!({"kind": "oidc", "issuer": "https://a.example", "single_use": "yes"}),
        json!({"kind": "oidc", "issuer": "https://a.example", "id_jag": 1}),
        json!({"kind": "spiffe", "trust_domain": "Example.org", "bundle_endpoint_url": "https://b.example"}),
        json!({"kind": "spiffe", "trust_domain": "example.org"}),
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": {"keys": "no"}}),
        json!({"kind": "saml"}),
        json!([1]),
    ] {
        assert!(validate_trusted_issuer(&bad, false).is_err(), "{bad}");
    }
    assert!(validate_trusted_issuer(
        &json!({"kind": "oidc", "issuer": "http://127.0.0.1:9000"}),
        true
    )
    .is_ok());
    let spiffe = validate_trusted_issuer(
        &json!({"kind": "spiffe", "trust_domain": "example.org",
                 "bundle": {"keys": [], "spiffe_sequence": 1, "spiffe_refresh_hint": 300}}),
        false,
    )
    .unwrap();
    assert_eq!(spiffe.kind(), "spiffe");
}
