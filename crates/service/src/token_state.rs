//! Token state: introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Access tokens are self-contained JWTs; their state lives in two facts in
//! the store, shared by every replica: the revoked `jti`s (kept until the
//! token would have expired) and whether the client is still enabled. A
//! token exchanged from others (RFC 8693) names them in `ancestry`; it is
//! inactive once any of them is revoked.

use crate::audit::{bounded, Auditor, MAX_FIELD};
use crate::client_auth::{Authenticator, ClaimedClient, Presented, VerifiedClient};
use crate::error::{internal, ServiceError};
use crate::request::{ClientProof, RequestContext};
use crate::signing_keys::SigningKeys;
use custos_governance::{event_type, Outcome};
use custos_protocol::access_token::AccessTokenClaims;
use custos_protocol::form::FormParams;
use custos_protocol::introspection::IntrospectionResponse;
use custos_protocol::OAuthError;
use custos_store::{RevokedToken, Store};
use std::sync::Arc;

pub struct TokenState {
    issuer: String,
    authenticator: Arc<Authenticator>,
    store: Arc<dyn Store>,
    keys: Arc<SigningKeys>,
    audit: Auditor,
}

impl TokenState {
    pub(crate) fn new(
        issuer: String,
        authenticator: Arc<Authenticator>,
        store: Arc<dyn Store>,
        keys: Arc<SigningKeys>,
        audit: Auditor,
    ) -> Self {
        TokenState {
            issuer,
            authenticator,
            store,
            keys,
            audit,
        }
    }

    /// RFC 7662 §2.1: the caller must authenticate as a confidential client.
    pub async fn introspect(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
    ) -> Result<IntrospectionResponse, ServiceError> {
        let client = self
            .authenticate(form, proof, ctx, event_type::TOKEN_INTROSPECTED)
            .await?;
        if client.is_public() {
            return Err(
                OAuthError::invalid_client("introspection requires a confidential client").into(),
            );
        }
        let token = form.require("token")?;
        Ok(match self.active_claims(token, ctx).await? {
            Some(claims) => IntrospectionResponse::active(claims),
            None => IntrospectionResponse::inactive(),
        })
    }

    /// RFC 7009 §2.1: revokes an access token issued to the calling client.
    /// An invalid or unknown token is not an error (§2.2).
    pub async fn revoke(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let client = self
            .authenticate(form, proof, ctx, event_type::TOKEN_REVOKED)
            .await?;
        let token = form.require("token")?;
        let Some(claims) = self
            .keys
            .verify_access_token(token, &self.issuer, ctx.now())
        else {
            return self.revoke_refresh_token(token, &client, ctx).await;
        };
        if claims.client_id != client.client_id() {
            let error = OAuthError::unauthorized_client("the token was not issued to this client");
            let mut event = self
                .audit
                .event(event_type::TOKEN_REVOKED, Outcome::Failure, ctx);
            event.client_id = Some(client.client_id().to_owned());
            event.reason = Some(error.to_string());
            self.audit.record(event).await;
            return Err(error.into());
        }
        self.store
            .revoke_token(&RevokedToken {
                jti: claims.jti.clone(),
                client_id: claims.client_id.clone(),
                revoked_at: ctx.now(),
                expires_at: claims.exp,
            })
            .await
            .map_err(internal)?;
        let mut event = self
            .audit
            .event(event_type::TOKEN_REVOKED, Outcome::Success, ctx);
        event.client_id = Some(claims.client_id);
        event.scope = claims.scope;
        event.resource = Some(claims.aud.0.join(" "));
        self.audit.record(event).await;
        Ok(())
    }

    /// RFC 7009 §2.1: revoking a refresh token revokes the authorization it
    /// belongs to — its other refresh tokens and its access tokens. A token
    /// that is not one of the client's is no error (§2.2).
    async fn revoke_refresh_token(
        &self,
        token: &str,
        client: &VerifiedClient,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        if token.len() > 512 {
            return Ok(());
        }
        let found = self
            .store
            .get_refresh_token(&crate::refresh_token_value::refresh_token_key(token))
            .await
            .map_err(internal)?;
        let Some(found) = found.filter(|t| t.client_id == client.client_id()) else {
            return Ok(());
        };
        self.store
            .revoke_grant(
                &found.grant_id,
                ctx.now(),
                "refresh token revoked (RFC 7009)",
            )
            .await
            .map_err(internal)?;
        let mut event = self
            .audit
            .event(event_type::TOKEN_REVOKED, Outcome::Success, ctx);
        event.client_id = Some(found.client_id);
        event.scope = Some(found.scope);
        event.reason = Some("refresh token: its whole authorization is revoked".into());
        self.audit.record(event).await;
        Ok(())
    }

    /// The claims of `token` if it is one of ours, unexpired, not revoked,
    /// its authorization (if any) not revoked, and its client still enabled
    /// (read from the store, never a cache).
    async fn active_claims(
        &self,
        token: &str,
        ctx: &RequestContext,
    ) -> Result<Option<AccessTokenClaims>, ServiceError> {
        let Some(claims) = self
            .keys
            .verify_access_token(token, &self.issuer, ctx.now())
        else {
            return Ok(None);
        };
        let live = is_live(self.store.as_ref(), &claims).await?;
        Ok(live.then_some(claims))
    }

    /// Authenticates, auditing a refusal as `refusal_type`.
    async fn authenticate(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
        refusal_type: &str,
    ) -> Result<VerifiedClient, ServiceError> {
        let mut claimed = ClaimedClient::default();
        let presented = Presented { form, proof };
        match self
            .authenticator
            .authenticate(&presented, ctx, &mut claimed)
            .await
        {
            Ok(client) => Ok(client),
            Err(error) => {
                let mut event = self.audit.event(refusal_type, Outcome::Failure, ctx);
                event.client_id = claimed.client_id.clone();
                event.reason = Some(bounded(&error.to_string(), MAX_FIELD));
                self.audit.record_unauthenticated(event, &claimed).await;
                Err(error)
            }
        }
    }
}

/// Whether a verified access token of this server is still live: its `jti`
/// not revoked, nor any token it was exchanged from (`ancestry`, RFC 8693),
/// its authorization (if any) not revoked, and its client and the clients
/// of its ancestry (`ancestry_clients`) still enabled — one read from the
/// store, never a cache. Introspection and token exchange ask the same
/// question.
pub(crate) async fn is_live(
    store: &dyn Store,
    claims: &AccessTokenClaims,
) -> Result<bool, ServiceError> {
    let mut jtis: Vec<String> =
        Vec::with_capacity(1 + claims.ancestry.as_ref().map_or(0, Vec::len));
    jtis.push(claims.jti.clone());
    jtis.extend(claims.ancestry.iter().flatten().cloned());
    let mut clients: Vec<String> = vec![claims.client_id.clone()];
    clients.extend(claims.ancestry_clients.iter().flatten().cloned());
    if jtis.len() > custos_store::MAX_LINEAGE || clients.len() > custos_store::MAX_LINEAGE {
        // Longer than any exchange of this server makes.
        return Ok(false);
    }
    let revoked = store
        .is_lineage_revoked(&jtis, claims.grant_id.as_deref(), &clients)
        .await
        .map_err(internal)?;
    Ok(!revoked)
}
