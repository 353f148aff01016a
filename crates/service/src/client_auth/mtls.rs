//! Mutual-TLS client authentication (RFC 8705 §2): the client's proof is
//! the certificate whose private key it used in the TLS handshake (the TLS
//! layer checked the handshake signature and hands the chain to every
//! request); the request carries only `client_id`.
//!
//! - `tls_client_auth` (§2.1, PKI method): the chain must validate to one
//!   of the server's client CAs (CUSTOS_TLS_CLIENT_CA) and the leaf carry
//!   the one subject value the client registered.
//! - `self_signed_tls_client_auth` (§2.2): the leaf must be one of the
//!   certificates the client registered as `x5c` in its `jwks`.

use super::{Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::error::ServiceError;
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::client_auth::Claim;
use custos_protocol::metadata::AuthMethod;
use custos_protocol::x509::{
    self_signed_matches, thumbprint_s256, verify_client_chain, LeafFacts, TlsClientAuthExpectation,
};
use custos_protocol::OAuthError;
use std::sync::Arc;

/// The certificates of CUSTOS_TLS_CLIENT_CA as they are now (the TLS layer
/// reloads the file when it changes). DER, in file order.
pub trait ClientCaRoots: Send + Sync {
    fn current(&self) -> Arc<Vec<Vec<u8>>>;
}

/// No client CA: mTLS client authentication is off.
pub struct NoClientCa;

impl ClientCaRoots for NoClientCa {
    fn current(&self) -> Arc<Vec<Vec<u8>>> {
        Arc::new(Vec::new())
    }
}

/// The presented leaf, or the error for a request without one.
pub(super) fn presented_leaf<'a>(
    request: &'a Presented<'_>,
    method: AuthMethod,
) -> Result<&'a [u8], OAuthError> {
    request
        .proof
        .peer_certificates
        .first()
        .map(Vec::as_slice)
        .ok_or_else(|| {
            OAuthError::invalid_client(format!(
                "{} needs the client's certificate on the TLS connection (RFC 8705 §2); none was presented",
                method.as_str()
            ))
        })
}

pub(crate) struct TlsClientAuth {
    roots: Arc<dyn ClientCaRoots>,
}

impl TlsClientAuth {
    pub fn new(roots: Arc<dyn ClientCaRoots>) -> Self {
        TlsClientAuth { roots }
    }
}

#[async_trait]
impl ClientAuthMethod for TlsClientAuth {
    fn method(&self) -> AuthMethod {
        AuthMethod::TlsClientAuth
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        _claim: &Claim,
        request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let leaf = presented_leaf(request, self.method())?;
        let roots = self.roots.current();
        if let Err(reason) =
            verify_client_chain(&request.proof.peer_certificates, &roots, ctx.now())
        {
            tracing::info!(client_id = %client.record.client_id, %reason, "tls_client_auth refused");
            return Err(OAuthError::invalid_client(format!(
                "tls_client_auth: {reason} (RFC 8705 §2.1)"
            ))
            .into());
        }
        let facts = LeafFacts::parse(leaf)
            .map_err(|e| OAuthError::invalid_client(format!("tls_client_auth: {e}")))?;
        let expected = client
            .metadata
            .attestation
            .tls_expectation()
            .ok_or_else(|| {
                OAuthError::invalid_client(
                    "this client registered no tls_client_auth subject value",
                )
            })?;
        if !expected.matches(&facts) {
            return Err(OAuthError::invalid_client(
                "tls_client_auth: the client certificate does not carry the registered subject value (RFC 8705 §2.1.2)",
            )
            .into());
        }
        let attested_id = match expected {
            TlsClientAuthExpectation::SubjectDn(_) => facts.subject_dn.clone(),
            TlsClientAuthExpectation::SanDns(v)
            | TlsClientAuthExpectation::SanUri(v)
            | TlsClientAuthExpectation::SanIp(v)
            | TlsClientAuthExpectation::SanEmail(v) => v,
        };
        Ok(Attestation {
            attested_id: Some(attested_id),
            certificate_thumbprint: Some(facts.thumbprint_s256),
        })
    }
}

pub(crate) struct SelfSignedTlsClientAuth;

#[async_trait]
impl ClientAuthMethod for SelfSignedTlsClientAuth {
    fn method(&self) -> AuthMethod {
        AuthMethod::SelfSignedTlsClientAuth
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        _claim: &Claim,
        request: &Presented<'_>,
        _ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let leaf = presented_leaf(request, self.method())?;
        let registered = client
            .metadata
            .jwks
            .as_ref()
            .is_some_and(|jwks| self_signed_matches(leaf, jwks));
        if !registered {
            return Err(OAuthError::invalid_client(
                "self_signed_tls_client_auth: the client certificate is not one the client registered in its jwks (RFC 8705 §2.2)",
            )
            .into());
        }
        let thumbprint = thumbprint_s256(leaf);
        Ok(Attestation {
            attested_id: Some(format!("x5t#S256:{thumbprint}")),
            certificate_thumbprint: Some(thumbprint),
        })
    }
}
