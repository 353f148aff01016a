//! JOSE building blocks: the accepted signature algorithms and compact JWS
//! parsing (RFC 7515 §7.1) with bounded sizes.
//!
//! Only asymmetric algorithms exist here: `none` and the HMAC algorithms
//! (`HS256` …) cannot be named, so a token can never be "verified" with a
//! public key used as an HMAC secret.

use aws_lc_rs::signature::{self, RsaParameters, VerificationAlgorithm};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm this crate verifies (RFC 7518 §3, RFC 8037).
///
/// ```
/// use custos_verifier::Algorithm;
///
/// assert_eq!("ES256".parse::<Algorithm>(), Ok(Algorithm::ES256));
/// assert!("none".parse::<Algorithm>().is_err());
/// assert!("HS256".parse::<Algorithm>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256: custos's default.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519 (RFC 8037).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (keys of 2048 to 8192 bits).
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
}

impl Algorithm {
    /// Every algorithm this crate knows, the default allow-list.
    pub const ALL: [Algorithm; 9] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];

    /// The JOSE name, e.g. `"ES256"`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
        }
    }

    /// The RSA parameters of an RSA algorithm.
    pub(crate) fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }

    /// The aws-lc-rs verification algorithm; ECDSA signatures in JWS are
    /// the fixed-length `r || s` (RFC 7518 §3.4).
    pub(crate) fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
            rsa => rsa
                .rsa_parameters()
                .map_or(&signature::RSA_PKCS1_2048_8192_SHA256, |p| p),
        }
    }

    /// The exact signature length, where the algorithm fixes it.
    pub(crate) fn signature_len(self) -> Option<usize> {
        match self {
            Algorithm::ES256 | Algorithm::EdDSA => Some(64),
            Algorithm::ES384 => Some(96),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an algorithm name this crate does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported JWS algorithm (only asymmetric ES256, ES384, EdDSA, RS*, PS* are accepted)")]
pub struct UnsupportedAlgorithm;

impl FromStr for Algorithm {
    type Err = UnsupportedAlgorithm;

    /// Exact, case-sensitive JOSE names (RFC 7515 §4.1.1).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|alg| alg.name() == name)
            .ok_or(UnsupportedAlgorithm)
    }
}

/// A compact JWS split and decoded, not yet verified.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    /// The protected header.
    pub header: Map<String, Value>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`.
    pub signing_input: &'a str,
    /// The payload part, still base64url (decoded only after the signature).
    pub payload_b64: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// Splits a compact JWS of at most `max_len` bytes whose header part is at
/// most `max_header` characters. Errors are descriptions for the client.
pub(crate) fn split(token: &str, max_len: usize, max_header: usize) -> Result<Jws<'_>, String> {
    if token.len() > max_len {
        return Err(format!("is longer than {max_len} bytes"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("is not a JWS in compact serialization (three base64url parts)".into());
    };
    if header.is_empty() || payload.is_empty() {
        return Err("has an empty header or payload".into());
    }
    if signature.is_empty() {
        return Err("is not signed".into());
    }
    if header.len() > max_header {
        return Err(format!("header is longer than {max_header} characters"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature is not base64url".to_owned())?;
    let header_len = header.len();
    let header = decode_object(header).ok_or("header is not a base64url JSON object")?;
    let signing_input = &token[..header_len + 1 + payload.len()];
    Ok(Jws {
        header,
        signing_input,
        payload_b64: payload,
        signature,
    })
}

/// Decodes a base64url JSON object, `None` when either layer is malformed.
pub(crate) fn decode_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The header's `alg`, when it is one of `allowed`.
pub(crate) fn header_algorithm(
    header: &Map<String, Value>,
    allowed: &[Algorithm],
) -> Result<Algorithm, String> {
    let Some(Value::String(name)) = header.get("alg") else {
        return Err("header has no alg".into());
    };
    match name.parse::<Algorithm>() {
        Ok(alg) if allowed.contains(&alg) => Ok(alg),
        _ => Err(format!(
            "alg '{}' is not accepted; accepted: {}",
            printable(name, 20),
            names(allowed)
        )),
    }
}

/// RFC 7515 §4.1.11: extensions marked critical that are not understood
/// must be refused; this crate understands none.
pub(crate) fn refuse_crit(header: &Map<String, Value>) -> Result<(), String> {
    if header.contains_key("crit") {
        return Err("header lists critical extensions (crit), none of which is supported".into());
    }
    Ok(())
}

/// Space-separated names, e.g. for `algs="ES256 EdDSA"`.
pub(crate) fn names(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|alg| alg.name())
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most `max` characters of untrusted text, printable ASCII only, for
/// error descriptions.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// A JWT NumericDate (RFC 7519 §2): integer or fractional seconds, rounded
/// down; `None` for anything else.
pub(crate) fn numeric_date(value: &Value) -> Option<i64> {
    let Value::Number(number) = value else {
        return None;
    };
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|seconds| seconds.is_finite())
            // `as` saturates: a huge value is far in the future.
            .map(|seconds| seconds.floor() as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_and_never_none_or_hmac() {
        for alg in Algorithm::ALL {
            assert_eq!(alg.name().parse::<Algorithm>(), Ok(alg));
        }
        for name in [
            "none", "None", "HS256", "HS384", "HS512", "es256", "ES256K", "",
        ] {
            assert!(name.parse::<Algorithm>().is_err(), "{name}");
        }
    }

    #[test]
    fn split_refuses_malformed_tokens() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{}"#);
        let good = format!("{header}.{payload}.AAAA");
        let jws = split(&good, 1000, 100).unwrap();
        assert_eq!(jws.signing_input, format!("{header}.{payload}"));
        assert_eq!(jws.payload_b64, payload);
        assert_eq!(jws.signature, vec![0, 0, 0]);
        for bad in [
            "".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d.e".to_owned(),
            format!("{header}.{payload}."),
            format!("{header}..AAAA"),
            format!(".{payload}.AAAA"),
            format!("{header}.{payload}.!!"),
            format!("{payload}x.{payload}.AAAA"),
            format!("{}.{payload}.AAAA", URL_SAFE_NO_PAD.encode(b"[1]")),
        ] {
            assert!(split(&bad, 1000, 100).is_err(), "{bad}");
        }
        assert!(split(&good, 10, 100).unwrap_err().contains("longer"));
        assert!(split(&good, 1000, 5).unwrap_err().contains("header"));
    }

    #[test]
    fn header_algorithm_uses_the_allow_list() {
        let header = |alg: &str| {
            decode_object(&URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#))).unwrap()
        };
        assert_eq!(
            header_algorithm(&header("ES256"), &[Algorithm::ES256]),
            Ok(Algorithm::ES256)
        );
        assert!(header_algorithm(&header("EdDSA"), &[Algorithm::ES256]).is_err());
        assert!(header_algorithm(&header("none"), &Algorithm::ALL).is_err());
        assert!(header_algorithm(&header("HS256"), &Algorithm::ALL).is_err());
        assert!(header_algorithm(&Map::new(), &Algorithm::ALL).is_err());
    }

    #[test]
    fn printable_sanitizes_and_truncates() {
        assert_eq!(printable("ab\"c", 10), "ab\"c");
        assert_eq!(printable("a\u{0}\n\u{e9}", 10), "a???");
        assert_eq!(printable("abcdef", 3), "abc...");
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(&serde_json::json!(5)), Some(5));
        assert_eq!(numeric_date(&serde_json::json!(5.9)), Some(5));
        assert_eq!(numeric_date(&serde_json::json!(1e300)), Some(i64::MAX));
        assert_eq!(numeric_date(&serde_json::json!("5")), None);
    }
}
