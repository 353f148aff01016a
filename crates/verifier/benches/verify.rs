//! The cost of accepting a token, against the cost of one ES256
//! verification: a Bearer token (header, signature with the cached key,
//! claims, scopes) and a DPoP-bound token with its proof (the proof's key
//! is parsed from its header each time, a second ES256 verification, and
//! its `jti` recorded).
//!
//! `cargo bench -p custos-verifier --bench verify -- --warm-up-time 1 --measurement-time 3`

use aws_lc_rs::signature::{ParsedPublicKey, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use custos_verifier::testing::{TestIssuer, TestKey};
use custos_verifier::{MemoryReplayStore, Request, Verifier};
use std::hint::black_box;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "https://mcp.example.com/mcp";

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let issuer = TestIssuer::new(ISS);
    let verifier = Verifier::builder(ISS, AUD)
        .jwks(issuer.jwks())
        .required_scopes(["mcp:tools"])
        // Every iteration records a proof; room for all of them.
        .replay_store(MemoryReplayStore::new(50_000_000))
        .build()
        .expect("verifier");
    runtime.block_on(verifier.warm_up()).expect("keys");

    let token = issuer.token(AUD).scope("mcp:tools").sign();
    let bearer = format!("Bearer {token}");
    c.bench_function("bearer token: signature + claims (JWKS cached)", |b| {
        b.iter(|| {
            let request = Request::new("POST", AUD).authorization(&bearer);
            runtime
                .block_on(verifier.verify(black_box(&request)))
                .expect("valid")
        })
    });

    let client_key = TestKey::es256();
    let bound = issuer
        .token(AUD)
        .scope("mcp:tools")
        .dpop_bound(&client_key)
        .sign();
    let dpop = format!("DPoP {bound}");
    c.bench_function("DPoP-bound token + proof (ath, jkt, replay store)", |b| {
        b.iter_batched(
            || client_key.proof("POST", AUD).access_token(&bound).sign(),
            |proof| {
                let request = Request::new("POST", AUD).authorization(&dpop).dpop(&proof);
                runtime
                    .block_on(verifier.verify(black_box(&request)))
                    .expect("valid")
            },
            BatchSize::SmallInput,
        )
    });

    // One ES256 verification of the same token, nothing else.
    let (input, signature) = token.rsplit_once('.').expect("JWS");
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("base64url");
    let jwk = issuer.key().public_jwk();
    let mut point = vec![0x04];
    for coordinate in ["x", "y"] {
        let text = jwk[coordinate].as_str().expect("coordinate");
        point.extend(URL_SAFE_NO_PAD.decode(text).expect("base64url"));
    }
    let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).expect("key");
    c.bench_function("one ES256 verification (key prepared)", |b| {
        b.iter(|| {
            parsed
                .verify_sig(black_box(input.as_bytes()), black_box(&signature))
                .expect("valid")
        })
    });
    c.bench_function("one ES256 verification (key parsed each time)", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, black_box(&point))
                .verify(black_box(input.as_bytes()), black_box(&signature))
                .expect("valid")
        })
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
