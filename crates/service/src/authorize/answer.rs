//! The authorization endpoint's answers to the client: a code (once
//! request-time policy allows it) or an error, both as a 303 to the
//! registered redirect URI with `state` and `iss` (RFC 9207).

use super::browser::Session;
use super::{AuthorizationEndpoint, AuthorizeOutcome, Pending, CODE_LIFETIME};
use crate::audit::{bounded, MAX_FIELD};
use crate::crypto::{random_token, sha256};
use crate::error::internal;
use crate::request::RequestContext;
use custos_governance::{event_type, Outcome};
use custos_protocol::authorize::{error_redirect, success_redirect};
use custos_protocol::metadata::ClientMetadata;
use custos_protocol::OAuthError;
use custos_store::AuthorizationCodeRecord;
use std::sync::Arc;

impl AuthorizationEndpoint {
    /// A code bound to the client, redirect URI, PKCE challenge and DPoP
    /// key, stored hashed; a 303 to the client with it.
    pub(super) async fn issue_code(
        &self,
        pending: &Pending,
        client: &ClientMetadata,
        session: &Session,
        ctx: &RequestContext,
        remembered: bool,
    ) -> AuthorizeOutcome {
        // Request-time policy (CONTRACT.md): a denial is an access_denied
        // redirect; the token endpoint decides again at redemption.
        match self.policy_allows(pending, client, session).await {
            Ok(decision) if decision.allowed => {}
            Ok(decision) => {
                let error = OAuthError::new(
                    custos_protocol::ErrorCode::AccessDenied,
                    format!("request-time policy: {}", decision.reason()),
                );
                return self.refuse_to_client(pending, error, ctx).await;
            }
            Err(e) => {
                internal(e);
                return AuthorizeOutcome::Error(OAuthError::server_error("try again"));
            }
        }
        let code = random_token(32);
        let now = ctx.now();
        let record = AuthorizationCodeRecord {
            code_hash: sha256(&code),
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            subject: session.sub.clone(),
            scope: pending.scopes.join(" "),
            resources: pending.resources.clone(),
            dpop_jkt: pending.dpop_jkt.clone(),
            authorization_details: pending
                .authorization_details
                .as_ref()
                .map(|d| d.to_value().to_string()),
            created_at: now,
            expires_at: now + CODE_LIFETIME,
            consumed_at: None,
            grant_id: None,
        };
        // A client that arrived by its metadata document is stored once a
        // person has authorized it.
        if let Err(e) = self
            .clients
            .remember_document_client(&pending.client_id)
            .await
        {
            internal(e);
            return AuthorizeOutcome::Error(OAuthError::server_error("try again"));
        }
        if let Err(e) = self.store.insert_code(&record).await {
            internal(e);
            return AuthorizeOutcome::Error(OAuthError::server_error("try again"));
        }
        let mut event = self
            .audit
            .event(event_type::CODE_ISSUED, Outcome::Success, ctx);
        event.client_id = Some(pending.client_id.clone());
        event.scope = Some(record.scope.clone());
        event.resource = (!record.resources.is_empty()).then(|| record.resources.join(" "));
        event.reason = Some(format!(
            "user {}{}",
            bounded(&session.sub, 64),
            if remembered {
                "; consent remembered"
            } else {
                ""
            }
        ));
        self.audit.record(event).await;
        AuthorizeOutcome::Redirect(success_redirect(
            &pending.redirect_uri,
            &code,
            pending.state.as_deref(),
            &self.issuer,
        ))
    }

    /// The policy decision on issuing a code for `pending` (action
    /// `authorization_code`; the client as registered, since it has not
    /// authenticated here).
    async fn policy_allows(
        &self,
        pending: &Pending,
        client: &ClientMetadata,
        session: &Session,
    ) -> Result<Arc<custos_policy::Decision>, crate::error::ServiceError> {
        let facts = crate::policy::client_facts(
            &pending.client_id,
            client.token_endpoint_auth_method,
            None,
            client,
        );
        let targets = if pending.resources.is_empty() {
            std::slice::from_ref(&self.issuer)
        } else {
            pending.resources.as_slice()
        };
        let resources = self.policies.resources(targets).await?;
        let context = custos_policy::ContextFacts {
            scopes: pending.scopes.clone(),
            sender_constrained: pending.dpop_jkt.is_some(),
            delegation_depth: 0,
            actors: Vec::new(),
            subject: session.sub.clone(),
        };
        Ok(self.policies.decide_all(
            &facts,
            custos_policy::Grant::AuthorizationCode,
            &resources,
            &context,
        ))
    }

    pub(super) async fn refuse_to_client(
        &self,
        pending: &Pending,
        error: OAuthError,
        ctx: &RequestContext,
    ) -> AuthorizeOutcome {
        self.audit_refusal(Some(&pending.client_id), true, &error, ctx)
            .await;
        AuthorizeOutcome::Redirect(error_redirect(
            &pending.redirect_uri,
            &error,
            pending.state.as_deref(),
            &self.issuer,
        ))
    }

    /// `known`: the client was loaded (a made-up client_id is cut short and
    /// collapsed with the others).
    pub(super) async fn audit_refusal(
        &self,
        client_id: Option<&str>,
        known: bool,
        error: &OAuthError,
        ctx: &RequestContext,
    ) {
        let mut event = self
            .audit
            .event(event_type::AUTHORIZATION_REFUSED, Outcome::Failure, ctx);
        event.client_id = client_id.map(|c| bounded(c, 64));
        event.reason = Some(bounded(&error.to_string(), MAX_FIELD));
        let claimed = crate::client_auth::ClaimedClient {
            client_id: event.client_id.clone(),
            known,
            ..Default::default()
        };
        self.audit.record_unauthenticated(event, &claimed).await;
    }
}
