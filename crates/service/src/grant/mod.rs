//! The grant table: one handler per `grant_type`, dispatched once.
//!
//! Each handler is one file here (load what the grant needs, persist what
//! it creates) paired with one file in `protocol/src/grant/` (parse and
//! decide, pure). Discovery and registration derive their supported grant
//! lists from this table, so a grant is advertised exactly when it is
//! served. To add a grant: add `protocol/src/grant/<name>.rs`, add
//! `service/src/grant/<name>.rs` implementing [`GrantHandler`], and list it
//! in [`GrantTable::new`].

mod authorization_code;
mod client_credentials;
mod jwt_bearer;
mod refresh_token;
mod token_exchange;

use crate::attested_clients::AttestedClients;
use crate::audit::Auditor;
use crate::client_auth::{ClaimedClient, Presented, VerifiedClient};
use crate::clients::ClientDirectory;
use crate::detail_types::DetailTypes;
use crate::dpop::BoundKey;
use crate::error::ServiceError;
use crate::federation::FederatedVerifier;
use crate::request::{ClientProof, RequestContext};
use crate::signing_keys::SigningKeys;
use crate::trusted_issuers::TrustedIssuers;
use async_trait::async_trait;
use custos_protocol::access_token::Confirmation;
use custos_protocol::form::FormParams;
use custos_protocol::grant::token_exchange::TokenExchangeConfig;
use custos_protocol::grant::{unsupported_grant_type, Grant};
use custos_protocol::OAuthError;
use custos_store::Store;
use std::sync::Arc;

/// A token request as a grant handler sees it: the client has already
/// authenticated.
pub(crate) struct GrantRequest<'a> {
    pub form: &'a FormParams,
    pub client: &'a VerifiedClient,
    pub proof: &'a ClientProof,
    pub ctx: &'a RequestContext,
    /// The key of the request's verified DPoP proof, if it carried one.
    pub dpop: Option<&'a BoundKey>,
}

/// What a grant decided, and what the token endpoint is to issue with it.
#[derive(Debug, Clone)]
pub(crate) struct Issuance {
    pub grant: Grant,
    /// A refresh token to return alongside (grants that issue one).
    pub refresh_token: Option<String>,
    /// The key the access token is bound to (DPoP, mTLS).
    pub cnf: Option<Confirmation>,
    /// RFC 8693 delegation chain.
    pub act: Option<serde_json::Value>,
    /// RFC 9396 authorization details granted.
    pub authorization_details: Option<serde_json::Value>,
    /// The person's authorization (refresh-token family) the tokens belong to.
    pub grant_id: Option<String>,
    /// The workload identity the grant itself verified (a federated
    /// token's `iss#sub`), when the client did not authenticate otherwise.
    pub attested_id: Option<String>,
    /// RFC 8693 §2.2.1 `issued_token_type` (token exchange).
    pub issued_token_type: Option<&'static str>,
    /// custos: the task a per-task token is for (token exchange), for the
    /// token's `task_id` claim and the audit.
    pub task_id: Option<String>,
    /// custos: the tokens this one is exchanged from, nearest first
    /// (`ancestry`: revoking any of them makes this one inactive).
    pub ancestry: Option<Vec<String>>,
    /// custos: the clients of the tokens in `ancestry` (disabling any makes
    /// this one inactive).
    pub ancestry_clients: Option<Vec<String>>,
}

impl Issuance {
    pub fn new(grant: Grant) -> Self {
        Issuance {
            grant,
            refresh_token: None,
            cnf: None,
            act: None,
            authorization_details: None,
            grant_id: None,
            attested_id: None,
            issued_token_type: None,
            task_id: None,
            ancestry: None,
            ancestry_clients: None,
        }
    }
}

/// One grant type at the token endpoint.
#[async_trait]
pub(crate) trait GrantHandler: Send + Sync {
    /// The `grant_type` value it serves.
    fn grant_type(&self) -> &'static str;

    /// For a grant whose request may stand in for client authentication
    /// (the JWT bearer grant): the client the request selects when it
    /// presents no client credentials, to be verified by `issue` before it
    /// decides anything. `None`: authenticate the client as usual.
    async fn select_client(
        &self,
        _presented: &Presented<'_>,
        _ctx: &RequestContext,
        _claimed: &mut ClaimedClient,
    ) -> Result<Option<VerifiedClient>, ServiceError> {
        Ok(None)
    }

    /// Parses the grant's parameters, decides, and persists what the grant
    /// creates. Called only for an authenticated (or, after
    /// `select_client`, selected) client.
    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError>;
}

/// What the JWT bearer grant needs besides the store.
pub(crate) struct FederationParts {
    pub clients: Arc<ClientDirectory>,
    pub attested: Arc<AttestedClients>,
    pub verifier: Arc<FederatedVerifier>,
}

/// What the token exchange grant needs besides the store (which says
/// whether its own tokens are still active): this server's keys (to verify
/// its own tokens) and the trusted issuers (to verify theirs).
pub(crate) struct ExchangeParts {
    pub keys: Arc<SigningKeys>,
    pub trusted: Arc<TrustedIssuers>,
    /// This server's token endpoint: a trusted issuer's token may name it
    /// (or the issuer) as its audience.
    pub token_endpoint: String,
    /// Clock skew tolerated on trusted issuers' tokens, seconds.
    pub leeway: i64,
    pub config: TokenExchangeConfig,
}

pub(crate) struct GrantTable {
    handlers: Vec<Box<dyn GrantHandler>>,
}

impl GrantTable {
    pub fn new(
        store: Arc<dyn Store>,
        issuer: &str,
        audit: Auditor,
        federation: FederationParts,
        exchange: ExchangeParts,
        detail_types: Arc<DetailTypes>,
    ) -> Self {
        let handlers: Vec<Box<dyn GrantHandler>> = vec![
            Box::new(client_credentials::ClientCredentials::new(
                store.clone(),
                issuer,
                detail_types.clone(),
            )),
            Box::new(authorization_code::AuthorizationCode::new(
                store.clone(),
                issuer,
                audit.clone(),
                detail_types.clone(),
            )),
            Box::new(refresh_token::RefreshToken::new(
                store.clone(),
                issuer,
                audit,
                detail_types.clone(),
            )),
            Box::new(jwt_bearer::JwtBearer::new(
                store.clone(),
                federation.clients,
                federation.attested,
                federation.verifier,
                issuer,
            )),
            Box::new(token_exchange::TokenExchange::new(
                store,
                issuer,
                exchange,
                detail_types,
            )),
        ];
        GrantTable { handlers }
    }

    /// Every `grant_type` served, in table order.
    pub fn grant_types(&self) -> Vec<&'static str> {
        self.handlers.iter().map(|h| h.grant_type()).collect()
    }

    /// The handler for `grant_type`, or `unsupported_grant_type`.
    pub fn handler(&self, grant_type: &str) -> Result<&dyn GrantHandler, OAuthError> {
        self.handlers
            .iter()
            .find(|h| h.grant_type() == grant_type)
            .map(|h| h.as_ref())
            .ok_or_else(|| unsupported_grant_type(grant_type, &self.grant_types()))
    }
}

/// `authorization_details` of a token request, if any (RFC 9396 §6).
pub(crate) fn requested_details(form: &FormParams) -> Option<&str> {
    form.get("authorization_details")
}

/// Details as a token carries them: none when empty.
pub(crate) fn claim_of(
    details: &custos_protocol::rar::AuthorizationDetails,
) -> Option<serde_json::Value> {
    (!details.is_empty()).then(|| details.to_value())
}

/// The registered resources among `uris`; unknown ones are left out (the
/// grant's decision refuses them with `invalid_target`).
pub(crate) async fn load_resources(
    store: &dyn Store,
    uris: &[String],
) -> Result<Vec<custos_protocol::grant::KnownResource>, ServiceError> {
    let mut found = Vec::with_capacity(uris.len());
    for uri in uris {
        if let Some(record) = store
            .get_resource(uri)
            .await
            .map_err(crate::error::internal)?
        {
            found.push(custos_protocol::grant::KnownResource {
                uri: record.uri,
                scopes: record.scopes,
            });
        }
    }
    Ok(found)
}
