//! DPoP proofs (RFC 9449): checking one `DPoP` header value against the
//! request it came with.
//!
//! [`verify_proof`] runs the checks of RFC 9449 §4.3 in order and returns
//! what the caller needs next: the key's thumbprint (`cnf.jkt`, §6), the
//! `jti` (whose single use the store decides, §11.1), `iat` and the
//! `nonce` claim (which the caller holds against its own nonces, §8).
//! Everything here is pure: the request's method and URL, the time and the
//! access token presented are arguments.
//!
//! The numbered checks of §4.3 and where they happen:
//!
//! 1. one `DPoP` header field: the HTTP edge;
//! 2. a single well-formed JWT, at most [`MAX_PROOF_LENGTH`] bytes;
//! 3. the required claims (`jti`, `htm`, `htu`, `iat`; `ath` with a token):
//!    read one by one after the signature, each with its own error;
//! 4. `typ` is `dpop+jwt`; 5. `alg` asymmetric and supported
//!    ([`DPOP_SIGNING_ALGS`]); 7. `jwk` a public key (read before it is
//!    used for 6., the signature);
//! 8. `htm`; 9. `htu` ([`htu_matches`]); 10. `nonce`: the caller;
//! 11. `iat` within `[now - max_age, now + max_skew]`;
//! 12. `ath` equal to [`access_token_hash`] when a token is presented (the
//!     `cnf.jkt` binding is the caller's comparison with
//!     [`VerifiedProof::jkt`]).

use crate::error::echo;
use crate::OAuthError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Algorithms accepted for DPoP proofs (asymmetric only), as advertised in
/// `dpop_signing_alg_values_supported`: every asymmetric algorithm
/// jsonwebtoken verifies with a key read from a JWK. Never `none`, never a
/// MAC (RFC 9449 §4.3 check 5).
pub const DPOP_SIGNING_ALGS: [&str; 9] = [
    "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// Longest proof accepted, bytes.
pub const MAX_PROOF_LENGTH: usize = 8192;

/// Longest `jti` accepted, bytes (the replay store's key).
const MAX_JTI_LENGTH: usize = 256;

/// JWK members that only a private or symmetric key has (RFC 7518 §6.2.2,
/// §6.3.2, §6.4; RFC 8037 §2): the `jwk` header must carry none of them.
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Longest request or proof text echoed in an error description.
const ECHO_CHARS: usize = 120;

/// What a proof is held to: the request it came with, the time, and the
/// access token presented alongside it.
#[derive(Clone, Copy)]
pub struct ProofRules<'a> {
    /// The request's method, e.g. "POST".
    pub htm: &'a str,
    /// The request's URL without query and fragment, as the server is known by.
    pub htu: &'a str,
    /// Now, seconds since the epoch.
    pub now: i64,
    /// How old an `iat` may be, seconds (e.g. 60) …
    pub max_age: i64,
    /// … and how far in the future (clock skew), seconds (e.g. 5).
    pub max_skew: i64,
    /// The access token the request presents, if any: then `ath` is required
    /// and must match (§4.3 check 12, §7).
    pub access_token: Option<&'a str>,
}

/// A proof that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's public key (base64url):
    /// what `cnf.jkt` carries.
    pub jkt: String,
    /// The proof's `jti`, for the store's single-use check (the caller
    /// records it).
    pub jti: String,
    pub iat: i64,
    /// The `nonce` claim, if any (the caller checks it against its server
    /// nonces).
    pub nonce: Option<String>,
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::invalid_dpop_proof(description)
}

/// Checks one DPoP proof (the `DPoP` header value) in RFC 9449 §4.3's
/// order. Every failure is `invalid_dpop_proof` with a precise description.
pub fn verify_proof(proof: &str, rules: &ProofRules<'_>) -> Result<VerifiedProof, OAuthError> {
    // Check 2: a single, well-formed JWT.
    let header = split(proof)?;
    // Check 4: the type.
    match header.get("typ") {
        Some(Value::String(typ)) if typ == "dpop+jwt" => {}
        Some(Value::String(typ)) => {
            return Err(invalid(format!(
                "DPoP proof typ must be 'dpop+jwt', not '{}' (RFC 9449 section 4.2)",
                echo(typ, ECHO_CHARS)
            )))
        }
        _ => {
            return Err(invalid(
                "DPoP proof header must carry typ 'dpop+jwt' (RFC 9449 section 4.2)",
            ))
        }
    }
    // Check 5: an asymmetric algorithm this server supports.
    let alg = signing_algorithm(&header)?;
    // RFC 7515 §4.1.11: an extension the server does not understand must
    // not be ignored; custos understands none.
    if header.contains_key("crit") {
        return Err(invalid(
            "DPoP proof header lists critical extensions (crit) this server does not understand",
        ));
    }
    // Check 7, before the key is used in check 6: a public key of the
    // algorithm's type.
    let jwk = public_jwk(&header, alg)?;
    // Check 6: the signature, by that key.
    let claims = verified_claims(proof, &jwk, alg)?;

    // Checks 3 and 8-12, claim by claim.
    let jti = required_string(&claims, "jti")?;
    if jti.is_empty() || jti.contains('\0') {
        return Err(invalid(
            "DPoP proof jti must not be empty or contain NUL characters",
        ));
    }
    if jti.len() > MAX_JTI_LENGTH {
        return Err(invalid(format!(
            "DPoP proof jti must be at most {MAX_JTI_LENGTH} bytes"
        )));
    }
    let htm = required_string(&claims, "htm")?;
    if htm != rules.htm {
        return Err(invalid(format!(
            "DPoP proof htm '{}' does not match the request method '{}'",
            echo(htm, ECHO_CHARS),
            echo(rules.htm, ECHO_CHARS)
        )));
    }
    let htu = required_string(&claims, "htu")?;
    if !htu_matches(htu, rules.htu) {
        return Err(invalid(format!(
            "DPoP proof htu '{}' does not match the request URL '{}' (query and fragment are ignored)",
            echo(htu, ECHO_CHARS),
            echo(rules.htu, ECHO_CHARS)
        )));
    }
    let nonce = match claims.get("nonce") {
        None => None,
        Some(Value::String(nonce)) if !nonce.is_empty() => Some(nonce.clone()),
        Some(_) => return Err(invalid("DPoP proof nonce must be a non-empty string")),
    };
    let iat = claims.get("iat").and_then(numeric_date).ok_or_else(|| {
        invalid("DPoP proof must carry a numeric iat claim (RFC 9449 section 4.2)")
    })?;
    if iat < rules.now.saturating_sub(rules.max_age) {
        return Err(invalid(format!(
            "DPoP proof iat is too old: a proof is accepted for {} seconds after it is made",
            rules.max_age
        )));
    }
    if iat > rules.now.saturating_add(rules.max_skew) {
        return Err(invalid("DPoP proof iat is in the future"));
    }
    if let Some(access_token) = rules.access_token {
        match claims.get("ath") {
            Some(Value::String(ath)) if *ath == access_token_hash(access_token) => {}
            Some(Value::String(_)) => {
                return Err(invalid(
                    "DPoP proof ath does not match the access token presented",
                ))
            }
            Some(_) => return Err(invalid("DPoP proof ath must be a string")),
            None => {
                return Err(invalid(
                    "DPoP proof must carry ath, the hash of the access token presented (RFC 9449 section 4.2)",
                ))
            }
        }
    }

    Ok(VerifiedProof {
        // `public_jwk` admitted only key types whose thumbprint is defined.
        jkt: jwk.thumbprint(ThumbprintHash::SHA256),
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// `base64url(SHA-256(access_token))`: the `ath` a proof carries (§4.2).
pub fn access_token_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// RFC 9449 §4.3 check 9: htu comparison ignoring query and fragment with
/// syntax-based normalization (scheme and host case, default port,
/// percent-encoding case) — pub so it can be property-tested.
///
/// Both sides must be absolute `http` or `https` URLs with a host and no
/// user information; anything else never matches. Beyond RFC 3986 §6.2.2's
/// case and percent-encoding rules, dot segments are removed and an empty
/// path is `/` (§6.2.3), and percent-encoded unreserved characters are
/// decoded (§6.2.2.2).
pub fn htu_matches(claimed: &str, request_url: &str) -> bool {
    match (normalized_target(claimed), normalized_target(request_url)) {
        (Some(claimed), Some(request)) => claimed == request,
        _ => false,
    }
}

/// `scheme://host:port/path`, normalized; `None` when `text` is not an
/// absolute http(s) URL with a host and without user information.
fn normalized_target(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    // The parser lowercases the scheme and a domain host, resolves dot
    // segments, and gives an http(s) URL a path of at least "/".
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!(
        "{}://{}:{}{}",
        url.scheme(),
        host,
        port,
        normalize_percent_encoding(url.path())
    ))
}

/// RFC 3986 §6.2.2.1-2: percent-encodings in uppercase, and those of
/// unreserved characters decoded. A `%` not followed by two hex digits is
/// kept as it is.
fn normalize_percent_encoding(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|hex| bytes[i] == b'%' && hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(char::from(byte));
                i += 3;
            }
            Some(byte) => {
                out.push_str(&format!("%{byte:02X}"));
                i += 3;
            }
            None => {
                // `path` is a str, so a multi-byte character is copied whole.
                let ch = path[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// §4.3 check 2: at most [`MAX_PROOF_LENGTH`] bytes, three non-empty
/// base64url parts, a JSON object for header and payload. Returns the
/// header.
fn split(proof: &str) -> Result<Map<String, Value>, OAuthError> {
    if proof.len() > MAX_PROOF_LENGTH {
        return Err(invalid(format!(
            "DPoP proof is longer than {MAX_PROOF_LENGTH} bytes"
        )));
    }
    let parts: Vec<&str> = proof.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(invalid(
            "DPoP proof must be a single JWS in compact serialization: three parts separated by '.'",
        ));
    };
    if signature.is_empty() {
        return Err(invalid(
            "DPoP proof must be signed: its signature part is empty",
        ));
    }
    if URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(invalid("DPoP proof signature is not base64url"));
    }
    let header = json_object(header)
        .ok_or_else(|| invalid("DPoP proof header is not a base64url-encoded JSON object"))?;
    json_object(payload)
        .ok_or_else(|| invalid("DPoP proof payload is not a base64url-encoded JSON object"))?;
    Ok(header)
}

fn json_object(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// §4.3 check 5: `alg` names one of [`DPOP_SIGNING_ALGS`].
fn signing_algorithm(header: &Map<String, Value>) -> Result<Algorithm, OAuthError> {
    let name = match header.get("alg") {
        Some(Value::String(name)) => name.as_str(),
        _ => return Err(invalid("DPoP proof header must carry alg")),
    };
    DPOP_SIGNING_ALGS
        .contains(&name)
        .then(|| name.parse::<Algorithm>().ok())
        .flatten()
        .ok_or_else(|| {
            invalid(format!(
                "DPoP proof alg '{}' is not accepted: use an asymmetric algorithm, one of {}",
                echo(name, ECHO_CHARS),
                DPOP_SIGNING_ALGS.join(", ")
            ))
        })
}

/// §4.3 check 7: the `jwk` header is a public key (no private or symmetric
/// member) of the type `alg` needs.
fn public_jwk(header: &Map<String, Value>, alg: Algorithm) -> Result<Jwk, OAuthError> {
    let raw = match header.get("jwk") {
        Some(Value::Object(raw)) => raw,
        Some(_) => return Err(invalid("DPoP proof jwk header must be a JSON object")),
        None => {
            return Err(invalid(
                "DPoP proof header must carry the public key in jwk (RFC 9449 section 4.2)",
            ))
        }
    };
    if raw.get("kty").and_then(Value::as_str) == Some("oct") {
        return Err(invalid(
            "DPoP proof jwk must be an asymmetric public key, not a symmetric (oct) key",
        ));
    }
    if let Some(member) = PRIVATE_JWK_MEMBERS
        .iter()
        .find(|member| raw.contains_key(**member))
    {
        return Err(invalid(format!(
            "DPoP proof jwk must not contain a private key: it has the private member '{member}'"
        )));
    }
    let jwk: Jwk = serde_json::from_value(Value::Object(raw.clone()))
        .map_err(|_| invalid("DPoP proof jwk is not a well-formed public JWK"))?;
    let fits = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(key), Algorithm::ES256) => {
            key.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(key), Algorithm::ES384) => {
            key.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(key), Algorithm::EdDSA) => {
            key.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        _ => false,
    };
    if !fits {
        let wanted = match alg {
            Algorithm::ES256 => "an EC key on P-256",
            Algorithm::ES384 => "an EC key on P-384",
            Algorithm::EdDSA => "an OKP key on Ed25519",
            _ => "an RSA key",
        };
        return Err(invalid(format!(
            "DPoP proof jwk does not fit alg {alg:?}: it must be {wanted}"
        )));
    }
    Ok(jwk)
}

/// §4.3 check 6: the signature verifies with `jwk`. No registered claim is
/// checked here: DPoP's claims are checked one by one by the caller.
fn verified_claims(
    proof: &str,
    jwk: &Jwk,
    alg: Algorithm,
) -> Result<Map<String, Value>, OAuthError> {
    let key = DecodingKey::from_jwk(jwk)
        .map_err(|_| invalid("DPoP proof jwk is not a usable public key"))?;
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map(|data| data.claims)
        .map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => {
                invalid("DPoP proof signature does not verify with the key in its jwk header")
            }
            _ => invalid("DPoP proof could not be verified with the key in its jwk header"),
        })
}

/// A claim §4.2 requires, as a string.
fn required_string<'c>(claims: &'c Map<String, Value>, name: &str) -> Result<&'c str, OAuthError> {
    match claims.get(name) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(invalid(format!("DPoP proof {name} must be a string"))),
        None => Err(invalid(format!(
            "DPoP proof must carry a {name} claim (RFC 9449 section 4.2)"
        ))),
    }
}

/// A JWT NumericDate (RFC 7519 §2): integer or fractional seconds, rounded
/// down.
fn numeric_date(value: &Value) -> Option<i64> {
    let Value::Number(number) = value else {
        return None;
    };
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|seconds| seconds.is_finite())
            // `as` saturates: a huge value is far in the future, and refused.
            .map(|seconds| seconds.floor() as i64)
    })
}

#[cfg(test)]
mod tests;
