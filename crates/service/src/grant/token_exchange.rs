//! Token exchange (RFC 8693): verifies the subject token (and the actor
//! token) — an access token of this server that is still active (the
//! question introspection asks: not revoked, nor any token it was
//! exchanged from, its authorization not revoked, its client enabled), or
//! a JWT of a trusted OIDC issuer whose `aud` names this server — then
//! lets `protocol::grant::token_exchange` decide. Nothing is persisted: the
//! exchanged token carries its lineage (`grant_id`, `ancestry`), so
//! revoking what it came from reaches it without a write. The token
//! endpoint binds it to the request's DPoP key or client certificate, as
//! for every grant.

use super::{
    claim_of, load_resources, requested_details, ExchangeParts, GrantHandler, GrantRequest,
    Issuance,
};
use crate::detail_types::DetailTypes;
use crate::error::{internal, ServiceError};
use crate::token_state::is_live;
use async_trait::async_trait;
use custos_protocol::federation::{
    unverified_issuer_and_subject, verify_workload_jwt, TrustedIssuerConfig, WorkloadJwtRules,
};
use custos_protocol::grant::token_exchange::{
    check_client, decide, parse, ExchangeFacts, KeyProof, PresentedToken, TokenFacts,
};
use custos_protocol::names::GRANT_TOKEN_EXCHANGE;
use custos_protocol::rar::AuthorizationDetails;
use custos_protocol::x509::thumbprint_s256;
use custos_protocol::OAuthError;
use custos_store::Store;
use std::sync::Arc;

pub(crate) struct TokenExchange {
    store: Arc<dyn Store>,
    issuer: String,
    /// What a trusted issuer's token must name in `aud`: this server's
    /// issuer identifier or token endpoint.
    own_audiences: Vec<String>,
    parts: ExchangeParts,
    detail_types: Arc<DetailTypes>,
}

impl TokenExchange {
    pub fn new(
        store: Arc<dyn Store>,
        issuer: &str,
        parts: ExchangeParts,
        detail_types: Arc<DetailTypes>,
    ) -> Self {
        TokenExchange {
            store,
            issuer: issuer.to_owned(),
            own_audiences: vec![issuer.to_owned(), parts.token_endpoint.clone()],
            parts,
            detail_types,
        }
    }

    /// Verifies a subject or actor token (`which` names its parameter);
    /// any failure is `invalid_request` (RFC 8693 §2.2.2) saying why,
    /// never echoing the token.
    async fn verify(
        &self,
        which: &str,
        presented: &PresentedToken,
        now: i64,
    ) -> Result<TokenFacts, ServiceError> {
        let refuse = |reason: &str| {
            ServiceError::from(OAuthError::invalid_request(format!("{which}: {reason}")))
        };
        let token = presented.token.as_str();
        if let Some(claims) = self
            .parts
            .keys
            .verify_access_token(token, &self.issuer, now)
        {
            if !is_live(self.store.as_ref(), &claims).await? {
                return Err(refuse(
                    "the token is no longer active (it, a token it was exchanged from or its authorization was revoked, or its client is disabled)",
                ));
            }
            return Ok(TokenFacts::from_access_token(&claims));
        }
        let (iss, _) = unverified_issuer_and_subject(token).map_err(|reason| refuse(&reason))?;
        let iss = iss.ok_or_else(|| refuse("the token has no iss"))?;
        if iss == self.issuer {
            return Err(refuse(
                "not an active access token of this server (expired, or not signed by it)",
            ));
        }
        let config =
            self.parts.trusted.get(&iss).await?.ok_or_else(|| {
                refuse("the token's issuer is not a trusted issuer of this server")
            })?;
        let TrustedIssuerConfig::Oidc {
            max_token_lifetime,
            single_use,
            ..
        } = config.as_ref()
        else {
            return Err(refuse(
                "the token's issuer is a SPIFFE trust domain: only tokens of this server and of trusted OIDC issuers can be exchanged",
            ));
        };
        let rules = WorkloadJwtRules {
            issuer: Some(&iss),
            audiences: &self.own_audiences,
            only_these_audiences: false,
            now,
            leeway: self.parts.leeway,
            max_lifetime: i64::from(*max_token_lifetime),
        };
        let jwks = self
            .parts
            .trusted
            .oidc_keys_for(&config, token)
            .await
            .map_err(|reason| refuse(&reason))?;
        let verified =
            verify_workload_jwt(token, &jwks.keys, &rules).map_err(|reason| refuse(&reason))?;
        if *single_use {
            let jti = verified.jti.as_deref().ok_or_else(|| {
                refuse("this issuer's tokens are single-use and must carry a jti")
            })?;
            let first = self
                .store
                .record_jti_once(
                    &format!("federated:{iss}"),
                    jti,
                    verified.exp + self.parts.leeway,
                    now,
                )
                .await
                .map_err(internal)?;
            if !first {
                return Err(refuse(
                    "this issuer's tokens are single-use and this one was used",
                ));
            }
        }
        TokenFacts::from_trusted_jwt(&verified.claims).map_err(|reason| refuse(&reason))
    }
}

#[async_trait]
impl GrantHandler for TokenExchange {
    fn grant_type(&self) -> &'static str {
        GRANT_TOKEN_EXCHANGE
    }

    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError> {
        let parsed = parse(request.form)?;
        // Before any token is looked at: a client not registered for the
        // grant learns nothing about them.
        check_client(request.client.metadata())?;
        let now = request.ctx.now();
        let subject = self.verify("subject_token", &parsed.subject, now).await?;
        let actor = match &parsed.actor {
            Some(presented) => Some(self.verify("actor_token", presented, now).await?),
            None => None,
        };
        let resources = load_resources(self.store.as_ref(), &parsed.targets).await?;
        let certificate = request
            .proof
            .peer_certificates
            .first()
            .map(|leaf| thumbprint_s256(leaf));
        let exchange = decide(
            &parsed,
            &ExchangeFacts {
                issuer: &self.issuer,
                client_id: request.client.client_id(),
                client: request.client.metadata(),
                subject: &subject,
                actor: actor.as_ref(),
                resources: &resources,
                proof: KeyProof {
                    dpop_jkt: request.dpop.map(|key| key.jkt.as_str()),
                    certificate: certificate.as_deref(),
                },
                now,
                config: self.parts.config,
            },
        )?;
        let mut issuance = Issuance::new(exchange.grant);
        issuance.act = exchange.act;
        // RFC 9396 §6: the subject token's details, or fewer when the
        // request names some, and only for the resources the new token is
        // for.
        let granted = exchange
            .authorization_details
            .map(AuthorizationDetails::from_value)
            .transpose()
            .map_err(internal)?
            .unwrap_or_default();
        let details = self
            .detail_types
            .narrow(requested_details(request.form), &granted)
            .await?
            .restricted_to(&issuance.grant.audience);
        issuance.authorization_details = claim_of(&details);
        issuance.grant_id = exchange.grant_id;
        issuance.task_id = exchange.task_id;
        issuance.issued_token_type = Some(exchange.issued_token_type);
        issuance.ancestry = (!exchange.ancestry.is_empty()).then_some(exchange.ancestry);
        issuance.ancestry_clients =
            (!exchange.ancestry_clients.is_empty()).then_some(exchange.ancestry_clients);
        Ok(issuance)
    }
}
