//! Time-dependent rules, checked with a clock the test moves: initial
//! access tokens expire, a rotated-out secret stops working after its grace,
//! a rotated signing key signs after its delay and is unpublished once its
//! last token has expired.

use custos_service::clock::{Clock, ManualClock};
use custos_service::crypto::MasterKey;
use custos_service::keyring::MAX_TOKEN_LIFETIME;
use custos_protocol::form::FormParams;
use custos_service::token::TokenResponse;
use custos_service::{
    ClientProof, NoJwksFetching, RequestContext, Service, ServiceConfig, ServiceError,
};
use custos_store::ConnectOptions;
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN: &str = "admin-token-0123456789";

async fn service(clock: Arc<ManualClock>) -> Arc<Service> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("custos_time_{}_{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = custos_store::connect(&ConnectOptions {
        url: format!("sqlite://{}", dir.join("t.db").display()),
        max_connections: 4,
    })
    .await
    .unwrap();
    let mut config = ServiceConfig::new("https://as.example");
    config.admin_token = Some(custos_service::Secret::new(ADMIN));
    config.key_activation_delay = 60;
    config.secret_rotation_grace = 3600;
    config.client_cache_ttl = std::time::Duration::ZERO;
    let master = MasterKey::from_secret(&"k".repeat(40)).unwrap();
    let (service, _writer) = Service::start(store, config, master, clock, Arc::new(NoJwksFetching))
        .await
        .unwrap();
    service
}

/// A request arriving now, by the service's clock.
fn ctx(service: &Service) -> RequestContext {
    service.request_context(Some("192.0.2.1".into()))
}

async fn issue(service: &Service, authorization: &str) -> Result<TokenResponse, ServiceError> {
    let form = FormParams::parse(b"grant_type=client_credentials").unwrap();
    let proof = ClientProof {
        authorization: Some(authorization.to_owned()),
        method: "POST".into(),
        url: "https://as.example/token".into(),
        ..ClientProof::default()
    };
    service.token.issue(&form, &proof, &ctx(service)).await
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

async fn register(service: &Service, bearer: &str) -> Result<Value, ServiceError> {
    let body = json!({"grant_types": ["client_credentials"], "scope": "read"}).to_string();
    service
        .registration
        .register_client(Some(bearer), body.as_bytes(), &ctx(service))
        .await
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[tokio::test]
async fn initial_access_tokens_expire() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let service = service(clock.clone()).await;
    let created = service
        .admin
        .create_initial_access_token(br#"{"expires_in": 60}"#, &ctx(&service))
        .await
        .unwrap();
    let iat = created["initial_access_token"].as_str().unwrap();
    assert!(register(&service, iat).await.is_ok());
    clock.advance_secs(61);
    let refused = register(&service, iat).await.unwrap_err();
    assert_eq!(refused.code(), "invalid_token");
}

#[tokio::test]
async fn rotated_out_secret_works_until_its_grace_ends() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let service = service(clock.clone()).await;
    let client = register(&service, ADMIN).await.unwrap();
    let (id, old) = (
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let rotated = service
        .admin
        .rotate_client_secret(id, &ctx(&service))
        .await
        .unwrap();
    let new = rotated["client_secret"].as_str().unwrap();
    clock.advance_secs(3599);
    assert!(issue(&service, &basic(id, old)).await.is_ok());
    clock.advance_secs(1);
    let refused = issue(&service, &basic(id, old)).await.unwrap_err();
    assert_eq!(refused.code(), "invalid_client");
    assert!(issue(&service, &basic(id, new)).await.is_ok());
}

#[tokio::test]
async fn rotated_key_signs_after_its_delay_and_leaves_after_its_last_token() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let service = service(clock.clone()).await;
    let client = register(&service, ADMIN).await.unwrap();
    let auth = basic(
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let old = kid(&issue(&service, &auth).await.unwrap().access_token);

    let new = service
        .admin
        .rotate_signing_key(&ctx(&service))
        .await
        .unwrap()
        .kid;
    assert_eq!(service.jwks()["keys"].as_array().unwrap().len(), 2);
    clock.advance_secs(59);
    assert_eq!(
        kid(&issue(&service, &auth).await.unwrap().access_token),
        old
    );
    clock.advance_secs(1);
    let last_old_token_expiry = clock.now() + 300;
    assert_eq!(
        kid(&issue(&service, &auth).await.unwrap().access_token),
        new
    );

    clock.advance_secs(MAX_TOKEN_LIFETIME - 1);
    service.refresh().await.unwrap();
    assert_eq!(
        service.jwks()["keys"].as_array().unwrap().len(),
        2,
        "still published"
    );
    assert!(clock.now() > last_old_token_expiry);
    clock.advance_secs(1);
    service.refresh().await.unwrap();
    let keys = service.jwks();
    let kids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new.as_str()],
        "the old key leaves once every token it signed has expired"
    );
}
