//! The admin API and the `custos admin` CLI: people, resources, inventory,
//! audit events, secret rotation and signing-key rotation.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::process::Command;

async fn admin_api_requires_the_admin_token(db: Database) {
    let server = Server::start(&db).await;
    for token in [None, Some("wrong-token-wrong-token")] {
        let mut request = server.http.get(format!("{}/admin/clients", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let mut server = Server::start_with(&db, &[("CUSTOS_ADMIN_TOKEN", "")]).await;
    server.http = reqwest::Client::new();
    let response = server
        .http
        .get(format!("{}/admin/clients", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

async fn users_and_resources(db: Database) {
    let server = Server::start(&db).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("password").is_none());
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": "another password"})),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")));
    let (status, _) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "bob", "password": "short"})),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "bob"})),
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://api.example/", "scopes": ["read", "write"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://api.example/", "scopes": []})),
        )
        .await;
    assert_eq!(status, 409);
    for bad in [
        json!({"uri": "not a uri", "scopes": []}),
        json!({"uri": "https://a.example/#f"}),
        json!({"uri": "https://a.example/", "scopes": ["bad\"scope"]}),
    ] {
        let (status, _) = server
            .admin(Method::POST, "/admin/resources", Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (_, list) = server.admin(Method::GET, "/admin/resources", None).await;
    assert_eq!(list[0]["scopes"], json!(["read", "write"]));
}

async fn inventory_and_events(db: Database) {
    let server = Server::start(&db).await;
    let since = now();
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (status, _) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200);
    let (status, inventory) = server.admin(Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 200);
    let entry = inventory
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .unwrap();
    assert_eq!(entry["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(entry["uses_static_secret"], true);
    assert_eq!(entry["grant_types"], json!(["client_credentials"]));
    assert_eq!(entry["secret_age_days"], 0);
    assert!(entry["last_used_at"].as_i64().unwrap() >= since);
    assert_eq!(entry["status"], "active");
    assert!(
        serde_json::to_string(&inventory)
            .unwrap()
            .find(&secret)
            .is_none(),
        "no secret in the inventory"
    );

    let events = server.events(&format!("?client_id={id}")).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["client.registered", "token.issued"], "newest last");
    let issued = &events[1];
    assert_eq!(issued["grant_type"], "client_credentials");
    assert_eq!(issued["scope"], "read");
    assert_eq!(issued["result"], "success");
    assert_eq!(issued["source_addr"], "127.0.0.1");
    assert_eq!(
        server
            .events(&format!("?client_id={id}&type=token.issued"))
            .await
            .len(),
        1
    );
    assert_eq!(
        server
            .events(&format!("?client_id={id}&since={}", now() + 100))
            .await
            .len(),
        0
    );
    assert_eq!(
        server
            .events(&format!("?client_id={id}&since=2020-01-01T00:00:00Z"))
            .await
            .len(),
        2
    );
    let (status, _) = server
        .admin(Method::GET, "/admin/events?since=yesterday", None)
        .await;
    assert_eq!(status, 400);
}

async fn secret_rotation_keeps_the_old_secret_for_the_grace_period(db: Database) {
    let server = Server::start(&db).await;
    let (id, old) = server.secret_client("client_secret_basic", "read").await;
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new = body["client_secret"].as_str().unwrap();
    assert_ne!(new, old);
    let grace = body["previous_expires_at"].as_i64().unwrap() - now();
    assert!((86_000..=86_400).contains(&grace), "{grace}");
    for secret in [old.as_str(), new] {
        let (status, _) = server
            .token_basic(&id, secret, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = server
        .admin(Method::POST, "/admin/clients/nope/rotate-secret", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn rotated_out_secret_stops_working_after_the_grace_period() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start_with(&db, &[("CUSTOS_SECRET_ROTATION_GRACE", "0")]).await;
    let (id, old) = server.secret_client("client_secret_basic", "read").await;
    let (_, body) = server
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/rotate-secret"),
            None,
        )
        .await;
    let (status, _) = server
        .token_basic(&id, &old, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 401);
    let (status, _) = server
        .token_basic(
            &id,
            body["client_secret"].as_str().unwrap(),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200);
}

fn kid(token: &str) -> String {
    jwt_parts(token).0["kid"].as_str().unwrap().to_owned()
}

/// A new key is published at once, signs only after the activation delay,
/// and the old key stays published for tokens it signed.
async fn key_rotation_publishes_before_signing(db: Database) {
    let server = Server::start_with(
        &db,
        &[
            ("CUSTOS_KEY_ACTIVATION_DELAY", "600"),
            ("CUSTOS_KEY_REFRESH_INTERVAL", "1"),
        ],
    )
    .await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (_, body) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    let old_kid = kid(body["access_token"].as_str().unwrap());

    let output = Command::new(binary())
        .args(["admin", "keys", "rotate", "--url", &server.url])
        .env("CUSTOS_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rotated: Value = serde_json::from_slice(&output.stdout).unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);

    let jwks = server.get_json("/jwks").await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()),
        "both published: {kids:?}"
    );
    let (_, body) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        kid(body["access_token"].as_str().unwrap()),
        old_kid,
        "the new key does not sign yet"
    );

    // That it signs once the delay is over, and leaves once its last
    // token has expired, is tested on a moved clock in
    // crates/service/tests/time_travel.rs.
    let jwks = server.get_json("/jwks").await;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "the old key stays published while its tokens live"
    );

    let (status, keys) = server.admin(Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200);
    let old = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == old_kid.as_str())
        .unwrap();
    assert!(
        old["retired_at"].is_i64()
            && old["published_until"].as_i64().unwrap()
                > old["retired_at"].as_i64().unwrap() + 3600 - 1
    );
}

#[test]
fn admin_cli_reports_errors_in_one_line() {
    let output = Command::new(binary())
        .args([
            "admin",
            "clients",
            "list",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .env("CUSTOS_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("CUSTOS_URL"));
    let output = Command::new(binary())
        .args(["admin", "clients", "list"])
        .env_remove("CUSTOS_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("CUSTOS_ADMIN_TOKEN"));
}

on_both_engines!(
    admin_api_requires_the_admin_token,
    users_and_resources,
    inventory_and_events,
    secret_rotation_keeps_the_old_secret_for_the_grace_period,
    key_rotation_publishes_before_signing,
    rotated_key_reaches_other_replicas_before_it_signs,
);

/// Guessing the admin token is braked per source address: after ten
/// failures even the right token is refused for the rest of the minute.
#[tokio::test]
async fn admin_token_guessing_is_braked() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    let url = format!("{}/admin/clients", server.url);
    for _ in 0..10 {
        let response = server
            .http
            .get(&url)
            .bearer_auth("guess-guess-guess")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = server
        .http
        .get(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    let response = server
        .http
        .post(server.endpoint("registration_endpoint").await)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        429,
        "the brake covers initial access tokens too"
    );
}

/// A key rotated through one replica is published by the other after its
/// next key refresh, before it signs anything. (Its activation on the other
/// replica is tested on a moved clock in crates/service/tests/time_travel.rs;
/// here the refresh loop of the real binary is awaited, never a fixed sleep.)
async fn rotated_key_reaches_other_replicas_before_it_signs(db: Database) {
    let env = [
        ("CUSTOS_ISSUER", SHARED_ISSUER),
        ("CUSTOS_KEY_ACTIVATION_DELAY", "600"),
        ("CUSTOS_KEY_REFRESH_INTERVAL", "1"),
    ];
    let first = Server::start_with(&db, &env).await;
    let second = Server::start_with(&db, &env).await;
    let (status, rotated) = first.admin(Method::POST, "/admin/keys/rotate", None).await;
    assert_eq!(status, 201, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let jwks = second.get_json("/jwks").await;
        let published = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new_kid);
        if published {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other replica publishes the key at its next refresh"
        );
        tokio::task::yield_now().await;
    }
    let (id, secret) = second.secret_client("client_secret_basic", "read").await;
    let (_, body) = second
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_ne!(
        kid(body["access_token"].as_str().unwrap()),
        new_kid,
        "not signing before activation"
    );
}

fn cli(server: &Server, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(binary())
        .arg("admin")
        .args(args)
        .args(["--url", &server.url])
        .env("CUSTOS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("CUSTOS_USER_PASSWORD", "correct horse battery")
        .output()
        .unwrap();
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.success(),
        stdout,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `custos admin <noun> <verb>` wraps the admin API.
#[tokio::test]
async fn admin_cli_wraps_the_admin_api() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    let (ok, body, err) = cli(
        &server,
        &[
            "resources",
            "create",
            "--uri",
            "https://api.example/",
            "--scope",
            "read",
            "--scope",
            "write",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(body["scopes"], json!(["read", "write"]));
    let (ok, body, _) = cli(&server, &["resources", "list"]);
    assert!(ok && body.as_array().unwrap().len() == 1);
    let (ok, body, err) = cli(&server, &["users", "create", "--username", "alice"]);
    assert!(ok, "{err}");
    assert_eq!(body["username"], "alice");
    let (ok, _, err) = cli(&server, &["users", "create", "--username", "alice"]);
    assert!(!ok && err.contains("409"), "{err}");

    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (ok, body, _) = cli(&server, &["clients", "list"]);
    assert!(ok && body[0]["client_id"] == id.as_str());
    let (ok, body, _) = cli(&server, &["clients", "rotate-secret", &id]);
    assert!(ok && body["client_secret"].as_str().is_some_and(|s| s != secret));
    let (ok, body, _) = cli(
        &server,
        &[
            "events",
            "list",
            "--client-id",
            &id,
            "--type",
            "client.secret_rotated",
        ],
    );
    assert!(ok && body.as_array().unwrap().len() == 1, "{body}");
    let (ok, body, err) = cli(
        &server,
        &["initial-access-tokens", "create", "--expires-in", "60"],
    );
    assert!(ok && body["initial_access_token"].is_string(), "{err}");
    let (ok, _, err) = cli(&server, &["clients", "delete", &id]);
    assert!(ok, "{err}");
    let (ok, body, _) = cli(&server, &["clients", "list"]);
    assert!(ok && body[0]["status"] == "disabled");
}

/// Behind a trusted reverse proxy the audit trail (and the brake) see the
/// client's address from X-Forwarded-For; from anyone else the header is
/// ignored.
#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    for (trusted, expected) in [("127.0.0.1", "198.51.100.7"), ("10.0.0.0/8", "127.0.0.1")] {
        let db = Database::fresh(Engine::Sqlite).unwrap();
        let server = Server::start_with(&db, &[("CUSTOS_TRUSTED_PROXIES", trusted)]).await;
        let (id, secret) = server.secret_client("client_secret_basic", "read").await;
        let response = server
            .http
            .post(format!("{}/token", server.url))
            .basic_auth(&id, Some(&secret))
            .header("x-forwarded-for", "203.0.113.66, 198.51.100.7")
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let issued = server
            .events(&format!("?client_id={id}&type=token.issued"))
            .await;
        assert_eq!(issued[0]["source_addr"], expected, "trusted: {trusted}");
    }
}
