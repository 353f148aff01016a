//! Authorization details type registrations (RFC 9396 §2; the type's
//! definition is up to the API, here a JSON Schema an operator registers).
//!
//! Schemas are JSON Schema draft 2020-12, compiled by the `jsonschema`
//! crate, built without its `resolve-http` and `resolve-file` features and
//! given a retriever that refuses everything besides: a registered schema
//! can never make this crate fetch anything. References must stay inside
//! the schema (`$ref` starting with `#`); `pattern`s use the linear-time
//! `regex` engine (no look-around, no backreferences), so no entry a client
//! sends can make validation backtrack for long.

use crate::error::echo;
use crate::grant::is_resource_indicator;
use crate::OAuthError;
use jsonschema::{Draft, PatternOptions, Retrieve, Uri, Validator};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// Longest type name, in characters.
pub const MAX_TYPE_NAME_LENGTH: usize = 128;
/// Largest schema accepted, serialised as compact JSON, in bytes.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// Deepest nesting of a schema document.
pub const MAX_SCHEMA_DEPTH: usize = 32;
/// The only `$schema` (dialect) accepted, when a schema names one.
pub const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";
/// Approximate upper bound on one compiled `pattern`, in bytes.
const MAX_PATTERN_BYTES: usize = 256 * 1024;
/// Longest schema error, in characters, echoed in a refusal.
const MAX_SCHEMA_ERROR_CHARS: usize = 160;

/// An authorization details type as an operator registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationDetailType {
    /// The `type` value entries of this type carry.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The resource (RFC 8707 resource indicator) the type belongs to; the
    /// `locations` of every entry of this type.
    pub resource: String,
    /// A JSON Schema (draft 2020-12) describing one entry, `type` included.
    pub schema: Value,
}

impl AuthorizationDetailType {
    /// [`validate_type_registration`] of this registration.
    pub fn compile(&self) -> Result<CompiledType, OAuthError> {
        validate_type_registration(&self.type_name, &self.resource, &self.schema)
    }
}

/// A registered type, its schema compiled. Cheap to clone.
#[derive(Clone)]
pub struct CompiledType {
    type_name: String,
    resource: String,
    schema: Arc<Value>,
    validator: Arc<Validator>,
}

impl CompiledType {
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The schema as registered.
    pub fn schema(&self) -> &Value {
        &self.schema
    }

    /// Whether `entry` satisfies the type's schema.
    pub fn is_valid(&self, entry: &Value) -> bool {
        self.validator.is_valid(entry)
    }

    /// At most `limit` of the schema's complaints about `entry`, each as
    /// `<instance path>: <message>`, bounded and without control characters;
    /// empty when the entry is valid.
    pub fn schema_errors(&self, entry: &Value, limit: usize) -> Vec<String> {
        if self.validator.is_valid(entry) {
            return Vec::new();
        }
        let mut errors: Vec<String> = self
            .validator
            .iter_errors(entry)
            .take(limit)
            .map(|error| {
                let path = error.instance_path().to_string();
                let path = if path.is_empty() { "/" } else { path.as_str() };
                echo(&format!("{path}: {error}"), MAX_SCHEMA_ERROR_CHARS)
            })
            .collect();
        if errors.is_empty() {
            // is_valid and iter_errors disagree only if the crate has a bug;
            // refuse all the same.
            errors.push("/: does not match the schema".to_owned());
        }
        errors
    }
}

impl fmt::Debug for CompiledType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledType")
            .field("type_name", &self.type_name)
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

/// True if `name` can be a type name here: 1 to [`MAX_TYPE_NAME_LENGTH`]
/// printable ASCII characters, no spaces.
pub fn is_type_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TYPE_NAME_LENGTH
        && name.bytes().all(|b| (0x21..=0x7E).contains(&b))
}

/// Checks and compiles a type registration; refusals are `invalid_request`
/// (the operator's request, not an OAuth client's).
///
/// Refused: a type name that is not [`is_type_name`]; a resource that is
/// not an RFC 8707 resource indicator; a schema larger than
/// [`MAX_SCHEMA_BYTES`] or nested deeper than [`MAX_SCHEMA_DEPTH`]; a
/// `$schema` other than [`DRAFT_2020_12`]; a `$ref`, `$dynamicRef` or
/// `$recursiveRef` anywhere that does not start with `#` (a remote or
/// relative reference; there is never any I/O to resolve one); a schema
/// that does not compile (including a `pattern` the linear-time `regex`
/// engine does not support).
pub fn validate_type_registration(
    type_name: &str,
    resource: &str,
    schema: &Value,
) -> Result<CompiledType, OAuthError> {
    if !is_type_name(type_name) {
        return Err(OAuthError::invalid_request(format!(
            "authorization details type names are 1 to {MAX_TYPE_NAME_LENGTH} printable ASCII characters without spaces"
        )));
    }
    if !is_resource_indicator(resource) {
        return Err(OAuthError::invalid_request(
            "the type's resource must be an absolute URI without a fragment (RFC 8707 §2)",
        ));
    }
    if super::exceeds_depth(schema, MAX_SCHEMA_DEPTH) {
        return Err(OAuthError::invalid_request(format!(
            "the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"
        )));
    }
    let size = serde_json::to_vec(schema)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_SCHEMA_BYTES {
        return Err(OAuthError::invalid_request(format!(
            "the schema is larger than {MAX_SCHEMA_BYTES} bytes"
        )));
    }
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(OAuthError::invalid_request(
            "the schema must be a JSON object or a boolean (JSON Schema 2020-12 §4.3)",
        ));
    }
    if let Some(dialect) = schema.get("$schema") {
        let named = dialect.as_str().map(|d| d.trim_end_matches('#'));
        if named != Some(DRAFT_2020_12) {
            return Err(OAuthError::invalid_request(format!(
                "the schema's $schema must be {DRAFT_2020_12}"
            )));
        }
    }
    if let Some(reference) = first_non_local_reference(schema) {
        return Err(OAuthError::invalid_request(format!(
            "the schema refers outside itself ({}): only references starting with # are accepted",
            echo(reference, 128)
        )));
    }
    let validator = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_retriever(NoRetrieval)
        .with_pattern_options(PatternOptions::regex().size_limit(MAX_PATTERN_BYTES))
        .should_validate_formats(true)
        .build(schema)
        .map_err(|error| {
            OAuthError::invalid_request(format!(
                "the schema does not compile: {}",
                echo(&error.to_string(), 200)
            ))
        })?;
    Ok(CompiledType {
        type_name: type_name.to_owned(),
        resource: resource.to_owned(),
        schema: Arc::new(schema.clone()),
        validator: Arc::new(validator),
    })
}

/// The keywords that load another schema by URI.
const REFERENCE_KEYWORDS: [&str; 3] = ["$ref", "$dynamicRef", "$recursiveRef"];

/// The first reference keyword whose (string) value does not start with
/// `#`. Looks at every object in the document, data keywords (`const`,
/// `enum`, `examples`) included: a false alarm there is refused too, which
/// is the safe side. Recursion is bounded by the depth check before it.
fn first_non_local_reference(value: &Value) -> Option<&str> {
    match value {
        Value::Object(members) => {
            for keyword in REFERENCE_KEYWORDS {
                if let Some(Value::String(reference)) = members.get(keyword) {
                    if !reference.starts_with('#') {
                        return Some(reference);
                    }
                }
            }
            members.values().find_map(first_non_local_reference)
        }
        Value::Array(items) => items.iter().find_map(first_non_local_reference),
        _ => None,
    }
}

/// A retriever that never retrieves: whatever features another crate turns
/// on for `jsonschema`, compiling a schema does no I/O.
struct NoRetrieval;

impl Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("custos never retrieves schemas ({})", uri.as_str()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rar::tests::BANK;
    use serde_json::json;

    fn refused(type_name: &str, schema: Value) -> String {
        let err = validate_type_registration(type_name, BANK, &schema).unwrap_err();
        assert_eq!(err.code, crate::ErrorCode::InvalidRequest);
        err.description
    }

    #[test]
    fn type_names_are_printable_ascii_without_spaces() {
        assert!(is_type_name("payment_initiation"));
        assert!(is_type_name("https://scheme.example.com/files"));
        assert!(is_type_name(&"a".repeat(MAX_TYPE_NAME_LENGTH)));
        assert!(!is_type_name(&"a".repeat(MAX_TYPE_NAME_LENGTH + 1)));
        assert!(!is_type_name(""));
        assert!(!is_type_name("two words"));
        assert!(!is_type_name("tab\there"));
        assert!(!is_type_name("é"));
        refused("two words", json!({}));
    }

    #[test]
    fn resource_must_be_a_resource_indicator() {
        assert!(validate_type_registration("t", "not a uri", &json!({})).is_err());
        assert!(validate_type_registration("t", "https://bank.example/#f", &json!({})).is_err());
        assert!(validate_type_registration("t", BANK, &json!({})).is_ok());
    }

    #[test]
    fn schema_must_compile() {
        assert!(refused("t", json!({"type": "no-such-type"})).contains("does not compile"));
        assert!(refused("t", json!({"minimum": "five"})).contains("does not compile"));
        assert!(refused("t", json!(["type"])).contains("object or a boolean"));
        // Look-around is not in the linear-time engine.
        refused("t", json!({"pattern": "^(?=a)a$"}));
        // A local reference to nowhere does not compile either.
        refused("t", json!({"$ref": "#/$defs/missing"}));
    }

    #[test]
    fn remote_ref_is_refused() {
        for reference in [
            "https://json-schema.org/draft/2020-12/schema",
            "http://127.0.0.1/schema.json",
            "file:///etc/passwd",
            "other.json#/x",
            "",
        ] {
            let text = refused(
                "t",
                json!({"properties": {"a": {"items": {"$ref": reference}}}}),
            );
            assert!(text.contains("refers outside itself"), "{text}");
            refused("t", json!({"$dynamicRef": reference}));
            refused("t", json!({"anyOf": [{"$recursiveRef": reference}]}));
        }
        // Local references are fine.
        validate_type_registration(
            "t",
            BANK,
            &json!({"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}}),
        )
        .unwrap();
    }

    #[test]
    fn a_relative_id_cannot_make_a_local_reference_fetch() {
        // `$id` changes the base URI; whatever it resolves to is never
        // retrieved: compiling either works offline or fails.
        let result = validate_type_registration(
            "t",
            BANK,
            &json!({"$id": "https://schemas.example/t", "properties": {"x": {"$ref": "#/$defs/nothing"}}}),
        );
        assert!(result.is_err());
    }

    #[test]
    fn dialect_is_2020_12() {
        validate_type_registration("t", BANK, &json!({"$schema": DRAFT_2020_12})).unwrap();
        validate_type_registration("t", BANK, &json!({"$schema": format!("{DRAFT_2020_12}#")}))
            .unwrap();
        refused(
            "t",
            json!({"$schema": "http://json-schema.org/draft-07/schema#"}),
        );
        refused("t", json!({"$schema": "https://custom.example/meta"}));
    }

    #[test]
    fn schema_size_and_depth_are_bounded() {
        let big = json!({"description": "x".repeat(MAX_SCHEMA_BYTES)});
        assert!(refused("t", big).contains("larger than"));
        let mut deep = json!({"type": "object"});
        for _ in 0..MAX_SCHEMA_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(refused("t", deep).contains("nested deeper"));
    }

    #[test]
    fn formats_are_asserted() {
        let t = validate_type_registration(
            "t",
            BANK,
            &json!({"properties": {"callback": {"type": "string", "format": "uri"}}}),
        )
        .unwrap();
        assert!(t.is_valid(&json!({"callback": "https://a.example/"})));
        assert!(!t.is_valid(&json!({"callback": "not a uri"})));
    }

    #[test]
    fn registration_round_trips_as_json() {
        let registration: AuthorizationDetailType = serde_json::from_value(json!({
            "type": "account_information",
            "resource": BANK,
            "schema": {"type": "object"}
        }))
        .unwrap();
        let compiled = registration.compile().unwrap();
        assert_eq!(compiled.type_name(), "account_information");
        assert_eq!(compiled.resource(), BANK);
        assert_eq!(compiled.schema(), &json!({"type": "object"}));
        assert!(format!("{compiled:?}").contains("account_information"));
    }
}
