//! The refresh token grant (RFC 6749 §6, draft-ietf-oauth-v2-1 §4.3,
//! RFC 9700 §4.14.2): every use rotates the token; a rotated-out token
//! presented again (past the client's optional grace window) revokes its
//! whole family — that family only — decided atomically by the store. A
//! refresh never widens scope or resources, and a family bound to a DPoP
//! key needs a proof with that key.

use super::{claim_of, requested_details, GrantHandler, GrantRequest, Issuance};
use crate::audit::Auditor;
use crate::detail_types::DetailTypes;
use crate::error::{internal, ServiceError};
use crate::refresh_token_value::{new_refresh_token, refresh_token_key};
use async_trait::async_trait;
use custos_governance::{event_type, Outcome};
use custos_protocol::grant::refresh_token::{decide, parse, FamilyFacts};
use custos_protocol::grant::Grant;
use custos_protocol::names::GRANT_REFRESH_TOKEN;
use custos_protocol::rar::AuthorizationDetails;
use custos_protocol::scope::parse_scope;
use custos_protocol::OAuthError;
use custos_store::{RefreshTokenRecord, Rotation, RotationCheck, Store};
use std::sync::Arc;
use std::sync::Mutex;

pub(crate) struct RefreshToken {
    store: Arc<dyn Store>,
    default_audience: String,
    audit: Auditor,
    detail_types: Arc<DetailTypes>,
}

impl RefreshToken {
    pub fn new(
        store: Arc<dyn Store>,
        issuer: &str,
        audit: Auditor,
        detail_types: Arc<DetailTypes>,
    ) -> Self {
        RefreshToken {
            store,
            default_audience: issuer.to_owned(),
            audit,
            detail_types,
        }
    }
}

/// What the decision taken inside the rotation said.
struct Decided {
    /// The grant, and the authorization details to issue (RFC 9396 §6:
    /// the family's, or fewer).
    decision: Result<(Grant, AuthorizationDetails), OAuthError>,
    /// The DPoP key the family was bound to, if any.
    family_jkt: Option<String>,
}

fn invalid() -> ServiceError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked").into()
}

#[async_trait]
impl GrantHandler for RefreshToken {
    fn grant_type(&self) -> &'static str {
        GRANT_REFRESH_TOKEN
    }

    async fn issue(&self, request: &GrantRequest<'_>) -> Result<Issuance, ServiceError> {
        let parsed = parse(request.form)?;
        let now = request.ctx.now();
        let client_id = request.client.client_id().to_owned();
        let hash = refresh_token_key(&parsed.refresh_token);
        let metadata = request.client.metadata();
        let asked_details = requested_details(request.form).map(str::to_owned);
        if let Some(raw) = &asked_details {
            // Types registered on another replica are known from here on.
            self.detail_types.parse(raw).await?;
        }
        // Decided inside the rotation, on the family as it is then: a
        // request that would widen the grant does not use the token up,
        // and no read is needed before rotating.
        let decided: Arc<Mutex<Option<Decided>>> = Arc::default();
        let check: RotationCheck = {
            let decided = decided.clone();
            let loaded = request.client.loaded.clone();
            let client_id = client_id.clone();
            let proof_jkt = request.dpop.map(|b| b.jkt.clone());
            let default_audience = self.default_audience.clone();
            let detail_types = self.detail_types.clone();
            Arc::new(move |_token, family| {
                let metadata = &loaded.metadata;
                // A client narrowed since the person consented gets no more
                // than it is registered for now.
                let registered = metadata.scopes();
                let facts = FamilyFacts {
                    client_id: &family.client_id,
                    subject: &family.subject,
                    scopes: parse_scope(&family.scope)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|s| registered.contains(s))
                        .collect(),
                    resources: family.resources.clone(),
                    dpop_jkt: family.dpop_jkt.as_deref(),
                };
                let decision = decide(
                    &parsed,
                    &facts,
                    &client_id,
                    metadata,
                    proof_jkt.as_deref(),
                    &default_audience,
                )
                .and_then(|grant| {
                    // Stored details that no longer read are refused, never
                    // dropped (a token must not say less than was checked).
                    let granted = match family.authorization_details.as_deref() {
                        None => AuthorizationDetails::default(),
                        Some(text) => serde_json::from_str(text)
                            .ok()
                            .and_then(|value| AuthorizationDetails::from_value(value).ok())
                            .ok_or_else(|| {
                                OAuthError::server_error(
                                    "the authorization details of this grant cannot be read",
                                )
                            })?,
                    };
                    let details = detail_types
                        .narrow_now(asked_details.as_deref(), &granted)?
                        .restricted_to(&grant.audience);
                    Ok((grant, details))
                });
                let accepted = decision.is_ok();
                *decided.lock().unwrap_or_else(|e| e.into_inner()) = Some(Decided {
                    decision,
                    family_jkt: family.dpop_jkt.clone(),
                });
                accepted
            })
        };
        let (next, next_key) = new_refresh_token();
        // The store puts it in the family, with the family's scope, living
        // no longer than the family.
        let record = RefreshTokenRecord {
            token_hash: next_key,
            grant_id: String::new(),
            client_id: client_id.clone(),
            scope: String::new(),
            created_at: now,
            expires_at: now + i64::from(metadata.refresh_token_idle_lifetime),
            used_at: None,
        };
        let rotation = self
            .store
            .rotate_refresh_token_if(
                &hash,
                &record,
                now,
                i64::from(metadata.refresh_token_reuse_grace),
                check,
            )
            .await
            .map_err(internal)?;
        let decided = decided.lock().unwrap_or_else(|e| e.into_inner()).take();
        match rotation {
            Rotation::Rotated { grant_id, .. } => {
                let Some(Decided {
                    decision: Ok((grant, details)),
                    family_jkt,
                }) = decided
                else {
                    return Err(internal("a rotation was accepted without a decision"));
                };
                // RFC 9449 §5 (MUST): a public client presenting a proof gets
                // refresh tokens bound to its key, from now on.
                if let (Some(key), None, true) =
                    (request.dpop, family_jkt, request.client.is_public())
                {
                    self.store
                        .bind_grant_key(&grant_id, &key.jkt)
                        .await
                        .map_err(internal)?;
                }
                let mut issuance = Issuance::new(grant);
                issuance.authorization_details = claim_of(&details);
                issuance.refresh_token = Some(next);
                issuance.grant_id = Some(grant_id);
                Ok(issuance)
            }
            Rotation::Declined => match decided {
                Some(Decided {
                    decision: Err(error),
                    ..
                }) => Err(error.into()),
                _ => Err(internal("a rotation was declined without a reason")),
            },
            Rotation::Reused { grant_id } => {
                let mut event = self.audit.event(
                    event_type::REFRESH_TOKEN_REUSED,
                    Outcome::Failure,
                    request.ctx,
                );
                event.client_id = Some(client_id.to_owned());
                event.reason = Some(format!(
                    "a rotated-out refresh token was presented again; its family {} is revoked",
                    &grant_id[..grant_id.len().min(8)]
                ));
                self.audit.record(event).await;
                Err(OAuthError::invalid_grant(
                    "the refresh token was already used; every token of this authorization is revoked (RFC 9700 section 4.14.2)",
                )
                .into())
            }
            Rotation::Expired | Rotation::Unknown => Err(invalid()),
        }
    }
}
