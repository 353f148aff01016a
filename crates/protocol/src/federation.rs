//! Workload tokens from trusted issuers: Kubernetes projected
//! service-account tokens, CI OIDC tokens (GitHub Actions), SPIRE
//! JWT-SVIDs. Verified against the issuer's keys, never single-use by
//! default (workloads reuse them until they near expiry), held to the
//! issuer's maximum lifetime with a small clock skew.
//!
//! - [`TrustedIssuerConfig`]: what an operator registers
//!   (`POST /admin/trusted-issuers`, CONTRACT.md), validated.
//! - [`verify_workload_jwt`]: signature, `typ`, `iss`, `aud`, `exp`,
//!   `nbf`, `iat`, lifetime; returns the claims for the caller to match
//!   against a client's registration.

use crate::spiffe::{SpiffeBundle, TrustDomain};
use crate::OAuthError;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest accepted workload token, bytes (a JWT-SVID or a projected token
/// is well under 2 KiB; the limit only bounds work).
pub const MAX_WORKLOAD_JWT: usize = 8192;
/// Default longest lifetime (`exp - iat`) of an OIDC issuer's tokens:
/// Kubernetes projects one-hour tokens with a few seconds of jitter.
pub const DEFAULT_MAX_TOKEN_LIFETIME: u32 = 7_200;
/// Longest `max_token_lifetime` an operator may set: one day.
pub const MAX_MAX_TOKEN_LIFETIME: u32 = 86_400;

/// Asymmetric algorithms accepted on workload tokens.
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::EdDSA,
];

/// A trusted issuer as registered, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrustedIssuerConfig {
    /// An OIDC issuer of workload tokens (Kubernetes, CI): keys inline, at
    /// `jwks_uri`, or found by discovery from `issuer`.
    Oidc {
        issuer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jwks: Option<JwkSet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jwks_uri: Option<String>,
        max_token_lifetime: u32,
        /// Opt-in: each token's `jti` is accepted once.
        #[serde(default)]
        single_use: bool,
        /// Opt-in: an enterprise identity provider whose ID-JAGs (MCP
        /// enterprise-managed authorization) custos redeems for its people.
        /// Off, its tokens only ever authenticate workloads.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        id_jag: bool,
    },
    /// A SPIFFE trust domain: its bundle inline or from a bundle endpoint
    /// (https_web profile).
    Spiffe {
        trust_domain: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bundle_endpoint_url: Option<String>,
    },
}

impl TrustedIssuerConfig {
    /// What identifies it among trusted issuers: the `iss` of its tokens,
    /// or the trust domain.
    pub fn name(&self) -> &str {
        match self {
            TrustedIssuerConfig::Oidc { issuer, .. } => issuer,
            TrustedIssuerConfig::Spiffe { trust_domain, .. } => trust_domain,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            TrustedIssuerConfig::Oidc { .. } => "oidc",
            TrustedIssuerConfig::Spiffe { .. } => "spiffe",
        }
    }
}

fn bad(message: impl Into<String>) -> OAuthError {
    OAuthError::invalid_request(message)
}

/// An https URL (or, with `allow_private`, http on loopback too), of at
/// most 2,048 characters, without credentials or fragment. Whether its
/// host is public is checked where it is fetched.
fn check_url(name: &str, value: &str, allow_private: bool) -> Result<(), OAuthError> {
    let url = url::Url::parse(value).map_err(|_| bad(format!("{name} must be a URL")))?;
    let loopback_http = allow_private
        && url.scheme() == "http"
        && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if (url.scheme() != "https" && !loopback_http)
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
        || value.len() > 2048
    {
        return Err(bad(format!(
            "{name} must be an https URL of at most 2048 characters, without credentials or fragment"
        )));
    }
    Ok(())
}

/// Validates `POST /admin/trusted-issuers`' body (CONTRACT.md).
pub fn validate_trusted_issuer(
    body: &Value,
    allow_private: bool,
) -> Result<TrustedIssuerConfig, OAuthError> {
    let object = body
        .as_object()
        .ok_or_else(|| bad("the body must be a JSON object"))?;
    let text = |name: &str| -> Result<Option<String>, OAuthError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{name} must be a string"))),
        }
    };
    match object.get("kind").and_then(Value::as_str) {
        Some("oidc") => {
            let issuer = text("issuer")?.ok_or_else(|| bad("an oidc issuer needs issuer"))?;
            check_url("issuer", &issuer, allow_private)?;
            let jwks = match object.get("jwks") {
                None | Some(Value::Null) => None,
                Some(value) => Some(
                    crate::metadata::validate_jwks(value)
                        .map_err(|e| bad(format!("jwks: {}", e.description)))?,
                ),
            };
            let jwks_uri = text("jwks_uri")?;
            if let Some(uri) = &jwks_uri {
                check_url("jwks_uri", uri, allow_private)?;
            }
            if jwks.is_some() && jwks_uri.is_some() {
                return Err(bad("give jwks or jwks_uri, not both"));
            }
            let max_token_lifetime = match object.get("max_token_lifetime") {
                None | Some(Value::Null) => DEFAULT_MAX_TOKEN_LIFETIME,
                Some(value) => value
                    .as_u64()
                    .filter(|v| (1..=u64::from(MAX_MAX_TOKEN_LIFETIME)).contains(v))
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "max_token_lifetime must be between 1 and {MAX_MAX_TOKEN_LIFETIME} seconds"
                        ))
                    })?,
            };
            let flag = |name: &str| match object.get(name) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(format!("{name} must be true or false"))),
            };
            let single_use = flag("single_use")?;
            let id_jag = flag("id_jag")?;
            Ok(TrustedIssuerConfig::Oidc {
                issuer,
                jwks,
                jwks_uri,
                max_token_lifetime,
                single_use,
                id_jag,
            })
        }
        Some("spiffe") => {
            let trust_domain = text("trust_domain")?
                .ok_or_else(|| bad("a spiffe issuer needs trust_domain (e.g. example.org)"))?;
            let domain =
                TrustDomain::parse(&trust_domain).map_err(|e| bad(format!("trust_domain: {e}")))?;
            let bundle = object.get("bundle").filter(|v| !v.is_null()).cloned();
            if let Some(value) = &bundle {
                let bytes = serde_json::to_vec(value).unwrap_or_default();
                SpiffeBundle::parse(domain, &bytes).map_err(|e| bad(format!("bundle: {e}")))?;
            }
            let bundle_endpoint_url = text("bundle_endpoint_url")?;
            if let Some(url) = &bundle_endpoint_url {
                check_url("bundle_endpoint_url", url, allow_private)?;
            }
            match (&bundle, &bundle_endpoint_url) {
                (Some(_), Some(_)) => Err(bad("give bundle or bundle_endpoint_url, not both")),
                (None, None) => Err(bad("a spiffe issuer needs bundle or bundle_endpoint_url")),
                _ => Ok(TrustedIssuerConfig::Spiffe {
                    trust_domain,
                    bundle,
                    bundle_endpoint_url,
                }),
            }
        }
        _ => Err(bad("kind must be \"oidc\" or \"spiffe\"")),
    }
}

/// What a workload token is held to.
#[derive(Debug, Clone)]
pub struct WorkloadJwtRules<'a> {
    /// The `iss` it must carry; `None`: `iss` is optional (JWT-SVIDs) but
    /// must be a string when present.
    pub issuer: Option<&'a str>,
    /// `aud` must name one of these.
    pub audiences: &'a [String],
    /// `aud` must name nothing else (draft-ietf-oauth-spiffe-client-auth
    /// §3.1: the issuer is the one audience).
    pub only_these_audiences: bool,
    pub now: i64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, seconds.
    pub leeway: i64,
    /// Longest lifetime: `exp - iat` (or `exp - now` without `iat`).
    pub max_lifetime: i64,
}

/// A verified workload token.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadToken {
    pub iss: Option<String>,
    pub sub: String,
    pub exp: i64,
    pub jti: Option<String>,
    /// Every claim, for conditions on nested ones.
    pub claims: Value,
}

/// The `iss` and `sub` of a JWT, read without verifying it: which issuer's
/// keys to fetch and which client it may stand for.
pub fn unverified_issuer_and_subject(jwt: &str) -> Result<(Option<String>, String), String> {
    if jwt.len() > MAX_WORKLOAD_JWT {
        return Err(format!("the token is longer than {MAX_WORKLOAD_JWT} bytes"));
    }
    #[derive(Deserialize)]
    struct Names {
        iss: Option<Value>,
        sub: Option<Value>,
    }
    let data = jsonwebtoken::dangerous::insecure_decode::<Names>(jwt)
        .map_err(|_| "the token is not a well-formed JWT".to_owned())?;
    let sub = data
        .claims
        .sub
        .and_then(|v| v.as_str().map(str::to_owned))
        .filter(|s| !s.is_empty() && s.len() <= 512)
        .ok_or("the token has no sub")?;
    let iss = data.claims.iss.and_then(|v| v.as_str().map(str::to_owned));
    Ok((iss, sub))
}

/// Verifies a workload token's signature with `keys` and its claims with
/// `rules`. The error says why, without echoing the token.
pub fn verify_workload_jwt(
    token: &str,
    keys: &[Jwk],
    rules: &WorkloadJwtRules<'_>,
) -> Result<WorkloadToken, String> {
    // Tokens of other kinds (access tokens, DPoP proofs, ID-JAGs) are not
    // workload identity tokens, whoever signed them.
    verify_typed_jwt(token, keys, rules, |typ| match typ {
        Some(typ) if !typ.eq_ignore_ascii_case("JWT") && !typ.eq_ignore_ascii_case("JOSE") => {
            Err(format!(
                "a token of type '{}' is not a workload identity token",
                crate::error::echo(typ, 40)
            ))
        }
        _ => Ok(()),
    })
}

/// A trusted issuer's JWT whose header `typ` passes `check_typ` (RFC 8725
/// §3.11: explicit typing keeps one kind of token from being used as
/// another): signature with `keys`, then the claims as `rules` say.
pub(crate) fn verify_typed_jwt(
    token: &str,
    keys: &[Jwk],
    rules: &WorkloadJwtRules<'_>,
    check_typ: impl Fn(Option<&str>) -> Result<(), String>,
) -> Result<WorkloadToken, String> {
    if token.len() > MAX_WORKLOAD_JWT {
        return Err(format!("the token is longer than {MAX_WORKLOAD_JWT} bytes"));
    }
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| "the token has a malformed JOSE header".to_owned())?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err("the token must be signed with an asymmetric algorithm (ES256, RS256, PS256, EdDSA, ...)".into());
    }
    check_typ(header.typ.as_deref())?;
    let candidates: Vec<&Jwk> = keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(wanted), Some(have)) => wanted == have,
            (Some(_), None) => true,
            (None, _) => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err("no key of the issuer matches the token's kid".into());
    }
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = candidates
        .into_iter()
        .filter_map(|key| DecodingKey::from_jwk(key).ok())
        .find_map(|key| jsonwebtoken::decode::<Value>(token, &key, &validation).ok())
        .map(|data| data.claims)
        .ok_or("the token's signature does not verify with the issuer's keys")?;
    if !claims.is_object() {
        return Err("the token's claims are not a JSON object".into());
    }
    let iss = match claims.get("iss") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("iss must be a string".into()),
    };
    if let Some(expected) = rules.issuer {
        if iss.as_deref() != Some(expected) {
            return Err("the token's iss is not its trusted issuer".into());
        }
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the token has no sub")?
        .to_owned();
    check_audience(claims.get("aud"), rules)?;
    let exp = numeric(claims.get("exp")).ok_or("the token must carry a numeric exp")?;
    if exp + rules.leeway <= rules.now {
        return Err("the token has expired".into());
    }
    let iat = match claims.get("iat") {
        None => None,
        value => Some(numeric(value).ok_or("iat must be a number")?),
    };
    if iat.is_some_and(|t| t > rules.now + rules.leeway) {
        return Err("the token's iat is in the future".into());
    }
    if let Some(value) = claims.get("nbf") {
        let nbf = numeric(Some(value)).ok_or("nbf must be a number")?;
        if nbf > rules.now + rules.leeway {
            return Err("the token is not valid yet (nbf)".into());
        }
    }
    let lifetime = exp - iat.unwrap_or(rules.now);
    if lifetime > rules.max_lifetime + rules.leeway {
        return Err(format!(
            "the token lives longer than the issuer's maximum of {} seconds",
            rules.max_lifetime
        ));
    }
    let jti = match claims.get("jti") {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => return Err("jti must be a string of at most 256 characters".into()),
    };
    Ok(WorkloadToken {
        iss,
        sub,
        exp,
        jti,
        claims,
    })
}

fn check_audience(aud: Option<&Value>, rules: &WorkloadJwtRules<'_>) -> Result<(), String> {
    let values: Vec<&str> = match aud {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return Err("the token must carry aud".into()),
    };
    let accepted = |v: &str| rules.audiences.iter().any(|a| a == v);
    let all_strings = match aud {
        Some(Value::Array(items)) => items.len() == values.len(),
        _ => true,
    };
    let ok = if rules.only_these_audiences {
        all_strings && !values.is_empty() && values.iter().all(|v| accepted(v))
    } else {
        values.iter().any(|v| accepted(v))
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the token's aud must name {}{}",
            rules
                .audiences
                .first()
                .map(String::as_str)
                .unwrap_or("this server"),
            if rules.only_these_audiences {
                " and nothing else"
            } else {
                ""
            }
        ))
    }
}

fn numeric(value: Option<&Value>) -> Option<i64> {
    let number = value?.as_f64()?;
    if !number.is_finite() || !(0.0..=1e12).contains(&number) {
        return None;
    }
    Some(number as i64)
}

#[cfg(test)]
mod tests;
