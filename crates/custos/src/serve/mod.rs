//! `custos serve`: the composition root. Settings → store → service →
//! router → listener, then a graceful shutdown on SIGTERM/SIGINT that lets
//! in-flight requests finish, writes every queued audit event and closes
//! the store.

mod connections;
mod files;
mod tls;

use connections::{connection_cap, Limited};
use files::{check_sqlite_dir, load_kek, private_sqlite_file};
use tls::{ServerTls, WithPeerCertificates};

use crate::config::{default_issuer, sqlite_file, sqlite_path, Settings};
use crate::jwks_fetch::HttpJwksFetcher;
use custos_service::clock::SystemClock;
use custos_service::crypto::MasterKey;
use custos_service::{Secret, Service, ServiceConfig};
use custos_store::{redact_url, ConnectOptions};
use std::net::SocketAddr;
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
    let tls = settings.tls.as_ref().map(ServerTls::load).transpose()?;
    // Certificates rotate: new handshakes follow the files (tls.rs).
    let tls_reload = tls.as_ref().map(|tls| tls.watch(tls::RELOAD_INTERVAL));
    // CUSTOS_TLS_CLIENT_CA as it stands after reloads, for the service's
    // tls_client_auth chain checks (to be wired into the service).
    // Mutual TLS (RFC 8705) where the TLS layer asks for client certificates.
    let mtls = settings
        .tls
        .as_ref()
        .filter(|t| t.client_ca.is_some())
        .and(tls.as_ref())
        .map(|tls| custos_service::MtlsConfig {
            client_ca: Arc::new(tls.client_ca_roots()),
        });
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
    config.audit_retention_days = settings.audit_retention_days;
    config.policy_files = settings.policy_files.clone();
    config.max_delegation_depth = settings.max_delegation_depth;
    config.policy_default_permit = settings.policy_default_permit;
    config.dpop_require_nonce = settings.dpop_nonce;
    config.require_par = settings.require_par;
    config.mtls = mtls;
    config.issuer_keys = Some(custos_service::IssuerKeys(Arc::new(
        crate::issuer_fetch::HttpIssuerKeySource::new(settings.allow_private_urls)
            .map_err(|e| format!("HTTP client: {e}"))?,
    )));
    if let Some(hosts) = &settings.client_id_metadata_documents {
        config.client_documents = Some(custos_service::ClientDocumentsConfig {
            fetcher: Arc::new(
                crate::document_fetch::HttpDocumentFetcher::new(settings.allow_private_urls)
                    .map_err(|e| format!("HTTP client: {e}"))?,
            ),
            hosts: hosts.clone(),
        });
    }
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
        custos_service::StartError::Policy(p) => p,
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
            let mut server =
                axum_server::from_tcp_rustls(listener, tls.rustls_config()).map(|tls| {
                    Limited::new(
                        WithPeerCertificates(tls.handshake_timeout(limits.header_read_timeout)),
                        limits,
                        slots,
                    )
                });
            connections::backstop(server.http_builder(), &limits);
            server.handle(handle).serve(app).await
        }
        None => {
            let mut server =
                axum_server::from_tcp(listener).map(|plain| Limited::new(plain, limits, slots));
            connections::backstop(server.http_builder(), &limits);
            server.handle(handle).serve(app).await
        }
    };
    maintenance.abort();
    let _ = maintenance.await;
    if let Some(reload) = tls_reload {
        reload.abort();
    }
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
