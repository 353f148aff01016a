//! Signing keys: generation, sealing at rest, rotation, the published JWKS,
//! and signing of access tokens.
//!
//! A key's life: created → published (in the JWKS) → from `activates_at`
//! signs → when a newer key activates it is retired (stops signing) → it
//! stays published until every token it signed has expired
//! (`retired_at + MAX_TOKEN_LIFETIME`) → deleted. The delay between
//! publishing and signing lets every replica and every resource server's
//! JWKS cache see a key before any token signed with it arrives.
//!
//! Signing uses aws-lc-rs key pairs parsed once and kept; the JWS layout is
//! `protocol::jws`. (jsonwebtoken re-parses the PKCS#8 key on every
//! signature, which would halve issuance throughput.)

use crate::crypto::{KeyError, MasterKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
    RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use custos_protocol::access_token::{VerificationKey, ACCESS_TOKEN_TYP};
use custos_protocol::jws::{assemble, encode_header, signing_input, JwsHeader};
use custos_protocol::metadata::MAX_ACCESS_TOKEN_LIFETIME;
use custos_store::SigningKeyRecord;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use std::sync::{Arc, RwLock};

/// How long a retired key stays published: the longest token lifetime plus
/// a minute of clock skew.
pub const MAX_TOKEN_LIFETIME: i64 = MAX_ACCESS_TOKEN_LIFETIME as i64 + 60;

/// The algorithm custos signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Es256,
    EdDsa,
    Rs256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Rs256 => "RS256",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(text))
    }

    fn jwt_algorithm(self) -> Algorithm {
        match self {
            SigningAlg::Es256 => Algorithm::ES256,
            SigningAlg::EdDsa => Algorithm::EdDSA,
            SigningAlg::Rs256 => Algorithm::RS256,
        }
    }
}

enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

struct Signer {
    kid: String,
    header_b64: String,
    key: Arc<PrivateKey>,
    activates_at: i64,
    retired_at: Option<i64>,
}

impl Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match self.key.as_ref() {
            PrivateKey::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Crypto("ecdsa sign")),
            PrivateKey::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            PrivateKey::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                    .map_err(|_| KeyError::Crypto("rsa sign"))?;
                Ok(signature)
            }
        }
    }

    fn signs_at(&self, now: i64) -> bool {
        self.activates_at <= now && self.retired_at.is_none_or(|r| now < r)
    }
}

/// A key as `GET /admin/keys` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    pub published_until: Option<i64>,
}

struct KeySet {
    /// Newest first.
    signers: Vec<Arc<Signer>>,
    verification: Arc<Vec<VerificationKey>>,
    jwks: Arc<serde_json::Value>,
    infos: Vec<KeyInfo>,
}

/// The loaded keys, replaced wholesale on every reload.
pub struct KeyRing {
    state: RwLock<Arc<KeySet>>,
}

impl KeyRing {
    pub fn empty() -> Self {
        KeyRing {
            state: RwLock::new(Arc::new(KeySet {
                signers: Vec::new(),
                verification: Arc::new(Vec::new()),
                jwks: Arc::new(serde_json::json!({"keys": []})),
                infos: Vec::new(),
            })),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the ring from the stored keys at `now`. Keys already loaded
    /// are reused rather than decrypted again.
    pub fn load(
        &self,
        records: &[SigningKeyRecord],
        master: &MasterKey,
        now: i64,
    ) -> Result<(), KeyError> {
        let previous = self.current();
        let mut signers = Vec::new();
        let mut verification = Vec::new();
        let mut jwks = Vec::new();
        let mut infos = Vec::new();
        for record in records {
            let published_until = record.retired_at.map(|r| r + MAX_TOKEN_LIFETIME);
            infos.push(KeyInfo {
                kid: record.kid.clone(),
                alg: record.alg.clone(),
                created_at: record.created_at,
                activates_at: record.activates_at,
                retired_at: record.retired_at,
                published_until,
            });
            if published_until.is_some_and(|until| until <= now) {
                continue;
            }
            let alg = SigningAlg::parse(&record.alg)
                .ok_or(KeyError::Crypto("unknown stored key algorithm"))?;
            let jwk: serde_json::Value = serde_json::from_str(&record.public_jwk)
                .map_err(|_| KeyError::Crypto("stored public JWK"))?;
            let signer = match previous.signers.iter().find(|s| s.kid == record.kid) {
                Some(existing) => Arc::new(Signer {
                    kid: existing.kid.clone(),
                    header_b64: existing.header_b64.clone(),
                    key: existing.key.clone(),
                    activates_at: record.activates_at,
                    retired_at: record.retired_at,
                }),
                None => {
                    let pkcs8 = master.open(&record.sealed_private_key, record.kid.as_bytes())?;
                    Arc::new(Signer {
                        kid: record.kid.clone(),
                        header_b64: encode_header(&JwsHeader {
                            alg: alg.as_str(),
                            kid: &record.kid,
                            typ: ACCESS_TOKEN_TYP,
                        }),
                        key: Arc::new(parse_private(alg, &pkcs8)?),
                        activates_at: record.activates_at,
                        retired_at: record.retired_at,
                    })
                }
            };
            verification.push(VerificationKey {
                kid: record.kid.clone(),
                alg: alg.jwt_algorithm(),
                key: decoding_key(&jwk)?,
            });
            jwks.push(jwk);
            signers.push(signer);
        }
        signers.sort_by(|a, b| {
            b.activates_at
                .cmp(&a.activates_at)
                .then_with(|| b.kid.cmp(&a.kid))
        });
        let next = Arc::new(KeySet {
            signers,
            verification: Arc::new(verification),
            jwks: Arc::new(serde_json::json!({ "keys": jwks })),
            infos,
        });
        match self.state.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }

    /// Signs `claims` as an access token with the key that signs at `now`.
    pub fn sign_access_token<C: Serialize>(
        &self,
        claims: &C,
        now: i64,
    ) -> Result<String, KeyError> {
        let state = self.current();
        let signer = state
            .signers
            .iter()
            .find(|s| s.signs_at(now))
            .or_else(|| state.signers.iter().find(|s| s.activates_at <= now))
            .ok_or(KeyError::Crypto("no signing key is active"))?;
        let input =
            signing_input(&signer.header_b64, claims).map_err(|_| KeyError::Crypto("claims"))?;
        let signature = signer.sign(input.as_bytes())?;
        Ok(assemble(input, &signature))
    }

    /// The published JWK Set (current, next and still-valid previous keys).
    pub fn jwks(&self) -> Arc<serde_json::Value> {
        self.current().jwks.clone()
    }

    pub fn verification_keys(&self) -> Arc<Vec<VerificationKey>> {
        self.current().verification.clone()
    }

    pub fn infos(&self) -> Vec<KeyInfo> {
        self.current().infos.clone()
    }
}

fn parse_private(alg: SigningAlg, pkcs8: &[u8]) -> Result<PrivateKey, KeyError> {
    let bad = |_| KeyError::Crypto("stored private key does not parse");
    Ok(match alg {
        SigningAlg::Es256 => PrivateKey::Ecdsa(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).map_err(bad)?,
        ),
        SigningAlg::EdDsa => {
            PrivateKey::Ed25519(Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(bad)?)
        }
        SigningAlg::Rs256 => PrivateKey::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(bad)?),
    })
}

fn decoding_key(jwk: &serde_json::Value) -> Result<DecodingKey, KeyError> {
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwk.clone()).map_err(|_| KeyError::Crypto("stored public JWK"))?;
    DecodingKey::from_jwk(&jwk).map_err(|_| KeyError::Crypto("stored public JWK"))
}

/// Generates a key pair for `alg` and seals it: the record to store.
pub fn generate_key(
    alg: SigningAlg,
    master: &MasterKey,
    now: i64,
    activates_at: i64,
) -> Result<SigningKeyRecord, KeyError> {
    let rng = SystemRandom::new();
    let fail = |_| KeyError::Crypto("key generation");
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (pkcs8, members): (Vec<u8>, Vec<(&str, String)>) = match alg {
        SigningAlg::Es256 => {
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(fail)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref())
                .map_err(|_| KeyError::Crypto("key generation"))?;
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err(KeyError::Crypto("unexpected P-256 public key encoding"));
            }
            (
                doc.as_ref().to_vec(),
                vec![
                    ("crv", "P-256".into()),
                    ("kty", "EC".into()),
                    ("x", b64(&point[1..33])),
                    ("y", b64(&point[33..65])),
                ],
            )
        }
        SigningAlg::EdDsa => {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(fail)?;
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref())
                .map_err(|_| KeyError::Crypto("key generation"))?;
            (
                doc.as_ref().to_vec(),
                vec![
                    ("crv", "Ed25519".into()),
                    ("kty", "OKP".into()),
                    ("x", b64(pair.public_key().as_ref())),
                ],
            )
        }
        SigningAlg::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(fail)?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).map_err(fail)?;
            let pk = pair.public_key();
            (
                der.as_ref().to_vec(),
                vec![
                    ("e", b64(pk.exponent().big_endian_without_leading_zero())),
                    ("kty", "RSA".into()),
                    ("n", b64(pk.modulus().big_endian_without_leading_zero())),
                ],
            )
        }
    };
    let mut jwk = serde_json::Map::new();
    for (name, value) in &members {
        jwk.insert((*name).to_owned(), serde_json::Value::String(value.clone()));
    }
    let kid = thumbprint(&jwk)?;
    jwk.insert("kid".into(), kid.clone().into());
    jwk.insert("alg".into(), alg.as_str().into());
    jwk.insert("use".into(), "sig".into());
    let sealed = master.seal(&pkcs8, kid.as_bytes())?;
    Ok(SigningKeyRecord {
        kid,
        alg: alg.as_str().to_owned(),
        public_jwk: serde_json::Value::Object(jwk).to_string(),
        sealed_private_key: sealed,
        created_at: now,
        activates_at,
        retired_at: None,
    })
}

/// RFC 7638 JWK thumbprint (SHA-256) of a public key's members.
fn thumbprint(members: &serde_json::Map<String, serde_json::Value>) -> Result<String, KeyError> {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(members.clone().into())
        .map_err(|_| KeyError::Crypto("public JWK"))?;
    Ok(jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256))
}

#[cfg(test)]
mod tests;
