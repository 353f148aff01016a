//! SQLite's refresh-token rotations, committed in groups.
//!
//! SQLite has one writer at a time, and a rotation is a write transaction:
//! one at a time, each paying its own `BEGIN IMMEDIATE` and `COMMIT` and
//! the round trips to sqlx's worker thread in between, rotations top out
//! near 2,000 a second whatever the number of cores. Here every rotation
//! of this process goes to one writer task, which takes whatever has
//! queued up since its last commit (up to [`MAX_BATCH`]) and decides them
//! one after the other, in arrival order, inside one transaction — the same
//! decisions, in the same order, as one transaction each would make, so
//! every guarantee of `GrantRepo::rotate_refresh_token` holds: of
//! concurrent rotations of one token the first is `Rotated` and the rest
//! `Reused`, in the same commit. Only a database error is shared: it fails
//! every rotation of its batch, and none of them is written.
//!
//! A caller that stops waiting leaves its rotation queued; it is decided
//! and committed all the same (as with [`super::detached`]).

use tokio::sync::{mpsc, oneshot};

use super::grants::rotate;
use super::SqlStore;
use crate::{RefreshTokenRecord, Rotation, StoreError, StoreResult};

/// The most rotations one commit holds.
const MAX_BATCH: usize = 128;
/// Rotations waiting for the writer; a caller beyond this waits for room.
const QUEUE_DEPTH: usize = 4096;

struct Job {
    old_hash: Vec<u8>,
    new: RefreshTokenRecord,
    now: i64,
    grace_secs: i64,
    reply: oneshot::Sender<StoreResult<Rotation>>,
}

/// The handle callers send rotations through; the writer task ends when
/// the last handle is dropped.
pub(crate) struct RotationQueue {
    jobs: mpsc::Sender<Job>,
}

impl RotationQueue {
    /// Starts the writer on `store` (which must not itself hold a queue,
    /// or the writer would keep itself alive).
    pub(crate) fn start(store: SqlStore) -> Self {
        debug_assert!(store.rotations.is_none());
        let (jobs, queued) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_batches(store, queued));
        RotationQueue { jobs }
    }

    pub(crate) async fn rotate(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: i64,
        grace_secs: i64,
    ) -> StoreResult<Rotation> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            old_hash: old_hash.to_vec(),
            new: new.clone(),
            now,
            grace_secs,
            reply,
        };
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Database("the refresh-token rotation writer has stopped".into())
}

async fn write_batches(store: SqlStore, mut queued: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queued.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match commit(&store, &batch).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    // The caller may have stopped waiting; the rotation
                    // stands either way.
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, rotations = batch.len(), "refresh-token rotations failed");
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Database(error.to_string())));
                }
            }
        }
    }
}

/// Decides `batch` in order in one transaction; a rotation's own
/// `Conflict` (undone by `rotate`) is its answer, any other error the
/// whole batch's.
async fn commit(store: &SqlStore, batch: &[Job]) -> StoreResult<Vec<StoreResult<Rotation>>> {
    let (mut tx, _write) = store.begin_write().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        match rotate(
            &mut tx,
            store.engine,
            &job.old_hash,
            &job.new,
            job.now,
            job.grace_secs,
        )
        .await
        {
            Err(StoreError::Conflict) => results.push(Err(StoreError::Conflict)),
            Err(other) => return Err(other),
            Ok(rotation) => results.push(Ok(rotation)),
        }
    }
    tx.commit().await.map_err(super::db_err)?;
    Ok(results)
}
