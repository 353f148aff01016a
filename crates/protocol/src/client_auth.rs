//! Client authentication at the token, introspection and revocation
//! endpoints (RFC 6749 §2.3, RFC 7523 §2.2 and §3, RFC 7521 §4.2).
//!
//! Two steps, both pure: [`extract_credentials`] reads what the request
//! presents (exactly one method, RFC 6749 §2.3), and
//! [`verify_client_assertion`] checks a `private_key_jwt` assertion against
//! the client's registered keys at a given `now`. Comparing a shared secret
//! with its stored hash needs the server pepper and lives in the service.

use crate::form::FormParams;
use crate::OAuthError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Longest client_id, secret or assertion read from a request.
pub const MAX_CREDENTIAL_LENGTH: usize = 8192;

/// A secret value: compared, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A client_id and the credential that is to prove it, as one
/// authentication method found them in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub client_id: String,
    /// The secret or assertion presented; `None` for methods whose proof is
    /// elsewhere (public clients, a TLS client certificate).
    pub credential: Option<Secret>,
}

/// Checks that hold whatever the method (RFC 6749 §2.3, RFC 7521 §4.2):
/// credential parameters are bounded, `client_assertion` and
/// `client_assertion_type` come together, and at most one mechanism is
/// used: the `Authorization` header, `client_secret` in the body, or a
/// `client_assertion`.
pub fn check_presentation(
    authorization: Option<&str>,
    form: &FormParams,
) -> Result<(), OAuthError> {
    for name in ["client_id", "client_secret", "client_assertion"] {
        if form
            .get(name)
            .is_some_and(|v| v.len() > MAX_CREDENTIAL_LENGTH)
        {
            return Err(OAuthError::invalid_request(
                "a client credential parameter is too long",
            ));
        }
    }
    let mechanisms = [
        authorization.is_some(),
        form.contains("client_secret"),
        form.contains("client_assertion"),
    ];
    if mechanisms.into_iter().filter(|used| *used).count() > 1 {
        return Err(OAuthError::invalid_request(
            "the client used more than one authentication method (RFC 6749 §2.3)",
        ));
    }
    match (
        form.contains("client_assertion"),
        form.contains("client_assertion_type"),
    ) {
        (true, false) => Err(OAuthError::invalid_request(
            "client_assertion requires client_assertion_type",
        )),
        (false, true) => Err(OAuthError::invalid_request(
            "client_assertion_type was sent without client_assertion",
        )),
        _ => Ok(()),
    }
}

/// `client_secret_basic` (RFC 6749 §2.3.1): the `Authorization: Basic`
/// header; a `client_id` in the body must name the same client.
pub fn basic_claim(
    authorization: Option<&str>,
    form: &FormParams,
) -> Result<Option<Claim>, OAuthError> {
    let Some(header) = authorization else {
        return Ok(None);
    };
    let (client_id, secret) = parse_basic(header)?;
    if form.get("client_id").is_some_and(|id| id != client_id) {
        return Err(OAuthError::invalid_client(
            "client_id in the body differs from the one in the Authorization header",
        ));
    }
    Ok(Some(Claim {
        client_id,
        credential: Some(secret),
    }))
}

/// `client_secret_post` (RFC 6749 §2.3.1): `client_id` and `client_secret`
/// in the body.
pub fn post_claim(form: &FormParams) -> Result<Option<Claim>, OAuthError> {
    let Some(secret) = form.get("client_secret") else {
        return Ok(None);
    };
    let client_id = form
        .get("client_id")
        .ok_or_else(|| OAuthError::invalid_request("client_secret requires client_id"))?;
    Ok(Some(Claim {
        client_id: client_id.to_owned(),
        credential: Some(Secret::new(secret)),
    }))
}

/// A JWT `client_assertion` of `assertion_type` (RFC 7521 §4.2): the
/// client is the `client_id` parameter or, failing that, the unverified
/// `sub` of the assertion; verification checks it.
pub fn assertion_claim(
    form: &FormParams,
    assertion_type: &str,
) -> Result<Option<Claim>, OAuthError> {
    let Some(assertion) = form.get("client_assertion") else {
        return Ok(None);
    };
    if form.get("client_assertion_type") != Some(assertion_type) {
        return Ok(None);
    }
    // With `client_id`, that is the client (a federated token's `sub` is
    // the workload's platform identity, not a client id; `private_key_jwt`
    // then requires `sub` = client_id when it verifies).
    let client_id = match form.get("client_id") {
        Some(id) => id.to_owned(),
        None => unverified_subject(assertion)?,
    };
    Ok(Some(Claim {
        client_id,
        credential: Some(Secret::new(assertion)),
    }))
}

/// A public client (`none`): only a `client_id`.
pub fn public_claim(form: &FormParams) -> Option<Claim> {
    form.get("client_id").map(|id| Claim {
        client_id: id.to_owned(),
        credential: None,
    })
}

/// Parses `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
pub fn parse_basic(header: &str) -> Result<(String, Secret), OAuthError> {
    let bad =
        |why: &str| OAuthError::invalid_client(format!("malformed Basic authorization: {why}"));
    let (scheme, rest) = header
        .split_once(' ')
        .ok_or_else(|| bad("expected 'Basic <credentials>'"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "unsupported Authorization scheme at this endpoint; use Basic or send credentials in the body",
        ));
    }
    let encoded = rest.trim();
    if encoded.len() > MAX_CREDENTIAL_LENGTH {
        return Err(bad("too long"));
    }
    let decoded = STANDARD.decode(encoded).map_err(|_| bad("not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| bad("no ':' separator"))?;
    let id = form_decode(id).ok_or_else(|| bad("client_id is not form-urlencoded UTF-8"))?;
    let secret = form_decode(secret).ok_or_else(|| bad("secret is not form-urlencoded UTF-8"))?;
    if id.is_empty() {
        return Err(bad("empty client_id"));
    }
    if id.contains('\0') || secret.contains('\0') {
        return Err(bad("NUL character"));
    }
    Ok((id, Secret::new(secret)))
}

/// application/x-www-form-urlencoded decoding of one component: `+` is a
/// space, `%XX` a byte; a malformed escape or non-UTF-8 result is refused.
fn form_decode(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    let bytes = spaced.as_bytes();
    // percent-encoding passes malformed escapes through; refuse them.
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode(bytes)
        .decode_utf8()
        .ok()
        .map(|text| text.into_owned())
}

#[derive(Deserialize)]
struct SubjectOnly {
    sub: Option<String>,
}

/// The `sub` of a JWT, read without verifying it (to find the client).
pub fn unverified_subject(jwt: &str) -> Result<String, OAuthError> {
    let bad = || {
        OAuthError::invalid_client("client_assertion is not a well-formed JWT with a 'sub' claim")
    };
    let data = jsonwebtoken::dangerous::insecure_decode::<SubjectOnly>(jwt).map_err(|_| bad())?;
    data.claims.sub.filter(|s| !s.is_empty()).ok_or_else(bad)
}

/// The rules a client assertion is held to.
#[derive(Debug, Clone)]
pub struct AssertionRules<'a> {
    pub client_id: &'a str,
    /// Accepted `aud` values, the issuer first (RFC 7523 §3, draft-ietf-oauth-rfc7523bis).
    pub audiences: &'a [String],
    pub now: i64,
    /// Clock skew tolerated on exp/nbf/iat, seconds.
    pub leeway: i64,
    /// Longest accepted remaining lifetime (`exp - now`), seconds.
    pub max_lifetime: i64,
}

/// A verified assertion: what the replay check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: i64,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<serde_json::Value>,
    nbf: Option<serde_json::Value>,
    iat: Option<serde_json::Value>,
    jti: Option<String>,
}

/// Asymmetric algorithms accepted for client assertions.
const ASSERTION_ALGORITHMS: [Algorithm; 8] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::EdDSA,
];

/// Verifies a `private_key_jwt` assertion (RFC 7523 §3): signature by one of
/// the client's keys, `iss` = `sub` = client_id, `aud` one of the accepted
/// audiences, `exp` present, in the future and not too far, `nbf`/`iat` not
/// in the future, `jti` present (its single use is checked by the store).
pub fn verify_client_assertion(
    assertion: &str,
    jwks: &JwkSet,
    rules: &AssertionRules<'_>,
) -> Result<VerifiedAssertion, OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| OAuthError::invalid_client("client_assertion has a malformed JOSE header"))?;
    if !ASSERTION_ALGORITHMS.contains(&header.alg) {
        return Err(OAuthError::invalid_client(
            "client_assertion must be signed with an asymmetric algorithm (ES256, RS256, PS256, EdDSA, ...)",
        ));
    }
    let candidates: Vec<&Jwk> = jwks
        .keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(wanted), Some(have)) => wanted == have,
            (Some(_), None) => true,
            (None, _) => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(OAuthError::invalid_client(
            "no registered key matches the client_assertion's kid",
        ));
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.required_spec_claims.clear();
    // `aud` is checked below, more strictly than jsonwebtoken would.
    validation.validate_aud = false;
    let mut verified = None;
    for key in candidates {
        let Ok(decoding_key) = DecodingKey::from_jwk(key) else {
            continue;
        };
        if let Ok(data) =
            jsonwebtoken::decode::<AssertionClaims>(assertion, &decoding_key, &validation)
        {
            verified = Some(data.claims);
            break;
        }
    }
    let claims = verified.ok_or_else(|| {
        OAuthError::invalid_client(
            "client_assertion signature is invalid: it must be signed by one of the client's registered keys",
        )
    })?;
    check_audience(claims.aud.as_ref(), rules.audiences)?;
    if claims.iss.as_deref() != Some(rules.client_id)
        || claims.sub.as_deref() != Some(rules.client_id)
    {
        return Err(OAuthError::invalid_client(
            "client_assertion iss and sub must both be the client_id",
        ));
    }
    let exp = numeric_date(&claims.exp)
        .ok_or_else(|| OAuthError::invalid_client("client_assertion must carry a numeric exp"))?;
    if exp + rules.leeway <= rules.now {
        return Err(OAuthError::invalid_client("client_assertion has expired"));
    }
    if exp - rules.now > rules.max_lifetime + rules.leeway {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion exp is too far in the future (at most {} seconds)",
            rules.max_lifetime
        )));
    }
    for (name, value) in [("nbf", &claims.nbf), ("iat", &claims.iat)] {
        if value.is_some() {
            let t = numeric_date(value).ok_or_else(|| {
                OAuthError::invalid_client(format!("client_assertion {name} must be a number"))
            })?;
            if t > rules.now + rules.leeway {
                return Err(OAuthError::invalid_client(format!(
                    "client_assertion {name} is in the future"
                )));
            }
        }
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= 256 && !j.contains('\0'))
        .ok_or_else(|| {
            OAuthError::invalid_client(
                "client_assertion must carry a jti of at most 256 characters",
            )
        })?;
    Ok(VerifiedAssertion { jti, exp })
}

/// RFC 7523 §3: the assertion MUST carry `aud` identifying the server.
/// draft-ietf-oauth-rfc7523bis makes the issuer identifier the one value;
/// older clients send the token endpoint URL, also accepted. An array is
/// accepted only when every member is accepted: an assertion addressed to
/// another party as well could be replayed there.
fn check_audience(aud: Option<&serde_json::Value>, accepted: &[String]) -> Result<(), OAuthError> {
    let is_accepted = |value: &serde_json::Value| {
        value
            .as_str()
            .is_some_and(|v| accepted.iter().any(|a| a == v))
    };
    let ok = match aud {
        None | Some(serde_json::Value::Null) => return Err(OAuthError::invalid_client(
            "client_assertion must carry an aud claim (RFC 7523 section 3): the issuer identifier",
        )),
        Some(serde_json::Value::Array(values)) => {
            !values.is_empty() && values.iter().all(is_accepted)
        }
        Some(value) => is_accepted(value),
    };
    if ok {
        Ok(())
    } else {
        Err(OAuthError::invalid_client(format!(
            "client_assertion aud must be this server's issuer identifier '{}' (or, for older clients, its token endpoint URL) and nothing else",
            accepted.first().map(String::as_str).unwrap_or_default()
        )))
    }
}

/// A JWT NumericDate: integer or fractional seconds.
fn numeric_date(value: &Option<serde_json::Value>) -> Option<i64> {
    let number = value.as_ref()?.as_f64()?;
    if !number.is_finite() || !(0.0..=1e12).contains(&number) {
        return None;
    }
    Some(number as i64)
}

#[cfg(test)]
mod tests;
