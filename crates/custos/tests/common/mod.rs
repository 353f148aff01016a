//! The integration-test harness: starts the real `custos` binary on port 0
//! (it logs the port it bound) against a fresh SQLite file or a fresh
//! PostgreSQL database, and talks to it over HTTP like any client would.

#![allow(dead_code)]

pub mod browser;
pub mod flow;
pub mod workload;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The issuer replicas share in multi-replica tests.
pub const SHARED_ISSUER: &str = "https://as.custos.test";
pub const KEK: &str = "test-key-encryption-key-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A database for one test: a SQLite file in a fresh directory, or a
/// freshly created PostgreSQL database.
#[derive(Debug, Clone)]
pub struct Database {
    pub url: String,
    pub dir: PathBuf,
    pub engine: Engine,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

impl Database {
    /// `None` when PostgreSQL is not configured (the test is skipped) —
    /// unless CUSTOS_REQUIRE_POSTGRES=1, which makes that a failure.
    pub fn fresh(engine: Engine) -> Option<Database> {
        let dir = std::env::temp_dir().join(unique("custos_it"));
        std::fs::create_dir_all(&dir).unwrap();
        match engine {
            Engine::Sqlite => Some(Database {
                url: format!("sqlite://{}", dir.join("custos.db").display()),
                dir,
                engine,
            }),
            Engine::Postgres => {
                let Ok(admin_url) = std::env::var("CUSTOS_TEST_POSTGRES_URL") else {
                    if std::env::var("CUSTOS_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                        panic!("CUSTOS_REQUIRE_POSTGRES=1 but CUSTOS_TEST_POSTGRES_URL is not set");
                    }
                    eprintln!("skipped: CUSTOS_TEST_POSTGRES_URL is not set");
                    return None;
                };
                let name = unique("custos_it").to_lowercase();
                let status = Command::new("psql")
                    .arg(&admin_url)
                    .args(["-qAt", "-c", &format!("CREATE DATABASE {name}")])
                    .status()
                    .expect("psql must be installed to run PostgreSQL tests");
                assert!(status.success(), "creating test database failed");
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap();
                Some(Database {
                    url: format!("{base}/{name}"),
                    dir,
                    engine,
                })
            }
        }
    }
}

/// A running custos process.
pub struct Server {
    pub url: String,
    pub db: Database,
    child: Option<Child>,
    pub log: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_custos")
}

impl Server {
    pub async fn start(db: &Database) -> Server {
        Self::start_with(db, &[]).await
    }

    /// Starts custos with extra environment variables.
    pub async fn start_with(db: &Database, env: &[(&str, &str)]) -> Server {
        Self::launch(db, env, "http", reqwest::Client::new()).await
    }

    /// Starts custos serving `scheme`, reached with `http`.
    pub async fn launch(
        db: &Database,
        env: &[(&str, &str)],
        scheme: &str,
        http: reqwest::Client,
    ) -> Server {
        let mut command = Command::new(binary());
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CUSTOS_LISTEN", "127.0.0.1:0")
            .env("CUSTOS_DATABASE_URL", &db.url)
            .env("CUSTOS_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("CUSTOS_LOG", "info,sqlx=warn")
            .current_dir(&db.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if db.engine == Engine::Postgres {
            command.env("CUSTOS_KEY_ENCRYPTION_KEY", KEK);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start custos");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        let (bound, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(address) = listening_address(&line) {
                    let _ = bound.send(address);
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        // The server binds port 0 and says where it is listening.
        let deadline = Instant::now() + Duration::from_secs(30);
        let address = loop {
            match listening.try_recv() {
                Ok(address) => break address,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("custos exited before listening:\n{}", log.lock().unwrap());
                }
                Err(std::sync::mpsc::TryRecvError::Empty) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "custos did not say where it listens:\n{}",
                        log.lock().unwrap()
                    );
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        let server = Server {
            url: format!("{scheme}://{address}"),
            db: db.clone(),
            child: Some(child),
            log,
            http,
        };
        server.wait_ready().await;
        server
    }

    /// Two replicas behind one issuer, sharing the database.
    pub async fn replicas(db: &Database) -> (Server, Server) {
        let env = [("CUSTOS_ISSUER", SHARED_ISSUER)];
        (
            Self::start_with(db, &env).await,
            Self::start_with(db, &env).await,
        )
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.url)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("custos did not become ready:\n{}", self.log.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("custos did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/oauth-authorization-server")
            .await
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// An endpoint from discovery, reached at this process (for replicas
    /// behind a shared issuer, as a load balancer would route it).
    pub async fn endpoint(&self, name: &str) -> String {
        let doc = self.discovery().await;
        let issuer = doc["issuer"].as_str().unwrap();
        doc[name].as_str().unwrap().replacen(issuer, &self.url, 1)
    }

    /// `POST registration_endpoint` with the admin token as the initial access token.
    pub async fn register(&self, metadata: Value) -> (u16, Value) {
        let endpoint = self.endpoint("registration_endpoint").await;
        let response = self
            .http
            .post(endpoint)
            .bearer_auth(ADMIN_TOKEN)
            .json(&metadata)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// Registers a confidential client_credentials client; returns (id, secret).
    pub async fn secret_client(&self, method: &str, scope: &str) -> (String, String) {
        let (status, body) = self
            .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": method, "scope": scope}))
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["client_id"].as_str().unwrap().into(),
            body["client_secret"].as_str().unwrap().into(),
        )
    }

    /// `POST path` with a form body and optional Basic credentials.
    pub async fn post_form(
        &self,
        url: &str,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.post(url).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(enc(id), Some(enc(secret)));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    pub async fn token_basic(&self, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let endpoint = self.endpoint("token_endpoint").await;
        let (status, _, body) = self.post_form(&endpoint, Some((id, secret)), form).await;
        (status, body)
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Audit events (the server flushes its queue before answering).
    pub async fn events(&self, query: &str) -> Vec<Value> {
        let (status, body) = self
            .admin(reqwest::Method::GET, &format!("/admin/events{query}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `host:port` from the startup line "custos listening on
/// http://127.0.0.1:PORT", in the text and the JSON log format.
pub fn listening_address(line: &str) -> Option<String> {
    const MARK: &str = "custos listening on ";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let url = rest.split(|c: char| c.is_whitespace() || c == '"').next()?;
    let address = url.split_once("://")?.1;
    (!address.is_empty()).then(|| address.to_owned())
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
pub fn enc(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The decoded header and claims of a JWT (no verification).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    let claims = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&claims).unwrap(),
    )
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An EC P-256 key a test client signs assertions with.
pub struct ClientKey {
    pub pkcs8: Vec<u8>,
    pub public_jwk: Value,
}

impl ClientKey {
    pub fn generate(kid: &str) -> ClientKey {
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let point = pair.public_key().as_ref();
        ClientKey {
            pkcs8: pkcs8.as_ref().to_vec(),
            public_jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
        }
    }

    /// An RFC 9449 DPoP proof for `htm` `htu` signed by this key, with
    /// `extra` claims merged in (a `null` removes a claim).
    pub fn dpop_proof(&self, htm: &str, htu: &str, extra: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        let mut jwk = self.public_jwk.clone();
        for private_or_extra in ["kid", "alg", "use"] {
            jwk.as_object_mut().unwrap().remove(private_or_extra);
        }
        header.jwk = Some(serde_json::from_value(jwk).unwrap());
        let mut claims = json!({
            "jti": format!("{}-{}", now(), COUNTER.fetch_add(1, Ordering::SeqCst)),
            "htm": htm,
            "htu": htu,
            "iat": now(),
        });
        for (name, value) in extra.as_object().into_iter().flatten() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8),
        )
        .unwrap()
    }

    /// RFC 7638 thumbprint of the public key (what `cnf.jkt` carries).
    pub fn jkt(&self) -> String {
        use aws_lc_rs::digest::{digest, SHA256};
        let jwk = &self.public_jwk;
        let canonical = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()).as_ref())
    }

    pub fn assertion(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = self.public_jwk["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8),
        )
        .unwrap()
    }
}

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client_credentials request authenticated by `assertion` (RFC 7523 §2.2).
pub fn assertion_form(assertion: &str) -> [(&'static str, &str); 3] {
    [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ]
}

/// Runs an async test body against SQLite and, when configured, PostgreSQL.
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::common::Database::fresh($crate::common::Engine::Sqlite) {
                        super::$name(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = $crate::common::Database::fresh($crate::common::Engine::Postgres) {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}
