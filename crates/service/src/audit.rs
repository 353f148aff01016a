//! The audit trail's writer: events are queued and written in batches, so
//! recording an event costs the token path a channel send, not a database
//! transaction. The queue is bounded (back-pressure, never silent loss) and
//! drained completely at shutdown.

use custos_governance::AuditEvent;
use custos_store::Store;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Events waiting to be written, at most.
const QUEUE_CAPACITY: usize = 65_536;
/// How long a request waits for room in a full queue.
const FULL_QUEUE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
/// Events written per transaction, at most.
const BATCH: usize = 2_048;
/// After the first event of a batch arrives, wait this long for company:
/// at most ~100 write transactions a second however busy the server is,
/// instead of a wake-up and a transaction per handful of events.
const GATHER: std::time::Duration = std::time::Duration::from_millis(10);

/// Where the service sends events. Cloning is cheap.
#[derive(Clone)]
pub struct AuditSink {
    sender: mpsc::Sender<AuditEvent>,
}

/// The task that writes events; `finish` waits until everything queued
/// before the last sink was dropped is written.
pub struct AuditWriter {
    handle: JoinHandle<()>,
}

impl AuditSink {
    pub fn start(store: Arc<dyn Store>) -> (AuditSink, AuditWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let handle = tokio::spawn(write_batches(store, receiver));
        (AuditSink { sender }, AuditWriter { handle })
    }

    /// Queues an event; waits only if the queue is full, and at most
    /// [`FULL_QUEUE_PATIENCE`]: a database that stopped accepting writes
    /// must not hang every request. Whatever is not queued is logged.
    pub async fn record(&self, event: AuditEvent) {
        use tokio::sync::mpsc::error::SendTimeoutError;
        match self.sender.send_timeout(event, FULL_QUEUE_PATIENCE).await {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(event)) => tracing::error!(
                event_type = %event.event_type,
                client_id = ?event.client_id,
                "audit queue stayed full (the database is not keeping up); an audit event was not recorded"
            ),
            Err(SendTimeoutError::Closed(_)) => {
                tracing::error!("audit writer has stopped; an audit event was not recorded")
            }
        }
    }
}

impl AuditWriter {
    pub async fn finish(self) {
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "audit writer task failed");
        }
    }
}

async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<AuditEvent>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        if batch.len() < BATCH && !receiver.is_closed() {
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match receiver.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
        }
        let mut attempt = 0;
        loop {
            match store.append_events(&batch).await {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::warn!(error = %e, attempt, "writing audit events failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, lost = batch.len(), "audit events could not be written");
                    break;
                }
            }
        }
        batch.clear();
    }
}
