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
    let served = match tls {
        Some(tls) => {
            axum_server::from_tcp_rustls(listener, tls)
                .handle(handle)
                .serve(app)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .handle(handle)
                .serve(app)
                .await
        }
    };
    maintenance.abort();
    let _ = maintenance.await;
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
                if let Err(e) = service.refresh_keys().await {
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
