//! Storage: the only crate that speaks SQL.
//!
//! Repository traits describe every fact custos keeps; one SQL engine
//! implements them for SQLite (embedded default) and PostgreSQL. Anything that
//! must hold across replicas — single-use `jti`s, revocation, key rotation — is
//! decided by the database atomically, never by a process cache; so are
//! authorization-code redemption and refresh-token rotation
//! ([`CodeRepo::redeem_code`], [`GrantRepo::rotate_refresh_token`]).
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
//! that records the use, e.g. `… SET consumed_at = $2 WHERE code_hash = $1
//! AND consumed_at IS NULL` ([`CodeRepo::redeem_code`]). No lock is
//! held between the read and the write and no transaction is needed: the
//! database decides atomically (SQLite serialises writers; PostgreSQL, at
//! READ COMMITTED, makes a second writer wait for the first's row lock and
//! re-checks the `WHERE` against the committed row). Of any number of
//! writers that read the same state exactly one gets `true`; the others get
//! `false` with nothing written, and must re-read and decide again from the
//! fresh row (or give up) — never retry the same write unconditionally.
//! `false` also covers a row that does not exist; re-read to tell them apart.
//! The methods return `StoreResult<bool>`; implementations go through one
//! helper (`sql::conditional_write`, or `sql::conditional_write_returning`
//! for an `UPDATE … RETURNING` whose returned row is the answer).
//!
//! When the loser must act too, the conditional write runs inside a write
//! transaction that first reads (and on PostgreSQL locks) the rows the
//! decision depends on: [`GrantRepo::rotate_refresh_token`] marks the token
//! used with `… WHERE used_at IS NULL`, and a rotation that finds it already
//! used revokes the whole family in the same transaction.

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
    /// Inserts the resource and the authorization details types registered
    /// with it (their `resource` is ignored: it is this one) in one
    /// transaction. `Conflict` if the uri exists or a type name is taken
    /// (by any resource); then nothing is inserted.
    async fn insert_resource(
        &self,
        resource: &ResourceRecord,
        detail_types: &[DetailTypeRecord],
    ) -> StoreResult<()>;
    /// The resource with exactly this uri; `None` if unknown.
    async fn get_resource(&self, uri: &str) -> StoreResult<Option<ResourceRecord>>;
    /// Every resource, ordered by created_at then uri.
    async fn list_resources(&self) -> StoreResult<Vec<ResourceRecord>>;
    /// Every registered authorization details type, ordered by name.
    async fn list_detail_types(&self) -> StoreResult<Vec<DetailTypeRecord>>;
}

#[async_trait]
pub trait TrustedIssuerRepo: Send + Sync {
    /// `Conflict` if the id or the name exists.
    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> StoreResult<()>;
    /// Every trusted issuer, ordered by created_at then id.
    async fn list_trusted_issuers(&self) -> StoreResult<Vec<TrustedIssuerRecord>>;
    /// The issuer with this name (issuer URL or trust domain).
    async fn get_trusted_issuer(&self, name: &str) -> StoreResult<Option<TrustedIssuerRecord>>;
    /// Deletes by id; true if it existed.
    async fn delete_trusted_issuer(&self, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait PolicyRepo: Send + Sync {
    /// Adds a record and counts a change; `Conflict` if the id exists.
    async fn insert_policy(&self, policy: &PolicyRecord) -> StoreResult<()>;
    /// Every record, ordered by created_at then id.
    async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>>;
    /// Deletes by id and counts a change; true if it existed.
    async fn delete_policy(&self, id: &str) -> StoreResult<bool>;
    /// How many changes the records have seen: a replica that read the
    /// records at generation `g` has them all while this still says `g`.
    async fn policy_generation(&self) -> StoreResult<i64>;
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
    /// In one read: whether any of `jtis` is revoked, `grant_id` (when
    /// given) is unknown or revoked, or any of `clients` is unknown or
    /// disabled — whether a token with this lineage (its own `jti`, those
    /// it was exchanged from, its refresh family, the clients they were
    /// issued to) has been revoked. At most [`MAX_LINEAGE`] `jtis` and
    /// as many `clients`.
    async fn is_lineage_revoked(
        &self,
        jtis: &[String],
        grant_id: Option<&str>,
        clients: &[String],
    ) -> StoreResult<bool>;
}

/// Most `jti`s (and clients) [`RevocationRepo::is_lineage_revoked`] takes.
pub const MAX_LINEAGE: usize = 64;

#[async_trait]
pub trait CodeRepo: Send + Sync {
    /// `Conflict` if a code with the same hash exists.
    async fn insert_code(&self, code: &AuthorizationCodeRecord) -> StoreResult<()>;
    /// Single use, atomically across replicas: marks the code consumed at
    /// `now` and records `grant_id`, only if it is unconsumed and unexpired
    /// (`expires_at > now`) — one conditional `UPDATE`. Of concurrent
    /// redemptions exactly one gets `Redeemed` (the record as stored now);
    /// the others `AlreadyRedeemed` with the record (its `grant_id` names
    /// the grant the first redemption created, to revoke; RFC 9700 §4.5).
    /// A consumed code stays `AlreadyRedeemed` until `prune_expired` removes
    /// it after its expiry. Unknown, or expired unconsumed: `Unknown`.
    ///
    /// The code must have been issued to `client_id`: another client's
    /// redemption is `Unknown` and changes nothing, so a leaked code cannot
    /// be burned, nor its tokens revoked, by anyone else.
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        grant_id: &str,
        now: i64,
    ) -> StoreResult<Redemption>;
}

/// The caller's decision on a refresh request, taken by the store inside a
/// rotation on the presented token and its family (see
/// [`GrantRepo::rotate_refresh_token_if`]). Pure and quick: it runs while
/// the write lock is held.
pub type RotationCheck =
    std::sync::Arc<dyn Fn(&RefreshTokenRecord, &GrantRecord) -> bool + Send + Sync>;

#[async_trait]
pub trait GrantRepo: Send + Sync {
    /// `Conflict` if the grant_id exists.
    async fn insert_grant(&self, grant: &GrantRecord) -> StoreResult<()>;
    /// The grant, revoked or expired ones included; `None` if unknown or pruned.
    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Revokes a grant (its refresh tokens stop working; callers treat its
    /// access tokens as inactive) with `revoked_at = now` and `reason`; true
    /// if it was live (unrevoked and `expires_at > now`) and this call
    /// revoked it. Idempotent: revoking again returns false and keeps the
    /// first time and reason.
    async fn revoke_grant(&self, grant_id: &str, now: i64, reason: &str) -> StoreResult<bool>;
    /// Binds an unbound grant's refresh tokens to the DPoP key `jkt` (RFC
    /// 9449 §5: a public client's refresh tokens are bound to the key of
    /// the first proof it presents); true if this call bound it. A bound
    /// grant is never rebound.
    async fn bind_grant_key(&self, grant_id: &str, jkt: &str) -> StoreResult<bool>;
    /// Live (unrevoked, `expires_at > now`) grants of a client, for the
    /// inventory, ordered by created_at then grant_id.
    async fn list_live_grants(&self, client_id: &str, now: i64) -> StoreResult<Vec<GrantRecord>>;
    /// `Conflict` if a token with the same hash exists; a `grant_id` that
    /// names no grant is an error (`Database`). The token is stored
    /// expiring no later than its grant: it never outlives its family.
    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()>;
    /// The token with this hash, used or expired or not; `None` if unknown
    /// or pruned. A read for decisions taken before rotating (e.g. checking
    /// a requested narrower scope); the rotation itself re-checks everything.
    async fn get_refresh_token(&self, token_hash: &[u8])
        -> StoreResult<Option<RefreshTokenRecord>>;
    /// The token with this hash and its grant (family), in one read; `None`
    /// if the token is unknown or pruned. What a refresh request decides
    /// with before rotating.
    async fn get_refresh_token_with_grant(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<(RefreshTokenRecord, GrantRecord)>>;
    /// Rotation (RFC 9700 §4.14.2), in one transaction, atomically across
    /// replicas. `new` joins the old token's family: it is stored with the
    /// old token's `grant_id` (`new.grant_id` is not read, so callers may
    /// leave it empty), and `new.client_id` must be the old token's client
    /// (RFC 6749 §6: a refresh token works only for the client it was issued
    /// to) — otherwise `Unknown`, nothing written. Then:
    /// - unused, unexpired (`expires_at > now`), grant unrevoked and
    ///   unexpired: marks it used at `now`, inserts `new`, `Rotated {
    ///   within_grace: false }`;
    /// - already used, its one grace retry not yet taken, and `now <
    ///   used_at + grace_secs` (`grace_secs <= 0`: no grace), token
    ///   unexpired and grant live: takes the retry, inserts `new` (the old
    ///   token keeps its first `used_at`), `Rotated { within_grace: true }`;
    /// - already used otherwise — past the grace window, or a second retry
    ///   within it (whatever the token's or the grant's state): revokes its
    ///   grant if not yet revoked (reason [`REFRESH_TOKEN_REUSED`]), `Reused`;
    /// - otherwise (idle-expired, or grant revoked or past `expires_at`):
    ///   `Expired`, nothing written;
    /// - unknown hash: `Unknown`.
    ///
    /// Of N concurrent rotations of one live token with grace 0 exactly one
    /// is `Rotated` and every other `Reused`, and the grant ends revoked. On
    /// SQLite the transaction is `BEGIN IMMEDIATE` (one writer at a time),
    /// shared by the rotations queued since the last commit and decided in
    /// arrival order (a database error fails them all);
    /// on PostgreSQL it locks the token row (`FOR UPDATE`) and then the
    /// grant row (`FOR NO KEY UPDATE`), always in that order, and marks the
    /// token used with a conditional `UPDATE … WHERE used_at IS NULL`.
    /// A `Conflict` (the new hash exists) rolls everything back.
    async fn rotate_refresh_token(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: i64,
        grace_secs: i64,
    ) -> StoreResult<Rotation> {
        let accept_all: RotationCheck = std::sync::Arc::new(|_, _| true);
        self.rotate_refresh_token_if(old_hash, new, now, grace_secs, accept_all)
            .await
    }
    /// [`GrantRepo::rotate_refresh_token`], where the request's own decision
    /// is taken inside the rotation, on the token and its family as they
    /// are then: before a live token (or a grace retry) is rotated, `accept`
    /// is asked; `false` writes nothing and answers `Declined` (a request
    /// that would widen its grant does not use its token up). A reuse
    /// revokes the family whatever `accept` would say. `new` takes the
    /// family's scope, and its `expires_at` is clamped to the family's.
    /// This spares the caller a read before rotating.
    async fn rotate_refresh_token_if(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: i64,
        grace_secs: i64,
        accept: RotationCheck,
    ) -> StoreResult<Rotation>;
}

#[async_trait]
pub trait ConsentRepo: Send + Sync {
    /// Upsert: stores the consent, its scope normalized (sorted,
    /// deduplicated, space-separated); an existing row with the same
    /// (username, client_id, normalized scope) takes the new `created_at`.
    async fn record_consent(&self, consent: &ConsentRecord) -> StoreResult<()>;
    /// A person's consents for a client, ordered by scope.
    async fn consents_of(&self, username: &str, client_id: &str)
        -> StoreResult<Vec<ConsentRecord>>;
    /// Every consent, or one person's, ordered by username, client_id, scope.
    async fn list_consents(&self, username: Option<&str>) -> StoreResult<Vec<ConsentRecord>>;
    /// Deletes a person's consents for a client; returns how many.
    async fn revoke_consents(&self, username: &str, client_id: &str) -> StoreResult<u64>;
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
    /// Deletes replay records, revocations, initial access tokens,
    /// authorization codes (consumed or not), refresh tokens (used or not)
    /// and grants (revoked or not) whose `expires_at <= now`, with the
    /// refresh tokens of those grants, in one transaction; returns the
    /// number of rows.
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
    + TrustedIssuerRepo
    + PolicyRepo
    + UserRepo
    + InitialAccessTokenRepo
    + ReplayRepo
    + RevocationRepo
    + CodeRepo
    + GrantRepo
    + ConsentRepo
    + AuditRepo
    + Maintenance
{
}

impl<T> Store for T where
    T: ClientRepo
        + SigningKeyRepo
        + ResourceRepo
        + TrustedIssuerRepo
        + PolicyRepo
        + UserRepo
        + InitialAccessTokenRepo
        + ReplayRepo
        + RevocationRepo
        + CodeRepo
        + GrantRepo
        + ConsentRepo
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
