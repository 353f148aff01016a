//! `custos serve`: the composition root. Settings → store → service →
//! router → listener, then a graceful shutdown on SIGTERM/SIGINT that lets
//! in-flight requests finish, writes every queued audit event and closes
//! the store.

use crate::config::{
    default_issuer, redact_url, sqlite_file, sqlite_path, KekSource, Settings, Tls,
};
use crate::jwks_fetch::HttpJwksFetcher;
use custos_service::clock::SystemClock;
use custos_service::crypto::MasterKey;
use custos_service::{Secret, Service, ServiceConfig};
use custos_store::ConnectOptions;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Runs the server until a shutdown signal. `Err` is the one line to print.
pub async fn run(mut settings: Settings) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(settings.listen)
        .map_err(|e| format!("CUSTOS_LISTEN: cannot bind {}: {e}", settings.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("CUSTOS_LISTEN: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("CUSTOS_LISTEN: {e}"))?;
    if settings.issuer_from_listen {
        // With port 0 only the bound address says where we are.
        settings.issuer = default_issuer(settings.tls.is_some(), local);
    }
    let tls = settings.tls.as_ref().map(tls_config).transpose()?;
    let (max_connections, limit_note) = connection_cap(settings.connections.max_connections);

    if let Some(path) = sqlite_path(&settings.database_url) {
        check_sqlite_dir(path)?;
    }
    let (kek, kek_note) = load_kek(&settings.kek)?;
    let master =
        MasterKey::from_secret(&kek).map_err(|e| format!("CUSTOS_KEY_ENCRYPTION_KEY: {e}"))?;
    let db_note = match sqlite_file(&settings.database_url) {
        Some((path, may_create)) => private_sqlite_file(&path, may_create)?,
        None => None,
    };
    let store = custos_store::connect(&ConnectOptions {
        url: settings.database_url.clone(),
        max_connections: settings.database_max_connections,
    })
    .await
    .map_err(|e| {
        format!(
            "CUSTOS_DATABASE_URL: {} ({})",
            e,
            redact_url(&settings.database_url)
        )
    })?;

    let mut config = ServiceConfig::new(settings.issuer.clone());
    config.signing_alg = settings.signing_alg;
    config.key_activation_delay = settings.key_activation_delay;
    config.secret_rotation_grace = settings.secret_rotation_grace;
    config.admin_token = settings.admin_token.clone().map(Secret::new);
    config.allow_private_jwks_uri = settings.allow_private_urls;
    config.client_cache_ttl = Duration::from_secs(settings.client_cache_ttl);
    let fetcher = HttpJwksFetcher::new(settings.allow_private_urls)
        .map_err(|e| format!("HTTP client: {e}"))?;
    let (service, audit_writer) = Service::start(
        store.clone(),
        config,
        master,
        Arc::new(SystemClock),
        Arc::new(fetcher),
    )
    .await
    .map_err(|e| match e {
        custos_service::StartError::Key(k) => format!("CUSTOS_KEY_ENCRYPTION_KEY: {k}"),
        custos_service::StartError::Store(s) => format!("CUSTOS_DATABASE_URL: {s}"),
    })?;

    if let Some(note) = kek_note {
        note.log();
    }
    if let Some(note) = db_note {
        note.log();
    }
    if let Some(note) = limit_note {
        note.log();
    }
    warn_insecure(&settings);
    let maintenance = tokio::spawn(maintain(service.clone(), settings.key_refresh_interval));
    let app = custos_http::router(service.clone(), settings.trusted_proxies.clone())
        .into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        issuer = %settings.issuer,
        database = %redact_url(&settings.database_url),
        admin_api = settings.admin_token.is_some(),
        "custos listening on {scheme}://{local}"
    );
    let limits = settings.connections;
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let served = match tls {
        Some(tls) => {
            let mut server = axum_server::from_tcp_rustls(listener, tls).map(|tls| {
                conn::Limited::new(
                    tls.handshake_timeout(limits.header_read_timeout),
                    limits,
                    slots,
                )
            });
            conn::backstop(server.http_builder(), &limits);
            server.handle(handle).serve(app).await
        }
        None => {
            let mut server = axum_server::from_tcp(listener)
                .map(|plain| conn::Limited::new(plain, limits, slots));
            conn::backstop(server.http_builder(), &limits);
            server.handle(handle).serve(app).await
        }
    };
    maintenance.abort();
    let _ = maintenance.await;
    service.finish().await;
    drop(service);
    audit_writer.finish().await;
    store.close().await;
    tracing::info!("custos stopped");
    served.map_err(|e| format!("CUSTOS_LISTEN: server error: {e}"))
}

/// Reloads keys (rotations by other replicas) and prunes expired state.
async fn maintain(service: Arc<Service>, key_refresh_secs: u64) {
    let mut keys = tokio::time::interval(Duration::from_secs(key_refresh_secs));
    let mut prune = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = keys.tick() => {
                if let Err(e) = service.refresh().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
            _ = prune.tick() => {
                match service.prune().await {
                    Ok(n) if n > 0 => tracing::debug!(rows = n, "pruned expired state"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "pruning expired state failed"),
                }
            }
        }
    }
}

async fn shutdown_on_signal(handle: axum_server::Handle) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
    handle.graceful_shutdown(Some(Duration::from_secs(30)));
}

fn warn_insecure(settings: &Settings) {
    if settings.allow_private_urls {
        tracing::warn!("CUSTOS_ALLOW_PRIVATE_URLS is on: clients can make this server fetch from loopback and private addresses; use only in development");
    }
    let loopback = settings.listen.ip().is_loopback();
    if settings.tls.is_none() && !loopback {
        tracing::warn!("serving plain HTTP on a non-loopback address: put TLS in front of custos or set CUSTOS_TLS_CERT/CUSTOS_TLS_KEY");
    }
    if settings.issuer.starts_with("http://") && !loopback {
        tracing::warn!(issuer = %settings.issuer, "the issuer is an http URL; OAuth 2.1 requires https outside development");
    }
}

fn check_sqlite_dir(path: &str) -> Result<(), String> {
    let parent = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    match parent {
        Some(dir) if !dir.is_dir() => Err(format!(
            "CUSTOS_DATABASE_URL: directory {} does not exist",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Something about the key file worth telling the operator, said only
/// once the server has started (a failed start prints one line).
enum KekNote {
    Created(std::path::PathBuf),
    ReadableByOthers(std::path::PathBuf),
}

impl KekNote {
    fn log(&self) {
        match self {
            KekNote::Created(path) => tracing::info!(
                path = %path.display(),
                "created a key encryption key file; back it up with the database"
            ),
            KekNote::ReadableByOthers(path) => tracing::warn!(
                path = %path.display(),
                "the key file is readable by others; chmod 600 it"
            ),
        }
    }
}

/// The key encryption key: given, or read from (first start: created in)
/// a 0600 file beside the SQLite database.
fn load_kek(source: &KekSource) -> Result<(String, Option<KekNote>), String> {
    let path = match source {
        KekSource::Value(value) => return Ok((value.clone(), None)),
        KekSource::File(path) => path,
    };
    let setting = "CUSTOS_KEY_ENCRYPTION_KEY";
    if path.exists() {
        #[cfg(unix)]
        let note = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path)
                .is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
                .then(|| KekNote::ReadableByOthers(path.clone()))
        };
        #[cfg(not(unix))]
        let note = None;
        return std::fs::read_to_string(path)
            .map(|s| (s.trim().to_owned(), note))
            .map_err(|e| format!("{setting}: cannot read key file {}: {e}", path.display()));
    }
    let secret = MasterKey::generate_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{setting}: cannot create key file {}: {e}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{setting}: cannot write key file {}: {e}", path.display()))?;
    Ok((secret, Some(KekNote::Created(path.clone()))))
}

fn tls_config(tls: &Tls) -> Result<axum_server::tls_rustls::RustlsConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("CUSTOS_TLS_CERT: cannot read {}: {e}", tls.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "CUSTOS_TLS_CERT: no certificate in {}",
            tls.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        format!(
            "CUSTOS_TLS_KEY: cannot read a private key from {}: {e}",
            tls.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("CUSTOS_TLS_CERT: {e}"))?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            let cas = CertificateDer::pem_file_iter(ca)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("CUSTOS_TLS_CLIENT_CA: cannot read {}: {e}", ca.display()))?;
            for cert in cas {
                roots
                    .add(cert)
                    .map_err(|e| format!("CUSTOS_TLS_CLIENT_CA: {e}"))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("CUSTOS_TLS_CLIENT_CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!("CUSTOS_TLS_KEY: does not match CUSTOS_TLS_CERT or is unusable: {e}")
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(axum_server::tls_rustls::RustlsConfig::from_config(
        Arc::new(config),
    ))
}

/// Something about the database files worth telling the operator, said
/// once the server has started.
enum DbNote {
    Narrowed(Vec<std::path::PathBuf>),
    CannotNarrow(std::path::PathBuf, String),
}

impl DbNote {
    fn log(&self) {
        match self {
            DbNote::Narrowed(paths) => {
                for path in paths {
                    tracing::warn!(
                        path = %path.display(),
                        "the database file was readable by group or others; changed its mode to 0600"
                    );
                }
            }
            DbNote::CannotNarrow(path, error) => tracing::warn!(
                path = %path.display(),
                error = %error,
                "the database file is readable by group or others and its mode could not be changed; chmod 600 it"
            ),
        }
    }
}

/// The SQLite database holds secret and password hashes, so its file is
/// made private before the store opens it: created with mode 0600 when
/// missing (SQLite gives the -wal and -shm files the database file's mode),
/// narrowed to 0600 (with its -wal and -shm files) when group or others
/// may read it.
#[cfg(unix)]
fn private_sqlite_file(path: &Path, may_create: bool) -> Result<Option<DbNote>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(narrow_sqlite_files(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !may_create {
                return Ok(None);
            }
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(_) => Ok(None),
                // Another replica was quicker.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(narrow_sqlite_files(path))
                }
                Err(e) => Err(format!(
                    "CUSTOS_DATABASE_URL: cannot create {}: {e}",
                    path.display()
                )),
            }
        }
        Err(e) => Err(format!(
            "CUSTOS_DATABASE_URL: cannot read {}: {e}",
            path.display()
        )),
    }
}

#[cfg(not(unix))]
fn private_sqlite_file(_path: &Path, _may_create: bool) -> Result<Option<DbNote>, String> {
    Ok(None)
}

#[cfg(unix)]
fn narrow_sqlite_files(path: &Path) -> Option<DbNote> {
    use std::os::unix::fs::PermissionsExt;
    let mut narrowed = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 == 0 {
            continue;
        }
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => narrowed.push(file),
            Err(e) => return Some(DbNote::CannotNarrow(file, e.to_string())),
        }
    }
    (!narrowed.is_empty()).then_some(DbNote::Narrowed(narrowed))
}

/// The connection cap lowered to fit the open-file limit.
struct LimitNote {
    wanted: usize,
    cap: usize,
    open_files: String,
}

impl LimitNote {
    fn log(&self) {
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
fn connection_cap(wanted: usize) -> (usize, Option<LimitNote>) {
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
fn connection_cap(wanted: usize) -> (usize, Option<LimitNote>) {
    (wanted, None)
}

/// Slow and idle clients, and too many of them.
///
/// Every accepted connection first takes one of CUSTOS_MAX_CONNECTIONS
/// slots. Over the cap it waits for one (first come, first served) — at
/// most CUSTOS_HEADER_READ_TIMEOUT, then it is closed. Waiting rather than
/// refusing is what keeps `/healthz` (and real clients) answered while
/// slow clients fill the cap: each slot they hold frees within the
/// timeouts below, so a waiting request is served within about one header
/// read timeout, whereas a refused one fails for as long as the cap stays
/// full, which an attacker who reconnects can make forever. A waiting
/// connection costs one socket and nothing else.
///
/// Then two clocks, kept by the connection's I/O wrapper ([`Guarded`])
/// and its service wrapper ([`Counted`]), which counts requests in flight:
///
/// - header read: a request head must be complete within
///   CUSTOS_HEADER_READ_TIMEOUT of its first byte; for a connection's first
///   request, of the accept (so the wait for a slot and the TLS handshake
///   count);
/// - idle: a connection with no request in flight and no new byte is
///   closed after CUSTOS_IDLE_TIMEOUT.
///
/// While a request is in flight neither clock runs (the HTTP layer's
/// request timeout bounds it). Both apply to HTTP/1 and HTTP/2, plain and
/// over TLS (the wrapper sits below TLS). hyper's own HTTP/1
/// `header_read_timeout` cannot tell the two apart: its clock starts when a
/// connection begins waiting for a request head, at accept and again after
/// every response, so it bounds idle time and head reading together; it
/// does nothing for HTTP/2, nor for a client that sends no byte at all
/// (hyper-util's protocol detection waits for the first bytes before
/// hyper's HTTP/1 code, and its timer, get the connection). It is set to
/// twice their sum, a backstop that never fires first.
mod conn {
    use crate::config::ConnectionLimits;
    use axum_server::accept::Accept;
    use std::future::Future;
    use std::io;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};
    use std::task::{Context, Poll, Waker};
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
                            tokio::time::timeout_at(deadline, this.slots.clone().acquire_owned())
                                .await;
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
    struct State {
        phase: Mutex<Phase>,
    }

    struct Phase {
        in_flight: usize,
        /// A request head has begun (or, at accept, is awaited).
        reading_head: bool,
        /// When the current phase began.
        since: Instant,
        /// The connection task, woken when the last request in flight
        /// ends, so that it arms the idle clock.
        waker: Option<Waker>,
    }

    impl State {
        fn new(accepted: Instant) -> State {
            State {
                phase: Mutex::new(Phase {
                    in_flight: 0,
                    reading_head: true,
                    since: accepted,
                    waker: None,
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
            let waker = {
                let mut phase = self.lock();
                phase.in_flight = phase.in_flight.saturating_sub(1);
                if phase.in_flight > 0 {
                    return;
                }
                phase.reading_head = false;
                phase.since = Instant::now();
                phase.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }

        /// The running clock's deadline (and whether it is the header read
        /// clock); remembers `waker`.
        fn deadline(&self, limits: &ConnectionLimits, waker: &Waker) -> Option<(Instant, bool)> {
            let mut phase = self.lock();
            match &phase.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => phase.waker = Some(waker.clone()),
            }
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
            let Some((deadline, head)) = self.state.deadline(&self.limits, cx.waker()) else {
                return Poll::Pending;
            };
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            match timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let why = if head {
                        "header read timeout"
                    } else {
                        "idle timeout"
                    };
                    tracing::debug!("closing a connection: {why}");
                    Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, why))
                }
                Poll::Pending => Poll::Pending,
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
    struct InFlight(Arc<State>);

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
}
