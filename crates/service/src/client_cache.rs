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
//!   [`UNKNOWN_TTL`], so made-up ids do not each cost a read. Ids are
//!   random and unknowable before registration, so this cannot hide a new
//!   client.

use custos_protocol::metadata::ClientMetadata;
use custos_store::ClientRecord;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most clients (and unknown ids) cached per process.
const MAX_ENTRIES: u64 = 100_000;
/// A failed authentication re-reads an entry at least this old.
pub(crate) const REREAD_AFTER: Duration = Duration::from_millis(250);
/// How long an unknown client_id is remembered.
const UNKNOWN_TTL: Duration = Duration::from_secs(1);

/// A client as loaded from the store, its metadata parsed once.
pub(crate) struct LoadedClient {
    pub record: ClientRecord,
    pub metadata: ClientMetadata,
    pub loaded_at: Instant,
}

impl LoadedClient {
    pub fn new(record: ClientRecord, metadata: ClientMetadata) -> Self {
        LoadedClient {
            record,
            metadata,
            loaded_at: Instant::now(),
        }
    }

    /// Old enough that a failure against it deserves a fresh read.
    pub fn may_be_stale(&self) -> bool {
        self.loaded_at.elapsed() >= REREAD_AFTER
    }
}

/// What the cache knows of a client_id.
pub(crate) enum Cached {
    Known(Arc<LoadedClient>),
    Unknown,
}

pub(crate) struct ClientCache {
    known: Option<moka::sync::Cache<String, Arc<LoadedClient>>>,
    unknown: Option<moka::sync::Cache<String, ()>>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        if ttl.is_zero() {
            return ClientCache {
                known: None,
                unknown: None,
            };
        }
        let known = moka::sync::Cache::builder()
            .max_capacity(MAX_ENTRIES)
            .time_to_live(ttl)
            .build();
        let unknown = moka::sync::Cache::builder()
            .max_capacity(MAX_ENTRIES)
            .time_to_live(UNKNOWN_TTL.min(ttl))
            .build();
        ClientCache {
            known: Some(known),
            unknown: Some(unknown),
        }
    }

    pub fn get(&self, client_id: &str) -> Option<Cached> {
        if let Some(client) = self.known.as_ref()?.get(client_id) {
            return Some(Cached::Known(client));
        }
        self.unknown
            .as_ref()?
            .get(client_id)
            .map(|()| Cached::Unknown)
    }

    /// Records what the store said: an enabled client is cached, a disabled
    /// one dropped, a missing one remembered as unknown.
    pub fn put(&self, client_id: &str, found: Option<&Arc<LoadedClient>>) {
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
                unknown.insert(client_id.to_owned(), ());
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
        Arc::new(LoadedClient::new(record, metadata))
    }

    #[test]
    fn remembers_known_unknown_and_forgets_disabled() {
        let cache = ClientCache::new(Duration::from_secs(5));
        assert!(cache.get("a").is_none());
        cache.put("a", None);
        assert!(matches!(cache.get("a"), Some(Cached::Unknown)));
        cache.put("a", Some(&client("a", false)));
        assert!(matches!(cache.get("a"), Some(Cached::Known(_))));
        cache.put("a", Some(&client("a", true)));
        assert!(cache.get("a").is_none());
        let off = ClientCache::new(Duration::ZERO);
        off.put("b", Some(&client("b", false)));
        assert!(off.get("b").is_none());
    }
}
