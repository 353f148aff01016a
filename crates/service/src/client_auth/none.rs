//! `none`: public clients (RFC 6749 §2.1) name themselves with `client_id`
//! and prove nothing; what they may do is limited by their grants (PKCE,
//! sender-constrained tokens), not here.

use super::{Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::error::ServiceError;
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::client_auth::{public_claim, Claim};
use custos_protocol::metadata::AuthMethod;
use custos_protocol::OAuthError;

pub(crate) struct NoAuthentication;

#[async_trait]
impl ClientAuthMethod for NoAuthentication {
    fn method(&self) -> AuthMethod {
        AuthMethod::None
    }

    fn claim(&self, request: &Presented<'_>) -> Result<Option<Claim>, OAuthError> {
        Ok(public_claim(request.form))
    }

    async fn verify(
        &self,
        _client: &LoadedClient,
        _claim: &Claim,
        _request: &Presented<'_>,
        _ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        Ok(Attestation::default())
    }
}
