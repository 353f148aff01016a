//! The JWT bearer grant (RFC 7523 §2.1) for workload identity federation:
//! a token from a trusted issuer stands in for the client's credentials.
//! A request without client credentials is the MCP workload identity
//! federation profile: the token's `iss` and `sub` select the client whose
//! `federated_credentials` list them (`client_id`, if sent, chooses among
//! several). A request with client credentials authenticates as usual, and
//! the token must then be one of that client's credentials. Either way the
//! token is verified here, before anything is decided.

use super::{load_resources, GrantHandler, GrantRequest, Issuance};
use crate::attested_clients::AttestedClients;
use crate::client_auth::{Attestation, ClaimedClient, Presented, VerifiedClient};
use crate::clients::ClientDirectory;
use crate::error::ServiceError;
use crate::federation::FederatedVerifier;
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::federation::unverified_issuer_and_subject;
use custos_protocol::grant::id_jag::is_id_jag;
use custos_protocol::grant::jwt_bearer::{decide, parse};
use custos_protocol::metadata::AuthMethod;
use custos_protocol::names::GRANT_JWT_BEARER;
use custos_protocol::OAuthError;
use custos_store::Store;
use std::sync::Arc;

pub(crate) struct JwtBearer {
    store: Arc<dyn Store>,
    clients: Arc<ClientDirectory>,
    attested: Arc<AttestedClients>,
    verifier: Arc<FederatedVerifier>,
    default_audience: String,
}

impl JwtBearer {
    pub fn new(
        store: Arc<dyn Store>,
        clients: Arc<ClientDirectory>,
        attested: Arc<AttestedClients>,
        verifier: Arc<FederatedVerifier>,
        issuer: &str,
    ) -> Self {
        JwtBearer {
            store,
            clients,
            attested,
            verifier,
            default_audience: issuer.to_owned(),
        }
    }
}

impl JwtBearer {
    /// MCP enterprise-managed authorization: an enterprise identity
    /// provider's ID-JAG for one of its people, redeemed by the client it
    /// names.
    async fn redeem_id_jag(
        &self,
        request: &GrantRequest<'_>,
        parsed: &custos_protocol::grant::jwt_bearer::JwtBearerRequest,
    ) -> Result<Issuance, ServiceError> {
        let jag = self
            .verifier
            .verify_id_jag(&parsed.assertion, request.ctx.now())
            .await
            .map_err(|reason| OAuthError::invalid_grant(format!("assertion: {reason}")))?;
        let resources =
            load_resources(self.store.as_ref(), std::slice::from_ref(&jag.resource)).await?;
        let grant = custos_protocol::grant::id_jag::decide(
            parsed,
            &jag,
            request.client.client_id(),
            request.client.metadata(),
            &resources,
        )?;
        // Used once (always: it is a grant, not a standing credential).
        self.verifier
            .use_id_jag(&jag, request.ctx.now())
            .await
            .map_err(|reason| OAuthError::invalid_grant(format!("assertion: {reason}")))?;
        Ok(Issuance::new(grant))
    }
}

#[async_trait]
impl GrantHandler for JwtBearer {
    fn grant_type(&self) -> &'static str {
        GRANT_JWT_BEARER
    }

    async fn select_client(
        &self,
        presented: &Presented<'_>,
        ctx: &RequestContext,
        claimed: &mut ClaimedClient,
    ) -> Result<Option<VerifiedClient>, ServiceError> {
        let form = presented.form;
        let authenticates = presented.proof.authorization.is_some()
            || form.contains("client_secret")
            || form.contains("client_assertion")
            || !presented.proof.peer_certificates.is_empty();
        if authenticates {
            return Ok(None);
        }
        let parsed = parse(form)?;
        // An ID-JAG names the client it was issued to, which authenticates
        // as itself (a public client is refused by the decision).
        if is_id_jag(&parsed.assertion) {
            return Ok(None);
        }
        let (iss, sub) = unverified_issuer_and_subject(&parsed.assertion)
            .map_err(|reason| OAuthError::invalid_grant(format!("assertion: {reason}")))?;
        let iss = iss.ok_or_else(|| OAuthError::invalid_grant("the assertion has no iss"))?;
        // One answer for every way an unverified token can fail to select
        // a client: who is registered is not told to a token that does
        // not verify.
        let not_here = || {
            OAuthError::invalid_grant(
                "the assertion is not a valid token of any client registered for it",
            )
        };
        let index = self.attested.index().await?;
        let mut candidates = index.federated_clients(&iss, &sub);
        if let Some(wanted) = form.get("client_id") {
            candidates.retain(|c| *c == wanted);
        }
        let mut enabled = Vec::with_capacity(candidates.len());
        let mut credentials = Vec::new();
        for candidate in candidates {
            let Some(loaded) = self
                .clients
                .load(candidate)
                .await?
                .filter(|c| c.record.disabled_at.is_none())
            else {
                continue;
            };
            credentials.extend(
                loaded
                    .metadata
                    .attestation
                    .federated_credentials
                    .iter()
                    .filter(|c| c.issuer == iss && c.subject == sub)
                    .cloned(),
            );
            enabled.push(loaded);
        }
        if enabled.is_empty() {
            return Err(not_here().into());
        }
        self.verifier
            .verify(&parsed.assertion, &credentials, ctx.now(), false)
            .await
            .map_err(|_| not_here())?;
        if enabled.len() > 1 {
            return Err(OAuthError::invalid_grant(
                "several clients list the assertion's iss and sub: send client_id",
            )
            .into());
        }
        let loaded = enabled.remove(0);
        claimed.client_id = Some(loaded.record.client_id.clone());
        claimed.known = true;
        // Verified again by `issue` against this client's credentials
        // alone (and its single use recorded there), before anything is
        // decided.
        Ok(Some(VerifiedClient {
            loaded,
            method: AuthMethod::FederatedJwt,
            attestation: Attestation::default(),
        }))
    }

    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError> {
        let parsed = parse(request.form)?;
        if super::requested_details(request.form).is_some() {
            return Err(custos_protocol::rar::invalid_authorization_details(
                "authorization_details is not supported with the JWT bearer grant; use client credentials or token exchange",
            )
            .into());
        }
        if is_id_jag(&parsed.assertion) {
            return self.redeem_id_jag(request, &parsed).await;
        }
        let identity = self
            .verifier
            .verify(
                &parsed.assertion,
                &request.client.metadata().attestation.federated_credentials,
                request.ctx.now(),
                true,
            )
            .await
            .map_err(|reason| OAuthError::invalid_grant(format!("assertion: {reason}")))?;
        let resources = load_resources(self.store.as_ref(), &parsed.resources).await?;
        let grant = decide(
            &parsed,
            request.client.client_id(),
            request.client.metadata(),
            &resources,
            &self.default_audience,
        )?;
        let mut issuance = Issuance::new(grant);
        issuance.attested_id = Some(identity.attested_id());
        Ok(issuance)
    }
}
