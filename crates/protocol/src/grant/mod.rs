//! Token requests, one grant type per file (RFC 6749 §4, §5).
//!
//! Each grant module has one `parse` (form → typed request) and one
//! `decide` (facts → [`Grant`] or an `OAuthError`), both pure. The service
//! crate's grant table (`service/src/grant/`) dispatches on `grant_type`
//! once and pairs each of these files with the one that loads and persists;
//! adding a grant adds a file here and one there, and touches no other.

pub mod authorization_code;
pub mod client_credentials;
pub mod id_jag;
pub mod jwt_bearer;
pub mod refresh_token;
pub mod token_exchange;

use crate::form::FormParams;
use crate::{ErrorCode, OAuthError};
use url::Url;

/// Grant types OAuth 2.1 removed; asking for one gets a precise refusal.
pub const REMOVED_GRANT_TYPES: [&str; 2] = ["password", "implicit"];

/// The refusal for a `grant_type` the token endpoint does not serve
/// (RFC 6749 §5.2 `unsupported_grant_type`), naming what it does serve.
pub fn unsupported_grant_type(grant_type: &str, supported: &[&str]) -> OAuthError {
    if REMOVED_GRANT_TYPES.contains(&grant_type) {
        return OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this grant type was removed by OAuth 2.1",
        );
    }
    OAuthError::new(
        ErrorCode::UnsupportedGrantType,
        format!("supported grant types: {}", supported.join(", ")),
    )
}

/// Most resource indicators accepted in one request.
pub const MAX_RESOURCES: usize = 8;

/// Reads RFC 8707 `resource` parameters: each an absolute URI without a
/// fragment (§2), else `invalid_target`.
pub fn parse_resources(form: &FormParams) -> Result<Vec<String>, OAuthError> {
    let values = form.all("resource");
    if values.len() > MAX_RESOURCES {
        return Err(OAuthError::invalid_target(format!(
            "at most {MAX_RESOURCES} resource parameters are accepted"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        if !is_resource_indicator(value) {
            return Err(OAuthError::invalid_target(
                "resource must be an absolute URI without a fragment (RFC 8707 §2)",
            ));
        }
        if !out.contains(value) {
            out.push(value.clone());
        }
    }
    Ok(out)
}

/// RFC 8707 §2: an absolute URI without a fragment (and, here, at most
/// 2000 characters).
pub fn is_resource_indicator(value: &str) -> bool {
    !value.contains('#') && value.len() <= 2000 && Url::parse(value).is_ok()
}

/// A registered protected resource, as the decision functions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownResource {
    pub uri: String,
    pub scopes: Vec<String>,
}

/// What a grant decided to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// `sub`: the client itself, or the person or workload it acts for.
    pub subject: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    /// Access token lifetime, seconds.
    pub lifetime: u32,
}
