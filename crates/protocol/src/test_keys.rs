//! Test support: a fresh P-256 key with its public JWK Set, for tests that
//! sign JWTs (client assertions, workload tokens).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;

pub(crate) struct TestKey {
    /// The private key, PKCS#8 DER (`EncodingKey::from_ec_der`).
    pub pkcs8: Vec<u8>,
    /// The public key as a one-key JWK Set with `kid`, ES256.
    pub jwks: JwkSet,
}

pub(crate) fn test_key(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwks = serde_json::from_value(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
    .unwrap();
    TestKey {
        pkcs8: pkcs8.as_ref().to_vec(),
        jwks,
    }
}
