//! Storage: the only crate that speaks SQL.
//!
//! Repository traits describe every fact custos keeps; one SQL engine
//! implements them for SQLite (embedded default) and PostgreSQL. Anything that
//! must hold across replicas — single-use `jti`s, revocation, key rotation — is
//! decided by the database atomically, never by a process cache.
//!
//! Times are `i64` seconds since the Unix epoch unless a name says `_ms`.
//!
//! # Conditional writes
//!
//! A row that two requests (on any replicas) may change at once is changed
//! only by a *conditional write*: a single `UPDATE … WHERE <key> = $1 AND
//! <state read> = $n` whose `WHERE` restates what the writer read, and
//! whose affected-row count (0 or 1) is the answer. For clients the state is
//! a `version` column that every successful write increments
//! ([`ClientRepo::update_client`]); for single-use rows it can be the column
//! that records the use, e.g. `… SET used_at = $2 WHERE code = $1 AND
//! used_at IS NULL` (code redemption, refresh-token rotation). No lock is
//! held between the read and the write and no transaction is needed: the
//! database decides atomically (SQLite serialises writers; PostgreSQL, at
//! READ COMMITTED, makes a second writer wait for the first's row lock and
//! re-checks the `WHERE` against the committed row). Of any number of
//! writers that read the same state exactly one gets `true`; the others get
//! `false` with nothing written, and must re-read and decide again from the
//! fresh row (or give up) — never retry the same write unconditionally.
//! `false` also covers a row that does not exist; re-read to tell them apart.
//! The methods return `StoreResult<bool>`; implementations go through one
//! helper (`sql::conditional_write`).

mod connect;
mod migrate;
mod model;
mod sql;
pub use connect::redact_url;
pub use model::*;

use async_trait::async_trait;
use custos_governance::{AuditEvent, EventFilter};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same key already exists.
    #[error("already exists")]
    Conflict,
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(String),
    /// The stored data could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The URL or settings given to [`connect`] are not usable.
    #[error("{0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait ClientRepo: Send + Sync {
    /// Inserts a new client, storing `client.version` as given (callers
    /// pass 1); `Conflict` if the client_id exists.
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    /// The client with this id, disabled ones included; `None` if unknown.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// A conditional write (see the crate documentation): replaces every
    /// column of the client `client.client_id` only if its stored `version`
    /// still equals `client.version`, and sets the stored version to
    /// `client.version + 1`. Returns true if it wrote; false, writing
    /// nothing, if the client does not exist or was changed since
    /// `client` was read (a stale version). Atomic across replicas: of
    /// concurrent updates made from the same read exactly one returns true,
    /// so an update built from an old read (e.g. a secret rotation) can
    /// never undo a newer one (e.g. disabling the client).
    async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool>;
    /// Every client, disabled ones included, ordered by created_at then client_id.
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
}

#[async_trait]
pub trait SigningKeyRepo: Send + Sync {
    /// Every stored signing key, oldest first (created_at, then kid).
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// In one transaction: sets `retired_at = new_key.activates_at` on every
    /// key whose `retired_at` is NULL, then inserts `new_key`.
    async fn rotate_signing_key(&self, new_key: &SigningKeyRecord) -> StoreResult<()>;
    /// Inserts `key` only if no key exists at all (first start); returns
    /// whether it was inserted. Two replicas racing at first start must not
    /// both fail; at most a duplicate active key results, which is harmless.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool>;
    /// Deletes keys with `retired_at` not NULL and `retired_at + max_token_ttl <= now`.
    async fn delete_expired_signing_keys(&self, now: i64, max_token_ttl: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait ResourceRepo: Send + Sync {
    /// `Conflict` if the uri exists.
    async fn insert_resource(&self, resource: &ResourceRecord) -> StoreResult<()>;
    /// The resource with exactly this uri; `None` if unknown.
    async fn get_resource(&self, uri: &str) -> StoreResult<Option<ResourceRecord>>;
    /// Every resource, ordered by created_at then uri.
    async fn list_resources(&self) -> StoreResult<Vec<ResourceRecord>>;
}

#[async_trait]
pub trait UserRepo: Send + Sync {
    /// `Conflict` if the username exists.
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// The user with exactly this username (case-sensitive); `None` if unknown.
    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>>;
}

#[async_trait]
pub trait InitialAccessTokenRepo: Send + Sync {
    /// `Conflict` if a token with the same hash exists.
    async fn insert_initial_access_token(
        &self,
        token: &InitialAccessTokenRecord,
    ) -> StoreResult<()>;
    /// The token with this hash, expired or not (the caller checks
    /// `expires_at`); `None` if unknown or already pruned.
    async fn get_initial_access_token(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<InitialAccessTokenRecord>>;
}

#[async_trait]
pub trait ReplayRepo: Send + Sync {
    /// Records that `jti` was used within `namespace` (e.g. "client_assertion:<client_id>")
    /// until `expires_at`. Returns true if this is the first use, false if it
    /// was already recorded and has not expired. Atomic across replicas: of
    /// two concurrent calls with the same key exactly one returns true.
    async fn record_jti_once(
        &self,
        namespace: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool>;
}

#[async_trait]
pub trait RevocationRepo: Send + Sync {
    /// Marks a token `jti` revoked until `expires_at` (idempotent; revoking
    /// again keeps the later `expires_at`).
    async fn revoke_token(&self, revoked: &RevokedToken) -> StoreResult<()>;
    /// Whether `jti` has been revoked. A revocation is remembered at least
    /// until its `expires_at` (it goes at the first `prune_expired` after).
    async fn is_token_revoked(&self, jti: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends events in one transaction; the store assigns ids in order.
    async fn append_events(&self, events: &[AuditEvent]) -> StoreResult<()>;
    /// Matching events ordered by id ascending (newest last). When more than
    /// `filter.limit` match, the newest `limit` are returned; a limit of 0
    /// means 1000.
    async fn query_events(&self, filter: &EventFilter) -> StoreResult<Vec<AuditEvent>>;
    /// For each client: time (ms) of its most recent `token.issued` event,
    /// ordered by client_id. Clients that never got a token are absent.
    async fn client_last_used(&self) -> StoreResult<Vec<(String, i64)>>;
}

#[async_trait]
pub trait Maintenance: Send + Sync {
    /// Deletes replay records, revocations and initial access tokens whose
    /// `expires_at <= now`, in one transaction; returns the number of rows.
    async fn prune_expired(&self, now: i64) -> StoreResult<u64>;
    /// Audit retention: deletes at most `max_rows` audit events recorded
    /// strictly before `recorded_before_ms` (`time_ms < recorded_before_ms`),
    /// oldest first (by `time_ms`, then id), and returns how many it deleted.
    /// Works in batches of at most 1000 rows, each its own short statement,
    /// so a large backlog never holds one long transaction or lock; a
    /// failure part-way keeps the batches already deleted. Fewer than
    /// `max_rows` returned means no eligible events were left (or another
    /// replica pruning at the same time took some). `max_rows == 0` deletes
    /// nothing.
    async fn prune_audit_events(&self, recorded_before_ms: i64, max_rows: u64) -> StoreResult<u64>;
    /// Closes the pool cleanly (waits for connections to be returned).
    async fn close(&self);
    /// "sqlite" or "postgres".
    fn engine(&self) -> Engine;
}

/// Everything custos stores, behind one object.
pub trait Store:
    ClientRepo
    + SigningKeyRepo
    + ResourceRepo
    + UserRepo
    + InitialAccessTokenRepo
    + ReplayRepo
    + RevocationRepo
    + AuditRepo
    + Maintenance
{
}

impl<T> Store for T where
    T: ClientRepo
        + SigningKeyRepo
        + ResourceRepo
        + UserRepo
        + InitialAccessTokenRepo
        + ReplayRepo
        + RevocationRepo
        + AuditRepo
        + Maintenance
{
}

/// How to open the store.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `sqlite://PATH` (file created if missing) or `postgres://…`.
    pub url: String,
    /// Upper bound on pooled connections.
    pub max_connections: u32,
}

/// Shows the URL with any password replaced, so options can be logged.
impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &connect::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// Opens the store named by `options.url` and brings its schema up to date.
///
/// The engine follows the URL scheme:
/// - `sqlite://PATH` or `sqlite:PATH` — the file is created if missing; its
///   directory must exist. Every connection runs in WAL mode with
///   `synchronous=NORMAL`, `busy_timeout=5000` and foreign keys on.
/// - `postgres://…` or `postgresql://…`.
///
/// Before returning, one connection is opened to check that the database is
/// reachable and the engine's pending migrations are applied in a single
/// transaction (on PostgreSQL under an advisory lock, so replicas starting
/// together apply them once). Calling it again on the same database is a
/// no-op for the schema.
///
/// Errors: an unknown scheme or unusable URL → [`StoreError::Config`]; a
/// database that cannot be reached or migrated → [`StoreError::Database`].
/// Messages never contain the password from the URL.
pub async fn connect(options: &ConnectOptions) -> StoreResult<std::sync::Arc<dyn Store>> {
    let store = sql::SqlStore::open(options).await?;
    Ok(std::sync::Arc::new(store))
}
