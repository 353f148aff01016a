//! `none`: public clients (RFC 6749 §2.1) name themselves with `client_id`
//! and prove nothing; what they may do is limited by their grants (PKCE,
//! sender-constrained tokens), not here.

use super::{Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::error::ServiceError;
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::client_auth::Claim;
use custos_protocol::metadata::AuthMethod;

pub(crate) struct NoAuthentication;

#[async_trait]
impl ClientAuthMethod for NoAuthentication {
    fn method(&self) -> AuthMethod {
        AuthMethod::None
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
