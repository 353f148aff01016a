//! The one SQL implementation of every repository trait, for both engines.
//!
//! All queries go through sqlx's `Any` driver with `$1, $2, …` placeholders,
//! which PostgreSQL and SQLite both accept, and bind only `i64`, `String`,
//! `Vec<u8>` and `Option`s of those. Engine differences are confined to the
//! migrations, the statement that opens a writing transaction
//! ([`begin_statement`]), the SQLite connection pragmas, the PostgreSQL
//! migration lock, the audit batch size (`audit::rows_per_insert`), the
//! row locking of audit pruning (`audit::prune_events`) and the row locks
//! of refresh-token rotation (`grants`).

mod audit;
mod clients;
mod consents;
mod grants;
mod keys;
mod lineage_batch;
mod policies;
mod resources;
mod tokens;
mod trusted_issuers;
mod users;
mod write_queue;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row, Transaction};

use crate::connect;
use crate::{ConnectOptions, Engine, Maintenance, StoreError, StoreResult};

/// How long [`SqlStore::open`] waits for the first connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Run on every new SQLite connection (the pool's `after_connect` and the
/// migration connection), after [`sqlite_wal`].
const SQLITE_PRAGMAS: &str = "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; \
     PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=0;";
/// How often the checkpointer copies the WAL back into the database file.
/// SQLite's own automatic checkpoint runs inside whichever commit crosses
/// 1,000 pages, stalling that writer (and every writer queued behind it)
/// for milliseconds; a background `PASSIVE` checkpoint copies the same
/// pages without holding the write lock.
const SQLITE_CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How long [`sqlite_wal`] keeps retrying while another connection holds the
/// lock it needs (the same as `busy_timeout`).
const SQLITE_WAL_PATIENCE: Duration = Duration::from_secs(5);

/// The store: a connection pool and the engine behind it. Cloning shares
/// the pool and the write lock (see [`detached`]).
#[derive(Clone)]
pub(crate) struct SqlStore {
    pool: AnyPool,
    engine: Engine,
    /// SQLite has one writer at a time; write transactions of this process
    /// queue here, in order, instead of in SQLite's busy handler, which
    /// sleeps (up to 100 ms a turn) and makes the tail latency of every
    /// write under load hundreds of milliseconds. It holds the connection
    /// the grouped writes (`write_queue`) and small audit batches write on,
    /// so that its page cache is not dropped by another connection's
    /// commit at every turn. PostgreSQL: unused.
    write_lock: std::sync::Arc<tokio::sync::Mutex<write_queue::KeptConnection>>,
    /// SQLite: the writes committed in groups (`write_queue`).
    /// PostgreSQL: `None`, a statement or transaction each.
    queues: Option<std::sync::Arc<Queues>>,
}

/// SQLite's writers of grouped writes, one per kind.
pub(crate) struct Queues {
    pub(crate) rotations: write_queue::WriteQueue<grants::RotationBatch>,
    pub(crate) jti: write_queue::WriteQueue<tokens::JtiBatch>,
    /// Not a write: the lineage reads of many requests in one `SELECT`.
    pub(crate) lineage: write_queue::WriteQueue<lineage_batch::LineageBatch>,
}

impl SqlStore {
    /// Checks the URL, opens one connection to prove the database is
    /// reachable, applies pending migrations on it, then builds the pool.
    pub(crate) async fn open(options: &ConnectOptions) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let target = connect::parse(&options.url)?;
        let any_options = AnyConnectOptions::from_str(&target.url).map_err(|e| {
            StoreError::Config(connect::redact(
                &format!("CUSTOS_DATABASE_URL is not a valid URL: {e}"),
                &options.url,
            ))
        })?;
        let unreachable = |detail: String| {
            StoreError::Database(connect::redact(
                &format!(
                    "cannot open the {} database {} named by CUSTOS_DATABASE_URL: {detail}",
                    engine_name(target.engine),
                    target.display
                ),
                &options.url,
            ))
        };

        let mut conn =
            tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect_with(&any_options))
                .await
                .map_err(|_| {
                    unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))
                })?
                .map_err(|e| unreachable(e.to_string()))?;
        prepare_connection(&mut conn, target.engine)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let migrated = crate::migrate::run(&mut conn, target.engine).await;
        // Closing is best effort; the migration result is what matters.
        let _ = conn.close().await;
        migrated.map_err(|e| {
            StoreError::Database(connect::redact(
                &format!(
                    "cannot migrate the {} database {}: {}",
                    engine_name(target.engine),
                    target.display,
                    match e {
                        StoreError::Database(m)
                        | StoreError::Corrupt(m)
                        | StoreError::Config(m) => m,
                        StoreError::Conflict => "a row already exists".into(),
                    }
                ),
                &options.url,
            ))
        })?;

        let engine = target.engine;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A ping before every checkout is a round trip to SQLite's
            // worker thread for nothing (no network can drop the file);
            // PostgreSQL connections keep the check.
            .test_before_acquire(engine == Engine::Postgres)
            .after_connect(move |conn, _meta| Box::pin(prepare_connection(conn, engine)))
            .connect_with(any_options)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tracing::debug!(
            engine = engine_name(engine),
            database = %connect::redact(&target.display, &options.url),
            max_connections = options.max_connections.max(1),
            "store opened"
        );
        let mut store = SqlStore {
            engine,
            write_lock: std::sync::Arc::new(tokio::sync::Mutex::new(
                write_queue::KeptConnection::new(&pool),
            )),
            pool,
            queues: None,
        };
        if engine == Engine::Sqlite {
            tokio::spawn(checkpoint_wal(store.pool.clone()));
            tokio::spawn(release_writer_on_close(
                store.pool.clone(),
                store.write_lock.clone(),
            ));
            store.queues = Some(std::sync::Arc::new(Queues {
                rotations: write_queue::WriteQueue::start(store.clone()),
                jti: write_queue::WriteQueue::start(store.clone()),
                lineage: write_queue::WriteQueue::start(store.clone()),
            }));
        }
        Ok(store)
    }

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`, waiting up to `busy_timeout`), so a
    /// transaction never fails half-way with "database is locked" because
    /// it read before writing.
    ///
    /// On SQLite the transaction also holds this process's write lock
    /// (keep the guard until it is committed or dropped).
    ///
    /// Run the whole transaction inside [`detached`]: a transaction whose
    /// future is dropped half-way can leave its connection inside
    /// `BEGIN IMMEDIATE`, holding SQLite's write lock for good.
    /// This process's turn to write on SQLite (see `write_lock`), for
    /// writes outside `begin_write`; `None` on PostgreSQL.
    /// The guard holds the writing connection, taken from the pool when
    /// needed (see `write_queue::KeptConnection`).
    pub(crate) async fn write_turn(
        &self,
    ) -> Option<tokio::sync::OwnedMutexGuard<write_queue::KeptConnection>> {
        match self.engine {
            Engine::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Engine::Postgres => None,
        }
    }

    pub(crate) async fn begin_write(
        &self,
    ) -> StoreResult<(
        Transaction<'static, Any>,
        Option<tokio::sync::OwnedMutexGuard<write_queue::KeptConnection>>,
    )> {
        let guard = match self.engine {
            Engine::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Engine::Postgres => None,
        };
        let tx = self
            .pool
            .begin_with(begin_statement(self.engine))
            .await
            .map_err(db_err)?;
        Ok((tx, guard))
    }
}

/// Runs `work` (a write transaction, from `begin_write` to `commit`) on
/// its own task and waits for it.
///
/// A caller that stops waiting — an HTTP client that disconnects, a
/// timeout around a store call — drops this future, not the transaction:
/// the transaction still commits or rolls back, and its connection goes back
/// to the pool clean. Dropped in the middle of a statement instead, sqlx can
/// hand the connection back still inside its transaction: on SQLite every
/// other writer then waits out `busy_timeout` and fails with "database is
/// locked", and the connection's next `begin` fails for good.
pub(crate) async fn detached<T, F>(work: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = StoreResult<T>> + Send + 'static,
{
    tokio::spawn(work)
        .await
        .map_err(|e| StoreError::Database(format!("a store transaction did not finish: {e}")))?
}

/// SQLite: hands the writing connection back once the pool closes (`close`
/// waits for every connection to come back).
async fn release_writer_on_close(
    pool: AnyPool,
    writer: std::sync::Arc<tokio::sync::Mutex<write_queue::KeptConnection>>,
) {
    pool.close_event().await;
    writer.lock().await.release();
}

/// SQLite: copies the WAL back into the database file in the background
/// (see [`SQLITE_CHECKPOINT_EVERY`]) until the pool closes. A checkpoint
/// that cannot finish (readers still need old pages) is simply repeated.
async fn checkpoint_wal(pool: AnyPool) {
    let mut tick = tokio::time::interval(SQLITE_CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            if pool.is_closed() {
                return;
            }
            tracing::debug!(%error, "WAL checkpoint failed; retried at the next tick");
        }
    }
}

async fn prepare_connection(conn: &mut AnyConnection, engine: Engine) -> Result<(), sqlx::Error> {
    if engine == Engine::Sqlite {
        sqlite_wal(conn).await?;
        conn.execute(SQLITE_PRAGMAS).await?;
    }
    Ok(())
}

/// `PRAGMA journal_mode=WAL`, retried while the database is busy.
///
/// Switching a database into WAL mode needs an exclusive lock that SQLite's
/// busy handler does not wait for, so several processes opening a new
/// database at once could fail with "database is locked". The mode is
/// persistent: once set, later calls are no-ops that take no such lock.
async fn sqlite_wal(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    let deadline = tokio::time::Instant::now() + SQLITE_WAL_PATIENCE;
    let mut pause = Duration::from_millis(5);
    loop {
        match conn.execute("PRAGMA journal_mode=WAL").await {
            Err(sqlx::Error::Database(e))
                if sqlite_busy(e.code().as_deref()) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other.map(|_| ()),
        }
    }
}

/// Whether a SQLite result code is SQLITE_BUSY or SQLITE_LOCKED (or one of
/// their extended codes).
fn sqlite_busy(code: Option<&str>) -> bool {
    code.and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
}

/// The statement that opens a writing transaction on `engine`.
pub(crate) fn begin_statement(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "BEGIN IMMEDIATE",
        Engine::Postgres => "BEGIN",
    }
}

fn engine_name(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgres",
    }
}

/// Maps a sqlx error: unique violations become `Conflict`, anything else
/// `Database` with sqlx's message (which carries no bound values).
pub(crate) fn db_err(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Database(e) if e.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            StoreError::Corrupt(error.to_string())
        }
        other => StoreError::Database(other.to_string()),
    }
}

/// Executes a conditional write (see "Conditional writes" in the crate
/// documentation): one `UPDATE` (or `DELETE`) whose `WHERE` names a row by
/// its unique key and states what the writer read, e.g.
/// `WHERE client_id = $1 AND version = $2`. Returns whether it changed the
/// row: true for exactly one winner among concurrent writers of the same
/// state, false if the row is missing or no longer in the state read.
///
/// More than one affected row means the `WHERE` did not select by a unique
/// key, a bug: it is reported as `Corrupt`, never as a success (the rows
/// stay changed unless the caller's transaction is rolled back).
pub(crate) async fn conditional_write<'q, 'e, 'c: 'e, E>(
    query: Query<'q, Any, AnyArguments<'q>>,
    executor: E,
) -> StoreResult<bool>
where
    'q: 'e,
    E: 'e + Executor<'c, Database = Any>,
{
    match query
        .execute(executor)
        .await
        .map_err(db_err)?
        .rows_affected()
    {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(StoreError::Corrupt(format!(
            "a conditional write changed {n} rows instead of at most one"
        ))),
    }
}

/// [`conditional_write`] for an `UPDATE … RETURNING …`: the changed row, or
/// `None` if the row is missing or no longer in the state read. More than
/// one returned row is `Corrupt`, as there.
pub(crate) async fn conditional_write_returning<'q, 'e, 'c: 'e, E>(
    query: Query<'q, Any, AnyArguments<'q>>,
    executor: E,
) -> StoreResult<Option<AnyRow>>
where
    'q: 'e,
    E: 'e + Executor<'c, Database = Any>,
{
    let mut rows = query.fetch_all(executor).await.map_err(db_err)?;
    match rows.len() {
        0 | 1 => Ok(rows.pop()),
        n => Err(StoreError::Corrupt(format!(
            "a conditional write changed {n} rows instead of at most one"
        ))),
    }
}

/// Reads column `name` of `row`; a missing or mistyped column is `Corrupt`.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[async_trait]
impl Maintenance for SqlStore {
    /// Deletes, in one transaction, replay records, revocations, initial
    /// access tokens, authorization codes, refresh tokens and grants with
    /// `expires_at <= now` — the refresh tokens of those grants among them,
    /// as none expires later than its grant; returns how many rows went.
    async fn prune_expired(&self, now: i64) -> StoreResult<u64> {
        let store = self.clone();
        detached(async move { store.prune_expired_now(now).await }).await
    }

    /// Batched `DELETE … WHERE id IN (SELECT id … ORDER BY time_ms, id
    /// LIMIT n)`; see `audit::prune_events`.
    async fn prune_audit_events(&self, recorded_before_ms: i64, max_rows: u64) -> StoreResult<u64> {
        audit::prune_events(self, recorded_before_ms, max_rows).await
    }

    /// Closes the pool: new acquisitions fail, and this returns once every
    /// borrowed connection has been returned and closed.
    async fn close(&self) {
        self.pool.close().await;
    }

    fn engine(&self) -> Engine {
        self.engine
    }
}

impl SqlStore {
    /// `prune_expired`'s transaction.
    async fn prune_expired_now(&self, now: i64) -> StoreResult<u64> {
        let (mut tx, _write) = self.begin_write().await?;
        let mut removed = 0;
        for sql in [
            "DELETE FROM custos_replay WHERE expires_at <= $1",
            "DELETE FROM custos_revoked_tokens WHERE expires_at <= $1",
            "DELETE FROM custos_initial_access_tokens WHERE expires_at <= $1",
            "DELETE FROM custos_authorization_codes WHERE expires_at <= $1",
            // A token expires no later than its grant (`insert_refresh_token`
            // and rotations cap it), so this takes the tokens of the grants
            // deleted next.
            "DELETE FROM custos_refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM custos_grants WHERE expires_at <= $1",
        ] {
            removed += sqlx::query(sql)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(db_err)?;
        Ok(removed)
    }
}
