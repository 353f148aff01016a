//! The TLS layer's client certificate check: any certificate that parses,
//! from a client that proves it holds the key. Whether the chain is
//! acceptable is the application layer's decision (see the parent module).

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use std::sync::Arc;

/// The longest chain a client may present, leaf included.
pub(super) const MAX_CHAIN: usize = 10;

/// Asks for a client certificate (naming CUSTOS_TLS_CLIENT_CA's subjects as
/// hints), never requires one, accepts any end-entity certificate that
/// parses as X.509 with a chain of at most [`MAX_CHAIN`] certificates that
/// parse, and checks the handshake's signature (CertificateVerify) with the
/// certificate's key, as rustls's own verifier does.
#[derive(Debug)]
pub(super) struct AnyClientCertificate {
    subjects: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCertificate {
    pub(super) fn new(subjects: Vec<DistinguishedName>, provider: &CryptoProvider) -> Self {
        AnyClientCertificate {
            subjects,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

#[derive(Debug)]
struct ChainTooLong(usize);

impl std::fmt::Display for ChainTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a client certificate chain of {} certificates (at most {MAX_CHAIN})",
            self.0
        )
    }
}

impl std::error::Error for ChainTooLong {}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let length = 1 + intermediates.len();
        if length > MAX_CHAIN {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(ChainTooLong(length))),
            )));
        }
        // Validity dates, key usage and issuer are the application layer's
        // to judge, per authentication method; here only the shape.
        for cert in std::iter::once(end_entity).chain(intermediates) {
            webpki::EndEntityCert::try_from(cert)
                .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
