//! Clients that arrive by Client ID Metadata Document
//! (draft-ietf-oauth-client-id-metadata-document; how MCP clients arrive):
//! a `client_id` that is an https URL is resolved by fetching the document
//! there, through the binary's [`DocumentFetcher`] (https, public
//! addresses, no redirects, 5 KiB, a few seconds).
//!
//! - A valid document is kept as long as its cache headers say, within
//!   1 minute and 1 day (`protocol::cimd::cache_lifetime`); an error or an
//!   invalid document is never kept (§4.4) — the per-host brake below
//!   bounds what retrying costs.
//! - One fetch per URL however many requests wait on it (moka's
//!   `try_get_with` runs one loader per key and shares its result).
//! - The operator's host lists (`CUSTOS_CIMD_ALLOWED_HOSTS`,
//!   `CUSTOS_CIMD_DENIED_HOSTS`) are checked before any fetch; at most
//!   [`FETCHES_PER_HOST_PER_MINUTE`] fetches per host and
//!   [`CONCURRENT_FETCHES`] at once, [`CONCURRENT_FETCHES_PER_HOST`] of
//!   one host.
//! - What a document may ask for: the authorization code flow (with
//!   refresh tokens) and the JWT bearer grant (an enterprise's identity
//!   assertion, MCP's enterprise-managed authorization); a host on the
//!   allow-list may also use client credentials and token exchange.
//!
//! Nothing is stored for a document client until something is issued to
//! it (`ClientDirectory::remember_document_client`): a caller without
//! credentials can make custos fetch (braked), never store.

use crate::error::ServiceError;
use async_trait::async_trait;
use custos_protocol::cimd::{
    cache_lifetime, check_client_id_url, validate_document, HostRules, MAX_DOCUMENT_BYTES,
};
use custos_protocol::metadata::{ClientMetadata, RegistrationRules};
use custos_protocol::names::{GRANT_AUTHORIZATION_CODE, GRANT_JWT_BEARER, GRANT_REFRESH_TOKEN};
use custos_protocol::OAuthError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fetches of one host's documents in a minute, at most.
pub const FETCHES_PER_HOST_PER_MINUTE: u32 = 20;
/// Fetches of all hosts in a minute, at most (hosts are cheap to make:
/// the per-host brake alone does not bound an attacker with a wildcard
/// DNS name).
pub const FETCHES_PER_MINUTE: u32 = 600;
/// Document fetches under way at once, at most.
pub const CONCURRENT_FETCHES: usize = 16;
/// Fetches of one host's documents under way at once, at most: a few slow
/// hosts cannot hold every fetch slot.
pub const CONCURRENT_FETCHES_PER_HOST: u32 = 2;
/// Bytes of documents held, at most (roughly: each at most 5 KiB of JSON).
const CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Hosts whose fetch counts are held, at most.
const HOSTS_TRACKED: u64 = 10_000;

/// A fetched document, as the wire gave it.
#[derive(Debug, Clone)]
pub struct FetchedDocument {
    /// At most `protocol::cimd::MAX_DOCUMENT_BYTES`.
    pub body: Vec<u8>,
    /// The response's `Cache-Control` and `Age` headers.
    pub cache_control: Option<String>,
    pub age: Option<String>,
}

/// GETs a client ID metadata document: 200 only, no redirects, at most
/// [`MAX_DOCUMENT_BYTES`], bounded in time, public addresses only (unless
/// the operator allows private ones). `Err` says why, for the person or
/// client to read.
#[async_trait]
pub trait DocumentFetcher: Send + Sync {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, String>;
}

/// What document clients are allowed, from the server's settings.
#[derive(Debug, Clone)]
pub struct DocumentSettings {
    pub hosts: HostRules,
    /// `CUSTOS_ALLOW_PRIVATE_URLS`: http and addresses as `client_id`.
    pub development: bool,
}

/// A resolved document client.
#[derive(Debug)]
pub struct DocumentClient {
    pub metadata: ClientMetadata,
    /// When its document was fetched (Unix seconds, the service clock).
    pub fetched_at: i64,
}

pub struct ClientDocuments {
    fetcher: Arc<dyn DocumentFetcher>,
    settings: DocumentSettings,
    /// Registration rules for hosts not on the allow-list, and for those
    /// on it.
    rules: RegistrationRules,
    listed_rules: RegistrationRules,
    held: moka::future::Cache<String, Arc<HeldDocument>>,
    /// Fetches per host in the current minute.
    per_host: moka::sync::Cache<String, Arc<std::sync::Mutex<(Instant, u32)>>>,
    /// Fetches of every host in the current minute.
    all_hosts: std::sync::Mutex<(Instant, u32)>,
    fetching: tokio::sync::Semaphore,
    /// Fetches under way per host.
    in_flight: moka::sync::Cache<String, Arc<std::sync::atomic::AtomicU32>>,
}

/// One host's fetch slot, given back when dropped.
struct HostSlot(Arc<std::sync::atomic::AtomicU32>);

impl Drop for HostSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

struct HeldDocument {
    client: Arc<DocumentClient>,
    keep_for: Duration,
    /// Roughly the bytes it holds.
    weight: u32,
}

struct KeepForLifetime;

impl moka::Expiry<String, Arc<HeldDocument>> for KeepForLifetime {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<HeldDocument>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }
}

impl ClientDocuments {
    /// `rules`: what registration accepts on this server (grant types,
    /// methods, `jwks_uri` addresses).
    pub fn new(
        fetcher: Arc<dyn DocumentFetcher>,
        settings: DocumentSettings,
        rules: &RegistrationRules,
    ) -> Self {
        let unlisted = RegistrationRules {
            grant_types: rules
                .grant_types
                .iter()
                .copied()
                .filter(|g| {
                    [
                        GRANT_AUTHORIZATION_CODE,
                        GRANT_REFRESH_TOKEN,
                        GRANT_JWT_BEARER,
                    ]
                    .contains(g)
                })
                .collect(),
            ..rules.clone()
        };
        ClientDocuments {
            fetcher,
            settings,
            rules: unlisted,
            listed_rules: rules.clone(),
            held: moka::future::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|key: &String, held: &Arc<HeldDocument>| {
                    held.weight
                        .saturating_add(u32::try_from(key.len()).unwrap_or(u32::MAX))
                })
                .expire_after(KeepForLifetime)
                .build(),
            per_host: moka::sync::Cache::builder()
                .max_capacity(HOSTS_TRACKED)
                .time_to_idle(Duration::from_secs(120))
                .build(),
            all_hosts: std::sync::Mutex::new((Instant::now(), 0)),
            fetching: tokio::sync::Semaphore::new(CONCURRENT_FETCHES),
            in_flight: moka::sync::Cache::builder()
                .max_capacity(HOSTS_TRACKED)
                .time_to_idle(Duration::from_secs(120))
                .build(),
        }
    }

    /// Whether `client_id` is to be resolved here rather than read from
    /// the registrations.
    pub fn handles(&self, client_id: &str) -> bool {
        if self.settings.development {
            custos_protocol::cimd::is_document_client_id_or_http(client_id)
        } else {
            custos_protocol::cimd::is_document_client_id(client_id)
        }
    }

    /// The document client `client_id` stands for, fetched now unless a
    /// valid document is held. `now` is the service clock (Unix seconds).
    /// Refusals are `invalid_client` (or `invalid_request` for a URL that
    /// cannot be one), saying why.
    pub async fn resolve(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<Arc<DocumentClient>, ServiceError> {
        let url = check_client_id_url(client_id, self.settings.development)?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if !self.settings.hosts.permits(&host) {
            return Err(OAuthError::invalid_client(format!(
                "clients from {host} are not accepted by this server"
            ))
            .into());
        }
        let listed = self.settings.hosts.lists(&host);
        let held = self
            .held
            .try_get_with_by_ref(client_id, self.load(client_id, &host, listed, now))
            .await
            .map_err(|e: Arc<ServiceError>| (*e).clone())?;
        Ok(held.client.clone())
    }

    /// The document held for `client_id`, if any (no fetch).
    pub async fn held(&self, client_id: &str) -> Option<Arc<DocumentClient>> {
        self.held.get(client_id).await.map(|h| h.client.clone())
    }

    async fn load(
        &self,
        client_id: &str,
        host: &str,
        listed: bool,
        now: i64,
    ) -> Result<Arc<HeldDocument>, ServiceError> {
        let _host_slot = self.host_slot(host)?;
        self.brake(host)?;
        let _permit = tokio::time::timeout(Duration::from_secs(2), self.fetching.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        let fetched = self.fetcher.fetch(client_id).await.map_err(|reason| {
            OAuthError::invalid_client(format!(
                "the client ID metadata document could not be fetched: {}",
                custos_protocol::error::echo(&reason, 200)
            ))
        })?;
        if fetched.body.len() > MAX_DOCUMENT_BYTES {
            return Err(OAuthError::invalid_client(format!(
                "the client ID metadata document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ))
            .into());
        }
        let rules = if listed {
            &self.listed_rules
        } else {
            &self.rules
        };
        let metadata = validate_document(client_id, &fetched.body, rules)?;
        // The parsed metadata is a few times the document's size.
        let weight = u32::try_from(fetched.body.len() * 4 + 1024).unwrap_or(u32::MAX);
        Ok(Arc::new(HeldDocument {
            client: Arc::new(DocumentClient {
                metadata,
                fetched_at: now,
            }),
            keep_for: cache_lifetime(fetched.cache_control.as_deref(), fetched.age.as_deref()),
            weight,
        }))
    }

    /// One of `host`'s [`CONCURRENT_FETCHES_PER_HOST`] fetch slots, or
    /// `temporarily_unavailable`.
    fn host_slot(&self, host: &str) -> Result<HostSlot, ServiceError> {
        use std::sync::atomic::Ordering;
        let count = self
            .in_flight
            .get_with_by_ref(host, || Arc::new(std::sync::atomic::AtomicU32::new(0)));
        let taken = count.fetch_add(1, Ordering::SeqCst);
        let slot = HostSlot(count);
        if taken >= CONCURRENT_FETCHES_PER_HOST {
            return Err(busy());
        }
        Ok(slot)
    }

    /// Counts a fetch of `host`; refuses past the per-host or the overall
    /// per-minute limit (a refused fetch counts for neither, so a host
    /// that is braked does not use up the others' share).
    fn brake(&self, host: &str) -> Result<(), ServiceError> {
        let throttled = |start: Instant, what: String| {
            let retry_after = 60u64.saturating_sub(start.elapsed().as_secs()).max(1);
            ServiceError::Throttled {
                retry_after,
                description: format!(
                    "too many client ID metadata documents fetched {what} this minute; try again in {retry_after} s"
                ),
            }
        };
        let window = self.per_host.get_with_by_ref(host, || {
            Arc::new(std::sync::Mutex::new((Instant::now(), 0)))
        });
        let mut window = window.lock().unwrap_or_else(|e| e.into_inner());
        if window.0.elapsed() >= Duration::from_secs(60) {
            *window = (Instant::now(), 0);
        }
        if window.1 >= FETCHES_PER_HOST_PER_MINUTE {
            return Err(throttled(window.0, format!("from {host}")));
        }
        let mut all = self.all_hosts.lock().unwrap_or_else(|e| e.into_inner());
        if all.0.elapsed() >= Duration::from_secs(60) {
            *all = (Instant::now(), 0);
        }
        if all.1 >= FETCHES_PER_MINUTE {
            return Err(throttled(all.0, "from all hosts".into()));
        }
        all.1 += 1;
        window.1 += 1;
        Ok(())
    }
}

fn busy() -> ServiceError {
    OAuthError::new(
        custos_protocol::ErrorCode::TemporarilyUnavailable,
        "too many client ID metadata documents are being fetched; try again in a moment",
    )
    .into()
}

/// Refuses every fetch: documents are not fetched (CIMD off, or tests that
/// never use it).
pub struct NoDocumentFetching;

#[async_trait]
impl DocumentFetcher for NoDocumentFetching {
    async fn fetch(&self, _url: &str) -> Result<FetchedDocument, String> {
        Err("this server does not fetch client ID metadata documents".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_protocol::cimd::HostRules;

    /// Answers only when told to: a slow host.
    struct Slow(Arc<tokio::sync::Notify>);

    #[async_trait]
    impl DocumentFetcher for Slow {
        async fn fetch(&self, url: &str) -> Result<FetchedDocument, String> {
            self.0.notified().await;
            Ok(FetchedDocument {
                body: serde_json::to_vec(&serde_json::json!({
                    "client_id": url, "redirect_uris": ["https://app.example/cb"]}))
                .unwrap(),
                cache_control: None,
                age: None,
            })
        }
    }

    /// A slow host holds at most two fetch slots; its third document waits
    /// for nothing and is refused, another host's is fetched.
    #[tokio::test]
    async fn a_slow_host_holds_at_most_two_fetches() {
        let release = Arc::new(tokio::sync::Notify::new());
        let documents = Arc::new(ClientDocuments::new(
            Arc::new(Slow(release.clone())),
            DocumentSettings {
                hosts: HostRules::default(),
                development: false,
            },
            &RegistrationRules::default(),
        ));
        let pending: Vec<_> = (0..2)
            .map(|i| {
                let documents = documents.clone();
                tokio::spawn(async move {
                    documents
                        .resolve(&format!("https://slow.example/c{i}.json"), 0)
                        .await
                })
            })
            .collect();
        // Let both start fetching.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        let third = documents.resolve("https://slow.example/c2.json", 0).await;
        assert!(
            matches!(&third, Err(ServiceError::OAuth(e)) if e.code == custos_protocol::ErrorCode::TemporarilyUnavailable),
            "{third:?}"
        );
        let other = {
            let documents = documents.clone();
            tokio::spawn(async move { documents.resolve("https://fast.example/c.json", 0).await })
        };
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        for task in pending {
            assert!(task.await.unwrap().is_ok());
        }
        // Slots are given back: the slow host may fetch again.
        let again = {
            let documents = documents.clone();
            tokio::spawn(async move { documents.resolve("https://slow.example/c3.json", 0).await })
        };
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        release.notify_waiters();
        assert!(other.await.unwrap().is_ok());
        assert!(again.await.unwrap().is_ok());
    }
}
