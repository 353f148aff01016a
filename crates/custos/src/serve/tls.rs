//! HTTPS: the rustls server configuration from CUSTOS_TLS_CERT,
//! CUSTOS_TLS_KEY and CUSTOS_TLS_CLIENT_CA, kept current while those files
//! change, and the client's certificate chain carried into every request.
//!
//! **Reloading.** Certificates rotate (SPIFFE X.509-SVIDs hourly), so
//! [`ServerTls::watch`] rereads the files every [`RELOAD_INTERVAL`] and
//! compares their SHA-256 with what it loaded (the content decides: an
//! equal-size rewrite within the file system's timestamp granularity would
//! fool a size-and-mtime check, and a `touch` changes nothing worth
//! reloading). A changed pair that loads (the certificate parses, the key
//! matches it) becomes the configuration of *new* handshakes; connections
//! already open keep the configuration they were accepted with, so nothing
//! is dropped. A change that does not load is tried once more at the next
//! check (a rotation caught between writing the certificate and the key),
//! then logged as a warning naming the setting at fault — never the files'
//! content — and the previous certificate stays until the files change
//! again. CUSTOS_TLS_CLIENT_CA is reloaded the same way, on its own: a
//! broken bundle does not hold back a certificate rotation.
//!
//! **Client certificates** are requested only with CUSTOS_TLS_CLIENT_CA,
//! never required, and accepted at the TLS layer whenever they parse
//! ([`verifier::AnyClientCertificate`]): which chain is acceptable depends
//! on the client's registered authentication method (CUSTOS_TLS_CLIENT_CA
//! for `tls_client_auth`, the registered `x5c` for
//! `self_signed_tls_client_auth`, RFC 8705 §2.2, a trust domain's bundle
//! for `spiffe_x509`), which only the application layer knows. The
//! handshake still proves the client holds the certificate's private key.
//! **So the chain in [`PeerCertificates`] is unverified**: whoever relies on
//! it checks it, against [`ClientCaRoots`] for `tls_client_auth`.

mod reload;
#[cfg(test)]
mod tests;
mod verifier;

use crate::config::Tls;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsConfig;
use custos_http::PeerCertificates;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::DistinguishedName;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_rustls::server::TlsStream;
use tower_http::add_extension::AddExtension;

/// How often `custos serve` looks at the TLS files for a change: a new
/// certificate is in use for new connections at most this long (twice, if
/// caught half-written) after it is written.
pub(super) const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The TLS side of `custos serve`: the configuration handshakes use, and
/// what it was loaded from, to reload it.
pub(super) struct ServerTls {
    config: RustlsConfig,
    roots: ClientCaRoots,
    watcher: reload::Watcher,
}

impl ServerTls {
    /// Reads and checks the files; `Err` is the one line to print, naming
    /// the setting at fault.
    pub(super) fn load(files: &Tls) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cert = reload::FileRead::of(&files.cert);
        let key = reload::FileRead::of(&files.key);
        let identity = load_identity(files, &cert.bytes, &key.bytes, &provider)?;
        let (client_ca, ca_seen) = match &files.client_ca {
            Some(path) => {
                let read = reload::FileRead::of(path);
                (Some(load_client_ca(path, &read.bytes)?), Some(read.seen))
            }
            None => (None, None),
        };
        let config = RustlsConfig::from_config(Arc::new(server_config(
            &provider,
            &identity,
            client_ca.as_ref(),
            None,
        )?));
        let roots = ClientCaRoots::default();
        if let Some(ca) = &client_ca {
            roots.replace(ca.ders.clone());
        }
        let watcher = reload::Watcher::new(
            files.clone(),
            provider,
            (identity, vec![cert.seen, key.seen]),
            client_ca.zip(ca_seen),
            config.clone(),
            roots.clone(),
        );
        Ok(ServerTls {
            config,
            roots,
            watcher,
        })
    }

    /// What the acceptor hands each new connection (it reads the current
    /// configuration at every accept).
    pub(super) fn rustls_config(&self) -> RustlsConfig {
        self.config.clone()
    }

    /// The CUSTOS_TLS_CLIENT_CA certificates as they stand after reloads
    /// (none without the setting), for the application layer's
    /// `tls_client_auth` chain checks.
    pub(crate) fn client_ca_roots(&self) -> ClientCaRoots {
        self.roots.clone()
    }

    /// Starts rereading the files every `every` (see the module
    /// documentation); abort the task to stop.
    pub(super) fn watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(reload::run(self.watcher.clone(), every))
    }
}

/// The DER of the CUSTOS_TLS_CLIENT_CA certificates currently loaded:
/// cheap to clone, and follows reloads of the file.
#[derive(Clone, Default)]
pub(crate) struct ClientCaRoots(Arc<RwLock<Arc<Vec<Vec<u8>>>>>);

impl ClientCaRoots {
    /// The certificates now (empty without CUSTOS_TLS_CLIENT_CA).
    pub(crate) fn current(&self) -> Arc<Vec<Vec<u8>>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, ders: Arc<Vec<Vec<u8>>>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = ders;
    }
}

/// How the service reads the client CAs (`tls_client_auth` chains).
impl custos_service::ClientCaRoots for ClientCaRoots {
    fn current(&self) -> Arc<Vec<Vec<u8>>> {
        ClientCaRoots::current(self)
    }
}

impl std::fmt::Debug for ClientCaRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClientCaRoots")
            .field(&self.current().len())
            .finish()
    }
}

/// A loaded CUSTOS_TLS_CLIENT_CA bundle.
#[derive(Clone)]
struct ClientCa {
    /// Named in the CertificateRequest, to help clients pick a certificate.
    subjects: Vec<DistinguishedName>,
    ders: Arc<Vec<Vec<u8>>>,
}

/// The server's certificate chain and key, checked to belong together.
fn load_identity(
    files: &Tls,
    cert: &io::Result<Vec<u8>>,
    key: &io::Result<Vec<u8>>,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let cert_path = files.cert.display();
    let certs =
        certificates(cert).map_err(|e| format!("CUSTOS_TLS_CERT: cannot read {cert_path}: {e}"))?;
    let Some(leaf) = certs.first() else {
        return Err(format!("CUSTOS_TLS_CERT: no certificate in {cert_path}"));
    };
    webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        format!("CUSTOS_TLS_CERT: the first certificate in {cert_path} does not parse: {e}")
    })?;
    let key = key
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|bytes| PrivateKeyDer::from_pem_slice(bytes).map_err(|e| e.to_string()))
        .map_err(|e| {
            format!(
                "CUSTOS_TLS_KEY: cannot read a private key from {}: {e}",
                files.key.display()
            )
        })?;
    CertifiedKey::from_der(certs, key, provider)
        .map(Arc::new)
        .map_err(|e| format!("CUSTOS_TLS_KEY: does not match CUSTOS_TLS_CERT or is unusable: {e}"))
}

fn load_client_ca(path: &Path, bytes: &io::Result<Vec<u8>>) -> Result<ClientCa, String> {
    let certs = certificates(bytes)
        .map_err(|e| format!("CUSTOS_TLS_CLIENT_CA: cannot read {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "CUSTOS_TLS_CLIENT_CA: no certificate in {}",
            path.display()
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("CUSTOS_TLS_CLIENT_CA: {}: {e}", path.display()))?;
    }
    Ok(ClientCa {
        subjects: roots.subjects(),
        ders: Arc::new(certs.iter().map(|c| c.as_ref().to_vec()).collect()),
    })
}

fn certificates(bytes: &io::Result<Vec<u8>>) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = bytes.as_ref().map_err(|e| e.to_string())?;
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// The configuration of new handshakes. `previous` lends its session
/// cache and ticketer, so a reload does not cost every client a full
/// handshake.
fn server_config(
    provider: &Arc<CryptoProvider>,
    identity: &Arc<CertifiedKey>,
    client_ca: Option<&ClientCa>,
    previous: Option<&rustls::ServerConfig>,
) -> Result<rustls::ServerConfig, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("CUSTOS_TLS_CERT: {e}"))?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(Arc::new(
            verifier::AnyClientCertificate::new(ca.subjects.clone(), provider),
        )),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.clone())));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if let Some(previous) = previous {
        config.session_storage = previous.session_storage.clone();
        config.ticketer = previous.ticketer.clone();
    }
    Ok(config)
}

/// Puts the TLS client's certificate chain, when it presented one, into
/// every request of the connection as [`custos_http::PeerCertificates`]
/// (leaf first, DER): how the chain reaches the client-proof seam (RFC
/// 8705). A connection without a client certificate carries an empty chain.
/// The chain is not verified (see the module documentation).
#[derive(Clone)]
pub(super) struct WithPeerCertificates<A>(pub A);

impl<A, I, S, T> Accept<I, S> for WithPeerCertificates<A>
where
    A: Accept<I, S, Stream = TlsStream<T>>,
    A::Future: Send + 'static,
    T: Send + 'static,
{
    type Stream = TlsStream<T>;
    type Service = AddExtension<A::Service, PeerCertificates>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepted = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepted.await?;
            let chain = stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
                .unwrap_or_default();
            Ok((stream, AddExtension::new(service, PeerCertificates(chain))))
        })
    }
}
