//! Workload attestation through the real server (issue 7): trusted issuers
//! in the admin API, `federated_jwt` client authentication with Kubernetes
//! and GitHub Actions tokens, the JWT bearer grant selecting its client by
//! federated credentials (RFC 7523 §2.1), and `spiffe_jwt` with SPIRE
//! JWT-SVIDs (draft-ietf-oauth-spiffe-client-auth §3.1). The certificate
//! methods are in `mtls.rs`.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

const K8S: &str = "https://kubernetes.default.svc.cluster.local";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:prod:api";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const JWT_SPIFFE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";
const WORKLOAD: &str = "spiffe://example.org/ns/prod/sa/api";

static JTI: AtomicUsize = AtomicUsize::new(0);

fn fresh_jti() -> String {
    format!("jti-{}-{}", now(), JTI.fetch_add(1, Ordering::SeqCst))
}

/// The issuer identifier: the `aud` workload tokens are minted for.
async fn issuer_of(server: &Server) -> String {
    server.discovery().await["issuer"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `POST /admin/trusted-issuers`, which must succeed.
async fn trust(server: &Server, body: Value) -> Value {
    let (status, created) = server
        .admin(Method::POST, "/admin/trusted-issuers", Some(body))
        .await;
    assert_eq!(status, 201, "{created}");
    created
}

/// An OIDC issuer whose keys are `key`'s, given inline.
async fn trust_oidc(server: &Server, issuer: &str, key: &ClientKey, extra: Value) -> Value {
    let mut body = json!({"kind": "oidc", "issuer": issuer, "jwks": {"keys": [key.public_jwk]}});
    for (name, value) in extra.as_object().into_iter().flatten() {
        body[name] = value.clone();
    }
    trust(server, body).await
}

/// A SPIFFE bundle (a JWK Set) whose one JWT-SVID authority is `key`.
fn jwt_svid_bundle(key: &ClientKey) -> Value {
    let mut jwk = key.public_jwk.clone();
    jwk["use"] = json!("jwt-svid");
    jwk.as_object_mut().unwrap().remove("alg");
    json!({"keys": [jwk], "spiffe_sequence": 1, "spiffe_refresh_hint": 300})
}

/// `GET /admin/trusted-issuers`, which must succeed.
async fn listed_issuers(server: &Server) -> Value {
    let (status, body) = server
        .admin(Method::GET, "/admin/trusted-issuers", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Registers a client, which must succeed; its id.
async fn register_ok(server: &Server, metadata: Value) -> String {
    let (status, body) = server.register(metadata).await;
    assert_eq!(status, 201, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

/// A `federated_jwt` client_credentials client for `credentials`.
async fn federated_client(server: &Server, credentials: Value) -> String {
    register_ok(
        server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": credentials}),
    )
    .await
}

/// A Kubernetes projected service-account token's claims (kube-apiserver's
/// shape) for `aud`, one hour long.
fn kubernetes_claims(aud: &str, sub: &str, namespace: &str) -> Value {
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
fn github_claims(aud: &str, repository: &str) -> Value {
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
fn svid_claims(sub: &str, aud: Value) -> Value {
    json!({"aud": aud, "exp": now() + 300, "iat": now(), "sub": sub})
}

async fn token(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let endpoint = server.endpoint("token_endpoint").await;
    let (status, _, body) = server.post_form(&endpoint, None, form).await;
    (status, body)
}

/// client_credentials authenticated by a federated token.
async fn federated_token(server: &Server, client_id: &str, assertion: &str) -> (u16, Value) {
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
async fn spiffe_token(server: &Server, client_id: Option<&str>, svid: &str) -> (u16, Value) {
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
async fn bearer_grant(server: &Server, assertion: &str, client_id: Option<&str>) -> (u16, Value) {
    let mut form = vec![("grant_type", GRANT_JWT_BEARER), ("assertion", assertion)];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    token(server, &form).await
}

/// The claims of the access token in a successful token response.
fn access_claims(status: u16, body: &Value) -> Value {
    assert_eq!(status, 200, "{body}");
    jwt_parts(body["access_token"].as_str().unwrap()).1
}

#[track_caller]
fn assert_refused(got: (u16, Value), status: u16, error: &str, case: &str) {
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

// --- 1. Admin API and discovery -------------------------------------------

async fn admin_trusted_issuers_are_created_listed_and_deleted(db: Database) {
    let server = Server::start(&db).await;
    let key = ClientKey::generate("k8s-1");
    let oidc = trust_oidc(&server, K8S, &key, json!({})).await;
    let oidc_id = oidc["id"].as_str().unwrap().to_owned();
    assert!(oidc_id.starts_with("ti_"), "{oidc}");
    assert_eq!(oidc["kind"], "oidc");
    assert_eq!(oidc["issuer"], K8S);
    assert_eq!(oidc["max_token_lifetime"], 7200, "the default lifetime");
    assert_eq!(oidc["single_use"], false, "reusable by default");
    assert_eq!(oidc["jwks"]["keys"][0]["x"], key.public_jwk["x"]);
    assert!(oidc["created_at"].is_number());

    let spire = ClientKey::generate("spire-1");
    let spiffe = trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    assert_eq!(spiffe["kind"], "spiffe");
    assert_eq!(spiffe["trust_domain"], "example.org");
    assert_eq!(spiffe["bundle"]["keys"][0]["use"], "jwt-svid");
    let spiffe_id = spiffe["id"].as_str().unwrap().to_owned();

    let listed = listed_issuers(&server).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(ids.contains(&oidc_id.as_str()) && ids.contains(&spiffe_id.as_str()));

    let (status, body) = server
        .admin(
            Method::DELETE,
            &format!("/admin/trusted-issuers/{oidc_id}"),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = server
        .admin(
            Method::DELETE,
            &format!("/admin/trusted-issuers/{oidc_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "deleted once: {body}");
    assert!(body["error_description"].is_string(), "{body}");
    let listed = listed_issuers(&server).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], spiffe_id.as_str());

    let events = server.events("?type=trusted_issuer.created").await;
    assert_eq!(events.len(), 2, "{events:?}");
    let events = server.events("?type=trusted_issuer.deleted").await;
    assert_eq!(events.len(), 1, "{events:?}");
}

async fn admin_trusted_issuers_refuse_invalid_bodies_with_400_and_duplicates_with_409(
    db: Database,
) {
    let server = Server::start(&db).await;
    let key = ClientKey::generate("k");
    let jwks = json!({"keys": [key.public_jwk]});
    let bundle = jwt_svid_bundle(&key);
    for (body, case) in [
        (json!({"kind": "oidc"}), "an oidc issuer needs issuer"),
        (
            json!({"kind": "oidc", "issuer": "http://k8s.example"}),
            "the issuer must be https",
        ),
        (
            json!({"kind": "oidc", "issuer": "https://a.example", "jwks": jwks, "jwks_uri": "https://a.example/k"}),
            "jwks or jwks_uri, not both",
        ),
        (
            json!({"kind": "oidc", "issuer": "https://a.example", "jwks": {"keys": "no"}}),
            "jwks must be a JWK Set",
        ),
        (
            json!({"kind": "oidc", "issuer": "https://a.example", "max_token_lifetime": 0}),
            "max_token_lifetime at least 1",
        ),
        (
            json!({"kind": "oidc", "issuer": "https://a.example", "max_token_lifetime": 86_401}),
            "max_token_lifetime at most a day",
        ),
        (
            json!({"kind": "oidc", "issuer": "https://a.example", "single_use": "yes"}),
            "single_use is a boolean",
        ),
        (
            json!({"kind": "spiffe", "trust_domain": "example.org"}),
            "a trust domain needs a bundle or an endpoint",
        ),
        (
            json!({"kind": "spiffe", "trust_domain": "Example.org", "bundle": bundle}),
            "a trust domain is lowercase",
        ),
        (
            json!({"kind": "spiffe", "trust_domain": "spiffe://example.org", "bundle": bundle}),
            "a trust domain is a bare name",
        ),
        (
            json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": {"keys": [{"kty": "EC", "use": "jwt-svid", "crv": "P-256", "x": "AA", "y": "AA"}]}}),
            "a jwt-svid key has a kid",
        ),
        (json!({"kind": "saml"}), "an unknown kind"),
        (json!([1, 2]), "not an object"),
    ] {
        let (status, body) = server
            .admin(Method::POST, "/admin/trusted-issuers", Some(body))
            .await;
        assert_refused((status, body), 400, "invalid_request", case);
    }
    let response = server
        .http
        .post(format!("{}/admin/trusted-issuers", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a body that is not JSON");

    trust_oidc(&server, K8S, &key, json!({})).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/trusted-issuers",
            Some(json!({"kind": "oidc", "issuer": K8S, "jwks": jwks})),
        )
        .await;
    assert_eq!(status, 409, "the same issuer twice: {body}");
    assert!(body["error_description"].is_string(), "{body}");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": bundle}),
    )
    .await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/trusted-issuers",
            Some(json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": bundle})),
        )
        .await;
    assert_eq!(status, 409, "the same trust domain twice: {body}");
    let listed = listed_issuers(&server).await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

async fn admin_trusted_issuers_require_the_admin_token(db: Database) {
    let server = Server::start(&db).await;
    let key = ClientKey::generate("k");
    let created = trust_oidc(&server, K8S, &key, json!({})).await;
    let id = created["id"].as_str().unwrap();
    let body = json!({"kind": "oidc", "issuer": GITHUB, "jwks": {"keys": [key.public_jwk]}});
    for token in [None, Some("wrong-token")] {
        let url = |path: &str| format!("{}{path}", server.url);
        let with = |request: reqwest::RequestBuilder| match token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let requests = [
            with(server.http.post(url("/admin/trusted-issuers"))).json(&body),
            with(server.http.get(url("/admin/trusted-issuers"))),
            with(
                server
                    .http
                    .delete(url(&format!("/admin/trusted-issuers/{id}"))),
            ),
        ];
        for request in requests {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "token {token:?}");
        }
    }
    let listed = listed_issuers(&server).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "nothing was created or deleted: {listed}"
    );
}

async fn discovery_lists_workload_methods_and_the_jwt_bearer_grant(db: Database) {
    let server = Server::start(&db).await;
    let doc = server.discovery().await;
    let methods: Vec<&str> = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for method in ["federated_jwt", "spiffe_jwt"] {
        assert!(methods.contains(&method), "{method} in {methods:?}");
    }
    for method in [
        "tls_client_auth",
        "self_signed_tls_client_auth",
        "spiffe_x509",
    ] {
        assert!(
            !methods.contains(&method),
            "{method} needs CUSTOS_TLS_CLIENT_CA: {methods:?}"
        );
    }
    assert!(doc
        .get("tls_client_certificate_bound_access_tokens")
        .is_none());
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(GRANT_JWT_BEARER)), "{grants:?}");
    // Registration follows the table: no mTLS method without client CAs.
    let (status, body) = server
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth",
                         "tls_client_auth_subject_dn": "CN=api"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{body}"
    );
}

// --- 2. federated_jwt ------------------------------------------------------

async fn federated_jwt_kubernetes_token_authenticates_its_client_and_is_reusable(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let id = federated_client(
        &server,
        json!([{"issuer": K8S, "subject": SERVICE_ACCOUNT,
                "claims": {"/kubernetes.io/namespace": "prod"}}]),
    )
    .await;
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let (status, body) = federated_token(&server, &id, &projected).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "federated_jwt", "attested_id": format!("{K8S}#{SERVICE_ACCOUNT}")})
    );
    assert!(claims.get("cnf").is_none(), "no certificate, no binding");
    // Workloads reuse a projected token until it nears expiry.
    let (status, body) = federated_token(&server, &id, &projected).await;
    assert_eq!(status, 200, "the same token again: {body}");
    // The token endpoint URL is an accepted audience too (RFC 7523 §3).
    let endpoint = server.endpoint("token_endpoint").await;
    let for_endpoint = key.assertion(&kubernetes_claims(&endpoint, SERVICE_ACCOUNT, "prod"));
    let (status, body) = federated_token(&server, &id, &for_endpoint).await;
    assert_eq!(status, 200, "aud = token endpoint: {body}");

    let events = server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 3, "{events:?}");
}

async fn federated_jwt_refuses_tokens_that_do_not_match_the_credential(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let id = federated_client(
        &server,
        json!([{"issuer": K8S, "subject": SERVICE_ACCOUNT,
                "claims": {"/kubernetes.io/namespace": "prod"}}]),
    )
    .await;
    let good = kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod");
    let (status, body) = federated_token(&server, &id, &key.assertion(&good)).await;
    assert_eq!(status, 200, "the control case: {body}");

    let mut expired = good.clone();
    expired["iat"] = json!(now() - 3_700);
    expired["nbf"] = json!(now() - 3_700);
    expired["exp"] = json!(now() - 100);
    let mut not_yet = good.clone();
    not_yet["nbf"] = json!(now() + 600);
    let mut too_long = good.clone();
    too_long["exp"] = json!(now() + 3 * 3_600);
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut other_issuer = good.clone();
    other_issuer["iss"] = json!("https://evil.example");
    let cases = [
        (
            kubernetes_claims(&issuer, SERVICE_ACCOUNT, "dev"),
            "another namespace",
        ),
        (
            kubernetes_claims(&issuer, "system:serviceaccount:prod:web", "prod"),
            "another service account",
        ),
        (
            kubernetes_claims("https://other-as.example", SERVICE_ACCOUNT, "prod"),
            "minted for another audience",
        ),
        (expired, "expired"),
        (not_yet, "not valid yet"),
        (too_long, "longer than the issuer's maximum lifetime"),
        (no_exp, "without exp"),
        (other_issuer, "from an issuer the client does not list"),
    ];
    for (claims, case) in cases {
        let got = federated_token(&server, &id, &key.assertion(&claims)).await;
        assert_refused(got, 401, "invalid_client", case);
    }
    // The right claims, signed by a key the issuer does not publish.
    let stranger = ClientKey::generate("k8s-1");
    let got = federated_token(&server, &id, &stranger.assertion(&good)).await;
    assert_refused(got, 401, "invalid_client", "signed by another key");
    let unknown_kid = ClientKey::generate("k8s-2");
    let got = federated_token(&server, &id, &unknown_kid.assertion(&good)).await;
    assert_refused(got, 401, "invalid_client", "signed by an unknown kid");
    // Garbage is not a token.
    let got = federated_token(&server, &id, "not.a.jwt").await;
    assert_refused(got, 401, "invalid_client", "not a JWT");

    // A client listing an issuer nobody trusts.
    let untrusted = "https://untrusted-cluster.example";
    let loose = federated_client(
        &server,
        json!([{"issuer": untrusted, "subject": SERVICE_ACCOUNT}]),
    )
    .await;
    let mut claims = good.clone();
    claims["iss"] = json!(untrusted);
    let got = federated_token(&server, &loose, &key.assertion(&claims)).await;
    assert_refused(got, 401, "invalid_client", "an issuer that is not trusted");

    // A trusted issuer deleted: its tokens stop working on this replica.
    let listed = listed_issuers(&server).await;
    let ti = listed[0]["id"].as_str().unwrap();
    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("/admin/trusted-issuers/{ti}"),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let got = federated_token(&server, &id, &key.assertion(&good)).await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "the issuer is no longer trusted",
    );
}

async fn federated_jwt_a_single_use_issuer_accepts_each_token_once(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({"single_use": true})).await;
    let id = federated_client(
        &server,
        json!([{"issuer": K8S, "subject": SERVICE_ACCOUNT}]),
    )
    .await;
    let claims = kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod");
    let projected = key.assertion(&claims);
    let (status, body) = federated_token(&server, &id, &projected).await;
    assert_eq!(status, 200, "first use: {body}");
    let got = federated_token(&server, &id, &projected).await;
    assert_refused(got, 401, "invalid_client", "second use");
    let mut fresh = claims.clone();
    fresh["jti"] = json!(fresh_jti());
    let (status, body) = federated_token(&server, &id, &key.assertion(&fresh)).await;
    assert_eq!(status, 200, "another jti: {body}");
    let mut without = claims;
    without.as_object_mut().unwrap().remove("jti");
    let got = federated_token(&server, &id, &key.assertion(&without)).await;
    assert_refused(got, 401, "invalid_client", "single use needs a jti");
}

async fn federated_jwt_github_actions_token_must_meet_the_repository_condition(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("gh-1");
    trust_oidc(&server, GITHUB, &key, json!({"max_token_lifetime": 900})).await;
    let id = federated_client(
        &server,
        json!([{"issuer": GITHUB, "subject": "repo:acme/api:environment:prod",
                "claims": {"repository": "acme/api", "ref": "refs/heads/main"}}]),
    )
    .await;
    let (status, body) = federated_token(
        &server,
        &id,
        &key.assertion(&github_claims(&issuer, "acme/api")),
    )
    .await;
    let claims = access_claims(status, &body);
    assert_eq!(
        claims["client_auth"]["attested_id"],
        format!("{GITHUB}#repo:acme/api:environment:prod")
    );
    let got = federated_token(
        &server,
        &id,
        &key.assertion(&github_claims(&issuer, "acme/fork")),
    )
    .await;
    assert_refused(got, 401, "invalid_client", "another repository");
    let mut branch = github_claims(&issuer, "acme/api");
    branch["ref"] = json!("refs/heads/feature");
    let got = federated_token(&server, &id, &key.assertion(&branch)).await;
    assert_refused(got, 401, "invalid_client", "another branch");
    let mut long = github_claims(&issuer, "acme/api");
    long["exp"] = json!(now() + 3_600);
    let got = federated_token(&server, &id, &key.assertion(&long)).await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "longer than the issuer's max_token_lifetime",
    );

    // A credential with its own audience: the token must name that one.
    let scoped = federated_client(
        &server,
        json!([{"issuer": GITHUB, "subject": "repo:acme/api:environment:prod",
                "audience": "custos-prod"}]),
    )
    .await;
    let (status, body) = federated_token(
        &server,
        &scoped,
        &key.assertion(&github_claims("custos-prod", "acme/api")),
    )
    .await;
    assert_eq!(status, 200, "the credential's audience: {body}");
    let got = federated_token(
        &server,
        &scoped,
        &key.assertion(&github_claims("custos-staging", "acme/api")),
    )
    .await;
    assert_refused(got, 401, "invalid_client", "another audience");
}

async fn federated_jwt_is_only_for_clients_registered_with_it(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    // A private_key_jwt client whose key is the cluster's: the federated
    // token is not its client assertion (wrong iss, sub and no jti rule).
    let (status, body) = server
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                         "jwks": {"keys": [key.public_jwk]}}))
        .await;
    assert_eq!(status, 201, "{body}");
    let pkj = body["client_id"].as_str().unwrap().to_owned();
    let got = federated_token(&server, &pkj, &projected).await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a private_key_jwt client given a federated token",
    );
    // A secret client cannot switch to a federated token.
    let (secret_id, _) = server.secret_client("client_secret_basic", "").await;
    let got = federated_token(&server, &secret_id, &projected).await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a client_secret_basic client given a federated token",
    );
}

// --- 3. The JWT bearer grant (RFC 7523 §2.1) ---------------------------------

async fn jwt_bearer_grant_selects_the_client_listing_iss_and_sub(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let id = register_ok(
        &server,
        json!({"grant_types": [GRANT_JWT_BEARER], "token_endpoint_auth_method": "federated_jwt",
               "scope": "read write",
               "federated_credentials": [{"issuer": K8S, "subject": SERVICE_ACCOUNT}]}),
    )
    .await;
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let (status, body) = bearer_grant(&server, &projected, None).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["sub"], id.as_str(), "the token is the client's own");
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "federated_jwt", "attested_id": format!("{K8S}#{SERVICE_ACCOUNT}")})
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    // Reusable, and scope narrows as for client credentials.
    let (status, body) = token(
        &server,
        &[
            ("grant_type", GRANT_JWT_BEARER),
            ("assertion", &projected),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("read")),
        "{body}"
    );
    let got = token(
        &server,
        &[
            ("grant_type", GRANT_JWT_BEARER),
            ("assertion", &projected),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_refused(got, 400, "invalid_scope", "a scope the client lacks");

    let events = server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["grant_type"] == GRANT_JWT_BEARER && e["result"] == "success"));
    let refused = server
        .events(&format!("?client_id={id}&type=token.refused"))
        .await;
    assert_eq!(refused.len(), 1, "{refused:?}");
}

async fn jwt_bearer_grant_refuses_unlisted_ambiguous_unregistered_and_bad_assertions(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let credential = json!([{"issuer": K8S, "subject": SERVICE_ACCOUNT}]);
    let first = register_ok(
        &server,
        json!({"grant_types": [GRANT_JWT_BEARER], "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": credential}),
    )
    .await;
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let (status, body) = bearer_grant(&server, &projected, None).await;
    assert_eq!(access_claims(status, &body)["sub"], first.as_str());

    // Nobody lists this service account.
    let nobody = key.assertion(&kubernetes_claims(
        &issuer,
        "system:serviceaccount:prod:nobody",
        "prod",
    ));
    assert_refused(
        bearer_grant(&server, &nobody, None).await,
        400,
        "invalid_grant",
        "no client lists iss and sub",
    );

    // A second client lists the same identity: the request must choose.
    let second = register_ok(
        &server,
        json!({"grant_types": [GRANT_JWT_BEARER, "client_credentials"],
               "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": credential}),
    )
    .await;
    assert_refused(
        bearer_grant(&server, &projected, None).await,
        400,
        "invalid_grant",
        "two clients list iss and sub",
    );
    // A token that does not verify learns nothing of who is registered:
    // the same answer as for an identity nobody lists.
    let forged = ClientKey::generate("k8s-1").assertion(&kubernetes_claims(
        &issuer,
        "system:serviceaccount:prod:api",
        "prod",
    ));
    let (status, forged_body) = bearer_grant(&server, &forged, None).await;
    let (_, nobody_body) = bearer_grant(&server, &nobody, None).await;
    assert_eq!(status, 400);
    assert_eq!(
        forged_body["error_description"], nobody_body["error_description"],
        "a forged token cannot tell registered identities from unknown ones"
    );
    let (status, body) = bearer_grant(&server, &projected, Some(&second)).await;
    assert_eq!(
        access_claims(status, &body)["sub"],
        second.as_str(),
        "client_id chooses"
    );
    let (status, body) = bearer_grant(&server, &projected, Some(&first)).await;
    assert_eq!(access_claims(status, &body)["sub"], first.as_str());
    assert_refused(
        bearer_grant(&server, &projected, Some("someone-else")).await,
        400,
        "invalid_grant",
        "client_id of a client that does not list it",
    );
    // A disabled client lists nothing: the first is alone again.
    let (status, body) = server
        .admin(Method::DELETE, &format!("/admin/clients/{second}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = bearer_grant(&server, &projected, None).await;
    assert_eq!(access_claims(status, &body)["sub"], first.as_str());
    assert_refused(
        bearer_grant(&server, &projected, Some(&second)).await,
        400,
        "invalid_grant",
        "client_id of a disabled client",
    );

    // Listed by a client that did not register the grant.
    let batch = "system:serviceaccount:prod:batch";
    register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": [{"issuer": K8S, "subject": batch}]}),
    )
    .await;
    let batch_token = key.assertion(&kubernetes_claims(&issuer, batch, "prod"));
    assert_refused(
        bearer_grant(&server, &batch_token, None).await,
        400,
        "unauthorized_client",
        "the client did not register the jwt-bearer grant",
    );

    // Bad assertions for a listed identity.
    let stranger = ClientKey::generate("k8s-1");
    let forged = stranger.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let mut expired = kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod");
    expired["iat"] = json!(now() - 3_700);
    expired["exp"] = json!(now() - 100);
    let other_aud = kubernetes_claims("https://other-as.example", SERVICE_ACCOUNT, "prod");
    let mut no_iss = kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod");
    no_iss.as_object_mut().unwrap().remove("iss");
    for (assertion, case) in [
        (forged, "signed by another key"),
        (key.assertion(&expired), "expired"),
        (key.assertion(&other_aud), "for another audience"),
        (key.assertion(&no_iss), "without iss"),
        ("not-a-jwt".to_owned(), "not a JWT"),
    ] {
        assert_refused(
            bearer_grant(&server, &assertion, Some(&first)).await,
            400,
            "invalid_grant",
            case,
        );
    }
    let got = token(&server, &[("grant_type", GRANT_JWT_BEARER)]).await;
    assert_refused(got, 400, "invalid_request", "without assertion");

    let issued = server
        .events(&format!("?client_id={first}&type=token.issued"))
        .await;
    assert_eq!(issued.len(), 3, "{issued:?}");
    assert!(issued.iter().all(|e| e["grant_type"] == GRANT_JWT_BEARER));
}

async fn jwt_bearer_grant_with_client_authentication_holds_the_assertion_to_that_client(
    db: Database,
) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let (status, body) = server
        .register(json!({"grant_types": [GRANT_JWT_BEARER], "token_endpoint_auth_method": "client_secret_basic",
                         "federated_credentials": [{"issuer": K8S, "subject": SERVICE_ACCOUNT}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let form = [("grant_type", GRANT_JWT_BEARER), ("assertion", &projected)];
    let (status, body) = server.token_basic(&id, &secret, &form).await;
    assert_eq!(access_claims(status, &body)["sub"], id.as_str());
    let (status, body) = server.token_basic(&id, "wrong", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let other = key.assertion(&kubernetes_claims(
        &issuer,
        "system:serviceaccount:prod:web",
        "prod",
    ));
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[("grant_type", GRANT_JWT_BEARER), ("assertion", &other)],
        )
        .await;
    assert_refused(
        (status, body),
        400,
        "invalid_grant",
        "an assertion the authenticated client does not list",
    );
}

// --- 4. spiffe_jwt -----------------------------------------------------------

async fn spiffe_jwt_svid_authenticates_a_client_registered_for_its_id(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let spire = ClientKey::generate("spire-1");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    let id = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!([issuer])));
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "spiffe_jwt", "attested_id": WORKLOAD})
    );
    // SVIDs are reused until they near expiry.
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    assert_eq!(status, 200, "the same SVID again: {body}");
    // A plain string aud, and the issuer with a trailing slash.
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!(issuer)));
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    assert_eq!(status, 200, "aud as a string: {body}");
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!([format!("{issuer}/")])));
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    assert_eq!(status, 200, "aud with a trailing slash: {body}");

    let events = server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 4, "{events:?}");
}

async fn spiffe_jwt_a_spiffe_id_as_client_id_selects_its_client(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let spire = ClientKey::generate("spire-1");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    let broad = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let exact = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/sa/billing"}),
    )
    .await;
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!([issuer])));
    let (status, body) = spiffe_token(&server, Some(WORKLOAD), &svid).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], broad.as_str());
    assert_eq!(claims["sub"], broad.as_str());
    assert_eq!(claims["client_auth"]["attested_id"], WORKLOAD);
    // Without client_id the SVID's sub names the client.
    let (status, body) = spiffe_token(&server, None, &svid).await;
    assert_eq!(access_claims(status, &body)["client_id"], broad.as_str());
    // The audit trail names the client, not the SPIFFE ID it was asked by.
    let events = server
        .events(&format!("?client_id={broad}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    // The exact registration wins over the /* one.
    let billing = "spiffe://example.org/ns/prod/sa/billing";
    let svid = spire.assertion(&svid_claims(billing, json!([issuer])));
    let (status, body) = spiffe_token(&server, Some(billing), &svid).await;
    assert_eq!(access_claims(status, &body)["client_id"], exact.as_str());
    // The client_id must be the SVID's own ID.
    let got = spiffe_token(&server, Some(WORKLOAD), &svid).await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "client_id is another SPIFFE ID than the SVID's",
    );
    // A SPIFFE ID no client is registered for.
    let stray = "spiffe://example.org/ns/dev/sa/api";
    let svid = spire.assertion(&svid_claims(stray, json!([issuer])));
    let got = spiffe_token(&server, Some(stray), &svid).await;
    assert_refused(got, 401, "invalid_client", "no client for this SPIFFE ID");
}

async fn spiffe_jwt_refuses_other_audiences_ids_trust_domains_and_keys(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let spire = ClientKey::generate("spire-1");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    let id = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let (status, body) = spiffe_token(
        &server,
        Some(&id),
        &spire.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_eq!(status, 200, "the control case: {body}");

    let mut expired = svid_claims(WORKLOAD, json!([issuer]));
    expired["iat"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    let mut no_exp = svid_claims(WORKLOAD, json!([issuer]));
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases = [
        (
            svid_claims(WORKLOAD, json!([issuer, "https://other.example"])),
            "aud with a second value (§3.1: the issuer and nothing else)",
        ),
        (
            svid_claims(WORKLOAD, json!(["https://other.example"])),
            "aud of another server",
        ),
        (
            svid_claims("spiffe://example.org/ns/dev/sa/api", json!([issuer])),
            "a SPIFFE ID outside the registered pattern",
        ),
        (
            svid_claims("spiffe://example.org/ns/prod", json!([issuer])),
            "the pattern's base itself (/* is strictly below)",
        ),
        (
            svid_claims("spiffe://example.org/ns/production/sa/api", json!([issuer])),
            "a prefix that is not a segment boundary",
        ),
        (expired, "expired"),
        (no_exp, "without exp"),
    ];
    for (claims, case) in cases {
        let got = spiffe_token(&server, Some(&id), &spire.assertion(&claims)).await;
        assert_refused(got, 401, "invalid_client", case);
    }
    let stranger = ClientKey::generate("spire-1");
    let got = spiffe_token(
        &server,
        Some(&id),
        &stranger.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "signed by a key not in the bundle",
    );
    let rotated = ClientKey::generate("spire-2");
    let got = spiffe_token(
        &server,
        Some(&id),
        &rotated.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(got, 401, "invalid_client", "a kid the bundle lacks");

    // A client of a trust domain nobody registered.
    let other = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://other.org/ns/prod/*"}),
    )
    .await;
    let got = spiffe_token(
        &server,
        Some(&other),
        &spire.assertion(&svid_claims(
            "spiffe://other.org/ns/prod/sa/api",
            json!([issuer]),
        )),
    )
    .await;
    assert_refused(got, 401, "invalid_client", "a trust domain not registered");

    // A JWT-SVID is not a federated token, nor the other way round.
    let federated = federated_client(
        &server,
        json!([{"issuer": "https://spire.example.org", "subject": WORKLOAD}]),
    )
    .await;
    let got = spiffe_token(
        &server,
        Some(&federated),
        &spire.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a federated_jwt client presenting a jwt-spiffe assertion",
    );
    let got = federated_token(
        &server,
        &id,
        &spire.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a spiffe_jwt client presenting a jwt-bearer assertion",
    );
}

on_both_engines!(
    admin_trusted_issuers_are_created_listed_and_deleted,
    admin_trusted_issuers_refuse_invalid_bodies_with_400_and_duplicates_with_409,
    admin_trusted_issuers_require_the_admin_token,
    discovery_lists_workload_methods_and_the_jwt_bearer_grant,
    federated_jwt_kubernetes_token_authenticates_its_client_and_is_reusable,
    federated_jwt_refuses_tokens_that_do_not_match_the_credential,
    federated_jwt_a_single_use_issuer_accepts_each_token_once,
    federated_jwt_github_actions_token_must_meet_the_repository_condition,
    federated_jwt_is_only_for_clients_registered_with_it,
    jwt_bearer_grant_selects_the_client_listing_iss_and_sub,
    jwt_bearer_grant_refuses_unlisted_ambiguous_unregistered_and_bad_assertions,
    jwt_bearer_grant_with_client_authentication_holds_the_assertion_to_that_client,
    spiffe_jwt_svid_authenticates_a_client_registered_for_its_id,
    spiffe_jwt_a_spiffe_id_as_client_id_selects_its_client,
    spiffe_jwt_refuses_other_audiences_ids_trust_domains_and_keys,
);
