//! Slow and idle clients, and too many of them.
//!
//! Every accepted connection first takes one of CUSTOS_MAX_CONNECTIONS
//! slots. Over the cap it waits for one (first come, first served) — at
//! most CUSTOS_HEADER_READ_TIMEOUT, then it is closed. Waiting rather than
//! refusing is what keeps `/healthz` (and real clients) answered while
//! slow clients fill the cap: each slot they hold frees within the
//! timeouts below, so a waiting request is served within about one header
//! read timeout, whereas a refused one fails for as long as the cap stays
//! full, which an attacker who reconnects can make forever. A waiting
//! connection costs one socket and nothing else.
//!
//! Then two clocks, kept by the connection's I/O wrapper ([`Guarded`])
//! and its service wrapper ([`Counted`]), which counts requests in flight:
//!
//! - header read: a request head must be complete within
//!   CUSTOS_HEADER_READ_TIMEOUT of its first byte; for a connection's first
//!   request, of the accept (so the wait for a slot and the TLS handshake
//!   count);
//! - idle: a connection with no request in flight and no new byte is
//!   closed after CUSTOS_IDLE_TIMEOUT.
//!
//! While a request is in flight neither clock runs (the HTTP layer's
//! request timeout bounds it). Both apply to HTTP/1 and HTTP/2, plain and
//! over TLS (the wrapper sits below TLS). hyper's own HTTP/1
//! `header_read_timeout` cannot tell the two apart: its clock starts when a
//! connection begins waiting for a request head, at accept and again after
//! every response, so it bounds idle time and head reading together; it
//! does nothing for HTTP/2, nor for a client that sends no byte at all
//! (hyper-util's protocol detection waits for the first bytes before
//! hyper's HTTP/1 code, and its timer, get the connection). It is set to
//! twice their sum, a backstop that never fires first.

use crate::config::ConnectionLimits;
use axum_server::accept::Accept;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// hyper's HTTP/1 header timer as a backstop (see the module docs).
pub fn backstop(
    builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    limits: &ConnectionLimits,
) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(2 * (limits.header_read_timeout + limits.idle_timeout));
}

/// The acceptor: a slot, then the wrappers, then `inner` (plain or TLS).
#[derive(Clone)]
pub struct Limited<A> {
    inner: A,
    limits: ConnectionLimits,
    slots: Arc<Semaphore>,
    /// When "the cap is reached" was last logged (seconds since start).
    last_full_warning: Arc<AtomicU64>,
    started: Instant,
}

impl<A> Limited<A> {
    pub fn new(inner: A, limits: ConnectionLimits, slots: Arc<Semaphore>) -> Self {
        Limited {
            inner,
            limits,
            slots,
            last_full_warning: Arc::new(AtomicU64::new(u64::MAX)),
            started: Instant::now(),
        }
    }

    /// Says that the cap is reached, at most once a minute.
    fn note_full(&self) {
        let now = self.started.elapsed().as_secs();
        let last = self.last_full_warning.load(Ordering::Relaxed);
        if last != u64::MAX && now < last.saturating_add(60) {
            return;
        }
        if self
            .last_full_warning
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            tracing::warn!(
                "CUSTOS_MAX_CONNECTIONS reached: new connections wait for a slot (at most CUSTOS_HEADER_READ_TIMEOUT)"
            );
        }
    }
}

impl<A, S> Accept<TcpStream, S> for Limited<A>
where
    A: Accept<Guarded, Counted<S>> + Clone + Send + Sync + 'static,
    A::Future: Send,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let accepted = Instant::now();
        let this = self.clone();
        Box::pin(async move {
            let permit = match this.slots.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    this.note_full();
                    let deadline = accepted + this.limits.header_read_timeout;
                    let waited =
                        tokio::time::timeout_at(deadline, this.slots.clone().acquire_owned()).await;
                    match waited {
                        Ok(Ok(permit)) => permit,
                        _ => {
                            tracing::debug!("closing a connection that found no slot in time");
                            return Err(io::Error::new(
                                io::ErrorKind::TimedOut,
                                "no connection slot",
                            ));
                        }
                    }
                }
            };
            let state = Arc::new(State::new(accepted));
            let io = Guarded {
                io: stream,
                state: state.clone(),
                limits: this.limits,
                timer: None,
                _slot: permit,
            };
            this.inner
                .accept(
                    io,
                    Counted {
                        inner: service,
                        state,
                    },
                )
                .await
        })
    }
}

/// What the two clocks need to know about one connection.
pub(super) struct State {
    phase: Mutex<Phase>,
}

pub(super) struct Phase {
    in_flight: usize,
    /// A request head has begun (or, at accept, is awaited).
    reading_head: bool,
    /// When the current phase began.
    since: Instant,
}

impl State {
    fn new(accepted: Instant) -> State {
        State {
            phase: Mutex::new(Phase {
                in_flight: 0,
                reading_head: true,
                since: accepted,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        // Nothing panics while holding the lock; recover anyway.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bytes_read(&self) {
        let mut phase = self.lock();
        if phase.in_flight == 0 && !phase.reading_head {
            phase.reading_head = true;
            phase.since = Instant::now();
        }
    }

    fn request_started(&self) {
        let mut phase = self.lock();
        phase.in_flight += 1;
        phase.reading_head = false;
    }

    fn request_ended(&self) {
        let mut phase = self.lock();
        phase.in_flight = phase.in_flight.saturating_sub(1);
        if phase.in_flight == 0 {
            phase.reading_head = false;
            phase.since = Instant::now();
        }
    }

    /// The running clock's deadline and whether it is the header read
    /// clock; `None` while a request is in flight (no clock runs).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, bool)> {
        let phase = self.lock();
        if phase.in_flight > 0 {
            return None;
        }
        if phase.reading_head {
            Some((phase.since + limits.header_read_timeout, true))
        } else {
            Some((phase.since + limits.idle_timeout, false))
        }
    }
}

/// A client connection: its socket, its slot, its clocks.
pub struct Guarded {
    io: TcpStream,
    state: Arc<State>,
    limits: ConnectionLimits,
    timer: Option<Pin<Box<Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Guarded {
    /// Called when the socket is not ready: `Ready` with an error once
    /// the running clock has expired, which closes the connection.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        // While a request is in flight no clock runs, but the connection
        // task may stay parked here until the client's next byte (HTTP/2:
        // streams run in tasks of their own). Rather than have the end of
        // every request wake this task (a wake-up per request), a recheck
        // timer looks again one idle timeout later.
        let (deadline, clock) = match self.state.deadline(&self.limits) {
            Some((deadline, head)) => (deadline, Some(head)),
            None => (Instant::now() + self.limits.idle_timeout, None),
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Deadlines move later with every request; re-arming the timer each
        // time costs a timer-wheel update per request. Re-arm only when the
        // deadline moved earlier; a timer left at an earlier deadline fires
        // early, and is then moved to the real one.
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        let mut fired = timer.as_mut().poll(cx);
        if fired.is_ready() && timer.deadline() < deadline {
            timer.as_mut().reset(deadline);
            fired = timer.as_mut().poll(cx);
        }
        match (fired, clock) {
            (Poll::Ready(()), Some(head)) => {
                let why = if head {
                    "header read timeout"
                } else {
                    "idle timeout"
                };
                tracing::debug!("closing a connection: {why}");
                Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, why))
            }
            _ => Poll::Pending,
        }
    }

    fn pending_or_expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.poll_expired(cx).map(Err)
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.state.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.pending_or_expired(cx),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }
}

/// The connection's service, counting requests in flight (from the
/// parsed head to the response head).
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    state: Arc<State>,
}

/// One request in flight; ends when dropped, also when cancelled.
pub(super) struct InFlight(Arc<State>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

impl<S, R> tower::Service<R> for Counted<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.state.request_started();
        let in_flight = InFlight(self.state.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

/// The connection cap lowered to fit the open-file limit.
pub(super) struct LimitNote {
    wanted: usize,
    cap: usize,
    open_files: String,
}

impl LimitNote {
    pub(super) fn log(&self) {
        tracing::warn!(
            "CUSTOS_MAX_CONNECTIONS lowered from {} to {}: the open-file limit is {}; raise it (ulimit -n, systemd LimitNOFILE=) to allow more",
            self.wanted,
            self.cap,
            self.open_files
        );
    }
}

/// The connection cap that fits the open-file limit. The soft limit is
/// raised toward what `wanted` connections need (at most to the hard
/// limit); when it still falls short, the cap is lowered: past the
/// open-file limit `accept` fails, and then no request — not even
/// `/healthz` — gets in, while a connection over the cap waits for a slot.
#[cfg(unix)]
pub(super) fn connection_cap(wanted: usize) -> (usize, Option<LimitNote>) {
    use libc::rlim_t;
    // Kept for everything but client connections: the listener, database
    // connections, key files, outbound fetches.
    const RESERVED: rlim_t = 256;
    let needed = rlim_t::try_from(wanted)
        .unwrap_or(rlim_t::MAX)
        .saturating_add(RESERVED);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return (wanted, None);
    }
    if limit.rlim_cur < needed {
        let raised = libc::rlimit {
            rlim_cur: needed.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    let open_files = limit.rlim_cur;
    if open_files >= needed {
        return (wanted, None);
    }
    let cap = if open_files > 2 * RESERVED {
        open_files - RESERVED
    } else {
        (open_files / 2).max(1)
    };
    let cap = usize::try_from(cap).unwrap_or(wanted).min(wanted);
    let note = LimitNote {
        wanted,
        cap,
        open_files: open_files.to_string(),
    };
    (cap, Some(note))
}

#[cfg(not(unix))]
pub(super) fn connection_cap(wanted: usize) -> (usize, Option<LimitNote>) {
    (wanted, None)
}
