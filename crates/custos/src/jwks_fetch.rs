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
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{Notify, Semaphore};
    use tokio::task::JoinSet;

    const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    struct Server {
        uri: String,
        requests: Arc<AtomicUsize>,
    }

    /// A server on 127.0.0.1:0 that reads each request's head, counts it
    /// (the count before it is passed on), and lets `respond` answer.
    async fn serve<F, Fut>(respond: F) -> Server
    where
        F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    if read_head(&mut stream).await {
                        let earlier = counter.fetch_add(1, SeqCst);
                        respond(stream, earlier).await;
                    }
                });
            }
        });
        Server {
            uri: format!("http://{address}/jwks.json"),
            requests,
        }
    }

    async fn read_head(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
        true
    }

    async fn reply(mut stream: TcpStream, status: &str, body: &str) {
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn fetcher(limits: Limits) -> HttpJwksFetcher {
        HttpJwksFetcher::with_limits(true, limits).unwrap()
    }

    fn kid(set: &JwkSet) -> Option<&str> {
        set.keys.first()?.common.key_id.as_deref()
    }

    #[tokio::test]
    async fn a_key_set_is_fetched_and_kept() {
        let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
        let fetcher = fetcher(Limits::default());
        for _ in 0..3 {
            let set = fetcher.fetch(&server.uri, false).await.unwrap();
            assert_eq!(kid(&set), Some("k1"));
        }
        assert_eq!(server.requests.load(SeqCst), 1);
    }

    /// (a) 200 MB, chunked, no Content-Length, 16 KiB a millisecond: the
    /// fetcher stops after the cap; the server gets to write little more.
    #[tokio::test]
    async fn a_slow_endless_body_is_refused_after_the_cap() {
        const TOTAL: usize = 200 * 1024 * 1024;
        const CHUNK: usize = 16 * 1024;
        let written = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(Notify::new());
        let (w, f) = (written.clone(), finished.clone());
        let server = serve(move |mut stream, _| {
            let (written, finished) = (w.clone(), f.clone());
            async move {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
                chunk.extend(std::iter::repeat_n(b' ', CHUNK));
                chunk.extend_from_slice(b"\r\n");
                if stream.write_all(head.as_bytes()).await.is_ok() {
                    while written.load(SeqCst) < TOTAL {
                        if stream.write_all(&chunk).await.is_err() {
                            break;
                        }
                        written.fetch_add(CHUNK, SeqCst);
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                finished.notify_one();
            }
        })
        .await;
        let limits = Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let max = limits.max_body;
        let fetcher = fetcher(limits);
        let started = Instant::now();
        let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
        assert_eq!(error, format!("JWK Set larger than {max} bytes"));
        // The server notices the closed connection within a write or two.
        tokio::time::timeout(Duration::from_secs(10), finished.notified())
            .await
            .expect("the server kept writing after the fetcher gave up");
        let written = written.load(SeqCst);
        assert!(written > max, "{written}");
        assert!(written <= max + 1024 * 1024, "{written} bytes written");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    /// (d) A Content-Length over the cap is refused before any body: the
    /// server sends the head only and holds the connection open.
    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_without_reading() {
        let server = serve(|mut stream, _| async move {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            std::future::pending::<()>().await;
        })
        .await;
        let limits = Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let max = limits.max_body;
        let fetcher = fetcher(limits);
        let error =
            tokio::time::timeout(Duration::from_secs(10), fetcher.fetch(&server.uri, false))
                .await
                .expect("the fetcher waited for the body")
                .unwrap_err();
        assert_eq!(error, format!("JWK Set larger than {max} bytes"));
    }

    /// The cap is inclusive, with or without a Content-Length.
    #[tokio::test]
    async fn a_body_of_exactly_the_cap_is_accepted_and_one_byte_more_is_not() {
        let max = 4096;
        let exact = format!("{JWKS:<max$}");
        let over = format!("{exact} ");
        for (body, chunked, accepted) in [
            (exact.clone(), false, true),
            (exact, true, true),
            (over.clone(), false, false),
            (over, true, false),
        ] {
            let served = body.clone();
            let server = serve(move |mut stream, _| {
                let body = served.clone();
                async move {
                    if chunked {
                        let response = format!(
                            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    } else {
                        reply(stream, "200 OK", &body).await;
                    }
                }
            })
            .await;
            let fetcher = fetcher(Limits {
                max_body: max,
                ..Limits::default()
            });
            let result = fetcher.fetch(&server.uri, false).await;
            assert_eq!(
                result.is_ok(),
                accepted,
                "{} bytes, chunked {chunked}: {result:?}",
                body.len()
            );
        }
    }

    /// Spawns `n` fetches of `uri` at once and returns them once the server
    /// has received the first request; the server answers when `gate`
    /// opens.
    fn spawn_fetches(
        fetcher: &Arc<HttpJwksFetcher>,
        uri: &str,
        refresh: bool,
        n: usize,
    ) -> JoinSet<Result<JwkSet, String>> {
        let mut tasks = JoinSet::new();
        for _ in 0..n {
            let (fetcher, uri) = (fetcher.clone(), uri.to_owned());
            tasks.spawn(async move { fetcher.fetch(&uri, refresh).await });
        }
        tasks
    }

    async fn gated_server() -> (Server, Arc<Semaphore>) {
        let gate = Arc::new(Semaphore::new(0));
        let g = gate.clone();
        let server = serve(move |stream, _| {
            let gate = g.clone();
            async move {
                let _ = gate.acquire().await;
                reply(stream, "200 OK", JWKS).await;
            }
        })
        .await;
        (server, gate)
    }

    /// Holds the server's answer until the first request has arrived (on
    /// this single-threaded runtime every spawned fetch has started by
    /// then), then lets it go and checks every fetch got the set.
    async fn release_and_collect(
        server: &Server,
        gate: &Semaphore,
        mut tasks: JoinSet<Result<JwkSet, String>>,
    ) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while server.requests.load(SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("no request reached the server");
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.add_permits(Semaphore::MAX_PERMITS / 2);
        let mut answered = 0;
        while let Some(joined) = tasks.join_next().await {
            let set = joined.unwrap().unwrap();
            assert_eq!(kid(&set), Some("k1"));
            answered += 1;
        }
        assert_eq!(answered, 50);
    }

    /// (b) 50 concurrent fetches of one URI make exactly one request.
    #[tokio::test]
    async fn concurrent_fetches_of_one_uri_make_one_request() {
        let (server, gate) = gated_server().await;
        let fetcher = Arc::new(fetcher(Limits::default()));
        let tasks = spawn_fetches(&fetcher, &server.uri, false, 50);
        release_and_collect(&server, &gate, tasks).await;
        assert_eq!(server.requests.load(SeqCst), 1);
    }

    /// 50 concurrent refreshes share one fetch too, even with no floor.
    #[tokio::test]
    async fn concurrent_refreshes_of_one_uri_make_one_request() {
        let (server, gate) = gated_server().await;
        let fetcher = Arc::new(fetcher(Limits {
            refetch_floor: Duration::ZERO,
            ..Limits::default()
        }));
        let tasks = spawn_fetches(&fetcher, &server.uri, true, 50);
        release_and_collect(&server, &gate, tasks).await;
        assert_eq!(server.requests.load(SeqCst), 1);
    }

    /// `refresh` bypasses the kept set, but not within the floor.
    #[tokio::test]
    async fn refresh_refetches_at_most_once_per_floor() {
        let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
        let fetcher = fetcher(Limits::default());
        fetcher.fetch(&server.uri, false).await.unwrap();
        fetcher.fetch(&server.uri, true).await.unwrap();
        fetcher.fetch(&server.uri, true).await.unwrap();
        assert_eq!(server.requests.load(SeqCst), 1, "within the 10 s floor");

        let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
        let fetcher = fetcher_without_floor();
        fetcher.fetch(&server.uri, false).await.unwrap();
        fetcher.fetch(&server.uri, true).await.unwrap();
        assert_eq!(server.requests.load(SeqCst), 2, "refresh bypasses the set");
        fetcher.fetch(&server.uri, false).await.unwrap();
        assert_eq!(server.requests.load(SeqCst), 2, "the refreshed set is kept");
    }

    fn fetcher_without_floor() -> HttpJwksFetcher {
        fetcher(Limits {
            refetch_floor: Duration::ZERO,
            ..Limits::default()
        })
    }

    /// A refresh that fails reports its error but keeps the set held.
    #[tokio::test]
    async fn a_failed_refresh_keeps_the_held_set() {
        let server = serve(|stream, earlier| async move {
            if earlier == 0 {
                reply(stream, "200 OK", JWKS).await;
            } else {
                reply(stream, "503 Service Unavailable", "").await;
            }
        })
        .await;
        let fetcher = fetcher_without_floor();
        fetcher.fetch(&server.uri, false).await.unwrap();
        let error = fetcher.fetch(&server.uri, true).await.unwrap_err();
        assert_eq!(error, "status 503");
        let set = fetcher.fetch(&server.uri, false).await.unwrap();
        assert_eq!(kid(&set), Some("k1"));
        assert_eq!(server.requests.load(SeqCst), 2);
    }

    /// (c) A failing URI fetched 10 times in a row makes one request; each
    /// caller gets the error text.
    #[tokio::test]
    async fn a_failing_uri_is_fetched_once_while_its_failure_is_remembered() {
        let server = serve(|stream, _| reply(stream, "500 Internal Server Error", "")).await;
        let fetcher = fetcher(Limits::default());
        for _ in 0..10 {
            let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
            assert_eq!(error, "status 500");
        }
        assert_eq!(server.requests.load(SeqCst), 1);
    }

    /// Invalid key sets are failures too, remembered the same way.
    #[tokio::test]
    async fn an_invalid_key_set_is_a_remembered_failure() {
        let server = serve(|stream, _| reply(stream, "200 OK", r#"{"keys":[]}"#)).await;
        let fetcher = fetcher(Limits::default());
        for _ in 0..3 {
            let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
            assert!(error.contains("between 1 and 16 keys"), "{error}");
        }
        assert_eq!(server.requests.load(SeqCst), 1);
    }

    /// With no failure TTL, every call asks again.
    #[tokio::test]
    async fn a_failure_is_forgotten_after_its_ttl() {
        let server = serve(|stream, _| reply(stream, "500 Internal Server Error", "")).await;
        let fetcher = fetcher(Limits {
            failure_ttl: Duration::ZERO,
            ..Limits::default()
        });
        for _ in 0..3 {
            fetcher.fetch(&server.uri, false).await.unwrap_err();
        }
        assert_eq!(server.requests.load(SeqCst), 3);
    }

    /// Errors are short and do not repeat the URI (which could carry a
    /// credential in its query).
    #[tokio::test]
    async fn errors_do_not_repeat_the_uri() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let fetcher = fetcher(Limits::default());
        let uri = format!("http://{address}/jwks?token=s3cret");
        let error = fetcher.fetch(&uri, false).await.unwrap_err();
        assert!(error.starts_with("could not connect"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.len() < 200, "{error}");
    }

    /// Without `allow_private`, loopback and http are refused before any
    /// request, including IPv6 forms of loopback.
    #[tokio::test]
    async fn private_addresses_are_refused_without_allow_private() {
        let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
        let fetcher = HttpJwksFetcher::new(false).unwrap();
        let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
        assert_eq!(error, "jwks_uri must be https");
        for uri in [
            "https://127.0.0.1/jwks",
            "https://[::ffff:127.0.0.1]/jwks",
            "https://[64:ff9b::7f00:1]/jwks",
            "https://[2002:7f00:1::]/jwks",
        ] {
            let error = fetcher.fetch(uri, false).await.unwrap_err();
            assert_eq!(error, "jwks_uri is not on a public address", "{uri}");
        }
        assert_eq!(server.requests.load(SeqCst), 0);
    }
}
