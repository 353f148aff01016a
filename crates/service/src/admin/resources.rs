//! `POST/GET /admin/resources`: protected resources (RFC 8707 targets) with
//! their scopes, the tags policies see, and the RFC 9396 authorization
//! details types that belong to them.

use super::{parse_body, Admin};
use crate::error::{internal, ServiceError};
use crate::request::RequestContext;
use custos_governance::{event_type, Outcome};
use custos_protocol::grant::is_resource_indicator;
use custos_protocol::metadata::dedup;
use custos_protocol::rar::{validate_type_registration, CompiledType};
use custos_protocol::scope::is_scope_token;
use custos_protocol::OAuthError;
use custos_store::{DetailTypeRecord, ResourceRecord, StoreError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Most authorization details types one resource may register.
pub const MAX_DETAIL_TYPES_PER_RESOURCE: usize = 32;

/// An authorization details type as the admin API takes it: the resource
/// is the one it is registered with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDetailType {
    #[serde(rename = "type")]
    type_name: String,
    schema: Value,
}

impl Admin {
    /// `POST /admin/resources`: `{"uri", "scopes", "tags"?,
    /// "authorization_details_types"?: [{"type", "schema"}]}`.
    pub async fn create_resource(
        &self,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        #[derive(Deserialize)]
        struct NewResource {
            uri: String,
            #[serde(default)]
            scopes: Vec<String>,
            #[serde(default)]
            tags: Vec<String>,
            #[serde(default)]
            authorization_details_types: Vec<NewDetailType>,
        }
        let resource: NewResource = parse_body(body)?;
        let tags = custos_protocol::metadata::validate_tags(resource.tags)
            .map_err(|message| OAuthError::invalid_request(format!("tags: {message}")))?;
        if !is_resource_indicator(&resource.uri) {
            return Err(OAuthError::invalid_request(
                "uri must be an absolute URI without a fragment (RFC 8707 §2)",
            )
            .into());
        }
        if let Some(bad) = resource.scopes.iter().find(|s| !is_scope_token(s)) {
            return Err(OAuthError::invalid_request(format!(
                "'{}' is not a valid scope token (RFC 6749 §3.3)",
                bad.escape_debug()
            ))
            .into());
        }
        let compiled = compile_types(&resource.uri, resource.authorization_details_types)?;
        let scopes = dedup(resource.scopes);
        let now = ctx.now();
        let record = ResourceRecord {
            uri: resource.uri,
            scopes,
            tags,
            created_at: now,
        };
        let detail_types: Vec<DetailTypeRecord> = compiled
            .iter()
            .map(|t| DetailTypeRecord {
                type_name: t.type_name().to_owned(),
                resource: t.resource().to_owned(),
                schema_json: t.schema().to_string(),
            })
            .collect();
        match self.store.insert_resource(&record, &detail_types).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => {
                return Err(ServiceError::conflict(
                    if self
                        .store
                        .get_resource(&record.uri)
                        .await
                        .map_err(internal)?
                        .is_some()
                    {
                        "this resource is already registered"
                    } else {
                        "an authorization details type of this name is already registered (with another resource)"
                    },
                ))
            }
            Err(other) => return Err(internal(other)),
        }
        self.detail_types.add(compiled);
        let mut event = self
            .audit
            .event(event_type::RESOURCE_CREATED, Outcome::Success, ctx);
        event.resource = Some(record.uri.clone());
        event.scope = Some(record.scopes.join(" "));
        self.audit.record(event).await;
        Ok(resource_json(&record, &detail_types))
    }

    /// `GET /admin/resources`.
    pub async fn list_resources(&self) -> Result<Value, ServiceError> {
        let resources = self.store.list_resources().await.map_err(internal)?;
        let types = self.store.list_detail_types().await.map_err(internal)?;
        Ok(Value::Array(
            resources
                .iter()
                .map(|r| {
                    let own: Vec<DetailTypeRecord> = types
                        .iter()
                        .filter(|t| t.resource == r.uri)
                        .cloned()
                        .collect();
                    resource_json(r, &own)
                })
                .collect(),
        ))
    }
}

/// Checks each type (RFC 9396 §2: name, schema, no remote references) with
/// `resource` as its location; names unique within the request.
fn compile_types(
    resource: &str,
    types: Vec<NewDetailType>,
) -> Result<Vec<CompiledType>, ServiceError> {
    if types.len() > MAX_DETAIL_TYPES_PER_RESOURCE {
        return Err(OAuthError::invalid_request(format!(
            "authorization_details_types: at most {MAX_DETAIL_TYPES_PER_RESOURCE} types per resource"
        ))
        .into());
    }
    let mut compiled: Vec<CompiledType> = Vec::with_capacity(types.len());
    for new in types {
        if compiled.iter().any(|t| t.type_name() == new.type_name) {
            return Err(OAuthError::invalid_request(format!(
                "authorization_details_types: type '{}' is listed twice",
                custos_protocol::error::echo(&new.type_name, 64)
            ))
            .into());
        }
        let t = validate_type_registration(&new.type_name, resource, &new.schema).map_err(|e| {
            OAuthError::invalid_request(format!("authorization_details_types: {}", e.description))
        })?;
        compiled.push(t);
    }
    Ok(compiled)
}

fn resource_json(record: &ResourceRecord, detail_types: &[DetailTypeRecord]) -> Value {
    let types: Vec<Value> = detail_types
        .iter()
        .map(|t| {
            json!({
                "type": t.type_name,
                "schema": serde_json::from_str::<Value>(&t.schema_json).unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({
        "uri": record.uri,
        "scopes": record.scopes,
        "tags": record.tags,
        "authorization_details_types": types,
        "created_at": record.created_at,
    })
}
