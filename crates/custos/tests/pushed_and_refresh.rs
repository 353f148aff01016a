//! Pushed authorization requests (RFC 9126), remembered consent through the
//! admin API and CLI, and refresh rotation across replicas and within a
//! client's grace window — the authorization code flow's other half.

mod common;

use common::browser::{browser, param, pkce, query, PASSWORD, REDIRECT};
use common::flow::{public_flow, setup, Flow};
use common::{Database, Server, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

/// RFC 9126: a confidential client pushes its request, the browser carries
/// only `client_id` and `request_uri`; a client registered with
/// `require_pushed_authorization_requests` cannot skip it; a request_uri is
/// bound to its client and expires.
async fn rfc9126_pushed_authorization_requests(db: Database) {
    let flow = setup(
        &db,
        json!({"token_endpoint_auth_method": "client_secret_basic", "grant_types": ["authorization_code"],
               "redirect_uris": [REDIRECT], "scope": "read", "require_pushed_authorization_requests": true}),
    )
    .await;
    let discovery = flow.server.discovery().await;
    let par = discovery["pushed_authorization_request_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(discovery["require_pushed_authorization_requests"], false);
    let id = flow.client_id.clone();
    let secret = flow.registration["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (verifier, challenge) = pkce();

    // Not pushed: refused, at the client's redirect URI.
    let response = browser()
        .get(flow.authorization_url(&challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        param(&query(&location), "error").as_deref(),
        Some("invalid_request")
    );

    let push = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("response_type", "code".to_owned()),
            ("client_id", id.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "read".to_owned()),
            ("state", "pushed".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        form.extend(extra);
        form
    };
    let form = push(vec![]);
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, pushed) = flow
        .server
        .post_form(&par, Some((&id, &secret)), &borrowed)
        .await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // Unauthenticated or with a request_uri inside: refused.
    let (status, _, _) = flow.server.post_form(&par, None, &borrowed).await;
    assert_eq!(status, 401);
    let mut with_uri = borrowed.clone();
    with_uri.push(("request_uri", request_uri.as_str()));
    let (status, _, body) = flow
        .server
        .post_form(&par, Some((&id, &secret)), &with_uri)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Another client cannot use it.
    let mut stolen = url::Url::parse(&flow.authorize).unwrap();
    stolen
        .query_pairs_mut()
        .append_pair("client_id", "someone-else")
        .append_pair("request_uri", &request_uri);
    assert_eq!(
        browser()
            .get(stolen.as_str())
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let mut url = url::Url::parse(&flow.authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &id)
        .append_pair("request_uri", &request_uri);
    let location = flow.authorize(&browser(), url.as_str()).await;
    let params = query(&location);
    assert_eq!(param(&params, "state").as_deref(), Some("pushed"));
    let code = param(&params, "code").unwrap();
    let (status, _, tokens) = flow
        .server
        .post_form(
            &flow.token,
            Some((&id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.as_str()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
}

/// Remembered consent is listed and revoked through the admin API and the
/// CLI (the person is asked again); the inventory shows each client's
/// PKCE and DPoP requirements, redirect URIs and live refresh families.
async fn consents_and_inventory_through_the_admin_api_and_cli(db: Database) {
    let flow = public_flow(&db).await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser, &flow.authorization_url(&challenge, &[]))
        .await;
    let (status, _) = flow
        .redeem(&param(&query(&location), "code").unwrap(), &verifier)
        .await;
    assert_eq!(status, 200);

    let (status, inventory) = flow.server.admin(Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 200);
    let entry = inventory
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == flow.client_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["pkce_required"], true);
    assert_eq!(entry["dpop_bound_access_tokens"], false);
    assert_eq!(entry["redirect_uris"], json!([REDIRECT]));
    assert_eq!(entry["live_refresh_families"], 1);

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(common::binary())
            .args(["admin"])
            .args(args)
            .args(["--url", &flow.server.url])
            .env("CUSTOS_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let listed: Value =
        serde_json::from_str(&cli(&["consents", "list", "--username", "alice"])).unwrap();
    assert_eq!(listed[0]["client_id"], flow.client_id.as_str());
    assert_eq!(listed[0]["scope"], "read");
    cli(&["consents", "revoke", "alice", &flow.client_id]);
    let (status, listed) = flow
        .server
        .admin(Method::GET, "/admin/consents", None)
        .await;
    assert_eq!((status, listed), (200, json!([])));
    let (status, _) = flow
        .server
        .admin(
            Method::DELETE,
            &format!("/admin/consents/alice/{}", flow.client_id),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Asked again: the consent page, not a redirect.
    let page = browser
        .get(flow.authorization_url(&challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(r#"value="allow""#));
    assert_eq!(flow.server.events("?type=consent.revoked").await.len(), 1);
}

/// RFC 9700 §4.14.2 across replicas: 500 concurrent refreshes with one
/// refresh token, spread over two replicas: exactly one succeeds, and since
/// the others are reuses, the family — the winner's new token included —
/// is revoked. Decided by the database, not by either process.
async fn rfc9700_concurrent_refreshes_across_replicas_have_one_winner(db: Database) {
    let (first, second) = Server::replicas(&db).await;
    let (status, _) = first
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, client) = first
        .register(json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
                         "redirect_uris": [REDIRECT], "scope": "read"}))
        .await;
    let flow = Flow {
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        registration: client.clone(),
        authorize: format!("{}/authorize", first.url),
        token: format!("{}/token", first.url),
        server: first,
    };
    let tokens = flow.authorize_and_redeem().await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let endpoints = [flow.token.clone(), format!("{}/token", second.url)];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let (http, endpoint, refresh, client_id) = (
            http.clone(),
            endpoints[i % 2].clone(),
            refresh.clone(),
            flow.client_id.clone(),
        );
        tasks.spawn(async move {
            let response = http
                .post(endpoint)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", client_id.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let mut winners = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            200 => winners.push(body),
            400 => {
                assert_eq!(body["error"], "invalid_grant");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    assert_eq!(refused, 499);
    let newest = winners[0]["refresh_token"].as_str().unwrap();
    let (status, _) = flow.refresh(newest).await;
    assert_eq!(
        status, 400,
        "the reuses revoked the family, the winner's token too"
    );
    let _ = second;
}

/// A client that races its own refreshes may be given a grace window:
/// within it the rotated-out token still rotates, and the family lives.
async fn refresh_reuse_grace_window_per_client(db: Database) {
    let flow = setup(
        &db,
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read", "refresh_token_reuse_grace": 30}),
    )
    .await;
    assert_eq!(flow.registration["refresh_token_reuse_grace"], 30);
    let tokens = flow.authorize_and_redeem().await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, a) = flow.refresh(refresh).await;
    assert_eq!(status, 200);
    let (status, b) = flow.refresh(refresh).await;
    assert_eq!(status, 200, "within the grace window: {b}");
    for token in [&a, &b] {
        let (status, _) = flow.refresh(token["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200, "the family lives on");
    }
}

/// Refresh tokens issued before their keys led with the issue time (43
/// characters, stored under their SHA-256 alone) still work after the
/// upgrade: one rotates into a token of the new form, presenting it again
/// is a reuse that revokes its family, and revocation (RFC 7009) finds
/// one.
async fn refresh_tokens_of_the_earlier_format_still_work(db: Database) {
    use custos_service::crypto::{random_token, sha256};
    use custos_service::refresh_token_value::refresh_token_key;
    let flow = public_flow(&db).await;
    let store = custos_store::connect(&custos_store::ConnectOptions {
        url: db.url.clone(),
        max_connections: 2,
    })
    .await
    .unwrap();
    // Two authorizations, each given a token of the earlier form.
    let mut families = Vec::new();
    for _ in 0..2 {
        let tokens = flow.authorize_and_redeem().await;
        let current = tokens["refresh_token"].as_str().unwrap().to_owned();
        assert_eq!(current.len(), 54, "{current}");
        let stored = store
            .get_refresh_token(&refresh_token_key(&current))
            .await
            .unwrap()
            .expect("stored under its key");
        let earlier = random_token(32);
        assert_eq!(earlier.len(), 43);
        store
            .insert_refresh_token(&custos_store::RefreshTokenRecord {
                token_hash: sha256(&earlier),
                used_at: None,
                ..stored
            })
            .await
            .unwrap();
        families.push((current, earlier));
    }

    let (current, earlier) = &families[0];
    let (status, rotated) = flow.refresh(earlier).await;
    assert_eq!(status, 200, "{rotated}");
    let next = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(next.len(), 54, "rotated into the new form");
    let (status, body) = flow.refresh(earlier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for token in [next, current.as_str()] {
        let (status, _) = flow.refresh(token).await;
        assert_eq!(status, 400, "the reuse revoked the family");
    }

    let (current, earlier) = &families[1];
    let revocation = flow.server.endpoint("revocation_endpoint").await;
    let (status, _, _) = flow
        .server
        .post_form(
            &revocation,
            None,
            &[("token", earlier), ("client_id", &flow.client_id)],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = flow.refresh(current).await;
    assert_eq!(status, 400, "revoking the earlier token revoked its family");
    store.close().await;
}

on_both_engines!(
    rfc9126_pushed_authorization_requests,
    consents_and_inventory_through_the_admin_api_and_cli,
    rfc9700_concurrent_refreshes_across_replicas_have_one_winner,
    refresh_reuse_grace_window_per_client,
    refresh_tokens_of_the_earlier_format_still_work,
);
