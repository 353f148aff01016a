//! Fetching clients' `jwks_uri` for private_key_jwt.
//!
//! - One fetch per URI however many requests wait on it: the cache is
//!   moka's future cache, whose `get_with` runs one loader per key and
//!   hands its result to every waiter.
//! - A key set is kept [`Limits::fresh_for`] (5 minutes); a failure is kept
//!   [`Limits::failure_ttl`] (30 s) with its error text, so a broken
//!   `jwks_uri` costs one fetch per 30 s, not one per request.
//! - `refresh` (a key was not found; the client may have rotated) bypasses
//!   the kept set, but a URI is re-fetched at most once per
//!   [`Limits::refetch_floor`] (10 s), and concurrent refreshes share one
//!   fetch. A failed refresh keeps the set already held.
//! - The body is read chunk by chunk and refused as soon as it passes
//!   [`Limits::max_body`] (256 KiB), at once if `Content-Length` says so; the
//!   whole exchange is bounded by [`Limits::timeout`].
//! - The cache is bounded by weight (the bytes of the key sets it holds),
//!   not by count, since one set may be up to 256 KiB.

use async_trait::async_trait;
use custos_protocol::address::is_public_ip;
use custos_service::JwksFetcher;
use jsonwebtoken::jwk::JwkSet;
use moka::future::Cache;
use moka::ops::compute::Op;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The bounds of the fetcher; [`Limits::default`] is what the server uses.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a fetched key set is used without asking again.
    pub fresh_for: Duration,
    /// How long a failure is remembered (and returned) without asking again.
    pub failure_ttl: Duration,
    /// The least time between two fetches of one URI on `refresh`.
    pub refetch_floor: Duration,
    /// The largest body accepted, in bytes.
    pub max_body: usize,
    /// The total weight of the cache, in bytes (roughly the bodies held).
    pub cache_bytes: u64,
    /// The whole exchange: connecting, sending, and reading the body.
    pub timeout: Duration,
    /// Connecting alone.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fresh_for: Duration::from_secs(300),
            failure_ttl: Duration::from_secs(30),
            refetch_floor: Duration::from_secs(10),
            max_body: 256 * 1024,
            cache_bytes: 8 * 1024 * 1024,
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// What the cache holds for one URI: the outcome of its latest fetch (or
/// the set kept when a refresh failed). `T` is what a fetch yields (here a
/// key set; `issuer_fetch` keeps discovery documents and bundles too).
#[derive(Debug, Clone)]
pub(crate) struct Cached<T> {
    pub(crate) result: Result<Arc<T>, Arc<str>>,
    /// When the entry leaves the cache.
    pub(crate) expires_at: Instant,
    /// When the latest fetch of this URI ended, successful or not.
    pub(crate) attempted_at: Instant,
    /// Roughly the bytes this entry holds.
    pub(crate) weight: u32,
}

impl<T> Cached<T> {
    /// The entry for a fetch of `key` that ended now: what it yielded (and
    /// the size of its body) kept `fresh_for`, or its error kept
    /// `failure_ttl`.
    pub(crate) fn new(
        key: &str,
        outcome: Result<(T, usize), String>,
        fresh_for: Duration,
        failure_ttl: Duration,
    ) -> Arc<Self> {
        let now = Instant::now();
        let (result, ttl, size) = match outcome {
            Ok((value, size)) => (Ok(Arc::new(value)), fresh_for, size),
            Err(error) => {
                let size = error.len();
                (Err(Arc::from(error)), failure_ttl, size)
            }
        };
        let weight = key.len() + size + ENTRY_OVERHEAD;
        Arc::new(Cached {
            result,
            expires_at: now + ttl,
            attempted_at: now,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        })
    }
}

/// Entries leave the cache at their own `expires_at`: a key set after
/// `fresh_for`, a failure after `failure_ttl`, and a set kept through a
/// failed refresh when it would have anyway.
struct UntilExpiry;

impl<T> moka::Expiry<String, Arc<Cached<T>>> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Cached<T>>,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Arc<Cached<T>>,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(updated_at))
    }
}

/// What an entry costs beyond its body: the map slot, the parsed keys'
/// structure, the timer wheel.
const ENTRY_OVERHEAD: usize = 512;

/// A cache of fetch outcomes, bounded by weight ([`Limits::cache_bytes`]),
/// each entry leaving at its own `expires_at`.
pub(crate) fn outcome_cache<T: Send + Sync + 'static>(
    limits: &Limits,
) -> Cache<String, Arc<Cached<T>>> {
    Cache::builder()
        .max_capacity(limits.cache_bytes)
        .weigher(|_uri: &String, entry: &Arc<Cached<T>>| entry.weight)
        .expire_after(UntilExpiry)
        .build()
}

pub struct HttpJwksFetcher {
    client: reqwest::Client,
    cache: Cache<String, Arc<Cached<JwkSet>>>,
    allow_private: bool,
    limits: Limits,
}

/// Resolves names, then refuses any answer that is not a public address,
/// so a `jwks_uri` cannot reach loopback, the private network or a cloud
/// metadata endpoint by way of DNS.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host(host)
                .await?
                .filter(|a| is_public_ip(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err("the name resolves to no public address".into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl HttpJwksFetcher {
    pub fn new(allow_private: bool) -> Result<Self, String> {
        Self::with_limits(allow_private, Limits::default())
    }

    pub fn with_limits(allow_private: bool, limits: Limits) -> Result<Self, String> {
        Ok(HttpJwksFetcher {
            client: fetch_client(allow_private, &limits)?,
            cache: outcome_cache(&limits),
            allow_private,
            limits,
        })
    }

    /// Fetches `uri` now and makes a cache entry of the outcome.
    async fn load(&self, uri: &str) -> Arc<Cached<JwkSet>> {
        let outcome = self.fetch_uncached(uri).await;
        Cached::new(uri, outcome, self.limits.fresh_for, self.limits.failure_ttl)
    }

    /// The cached outcome, or one fetch shared by every caller waiting.
    async fn get(&self, uri: &str) -> Result<Arc<JwkSet>, Arc<str>> {
        self.cache
            .get_with_by_ref(uri, self.load(uri))
            .await
            .result
            .clone()
    }

    /// Fetches again unless a fetch of `uri` ended within the floor or
    /// after this call began ([`refresh_entry`]).
    async fn refresh(&self, uri: &str) -> Result<Arc<JwkSet>, Arc<str>> {
        refresh_entry(&self.cache, uri, self.limits.refetch_floor, self.load(uri)).await
    }

    /// One GET of `uri`: the key set and the size of its body.
    async fn fetch_uncached(&self, uri: &str) -> Result<(JwkSet, usize), String> {
        let response = send_get(&self.client, uri, self.allow_private, "jwks_uri").await?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status().as_u16()));
        }
        let body = read_body(response, self.limits.max_body, "JWK Set").await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        let set = custos_protocol::metadata::validate_jwks(&value).map_err(|e| e.description)?;
        Ok((set, body.len()))
    }
}

/// The client every fetch goes through: no redirects, the limits' time
/// bounds, and (unless `allow_private`) names resolved to public addresses
/// only.
pub(crate) fn fetch_client(
    allow_private: bool,
    limits: &Limits,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder();
    if !allow_private {
        // A proxy from the environment (HTTPS_PROXY, ALL_PROXY) would
        // resolve the name itself and reach whatever it points at: the
        // public-only check needs the connection to be ours.
        builder = builder
            .dns_resolver(Arc::new(PublicOnlyResolver))
            .no_proxy();
    }
    if cfg!(test) {
        // The tests' server is on loopback; a proxy from the
        // environment must not stand in between.
        builder = builder.no_proxy();
    }
    builder
        .timeout(limits.timeout)
        .connect_timeout(limits.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| describe(&e))
}

/// Fetches again unless a fetch of `key` ended within `floor` or after this
/// call began (another caller's refresh, shared). The compute lock of the
/// entry lets one caller fetch at a time; the others then find its
/// outcome. `load` (run only if a fetch is due) fetches and makes the
/// entry. A failed refresh keeps what was held, reports its own error to
/// this caller, and counts for the floor.
pub(crate) async fn refresh_entry<T: Send + Sync + 'static>(
    cache: &Cache<String, Arc<Cached<T>>>,
    key: &str,
    floor: Duration,
    load: impl Future<Output = Arc<Cached<T>>>,
) -> Result<Arc<T>, Arc<str>> {
    let started = Instant::now();
    let mut own_failure: Option<Arc<str>> = None;
    let outcome = cache
        .entry_by_ref(key)
        .and_compute_with(|current| {
            let own_failure = &mut own_failure;
            async move {
                if let Some(current) = &current {
                    let held = current.value();
                    if held.attempted_at >= started || held.attempted_at.elapsed() < floor {
                        return Op::Nop;
                    }
                }
                let fresh = load.await;
                match (&fresh.result, current) {
                    // Keep the set already held (requests signed with
                    // its keys still verify); remember the attempt for
                    // the floor; tell this caller what went wrong.
                    (Err(error), Some(held)) if held.value().result.is_ok() => {
                        *own_failure = Some(error.clone());
                        let held = held.value();
                        Op::Put(Arc::new(Cached {
                            result: held.result.clone(),
                            expires_at: held.expires_at,
                            attempted_at: fresh.attempted_at,
                            weight: held.weight,
                        }))
                    }
                    _ => Op::Put(fresh),
                }
            }
        })
        .await;
    if let Some(error) = own_failure {
        return Err(error);
    }
    match outcome.into_entry() {
        Some(entry) => entry.into_value().result.clone(),
        None => Err(Arc::from("the key set left the cache")),
    }
}

/// Sends one GET of `uri` (called `name` in errors): https on a public
/// address unless `allow_private`. IP literals never reach the resolver,
/// so they are checked here.
pub(crate) async fn send_get(
    client: &reqwest::Client,
    uri: &str,
    allow_private: bool,
    name: &str,
) -> Result<reqwest::Response, String> {
    let url = reqwest::Url::parse(uri).map_err(|e| format!("{name}: {e}"))?;
    if !allow_private {
        if url.scheme() != "https" {
            return Err(format!("{name} must be https"));
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !is_public_ip(ip)) {
            return Err(format!("{name} is not on a public address"));
        }
    }
    client.get(url).send().await.map_err(|e| describe(&e))
}

/// Reads `response`'s body chunk by chunk, refused as soon as it passes
/// `max` bytes (at once if `Content-Length` says so); `what` names the body
/// in that error.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    max: usize,
    what: &str,
) -> Result<Vec<u8>, String> {
    let too_large = || format!("{what} larger than {max} bytes");
    let declared = response.content_length();
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.map_or(0, |n| n as usize).min(max));
    // Dropping `response` on the way out closes the connection
    // without reading the rest.
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if chunk.len() > max - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A short description of a failed request: what failed and the innermost
/// cause (such as the resolver's refusal), without the URL.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut cause: Option<&dyn std::error::Error> = None;
    let mut next = std::error::Error::source(error);
    while let Some(source) = next {
        cause = Some(source);
        next = source.source();
    }
    match cause {
        Some(cause) => {
            let text: String = cause.to_string().chars().take(120).collect();
            format!("{what}: {text}")
        }
        None => what.to_owned(),
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<JwkSet, String> {
        let result = if refresh {
            self.refresh(uri).await
        } else {
            self.get(uri).await
        };
        result
            .map(|set| JwkSet::clone(&set))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
