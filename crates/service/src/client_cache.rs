//! A short-lived, per-process cache of registered clients, so the token
//! endpoint's hot path does not wait on the database for every request.
//!
//! Consistency, stated plainly:
//! - a change made on this replica replaces its entry at once;
//! - an authentication that fails against an entry older than
//!   [`REREAD_AFTER`] is retried against the database, so a secret rotated
//!   or keys changed on another replica work within that time (and a flood
//!   of wrong secrets costs at most a few reads a second per client);
//! - a client disabled on another replica can still authenticate here for
//!   at most the TTL (`CUSTOS_CLIENT_CACHE_TTL`, 0 turns the cache off).
//!   Introspection never uses the cache: a disabled client's tokens are
//!   inactive everywhere at once;
//! - a client_id the database does not know is remembered as unknown for
//!   [`UNKNOWN_TTL_MS`], so made-up ids do not each cost a read. Ids are
//!   random and unknowable before registration, so this cannot hide a new
//!   client.
//!
//! Ages are measured on the service's injected clock, so tests move them;
//! moka's own time-to-live only bounds how long memory is held. Memory is
//! bounded by weight, not entry count: an unknown client_id is up to
//! 8 KiB of request text, and a flood of them must not grow the process.

use custos_protocol::metadata::ClientMetadata;
use custos_store::ClientRecord;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of known clients cached per process, at most (by estimate).
const KNOWN_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes of unknown client_ids remembered per process, at most.
const UNKNOWN_BYTES: u64 = 4 * 1024 * 1024;
/// Unknown client_ids longer than this are not remembered (no registered
/// client has one; each costs a read instead).
const MAX_UNKNOWN_ID: usize = 256;
/// A failed authentication re-reads an entry at least this old (ms).
pub(crate) const REREAD_AFTER_MS: i64 = 250;
/// How long an unknown client_id is remembered (ms).
const UNKNOWN_TTL_MS: i64 = 1_000;

/// A client as loaded from the store, its metadata parsed once.
pub(crate) struct LoadedClient {
    pub record: ClientRecord,
    pub metadata: ClientMetadata,
    /// When it was read, on the service clock (ms).
    pub loaded_at_ms: i64,
}

impl LoadedClient {
    pub fn new(record: ClientRecord, metadata: ClientMetadata, now_ms: i64) -> Self {
        LoadedClient {
            record,
            metadata,
            loaded_at_ms: now_ms,
        }
    }

    /// Old enough at `now_ms` that a failure against it deserves a fresh read.
    pub fn may_be_stale(&self, now_ms: i64) -> bool {
        now_ms - self.loaded_at_ms >= REREAD_AFTER_MS
    }

    /// Roughly what the entry holds in memory, for the cache's weigher.
    fn weight(&self) -> u32 {
        let bytes = self.record.client_id.len() * 2 + self.record.metadata_json.len() * 3 + 512;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// What the cache knows of a client_id.
pub(crate) enum Cached {
    Known(Arc<LoadedClient>),
    Unknown,
}

pub(crate) struct ClientCache {
    known: Option<moka::sync::Cache<String, Arc<LoadedClient>>>,
    /// Unknown ids and when (ms) the store said so.
    unknown: Option<moka::sync::Cache<String, i64>>,
    ttl_ms: i64,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        if ttl.is_zero() {
            return ClientCache {
                known: None,
                unknown: None,
                ttl_ms: 0,
            };
        }
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let known = moka::sync::Cache::builder()
            .max_capacity(KNOWN_BYTES)
            .weigher(|_: &String, client: &Arc<LoadedClient>| client.weight())
            .time_to_live(ttl)
            .build();
        let unknown = moka::sync::Cache::builder()
            .max_capacity(UNKNOWN_BYTES)
            .weigher(|id: &String, _: &i64| u32::try_from(id.len() + 64).unwrap_or(u32::MAX))
            .time_to_live(ttl.min(Duration::from_millis(UNKNOWN_TTL_MS as u64)))
            .build();
        ClientCache {
            known: Some(known),
            unknown: Some(unknown),
            ttl_ms,
        }
    }

    /// What the cache knows of `client_id` at `now_ms`.
    pub fn get(&self, client_id: &str, now_ms: i64) -> Option<Cached> {
        if let Some(client) = self.known.as_ref()?.get(client_id) {
            if now_ms - client.loaded_at_ms < self.ttl_ms {
                return Some(Cached::Known(client));
            }
        }
        let since = self.unknown.as_ref()?.get(client_id)?;
        (now_ms - since < UNKNOWN_TTL_MS.min(self.ttl_ms)).then_some(Cached::Unknown)
    }

    /// Records what the store said at `now_ms`: an enabled client is
    /// cached, a disabled one dropped, a missing one remembered as unknown.
    pub fn put(&self, client_id: &str, found: Option<&Arc<LoadedClient>>, now_ms: i64) {
        let (Some(known), Some(unknown)) = (&self.known, &self.unknown) else {
            return;
        };
        match found {
            Some(client) if client.record.disabled_at.is_none() => {
                unknown.invalidate(client_id);
                known.insert(client_id.to_owned(), client.clone());
            }
            Some(_) => known.invalidate(client_id),
            None => {
                known.invalidate(client_id);
                if client_id.len() <= MAX_UNKNOWN_ID {
                    unknown.insert(client_id.to_owned(), now_ms);
                }
            }
        }
    }

    pub fn invalidate(&self, client_id: &str) {
        if let Some(known) = &self.known {
            known.invalidate(client_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, disabled: bool) -> Arc<LoadedClient> {
        let metadata = custos_protocol::metadata::validate_registration(
            &serde_json::json!({"grant_types": ["client_credentials"]}),
            &Default::default(),
        )
        .unwrap();
        let record = ClientRecord {
            client_id: id.into(),
            metadata_json: String::new(),
            secret_hash: None,
            secret_created_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            registration_token_hash: None,
            created_at: 0,
            updated_at: 0,
            disabled_at: disabled.then_some(1),
            version: 1,
        };
        Arc::new(LoadedClient::new(record, metadata, 0))
    }

    #[test]
    fn remembers_known_unknown_and_forgets_disabled() {
        let cache = ClientCache::new(Duration::from_secs(5));
        assert!(cache.get("a", 0).is_none());
        cache.put("a", None, 0);
        assert!(matches!(cache.get("a", 0), Some(Cached::Unknown)));
        assert!(
            cache.get("a", UNKNOWN_TTL_MS).is_none(),
            "unknown for a second"
        );
        cache.put("a", Some(&client("a", false)), 0);
        assert!(matches!(cache.get("a", 4_999), Some(Cached::Known(_))));
        assert!(cache.get("a", 5_000).is_none(), "known for the TTL");
        cache.put("a", Some(&client("a", true)), 0);
        assert!(cache.get("a", 0).is_none());
        let off = ClientCache::new(Duration::ZERO);
        off.put("b", Some(&client("b", false)), 0);
        assert!(off.get("b", 0).is_none());
    }

    #[test]
    fn long_unknown_ids_are_not_remembered() {
        let cache = ClientCache::new(Duration::from_secs(5));
        let long = "x".repeat(MAX_UNKNOWN_ID + 1);
        cache.put(&long, None, 0);
        assert!(cache.get(&long, 0).is_none());
    }

    #[test]
    fn stale_after_the_reread_delay() {
        let c = client("a", false);
        assert!(!c.may_be_stale(REREAD_AFTER_MS - 1));
        assert!(c.may_be_stale(REREAD_AFTER_MS));
    }
}
