//! Token state: introspection (RFC 7662) and revocation (RFC 7009).
//!
//! Access tokens are self-contained JWTs; their state lives in two facts in
//! the store, shared by every replica: the revoked `jti`s (kept until the
//! token would have expired) and whether the client is still enabled.

use crate::authenticate::AuthenticatedClient;
use crate::{internal, RequestContext, Service};
use custos_governance::{event_type, Outcome};
use custos_protocol::access_token::{verify_access_token, AccessTokenClaims};
use custos_protocol::discovery::paths;
use custos_protocol::form::FormParams;
use custos_protocol::introspection::IntrospectionResponse;
use custos_protocol::OAuthError;
use custos_store::RevokedToken;

impl Service {
    /// RFC 7662 §2.1: the caller must authenticate as a confidential client.
    pub async fn introspect(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<IntrospectionResponse, OAuthError> {
        let form = FormParams::parse(body)?;
        let endpoint = format!("{}{}", self.config.issuer, paths::INTROSPECTION);
        let mut claimed = None;
        let client = self
            .authenticate_for_token_state(authorization, &form, &endpoint, &mut claimed, ctx)
            .await?;
        if client.is_public() {
            return Err(OAuthError::invalid_client(
                "introspection requires a confidential client",
            ));
        }
        let token = form.require("token")?;
        Ok(match self.active_claims(token).await? {
            Some(claims) => IntrospectionResponse::active(claims),
            None => IntrospectionResponse::inactive(),
        })
    }

    /// RFC 7009 §2.1: revokes an access token issued to the calling client.
    /// An invalid or unknown token is not an error (§2.2).
    pub async fn revoke(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<(), OAuthError> {
        let form = FormParams::parse(body)?;
        let endpoint = format!("{}{}", self.config.issuer, paths::REVOCATION);
        let mut claimed = None;
        let client = self
            .authenticate_for_token_state(authorization, &form, &endpoint, &mut claimed, ctx)
            .await?;
        let token = form.require("token")?;
        let now = self.clock.now();
        let Some(claims) = verify_access_token(
            token,
            &self.keys.verification_keys(),
            &self.config.issuer,
            now,
        ) else {
            return Ok(());
        };
        if claims.client_id != client.client_id() {
            let error = OAuthError::unauthorized_client("the token was not issued to this client");
            let mut event = self.event(event_type::TOKEN_REVOKED, Outcome::Failure, ctx);
            event.client_id = Some(client.client_id().to_owned());
            event.reason = Some(error.to_string());
            self.record(event).await;
            return Err(error);
        }
        self.store
            .revoke_token(&RevokedToken {
                jti: claims.jti.clone(),
                client_id: claims.client_id.clone(),
                revoked_at: now,
                expires_at: claims.exp,
            })
            .await
            .map_err(internal)?;
        let mut event = self.event(event_type::TOKEN_REVOKED, Outcome::Success, ctx);
        event.client_id = Some(claims.client_id);
        event.scope = claims.scope;
        event.resource = Some(claims.aud.0.join(" "));
        self.record(event).await;
        Ok(())
    }

    /// The claims of `token` if it is one of ours, unexpired, not revoked,
    /// and its client is still enabled.
    async fn active_claims(&self, token: &str) -> Result<Option<AccessTokenClaims>, OAuthError> {
        let now = self.clock.now();
        let Some(claims) = verify_access_token(
            token,
            &self.keys.verification_keys(),
            &self.config.issuer,
            now,
        ) else {
            return Ok(None);
        };
        if self
            .store
            .is_token_revoked(&claims.jti)
            .await
            .map_err(internal)?
        {
            return Ok(None);
        }
        let client_enabled = self
            .store
            .get_client(&claims.client_id)
            .await
            .map_err(internal)?
            .is_some_and(|c| c.disabled_at.is_none());
        Ok(client_enabled.then_some(claims))
    }

    /// Authenticates, auditing a refusal.
    async fn authenticate_for_token_state(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        endpoint: &str,
        claimed: &mut Option<String>,
        ctx: &RequestContext,
    ) -> Result<AuthenticatedClient, OAuthError> {
        match self
            .authenticate_client(authorization, form, endpoint, claimed)
            .await
        {
            Ok(client) => Ok(client),
            Err(error) => {
                let kind = if endpoint.ends_with(paths::REVOCATION) {
                    event_type::TOKEN_REVOKED
                } else {
                    event_type::TOKEN_INTROSPECTED
                };
                let mut event = self.event(kind, Outcome::Failure, ctx);
                event.client_id = claimed.take();
                event.reason = Some(error.to_string());
                self.record(event).await;
                Err(error)
            }
        }
    }
}
