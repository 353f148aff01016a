//! SQLite writes that many requests make at once, committed in groups.
//!
//! SQLite has one writer at a time, and every statement is a round trip to
//! sqlx's worker thread. Written one request at a time, refresh-token
//! rotations top out near 2,000 a second and single-use `jti` records
//! cost a third of a DPoP-bound token request, whatever the number of
//! cores. Here each kind of write ([`Batch`]) has one writer task per
//! process, which takes whatever has queued up since its last commit (up to
//! [`Batch::MAX`]) and writes it with a few statements for the whole group.
//! Each batch decides its jobs as if one at a time in some order of
//! arrival, so every guarantee of the trait method it serves holds. Only a
//! database error is shared: it fails every job of its batch.
//!
//! A caller that stops waiting leaves its job queued; it is decided and
//! committed all the same (as with [`super::detached`]). PostgreSQL has no
//! single writer and does not use this.
//!
//! Every batch that writes does so on the store's one writing connection
//! (held with the write lock, [`SqlStore::write_turn`]): SQLite drops a
//! connection's whole page cache when another connection has committed
//! since it last looked, so writers on separate connections make each
//! other read the database's pages again on every commit.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::AnyConnection;
use sqlx::{Any, Executor as _};
use tokio::sync::{mpsc, oneshot};

use super::{db_err, SqlStore};
use crate::{StoreError, StoreResult};

/// Jobs waiting for the writer; a caller beyond this waits for room.
const QUEUE_DEPTH: usize = 4096;

/// One kind of write done in groups.
#[async_trait]
pub(crate) trait Batch: Send + Sync + 'static {
    type Job: Send + Sync + 'static;
    type Output: Send + 'static;
    /// What the writer is called in logs.
    const NAME: &'static str;
    /// Whether the batch writes: it then runs on the store's writing
    /// connection, in the write lock; a batch that only reads keeps a
    /// connection of its own.
    const WRITES: bool;
    /// The most jobs one commit holds.
    const MAX: usize;
    /// Writes `jobs` (never empty) on `writer` and returns one answer per
    /// job, in order; an `Err` fails the whole batch, and nothing of it may
    /// have been committed (the writer rolls back whatever it left open).
    async fn commit(
        store: &SqlStore,
        conn: &mut KeptConnection,
        jobs: &[Self::Job],
    ) -> StoreResult<Vec<StoreResult<Self::Output>>>;
}

/// Pools smaller than this lend the writer (and a reading batch) a
/// connection per batch instead of for good, so they cannot starve the
/// requests.
const KEEP_CONNECTION_FROM_POOL_SIZE: u32 = 4;

/// A connection kept from batch to batch (unless the pool is tiny): its
/// statements stay prepared, its page cache stays warm, and a batch can
/// open and close its transaction in the same round trips as its first and
/// last statements, which `sqlx::Transaction` cannot.
pub(crate) struct KeptConnection {
    pool: sqlx::AnyPool,
    keep: bool,
    conn: Option<PoolConnection<Any>>,
}

impl KeptConnection {
    pub(crate) fn new(pool: &sqlx::AnyPool) -> Self {
        KeptConnection {
            pool: pool.clone(),
            keep: pool.options().get_max_connections() >= KEEP_CONNECTION_FROM_POOL_SIZE,
            conn: None,
        }
    }

    /// The connection, taken from the pool if the writer has none.
    pub(crate) async fn get(&mut self) -> StoreResult<&mut AnyConnection> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await.map_err(db_err)?,
        };
        Ok(&mut **self.conn.insert(conn))
    }

    /// After a batch that committed: gives the connection back unless the
    /// writer keeps it.
    pub(crate) fn finished(&mut self) {
        if !self.keep {
            self.conn = None;
        }
    }

    /// After a batch that failed: rolls back whatever transaction it left
    /// open and closes the connection (the next batch takes a fresh one),
    /// whatever state the failure left it in.
    pub(crate) async fn abandon(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            // "No transaction is active" is the common answer, and fine.
            let _ = conn.execute("ROLLBACK").await;
            conn.close_on_drop();
        }
    }

    /// Gives the connection back to the pool (which is closing: `close`
    /// waits for every connection).
    pub(crate) fn release(&mut self) {
        self.conn = None;
    }

    pub(crate) fn is_held(&self) -> bool {
        self.conn.is_some()
    }
}

type Queued<B> = (
    <B as Batch>::Job,
    oneshot::Sender<StoreResult<<B as Batch>::Output>>,
);

/// The handle callers send jobs through; the writer task ends when the
/// last handle is dropped.
pub(crate) struct WriteQueue<B: Batch> {
    jobs: mpsc::Sender<Queued<B>>,
}

impl<B: Batch> WriteQueue<B> {
    /// Starts the writer on `store`, which must hold no queues itself (or
    /// the writer would keep itself alive).
    pub(crate) fn start(store: SqlStore) -> Self {
        debug_assert!(store.queues.is_none());
        let (jobs, queued) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches::<B>(store, queued));
        WriteQueue { jobs }
    }

    pub(crate) async fn submit(&self, job: B::Job) -> StoreResult<B::Output> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((job, reply))
            .await
            .map_err(|_| stopped(B::NAME))?;
        answer.await.map_err(|_| stopped(B::NAME))?
    }
}

fn stopped(name: &str) -> StoreError {
    StoreError::Database(format!("the {name} writer has stopped"))
}

async fn write_batches<B: Batch>(store: SqlStore, mut queued: mpsc::Receiver<Queued<B>>) {
    let mut batch: Vec<Queued<B>> = Vec::with_capacity(B::MAX);
    let mut jobs = Vec::with_capacity(B::MAX);
    // A reading batch's own connection; a writing one uses the store's.
    let mut own = KeptConnection::new(&store.pool);
    let mut closing = std::pin::pin!(store.pool.close_event());
    loop {
        // `close` waits for every connection to come back: a batch that
        // keeps one hands it back as soon as the pool closes.
        let received = tokio::select! {
            received = queued.recv_many(&mut batch, B::MAX) => received,
            () = &mut closing, if own.is_held() => {
                own.release();
                continue;
            }
        };
        if received == 0 {
            break;
        }
        let (batch_jobs, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        jobs.clear();
        jobs.extend(batch_jobs);
        let mut turn = if B::WRITES {
            store.write_turn().await
        } else {
            None
        };
        let conn = match turn.as_deref_mut() {
            Some(writer) => writer,
            None => &mut own,
        };
        let committed = B::commit(&store, conn, &jobs).await;
        match &committed {
            Ok(_) => conn.finished(),
            Err(_) => conn.abandon().await,
        }
        drop(turn);
        match committed {
            Ok(answers) if answers.len() == replies.len() => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The caller may have stopped waiting; the write stands.
                    let _ = reply.send(answer);
                }
            }
            Ok(answers) => {
                let error = format!(
                    "the {} writer answered {} of {} jobs",
                    B::NAME,
                    answers.len(),
                    replies.len()
                );
                tracing::error!(%error);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database(error.clone())));
                }
            }
            Err(error) => {
                tracing::warn!(%error, jobs = replies.len(), "{} batch failed", B::NAME);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Database(error.to_string())));
                }
            }
        }
    }
}
