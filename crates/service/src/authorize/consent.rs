//! Consent: remembered consent that covers a request, the person's
//! decision on the consent page, and what is remembered of it.

use super::browser::{csrf_token, seal, Session};
use super::{client_view, AuthorizationEndpoint, AuthorizeOutcome, ConsentPage, Pending};
use crate::audit::bounded;
use crate::error::internal;
use crate::request::RequestContext;
use custos_governance::{event_type, Outcome};
use custos_protocol::authorize::error_redirect;
use custos_protocol::form::FormParams;
use custos_protocol::metadata::ClientMetadata;
use custos_protocol::scope::parse_scope;
use custos_protocol::{ErrorCode, OAuthError};
use custos_store::ConsentRecord;

impl AuthorizationEndpoint {
    /// Logged in: consent already given covers the request → a code now;
    /// else the consent page.
    pub(super) async fn after_login(
        &self,
        pending: &Pending,
        client: &ClientMetadata,
        session: &Session,
        ctx: &RequestContext,
    ) -> AuthorizeOutcome {
        // Consent is remembered for scopes only: a request naming resources
        // (RFC 8707) or authorization details (RFC 9396) is always shown, so
        // a consent for one API or transaction never silently covers
        // another. Nor is it remembered for a client that describes itself
        // (a Client ID Metadata Document can change what it says —
        // redirect URIs, name — after the person consented).
        let remembered = is_rememberable(pending)
            && match self
                .store
                .consents_of(&session.sub, &pending.client_id)
                .await
            {
                Ok(consents) => consents.iter().any(|c| {
                    let granted = parse_scope(&c.scope).unwrap_or_default();
                    pending.scopes.iter().all(|s| granted.contains(s))
                }),
                Err(_) => false,
            };
        if remembered {
            return self.issue_code(pending, client, session, ctx, true).await;
        }
        AuthorizeOutcome::Consent(ConsentPage {
            client: client_view(&pending.client_id, client),
            username: session.sub.clone(),
            scopes: pending.scopes.clone(),
            resources: pending.resources.clone(),
            authorization_details: pending
                .authorization_details
                .as_ref()
                .map(custos_protocol::rar::describe)
                .unwrap_or_default(),
            pending: seal(&self.master, "pending", pending),
            csrf: csrf_token(&self.master, &pending.rid, Some(&session.sid)),
        })
    }

    pub(super) async fn decide_consent(
        &self,
        form: &FormParams,
        pending: &Pending,
        client: &ClientMetadata,
        session: &Session,
        ctx: &RequestContext,
    ) -> AuthorizeOutcome {
        match form.get("decision") {
            Some("allow") => {
                let consent = match self.remember_consent(pending, session, ctx).await {
                    Ok(consent) => consent,
                    Err(e) => {
                        internal(e);
                        return AuthorizeOutcome::Error(OAuthError::server_error("try again"));
                    }
                };
                let mut event =
                    self.audit
                        .event(event_type::CONSENT_GRANTED, Outcome::Success, ctx);
                event.client_id = Some(pending.client_id.clone());
                event.scope = Some(consent.scope.clone());
                event.reason = Some(format!("user {}", bounded(&session.sub, 64)));
                self.audit.record(event).await;
                self.issue_code(pending, client, session, ctx, false).await
            }
            Some("deny") => {
                let mut event = self
                    .audit
                    .event(event_type::CONSENT_DENIED, Outcome::Failure, ctx);
                event.client_id = Some(pending.client_id.clone());
                event.reason = Some(format!("user {}", bounded(&session.sub, 64)));
                self.audit.record(event).await;
                AuthorizeOutcome::Redirect(error_redirect(
                    &pending.redirect_uri,
                    &OAuthError::new(ErrorCode::AccessDenied, "the person denied the request"),
                    pending.state.as_deref(),
                    &self.issuer,
                ))
            }
            _ => AuthorizeOutcome::Error(OAuthError::invalid_request(
                "decision must be allow or deny",
            )),
        }
    }

    /// Remembers the consent (scopes only, and only as
    /// [`is_rememberable`] says): one row per person and client, the union
    /// of what they allowed, so what a person can add is bounded by the
    /// client's scopes.
    async fn remember_consent(
        &self,
        pending: &Pending,
        session: &Session,
        ctx: &RequestContext,
    ) -> Result<ConsentRecord, custos_store::StoreError> {
        let mut scopes = pending.scopes.clone();
        let consent = if is_rememberable(pending) {
            for earlier in self
                .store
                .consents_of(&session.sub, &pending.client_id)
                .await?
            {
                scopes.extend(parse_scope(&earlier.scope).unwrap_or_default());
            }
            let consent = ConsentRecord {
                username: session.sub.clone(),
                client_id: pending.client_id.clone(),
                scope: normalized_scope(&scopes),
                created_at: ctx.now(),
            };
            self.store
                .revoke_consents(&session.sub, &pending.client_id)
                .await?;
            self.store.record_consent(&consent).await?;
            consent
        } else {
            ConsentRecord {
                username: session.sub.clone(),
                client_id: pending.client_id.clone(),
                scope: normalized_scope(&scopes),
                created_at: ctx.now(),
            }
        };
        Ok(consent)
    }
}

/// Whether consent to `pending` may be remembered (and then stand for a
/// later request): scopes only, of a registered client.
fn is_rememberable(pending: &Pending) -> bool {
    pending.resources.is_empty()
        && pending.authorization_details.is_none()
        && !custos_protocol::cimd::is_document_client_id_or_http(&pending.client_id)
}

/// Scopes as a consent is remembered: sorted, deduplicated, space-separated.
fn normalized_scope(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}
