//! A short-lived, per-process cache of registered clients, so the token
//! endpoint's hot path does not wait on the database for every request.
//!
//! Consistency, stated plainly:
//! - a change made on this replica invalidates its entry at once;
//! - an authentication that fails against a cached entry is retried once
//!   against the database, so a secret rotated or keys changed on another
//!   replica work immediately;
//! - a client disabled on another replica can still authenticate here for
//!   at most the TTL (`CUSTOS_CLIENT_CACHE_TTL`, 0 turns the cache off).
//!   Introspection never uses the cache: a disabled client's tokens are
//!   inactive everywhere at once.

use custos_protocol::metadata::ClientMetadata;
use custos_store::ClientRecord;
use std::sync::Arc;
use std::time::Duration;

/// Most clients cached per process.
const MAX_ENTRIES: u64 = 100_000;

/// A client as loaded from the store, its metadata parsed once.
pub(crate) struct LoadedClient {
    pub record: ClientRecord,
    pub metadata: ClientMetadata,
}

pub(crate) struct ClientCache {
    entries: Option<moka::sync::Cache<String, Arc<LoadedClient>>>,
}

impl ClientCache {
    pub fn new(ttl: Duration) -> Self {
        let entries = (!ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(MAX_ENTRIES)
                .time_to_live(ttl)
                .build()
        });
        ClientCache { entries }
    }

    pub fn get(&self, client_id: &str) -> Option<Arc<LoadedClient>> {
        self.entries.as_ref()?.get(client_id)
    }

    /// Caches an enabled client; a disabled one is dropped instead.
    pub fn put(&self, client: &Arc<LoadedClient>) {
        if let Some(entries) = &self.entries {
            if client.record.disabled_at.is_none() {
                entries.insert(client.record.client_id.clone(), client.clone());
            } else {
                entries.invalidate(&client.record.client_id);
            }
        }
    }

    pub fn invalidate(&self, client_id: &str) {
        if let Some(entries) = &self.entries {
            entries.invalidate(client_id);
        }
    }
}
