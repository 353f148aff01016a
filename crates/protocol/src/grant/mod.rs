//! Token requests, one grant type per file (RFC 6749 §4, §5).
//!
//! [`parse_token_request`] dispatches on `grant_type`; each grant module has
//! one parse function and one decision function. Adding a grant adds a file
//! and a match arm, and touches no other grant.

pub mod client_credentials;

use crate::form::FormParams;
use crate::{ErrorCode, OAuthError};
use url::Url;

/// A token request, typed by grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRequest {
    ClientCredentials(client_credentials::ClientCredentialsRequest),
}

impl TokenRequest {
    pub fn grant_type(&self) -> &'static str {
        match self {
            TokenRequest::ClientCredentials(_) => crate::names::GRANT_CLIENT_CREDENTIALS,
        }
    }
}

/// Grant types the token endpoint serves, as advertised in discovery.
pub const SUPPORTED_GRANT_TYPES: [&str; 1] = [crate::names::GRANT_CLIENT_CREDENTIALS];

/// Reads `grant_type` and the grant's own parameters.
pub fn parse_token_request(form: &FormParams) -> Result<TokenRequest, OAuthError> {
    match form.require("grant_type")? {
        crate::names::GRANT_CLIENT_CREDENTIALS => {
            client_credentials::parse(form).map(TokenRequest::ClientCredentials)
        }
        "password" | "implicit" => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "this grant type was removed by OAuth 2.1",
        )),
        _ => Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            format!(
                "supported grant types: {}",
                SUPPORTED_GRANT_TYPES.join(", ")
            ),
        )),
    }
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
    pub subject: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    pub lifetime: u32,
}
