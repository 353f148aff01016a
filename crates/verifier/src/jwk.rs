//! Public JSON Web Keys (RFC 7517) of the kinds JWS signatures use, their
//! RFC 7638 thumbprints, and key sets.

use crate::jose::Algorithm;
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Most keys read from one key set; the rest are ignored.
pub const MAX_KEYS: usize = 64;

/// Members only a private or symmetric key has (RFC 7518 §6.2.2, §6.3.2,
/// §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Smallest RSA modulus accepted, bytes (2048 bits).
const MIN_RSA_MODULUS: usize = 256;

/// Why a JWK is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// `kty`, `crv` or another member is missing or of an unsupported value.
    #[error("unsupported or malformed JWK: {0}")]
    Unsupported(&'static str),
    /// The key carries private or symmetric key material.
    #[error("the JWK contains private key material ('{0}')")]
    Private(&'static str),
    /// The key set document itself is malformed.
    #[error("malformed JWK set: {0}")]
    MalformedSet(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    P256 { x: String, y: String },
    P384 { x: String, y: String },
    Ed25519 { x: String },
    Rsa { n: String, e: String },
}

/// A public signature key read from a JWK: EC P-256/P-384, OKP Ed25519 or
/// RSA (at least 2048 bits). Coordinates are checked for length; the point
/// itself is checked when the key is first used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    kid: Option<String>,
    alg: Option<String>,
    material: Material,
    thumbprint: String,
}

impl PublicJwk {
    /// Reads a public JWK. Refuses symmetric keys, private members, unknown
    /// key types and curves, and coordinates of the wrong length.
    pub fn from_json(jwk: &Map<String, Value>) -> Result<Self, JwkError> {
        if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
            return Err(JwkError::Private(member));
        }
        let text = |name: &'static str| -> Result<&str, JwkError> {
            match jwk.get(name) {
                Some(Value::String(value)) => Ok(value),
                _ => Err(JwkError::Unsupported(name)),
            }
        };
        let bytes = |name: &'static str, len: Option<usize>| -> Result<String, JwkError> {
            let value = text(name)?;
            let decoded = URL_SAFE_NO_PAD
                .decode(value)
                .map_err(|_| JwkError::Unsupported(name))?;
            if decoded.is_empty() || len.is_some_and(|len| decoded.len() != len) {
                return Err(JwkError::Unsupported(name));
            }
            Ok(value.to_owned())
        };
        let material = match (text("kty")?, jwk.get("crv").and_then(Value::as_str)) {
            ("EC", Some("P-256")) => Material::P256 {
                x: bytes("x", Some(32))?,
                y: bytes("y", Some(32))?,
            },
            ("EC", Some("P-384")) => Material::P384 {
                x: bytes("x", Some(48))?,
                y: bytes("y", Some(48))?,
            },
            ("OKP", Some("Ed25519")) => Material::Ed25519 {
                x: bytes("x", Some(32))?,
            },
            ("RSA", _) => {
                let n = bytes("n", None)?;
                let modulus = URL_SAFE_NO_PAD.decode(&n).unwrap_or_default();
                let significant = modulus.iter().skip_while(|b| **b == 0).count();
                if significant < MIN_RSA_MODULUS {
                    return Err(JwkError::Unsupported(
                        "n (RSA keys must have 2048 bits or more)",
                    ));
                }
                Material::Rsa {
                    n,
                    e: bytes("e", None)?,
                }
            }
            ("oct", _) => return Err(JwkError::Private("k")),
            ("EC" | "OKP", _) => return Err(JwkError::Unsupported("crv")),
            _ => return Err(JwkError::Unsupported("kty")),
        };
        let thumbprint = thumbprint_of(&material);
        Ok(PublicJwk {
            kid: jwk.get("kid").and_then(Value::as_str).map(str::to_owned),
            alg: jwk.get("alg").and_then(Value::as_str).map(str::to_owned),
            material,
            thumbprint,
        })
    }

    /// The key id, if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The RFC 7638 SHA-256 thumbprint, base64url: what `cnf.jkt` carries
    /// for a DPoP key and what custos uses as `kid`.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Whether `alg` can be verified with this key: the key type and curve
    /// fit, and the JWK's own `alg`, when present, names it.
    pub fn fits(&self, alg: Algorithm) -> bool {
        if self
            .alg
            .as_deref()
            .is_some_and(|declared| declared != alg.name())
        {
            return false;
        }
        matches!(
            (&self.material, alg),
            (Material::P256 { .. }, Algorithm::ES256)
                | (Material::P384 { .. }, Algorithm::ES384)
                | (Material::Ed25519 { .. }, Algorithm::EdDSA)
        ) || (matches!(self.material, Material::Rsa { .. }) && alg.rsa_parameters().is_some())
    }

    /// The key prepared for verifying `alg`, `None` when it does not fit or
    /// is not a valid key (e.g. a point off the curve).
    pub(crate) fn parsed(&self, alg: Algorithm) -> Option<ParsedPublicKey> {
        if !self.fits(alg) {
            return None;
        }
        let decode = |value: &str| URL_SAFE_NO_PAD.decode(value).ok();
        match &self.material {
            Material::P256 { x, y } | Material::P384 { x, y } => {
                let mut point = vec![0x04];
                point.extend(decode(x)?);
                point.extend(decode(y)?);
                ParsedPublicKey::new(alg.verification(), point).ok()
            }
            Material::Ed25519 { x } => ParsedPublicKey::new(alg.verification(), decode(x)?).ok(),
            Material::Rsa { n, e } => {
                let (n, e) = (decode(n)?, decode(e)?);
                RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                }
                .to_parsed_public_key(alg.rsa_parameters()?)
                .ok()
            }
        }
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order,
/// without whitespace. The values are base64url or fixed names, so they
/// need no JSON escaping.
fn thumbprint_of(material: &Material) -> String {
    let json = match material {
        Material::P256 { x, y } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
        Material::P384 { x, y } => format!(r#"{{"crv":"P-384","kty":"EC","x":"{x}","y":"{y}"}}"#),
        Material::Ed25519 { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        Material::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
    };
    URL_SAFE_NO_PAD.encode(digest(&SHA256, json.as_bytes()))
}

/// A JWK set (RFC 7517 §5): the signature keys that were usable.
///
/// Keys meant for something else (`use` other than `sig`, `key_ops`
/// without `verify`), of unsupported types, or carrying private material
/// are skipped, as are keys past the first [`MAX_KEYS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<PublicJwk>,
}

impl JwkSet {
    /// A set of the given keys.
    pub fn new(keys: Vec<PublicJwk>) -> Self {
        JwkSet { keys }
    }

    /// Reads a JWK set document, e.g. the body of the issuer's `jwks_uri`.
    pub fn from_json(document: &[u8]) -> Result<Self, JwkError> {
        let value: Value = serde_json::from_slice(document)
            .map_err(|_| JwkError::MalformedSet("not a JSON document"))?;
        Self::from_value(&value)
    }

    /// Reads a JWK set from parsed JSON.
    pub fn from_value(document: &Value) -> Result<Self, JwkError> {
        let Some(Value::Array(keys)) = document.get("keys") else {
            return Err(JwkError::MalformedSet("no 'keys' array"));
        };
        let keys = keys
            .iter()
            .filter_map(Value::as_object)
            .filter(|jwk| is_for_signatures(jwk))
            .filter_map(|jwk| PublicJwk::from_json(jwk).ok())
            .take(MAX_KEYS)
            .collect();
        Ok(JwkSet { keys })
    }

    /// The usable keys.
    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// Whether no key was usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn is_for_signatures(jwk: &Map<String, Value>) -> bool {
    let use_ok = jwk.get("use").is_none_or(|u| u == "sig");
    let ops_ok = match jwk.get("key_ops") {
        None => true,
        Some(Value::Array(ops)) => ops.iter().any(|op| op == "verify"),
        Some(_) => false,
    };
    use_ok && ops_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn rfc7638_3_1_example_thumbprint() {
        let jwk = object(json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        }));
        let key = PublicJwk::from_json(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(key.kid(), Some("2011-04-29"));
        assert!(key.fits(Algorithm::RS256));
        assert!(!key.fits(Algorithm::PS256), "the JWK's alg restricts it");
        assert!(!key.fits(Algorithm::ES256));
        assert!(key.parsed(Algorithm::RS256).is_some());
    }

    #[test]
    fn rfc8037_a_3_ed25519_thumbprint() {
        let jwk = object(json!({
            "kty": "OKP", "crv": "Ed25519",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        }));
        let key = PublicJwk::from_json(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        assert!(key.fits(Algorithm::EdDSA));
        assert!(key.parsed(Algorithm::EdDSA).is_some());
    }

    #[test]
    fn refuses_private_symmetric_and_unknown_keys() {
        let private = object(json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}));
        assert_eq!(PublicJwk::from_json(&private), Err(JwkError::Private("d")));
        let oct = object(json!({"kty":"oct","k":"c2VjcmV0"}));
        assert!(matches!(
            PublicJwk::from_json(&oct),
            Err(JwkError::Private(_))
        ));
        let oct_without_k = object(json!({"kty":"oct"}));
        assert!(PublicJwk::from_json(&oct_without_k).is_err());
        for jwk in [
            json!({"kty":"EC","crv":"P-521","x":"AA","y":"AA"}),
            json!({"kty":"EC","crv":"P-256","x":"AA","y":"AA"}),
            json!({"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
            json!({"kty":"RSA","n":"AQAB","e":"AQAB"}),
            json!({"kty":"XYZ"}),
            json!({}),
        ] {
            assert!(PublicJwk::from_json(&object(jwk.clone())).is_err(), "{jwk}");
        }
    }

    #[test]
    fn point_off_the_curve_is_not_usable() {
        let x = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let jwk = object(json!({"kty":"EC","crv":"P-256","x": x,"y": x}));
        let key = PublicJwk::from_json(&jwk).unwrap();
        assert!(key.parsed(Algorithm::ES256).is_none());
    }

    #[test]
    fn sets_skip_what_is_not_a_signature_key() {
        let ed =
            json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let mut enc = ed.clone();
        enc["use"] = json!("enc");
        let mut ops = ed.clone();
        ops["key_ops"] = json!(["encrypt"]);
        let document = json!({"keys": [ed, enc, ops, {"kty":"oct","k":"AA"}, 7]});
        let set = JwkSet::from_value(&document).unwrap();
        assert_eq!(set.keys().len(), 1);
        assert!(JwkSet::from_json(b"{}").is_err());
        assert!(JwkSet::from_json(b"not json").is_err());
        let many = json!({"keys": vec![document["keys"][0].clone(); 100]});
        assert_eq!(JwkSet::from_value(&many).unwrap().keys().len(), MAX_KEYS);
    }
}
