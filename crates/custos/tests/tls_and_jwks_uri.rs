//! HTTPS with CUSTOS_TLS_CERT/KEY (and optional client certificates with
//! CUSTOS_TLS_CLIENT_CA), and private_key_jwt with keys fetched from the
//! client's jwks_uri.

mod common;
use common::*;
use serde_json::json;

struct Pki {
    ca_pem: String,
    server_cert_pem: String,
    server_key_pem: String,
    client_identity_pem: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["workload.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_identity_pem: format!("{}{}", client.pem(), client_key.serialize_pem()),
    }
}

#[tokio::test]
async fn https_with_optional_client_certificates() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let pki = pki();
    let write = |name: &str, text: &str| {
        let path = db.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let (cert, key, ca) = (
        write("server.pem", &pki.server_cert_pem),
        write("server.key", &pki.server_key_pem),
        write("ca.pem", &pki.ca_pem),
    );
    let root = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let env = [
        ("CUSTOS_TLS_CERT", cert.as_str()),
        ("CUSTOS_TLS_KEY", key.as_str()),
        ("CUSTOS_TLS_CLIENT_CA", ca.as_str()),
    ];
    let server = Server::launch(&db, &env, "https", http).await;

    let doc = server.discovery().await;
    assert!(
        doc["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "issuer defaults to https with TLS"
    );
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (status, body) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        status, 200,
        "a connection without a client certificate is accepted: {body}"
    );

    let with_identity = reqwest::Client::builder()
        .add_root_certificate(root)
        .identity(reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let response = with_identity
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "a connection with a certificate from the client CA is accepted"
    );

    let plain = reqwest::Client::new()
        .get(format!("{}/healthz", server.url.replace("https", "http")))
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP is not served on the TLS port"
    );
}

/// A tiny JWKS host standing in for a workload's key endpoint.
async fn serve_jwks(jwks: serde_json::Value) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

async fn rfc7523_private_key_jwt_with_jwks_uri(db: Database) {
    let server = Server::start_with(&db, &[("CUSTOS_ALLOW_PRIVATE_JWKS_URI", "true")]).await;
    let key = ClientKey::generate("uri-key");
    let jwks_uri = serve_jwks(json!({"keys": [key.public_jwk]})).await;
    let (status, body) = server
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["client_id"].as_str().unwrap();
    let endpoint = server.endpoint("token_endpoint").await;
    let assertion = key
        .assertion(&json!({"iss": id, "sub": id, "aud": endpoint, "jti": "u1", "exp": now() + 60}));
    let form = assertion_form(&assertion);
    let (status, _, body) = server.post_form(&endpoint, None, &form).await;
    assert_eq!(status, 200, "{body}");

    let stranger = ClientKey::generate("uri-key");
    let forged = stranger
        .assertion(&json!({"iss": id, "sub": id, "aud": endpoint, "jti": "u2", "exp": now() + 60}));
    let form = assertion_form(&forged);
    let (status, _, body) = server.post_form(&endpoint, None, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

/// Without the development opt-in, a jwks_uri on loopback or a private
/// address is refused at registration (no server-side request forgery).
async fn private_jwks_uri_is_refused_by_default(db: Database) {
    let server = Server::start(&db).await;
    for uri in [
        "http://127.0.0.1:9/jwks.json",
        "https://127.0.0.1/jwks.json",
        "https://169.254.169.254/latest",
        "https://10.0.0.1/jwks",
    ] {
        let (status, body) = server
            .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{uri}"
        );
    }
}

on_both_engines!(
    rfc7523_private_key_jwt_with_jwks_uri,
    private_jwks_uri_is_refused_by_default
);
