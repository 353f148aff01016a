//! `POST/GET/DELETE /admin/trusted-issuers` (CONTRACT.md): external issuers
//! of workload identity.

use super::{conflict_as, parse_body, Admin};
use crate::crypto::random_token;
use crate::error::{internal, ServiceError};
use crate::request::RequestContext;
use crate::trusted_issuers::public_view;
use custos_governance::{event_type, Outcome};
use custos_protocol::federation::validate_trusted_issuer;
use custos_store::TrustedIssuerRecord;
use serde_json::Value;

impl Admin {
    /// `POST /admin/trusted-issuers`.
    pub async fn create_trusted_issuer(
        &self,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        let body: Value = parse_body(body)?;
        let config = validate_trusted_issuer(&body, self.allow_private_urls)?;
        let config_json = serde_json::to_string(&config).map_err(internal)?;
        let record = TrustedIssuerRecord {
            id: format!("ti_{}", random_token(12)),
            kind: config.kind().to_owned(),
            name: config.name().to_owned(),
            config_json,
            created_at: ctx.now(),
        };
        self.store
            .insert_trusted_issuer(&record)
            .await
            .map_err(conflict_as(
                "this issuer or trust domain is already trusted",
            ))?;
        self.trusted_issuers.invalidate();
        let mut event = self
            .audit
            .event(event_type::TRUSTED_ISSUER_CREATED, Outcome::Success, ctx);
        event.resource = Some(record.name.clone());
        event.reason = Some(format!("{} {}", record.kind, record.id));
        self.audit.record(event).await;
        Ok(public_view(&record))
    }

    /// `GET /admin/trusted-issuers`.
    pub async fn list_trusted_issuers(&self) -> Result<Value, ServiceError> {
        let issuers = self.store.list_trusted_issuers().await.map_err(internal)?;
        Ok(Value::Array(issuers.iter().map(public_view).collect()))
    }

    /// `DELETE /admin/trusted-issuers/{id}`: tokens of that issuer stop
    /// being accepted on every replica within the registry's cache time.
    pub async fn delete_trusted_issuer(
        &self,
        id: &str,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        if id.len() > 64 {
            return Err(ServiceError::not_found("no such trusted issuer"));
        }
        let deleted = self
            .store
            .delete_trusted_issuer(id)
            .await
            .map_err(internal)?;
        if !deleted {
            return Err(ServiceError::not_found("no such trusted issuer"));
        }
        self.trusted_issuers.invalidate();
        let mut event = self
            .audit
            .event(event_type::TRUSTED_ISSUER_DELETED, Outcome::Success, ctx);
        event.reason = Some(id.to_owned());
        self.audit.record(event).await;
        Ok(())
    }
}
