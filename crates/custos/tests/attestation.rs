//! Workload attestation through the real server (issue 7): trusted issuers
//! in the admin API, discovery, and `federated_jwt` client authentication
//! with Kubernetes and GitHub Actions tokens. The JWT bearer grant and
//! `spiffe_jwt` are in `workload_grants.rs`, the certificate methods in
//! `mtls.rs`; the tokens are made by `common::workload`.

mod common;
use common::workload::*;
use common::*;
use reqwest::Method;
use serde_json::json;

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
);
