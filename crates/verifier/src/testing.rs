//! Tokens and DPoP proofs for tests (feature `testing`): an in-process
//! issuer whose keys you publish with [`TestIssuer::jwks`], so a server's
//! tests need no running custos.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use custos_verifier::testing::{TestIssuer, TestKey};
//! use custos_verifier::{Request, Verifier};
//!
//! let issuer = TestIssuer::new("https://as.example");
//! let verifier = Verifier::builder(issuer.issuer(), "https://api.example")
//!     .jwks(issuer.jwks())
//!     .build()
//!     .unwrap();
//!
//! // A Bearer token:
//! let token = issuer.token("https://api.example").scope("read").sign();
//! let authorization = format!("Bearer {token}");
//! let request = Request::new("GET", "https://api.example/x").authorization(&authorization);
//! assert!(verifier.verify(&request).await.is_ok());
//!
//! // A DPoP-bound one, with its proof:
//! let client_key = TestKey::es256();
//! let token = issuer.token("https://api.example").dpop_bound(&client_key).sign();
//! let proof = client_key.proof("GET", "https://api.example/x").access_token(&token).sign();
//! let authorization = format!("DPoP {token}");
//! let request = Request::new("GET", "https://api.example/x")
//!     .authorization(&authorization)
//!     .dpop(&proof);
//! assert!(verifier.verify(&request).await.is_ok());
//! # }
//! ```

use crate::dpop::access_token_hash;
use crate::jose::Algorithm;
use crate::jwk::JwkSet;
use crate::jwk::PublicJwk;
use crate::jwks::StaticJwks;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaEncoding};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, seconds since the epoch (the system clock).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random base64url string of 16 bytes.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // Tests only: an RNG failure is a broken machine.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random number generator");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `x5t#S256` of a DER certificate: what a certificate-bound token's `cnf`
/// carries.
pub fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

enum Signer {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(aws_lc_rs::rsa::KeyPair, &'static dyn RsaEncoding),
}

/// A key pair that signs tokens or DPoP proofs.
pub struct TestKey {
    signer: Signer,
    alg: Algorithm,
    jwk: Map<String, Value>,
    thumbprint: String,
}

impl std::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestKey")
            .field("alg", &self.alg)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

impl TestKey {
    /// A new P-256 key for ES256.
    pub fn es256() -> Self {
        Self::generate(Algorithm::ES256)
    }

    /// A new key for `alg` (RSA keys have 2048 bits).
    pub fn generate(alg: Algorithm) -> Self {
        let b64 = |bytes: &[u8]| Value::from(URL_SAFE_NO_PAD.encode(bytes));
        let (signer, jwk) = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, crv, len) = if alg == Algorithm::ES256 {
                    (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::generate(signing).expect("EC key generation");
                let point = pair.public_key().as_ref().to_vec();
                let jwk = json!({
                    "kty": "EC", "crv": crv,
                    "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..]),
                });
                (Signer::Ecdsa(pair), jwk)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::generate().expect("Ed25519 key generation");
                let jwk =
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
                (Signer::Ed25519(pair), jwk)
            }
            rsa => {
                let encoding: &'static dyn RsaEncoding = match rsa {
                    Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &signature::RSA_PSS_SHA256,
                    Algorithm::PS384 => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
                    .expect("RSA key generation");
                let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)});
                (Signer::Rsa(pair, encoding), jwk)
            }
        };
        let jwk = jwk.as_object().cloned().unwrap_or_default();
        let thumbprint = PublicJwk::from_json(&jwk)
            .map(|key| key.thumbprint().to_owned())
            .unwrap_or_default();
        TestKey {
            signer,
            alg,
            jwk,
            thumbprint,
        }
    }

    /// The algorithm it signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (`kty`, `crv`/`n`/`e`, coordinates only).
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.jwk.clone())
    }

    /// The RFC 7638 thumbprint: the `kid` custos gives its keys, and the
    /// `cnf.jkt` of tokens bound to this key.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Signs `header` and `claims` exactly as given (for tokens no issuer
    /// would make: another `alg`, no `typ`…).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let mut input = URL_SAFE_NO_PAD.encode(header.to_string());
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let rng = SystemRandom::new();
        let signature = match &self.signer {
            Signer::Ecdsa(pair) => pair
                .sign(&rng, input.as_bytes())
                .expect("ECDSA signing")
                .as_ref()
                .to_vec(),
            Signer::Ed25519(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Rsa(pair, encoding) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &rng, input.as_bytes(), &mut signature)
                    .expect("RSA signing");
                signature
            }
        };
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(signature));
        input
    }

    /// A DPoP proof for a request: `typ` dpop+jwt, this key's `jwk`, a
    /// random `jti`, `htm`, `htu`, `iat` now.
    pub fn proof(&self, htm: &str, htu: &str) -> JwtBuilder<'_> {
        JwtBuilder {
            key: self,
            header: json!({"typ": "dpop+jwt", "alg": self.alg.name(), "jwk": self.public_jwk()}),
            claims: json!({"jti": random_id(), "htm": htm, "htu": htu, "iat": now()}),
        }
    }
}

/// An issuer of test tokens, with one signing key.
#[derive(Debug)]
pub struct TestIssuer {
    issuer: String,
    key: TestKey,
}

impl TestIssuer {
    /// An issuer signing with a new ES256 key, as custos does by default.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self::with_key(issuer, TestKey::es256())
    }

    /// An issuer signing with `key`.
    pub fn with_key(issuer: impl Into<String>, key: TestKey) -> Self {
        TestIssuer {
            issuer: issuer.into(),
            key,
        }
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing key.
    pub fn key(&self) -> &TestKey {
        &self.key
    }

    /// The `kid` of its key (the key's thumbprint, as in custos).
    pub fn kid(&self) -> &str {
        self.key.thumbprint()
    }

    /// Its JWKS document, as its `jwks_uri` would serve it.
    pub fn jwks_document(&self) -> Value {
        let mut jwk = self.key.jwk.clone();
        jwk.insert("kid".into(), self.kid().into());
        jwk.insert("alg".into(), self.key.alg.name().into());
        jwk.insert("use".into(), "sig".into());
        json!({ "keys": [jwk] })
    }

    /// Its keys, for [`VerifierBuilder::jwks`](crate::VerifierBuilder::jwks).
    pub fn jwks(&self) -> StaticJwks {
        StaticJwks::new(JwkSet::from_value(&self.jwks_document()).unwrap_or_default())
    }

    /// An access token for `audience` as custos makes them: `typ` at+jwt,
    /// `kid`, and `iss`, `sub` (`alice`), `aud`, `client_id` (`client-1`),
    /// `iat` now, `exp` in 5 minutes, a random `jti`.
    pub fn token(&self, audience: &str) -> JwtBuilder<'_> {
        let now = now();
        JwtBuilder {
            key: &self.key,
            header: json!({"typ": "at+jwt", "alg": self.key.alg.name(), "kid": self.kid()}),
            claims: json!({
                "iss": self.issuer, "sub": "alice", "aud": audience, "client_id": "client-1",
                "iat": now, "exp": now + 300, "jti": random_id(),
            }),
        }
    }
}

/// A JWT being made: set claims and header members, then [`sign`](Self::sign).
#[derive(Debug)]
pub struct JwtBuilder<'a> {
    key: &'a TestKey,
    header: Value,
    claims: Value,
}

impl JwtBuilder<'_> {
    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims[name] = value.into();
        self
    }

    /// Removes a claim.
    pub fn without(mut self, name: &str) -> Self {
        if let Some(claims) = self.claims.as_object_mut() {
            claims.remove(name);
        }
        self
    }

    /// Sets a header member.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header[name] = value.into();
        self
    }

    /// Removes a header member.
    pub fn without_header(mut self, name: &str) -> Self {
        if let Some(header) = self.header.as_object_mut() {
            header.remove(name);
        }
        self
    }

    /// `sub`.
    pub fn subject(self, subject: &str) -> Self {
        self.claim("sub", subject)
    }

    /// `scope`, space-separated.
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// `iat`, and `exp` five minutes later (tokens; for proofs, `iat`).
    pub fn issued_at(self, iat: i64) -> Self {
        let has_exp = self.claims.get("exp").is_some();
        let this = self.claim("iat", iat);
        if has_exp {
            this.claim("exp", iat + 300)
        } else {
            this
        }
    }

    /// `cnf.jkt`: binds the token to a DPoP key.
    pub fn dpop_bound(self, key: &TestKey) -> Self {
        let mut cnf = self.claims.get("cnf").cloned().unwrap_or_else(|| json!({}));
        cnf["jkt"] = key.thumbprint().into();
        self.claim("cnf", cnf)
    }

    /// `cnf.x5t#S256`: binds the token to a client certificate (DER).
    pub fn certificate_bound(self, der: &[u8]) -> Self {
        let mut cnf = self.claims.get("cnf").cloned().unwrap_or_else(|| json!({}));
        cnf["x5t#S256"] = certificate_thumbprint(der).into();
        self.claim("cnf", cnf)
    }

    /// `jti`.
    pub fn jti(self, jti: &str) -> Self {
        self.claim("jti", jti)
    }

    /// A proof's `ath`: the hash of the token it goes with.
    pub fn access_token(self, token: &str) -> Self {
        self.claim("ath", access_token_hash(token))
    }

    /// The compact JWS.
    pub fn sign(&self) -> String {
        self.key.sign(&self.header, &self.claims)
    }
}
