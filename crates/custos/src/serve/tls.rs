//! The rustls server configuration from CUSTOS_TLS_CERT, CUSTOS_TLS_KEY and
//! CUSTOS_TLS_CLIENT_CA.

use crate::config::Tls;
use std::sync::Arc;

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
