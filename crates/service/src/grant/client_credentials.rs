//! The client credentials grant (RFC 6749 §4.4): loads the resources the
//! request names, lets `protocol::grant::client_credentials` decide, and
//! persists nothing (no refresh token, §4.4.3).

use super::{load_resources, GrantHandler, GrantRequest, Issuance};
use crate::error::ServiceError;
use async_trait::async_trait;
use custos_protocol::grant::client_credentials::{decide, parse};
use custos_protocol::names::GRANT_CLIENT_CREDENTIALS;
use custos_store::Store;
use std::sync::Arc;

pub(crate) struct ClientCredentials {
    store: Arc<dyn Store>,
    /// `aud` when no resource is named.
    default_audience: String,
}

impl ClientCredentials {
    pub fn new(store: Arc<dyn Store>, issuer: &str) -> Self {
        ClientCredentials {
            store,
            default_audience: issuer.to_owned(),
        }
    }
}

#[async_trait]
impl GrantHandler for ClientCredentials {
    fn grant_type(&self) -> &'static str {
        GRANT_CLIENT_CREDENTIALS
    }

    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError> {
        let parsed = parse(request.form)?;
        let resources = load_resources(self.store.as_ref(), &parsed.resources).await?;
        let grant = decide(
            &parsed,
            request.client.client_id(),
            request.client.metadata(),
            &resources,
            &self.default_audience,
        )?;
        Ok(Issuance::new(grant))
    }
}
