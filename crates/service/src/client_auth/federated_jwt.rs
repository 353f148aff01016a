//! `federated_jwt` (CONTRACT.md): the client presents a token its platform
//! issued — a Kubernetes service-account token, a CI OIDC token, a JWT-SVID
//! with `iss` — as `client_assertion` with the RFC 7523 type
//! `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and its
//! `client_id`; the token must come from a trusted issuer and match one of
//! the client's `federated_credentials` (see `crate::federation`). The
//! assertion type is `private_key_jwt`'s: the client's registration says
//! which of the two applies.

use super::{Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::error::ServiceError;
use crate::federation::FederatedVerifier;
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::client_auth::{assertion_claim, Claim};
use custos_protocol::metadata::AuthMethod;
use custos_protocol::names::CLIENT_ASSERTION_TYPE_JWT_BEARER;
use custos_protocol::OAuthError;
use std::sync::Arc;

pub(crate) struct FederatedJwt {
    verifier: Arc<FederatedVerifier>,
}

impl FederatedJwt {
    pub fn new(verifier: Arc<FederatedVerifier>) -> Self {
        FederatedJwt { verifier }
    }
}

#[async_trait]
impl ClientAuthMethod for FederatedJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::FederatedJwt
    }

    fn presented_as(&self) -> AuthMethod {
        AuthMethod::PrivateKeyJwt
    }

    fn claim(&self, request: &Presented<'_>) -> Result<Option<Claim>, OAuthError> {
        assertion_claim(request.form, CLIENT_ASSERTION_TYPE_JWT_BEARER)
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        claim: &Claim,
        _request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let token = claim
            .credential
            .as_ref()
            .ok_or_else(super::failed)?
            .expose();
        let identity = self
            .verifier
            .verify(
                token,
                &client.metadata.attestation.federated_credentials,
                ctx.now(),
                true,
            )
            .await
            .map_err(|reason| OAuthError::invalid_client(format!("federated_jwt: {reason}")))?;
        Ok(Attestation {
            attested_id: Some(identity.attested_id()),
            certificate_thumbprint: None,
        })
    }
}
