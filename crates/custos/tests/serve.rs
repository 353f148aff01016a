//! `custos serve` as an operator meets it: settings, readiness, discovery,
//! JWKS, graceful shutdown, keys that survive restarts.

mod common;
use common::*;
use serde_json::json;
use std::process::Command;

fn start_error(env: &[(&str, &str)]) -> String {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("custos_bad_{}_{run}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(binary());
    command
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .env("CUSTOS_LISTEN", "127.0.0.1:0");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    assert!(!output.status.success(), "custos started with {env:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "expected one line, got: {stderr}"
    );
    stderr
}

#[test]
fn bad_settings_exit_non_zero_with_one_line_naming_the_setting() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("CUSTOS_LISTEN", "not-an-address")], "CUSTOS_LISTEN"),
        (&[("CUSTOS_ISSUER", "ftp://x")], "CUSTOS_ISSUER"),
        (
            &[("CUSTOS_DATABASE_URL", "mysql://localhost/x")],
            "CUSTOS_DATABASE_URL",
        ),
        (
            &[("CUSTOS_DATABASE_URL", "postgres://u:secretpw@127.0.0.1:1/x")],
            "CUSTOS_KEY_ENCRYPTION_KEY",
        ),
        (
            &[
                ("CUSTOS_DATABASE_URL", "postgres://u:secretpw@127.0.0.1:1/x"),
                ("CUSTOS_KEY_ENCRYPTION_KEY", KEK),
            ],
            "CUSTOS_DATABASE_URL",
        ),
        (
            &[(
                "CUSTOS_DATABASE_URL",
                "sqlite:///nonexistent-dir-xyz/custos.db",
            )],
            "CUSTOS_DATABASE_URL",
        ),
        (&[("CUSTOS_LOG", "[[[")], "CUSTOS_LOG"),
        (&[("CUSTOS_TLS_CERT", "/nonexistent.pem")], "CUSTOS_TLS_KEY"),
        (
            &[
                ("CUSTOS_TLS_CERT", "/nonexistent.pem"),
                ("CUSTOS_TLS_KEY", "/nonexistent.key"),
            ],
            "CUSTOS_TLS_CERT",
        ),
        (
            &[("CUSTOS_KEY_ENCRYPTION_KEY", "short")],
            "CUSTOS_KEY_ENCRYPTION_KEY",
        ),
        (&[("CUSTOS_ADMIN_TOKEN", "short")], "CUSTOS_ADMIN_TOKEN"),
        (&[("CUSTOS_LOG_FORMAT", "xml")], "CUSTOS_LOG_FORMAT"),
        (
            &[("CUSTOS_HEADER_READ_TIMEOUT", "0")],
            "CUSTOS_HEADER_READ_TIMEOUT",
        ),
        (&[("CUSTOS_IDLE_TIMEOUT", "0")], "CUSTOS_IDLE_TIMEOUT"),
        (&[("CUSTOS_IDLE_TIMEOUT", "soon")], "CUSTOS_IDLE_TIMEOUT"),
        (&[("CUSTOS_MAX_CONNECTIONS", "0")], "CUSTOS_MAX_CONNECTIONS"),
        (
            &[("CUSTOS_MAX_CONNECTIONS", "-1")],
            "CUSTOS_MAX_CONNECTIONS",
        ),
    ];
    for (env, setting) in cases {
        let line = start_error(env);
        assert!(line.contains(setting), "{env:?}: {line}");
        assert!(!line.contains("secretpw"), "password leaked: {line}");
    }
}

#[test]
fn config_file_is_read_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("custos_cfg_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("custos.toml");
    std::fs::write(&file, "listen = \"definitely not an address\"\n").unwrap();
    let output = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&file)
        .env_clear()
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("CUSTOS_LISTEN"));
    std::fs::write(&file, "lissten = 1\n").unwrap();
    let output = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--config"));
}

async fn discovery_lists_endpoints_and_only_oauth21_values(db: Database) {
    let server = Server::start(&db).await;
    let doc = server.discovery().await;
    assert_eq!(doc["issuer"], server.url);
    for endpoint in [
        "token_endpoint",
        "jwks_uri",
        "registration_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ] {
        let url = doc[endpoint].as_str().unwrap();
        assert!(url.starts_with(&server.url), "{endpoint}");
    }
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!("client_credentials")));
    assert!(!grants.contains(&json!("password")) && !grants.contains(&json!("implicit")));
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    for m in [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ] {
        assert!(methods.contains(&json!(m)), "{m}");
    }
    assert_eq!(
        server.get_json("/.well-known/openid-configuration").await,
        doc
    );

    let jwks = server.get_json("/jwks").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none(), "private key published");
}

/// In-flight requests finish, queued audit events are written, the store
/// closes, and the process exits 0.
async fn sigterm_shuts_down_gracefully_and_keeps_audit_events(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let endpoint = server.endpoint("token_endpoint").await;
    let mut in_flight = Vec::new();
    for _ in 0..20 {
        let http = server.http.clone();
        let (endpoint, id, secret) = (endpoint.clone(), id.clone(), secret.clone());
        in_flight.push(tokio::spawn(async move {
            http.post(endpoint)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
        }));
    }
    for request in in_flight {
        assert_eq!(request.await.unwrap().unwrap().status(), 200);
    }
    let kid_before = server.get_json("/jwks").await["keys"][0]["kid"].clone();
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");

    let server = Server::start(&db).await;
    let issued = server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(
        issued.len(),
        20,
        "every issuance is in the audit trail after restart"
    );
    assert_eq!(
        server.get_json("/jwks").await["keys"][0]["kid"],
        kid_before,
        "signing key survives restart"
    );
}

async fn wrong_key_encryption_key_refuses_to_start(db: Database) {
    let server = Server::start_with(&db, &[("CUSTOS_KEY_ENCRYPTION_KEY", KEK)]).await;
    drop(server);
    let output = Command::new(binary())
        .arg("serve")
        .env_clear()
        .env("CUSTOS_LISTEN", "127.0.0.1:0")
        .env("CUSTOS_DATABASE_URL", &db.url)
        .env(
            "CUSTOS_KEY_ENCRYPTION_KEY",
            "another-key-encryption-key-0123456789",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CUSTOS_KEY_ENCRYPTION_KEY"), "{stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line on stderr: {stderr}"
    );
}

#[tokio::test]
async fn sqlite_key_file_is_created_0600_beside_the_database() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let _server = Server::start(&db).await;
    let path = db.dir.join("custos.db.kek");
    let meta = std::fs::metadata(&path).expect("key file beside the database");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(path).unwrap().trim().len() >= 32);
}

#[tokio::test]
async fn healthz_and_unknown_paths() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    let response = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = server
        .http
        .get(format!("{}/nope", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
}

on_both_engines!(
    discovery_lists_endpoints_and_only_oauth21_values,
    sigterm_shuts_down_gracefully_and_keeps_audit_events,
    wrong_key_encryption_key_refuses_to_start,
);

/// RFC 8414 §3.1: an issuer with a path has its metadata at
/// `/.well-known/oauth-authorization-server{path}`, and its endpoints live
/// under the path.
#[tokio::test]
async fn rfc8414_3_1_issuer_with_a_path() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server =
        Server::start_with(&db, &[("CUSTOS_ISSUER", "https://as.custos.test/tenant-a")]).await;
    let doc = server
        .get_json("/.well-known/oauth-authorization-server/tenant-a")
        .await;
    assert_eq!(doc["issuer"], "https://as.custos.test/tenant-a");
    assert_eq!(
        doc["token_endpoint"],
        "https://as.custos.test/tenant-a/token"
    );
    assert_eq!(
        server
            .get_json("/tenant-a/.well-known/oauth-authorization-server")
            .await,
        doc
    );
    let jwks = server.get_json("/tenant-a/jwks").await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let response = server
        .http
        .post(format!("{}/tenant-a/register", server.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"grant_types": ["client_credentials"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let client: serde_json::Value = response.json().await.unwrap();
    assert!(client["registration_client_uri"]
        .as_str()
        .unwrap()
        .starts_with("https://as.custos.test/tenant-a/register/"));
    let (status, _, body) = server
        .post_form(
            &format!("{}/tenant-a/token", server.url),
            Some((
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str().unwrap(),
            )),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], "https://as.custos.test/tenant-a");
    let response = server
        .http
        .get(format!("{}/token", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "nothing outside the issuer path");
}

/// The database holds secret and password hashes: it and its WAL files
/// are private whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn sqlite_database_files_are_0600() {
    use std::os::unix::fs::PermissionsExt;
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    server.secret_client("client_secret_basic", "read").await;
    for name in ["custos.db", "custos.db-wal", "custos.db-shm"] {
        let meta = std::fs::metadata(db.dir.join(name)).expect(name);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
}

/// A database made readable by others (an old start, a copy) is narrowed
/// to 0600, its WAL files too, and the operator is told once it is up.
#[cfg(unix)]
#[tokio::test]
async fn an_existing_readable_database_is_narrowed_to_0600() {
    use std::os::unix::fs::PermissionsExt;
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    server.secret_client("client_secret_basic", "read").await;
    drop(server); // SIGKILL: the -wal and -shm files stay
    let names = ["custos.db", "custos.db-wal", "custos.db-shm"];
    for name in names {
        let path = db.dir.join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect(name);
    }
    let server = Server::start(&db).await;
    server.secret_client("client_secret_basic", "read").await;
    for name in names {
        let meta = std::fs::metadata(db.dir.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("mode to 0600")
            && l.contains("custos.db-wal")),
        "{log}"
    );
}

/// Waits until the log has a line containing `text`.
async fn wait_for_log(log: &std::sync::Arc<std::sync::Mutex<String>>, text: &str) {
    for _ in 0..200 {
        if log.lock().unwrap().contains(text) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no '{text}' in the log:\n{}", log.lock().unwrap());
}

/// CUSTOS_LOG_FORMAT=json: every line on stderr is one JSON object, the
/// startup line included (the harness found the port in it).
#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start_with(&db, &[("CUSTOS_LOG_FORMAT", "json")]).await;
    server.secret_client("client_secret_basic", "read").await;
    let (status, _) = server
        .token_basic("nobody", "wrong", &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 401);
    let log = server.log.clone();
    assert!(server.terminate().success());
    wait_for_log(&log, "custos stopped").await;
    let log = log.lock().unwrap().clone();
    assert!(log.lines().count() >= 3, "{log}");
    for line in log.lines() {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(object.is_object(), "{line}");
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        log.contains("\"message\":\"custos listening on http://127.0.0.1:"),
        "{log}"
    );
}

/// A failed start under CUSTOS_LOG_FORMAT=json is one JSON line too.
#[test]
fn json_start_failure_is_one_json_line_naming_the_setting() {
    let line = start_error(&[
        ("CUSTOS_LOG_FORMAT", "json"),
        ("CUSTOS_DATABASE_URL", "postgres://u:secretpw@127.0.0.1:1/x"),
        ("CUSTOS_KEY_ENCRYPTION_KEY", KEK),
    ]);
    let object: serde_json::Value = serde_json::from_str(line.trim()).expect(&line);
    let message = object["message"].as_str().unwrap();
    assert!(message.contains("CUSTOS_DATABASE_URL"), "{line}");
    assert!(!line.contains("secretpw"), "{line}");
}

/// Text logs to a pipe carry no ANSI colour codes (the harness sets no
/// NO_COLOR), and say where the server listens.
#[tokio::test]
async fn text_logs_to_a_pipe_have_no_colour() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    server.secret_client("client_secret_basic", "read").await;
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains(" INFO "), "{log}");
    assert!(!log.contains('\x1b'), "{log:?}");
}

/// Port 0: the default issuer is the address actually bound.
#[tokio::test]
async fn port_zero_gives_the_bound_address_as_issuer() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = Server::start(&db).await;
    assert!(!server.url.ends_with(":0"), "{}", server.url);
    let doc = server.discovery().await;
    assert_eq!(doc["issuer"], server.url);
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (status, body) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], server.url);
}

/// CUSTOS_ALLOW_PRIVATE_URLS is the opt-in for private fetch targets
/// (CUSTOS_ALLOW_PRIVATE_JWKS_URI, its old name, still works), and it is
/// named in the warning.
#[tokio::test]
async fn allow_private_urls_opens_private_addresses_with_a_warning() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let metadata = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://127.0.0.1:9/jwks.json"});
    let server = Server::start(&db).await;
    let (status, body) = server.register(metadata.clone()).await;
    assert_eq!(status, 400, "refused by default: {body}");
    drop(server);
    for name in ["CUSTOS_ALLOW_PRIVATE_URLS", "CUSTOS_ALLOW_PRIVATE_JWKS_URI"] {
        let server = Server::start_with(&db, &[(name, "true")]).await;
        let (status, body) = server.register(metadata.clone()).await;
        assert_eq!(status, 201, "{name}: {body}");
        let log = server.log.lock().unwrap().clone();
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("CUSTOS_ALLOW_PRIVATE_URLS is on")),
            "{name}: {log}"
        );
    }
}
