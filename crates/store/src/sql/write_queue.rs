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

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};

use super::SqlStore;
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
    /// The most jobs one commit holds.
    const MAX: usize;
    /// Writes `jobs` (never empty) and returns one answer per job, in
    /// order; an `Err` fails the whole batch, and nothing of it may have
    /// been committed.
    async fn commit(
        store: &SqlStore,
        jobs: &[Self::Job],
    ) -> StoreResult<Vec<StoreResult<Self::Output>>>;
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
    while queued.recv_many(&mut batch, B::MAX).await > 0 {
        let (batch_jobs, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        jobs.clear();
        jobs.extend(batch_jobs);
        match B::commit(&store, &jobs).await {
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
