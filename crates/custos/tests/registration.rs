//! Dynamic client registration (RFC 7591) and management (RFC 7592).

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn rfc7591_3_2_1_response_carries_credentials_once(db: Database) {
    let server = Server::start(&db).await;
    let (status, body) = server
        .register(json!({"redirect_uris": ["https://app.example/cb"], "client_name": "App", "scope": "read", "x_unknown": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["token_endpoint_auth_method"], "client_secret_basic",
        "RFC 7591 default"
    );
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["client_secret_expires_at"], 0);
    assert!(
        body.get("x_unknown").is_none(),
        "unknown metadata is ignored"
    );
    let secret = body["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43, "256-bit secret, base64url");
    assert!(body["client_id_issued_at"].as_i64().unwrap() > 0);
    assert!(body["registration_client_uri"]
        .as_str()
        .unwrap()
        .starts_with(&server.url));

    let read = server
        .http
        .get(body["registration_client_uri"].as_str().unwrap())
        .bearer_auth(body["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let read: Value = read.json().await.unwrap();
    assert_eq!(read["client_id"], body["client_id"]);
    assert!(
        read.get("client_secret").is_none(),
        "the secret is shown once"
    );
    let rotated = read["registration_access_token"]
        .as_str()
        .expect("RFC 7592 section 3: REQUIRED in every client information response");
    assert_ne!(
        rotated,
        body["registration_access_token"].as_str().unwrap(),
        "a new token replaces the stored hash"
    );
}

async fn rfc7591_registration_requires_an_initial_access_token(db: Database) {
    let server = Server::start(&db).await;
    let endpoint = server.endpoint("registration_endpoint").await;
    let metadata = json!({"grant_types": ["client_credentials"]});
    let response = server
        .http
        .post(&endpoint)
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let response = server
        .http
        .post(&endpoint)
        .bearer_auth("wrong-token")
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/initial-access-tokens",
            Some(json!({"expires_in": 600})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let iat = body["initial_access_token"].as_str().unwrap();
    let response = server
        .http
        .post(&endpoint)
        .bearer_auth(iat)
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // A workload identity the client would authenticate as is the
    // administrator's to grant: an initial access token could otherwise
    // claim another workload's SPIFFE ID or federated token.
    for identity in [
        json!({"token_endpoint_auth_method": "spiffe_jwt", "spiffe_id": "spiffe://example.org/ns/prod/sa/api"}),
        json!({"token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": [{"issuer": "https://token.actions.githubusercontent.com",
                                          "subject": "repo:victim/api:environment:prod"}]}),
    ] {
        let mut body = identity.clone();
        body["grant_types"] = json!(["client_credentials"]);
        let response = server
            .http
            .post(&endpoint)
            .bearer_auth(iat)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{identity}");
        let refusal: serde_json::Value = response.json().await.unwrap();
        assert_eq!(refusal["error"], "invalid_client_metadata");
        assert!(
            refusal["error_description"]
                .as_str()
                .unwrap()
                .contains("admin token"),
            "{refusal}"
        );
        let response = server
            .http
            .post(&endpoint)
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{identity}");
    }
}

async fn oauth21_registration_refusals(db: Database) {
    let server = Server::start(&db).await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"grant_types": ["password"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["implicit"], "redirect_uris": ["https://a.example/cb"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://a.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://a.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://*.a.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["/relative/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "client_secret_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "https://a.example/cb"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
    ];
    for (metadata, error) in cases {
        let (status, body) = server.register(metadata.clone()).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{metadata}: {body}"
        );
        assert!(body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()));
    }
    let endpoint = server.endpoint("registration_endpoint").await;
    let response = server
        .http
        .post(&endpoint)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, _) = server
        .register(json!({"redirect_uris": ["http://127.0.0.1:9000/cb", "http://localhost/cb"]}))
        .await;
    assert_eq!(status, 201, "http is fine on loopback");
    let refused = server.events("?type=client.registration_refused").await;
    assert!(refused.len() >= 12);
}

async fn rfc7592_read_update_delete(db: Database) {
    let server = Server::start(&db).await;
    let (_, created) = server
        .register(json!({"grant_types": ["client_credentials"], "scope": "read write", "client_name": "before"}))
        .await;
    let uri = created["registration_client_uri"].as_str().unwrap();
    let id = created["client_id"].as_str().unwrap();
    let secret = created["client_secret"].as_str().unwrap();
    let mut rat = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = &server.http;

    let response = http.get(uri).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = http.get(uri).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer realm=\"custos\"",
        "RFC 6750 section 3.1: no error code when no credentials were sent"
    );

    // Every read issues a new registration access token; the old one dies.
    let read: Value = http
        .get(uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let previous = std::mem::replace(
        &mut rat,
        read["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let response = http.get(uri).bearer_auth(&previous).send().await.unwrap();
    assert_eq!(
        response.status(),
        401,
        "the previous registration access token stops working"
    );

    let update = json!({"client_id": id, "grant_types": ["client_credentials"], "scope": "read", "client_name": "after"});
    let response = http
        .put(uri)
        .bearer_auth(&rat)
        .json(&update)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["client_name"], "after");
    assert_eq!(updated["scope"], "read");
    rat = updated["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = server
        .token_basic(
            id,
            secret,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(status, 200, "the secret survives an update: {body}");

    let wrong_id = json!({"client_id": "other", "grant_types": ["client_credentials"]});
    let response = http
        .put(uri)
        .bearer_auth(&rat)
        .json(&wrong_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let removed_grant = json!({"client_id": id, "grant_types": ["password"]});
    let response = http
        .put(uri)
        .bearer_auth(&rat)
        .json(&removed_grant)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let response = http.delete(uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(response.status(), 204);
    let response = http.get(uri).bearer_auth(&rat).send().await.unwrap();
    assert_eq!(
        response.status(),
        401,
        "a deleted client's registration token is void"
    );
    let (status, _) = server
        .token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 401);
    let refused = server
        .events(&format!("?client_id={id}&type=client.management_refused"))
        .await;
    assert_eq!(
        refused.len(),
        6,
        "wrong, missing and stale tokens, two bad updates, a deleted client: {refused:?}"
    );
}

/// RFC 7592 through the registration access token may narrow a client,
/// never widen it (CONTRACT.md): more scope, a longer token lifetime, a
/// new grant type or redirect URI, a weaker method all need the admin API;
/// every accepted change is audited with what changed.
async fn rfc7592_self_management_never_widens(db: Database) {
    let server = Server::start(&db).await;
    let (_, created) = server
        .register(json!({
            "grant_types": ["client_credentials", "authorization_code"],
            "redirect_uris": ["https://app.example/cb"],
            "scope": "read write",
            "access_token_lifetime": 600,
        }))
        .await;
    let uri = created["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let mut rat = created["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let base = json!({
        "client_id": id,
        "grant_types": ["client_credentials", "authorization_code"],
        "redirect_uris": ["https://app.example/cb"],
        "scope": "read write",
        "access_token_lifetime": 600,
    });
    for (what, patch) in [
        ("scope", json!({"scope": "read write payroll:admin"})),
        ("lifetime", json!({"access_token_lifetime": 3600})),
        (
            "grant",
            json!({"grant_types": ["client_credentials", "authorization_code", "refresh_token"]}),
        ),
        (
            "redirect",
            json!({"redirect_uris": ["https://app.example/cb", "https://attacker.example/cb"]}),
        ),
        (
            "weaker method",
            json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}),
        ),
    ] {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let response = server
            .http
            .put(&uri)
            .bearer_auth(&rat)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "invalid_client_metadata", "{what}");
    }
    let read: Value = server
        .http
        .get(&uri)
        .bearer_auth(&rat)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["scope"], "read write", "nothing widened");
    assert_eq!(read["access_token_lifetime"], 600);
    rat = read["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut narrower = base.clone();
    narrower["scope"] = json!("read");
    narrower["access_token_lifetime"] = json!(60);
    let response = server
        .http
        .put(&uri)
        .bearer_auth(&rat)
        .json(&narrower)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let updated = server
        .events(&format!("?client_id={id}&type=client.updated"))
        .await;
    assert_eq!(updated.len(), 1, "{updated:?}");
    assert_eq!(updated[0]["scope"], "read");
    let reason = updated[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("access_token_lifetime") && reason.contains("scope"),
        "{reason}"
    );
    assert!(
        reason.contains("read write"),
        "the old scope is recorded: {reason}"
    );
    let refused = server
        .events(&format!("?client_id={id}&type=client.management_refused"))
        .await;
    assert_eq!(refused.len(), 5);
    assert!(!serde_json::to_string(&refused).unwrap().contains(&rat));
}

/// Dynamic registration stays for older clients (MCP deprecates it): with
/// an initial access token, redirect URIs keep one shape (at most 10, the
/// https ones on one host) and a network registers at most 10 clients a
/// minute; the admin token is not limited.
async fn registration_with_an_initial_access_token_is_limited(db: Database) {
    let server = Server::start(&db).await;
    let endpoint = server.endpoint("registration_endpoint").await;
    let (_, body) = server
        .admin(
            Method::POST,
            "/admin/initial-access-tokens",
            Some(json!({"expires_in": 600})),
        )
        .await;
    let iat = body["initial_access_token"].as_str().unwrap().to_owned();
    let register = |metadata: serde_json::Value, bearer: String| {
        let http = server.http.clone();
        let endpoint = endpoint.clone();
        async move {
            let response = http
                .post(&endpoint)
                .bearer_auth(bearer)
                .json(&metadata)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    let two_sites =
        json!({"redirect_uris": ["https://app.example/cb", "https://phish.example/cb"]});
    let (status, refusal) = register(two_sites.clone(), iat.clone()).await;
    assert_eq!(status, 400, "{refusal}");
    assert_eq!(refusal["error"], "invalid_redirect_uri");
    let many: Vec<String> = (0..11)
        .map(|i| format!("https://app.example/cb{i}"))
        .collect();
    let (status, refusal) = register(json!({"redirect_uris": many}), iat.clone()).await;
    assert_eq!(status, 400, "{refusal}");
    // One site, loopback and a native scheme: fine.
    let fine = json!({"redirect_uris": ["https://app.example/cb", "https://APP.example/other",
                                        "http://127.0.0.1/cb", "com.example.app:/cb"]});
    let (status, body) = register(fine.clone(), iat.clone()).await;
    assert_eq!(status, 201, "{body}");
    // The admin token registers what it wants.
    let (status, body) = register(two_sites, ADMIN_TOKEN.to_owned()).await;
    assert_eq!(status, 201, "{body}");
    for _ in 1..10 {
        let (status, body) = register(fine.clone(), iat.clone()).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, refusal) = register(fine.clone(), iat.clone()).await;
    assert_eq!(status, 429, "{refusal}");
    assert!(refusal["error_description"]
        .as_str()
        .unwrap()
        .contains("too many"));
    let (status, _) = register(fine, ADMIN_TOKEN.to_owned()).await;
    assert_eq!(status, 201);
}

on_both_engines!(
    registration_with_an_initial_access_token_is_limited,
    rfc7592_self_management_never_widens,
    rfc7591_3_2_1_response_carries_credentials_once,
    rfc7591_registration_requires_an_initial_access_token,
    oauth21_registration_refusals,
    rfc7592_read_update_delete,
);
