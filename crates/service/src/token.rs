//! The token endpoint (RFC 6749 §3.2, §5). Every issuance passes the same
//! steps: authenticate the client → the grant decides (its handler from
//! the grant table) → bind → sign → audit. Every outcome is audited;
//! refusals of callers that did not authenticate are kept bounded.

use crate::audit::{bounded, Auditor, MAX_FIELD};
use crate::client_auth::{Authenticator, ClaimedClient, Presented, VerifiedClient};
use crate::crypto::random_token;
use crate::dpop::DpopChecker;
use crate::error::ServiceError;
use crate::grant::{GrantRequest, GrantTable, Issuance};
use crate::policy::{audit_note, Policies};
use crate::request::{ClientProof, RequestContext};
use crate::signing_keys::SigningKeys;
use custos_governance::{event_type, Outcome};
use custos_protocol::access_token::{AccessTokenClaims, ClientAuthClaim, Confirmation};
use custos_protocol::form::FormParams;
use custos_protocol::metadata::AuthMethod;
use custos_protocol::x509::thumbprint_s256;
use custos_protocol::OAuthError;
use serde::Serialize;
use std::sync::Arc;

/// A successful token response (RFC 6749 §5.1), with room for what later
/// grants return.
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a DPoP-bound token (RFC 9449 §5).
    pub token_type: &'static str,
    pub expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// RFC 8693 §2.2.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    /// RFC 9396 §7.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
    /// RFC 9449 §8: a fresh server nonce for the `DPoP-Nonce` header (not
    /// part of the body).
    #[serde(skip)]
    pub dpop_nonce: Option<String>,
}

pub struct TokenEndpoint {
    issuer: String,
    authenticator: Arc<Authenticator>,
    grants: GrantTable,
    dpop: Arc<DpopChecker>,
    keys: Arc<SigningKeys>,
    audit: Auditor,
    policies: Arc<Policies>,
}

impl TokenEndpoint {
    pub(crate) fn new(
        issuer: String,
        authenticator: Arc<Authenticator>,
        grants: GrantTable,
        dpop: Arc<DpopChecker>,
        keys: Arc<SigningKeys>,
        audit: Auditor,
        policies: Arc<Policies>,
    ) -> Self {
        TokenEndpoint {
            issuer,
            authenticator,
            grants,
            dpop,
            keys,
            audit,
            policies,
        }
    }

    /// Every `grant_type` the endpoint serves.
    pub fn grant_types(&self) -> Vec<&'static str> {
        self.grants.grant_types()
    }

    /// Handles a token request.
    pub async fn issue(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
    ) -> Result<TokenResponse, ServiceError> {
        let mut claimed = ClaimedClient::default();
        let mut authenticated = false;
        let mut policy = None;
        let result = self
            .issue_unaudited(
                form,
                proof,
                ctx,
                &mut claimed,
                &mut authenticated,
                &mut policy,
            )
            .await;
        let (outcome, kind) = match &result {
            Ok(_) => (Outcome::Success, event_type::TOKEN_ISSUED),
            Err(_) => (Outcome::Failure, event_type::TOKEN_REFUSED),
        };
        let mut event = self.audit.event(kind, outcome, ctx);
        event.client_id = claimed.client_id.clone();
        event.auth_method = claimed.auth_method.map(|m| m.as_str().to_owned());
        event.attested_id = claimed
            .attested_id
            .as_deref()
            .map(|a| bounded(a, MAX_FIELD));
        event.grant_type = form.get("grant_type").map(|g| bounded(g, 64));
        event.policy = policy.map(|p| bounded(&p, MAX_FIELD));
        match result {
            Ok((response, issuance)) => {
                event.scope = response.scope.clone();
                event.resource = Some(issuance.grant.audience.join(" "));
                event.task_id = issuance.task_id.clone();
                self.audit.record(event).await;
                Ok(response)
            }
            Err(error) => {
                event.scope = form.get("scope").map(|s| bounded(s, MAX_FIELD));
                event.resource = Some(form.all("resource").join(" "))
                    .filter(|r| !r.is_empty())
                    .map(|r| bounded(&r, MAX_FIELD));
                event.reason = Some(bounded(&error.to_string(), MAX_FIELD));
                if authenticated {
                    self.audit.record(event).await;
                } else {
                    self.audit.record_unauthenticated(event, &claimed).await;
                }
                Err(error)
            }
        }
    }

    async fn issue_unaudited(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
        claimed: &mut ClaimedClient,
        authenticated: &mut bool,
        policy: &mut Option<String>,
    ) -> Result<(TokenResponse, Issuance), ServiceError> {
        let handler = self.grants.handler(form.require("grant_type")?)?;
        let presented = Presented { form, proof };
        let (client, selected) = match handler.select_client(&presented, ctx, claimed).await? {
            Some(client) => (client, true),
            None => (
                self.authenticator
                    .authenticate(&presented, ctx, claimed)
                    .await?,
                false,
            ),
        };
        // A public client proves nothing, and a selected one nothing yet:
        // their refusals are bounded like those of callers that did not
        // authenticate.
        *authenticated = !client.is_public() && !selected;
        if !selected {
            claimed.auth_method = Some(client.method);
            claimed.attested_id = client.attestation.attested_id.clone();
        }
        // RFC 9449 §5: a DPoP proof binds the token, for every grant.
        let bound = self.dpop.check(proof, None, ctx).await?;
        if bound.is_none() && client.metadata().dpop_bound_access_tokens {
            return Err(OAuthError::invalid_dpop_proof(
                "this client is registered with dpop_bound_access_tokens: every token request needs a DPoP proof (RFC 9449 section 5.2)",
            )
            .into());
        }
        // RFC 8705 §3: the client certificate of the connection, if any,
        // binds the token, for every grant and every client.
        let certificate = proof
            .peer_certificates
            .first()
            .map(|leaf| thumbprint_s256(leaf));
        if certificate.is_none()
            && client
                .metadata()
                .attestation
                .tls_client_certificate_bound_access_tokens
        {
            return Err(OAuthError::invalid_request(
                "this client is registered with tls_client_certificate_bound_access_tokens: token requests must come over mutual TLS with its certificate (RFC 8705 section 3)",
            )
            .into());
        }
        let mut issuance = handler
            .issue(&GrantRequest {
                form,
                client: &client,
                proof,
                ctx,
                dpop: bound.as_ref(),
            })
            .await?;
        if let Some(key) = bound {
            let cnf = issuance.cnf.get_or_insert_with(Confirmation::default);
            cnf.jkt = Some(key.jkt);
        }
        if let Some(thumbprint) = certificate {
            let cnf = issuance.cnf.get_or_insert_with(Confirmation::default);
            cnf.x5t_s256 = Some(thumbprint);
        }
        if selected {
            // The grant verified what stood for client authentication.
            claimed.auth_method = Some(client.method);
            claimed.attested_id = issuance.attested_id.clone();
        }
        let decision = self.decide(&client, claimed, &issuance, form).await?;
        *policy = Some(audit_note(&decision));
        if !decision.allowed {
            return Err(OAuthError::new(
                custos_protocol::ErrorCode::UnauthorizedClient,
                format!("request-time policy: {}", decision.reason()),
            )
            .into());
        }
        // A client that arrived by its metadata document is stored once
        // something is issued to it (inventory, liveness, disabling).
        self.authenticator
            .clients()
            .remember_document_client(client.client_id())
            .await?;
        let response = self.sign(&client, &issuance, ctx)?;
        Ok((response, issuance))
    }

    /// Request-time policy (CONTRACT.md): one decision per resource the
    /// token is for; every one must allow.
    async fn decide(
        &self,
        client: &VerifiedClient,
        claimed: &ClaimedClient,
        issuance: &Issuance,
        form: &FormParams,
    ) -> Result<Arc<custos_policy::Decision>, ServiceError> {
        let facts = crate::policy::client_facts(
            client.client_id(),
            claimed.auth_method.unwrap_or(client.method),
            claimed.attested_id.as_deref(),
            client.metadata(),
        );
        let grant = form
            .get("grant_type")
            .and_then(custos_policy::Grant::from_grant_type)
            .ok_or_else(|| crate::error::internal("a grant the policy schema does not name"))?;
        let resources = self.policies.resources(&issuance.grant.audience).await?;
        let (delegation_depth, actors) = delegation_chain(issuance.act.as_ref());
        let context = custos_policy::ContextFacts {
            scopes: issuance.grant.scopes.clone(),
            sender_constrained: issuance.cnf.is_some(),
            delegation_depth,
            actors,
            subject: issuance.grant.subject.clone(),
        };
        Ok(self
            .policies
            .decide_all(&facts, grant, &resources, &context))
    }

    fn sign(
        &self,
        client: &VerifiedClient,
        issuance: &Issuance,
        ctx: &RequestContext,
    ) -> Result<TokenResponse, ServiceError> {
        let now = ctx.now();
        let mut claims = AccessTokenClaims::for_grant(
            &self.issuer,
            client.client_id(),
            &issuance.grant,
            now,
            random_token(16),
        );
        claims.cnf = issuance.cnf.clone();
        claims.act = issuance.act.clone();
        claims.authorization_details = issuance.authorization_details.clone();
        claims.grant_id = issuance.grant_id.clone();
        claims.task_id = issuance.task_id.clone();
        claims.ancestry = issuance.ancestry.clone();
        claims.ancestry_clients = issuance.ancestry_clients.clone();
        // The client's own attestation, else the identity the grant
        // verified (a federated token standing for the client: its method
        // is federated_jwt whatever else the client presented).
        let attested = match (&client.attestation.attested_id, &issuance.attested_id) {
            (Some(id), _) => Some((client.method, id)),
            (None, Some(id)) => Some((AuthMethod::FederatedJwt, id)),
            (None, None) => None,
        };
        claims.client_auth = attested.map(|(method, id)| ClientAuthClaim {
            method: method.as_str().to_owned(),
            attested_id: id.clone(),
        });
        let access_token = self.keys.sign(&claims, now)?;
        let dpop_bound = issuance.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
        Ok(TokenResponse {
            access_token,
            token_type: if dpop_bound { "DPoP" } else { "Bearer" },
            expires_in: issuance.grant.lifetime,
            scope: claims.scope,
            refresh_token: issuance.refresh_token.clone(),
            issued_token_type: issuance.issued_token_type,
            authorization_details: issuance.authorization_details.clone(),
            dpop_nonce: self.dpop.nonce(now),
        })
    }
}

/// The depth of an RFC 8693 `act` chain and the client ids (else
/// subjects) of its actors, newest first.
fn delegation_chain(act: Option<&serde_json::Value>) -> (i64, Vec<String>) {
    let mut depth = 0;
    let mut actors = Vec::new();
    let mut level = act;
    // The chain is custos's own (the exchange bounds it); the cap only
    // keeps a malformed value from looping long.
    while let Some(actor) = level.filter(|_| depth < 64) {
        depth += 1;
        if let Some(id) = actor
            .get("client_id")
            .or_else(|| actor.get("sub"))
            .and_then(|v| v.as_str())
        {
            if !actors.iter().any(|a| a == id) {
                actors.push(id.to_owned());
            }
        }
        level = actor.get("act");
    }
    (depth, actors)
}

#[cfg(test)]
mod tests {
    use super::delegation_chain;
    use serde_json::json;

    #[test]
    fn delegation_chain_counts_every_level_newest_first() {
        assert_eq!(delegation_chain(None), (0, vec![]));
        let act = json!({"sub": "tool-agent", "client_id": "sub-agent",
                         "act": {"sub": "agent", "act": {"sub": "x"}}});
        assert_eq!(
            delegation_chain(Some(&act)),
            (3, vec!["sub-agent".into(), "agent".into(), "x".into()])
        );
        assert_eq!(delegation_chain(Some(&json!({"act": {}}))), (2, vec![]));
    }
}
