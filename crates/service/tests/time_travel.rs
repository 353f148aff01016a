//! Time-dependent rules, checked with a clock the test moves: initial
//! access tokens expire, a rotated-out secret stops working after its grace,
//! a rotated signing key signs after its delay and is unpublished once its
//! last token has expired.

use custos_protocol::form::FormParams;
use custos_service::clock::{Clock, ManualClock};
use custos_service::crypto::MasterKey;
use custos_service::keyring::MAX_TOKEN_LIFETIME;
use custos_service::token::TokenResponse;
use custos_service::{
    ClientProof, NoJwksFetching, RequestContext, Service, ServiceConfig, ServiceError,
};
use custos_store::ConnectOptions;
use serde_json::{json, Value};
use std::sync::Arc;

const ADMIN: &str = "admin-token-0123456789";

/// A fresh SQLite database URL.
fn fresh_database() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("custos_time_{}_{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    format!("sqlite://{}", dir.join("t.db").display())
}

/// A service (a replica) on `database`, its clock `clock`, its client
/// cache on for `cache_ttl`.
async fn replica(
    database: &str,
    clock: Arc<ManualClock>,
    cache_ttl: std::time::Duration,
) -> Arc<Service> {
    let store = custos_store::connect(&ConnectOptions {
        url: database.to_owned(),
        max_connections: 4,
    })
    .await
    .unwrap();
    let mut config = ServiceConfig::new("https://as.example");
    config.admin_token = Some(custos_service::Secret::new(ADMIN));
    config.key_activation_delay = 60;
    config.secret_rotation_grace = 3600;
    config.client_cache_ttl = cache_ttl;
    let master = MasterKey::from_secret(&"k".repeat(40)).unwrap();
    let (service, _writer) = Service::start(store, config, master, clock, Arc::new(NoJwksFetching))
        .await
        .unwrap();
    service
}

async fn service(clock: Arc<ManualClock>) -> Arc<Service> {
    replica(&fresh_database(), clock, std::time::Duration::ZERO).await
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

/// Two replicas on one database: a key rotated at the first is published
/// by the second at its next refresh, before it signs anything, and the
/// second signs with it once it activates.
#[tokio::test]
async fn rotated_key_reaches_other_replicas_before_it_signs() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let database = fresh_database();
    let first = replica(&database, clock.clone(), std::time::Duration::ZERO).await;
    let second = replica(&database, clock.clone(), std::time::Duration::ZERO).await;
    let client = register(&second, ADMIN).await.unwrap();
    let auth = basic(
        client["client_id"].as_str().unwrap(),
        client["client_secret"].as_str().unwrap(),
    );
    let old = kid(&issue(&second, &auth).await.unwrap().access_token);
    let new = first
        .admin
        .rotate_signing_key(&ctx(&first))
        .await
        .unwrap()
        .kid;
    assert_eq!(second.jwks()["keys"].as_array().unwrap().len(), 1);
    second.refresh().await.unwrap();
    assert!(
        second.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new.as_str()),
        "published by the other replica at its refresh"
    );
    clock.advance_secs(59);
    assert_eq!(kid(&issue(&second, &auth).await.unwrap().access_token), old);
    clock.advance_secs(1);
    assert_eq!(kid(&issue(&second, &auth).await.unwrap().access_token), new);
}

/// A secret rotated at one replica works at another whose cache still
/// holds the client as soon as that copy is 250 ms old (a failed
/// authentication re-reads it), and not before: the re-read is braked so a
/// flood of wrong secrets costs at most a few reads a second.
#[tokio::test]
async fn rotated_secret_reaches_a_caching_replica_after_the_reread_delay() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let database = fresh_database();
    let ttl = std::time::Duration::from_secs(2);
    let first = replica(&database, clock.clone(), ttl).await;
    let second = replica(&database, clock.clone(), ttl).await;
    let client = register(&first, ADMIN).await.unwrap();
    let id = client["client_id"].as_str().unwrap();
    let old = client["client_secret"].as_str().unwrap();
    issue(&second, &basic(id, old)).await.unwrap();
    let rotated = first
        .admin
        .rotate_client_secret(id, &ctx(&first))
        .await
        .unwrap();
    let new = rotated["client_secret"].as_str().unwrap();
    let refused = issue(&second, &basic(id, new)).await.unwrap_err();
    assert_eq!(refused.code(), "invalid_client", "the cached copy is fresh");
    clock.advance_ms(250);
    issue(&second, &basic(id, new)).await.unwrap();
    assert!(
        issue(&second, &basic(id, old)).await.is_ok(),
        "the old secret keeps its grace"
    );
}

/// Audit events older than the retention are pruned, and the prune is
/// itself an audit event.
#[tokio::test]
async fn audit_events_past_the_retention_are_pruned_and_the_prune_audited() {
    let clock = Arc::new(ManualClock::new(1_800_000_000_000));
    let service = service(clock.clone()).await;
    register(&service, ADMIN).await.unwrap();
    let all = custos_governance::EventFilter::default();
    let before = service.admin.audit_events(&all).await.unwrap();
    assert_eq!(before.len(), 1);
    clock.advance_secs(89 * 86_400);
    service.prune().await.unwrap();
    assert_eq!(service.admin.audit_events(&all).await.unwrap().len(), 1);
    clock.advance_secs(86_400 + 1);
    service.prune().await.unwrap();
    let after = service.admin.audit_events(&all).await.unwrap();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].event_type, "audit.pruned");
    assert!(after[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("deleted 1 audit events"));
}
