//! Micro-benchmarks of the CPU work on the token endpoint's hot path, without
//! HTTP or the database: signing access tokens, client authentication
//! (Basic header, form body, the client-secret HMAC, the stored client
//! metadata), private_key_jwt assertion verification, all of the per-request
//! CPU work of a client_credentials token request put together, and the two
//! SQLite store calls of the token path (client lookup, audit batch insert).
//!
//! `cargo bench -p custos-service --bench hot_paths`
//! (add `-- --warm-up-time 1 --measurement-time 3` for a short run).

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use custos_governance::{event_type, AuditEvent, Outcome};
use custos_protocol::access_token::{verify_access_token, AccessTokenClaims, Audience};
use custos_protocol::client_auth::{
    basic_claim, check_presentation, parse_basic, verify_client_assertion, AssertionRules,
};
use custos_protocol::form::FormParams;
use custos_protocol::grant::client_credentials;
use custos_protocol::metadata::{validate_registration, ClientMetadata};
use custos_service::crypto::{random_token, MasterKey};
use custos_service::keyring::{generate_key, KeyRing, SigningAlg};
use custos_service::token::TokenResponse;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const ISSUER: &str = "https://auth.example.com";
const CLIENT_ID: &str = "lN3cSO1v0cI2PSxS3uqS0g";
/// What wrk sends in bench/run.sh.
const TOKEN_BODY: &[u8] = b"grant_type=client_credentials&scope=read";

fn master() -> MasterKey {
    MasterKey::from_secret(&MasterKey::generate_secret()).expect("master key")
}

/// A ring holding one freshly generated, active key of `alg`.
fn ring(alg: SigningAlg, master: &MasterKey) -> KeyRing {
    let record = generate_key(alg, master, NOW, NOW).expect("generate key");
    let ring = KeyRing::empty();
    ring.load(&[record], master, NOW).expect("load key");
    ring
}

/// The claims custos puts in a client_credentials access token.
fn claims(jti: String) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        sub: CLIENT_ID.into(),
        aud: Audience(vec![ISSUER.into()]),
        client_id: CLIENT_ID.into(),
        iat: NOW,
        exp: NOW + 300,
        jti,
        scope: Some("read".into()),
        cnf: None,
        act: None,
        authorization_details: None,
        grant_id: None,
        client_auth: None,
        task_id: None,
        ancestry: None,
        ancestry_clients: None,
    }
}

fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// The metadata_json custos stores for the client bench/run.sh registers.
fn stored_metadata_json() -> String {
    let metadata = validate_registration(
        &json!({
            "grant_types": ["client_credentials"],
            "scope": "read write",
            "token_endpoint_auth_method": "client_secret_basic",
        }),
        &Default::default(),
    )
    .expect("valid registration");
    serde_json::to_string(&metadata).expect("serialise metadata")
}

fn signing(c: &mut Criterion) {
    let master = master();
    let mut group = c.benchmark_group("sign_access_token");
    group.throughput(Throughput::Elements(1));
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
        let ring = ring(alg, &master);
        let claims = claims(random_token(16));
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                ring.sign_access_token(black_box(&claims), black_box(NOW))
                    .expect("sign")
            })
        });
    }
    group.finish();

    // The floor under ES256 issuance: the bare P-256 signature, as
    // `openssl speed ecdsap256` measures it.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let message = [0x5au8; 300];
    c.bench_function("ecdsa_p256_sign_raw", |b| {
        b.iter(|| pair.sign(&rng, black_box(&message)).expect("sign"))
    });

    c.bench_function("random_token_16 (jti)", |b| {
        b.iter(|| random_token(black_box(16)))
    });

    // Introspection's check of a token this server issued.
    let ring = ring(SigningAlg::Es256, &master);
    let token = ring
        .sign_access_token(&claims(random_token(16)), NOW)
        .unwrap();
    let keys = ring.verification_keys();
    c.bench_function("verify_access_token ES256", |b| {
        b.iter(|| verify_access_token(black_box(&token), &keys, ISSUER, NOW).expect("active token"))
    });
}

fn client_authentication(c: &mut Criterion) {
    let master = master();
    let secret = random_token(32);
    let stored = master.hash_client_secret(&secret);
    c.bench_function("hash_client_secret", |b| {
        b.iter(|| master.hash_client_secret(black_box(&secret)))
    });
    c.bench_function("verify_client_secret", |b| {
        b.iter(|| assert!(master.verify_client_secret(black_box(&secret), black_box(&stored))))
    });

    let header = basic_header(CLIENT_ID, &secret);
    c.bench_function("parse_basic", |b| {
        b.iter(|| parse_basic(black_box(&header)).expect("basic"))
    });
    c.bench_function("FormParams::parse token body", |b| {
        b.iter(|| FormParams::parse(black_box(TOKEN_BODY)).expect("form"))
    });
    let form = FormParams::parse(TOKEN_BODY).unwrap();
    c.bench_function("basic_claim", |b| {
        b.iter(|| {
            basic_claim(Some(black_box(&header)), black_box(&form))
                .expect("credentials")
                .expect("present")
        })
    });

    // authenticate_client parses the stored metadata on every request.
    let metadata_json = stored_metadata_json();
    c.bench_function("ClientMetadata from stored JSON", |b| {
        b.iter(|| serde_json::from_str::<ClientMetadata>(black_box(&metadata_json)).expect("json"))
    });
}

fn client_assertion(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
    .unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    let token_endpoint = format!("{ISSUER}/token");
    let assertion = jsonwebtoken::encode(
        &header,
        &json!({
            "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": token_endpoint,
            "exp": NOW + 60, "iat": NOW, "jti": random_token(16),
        }),
        &EncodingKey::from_ec_der(pkcs8.as_ref()),
    )
    .unwrap();
    let audiences = [ISSUER.to_owned(), token_endpoint.clone()];
    let rules = AssertionRules {
        client_id: CLIENT_ID,
        audiences: &audiences,
        now: NOW,
        leeway: 30,
        max_lifetime: 3600,
    };
    c.bench_function("verify_client_assertion ES256", |b| {
        b.iter(|| verify_client_assertion(black_box(&assertion), &jwks, &rules).expect("valid"))
    });
}

/// Every piece of per-request CPU work of `POST /token` (client_credentials,
/// client_secret_basic, ES256) that happens outside HTTP and the database,
/// in the order `Service::issue_token` does it. Compare with the server CPU
/// per request that bench/run.sh reports.
fn token_request_cpu(c: &mut Criterion) {
    let master = master();
    let ring = ring(SigningAlg::Es256, &master);
    let secret = random_token(32);
    let stored = master.hash_client_secret(&secret);
    let header = basic_header(CLIENT_ID, &secret);
    let metadata_json = stored_metadata_json();
    let mut group = c.benchmark_group("token_request_cpu");
    group.throughput(Throughput::Elements(1));
    group.bench_function("client_credentials ES256", |b| {
        b.iter(|| {
            let form = FormParams::parse(black_box(TOKEN_BODY)).expect("form");
            check_presentation(Some(black_box(&header)), &form).expect("one method");
            let claim = basic_claim(Some(black_box(&header)), &form)
                .expect("credentials")
                .expect("present");
            let metadata: ClientMetadata = serde_json::from_str(&metadata_json).expect("metadata");
            let presented = claim.credential.as_ref().expect("secret");
            assert!(master.verify_client_secret(presented.expose(), &stored));
            let request = client_credentials::parse(&form).expect("request");
            let grant =
                client_credentials::decide(&request, &claim.client_id, &metadata, &[], ISSUER)
                    .expect("grant");
            let claims = AccessTokenClaims::for_grant(
                ISSUER,
                &claim.client_id,
                &grant,
                NOW,
                random_token(16),
            );
            let access_token = ring.sign_access_token(&claims, NOW).expect("sign");
            let response = TokenResponse {
                access_token,
                token_type: "Bearer",
                expires_in: grant.lifetime,
                scope: claims.scope,
                refresh_token: None,
                issued_token_type: None,
                authorization_details: None,
                dpop_nonce: None,
            };
            serde_json::to_vec(&response).expect("response JSON")
        })
    });
    group.finish();
}

/// The store calls of the token path on SQLite (a file in a temporary
/// directory, as `custos serve` uses it): the client lookup every request
/// makes, and the audit writer's batched insert, per event. These are
/// latencies seen from one caller, including sqlx's hand-off to its SQLite
/// worker thread and back.
fn store_sqlite(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = std::env::temp_dir().join(format!("custos-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let url = format!("sqlite://{}", dir.join("custos.db").display());
    let store = runtime
        .block_on(custos_store::connect(&custos_store::ConnectOptions {
            url,
            max_connections: 16,
        }))
        .expect("open SQLite store");
    let master = master();
    let secret = random_token(32);
    let client = custos_store::ClientRecord {
        client_id: CLIENT_ID.into(),
        metadata_json: stored_metadata_json(),
        secret_hash: Some(master.hash_client_secret(&secret)),
        secret_created_at: Some(NOW),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        registration_token_hash: Some(random_token(32).into_bytes()),
        created_at: NOW,
        updated_at: NOW,
        disabled_at: None,
        version: 1,
    };
    runtime
        .block_on(store.insert_client(&client))
        .expect("insert client");

    c.bench_function("store_sqlite/get_client", |b| {
        b.iter(|| {
            runtime
                .block_on(store.get_client(black_box(CLIENT_ID)))
                .expect("query")
                .expect("client")
        })
    });

    // Times must increase from batch to batch, as the server's do: the
    // audit table's time indexes make out-of-order inserts far costlier.
    let mut clock_ms = NOW * 1000;
    let mut events_at = |batch: usize| -> Vec<AuditEvent> {
        (0..batch)
            .map(|_| {
                clock_ms += 1;
                let mut event =
                    AuditEvent::new(event_type::TOKEN_ISSUED, clock_ms, Outcome::Success);
                event.client_id = Some(CLIENT_ID.into());
                event.grant_type = Some("client_credentials".into());
                event.scope = Some("read".into());
                event.resource = Some(ISSUER.into());
                event.source_addr = Some("127.0.0.1".into());
                event
            })
            .collect()
    };
    let mut group = c.benchmark_group("store_sqlite/append_events");
    for batch in [100usize, 2048] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}"), |b| {
            b.iter_batched(
                || events_at(batch),
                |events| {
                    runtime
                        .block_on(store.append_events(&events))
                        .expect("append")
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    runtime.block_on(store.close());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(
    benches,
    signing,
    client_authentication,
    client_assertion,
    token_request_cpu,
    store_sqlite
);
criterion_main!(benches);
