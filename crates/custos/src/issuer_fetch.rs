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
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinSet;

    const KEY: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"k1","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    const OPENID: &str = "/.well-known/openid-configuration";

    fn jwks() -> String {
        format!(r#"{{"keys":[{KEY}]}}"#)
    }

    fn discovery(issuer: &str, jwks_uri: &str) -> String {
        format!(r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}"}}"#)
    }

    fn bundle(hint: Option<u64>) -> String {
        let hint = hint.map_or(String::new(), |h| format!(r#","spiffe_refresh_hint":{h}"#));
        format!(r#"{{"keys":[],"spiffe_sequence":1{hint}}}"#)
    }

    /// A whole HTTP/1.1 response that closes the connection.
    fn response(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
            body.len()
        )
    }

    fn ok(body: &str) -> String {
        response("200 OK", "", body)
    }

    fn not_found() -> String {
        response("404 Not Found", "", "")
    }

    /// What the server is asked: its own base URL (`http://127.0.0.1:port`),
    /// the request's path, and how many requests for that path came before.
    struct Asked<'a> {
        base: &'a str,
        path: &'a str,
        earlier: usize,
    }

    struct Server {
        base: String,
        hits: Arc<Mutex<HashMap<String, usize>>>,
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        fn hits(&self, path: &str) -> usize {
            self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
        }

        fn total(&self) -> usize {
            self.hits.lock().unwrap().values().sum()
        }
    }

    /// A server on 127.0.0.1:0 that reads each request's head, counts it
    /// by path, waits `delay`, and writes what `respond` returns.
    async fn serve_after<F>(delay: Duration, respond: F) -> Server
    where
        F: Fn(Asked<'_>) -> String + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
        let (counter, respond, server_base) = (hits.clone(), Arc::new(respond), base.clone());
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (counter, respond, base) =
                    (counter.clone(), respond.clone(), server_base.clone());
                tokio::spawn(async move {
                    let Some(path) = read_path(&mut stream).await else {
                        return;
                    };
                    let earlier = {
                        let mut hits = counter.lock().unwrap();
                        let count = hits.entry(path.clone()).or_default();
                        *count += 1;
                        *count - 1
                    };
                    tokio::time::sleep(delay).await;
                    let answer = respond(Asked {
                        base: &base,
                        path: &path,
                        earlier,
                    });
                    let _ = stream.write_all(answer.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Server { base, hits }
    }

    async fn serve<F>(respond: F) -> Server
    where
        F: Fn(Asked<'_>) -> String + Send + Sync + 'static,
    {
        serve_after(Duration::ZERO, respond).await
    }

    /// The path of the request line, once the whole head has arrived.
    async fn read_path(stream: &mut TcpStream) -> Option<String> {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        head.split(' ').nth(1).map(str::to_owned)
    }

    /// An issuer at the server's base URL: discovery, keys at `/jwks`.
    async fn issuer_server() -> Server {
        serve(|asked| match asked.path {
            OPENID => ok(&discovery(asked.base, &format!("{}/jwks", asked.base))),
            "/jwks" => ok(&jwks()),
            _ => not_found(),
        })
        .await
    }

    fn source(limits: IssuerLimits) -> HttpIssuerKeySource {
        HttpIssuerKeySource::with_limits(true, limits).unwrap()
    }

    fn without_floor() -> IssuerLimits {
        let mut limits = IssuerLimits::default();
        limits.fetch.refetch_floor = Duration::ZERO;
        limits
    }

    fn kids(set: &JwkSet) -> Vec<&str> {
        set.keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect()
    }

    #[tokio::test]
    async fn discovery_finds_the_issuers_keys_and_both_are_kept() {
        let server = issuer_server().await;
        let source = source(IssuerLimits::default());
        for _ in 0..3 {
            let set = source.oidc_keys(&server.base, None, false).await.unwrap();
            assert_eq!(kids(&set), ["k1"]);
        }
        assert_eq!(server.hits(OPENID), 1);
        assert_eq!(server.hits("/jwks"), 1);
        assert_eq!(server.total(), 2);
    }

    /// OIDC Discovery §4.3: the document's `issuer` is the configured one,
    /// character for character (a trailing slash is a different issuer).
    #[tokio::test]
    async fn a_discovery_document_naming_another_issuer_is_refused() {
        let server = serve(|asked| match asked.path {
            OPENID => ok(&discovery(
                "https://attacker.example",
                &format!("{}/jwks", asked.base),
            )),
            "/jwks" => ok(&jwks()),
            _ => not_found(),
        })
        .await;
        let source = source(IssuerLimits::default());
        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert!(error.contains("is not the configured issuer"), "{error}");
        assert!(error.contains("attacker.example"), "{error}");

        let slash = issuer_server().await;
        let error = source
            .oidc_keys(&format!("{}/", slash.base), None, false)
            .await
            .unwrap_err();
        assert!(error.contains("is not the configured issuer"), "{error}");
        assert_eq!(server.hits("/jwks") + slash.hits("/jwks"), 0);
    }

    /// RFC 8414 §3.1: on 404, the well-known path goes between the host and
    /// the issuer's path.
    #[tokio::test]
    async fn discovery_falls_back_to_the_oauth_metadata_url_on_404() {
        let server = serve(|asked| match asked.path {
            "/.well-known/oauth-authorization-server/tenant" => ok(&discovery(
                &format!("{}/tenant", asked.base),
                &format!("{}/jwks", asked.base),
            )),
            "/jwks" => ok(&jwks()),
            _ => not_found(),
        })
        .await;
        let source = source(IssuerLimits::default());
        let issuer = server.url("/tenant");
        let set = source.oidc_keys(&issuer, None, false).await.unwrap();
        assert_eq!(kids(&set), ["k1"]);
        assert_eq!(server.hits("/tenant/.well-known/openid-configuration"), 1);
        assert_eq!(server.total(), 3);
    }

    /// A failure other than 404 is not a reason to look elsewhere.
    #[tokio::test]
    async fn discovery_does_not_fall_back_on_other_failures() {
        let server = serve(|asked| match asked.path {
            OPENID => response("500 Internal Server Error", "", ""),
            _ => ok(&discovery(asked.base, &format!("{}/jwks", asked.base))),
        })
        .await;
        let source = source(IssuerLimits::default());
        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert_eq!(error, "discovery URL: status 500");
        assert_eq!(server.total(), 1);
    }

    #[tokio::test]
    async fn a_configured_jwks_uri_is_fetched_without_discovery() {
        let server = issuer_server().await;
        let source = source(IssuerLimits::default());
        let jwks_uri = server.url("/jwks");
        for _ in 0..3 {
            let set = source
                .oidc_keys("https://issuer.example", Some(&jwks_uri), false)
                .await
                .unwrap();
            assert_eq!(kids(&set), ["k1"]);
        }
        assert_eq!(server.hits("/jwks"), 1);
        assert_eq!(server.total(), 1);
    }

    /// `refresh` (a token named a key not held) fetches the key set again,
    /// at most once per floor, and not the discovery document.
    #[tokio::test]
    async fn an_unknown_kid_refresh_refetches_the_key_set_at_most_once_per_floor() {
        let server = issuer_server().await;
        let source = source(IssuerLimits::default());
        source.oidc_keys(&server.base, None, false).await.unwrap();
        for _ in 0..3 {
            source.oidc_keys(&server.base, None, true).await.unwrap();
        }
        assert_eq!(server.hits("/jwks"), 1, "within the 10 s floor");

        let server = issuer_server().await;
        let source = self::source(without_floor());
        source.oidc_keys(&server.base, None, false).await.unwrap();
        source.oidc_keys(&server.base, None, true).await.unwrap();
        assert_eq!(server.hits("/jwks"), 2, "refresh bypasses the held set");
        source.oidc_keys(&server.base, None, false).await.unwrap();
        assert_eq!(server.hits("/jwks"), 2, "the refreshed set is kept");
        assert_eq!(server.hits(OPENID), 1, "the discovery document is kept");
    }

    /// A failed refresh reports its error and keeps the held set.
    #[tokio::test]
    async fn a_failed_refresh_keeps_the_held_key_set() {
        let server = serve(|asked| match asked.earlier {
            0 => ok(&jwks()),
            _ => response("503 Service Unavailable", "", ""),
        })
        .await;
        let source = source(without_floor());
        let uri = server.url("/jwks");
        source.oidc_keys("x", Some(&uri), false).await.unwrap();
        let error = source.oidc_keys("x", Some(&uri), true).await.unwrap_err();
        assert_eq!(error, "jwks_uri: status 503");
        let set = source.oidc_keys("x", Some(&uri), false).await.unwrap();
        assert_eq!(kids(&set), ["k1"]);
    }

    /// Bodies past the cap are refused, declared or not, for each kind of
    /// document.
    #[tokio::test]
    async fn an_oversized_body_is_refused() {
        let padded = |body: String| format!("{body:<2048}");
        let server = serve(move |asked| match asked.path {
            OPENID => ok(&padded(discovery(
                asked.base,
                &format!("{}/jwks", asked.base),
            ))),
            "/jwks" => ok(&padded(jwks())),
            "/chunked" => {
                let body = padded(jwks());
                format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                    body.len()
                )
            }
            "/bundle" => ok(&padded(bundle(None))),
            _ => not_found(),
        })
        .await;
        let mut limits = IssuerLimits::default();
        limits.fetch.max_body = 1024;
        let source = source(limits);
        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "discovery URL: discovery document larger than 1024 bytes"
        );
        for path in ["/jwks", "/chunked"] {
            let error = source
                .oidc_keys("x", Some(&server.url(path)), false)
                .await
                .unwrap_err();
            assert_eq!(error, "jwks_uri: JWK Set larger than 1024 bytes", "{path}");
        }
        let error = source
            .spiffe_bundle(&server.url("/bundle"), false)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "bundle endpoint: SPIFFE bundle larger than 1024 bytes"
        );
    }

    /// A redirect is an answer, not an instruction: never followed, for
    /// discovery, key sets or bundles.
    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let server = serve(|asked| match asked.path {
            "/elsewhere" => ok(&jwks()),
            _ => response(
                "302 Found",
                &format!("Location: {}/elsewhere\r\n", asked.base),
                "",
            ),
        })
        .await;
        let source = source(IssuerLimits::default());
        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert_eq!(error, "discovery URL: status 302");
        let error = source
            .oidc_keys("x", Some(&server.url("/jwks")), false)
            .await
            .unwrap_err();
        assert_eq!(error, "jwks_uri: status 302");
        let error = source
            .spiffe_bundle(&server.url("/bundle"), false)
            .await
            .unwrap_err();
        assert_eq!(error, "bundle endpoint: status 302");
        assert_eq!(server.hits("/elsewhere"), 0);
    }

    /// A discovered `jwks_uri` must be https: with `allow_private`, http
    /// on loopback only.
    #[tokio::test]
    async fn a_discovered_jwks_uri_that_is_not_https_is_refused() {
        let server = serve(|asked| match asked.path {
            OPENID => ok(&discovery(asked.base, "http://192.0.2.1/jwks")),
            _ => not_found(),
        })
        .await;
        let source = source(IssuerLimits::default());
        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert_eq!(error, "discovery document: jwks_uri must be https");
        assert_eq!(server.total(), 1);
    }

    /// Without `allow_private`: http, loopback literals (however written)
    /// and names resolving to loopback are refused before any request.
    #[tokio::test]
    async fn private_addresses_are_refused_without_allow_private() {
        let server = issuer_server().await;
        let port = server.base.rsplit(':').next().unwrap().to_owned();
        let source = HttpIssuerKeySource::new(false).unwrap();

        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert_eq!(error, "discovery URL must be https");
        let error = source
            .oidc_keys("x", Some(&server.url("/jwks")), false)
            .await
            .unwrap_err();
        assert_eq!(error, "jwks_uri must be https");
        let error = source
            .spiffe_bundle(&server.url("/bundle"), false)
            .await
            .unwrap_err();
        assert_eq!(error, "bundle endpoint must be https");

        let issuer = format!("https://127.0.0.1:{port}");
        let error = source.oidc_keys(&issuer, None, false).await.unwrap_err();
        assert_eq!(error, "discovery URL is not on a public address");
        for uri in [
            format!("https://[::1]:{port}/jwks"),
            format!("https://[::ffff:127.0.0.1]:{port}/jwks"),
            format!("https://10.0.0.1:{port}/jwks"),
            format!("https://169.254.169.254:{port}/jwks"),
        ] {
            let error = source.oidc_keys("x", Some(&uri), false).await.unwrap_err();
            assert_eq!(error, "jwks_uri is not on a public address", "{uri}");
        }
        let error = source
            .spiffe_bundle(&format!("https://localhost:{port}/bundle"), false)
            .await
            .unwrap_err();
        assert!(error.starts_with("bundle endpoint: "), "{error}");
        assert!(error.contains("no public address"), "{error}");
        assert_eq!(server.total(), 0);
    }

    /// Many callers waiting on one issuer make one discovery request and
    /// one key set request; on one endpoint, one bundle request.
    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_per_url() {
        let server = serve_after(Duration::from_millis(200), |asked| match asked.path {
            OPENID => ok(&discovery(asked.base, &format!("{}/jwks", asked.base))),
            "/jwks" => ok(&jwks()),
            "/bundle" => ok(&bundle(None)),
            _ => not_found(),
        })
        .await;
        let source = Arc::new(source(IssuerLimits::default()));
        let mut tasks = JoinSet::new();
        for i in 0..40 {
            let (source, base, endpoint) =
                (source.clone(), server.base.clone(), server.url("/bundle"));
            tasks.spawn(async move {
                if i % 2 == 0 {
                    source.oidc_keys(&base, None, false).await.map(|_| ())
                } else {
                    source.spiffe_bundle(&endpoint, false).await.map(|_| ())
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap().unwrap();
        }
        assert_eq!(server.hits(OPENID), 1);
        assert_eq!(server.hits("/jwks"), 1);
        assert_eq!(server.hits("/bundle"), 1);
    }

    /// A failing URL is asked once while its failure is remembered.
    #[tokio::test]
    async fn a_failure_is_remembered() {
        let server = serve(|_| response("500 Internal Server Error", "", "")).await;
        let source = source(IssuerLimits::default());
        for _ in 0..5 {
            let error = source
                .oidc_keys(&server.base, None, false)
                .await
                .unwrap_err();
            assert_eq!(error, "discovery URL: status 500");
            let error = source
                .spiffe_bundle(&server.url("/bundle"), false)
                .await
                .unwrap_err();
            assert_eq!(error, "bundle endpoint: status 500");
        }
        assert_eq!(server.total(), 2);
    }

    /// Encryption keys, unreadable keys and short RSA keys are left out;
    /// a published private key refuses the set.
    #[tokio::test]
    async fn only_usable_signing_keys_are_kept() {
        let enc = r#"{"kty":"RSA","kid":"enc","use":"enc","alg":"RSA-OAEP","e":"AQAB","n":"AAAA"}"#;
        let odd = r#"{"kty":"XYZ","kid":"odd"}"#;
        let short = r#"{"kty":"RSA","kid":"short","e":"AQAB","n":"AAAA"}"#;
        let private = r#"{"kty":"OKP","crv":"Ed25519","kid":"p","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"AAAA"}"#;
        let mixed = format!(r#"{{"keys":[{enc},{odd},{short},{KEY}]}}"#);
        let leaked = format!(r#"{{"keys":[{KEY},{private}]}}"#);
        let none = format!(r#"{{"keys":[{enc}]}}"#);
        let server = serve(move |asked| match asked.path {
            "/mixed" => ok(&mixed),
            "/leaked" => ok(&leaked),
            "/none" => ok(&none),
            _ => not_found(),
        })
        .await;
        let source = source(IssuerLimits::default());
        let set = source
            .oidc_keys("x", Some(&server.url("/mixed")), false)
            .await
            .unwrap();
        assert_eq!(kids(&set), ["k1"]);
        let error = source
            .oidc_keys("x", Some(&server.url("/leaked")), false)
            .await
            .unwrap_err();
        assert_eq!(
            error,
            "jwks_uri: the JWK Set holds a private or symmetric key"
        );
        let error = source
            .oidc_keys("x", Some(&server.url("/none")), false)
            .await
            .unwrap_err();
        assert_eq!(error, "jwks_uri: the JWK Set has no usable signing key");
    }

    /// The bundle comes back byte for byte; a document without a `keys`
    /// array is not a bundle.
    #[tokio::test]
    async fn a_bundle_is_returned_as_served_and_must_have_keys() {
        let served = format!("{{ \"keys\": [{KEY}],\n  \"spiffe_sequence\": 7 }}");
        let body = served.clone();
        let server = serve(move |asked| match asked.path {
            "/bundle" => ok(&body),
            "/array" => ok("[]"),
            "/keyless" => ok(r#"{"spiffe_sequence":1}"#),
            _ => not_found(),
        })
        .await;
        let source = source(IssuerLimits::default());
        let bytes = source
            .spiffe_bundle(&server.url("/bundle"), false)
            .await
            .unwrap();
        assert_eq!(bytes, served.as_bytes());
        for path in ["/array", "/keyless"] {
            let error = source
                .spiffe_bundle(&server.url(path), false)
                .await
                .unwrap_err();
            assert_eq!(error, "bundle endpoint: not a bundle (no \"keys\" array)");
        }
    }

    /// `spiffe_refresh_hint` sets how long a bundle is kept, within
    /// [30 s, 1 h]; 5 minutes without one; an invalid one fails the bundle.
    #[test]
    fn a_bundles_refresh_hint_is_honoured_within_bounds() {
        let limits = IssuerLimits::default();
        let lifetime = |body: &str| bundle_lifetime(&serde_json::from_str(body).unwrap(), &limits);
        for (hint, kept) in [
            (Some(120), 120),
            (Some(0), 30),
            (Some(29), 30),
            (Some(3600), 3600),
            (Some(86_400), 3600),
            (None, 300),
        ] {
            assert_eq!(
                lifetime(&bundle(hint)),
                Ok(Duration::from_secs(kept)),
                "{hint:?}"
            );
        }
        for hint in ["-1", "1.5", "\"60\""] {
            let body = format!(r#"{{"keys":[],"spiffe_refresh_hint":{hint}}}"#);
            assert!(lifetime(&body).is_err(), "{hint}");
        }
    }

    /// The cached bundle lives for its hint, then is fetched again; a
    /// refresh within the floor is not a fetch.
    #[tokio::test]
    async fn a_bundle_is_kept_until_its_refresh_hint_then_fetched_again() {
        let server = serve(|asked| match asked.path {
            "/hinted" => ok(&bundle(Some(120))),
            "/brief" => ok(&bundle(Some(0))),
            _ => not_found(),
        })
        .await;
        let limits = IssuerLimits {
            shortest_hint: Duration::from_millis(100),
            ..IssuerLimits::default()
        };
        let source = source(limits);

        let hinted = server.url("/hinted");
        for refresh in [false, false, true, true] {
            source.spiffe_bundle(&hinted, refresh).await.unwrap();
        }
        assert_eq!(server.hits("/hinted"), 1, "kept, and refreshes are floored");
        let entry = source.bundles.get(&hinted).await.unwrap();
        let kept = entry.expires_at - entry.attempted_at;
        assert_eq!(kept, Duration::from_secs(120));

        let brief = server.url("/brief");
        source.spiffe_bundle(&brief, false).await.unwrap();
        source.spiffe_bundle(&brief, false).await.unwrap();
        assert_eq!(server.hits("/brief"), 1);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(250)).await;
        source.spiffe_bundle(&brief, false).await.unwrap();
        assert_eq!(
            server.hits("/brief"),
            2,
            "fetched again once the hint passed"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// `refresh` of a bundle: at most once per floor, the held bundle kept
    /// through a failure.
    #[tokio::test]
    async fn a_bundle_refresh_refetches_at_most_once_per_floor() {
        let server = serve(|asked| match asked.earlier {
            0 | 1 => ok(&bundle(Some(600))),
            _ => response("503 Service Unavailable", "", ""),
        })
        .await;
        let endpoint = server.url("/bundle");
        let floored = source(IssuerLimits::default());
        floored.spiffe_bundle(&endpoint, false).await.unwrap();
        floored.spiffe_bundle(&endpoint, true).await.unwrap();
        assert_eq!(server.total(), 1, "within the 10 s floor");

        let source = self::source(without_floor());
        source.spiffe_bundle(&endpoint, true).await.unwrap();
        assert_eq!(server.total(), 2, "a refresh with no set held fetches");
        let error = source.spiffe_bundle(&endpoint, true).await.unwrap_err();
        assert_eq!(error, "bundle endpoint: status 503");
        let held = source.spiffe_bundle(&endpoint, false).await.unwrap();
        assert_eq!(held, bundle(Some(600)).as_bytes());
        assert_eq!(server.total(), 3);
    }

    #[test]
    fn the_oauth_metadata_url_puts_the_well_known_path_before_the_issuers_path() {
        for (issuer, url) in [
            (
                "https://as.example",
                "https://as.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://as.example/",
                "https://as.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://as.example/tenant/1",
                "https://as.example/.well-known/oauth-authorization-server/tenant/1",
            ),
        ] {
            assert_eq!(oauth_metadata_url(issuer).unwrap(), url);
        }
    }
}
