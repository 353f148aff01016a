//! The rustls server configuration from CUSTOS_TLS_CERT, CUSTOS_TLS_KEY and
//! CUSTOS_TLS_CLIENT_CA.

use crate::config::Tls;
use axum_server::accept::Accept;
use custos_http::PeerCertificates;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use tokio_rustls::server::TlsStream;
use tower_http::add_extension::AddExtension;

pub(super) fn tls_config(tls: &Tls) -> Result<axum_server::tls_rustls::RustlsConfig, String> {
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

/// Puts the TLS client's certificate chain, when it presented one, into
/// every request of the connection as [`custos_http::PeerCertificates`]
/// (leaf first, DER): how the chain reaches the client-proof seam (RFC
/// 8705). A connection without a client certificate carries an empty chain.
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum_server::accept::DefaultAcceptor;
    use axum_server::tls_rustls::RustlsAcceptor;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use tower::ServiceExt;

    struct Pki {
        dir: std::path::PathBuf,
        ca: rcgen::Certificate,
        ca_key: KeyPair,
        client: rcgen::Certificate,
        client_key: KeyPair,
    }

    fn pki() -> Pki {
        let dir = std::env::temp_dir().join(format!("custos_tls_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca, &ca_key)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["workload.example".to_string()])
            .unwrap()
            .signed_by(&client_key, &ca, &ca_key)
            .unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            dir,
            ca,
            ca_key,
            client,
            client_key,
        }
    }

    /// Accepts one connection through the acceptor under test while a
    /// client (with `identity`, if any) connects; returns the chain the
    /// request extension carried.
    async fn chain_seen(pki: &Pki, identity: bool) -> Option<Vec<Vec<u8>>> {
        let config = tls_config(&Tls {
            cert: pki.dir.join("server.pem"),
            key: pki.dir.join("server.key"),
            client_ca: Some(pki.dir.join("ca.pem")),
        })
        .unwrap();
        let acceptor = WithPeerCertificates(RustlsAcceptor::new(config).acceptor(DefaultAcceptor));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();

        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let client_config = if identity {
            let key =
                rustls::pki_types::PrivateKeyDer::try_from(pki.client_key.serialize_der()).unwrap();
            builder
                .with_client_auth_cert(vec![pki.client.der().clone()], key)
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let client = tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let mut tls = connector.connect(name, tcp).await.unwrap();
            // Hold the connection until the server has looked at it.
            let mut byte = [0u8; 1];
            let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut byte).await;
        });

        let (tcp, _) = listener.accept().await.unwrap();
        let probe = tower::service_fn(|request: axum::http::Request<()>| async move {
            Ok::<_, std::convert::Infallible>(axum::http::Response::new(
                request
                    .extensions()
                    .get::<PeerCertificates>()
                    .map(|p| p.0.clone()),
            ))
        });
        let (stream, service) = acceptor.accept(tcp, probe).await.unwrap();
        let seen =
            ServiceExt::<axum::http::Request<()>>::oneshot(service, axum::http::Request::new(()))
                .await
                .unwrap()
                .into_body();
        drop(stream);
        client.await.unwrap();
        let _ = &pki.ca_key;
        seen
    }

    #[tokio::test]
    async fn rfc8705_the_client_certificate_chain_reaches_every_request() {
        let pki = pki();
        let chain = chain_seen(&pki, true).await.expect("an extension");
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0], pki.client.der().to_vec(), "the leaf, DER");
        let none = chain_seen(&pki, false).await.expect("an extension");
        assert!(none.is_empty(), "no certificate, no chain");
    }
}
