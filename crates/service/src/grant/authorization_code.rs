//! The authorization code grant (draft-ietf-oauth-v2-1 §4.1.3): redeems
//! the code once, atomically in the store, lets
//! `protocol::grant::authorization_code` decide, and starts the person's
//! authorization (a grant: the family of its refresh tokens).
//!
//! A second redemption of a code is refused and revokes everything the
//! first produced (RFC 9700 §4.14, OAuth 2.1 §4.1.3): the grant it started,
//! so its refresh tokens stop working and its access tokens are inactive.

use super::{claim_of, requested_details, GrantHandler, GrantRequest, Issuance};
use crate::audit::Auditor;
use crate::crypto::{random_token, sha256};
use crate::detail_types::{stored_details, DetailTypes};
use crate::error::{internal, ServiceError};
use crate::refresh_token_value::new_refresh_token;
use async_trait::async_trait;
use custos_governance::{event_type, Outcome};
use custos_protocol::grant::authorization_code::{decide, parse, CodeFacts};
use custos_protocol::names::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};
use custos_protocol::scope::parse_scope;
use custos_protocol::OAuthError;
use custos_store::{GrantRecord, Redemption, RefreshTokenRecord, Store};
use std::sync::Arc;

pub(crate) struct AuthorizationCode {
    store: Arc<dyn Store>,
    default_audience: String,
    audit: Auditor,
    detail_types: Arc<DetailTypes>,
}

impl AuthorizationCode {
    pub fn new(
        store: Arc<dyn Store>,
        issuer: &str,
        audit: Auditor,
        detail_types: Arc<DetailTypes>,
    ) -> Self {
        AuthorizationCode {
            store,
            default_audience: issuer.to_owned(),
            audit,
            detail_types,
        }
    }
}

#[async_trait]
impl GrantHandler for AuthorizationCode {
    fn grant_type(&self) -> &'static str {
        GRANT_AUTHORIZATION_CODE
    }

    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError> {
        let parsed = parse(request.form)?;
        let now = request.ctx.now();
        let grant_id = random_token(16);
        let redemption = self
            .store
            .redeem_code(
                &sha256(&parsed.code),
                request.client.client_id(),
                &grant_id,
                now,
            )
            .await
            .map_err(internal)?;
        let code = match redemption {
            Redemption::Redeemed(code) => code,
            Redemption::Unknown => {
                return Err(OAuthError::invalid_grant(
                    "the authorization code is unknown or has expired",
                )
                .into())
            }
            Redemption::AlreadyRedeemed(code) => {
                if let Some(first) = &code.grant_id {
                    self.store
                        .revoke_grant(first, now, "authorization code used twice")
                        .await
                        .map_err(internal)?;
                }
                let mut event =
                    self.audit
                        .event(event_type::CODE_REUSED, Outcome::Failure, request.ctx);
                event.client_id = Some(request.client.client_id().to_owned());
                event.reason = Some(
                    "authorization code redeemed twice; the tokens of its first redemption are revoked"
                        .into(),
                );
                self.audit.record(event).await;
                return Err(OAuthError::invalid_grant(
                    "the authorization code has already been used; the tokens issued with it are revoked (RFC 9700 section 4.14)",
                )
                .into());
            }
        };
        let proof_jkt = request.dpop.map(|b| b.jkt.as_str());
        let facts = CodeFacts {
            client_id: &code.client_id,
            redirect_uri: &code.redirect_uri,
            code_challenge: &code.code_challenge,
            subject: &code.subject,
            scopes: parse_scope(&code.scope).unwrap_or_default(),
            resources: code.resources.clone(),
            dpop_jkt: code.dpop_jkt.as_deref(),
            expires_at: code.expires_at,
        };
        let metadata = request.client.metadata();
        let grant = decide(
            &parsed,
            &facts,
            request.client.client_id(),
            metadata,
            proof_jkt,
            &self.default_audience,
            now,
        )?;
        // RFC 9396 §6.1: the token request may narrow what the person
        // authorized, never widen it.
        let granted = stored_details(code.authorization_details.as_deref())?.unwrap_or_default();
        let issued = self
            .detail_types
            .narrow(requested_details(request.form), &granted)
            .await?
            .restricted_to(&grant.audience);
        let family = GrantRecord {
            grant_id: grant_id.clone(),
            client_id: code.client_id.clone(),
            subject: code.subject.clone(),
            scope: grant.scopes.join(" "),
            resources: code.resources.clone(),
            // RFC 9449 §5: a public client's refresh tokens are bound to the
            // key of its DPoP proof; a confidential client's are not (it
            // authenticates, and may rotate its DPoP key).
            dpop_jkt: proof_jkt
                .filter(|_| request.client.is_public())
                .map(str::to_owned),
            created_at: now,
            expires_at: now + i64::from(metadata.refresh_token_absolute_lifetime),
            revoked_at: None,
            revoked_reason: None,
            authorization_details: code.authorization_details.clone(),
        };
        self.store.insert_grant(&family).await.map_err(internal)?;
        let mut issuance = Issuance::new(grant);
        issuance.grant_id = Some(grant_id.clone());
        issuance.authorization_details = claim_of(&issued);
        if metadata.allows_grant(GRANT_REFRESH_TOKEN) {
            let (token, key) = new_refresh_token();
            let record = RefreshTokenRecord {
                token_hash: key,
                grant_id,
                client_id: code.client_id,
                scope: family.scope,
                created_at: now,
                expires_at: (now + i64::from(metadata.refresh_token_idle_lifetime))
                    .min(family.expires_at),
                used_at: None,
            };
            self.store
                .insert_refresh_token(&record)
                .await
                .map_err(internal)?;
            issuance.refresh_token = Some(token);
        }
        Ok(issuance)
    }
}
