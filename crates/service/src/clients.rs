//! The registered clients as use cases see them: read through the
//! per-process cache on the token path, written with the store's
//! conditional update, and the one place stored metadata is decoded.

use crate::client_cache::{Cached, ClientCache, LoadedClient};
use crate::clock::Clock;
use crate::error::{internal, ServiceError};
use custos_protocol::metadata::ClientMetadata;
use custos_store::{ClientRecord, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct ClientDirectory {
    store: Arc<dyn Store>,
    cache: ClientCache,
    clock: Arc<dyn Clock>,
    /// Counts this replica's client writes, so what is built from every
    /// client (the attested-identity index) sees them at once.
    changes: Arc<AtomicU64>,
}

/// Decodes a client's stored metadata (validated when it was written).
pub(crate) fn decode_metadata(record: &ClientRecord) -> Result<ClientMetadata, ServiceError> {
    serde_json::from_str(&record.metadata_json).map_err(internal)
}

impl ClientDirectory {
    pub fn new(store: Arc<dyn Store>, cache_ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        ClientDirectory {
            store,
            cache: ClientCache::new(cache_ttl),
            clock,
            changes: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The count of client writes on this replica, bumped after each.
    pub fn changes(&self) -> Arc<AtomicU64> {
        self.changes.clone()
    }

    /// What this replica's cache knows of `client_id` now, if anything.
    pub fn cached(&self, client_id: &str) -> Option<Cached> {
        self.cache.get(client_id, self.clock.now_ms())
    }

    /// Reads a client from the store, disabled ones included, and caches
    /// what it found (an unknown id is remembered as unknown).
    pub async fn load(&self, client_id: &str) -> Result<Option<Arc<LoadedClient>>, ServiceError> {
        let now_ms = self.clock.now_ms();
        let Some(record) = self.store.get_client(client_id).await.map_err(internal)? else {
            self.cache.put(client_id, None, now_ms);
            return Ok(None);
        };
        let metadata = decode_metadata(&record)?;
        let loaded = Arc::new(LoadedClient::new(record, metadata, now_ms));
        self.cache.put(client_id, Some(&loaded), now_ms);
        Ok(Some(loaded))
    }

    /// An enabled client read from the store (never the cache): for
    /// read-modify-write and for decisions that must see other replicas'
    /// changes at once.
    pub async fn active(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientRecord, ClientMetadata)>, ServiceError> {
        let Some(record) = self.store.get_client(client_id).await.map_err(internal)? else {
            return Ok(None);
        };
        if record.disabled_at.is_some() {
            return Ok(None);
        }
        let metadata = decode_metadata(&record)?;
        Ok(Some((record, metadata)))
    }

    pub async fn insert(&self, record: &ClientRecord) -> Result<(), ServiceError> {
        self.store.insert_client(record).await.map_err(internal)?;
        self.cache.invalidate(&record.client_id);
        self.changes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Writes `record` if the stored client has not changed since it was
    /// read (the store compares versions); false if it has, or is gone.
    /// This replica's cached copy is dropped either way.
    pub async fn update(&self, record: &ClientRecord) -> Result<bool, ServiceError> {
        let written = self.store.update_client(record).await.map_err(internal);
        self.cache.invalidate(&record.client_id);
        self.changes.fetch_add(1, Ordering::SeqCst);
        written
    }

    /// Every client, disabled ones included, with its metadata.
    pub async fn list(&self) -> Result<Vec<(ClientRecord, ClientMetadata)>, ServiceError> {
        let records = self.store.list_clients().await.map_err(internal)?;
        records
            .into_iter()
            .map(|record| decode_metadata(&record).map(|m| (record, m)))
            .collect()
    }
}

/// The refusal for a read-modify-write that lost a race.
pub(crate) fn changed_meanwhile() -> ServiceError {
    ServiceError::conflict("the client changed while this request ran; read it again and retry")
}
