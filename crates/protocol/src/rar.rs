//! Rich Authorization Requests (RFC 9396): the pure core.
//!
//! - [`types`]: authorization details type registrations, each a type name,
//!   the one resource the type belongs to and a JSON Schema (draft 2020-12)
//!   describing one entry, compiled once with every reference kept local
//!   (no I/O, ever).
//! - [`parse_authorization_details`]: the `authorization_details` parameter
//!   (§2) read against the registered types: bounded, each entry's common
//!   fields typed as §2.2 says, its `type` registered (§5), the entry valid
//!   against its type's schema, and `locations` made explicit.
//! - [`narrow`] and [`is_narrower_or_equal`]: §6.1, a token request (or a
//!   refresh, or a token exchange) may only ask for what was granted, or
//!   less.
//! - [`describe`]: each entry in words for the consent page.
//!
//! Every refusal is `invalid_authorization_details` (§5), except a bad type
//! registration, which is the operator's `invalid_request`.

mod describe;
mod narrow;
pub mod types;

pub use describe::{describe, fits_on_consent_page, MAX_DESCRIPTION_CHARS};
pub use narrow::{is_narrower_or_equal, narrow};
pub use types::{validate_type_registration, AuthorizationDetailType, CompiledType};

use crate::error::echo;
use crate::{ErrorCode, OAuthError};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

/// Longest `authorization_details` parameter accepted, in bytes.
pub const MAX_AUTHORIZATION_DETAILS_BYTES: usize = 8 * 1024;
/// Most entries one `authorization_details` array may hold.
pub const MAX_ENTRIES: usize = 16;
/// Deepest nesting of the parameter's JSON, the outer array counting as 1
/// and each entry object as 2.
pub const MAX_DEPTH: usize = 10;
/// Most schema errors named in one refusal.
pub const MAX_SCHEMA_ERRORS: usize = 3;

/// The common data fields of §2.2 that are arrays of strings.
pub const COMMON_ARRAY_FIELDS: [&str; 4] = ["locations", "actions", "datatypes", "privileges"];
/// §2.2: `identifier`, a string.
pub const IDENTIFIER: &str = "identifier";
/// §2: `type`, required, a string.
pub const TYPE: &str = "type";
/// §2.2: `locations`, the resources (or resource servers) an entry is for.
pub const LOCATIONS: &str = "locations";

/// The `invalid_authorization_details` refusal (RFC 9396 §5).
pub fn invalid_authorization_details(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidAuthorizationDetails, description)
}

/// Parsed, normalised authorization details: a JSON array of objects, each
/// with a string `type` and, when produced by
/// [`parse_authorization_details`], explicit `locations`. Serialises as the
/// JSON array itself (the token response, §7; the JWT claim and the
/// introspection member, §9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct AuthorizationDetails(Vec<Value>);

impl AuthorizationDetails {
    /// The entries, each a JSON object.
    pub fn entries(&self) -> &[Value] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The distinct `locations` of all entries, in first-seen order: the
    /// resources a token carrying these details is for.
    pub fn resources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for entry in &self.0 {
            for location in string_array(entry, LOCATIONS) {
                if !out.iter().any(|seen| seen == location) {
                    out.push(location.to_owned());
                }
            }
        }
        out
    }

    /// The distinct `type`s of all entries, in first-seen order.
    pub fn types(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for entry in &self.0 {
            if let Some(t) = entry_type(entry) {
                if !out.iter().any(|seen| seen == t) {
                    out.push(t.to_owned());
                }
            }
        }
        out
    }

    /// The entries for the resources in `audience` only, each entry's
    /// `locations` cut to those in `audience`; an entry left with none is
    /// dropped, as is one without `locations` (a token for fewer resources
    /// carries the details of those resources only: RFC 9396 §6, never
    /// wider).
    pub fn restricted_to(&self, audience: &[String]) -> AuthorizationDetails {
        let mut out = Vec::with_capacity(self.0.len());
        for entry in &self.0 {
            let kept: Vec<Value> = string_array(entry, LOCATIONS)
                .filter(|l| audience.iter().any(|a| a == l))
                .map(|l| Value::String(l.to_owned()))
                .collect();
            if kept.is_empty() {
                continue;
            }
            let mut entry = entry.clone();
            if let Some(object) = entry.as_object_mut() {
                object.insert(LOCATIONS.to_owned(), Value::Array(kept));
            }
            out.push(entry);
        }
        AuthorizationDetails(out)
    }

    /// The JSON array, for a claim, a response member or storage.
    pub fn to_value(&self) -> Value {
        Value::Array(self.0.clone())
    }

    pub fn into_value(self) -> Value {
        Value::Array(self.0)
    }

    /// Reads details this server stored or signed earlier (a grant, a
    /// token's claim). Checks the shape only (a JSON array of at most
    /// [`MAX_ENTRIES`] objects, each with a string `type`): they were
    /// validated when they were first requested, and the type's schema may
    /// have changed since. Request parameters go through
    /// [`parse_authorization_details`] instead.
    pub fn from_value(value: Value) -> Result<Self, OAuthError> {
        let Value::Array(entries) = value else {
            return Err(invalid_authorization_details(
                "authorization_details must be a JSON array (RFC 9396 §2)",
            ));
        };
        if entries.len() > MAX_ENTRIES {
            return Err(invalid_authorization_details(format!(
                "authorization_details holds more than {MAX_ENTRIES} entries"
            )));
        }
        for (index, entry) in entries.iter().enumerate() {
            if !entry.is_object() {
                return Err(invalid_authorization_details(format!(
                    "authorization_details entry {index} is not a JSON object (RFC 9396 §2)"
                )));
            }
            if entry_type(entry).is_none() {
                return Err(invalid_authorization_details(format!(
                    "authorization_details entry {index} has no string type (RFC 9396 §2)"
                )));
            }
        }
        Ok(AuthorizationDetails(entries))
    }
}

impl TryFrom<Value> for AuthorizationDetails {
    type Error = OAuthError;
    fn try_from(value: Value) -> Result<Self, OAuthError> {
        AuthorizationDetails::from_value(value)
    }
}

impl From<AuthorizationDetails> for Value {
    fn from(details: AuthorizationDetails) -> Value {
        details.into_value()
    }
}

impl Serialize for AuthorizationDetails {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// Parses the `authorization_details` parameter (RFC 9396 §2): a JSON array
/// of objects. `types` finds a registered type by name.
///
/// Refused with `invalid_authorization_details` (§5): more than
/// [`MAX_AUTHORIZATION_DETAILS_BYTES`] bytes, JSON nested deeper than
/// [`MAX_DEPTH`], not a JSON array of objects, more than [`MAX_ENTRIES`]
/// entries, an entry without a string `type` or of a type not registered, a
/// common field of the wrong JSON type (§2.2: `locations`, `actions`,
/// `datatypes`, `privileges` arrays of strings, `identifier` a string), an
/// entry its type's schema rejects (the first [`MAX_SCHEMA_ERRORS`] errors
/// are named), or a location other than the type's resource.
///
/// Normalisation: each entry's `locations` becomes `[resource]`, the type's
/// registered resource (filled in when absent, so tokens say where; custos
/// knows one resource per type). The schema sees the entry as the client
/// sent it, before that. Nothing else changes.
pub fn parse_authorization_details<'t>(
    raw: &str,
    types: &dyn Fn(&str) -> Option<&'t CompiledType>,
) -> Result<AuthorizationDetails, OAuthError> {
    if raw.len() > MAX_AUTHORIZATION_DETAILS_BYTES {
        return Err(invalid_authorization_details(format!(
            "authorization_details is longer than {MAX_AUTHORIZATION_DETAILS_BYTES} bytes"
        )));
    }
    // serde_json refuses nesting deeper than 128 by itself, so neither its
    // parser nor the depth check below can exhaust the stack.
    let value: Value = serde_json::from_str(raw).map_err(|_| {
        invalid_authorization_details(
            "authorization_details must be a JSON array of objects (RFC 9396 §2)",
        )
    })?;
    if exceeds_depth(&value, MAX_DEPTH) {
        return Err(invalid_authorization_details(format!(
            "authorization_details is nested deeper than {MAX_DEPTH} levels"
        )));
    }
    let Value::Array(entries) = value else {
        return Err(invalid_authorization_details(
            "authorization_details must be a JSON array of objects (RFC 9396 §2)",
        ));
    };
    if entries.len() > MAX_ENTRIES {
        return Err(invalid_authorization_details(format!(
            "authorization_details holds more than {MAX_ENTRIES} entries"
        )));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        out.push(parse_entry(index, entry, types)?);
    }
    Ok(AuthorizationDetails(out))
}

fn parse_entry<'t>(
    index: usize,
    mut entry: Value,
    types: &dyn Fn(&str) -> Option<&'t CompiledType>,
) -> Result<Value, OAuthError> {
    let Some(object) = entry.as_object() else {
        return Err(invalid_authorization_details(format!(
            "authorization_details entry {index} is not a JSON object (RFC 9396 §2)"
        )));
    };
    let type_name = match object.get(TYPE) {
        None => {
            return Err(invalid_authorization_details(format!(
                "authorization_details entry {index} has no type (RFC 9396 §2: type is required)"
            )))
        }
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(invalid_authorization_details(format!(
                "authorization_details entry {index}: type must be a string (RFC 9396 §2)"
            )))
        }
    };
    let Some(compiled) = types(type_name) else {
        return Err(invalid_authorization_details(format!(
            "unknown authorization details type \"{}\"",
            echo(type_name, 64)
        )));
    };
    check_common_fields(index, type_name, object)?;
    check_locations(index, type_name, object, compiled.resource())?;
    let errors = compiled.schema_errors(&entry, MAX_SCHEMA_ERRORS);
    if !errors.is_empty() {
        return Err(invalid_authorization_details(format!(
            "authorization_details entry {index} does not match the schema of type \"{}\": {}",
            echo(type_name, 64),
            errors.join("; ")
        )));
    }
    if let Some(object) = entry.as_object_mut() {
        object.insert(
            LOCATIONS.to_owned(),
            Value::Array(vec![Value::String(compiled.resource().to_owned())]),
        );
    }
    Ok(entry)
}

/// §2.2: the common fields, where present, have the JSON type the RFC
/// gives them.
fn check_common_fields(
    index: usize,
    type_name: &str,
    object: &Map<String, Value>,
) -> Result<(), OAuthError> {
    for field in COMMON_ARRAY_FIELDS {
        if let Some(value) = object.get(field) {
            let is_string_array = value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string));
            if !is_string_array {
                return Err(invalid_authorization_details(format!(
                    "authorization_details entry {index} (type \"{}\"): {field} must be an array of strings (RFC 9396 §2.2)",
                    echo(type_name, 64)
                )));
            }
        }
    }
    if let Some(value) = object.get(IDENTIFIER) {
        if !value.is_string() {
            return Err(invalid_authorization_details(format!(
                "authorization_details entry {index} (type \"{}\"): identifier must be a string (RFC 9396 §2.2)",
                echo(type_name, 64)
            )));
        }
    }
    Ok(())
}

/// Every location named must be the type's resource, and naming none (an
/// empty array) is refused: an entry applies somewhere.
fn check_locations(
    index: usize,
    type_name: &str,
    object: &Map<String, Value>,
    resource: &str,
) -> Result<(), OAuthError> {
    let Some(Value::Array(locations)) = object.get(LOCATIONS) else {
        return Ok(());
    };
    if locations.is_empty() {
        return Err(invalid_authorization_details(format!(
            "authorization_details entry {index} (type \"{}\"): locations must not be empty",
            echo(type_name, 64)
        )));
    }
    for location in locations {
        if location.as_str() != Some(resource) {
            return Err(invalid_authorization_details(format!(
                "authorization_details entry {index} (type \"{}\"): location \"{}\" is not this type's resource {resource}",
                echo(type_name, 64),
                echo(location.as_str().unwrap_or_default(), 128)
            )));
        }
    }
    Ok(())
}

/// The entry's `type`, if it is a string.
pub(crate) fn entry_type(entry: &Value) -> Option<&str> {
    entry.get(TYPE).and_then(Value::as_str)
}

/// The strings of an array field; nothing when absent or not an array.
pub(crate) fn string_array<'v>(entry: &'v Value, field: &str) -> impl Iterator<Item = &'v str> {
    entry
        .get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// True if `value` nests deeper than `limit` (a scalar has depth 0, an
/// empty array or object 1). Recursion stops at the limit.
pub(crate) fn exceeds_depth(value: &Value, limit: usize) -> bool {
    match value {
        Value::Array(items) => limit == 0 || items.iter().any(|v| exceeds_depth(v, limit - 1)),
        Value::Object(members) => {
            limit == 0 || members.values().any(|v| exceeds_depth(v, limit - 1))
        }
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub const BANK: &str = "https://bank.example/";
    pub const FILES: &str = "https://files.example/";

    /// The types the tests know: `payment_initiation` (RFC 9396 §2's
    /// example, with a schema), `account_information` (permissive) and
    /// `file_access` at another resource.
    pub fn registry() -> Vec<CompiledType> {
        vec![
            validate_type_registration(
                "payment_initiation",
                BANK,
                &json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "required": ["type", "instructedAmount"],
                    "properties": {
                        "type": {"const": "payment_initiation"},
                        "actions": {"items": {"enum": ["initiate", "status", "cancel"]}},
                        "instructedAmount": {"$ref": "#/$defs/amount"},
                        "creditorName": {"type": "string", "maxLength": 70},
                        "creditorAccount": {
                            "type": "object",
                            "properties": {"iban": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}$"}}
                        }
                    },
                    "$defs": {
                        "amount": {
                            "type": "object",
                            "required": ["currency", "amount"],
                            "properties": {
                                "currency": {"enum": ["EUR", "USD"]},
                                "amount": {"type": "string", "pattern": "^[0-9]+(\\.[0-9]{2})?$"}
                            },
                            "additionalProperties": false
                        }
                    }
                }),
            )
            .unwrap(),
            validate_type_registration("account_information", BANK, &json!({"type": "object"}))
                .unwrap(),
            validate_type_registration("file_access", FILES, &json!(true)).unwrap(),
        ]
    }

    pub fn parse(raw: &str, types: &[CompiledType]) -> Result<AuthorizationDetails, OAuthError> {
        parse_authorization_details(raw, &|name| types.iter().find(|t| t.type_name() == name))
    }

    pub const PAYMENT: &str = r#"[{"type":"payment_initiation","actions":["initiate","status","cancel"],"instructedAmount":{"currency":"EUR","amount":"123.50"},"creditorName":"Merchant A","creditorAccount":{"iban":"DE02100100109307118603"}}]"#;

    fn refusal(raw: &str) -> OAuthError {
        let err = parse(raw, &registry()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidAuthorizationDetails, "{err}");
        assert_eq!(err.code.as_str(), "invalid_authorization_details");
        err
    }

    #[test]
    fn rfc9396_2_payment_example_parses() {
        let details = parse(PAYMENT, &registry()).unwrap();
        assert_eq!(details.len(), 1);
        assert_eq!(details.types(), vec!["payment_initiation"]);
        assert_eq!(details.resources(), vec![BANK]);
        assert_eq!(details.entries()[0]["creditorName"], "Merchant A");
    }

    #[test]
    fn rfc9396_2_is_a_json_array_of_objects() {
        refusal(r#"{"type":"payment_initiation"}"#);
        refusal(r#"["payment_initiation"]"#);
        refusal("not json");
        refusal("");
        let empty = parse("[]", &registry()).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn rfc9396_2_type_is_required() {
        let err = refusal(r#"[{"actions":["read"]}]"#);
        assert!(err.description.contains("type is required"), "{err}");
        let err = refusal(r#"[{"type":7}]"#);
        assert!(err.description.contains("type must be a string"), "{err}");
    }

    #[test]
    fn rfc9396_2_2_common_fields_are_typed() {
        for bad in [
            r#"[{"type":"account_information","actions":"read"}]"#,
            r#"[{"type":"account_information","actions":[1]}]"#,
            r#"[{"type":"account_information","datatypes":{"a":1}}]"#,
            r#"[{"type":"account_information","privileges":[null]}]"#,
            r#"[{"type":"account_information","locations":"https://bank.example/"}]"#,
            r#"[{"type":"account_information","identifier":["acct-1"]}]"#,
        ] {
            refusal(bad);
        }
        let ok = parse(
            r#"[{"type":"account_information","actions":["read"],"datatypes":["balances"],"privileges":["owner"],"identifier":"acct-1"}]"#,
            &registry(),
        )
        .unwrap();
        assert_eq!(ok.entries()[0]["identifier"], "acct-1");
    }

    #[test]
    fn rfc9396_5_unknown_type_is_invalid_authorization_details() {
        let err = refusal(r#"[{"type":"crypto_withdrawal"}]"#);
        assert!(err.description.contains("\"crypto_withdrawal\""), "{err}");
        // The echoed name is bounded and stripped of control characters.
        let long = format!(r#"[{{"type":"{}\n"}}]"#, "x".repeat(500));
        let err = refusal(&long);
        assert!(err.description.len() < 200 && !err.description.contains('\n'));
    }

    #[test]
    fn schema_validation_passes_and_fails_naming_the_type() {
        assert!(parse(PAYMENT, &registry()).is_ok());
        let err = refusal(
            r#"[{"type":"payment_initiation","instructedAmount":{"currency":"XYZ","amount":"1.5","extra":1}}]"#,
        );
        assert!(err.description.contains("\"payment_initiation\""), "{err}");
        assert!(err.description.contains("/instructedAmount"), "{err}");
        // Missing required member.
        let err = refusal(r#"[{"type":"payment_initiation"}]"#);
        assert!(err.description.contains("instructedAmount"), "{err}");
        // An action the schema does not know.
        refusal(
            r#"[{"type":"payment_initiation","actions":["steal"],"instructedAmount":{"currency":"EUR","amount":"1.00"}}]"#,
        );
    }

    #[test]
    fn schema_errors_named_are_bounded() {
        let types = vec![validate_type_registration(
            "many",
            BANK,
            &json!({"type": "object", "additionalProperties": {"type": "integer"}}),
        )
        .unwrap()];
        let fields: Vec<String> = (0..40)
            .map(|i| format!(r#""f{i}":"{}""#, "v".repeat(50)))
            .collect();
        let raw = format!(r#"[{{"type":"many",{}}}]"#, fields.join(","));
        assert!(raw.len() < MAX_AUTHORIZATION_DETAILS_BYTES);
        let err = parse(&raw, &types).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidAuthorizationDetails);
        assert!(
            err.description.matches("; ").count() < MAX_SCHEMA_ERRORS,
            "{err}"
        );
        assert!(err.description.len() < 1024, "{}", err.description.len());
    }

    #[test]
    fn rfc9396_2_2_locations_default_to_the_types_resource() {
        let details = parse(
            r#"[{"type":"account_information"},{"type":"file_access"},{"type":"account_information","locations":["https://bank.example/","https://bank.example/"]}]"#,
            &registry(),
        )
        .unwrap();
        for entry in details.entries() {
            assert_eq!(entry[LOCATIONS].as_array().unwrap().len(), 1);
        }
        assert_eq!(details.entries()[0][LOCATIONS], json!([BANK]));
        assert_eq!(details.entries()[1][LOCATIONS], json!([FILES]));
        assert_eq!(details.resources(), vec![BANK, FILES]);
        assert_eq!(details.types(), vec!["account_information", "file_access"]);
    }

    #[test]
    fn rfc9396_2_2_locations_must_be_the_types_resource() {
        let err =
            refusal(r#"[{"type":"account_information","locations":["https://evil.example/"]}]"#);
        assert!(err.description.contains("https://evil.example/"), "{err}");
        refusal(
            r#"[{"type":"account_information","locations":["https://bank.example/","https://files.example/"]}]"#,
        );
        refusal(r#"[{"type":"account_information","locations":[]}]"#);
        // Exact comparison: no normalisation of the URI.
        refusal(r#"[{"type":"account_information","locations":["https://bank.example"]}]"#);
    }

    #[test]
    fn bounds_size_entries_and_depth() {
        let too_long = format!(
            r#"[{{"type":"account_information","x":"{}"}}]"#,
            "a".repeat(MAX_AUTHORIZATION_DETAILS_BYTES)
        );
        assert!(refusal(&too_long).description.contains("longer than"));

        let entry = r#"{"type":"account_information"}"#;
        let at_most = format!("[{}]", vec![entry; MAX_ENTRIES].join(","));
        assert_eq!(parse(&at_most, &registry()).unwrap().len(), MAX_ENTRIES);
        let too_many = format!("[{}]", vec![entry; MAX_ENTRIES + 1].join(","));
        assert!(refusal(&too_many).description.contains("more than"));

        // Depth: the array (1), the entry (2), then nested values.
        let nested = |levels: usize| {
            format!(
                r#"[{{"type":"account_information","x":{}1{}}}]"#,
                "[".repeat(levels),
                "]".repeat(levels)
            )
        };
        assert!(parse(&nested(MAX_DEPTH - 2), &registry()).is_ok());
        assert!(refusal(&nested(MAX_DEPTH - 1))
            .description
            .contains("nested deeper"));
        // Far past serde_json's own recursion limit: refused, no overflow.
        refusal(&"[".repeat(4000));
    }

    #[test]
    fn serialises_as_the_array_and_reads_back() {
        let details = parse(PAYMENT, &registry()).unwrap();
        let text = serde_json::to_string(&details).unwrap();
        assert!(text.starts_with("[{"));
        let back: AuthorizationDetails = serde_json::from_str(&text).unwrap();
        assert_eq!(back, details);
        assert_eq!(
            details.to_value(),
            serde_json::from_str::<Value>(&text).unwrap()
        );
        assert!(serde_json::from_str::<AuthorizationDetails>(r#"{"type":"x"}"#).is_err());
        assert!(serde_json::from_str::<AuthorizationDetails>(r#"[{"actions":[]}]"#).is_err());
        assert!(AuthorizationDetails::from_value(json!([1])).is_err());
    }

    /// RFC 9396 §6 applied to a token for fewer resources: only the
    /// entries of those resources stay, their `locations` cut to them.
    #[test]
    fn rfc9396_6_restricted_to_the_audience_keeps_only_its_entries() {
        let details = AuthorizationDetails::from_value(json!([
            {"type": "payment_initiation", "locations": [BANK], "actions": ["status"]},
            {"type": "file_access", "locations": [FILES]},
            {"type": "both", "locations": [BANK, FILES]},
            {"type": "nowhere"}
        ]))
        .unwrap();
        let kept = details.restricted_to(&[BANK.to_owned()]);
        assert_eq!(
            kept.to_value(),
            json!([
                {"type": "payment_initiation", "locations": [BANK], "actions": ["status"]},
                {"type": "both", "locations": [BANK]}
            ])
        );
        assert!(details
            .restricted_to(&["https://elsewhere.example/".to_owned()])
            .is_empty());
        assert_eq!(
            details
                .restricted_to(&[BANK.to_owned(), FILES.to_owned()])
                .len(),
            3
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_strings_never_panic(raw in proptest::prelude::any::<String>()) {
            let _ = parse(&raw, &registry());
        }

        #[test]
        fn json_like_strings_never_panic(raw in r#"[\[\]{}",:0-9a-z_ ]{0,96}"#) {
            let _ = parse(&raw, &registry());
        }

        #[test]
        fn parsed_details_are_normalised(
            actions in proptest::collection::vec("[a-z]{1,6}", 0..4),
            with_locations in proptest::bool::ANY,
        ) {
            let mut entry = json!({"type": "account_information", "actions": actions});
            if with_locations {
                entry["locations"] = json!([BANK]);
            }
            let raw = Value::Array(vec![entry]).to_string();
            let details = parse(&raw, &registry()).unwrap();
            proptest::prop_assert_eq!(details.resources(), vec![BANK.to_owned()]);
            let reread = parse(&details.to_value().to_string(), &registry()).unwrap();
            proptest::prop_assert_eq!(reread, details);
        }
    }
}
