//! Fetching what trusted issuers publish ([`IssuerKeySource`]): OIDC
//! issuers' discovery documents and JWK Sets, and SPIFFE bundles from their
//! bundle endpoints (`https_web` profile).
//!
//! Built from the pieces of [`crate::jwks_fetch`], with its bounds:
//!
//! - https only, public addresses only (names resolved by the public-only
//!   resolver, IP literals checked before any request); with
//!   `allow_private`, any address and http to loopback. No redirects.
//! - The whole exchange within [`Limits::timeout`] (5 s), the body read
//!   chunk by chunk and refused past [`Limits::max_body`] (256 KiB).
//! - One fetch per URL however many callers wait (moka's `get_with` and
//!   compute lock); failures remembered [`Limits::failure_ttl`] (30 s).
//! - Key sets and discovery documents kept [`Limits::fresh_for`] (5 min);
//!   a bundle kept for its `spiffe_refresh_hint`, within
//!   [`IssuerLimits::shortest_hint`] and [`IssuerLimits::longest_hint`]
//!   (30 s, 1 h), [`Limits::fresh_for`] without one.
//! - `refresh` (a token named a key not held) fetches the key set or bundle
//!   again at most once per [`Limits::refetch_floor`] (10 s), and a failed
//!   refresh keeps what was held. The discovery document is not fetched
//!   again on `refresh`: it names where the keys are, not which.
//!
//! Discovery (OpenID Connect Discovery 1.0 §4, RFC 8414 §3): GET
//! `{issuer}/.well-known/openid-configuration`; on 404, the RFC 8414 URL
//! (`/.well-known/oauth-authorization-server` inserted between the host and
//! the issuer's path, which is `{issuer}/.well-known/...` for an issuer
//! without a path). The document's `issuer` must equal the configured
//! issuer exactly (OIDC Discovery §4.3), and its `jwks_uri` must be https
//! (or http on loopback with `allow_private`).

use crate::jwks_fetch::{outcome_cache, read_body, refresh_entry, send_get, Cached, Limits};
use async_trait::async_trait;
use custos_service::trusted_issuers::IssuerKeySource;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use moka::future::Cache;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The most keys an issuer's JWK Set may list (Kubernetes and CI issuers
/// publish a handful); a key-less token is tried against each.
const MAX_ISSUER_KEYS: usize = 64;

/// Members only private or symmetric keys have: a set that publishes one is
/// refused whole.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// The bounds of the fetcher; [`IssuerLimits::default`] is what the server
/// uses.
#[derive(Debug, Clone)]
pub struct IssuerLimits {
    /// As for clients' key sets. `fresh_for` applies to key sets, discovery
    /// documents and bundles without a refresh hint; `cache_bytes` to each
    /// of the three caches.
    pub fetch: Limits,
    /// The least time a bundle is kept, whatever its refresh hint.
    pub shortest_hint: Duration,
    /// The most time a bundle is kept, whatever its refresh hint.
    pub longest_hint: Duration,
}

impl Default for IssuerLimits {
    fn default() -> Self {
        IssuerLimits {
            fetch: Limits::default(),
            shortest_hint: Duration::from_secs(30),
            longest_hint: Duration::from_secs(3600),
        }
    }
}

/// The binary's [`IssuerKeySource`].
pub struct HttpIssuerKeySource {
    client: reqwest::Client,
    allow_private: bool,
    limits: IssuerLimits,
    /// issuer → the `jwks_uri` of its discovery document.
    discovery: Cache<String, Arc<Cached<String>>>,
    /// `jwks_uri` → the issuer's signing keys.
    keys: Cache<String, Arc<Cached<JwkSet>>>,
    /// bundle endpoint → the bundle as served.
    bundles: Cache<String, Arc<Cached<Vec<u8>>>>,
}

impl HttpIssuerKeySource {
    pub fn new(allow_private: bool) -> Result<Self, String> {
        Self::with_limits(allow_private, IssuerLimits::default())
    }

    pub fn with_limits(allow_private: bool, limits: IssuerLimits) -> Result<Self, String> {
        if limits.shortest_hint > limits.longest_hint {
            return Err("the shortest bundle refresh hint exceeds the longest".into());
        }
        Ok(HttpIssuerKeySource {
            client: crate::jwks_fetch::fetch_client(allow_private, &limits.fetch)?,
            allow_private,
            discovery: outcome_cache(&limits.fetch),
            keys: outcome_cache(&limits.fetch),
            bundles: outcome_cache(&limits.fetch),
            limits,
        })
    }

    /// https; with `allow_private`, http to loopback too; no credentials.
    /// Whether the host is public is checked when it is fetched.
    fn check_url(&self, name: &str, uri: &str) -> Result<(), String> {
        let url = url::Url::parse(uri).map_err(|e| format!("{name}: {e}"))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let loopback_http = self.allow_private && url.scheme() == "http" && loopback;
        if url.scheme() != "https" && !loopback_http {
            return Err(format!("{name} must be https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{name} must not carry credentials"));
        }
        Ok(())
    }

    /// One GET of `uri` (`name` in errors, which all begin with it): its
    /// body (`what`) as JSON, and as served; `None` on 404.
    async fn get_json(
        &self,
        name: &str,
        what: &str,
        uri: &str,
    ) -> Result<Option<(Value, Vec<u8>)>, String> {
        let named = |error: String| {
            if error.starts_with(name) {
                error
            } else {
                format!("{name}: {error}")
            }
        };
        self.check_url(name, uri)?;
        let response = send_get(&self.client, uri, self.allow_private, name)
            .await
            .map_err(named)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(format!("{name}: status {}", status.as_u16()));
        }
        let body = read_body(response, self.limits.fetch.max_body, what)
            .await
            .map_err(named)?;
        let value = serde_json::from_slice(&body).map_err(|e| format!("{name}: not JSON: {e}"))?;
        Ok(Some((value, body)))
    }

    /// As [`Self::get_json`], a 404 being an error like any other status.
    async fn get_found(
        &self,
        name: &str,
        what: &str,
        uri: &str,
    ) -> Result<(Value, Vec<u8>), String> {
        self.get_json(name, what, uri)
            .await?
            .ok_or_else(|| format!("{name}: status 404"))
    }

    fn entry<T>(&self, key: &str, outcome: Result<(T, usize), String>) -> Arc<Cached<T>> {
        let fetch = &self.limits.fetch;
        Cached::new(key, outcome, fetch.fresh_for, fetch.failure_ttl)
    }

    /// The `jwks_uri` of `issuer`'s discovery document, cached.
    async fn jwks_uri_of(&self, issuer: &str) -> Result<Arc<String>, Arc<str>> {
        let load = async {
            let outcome = self.discover(issuer).await.map(|uri| {
                let size = uri.len();
                (uri, size)
            });
            self.entry(issuer, outcome)
        };
        self.discovery
            .get_with_by_ref(issuer, load)
            .await
            .result
            .clone()
    }

    /// Fetches `issuer`'s discovery document and returns its `jwks_uri`.
    async fn discover(&self, issuer: &str) -> Result<String, String> {
        const NAME: &str = "discovery URL";
        const WHAT: &str = "discovery document";
        let oidc = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let document = match self.get_json(NAME, WHAT, &oidc).await? {
            Some((document, _)) => document,
            None => {
                let oauth = oauth_metadata_url(issuer)?;
                self.get_json(NAME, WHAT, &oauth).await?.ok_or_else(|| {
                    format!("{NAME}: status 404 (openid-configuration and oauth-authorization-server)")
                })?.0
            }
        };
        match document.get("issuer").and_then(Value::as_str) {
            Some(named) if named == issuer => {}
            Some(named) => {
                let named: String = named.chars().take(100).collect();
                return Err(format!(
                    "{WHAT}: its issuer {named:?} is not the configured issuer"
                ));
            }
            None => return Err(format!("{WHAT}: no issuer")),
        }
        let jwks_uri = document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{WHAT}: no jwks_uri"))?;
        if jwks_uri.len() > 2048 {
            return Err(format!("{WHAT}: jwks_uri is longer than 2048 bytes"));
        }
        self.check_url("jwks_uri", jwks_uri)
            .map_err(|e| format!("{WHAT}: {e}"))?;
        Ok(jwks_uri.to_owned())
    }

    /// Fetches the key set at `uri` now and makes a cache entry of it.
    async fn load_keys(&self, uri: &str) -> Arc<Cached<JwkSet>> {
        let outcome = async {
            let (document, body) = self.get_found("jwks_uri", "JWK Set", uri).await?;
            let set = signing_keys(&document).map_err(|e| format!("jwks_uri: {e}"))?;
            Ok((set, body.len()))
        }
        .await;
        self.entry(uri, outcome)
    }

    /// Fetches the bundle at `endpoint` now and makes a cache entry of it,
    /// kept for its refresh hint.
    async fn load_bundle(&self, endpoint: &str) -> Arc<Cached<Vec<u8>>> {
        const NAME: &str = "bundle endpoint";
        let outcome = async {
            let (document, body) = self.get_found(NAME, "SPIFFE bundle", endpoint).await?;
            if !document.get("keys").is_some_and(Value::is_array) {
                return Err(format!("{NAME}: not a bundle (no \"keys\" array)"));
            }
            let lifetime =
                bundle_lifetime(&document, &self.limits).map_err(|e| format!("{NAME}: {e}"))?;
            // The bytes as served: the service parses them for the trust
            // domain it expects.
            Ok((body, lifetime))
        }
        .await;
        match outcome {
            Ok((body, lifetime)) => {
                let size = body.len();
                let failure_ttl = self.limits.fetch.failure_ttl;
                Cached::new(endpoint, Ok((body, size)), lifetime, failure_ttl)
            }
            Err(error) => self.entry(endpoint, Err(error)),
        }
    }
}

/// The RFC 8414 §3.1 metadata URL of `issuer`: the well-known path between
/// the host and the issuer's path.
fn oauth_metadata_url(issuer: &str) -> Result<String, String> {
    let mut url = url::Url::parse(issuer).map_err(|e| format!("issuer: {e}"))?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.into())
}

/// The keys of an issuer's JWK Set that can verify its tokens. Keys for
/// another use (`use` other than `sig`), of a type or algorithm this server
/// does not read, or RSA keys under 2048 bits are left out; a set listing
/// a private or symmetric key, too many keys or no usable one is refused.
fn signing_keys(document: &Value) -> Result<JwkSet, String> {
    let listed = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("not a JWK Set (no \"keys\" array)")?;
    if listed.len() > MAX_ISSUER_KEYS {
        return Err(format!(
            "the JWK Set lists more than {MAX_ISSUER_KEYS} keys"
        ));
    }
    let mut keys = Vec::new();
    for key in listed {
        if PRIVATE_MEMBERS
            .iter()
            .any(|member| key.get(member).is_some())
        {
            return Err("the JWK Set holds a private or symmetric key".into());
        }
        if key.get("use").is_some_and(|key_use| key_use != "sig") {
            continue;
        }
        let short_rsa = key.get("kty").and_then(Value::as_str) == Some("RSA")
            && key
                .get("n")
                .and_then(Value::as_str)
                .map_or(0, |n| n.trim_end_matches('=').len() * 6)
                < 2040;
        if short_rsa {
            continue;
        }
        if let Ok(jwk) = serde_json::from_value::<Jwk>(key.clone()) {
            keys.push(jwk);
        }
    }
    if keys.is_empty() {
        return Err("the JWK Set has no usable signing key".into());
    }
    Ok(JwkSet { keys })
}

/// How long a bundle is kept: its `spiffe_refresh_hint` (SPIFFE Trust
/// Domain and Bundle §4.1.2) within the limits' bounds, or `fresh_for`
/// without one. A hint that is not a non-negative integer makes the bundle
/// invalid (the service would refuse it).
fn bundle_lifetime(document: &Value, limits: &IssuerLimits) -> Result<Duration, String> {
    match document.get("spiffe_refresh_hint") {
        None => Ok(limits.fetch.fresh_for),
        Some(hint) => {
            let seconds = hint
                .as_u64()
                .ok_or("spiffe_refresh_hint is not a non-negative integer of seconds")?;
            Ok(Duration::from_secs(seconds)
                .max(limits.shortest_hint)
                .min(limits.longest_hint))
        }
    }
}

#[async_trait]
impl IssuerKeySource for HttpIssuerKeySource {
    async fn oidc_keys(
        &self,
        issuer: &str,
        jwks_uri: Option<&str>,
        refresh: bool,
    ) -> Result<JwkSet, String> {
        let uri = match jwks_uri {
            Some(uri) => uri.to_owned(),
            None => {
                let discovered: Arc<String> =
                    self.jwks_uri_of(issuer).await.map_err(|e| e.to_string())?;
                String::clone(&discovered)
            }
        };
        let result = if refresh {
            let floor = self.limits.fetch.refetch_floor;
            refresh_entry(&self.keys, &uri, floor, self.load_keys(&uri)).await
        } else {
            let load = self.load_keys(&uri);
            self.keys.get_with_by_ref(&uri, load).await.result.clone()
        };
        result
            .map(|set| JwkSet::clone(&set))
            .map_err(|e| e.to_string())
    }

    async fn spiffe_bundle(&self, endpoint: &str, refresh: bool) -> Result<Vec<u8>, String> {
        let result = if refresh {
            let floor = self.limits.fetch.refetch_floor;
            refresh_entry(&self.bundles, endpoint, floor, self.load_bundle(endpoint)).await
        } else {
            let load = self.load_bundle(endpoint);
            self.bundles
                .get_with_by_ref(endpoint, load)
                .await
                .result
                .clone()
        };
        result
            .map(|bytes| Vec::clone(&bytes))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
