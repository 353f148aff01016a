//! OAuth 2.0 Protected Resource Metadata (RFC 9728): the document that
//! tells a client which authorization server issues tokens for this
//! resource, and where that document is served.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The RFC 9728 §3 well-known URI suffix.
pub const WELL_KNOWN_SUFFIX: &str = "oauth-protected-resource";

/// A protected resource metadata document (RFC 9728 §2).
///
/// [`Verifier`](crate::Verifier) fills one in from its configuration
/// (`resource`, `authorization_servers`, `bearer_methods_supported`, the
/// DPoP members); the rest can be set with
/// [`VerifierBuilder::metadata`](crate::VerifierBuilder::metadata).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProtectedResourceMetadata {
    /// REQUIRED. The resource identifier: the URL the token's `aud` names
    /// (for MCP, the server's canonical URI).
    pub resource: String,
    /// Issuers whose tokens the resource accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// The resource's own signing keys (for signed responses); rarely set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Scopes a client may ask for to use the resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be sent: `header` only here (RFC 6750 §2.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// Algorithms the resource signs responses with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_signing_alg_values_supported: Vec<String>,
    /// A name for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// Developer documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// How the data may be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// Terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// Whether certificate-bound tokens (RFC 8705) are supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// RFC 9396 authorization details types the resource understands.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types_supported: Vec<String>,
    /// Algorithms accepted for DPoP proofs (RFC 9449).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether every token must be DPoP-bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
    /// Any other member.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ProtectedResourceMetadata {
    /// Where the document is served: [`well_known_url`] of `resource`.
    pub fn url(&self) -> Option<String> {
        well_known_url(&self.resource)
    }

    /// The path it is served at, e.g.
    /// `/.well-known/oauth-protected-resource/mcp`.
    pub fn path(&self) -> Option<String> {
        well_known_path(&self.resource)
    }
}

/// RFC 9728 §3.1: the metadata URL of a resource, the well-known suffix
/// inserted between the host and the path (a trailing `/` of the path is
/// dropped), the query kept. `None` unless `resource` is an absolute
/// `https` or `http` URL without fragment.
///
/// ```
/// use custos_verifier::metadata::well_known_url;
///
/// assert_eq!(
///     well_known_url("https://mcp.example.com/mcp").as_deref(),
///     Some("https://mcp.example.com/.well-known/oauth-protected-resource/mcp"),
/// );
/// assert_eq!(
///     well_known_url("https://api.example.com").as_deref(),
///     Some("https://api.example.com/.well-known/oauth-protected-resource"),
/// );
/// ```
pub fn well_known_url(resource: &str) -> Option<String> {
    let url = url::Url::parse(resource).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() || !url.has_host() {
        return None;
    }
    let mut out = url.origin().ascii_serialization();
    out.push_str(&path_of(&url));
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

/// The path part of [`well_known_url`].
pub fn well_known_path(resource: &str) -> Option<String> {
    let url = url::Url::parse(resource).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.fragment().is_some() || !url.has_host() {
        return None;
    }
    Some(path_of(&url))
}

fn path_of(url: &url::Url) -> String {
    format!(
        "/.well-known/{WELL_KNOWN_SUFFIX}{}",
        url.path().trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9728_3_1_urls() {
        assert_eq!(
            well_known_url("https://resource.example.com/resource1").as_deref(),
            Some("https://resource.example.com/.well-known/oauth-protected-resource/resource1")
        );
        assert_eq!(
            well_known_url("https://resource.example.com/").as_deref(),
            Some("https://resource.example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(
            well_known_url("http://127.0.0.1:8080/a/b/?x=1").as_deref(),
            Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource/a/b?x=1")
        );
        assert_eq!(well_known_url("urn:example:resource"), None);
        assert_eq!(well_known_url("https://r.example/#f"), None);
        assert_eq!(
            well_known_path("https://mcp.example.com/mcp").as_deref(),
            Some("/.well-known/oauth-protected-resource/mcp")
        );
    }

    #[test]
    fn serializes_only_what_is_set() {
        let metadata = ProtectedResourceMetadata {
            resource: "https://api.example".into(),
            authorization_servers: vec!["https://as.example".into()],
            bearer_methods_supported: vec!["header".into()],
            dpop_bound_access_tokens_required: Some(false),
            ..Default::default()
        };
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "resource": "https://api.example",
                "authorization_servers": ["https://as.example"],
                "bearer_methods_supported": ["header"],
                "dpop_bound_access_tokens_required": false,
            })
        );
        let back: ProtectedResourceMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, metadata);
    }
}
