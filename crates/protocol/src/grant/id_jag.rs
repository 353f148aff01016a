//! Identity Assertion JWT Authorization Grants (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant; MCP's
//! `io.modelcontextprotocol/enterprise-managed-authorization` extension):
//! an enterprise's identity provider, trusted by custos, issues a client a
//! signed grant (`typ: oauth-id-jag+jwt`) to act for one of its people at
//! one resource; the client redeems it with the JWT bearer grant
//! (RFC 7523 §2.1), authenticating as itself.
//!
//! What custos checks (extension §5.1, RFC 7521 §5.2): the issuer is a
//! trusted OIDC issuer and signed it; `typ` is `oauth-id-jag+jwt`; `aud` is
//! custos's issuer identifier; `iss`, `sub`, `client_id`, `resource`,
//! `jti`, `iat`, `exp` are present; `client_id` is the client that
//! authenticated; the token is for the ID-JAG's `resource` only, and its
//! scopes are those the request, the ID-JAG, the client's registration and
//! the resource all allow. The `jti` is single use (the service records
//! it).

use super::{Grant, KnownResource};
use crate::federation::{verify_typed_jwt, WorkloadJwtRules};
use crate::grant::jwt_bearer::JwtBearerRequest;
use crate::metadata::{AuthMethod, ClientMetadata};
use crate::names::GRANT_JWT_BEARER;
use crate::scope::parse_scope;
use crate::OAuthError;
use jsonwebtoken::jwk::Jwk;
use serde_json::Value;

/// The JWS `typ` of an ID-JAG (extension §4.3).
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";
/// The grant profile custos advertises in
/// `authorization_grant_profiles_supported`.
pub const ID_JAG_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// Whether `assertion` says it is an ID-JAG (its header's `typ`, read
/// without verifying anything): which rules apply to it.
pub fn is_id_jag(assertion: &str) -> bool {
    jsonwebtoken::decode_header(assertion)
        .ok()
        .and_then(|h| h.typ)
        .is_some_and(|typ| typ.eq_ignore_ascii_case(ID_JAG_TYP))
}

/// A verified ID-JAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdJag {
    pub iss: String,
    /// The person at the enterprise the grant is for.
    pub sub: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The one resource (RFC 9728 resource identifier) it is for.
    pub resource: String,
    /// Its scopes; `None` when it names none.
    pub scopes: Option<Vec<String>>,
    pub jti: String,
    pub exp: i64,
}

fn string_claim<'a>(claims: &'a Value, name: &str) -> Result<&'a str, String> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the ID-JAG has no {name}"))
}

/// Verifies an ID-JAG's signature with the trusted issuer's `keys` and its
/// claims with `rules` (`audiences`: custos's issuer identifier); the error
/// says why, never echoing the token.
pub fn verify_id_jag(
    token: &str,
    keys: &[Jwk],
    rules: &WorkloadJwtRules<'_>,
) -> Result<IdJag, String> {
    let verified = verify_typed_jwt(token, keys, rules, |typ| match typ {
        Some(typ) if typ.eq_ignore_ascii_case(ID_JAG_TYP) => Ok(()),
        _ => Err(format!("an ID-JAG's typ must be {ID_JAG_TYP} (RFC 8725)")),
    })?;
    let claims = &verified.claims;
    let iss = verified.iss.clone().ok_or("the ID-JAG has no iss")?;
    if claims.get("iat").is_none() {
        return Err("the ID-JAG has no iat".into());
    }
    let client_id = string_claim(claims, "client_id")?.to_owned();
    let resource = string_claim(claims, "resource")?.to_owned();
    let jti = verified.jti.clone().ok_or("the ID-JAG has no jti")?;
    let scopes = match claims.get("scope") {
        None => None,
        Some(Value::String(s)) => {
            Some(parse_scope(s).map_err(|_| "the ID-JAG's scope is not a valid scope string")?)
        }
        Some(_) => return Err("the ID-JAG's scope must be a string".into()),
    };
    Ok(IdJag {
        iss,
        sub: verified.sub,
        client_id,
        resource,
        scopes,
        jti,
        exp: verified.exp,
    })
}

/// What to issue for a verified ID-JAG redeemed by an authenticated client.
///
/// - the client registered for the JWT bearer grant and confidential
///   (extension §5: it authenticates) → else `unauthorized_client`;
/// - the ID-JAG's `client_id` is this client → else `invalid_grant`;
/// - its `resource` is registered here, and a `resource` the request
///   names is that one → else `invalid_target`;
/// - scopes: those asked (default: the ID-JAG's, else the client's), each
///   in the ID-JAG's `scope` when it has one, registered for the client
///   and offered by the resource → else `invalid_scope`;
/// - `sub` is the ID-JAG's `sub`; `aud` its `resource`.
pub fn decide(
    request: &JwtBearerRequest,
    jag: &IdJag,
    client_id: &str,
    client: &ClientMetadata,
    resources: &[KnownResource],
) -> Result<Grant, OAuthError> {
    if !client.allows_grant(GRANT_JWT_BEARER) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {GRANT_JWT_BEARER} grant"
        )));
    }
    if client.token_endpoint_auth_method == AuthMethod::None {
        return Err(OAuthError::unauthorized_client(
            "a public client cannot redeem an ID-JAG: the client must authenticate",
        ));
    }
    if jag.client_id != client_id {
        return Err(OAuthError::invalid_grant(
            "the ID-JAG was issued to another client (its client_id is not the authenticated client)",
        ));
    }
    let Some(resource) = resources.iter().find(|r| r.uri == jag.resource) else {
        return Err(OAuthError::invalid_target(
            "the ID-JAG's resource is not registered at this server",
        ));
    };
    if request.resources.iter().any(|r| *r != jag.resource) {
        return Err(OAuthError::invalid_target(
            "resource must be the ID-JAG's resource (the token is for that resource only)",
        ));
    }
    let registered = client.scopes();
    let allowed = |s: &String| {
        registered.contains(s)
            && resource.scopes.contains(s)
            && jag
                .scopes
                .as_ref()
                .is_none_or(|granted| granted.contains(s))
    };
    let scopes = match &request.scope {
        Some(asked) => {
            if let Some(bad) = asked.iter().find(|s| !allowed(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope '{}' is not in the ID-JAG, registered for this client and offered by its resource",
                    crate::error::echo(bad, 64)
                )));
            }
            asked.clone()
        }
        None => match &jag.scopes {
            Some(granted) => granted.iter().filter(|s| allowed(s)).cloned().collect(),
            None => registered.iter().filter(|s| allowed(s)).cloned().collect(),
        },
    };
    Ok(Grant {
        subject: jag.sub.clone(),
        scopes,
        audience: vec![jag.resource.clone()],
        lifetime: client.access_token_lifetime,
    })
}

#[cfg(test)]
mod tests;
