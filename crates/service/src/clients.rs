//! The registered clients as use cases see them: read through the
//! per-process cache on the token path, written with the store's
//! conditional update, and the one place stored metadata is decoded.

use crate::client_cache::{Cached, ClientCache, LoadedClient};
use crate::client_documents::ClientDocuments;
use crate::clock::Clock;
use crate::error::{internal, ServiceError};
use custos_protocol::metadata::ClientMetadata;
use custos_store::{ClientRecord, Store};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub(crate) struct ClientDirectory {
    store: Arc<dyn Store>,
    cache: ClientCache,
    clock: Arc<dyn Clock>,
    /// Counts this replica's client writes, so what is built from every
    /// client (the attested-identity index) sees them at once.
    changes: Arc<AtomicU64>,
    /// Clients that arrive by Client ID Metadata Document (unset: none).
    documents: OnceLock<Arc<ClientDocuments>>,
    /// Document clients this replica has stored, with the `fetched_at` of
    /// the document it stored: one write per fetched document.
    remembered: moka::sync::Cache<String, i64>,
}

/// How long after its document was last fetched a stored document client
/// may go on with that document when a fetch fails now, seconds (the
/// longest a document may be kept anyway).
pub(crate) const STORED_DOCUMENT_GRACE: i64 = 24 * 3600;

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
            documents: OnceLock::new(),
            remembered: moka::sync::Cache::new(10_000),
        }
    }

    /// Resolves `https://` client ids by their metadata documents from now
    /// on (set once, at start).
    pub fn accept_documents(&self, documents: Arc<ClientDocuments>) {
        let _ = self.documents.set(documents);
    }

    /// The document resolver, if `client_id` is one of its URLs.
    fn documents_for(&self, client_id: &str) -> Option<&Arc<ClientDocuments>> {
        self.documents.get().filter(|d| d.handles(client_id))
    }

    /// A document client: its document (fetched unless held) as metadata,
    /// with what the store knows of it (disabled by the operator; when it
    /// was first stored), if anything.
    ///
    /// Read from the store first: a client the operator disabled is
    /// answered from its row, without fetching anything. A client stored
    /// before (something was issued to it) whose document cannot be
    /// fetched now — down, braked, busy — keeps its last stored document
    /// for up to [`STORED_DOCUMENT_GRACE`] after that document was fetched,
    /// so that a flood of bogus document URLs on its host cannot lock it
    /// out.
    async fn load_document(
        &self,
        documents: &ClientDocuments,
        client_id: &str,
    ) -> Result<(ClientRecord, ClientMetadata), ServiceError> {
        let stored = self.store.get_client(client_id).await.map_err(internal)?;
        if let Some(row) = stored.as_ref().filter(|r| r.disabled_at.is_some()) {
            let metadata = decode_metadata(row)?;
            return Ok((row.clone(), metadata));
        }
        let now = self.clock.now_ms().div_euclid(1000);
        let document = match documents.resolve(client_id, now).await {
            Ok(document) => document,
            Err(error) => match stored.as_ref() {
                Some(row)
                    if now - row.updated_at < STORED_DOCUMENT_GRACE
                        && !matches!(&error, ServiceError::OAuth(e) if e.code == custos_protocol::ErrorCode::InvalidRequest) =>
                {
                    tracing::warn!(client_id = %client_id, error = %error, "the client ID metadata document could not be used now; its last stored document stands in");
                    let metadata = decode_metadata(row)?;
                    return Ok((row.clone(), metadata));
                }
                _ => return Err(error),
            },
        };
        if let Some(row) = stored.as_ref() {
            if let Some(reason) =
                custos_protocol::cimd::weakens(&decode_metadata(row)?, &document.metadata)
            {
                return Err(custos_protocol::OAuthError::invalid_client(format!(
                    "this client cannot be used: {reason}; ask the operator"
                ))
                .into());
            }
        }
        let record = ClientRecord {
            client_id: client_id.to_owned(),
            metadata_json: serde_json::to_string(&document.metadata).map_err(internal)?,
            secret_hash: None,
            secret_created_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            registration_token_hash: None,
            created_at: stored
                .as_ref()
                .map_or(document.fetched_at, |s| s.created_at),
            updated_at: document.fetched_at,
            disabled_at: stored.as_ref().and_then(|s| s.disabled_at),
            version: stored.as_ref().map_or(0, |s| s.version),
        };
        Ok((record, document.metadata.clone()))
    }

    /// After something was issued to a document client (a code, a token):
    /// stores it, or its newer document, so that the inventory lists it,
    /// its tokens can be checked and the operator can disable it. Once per
    /// fetched document on this replica; nothing for other clients.
    pub async fn remember_document_client(&self, client_id: &str) -> Result<(), ServiceError> {
        let Some(documents) = self.documents_for(client_id) else {
            return Ok(());
        };
        let document = match documents
            .resolve(client_id, self.clock.now_ms().div_euclid(1000))
            .await
        {
            Ok(document) => document,
            // Authenticated from its last stored document (its document
            // cannot be fetched now): stored already.
            Err(_)
                if self
                    .store
                    .get_client(client_id)
                    .await
                    .map_err(internal)?
                    .is_some() =>
            {
                return Ok(())
            }
            Err(error) => return Err(error),
        };
        if self.remembered.get(client_id) == Some(document.fetched_at) {
            return Ok(());
        }
        let metadata_json = serde_json::to_string(&document.metadata).map_err(internal)?;
        match self.store.get_client(client_id).await.map_err(internal)? {
            None => {
                let record = ClientRecord {
                    client_id: client_id.to_owned(),
                    metadata_json,
                    secret_hash: None,
                    secret_created_at: None,
                    previous_secret_hash: None,
                    previous_secret_expires_at: None,
                    registration_token_hash: None,
                    created_at: document.fetched_at,
                    updated_at: document.fetched_at,
                    disabled_at: None,
                    version: 1,
                };
                match self.store.insert_client(&record).await {
                    // Another replica stored it first: as good.
                    Ok(()) | Err(custos_store::StoreError::Conflict) => {}
                    Err(e) => return Err(internal(e)),
                }
            }
            Some(stored)
                if stored.metadata_json != metadata_json
                    || stored.updated_at < document.fetched_at =>
            {
                let record = ClientRecord {
                    metadata_json,
                    updated_at: document.fetched_at.max(stored.updated_at),
                    ..stored
                };
                // A lost race means another replica wrote a document as
                // fresh: as good.
                self.store.update_client(&record).await.map_err(internal)?;
            }
            Some(_) => {}
        }
        self.cache.invalidate(client_id);
        self.changes.fetch_add(1, Ordering::SeqCst);
        self.remembered
            .insert(client_id.to_owned(), document.fetched_at);
        Ok(())
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
        if let Some(documents) = self.documents_for(client_id) {
            let (record, metadata) = self.load_document(documents, client_id).await?;
            let loaded = Arc::new(LoadedClient::new(record, metadata, now_ms));
            self.cache.put(client_id, Some(&loaded), now_ms);
            return Ok(Some(loaded));
        }
        let Some(record) = self.store.get_client(client_id).await.map_err(internal)? else {
            self.cache.put(client_id, None, now_ms);
            return Ok(None);
        };
        let metadata = decode_metadata(&record)?;
        let loaded = Arc::new(LoadedClient::new(record, metadata, now_ms));
        self.cache.put(client_id, Some(&loaded), now_ms);
        Ok(Some(loaded))
    }

    /// An enabled client as the store has it (never the cache, never a
    /// document fetch): what the operator manages.
    pub async fn active_stored(
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

    /// An enabled client read from the store (never the cache): for
    /// read-modify-write and for decisions that must see other replicas'
    /// changes at once.
    pub async fn active(
        &self,
        client_id: &str,
    ) -> Result<Option<(ClientRecord, ClientMetadata)>, ServiceError> {
        if let Some(documents) = self.documents_for(client_id) {
            let (record, metadata) = self.load_document(documents, client_id).await?;
            return Ok(record.disabled_at.is_none().then_some((record, metadata)));
        }
        self.active_stored(client_id).await
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
