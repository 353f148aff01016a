//! The client credentials grant (RFC 6749 §4.4): loads the resources the
//! request names, lets `protocol::grant::client_credentials` decide, and
//! persists nothing (no refresh token, §4.4.3).
//!
//! RFC 9396 §6: the request may carry `authorization_details` of the types
//! the client registered (§10.2, `authorization_details_types`: no person
//! consents here, so the registration is the limit, as `scope` is); each
//! entry's location joins the token's audience.

use super::{claim_of, load_resources, requested_details, GrantHandler, GrantRequest, Issuance};
use crate::detail_types::DetailTypes;
use crate::error::ServiceError;
use async_trait::async_trait;
use custos_protocol::grant::client_credentials::{decide, parse};
use custos_protocol::names::GRANT_CLIENT_CREDENTIALS;
use custos_protocol::rar::invalid_authorization_details;
use custos_store::Store;
use std::sync::Arc;

pub(crate) struct ClientCredentials {
    store: Arc<dyn Store>,
    /// `aud` when no resource is named.
    default_audience: String,
    detail_types: Arc<DetailTypes>,
}

impl ClientCredentials {
    pub fn new(store: Arc<dyn Store>, issuer: &str, detail_types: Arc<DetailTypes>) -> Self {
        ClientCredentials {
            store,
            default_audience: issuer.to_owned(),
            detail_types,
        }
    }
}

#[async_trait]
impl GrantHandler for ClientCredentials {
    fn grant_type(&self) -> &'static str {
        GRANT_CLIENT_CREDENTIALS
    }

    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError> {
        let mut parsed = parse(request.form)?;
        let details = match requested_details(request.form) {
            Some(raw) => {
                let details = self.detail_types.parse(raw).await?;
                let allowed = &request.client.metadata().authorization_details_types;
                if let Some(bad) = details.types().into_iter().find(|t| !allowed.contains(t)) {
                    return Err(invalid_authorization_details(format!(
                        "authorization details type \"{}\" is not among the client's registered authorization_details_types (RFC 9396 section 10.2)",
                        custos_protocol::error::echo(&bad, 64)
                    ))
                    .into());
                }
                for location in details.resources() {
                    if !parsed.resources.contains(&location) {
                        parsed.resources.push(location);
                    }
                }
                Some(details)
            }
            None => None,
        };
        let resources = load_resources(self.store.as_ref(), &parsed.resources).await?;
        let grant = decide(
            &parsed,
            request.client.client_id(),
            request.client.metadata(),
            &resources,
            &self.default_audience,
        )?;
        let mut issuance = Issuance::new(grant);
        issuance.authorization_details = details.as_ref().and_then(claim_of);
        Ok(issuance)
    }
}
