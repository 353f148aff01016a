//! OAuth Client ID Metadata Documents
//! (draft-ietf-oauth-client-id-metadata-document): a client whose
//! `client_id` is an https URL publishes its metadata at that URL, and the
//! server fetches it instead of a registration. This is how MCP clients
//! arrive (MCP authorization, "Client ID Metadata Documents").
//!
//! The pure part: which `client_id`s are document URLs (§3), which hosts
//! the operator lets in, what a fetched document must say (§4.1: its own
//! `client_id`, no shared secret) and how long it may be kept (§4.4). The
//! fetch itself (https, public addresses, no redirects, size and time
//! bounds) is the binary's; caching and rate limits are the service's.

use crate::metadata::{validate_registration, AuthMethod, ClientMetadata, RegistrationRules};
use crate::OAuthError;
use serde_json::{Map, Value};
use std::time::Duration;
use url::Url;

/// Largest document accepted, bytes (§6.6 recommends 5 kilobytes).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// Longest `client_id` URL accepted, characters.
pub const MAX_CLIENT_ID_URL_LENGTH: usize = 256;
/// A document is kept at least this long, whatever its cache headers say
/// (`no-store` included): one fetch per client per interval, however many
/// requests name it.
pub const MIN_CACHE_LIFETIME: Duration = Duration::from_secs(60);
/// ... and at most this long.
pub const MAX_CACHE_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Kept this long when the response says nothing.
pub const DEFAULT_CACHE_LIFETIME: Duration = Duration::from_secs(3600);

/// The metadata fields a document may set (RFC 7591 §2, RFC 9449 §5.2,
/// RFC 9396 §10.2). Everything else — custos's governance fields, token
/// lifetimes, workload identities — is the operator's to say, and ignored.
const DOCUMENT_FIELDS: [&str; 17] = [
    "redirect_uris",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "client_name",
    "client_uri",
    "logo_uri",
    "scope",
    "contacts",
    "tos_uri",
    "policy_uri",
    "jwks_uri",
    "jwks",
    "software_id",
    "software_version",
    "dpop_bound_access_tokens",
    "authorization_details_types",
];

/// Whether `client_id` is meant as a document URL (anything starting with
/// `https://`; custos never issues such ids itself, §6.11).
pub fn is_document_client_id(client_id: &str) -> bool {
    client_id
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

fn invalid_client_id(reason: &str) -> OAuthError {
    OAuthError::invalid_request(format!(
        "client_id is not a usable client ID metadata document URL: {reason}"
    ))
}

/// The host of a document `client_id` (http included), for people to read.
pub fn document_host(client_id: &str) -> Option<String> {
    if !is_document_client_id_or_http(client_id) {
        return None;
    }
    Url::parse(client_id)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
}

/// Whether `client_id` is meant as a document URL when plain http is
/// allowed too (development: `CUSTOS_ALLOW_PRIVATE_URLS`).
pub fn is_document_client_id_or_http(client_id: &str) -> bool {
    is_document_client_id(client_id)
        || client_id
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// §3: an https URL with a path, no dot segments, no fragment, no user
/// name or password; custos also refuses a query (§3: SHOULD NOT), an IP
/// address as host, and URLs longer than [`MAX_CLIENT_ID_URL_LENGTH`].
/// The URL must be written as the parser would write it back (so that the
/// `client_id` compared with the document's is one string, §4.1).
///
/// `development` (`CUSTOS_ALLOW_PRIVATE_URLS`) also accepts plain http
/// and an IP address as host, for clients on the developer's machine.
pub fn check_client_id_url(client_id: &str, development: bool) -> Result<Url, OAuthError> {
    if client_id.len() > MAX_CLIENT_ID_URL_LENGTH {
        return Err(invalid_client_id(&format!(
            "longer than {MAX_CLIENT_ID_URL_LENGTH} characters"
        )));
    }
    let url = Url::parse(client_id).map_err(|_| invalid_client_id("not a URL"))?;
    if url.scheme() != "https" && !(development && url.scheme() == "http") {
        return Err(invalid_client_id("the scheme must be https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid_client_id("a user name or password is not allowed"));
    }
    if url.fragment().is_some() {
        return Err(invalid_client_id("a fragment is not allowed"));
    }
    if url.query().is_some() {
        return Err(invalid_client_id("a query is not allowed"));
    }
    match url.host() {
        // A trailing dot or an empty label names the same host another
        // way (and would slip past the operator's host lists).
        Some(url::Host::Domain(name)) if name.ends_with('.') || name.contains("..") => {
            return Err(invalid_client_id(
                "the host must be written without a trailing dot or empty labels",
            ))
        }
        Some(url::Host::Domain(_)) => {}
        Some(_) if development => {}
        Some(_) => return Err(invalid_client_id("the host must be a name, not an address")),
        None => return Err(invalid_client_id("no host")),
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(invalid_client_id("a path is required"));
    }
    // The parser removes dot segments and normalises case and escapes: a
    // URL that changes on the way through had some.
    if url.as_str() != client_id {
        return Err(invalid_client_id(
            "it must be in normal form (lower-case scheme and host, no dot segments, no default port, escapes as a URL parser writes them)",
        ));
    }
    Ok(url)
}

/// The operator's host lists: `example.com` names that host,
/// `*.example.com` every host below it (not itself). A denied host is
/// refused even if allowed; with an allow-list, only its hosts get in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostRules {
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
}

impl HostRules {
    /// Lower-cases and checks each pattern: a host name, optionally
    /// preceded by `*.`.
    pub fn new(allowed: Vec<String>, denied: Vec<String>) -> Result<Self, String> {
        let check = |list: Vec<String>| -> Result<Vec<String>, String> {
            list.into_iter()
                .map(|p| {
                    let p = p.trim().to_ascii_lowercase();
                    let name = p.strip_prefix("*.").unwrap_or(&p);
                    let valid = !name.is_empty()
                        && name.len() <= 253
                        && name.split('.').all(|label| {
                            !label.is_empty()
                                && label.len() <= 63
                                && label
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        });
                    if valid {
                        Ok(p)
                    } else {
                        Err(format!("'{p}' is not a host name or *.host pattern"))
                    }
                })
                .collect()
        };
        Ok(HostRules {
            allowed: check(allowed)?,
            denied: check(denied)?,
        })
    }

    /// Whether documents at `host` may be fetched and used.
    pub fn permits(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if self.denied.iter().any(|p| host_matches(p, &host)) {
            return false;
        }
        self.allowed.is_empty() || self.allowed.iter().any(|p| host_matches(p, &host))
    }

    /// Whether `host` is on the allow-list itself (not merely let in by an
    /// empty one).
    pub fn lists(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed.iter().any(|p| host_matches(p, &host))
            && !self.denied.iter().any(|p| host_matches(p, &host))
    }
}

/// `pattern` (lower-case) matches `host` (lower-case).
fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => host
            .strip_suffix(parent)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

fn invalid_document(reason: impl std::fmt::Display) -> OAuthError {
    OAuthError::invalid_client(format!("the client ID metadata document {reason}"))
}

/// §4.1: the document fetched from `client_id` as the client's metadata.
///
/// The body is at most [`MAX_DOCUMENT_BYTES`] of JSON holding an object
/// whose `client_id` is `client_id` exactly; `client_secret` and
/// `client_secret_expires_at` are refused, as is any
/// `token_endpoint_auth_method` but `none` (the default here) and
/// `private_key_jwt` (§6.2). Only [`DOCUMENT_FIELDS`] are read, then
/// checked as a registration would be under `rules` (redirect URIs,
/// `jwks_uri` on a public https address, grant types the server serves).
pub fn validate_document(
    client_id: &str,
    body: &[u8],
    rules: &RegistrationRules,
) -> Result<ClientMetadata, OAuthError> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(invalid_document(format!(
            "is larger than {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid_document("is not JSON"))?;
    let Value::Object(document) = value else {
        return Err(invalid_document("is not a JSON object"));
    };
    match document.get("client_id") {
        Some(Value::String(id)) if id == client_id => {}
        Some(Value::String(_)) => {
            return Err(invalid_document(
                "names another client_id: it must be its own URL exactly",
            ))
        }
        _ => return Err(invalid_document("has no client_id")),
    }
    for secret in ["client_secret", "client_secret_expires_at"] {
        if document.contains_key(secret) {
            return Err(invalid_document(format!(
                "contains {secret}: a published document cannot hold a shared secret"
            )));
        }
    }
    let mut fields: Map<String, Value> = DOCUMENT_FIELDS
        .iter()
        .filter_map(|name| document.get(*name).map(|v| ((*name).to_owned(), v.clone())))
        .collect();
    let method = fields
        .entry("token_endpoint_auth_method")
        .or_insert_with(|| Value::String("none".into()))
        .clone();
    if !matches!(method.as_str(), Some("none" | "private_key_jwt")) {
        return Err(invalid_document(
            "may use token_endpoint_auth_method none or private_key_jwt only (no shared secret can be established)",
        ));
    }
    let rules = RegistrationRules {
        auth_methods: rules
            .auth_methods
            .iter()
            .copied()
            .filter(|m| matches!(m, AuthMethod::None | AuthMethod::PrivateKeyJwt))
            .collect(),
        ..rules.clone()
    };
    validate_registration(&Value::Object(fields), &rules).map_err(|e| {
        invalid_document(format!(
            "is not acceptable client metadata: {}",
            e.description
        ))
    })
}

/// §6.3 (changes in client metadata): what a document a client was stored
/// under may not drop later — its authentication method's strength (a
/// `private_key_jwt` client turning public would let whoever holds its
/// refresh tokens, or its web host, act without its key) and
/// `dpop_bound_access_tokens`. `Some(reason)` when `new` drops one.
pub fn weakens(stored: &ClientMetadata, new: &ClientMetadata) -> Option<&'static str> {
    if new.token_endpoint_auth_method.strength() < stored.token_endpoint_auth_method.strength() {
        return Some(
            "its document now uses a weaker token_endpoint_auth_method than when it was stored",
        );
    }
    if stored.dpop_bound_access_tokens && !new.dpop_bound_access_tokens {
        return Some("its document no longer asks for dpop_bound_access_tokens");
    }
    None
}

/// §4.4: how long a document may be kept, from its response's
/// `Cache-Control` (`s-maxage`, else `max-age`; `no-store` and `no-cache`
/// mean the least) and `Age`, within [`MIN_CACHE_LIFETIME`] and
/// [`MAX_CACHE_LIFETIME`]; [`DEFAULT_CACHE_LIFETIME`] when it says nothing.
pub fn cache_lifetime(cache_control: Option<&str>, age: Option<&str>) -> Duration {
    let Some(cache_control) = cache_control else {
        return DEFAULT_CACHE_LIFETIME;
    };
    let mut max_age: Option<u64> = None;
    let mut shared_max_age: Option<u64> = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive, None),
        };
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" => return MIN_CACHE_LIFETIME,
            "max-age" => max_age = value.and_then(|v| v.parse().ok()),
            "s-maxage" => shared_max_age = value.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    let Some(seconds) = shared_max_age.or(max_age) else {
        return DEFAULT_CACHE_LIFETIME;
    };
    let age: u64 = age.and_then(|a| a.trim().parse().ok()).unwrap_or(0);
    Duration::from_secs(seconds.saturating_sub(age)).clamp(MIN_CACHE_LIFETIME, MAX_CACHE_LIFETIME)
}

#[cfg(test)]
mod tests;
