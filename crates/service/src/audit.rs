//! The audit trail's writer: events are queued and written in batches, so
//! recording an event costs the token path a channel send, not a database
//! transaction. The queue is bounded (back-pressure; an event that cannot
//! be queued is logged, never dropped silently), drained completely at
//! shutdown, and flushed on demand so that reading the trail on this
//! replica sees every event recorded before the read.

use crate::client_auth::ClaimedClient;
use crate::refusals::RefusalCollapser;
use crate::request::RequestContext;
use custos_governance::{AuditEvent, Outcome};
use custos_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Messages waiting to be handled, at most.
const QUEUE_CAPACITY: usize = 65_536;
/// How long a request waits for room in a full queue.
const FULL_QUEUE_PATIENCE: Duration = Duration::from_secs(5);
/// Events written per transaction, at most.
const BATCH: usize = 2_048;
/// After the first event of a batch arrives, wait this long for company:
/// at most ~100 write transactions a second however busy the server is,
/// instead of a wake-up and a transaction per handful of events.
const GATHER: Duration = Duration::from_millis(10);

#[allow(
    clippy::large_enum_variant,
    reason = "nearly every message is an event; boxing would add an allocation to each"
)]
enum Message {
    Event(AuditEvent),
    /// Answered once every event queued before it is written.
    Flush(oneshot::Sender<()>),
}

/// Where the service sends events. Cloning is cheap.
#[derive(Clone)]
pub struct AuditSink {
    sender: mpsc::Sender<Message>,
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
        match self
            .sender
            .send_timeout(Message::Event(event), FULL_QUEUE_PATIENCE)
            .await
        {
            Ok(()) => {}
            Err(SendTimeoutError::Timeout(Message::Event(event))) => tracing::error!(
                event_type = %event.event_type,
                client_id = ?event.client_id,
                "audit queue stayed full (the database is not keeping up); an audit event was not recorded"
            ),
            Err(_) => {
                tracing::error!("audit writer has stopped; an audit event was not recorded")
            }
        }
    }

    /// Waits (at most `FULL_QUEUE_PATIENCE`) until every event this
    /// replica queued before the call is in the store.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        let queued = self
            .sender
            .send_timeout(Message::Flush(done), FULL_QUEUE_PATIENCE)
            .await;
        if queued.is_ok() {
            let _ = tokio::time::timeout(FULL_QUEUE_PATIENCE, written).await;
        }
    }
}

/// Longest client_id kept in an event when no such client is registered:
/// made-up ids are request noise, not identifiers worth keeping whole.
pub const MAX_UNKNOWN_CLIENT_ID: usize = 64;
/// Longest text kept from a request in any event field.
pub const MAX_FIELD: usize = 512;
/// Refusals recorded in full per source, client and window before the
/// rest are only counted: one for an unknown client, a few for a known one.
const IN_FULL_UNKNOWN: u64 = 1;
const IN_FULL_KNOWN: u64 = 20;

/// What use cases record events through: builds events stamped with the
/// request's time and source, and keeps unauthenticated refusals bounded.
#[derive(Clone)]
pub struct Auditor {
    sink: AuditSink,
    refusals: Arc<RefusalCollapser>,
}

impl Auditor {
    pub fn new(sink: AuditSink) -> Self {
        Auditor {
            sink,
            refusals: Arc::new(RefusalCollapser::default()),
        }
    }

    /// A new event of `event_type` at the request's time, from its source.
    pub fn event(&self, event_type: &str, outcome: Outcome, ctx: &RequestContext) -> AuditEvent {
        let mut event = AuditEvent::new(event_type, ctx.now_ms, outcome);
        event.source_addr = ctx.source_addr.clone();
        event
    }

    /// Queues `event`. Text fields are cleaned of NUL characters first: the
    /// stores refuse them, and one bad event must not lose its batch.
    pub async fn record(&self, mut event: AuditEvent) {
        for field in [
            &mut event.client_id,
            &mut event.grant_type,
            &mut event.scope,
            &mut event.resource,
            &mut event.reason,
            &mut event.source_addr,
        ] {
            if let Some(text) = field.as_mut().filter(|t| t.contains('\0')) {
                *text = text.replace('\0', "\u{FFFD}");
            }
        }
        self.sink.record(event).await;
    }

    /// Records a refusal of a caller that did not authenticate: the
    /// client_id is cut short when no such client exists, and past the
    /// first few per source, client and window, refusals are only counted
    /// (see `refusals`).
    pub async fn record_unauthenticated(&self, mut event: AuditEvent, claimed: &ClaimedClient) {
        let (key, in_full) = if claimed.known {
            (claimed.client_id.as_deref().unwrap_or(""), IN_FULL_KNOWN)
        } else {
            event.client_id = event
                .client_id
                .as_deref()
                .map(|id| bounded(id, MAX_UNKNOWN_CLIENT_ID));
            ("", IN_FULL_UNKNOWN)
        };
        let source = event.source_addr.clone().unwrap_or_default();
        if self.refusals.admit(&source, key, in_full, &event) {
            self.record(event).await;
        }
    }

    /// Records the summaries of collapsed refusals whose window ended.
    /// Called periodically (and at shutdown).
    pub async fn close_refusal_windows(&self, now_ms: i64) {
        for summary in self.refusals.close_ended(now_ms) {
            self.record(summary).await;
        }
    }

    /// See [`AuditSink::flush`].
    pub async fn flush(&self) {
        self.sink.flush().await;
    }
}

/// Cuts request-controlled text to at most `max` bytes (on a character
/// boundary), marking the cut with "…".
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl AuditWriter {
    pub async fn finish(self) {
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "audit writer task failed");
        }
    }
}

async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Message>) {
    let mut messages = Vec::with_capacity(BATCH);
    let mut events = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while receiver.recv_many(&mut messages, BATCH).await > 0 {
        let flushing = messages.iter().any(|m| matches!(m, Message::Flush(_)));
        if !flushing && messages.len() < BATCH && !receiver.is_closed() {
            tokio::time::sleep(GATHER).await;
            while messages.len() < BATCH {
                match receiver.try_recv() {
                    Ok(message) => messages.push(message),
                    Err(_) => break,
                }
            }
        }
        for message in messages.drain(..) {
            match message {
                Message::Event(event) => events.push(event),
                Message::Flush(done) => flushes.push(done),
            }
        }
        write(store.as_ref(), &events).await;
        events.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes one batch, retrying a few times before giving up loudly.
async fn write(store: &dyn Store, events: &[AuditEvent]) {
    if events.is_empty() {
        return;
    }
    let mut attempt = 0;
    loop {
        match store.append_events(events).await {
            Ok(()) => return,
            Err(e) if attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "writing audit events failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => {
                tracing::error!(error = %e, lost = events.len(), "audit events could not be written");
                return;
            }
        }
    }
}
