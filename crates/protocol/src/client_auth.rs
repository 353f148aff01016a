//! Client authentication at the token, introspection and revocation
//! endpoints (RFC 6749 §2.3, RFC 7523 §2.2 and §3, RFC 7521 §4.2).
//!
//! Two steps, both pure: [`extract_credentials`] reads what the request
//! presents (exactly one method, RFC 6749 §2.3), and
//! [`verify_client_assertion`] checks a `private_key_jwt` assertion against
//! the client's registered keys at a given `now`. Comparing a shared secret
//! with its stored hash needs the server pepper and lives in the service.

use crate::form::FormParams;
use crate::metadata::AuthMethod;
use crate::names::CLIENT_ASSERTION_TYPE_JWT_BEARER;
use crate::OAuthError;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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

/// What the request presents to authenticate the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredentials {
    /// RFC 6749 §2.3.1, HTTP Basic.
    Basic { client_id: String, secret: Secret },
    /// RFC 6749 §2.3.1, in the request body.
    Post { client_id: String, secret: Secret },
    /// RFC 7523 §2.2: `client_assertion` with the jwt-bearer type. The
    /// client_id comes from the `client_id` parameter or, failing that, the
    /// unverified `sub` of the assertion; verification checks it.
    JwtAssertion {
        client_id: String,
        assertion: Secret,
    },
    /// No authentication, only an identifier (public clients).
    None { client_id: String },
}

impl ClientCredentials {
    pub fn client_id(&self) -> &str {
        match self {
            ClientCredentials::Basic { client_id, .. }
            | ClientCredentials::Post { client_id, .. }
            | ClientCredentials::JwtAssertion { client_id, .. }
            | ClientCredentials::None { client_id } => client_id,
        }
    }

    /// The registered method this presentation corresponds to.
    pub fn method(&self) -> AuthMethod {
        match self {
            ClientCredentials::Basic { .. } => AuthMethod::ClientSecretBasic,
            ClientCredentials::Post { .. } => AuthMethod::ClientSecretPost,
            ClientCredentials::JwtAssertion { .. } => AuthMethod::PrivateKeyJwt,
            ClientCredentials::None { .. } => AuthMethod::None,
        }
    }
}

/// Reads the client's credentials from the `Authorization` header value (if
/// any) and the form. Refuses more than one method (RFC 6749 §2.3) and
/// malformed presentations. `None` if the request carries no client
/// identification at all.
pub fn extract_credentials(
    authorization: Option<&str>,
    form: &FormParams,
) -> Result<Option<ClientCredentials>, OAuthError> {
    let body_client_id = form.get("client_id");
    let body_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let assertion_type = form.get("client_assertion_type");
    for value in [body_client_id, body_secret, assertion]
        .into_iter()
        .flatten()
    {
        if value.len() > MAX_CREDENTIAL_LENGTH {
            return Err(OAuthError::invalid_request(
                "a client credential parameter is too long",
            ));
        }
    }

    if let Some(header) = authorization {
        let (client_id, secret) = parse_basic(header)?;
        if body_secret.is_some() || assertion.is_some() {
            return Err(OAuthError::invalid_request(
                "the client used more than one authentication method (RFC 6749 §2.3)",
            ));
        }
        if body_client_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_client(
                "client_id in the body differs from the one in the Authorization header",
            ));
        }
        return Ok(Some(ClientCredentials::Basic { client_id, secret }));
    }

    if let Some(assertion) = assertion {
        if body_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "the client used more than one authentication method (RFC 6749 §2.3)",
            ));
        }
        match assertion_type {
            Some(CLIENT_ASSERTION_TYPE_JWT_BEARER) => {}
            Some(_) => {
                return Err(OAuthError::invalid_client(format!(
                    "unsupported client_assertion_type; expected {CLIENT_ASSERTION_TYPE_JWT_BEARER}"
                )))
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "client_assertion requires client_assertion_type",
                ))
            }
        }
        let subject = unverified_subject(assertion)?;
        let client_id = match body_client_id {
            Some(id) if id != subject => {
                return Err(OAuthError::invalid_client(
                    "client_id differs from the client assertion's sub",
                ))
            }
            _ => subject,
        };
        return Ok(Some(ClientCredentials::JwtAssertion {
            client_id,
            assertion: Secret::new(assertion),
        }));
    }
    if assertion_type.is_some() {
        return Err(OAuthError::invalid_request(
            "client_assertion_type was sent without client_assertion",
        ));
    }

    match (body_client_id, body_secret) {
        (Some(id), Some(secret)) => Ok(Some(ClientCredentials::Post {
            client_id: id.to_owned(),
            secret: Secret::new(secret),
        })),
        (None, Some(_)) => Err(OAuthError::invalid_request(
            "client_secret requires client_id",
        )),
        (Some(id), None) => Ok(Some(ClientCredentials::None {
            client_id: id.to_owned(),
        })),
        (None, None) => Ok(None),
    }
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
    Ok((id, Secret::new(secret)))
}

/// application/x-www-form-urlencoded decoding of one component.
fn form_decode(text: &str) -> Option<String> {
    let bytes: Vec<u8> = text
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_decode(&bytes)?;
    String::from_utf8(decoded).ok()
}

fn percent_decode(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

#[derive(Deserialize)]
struct SubjectOnly {
    sub: Option<String>,
}

/// The `sub` of a JWT, read without verifying it (to find the client).
fn unverified_subject(jwt: &str) -> Result<String, OAuthError> {
    let bad = || {
        OAuthError::invalid_client("client_assertion is not a well-formed JWT with a 'sub' claim")
    };
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
    let claims: SubjectOnly = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    claims.sub.filter(|s| !s.is_empty()).ok_or_else(bad)
}

/// The rules a client assertion is held to.
#[derive(Debug, Clone)]
pub struct AssertionRules<'a> {
    pub client_id: &'a str,
    /// Accepted `aud` values: the issuer and the endpoint URL (RFC 7523 §3).
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
    validation.set_audience(rules.audiences);
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
            "client_assertion signature or audience is invalid: it must be signed by a registered key and its aud must be the issuer or the endpoint URL",
        )
    })?;
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
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or_else(|| {
            OAuthError::invalid_client(
                "client_assertion must carry a jti of at most 256 characters",
            )
        })?;
    Ok(VerifiedAssertion { jti, exp })
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
