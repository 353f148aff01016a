//! `POST/GET/DELETE /admin/policies` (CONTRACT.md "Request-time policy"):
//! Cedar policy records, validated against the schema when added, in force
//! on this replica at once and on every other within
//! [`crate::policy::POLICY_PROPAGATION_BOUND`].

use super::{conflict_as, parse_body, Admin};
use crate::error::{internal, ServiceError};
use crate::policy::{LoadedRecord, PolicySource, MAX_STORED_POLICIES};
use crate::request::RequestContext;
use custos_governance::{event_type, Outcome};
use custos_protocol::OAuthError;
use custos_store::PolicyRecord;
use serde::Deserialize;
use serde_json::{json, Value};

impl Admin {
    /// `POST /admin/policies`: `{"id", "cedar"}`.
    pub async fn create_policy(
        &self,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct NewPolicy {
            id: String,
            cedar: String,
        }
        let new: NewPolicy = parse_body(body)?;
        if let Some(source) = self.policies.is_builtin(&new.id) {
            return Err(ServiceError::conflict(format!(
                "'{}' is a {} policy; choose another id",
                new.id,
                source.as_str()
            )));
        }
        let summary = custos_policy::check_record(&new.id, &new.cedar)
            .map_err(|e| OAuthError::invalid_request(e.message().to_owned()))?;
        self.policies.reload().await?;
        let current = self.policies.current();
        if current.records.iter().any(|r| r.id == new.id) {
            return Err(ServiceError::conflict(
                "a policy with this id already exists",
            ));
        }
        if current.records.len() >= MAX_STORED_POLICIES {
            return Err(OAuthError::invalid_request(format!(
                "at most {MAX_STORED_POLICIES} policy records"
            ))
            .into());
        }
        // The record must also fit the set (no policy id clashes).
        self.policies
            .compile_with((&new.id, &new.cedar))
            .map_err(|e| OAuthError::invalid_request(e.message().to_owned()))?;
        let record = PolicyRecord {
            id: new.id,
            cedar: new.cedar,
            created_at: ctx.now(),
        };
        self.store
            .insert_policy(&record)
            .await
            .map_err(conflict_as("a policy with this id already exists"))?;
        self.policies.reload().await?;
        let mut event = self
            .audit
            .event(event_type::POLICY_CREATED, Outcome::Success, ctx);
        event.reason = Some(record.id.clone());
        self.audit.record(event).await;
        Ok(json!({
            "id": record.id,
            "source": PolicySource::Api.as_str(),
            "cedar": record.cedar,
            "created_at": record.created_at,
            "policies": summary.policies,
            "warnings": summary.warnings,
        }))
    }

    /// `GET /admin/policies`: the set in force — the default records, those
    /// from files, then those added here — and the schema they are
    /// validated against.
    pub async fn list_policies(&self) -> Result<Value, ServiceError> {
        self.policies.reload().await?;
        let current = self.policies.current();
        let summaries = current.set.records();
        let view = |record: &LoadedRecord| {
            let policies = summaries
                .iter()
                .find(|s| s.id == record.id)
                .map(|s| json!(s.policies))
                .unwrap_or_else(|| json!([]));
            json!({
                "id": record.id,
                "source": record.source.as_str(),
                "cedar": record.cedar,
                "created_at": (record.created_at > 0).then_some(record.created_at),
                "policies": policies,
            })
        };
        Ok(Value::Array(current.records.iter().map(view).collect()))
    }

    /// `DELETE /admin/policies/{id}`.
    pub async fn delete_policy(&self, id: &str, ctx: &RequestContext) -> Result<(), ServiceError> {
        if let Some(source) = self.policies.is_builtin(id) {
            return Err(OAuthError::invalid_request(format!(
                "'{id}' is a {} policy and cannot be deleted through the API{}",
                source.as_str(),
                match source {
                    PolicySource::File => "; remove it from CUSTOS_POLICIES",
                    _ => "; add a forbid to narrow it",
                }
            ))
            .into());
        }
        if !custos_policy::is_valid_id(id) {
            return Err(ServiceError::not_found("no such policy"));
        }
        let deleted = self.store.delete_policy(id).await.map_err(internal)?;
        if !deleted {
            return Err(ServiceError::not_found("no such policy"));
        }
        self.policies.reload().await?;
        let mut event = self
            .audit
            .event(event_type::POLICY_DELETED, Outcome::Success, ctx);
        event.reason = Some(id.to_owned());
        self.audit.record(event).await;
        Ok(())
    }
}
