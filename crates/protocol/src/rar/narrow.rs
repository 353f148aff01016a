//! Comparing authorization details (RFC 9396 §6.1): a token request, a
//! refresh or a token exchange may ask for what was granted, or less.
//!
//! §6.1 leaves the comparison to each API; custos, knowing nothing of a
//! type's semantics beyond its schema, compares conservatively. A requested
//! entry is covered by a granted entry of the same `type` when, field by
//! field:
//!
//! - `locations`, `actions`, `datatypes`, `privileges` (§2.2): the
//!   requested array is a subset of the granted one. A field the granted
//!   entry lacks may not be added: absence might mean "unrestricted" or
//!   "none" depending on the type, and only the API knows which.
//! - `identifier`: equal to the granted one when the granted entry has one;
//!   when it has none, naming one is narrower (one resource instead of any).
//! - every other, type-specific field: equal (JSON equality) to the granted
//!   entry's value, and not added when the granted entry lacks it. No
//!   ordering is inferred (an amount of 10 is not "within" 20).
//!
//! A field the request leaves out means "as granted": [`narrow`] completes
//! each requested entry with the covering granted entry's value for it, so
//! what is issued never says less than what was checked. Callers that use
//! [`is_narrower_or_equal`] alone must issue the granted entries or do the
//! same completion, never the bare request.

use super::{
    entry_type, invalid_authorization_details, parse_authorization_details, AuthorizationDetails,
    CompiledType, COMMON_ARRAY_FIELDS, IDENTIFIER, TYPE,
};
use crate::error::echo;
use crate::OAuthError;
use serde_json::Value;

/// True if every requested entry is covered by some granted entry (see the
/// module documentation for the rule). An empty request is narrower than
/// anything.
pub fn is_narrower_or_equal(
    requested: &AuthorizationDetails,
    granted: &AuthorizationDetails,
) -> bool {
    requested
        .entries()
        .iter()
        .all(|r| covering(r, granted).is_some())
}

/// The authorization details to issue for a request that may narrow what
/// was granted (RFC 9396 §6): with no `authorization_details` parameter,
/// the granted details; otherwise the requested ones, parsed and checked
/// against the registered types like any request, each covered by a
/// granted entry and completed with the fields it left out, else
/// `invalid_authorization_details`.
pub fn narrow<'t>(
    requested: Option<&str>,
    granted: &AuthorizationDetails,
    types: &dyn Fn(&str) -> Option<&'t CompiledType>,
) -> Result<AuthorizationDetails, OAuthError> {
    let Some(raw) = requested else {
        return Ok(granted.clone());
    };
    let requested = parse_authorization_details(raw, types)?;
    let mut out = Vec::with_capacity(requested.len());
    for (index, entry) in requested.entries().iter().enumerate() {
        let Some(cover) = covering(entry, granted) else {
            return Err(invalid_authorization_details(format!(
                "authorization_details entry {index} (type \"{}\") is broader than what was granted (RFC 9396 §6.1)",
                echo(entry_type(entry).unwrap_or_default(), 64)
            )));
        };
        out.push(complete(entry, cover));
    }
    Ok(AuthorizationDetails(out))
}

/// The first granted entry that covers `requested`.
fn covering<'g>(requested: &Value, granted: &'g AuthorizationDetails) -> Option<&'g Value> {
    granted.entries().iter().find(|g| covers(g, requested))
}

fn covers(granted: &Value, requested: &Value) -> bool {
    let (Some(granted_fields), Some(requested_fields)) =
        (granted.as_object(), requested.as_object())
    else {
        return false;
    };
    match (entry_type(granted), entry_type(requested)) {
        (Some(g), Some(r)) if g == r => {}
        _ => return false,
    }
    requested_fields.iter().all(|(field, wanted)| {
        if field == TYPE {
            return true;
        }
        match granted_fields.get(field) {
            None => field == IDENTIFIER,
            Some(had) if COMMON_ARRAY_FIELDS.contains(&field.as_str()) => is_subset(wanted, had),
            Some(had) => wanted == had,
        }
    })
}

/// Every element of `wanted` is in `had`; both must be arrays.
fn is_subset(wanted: &Value, had: &Value) -> bool {
    match (wanted.as_array(), had.as_array()) {
        (Some(wanted), Some(had)) => wanted.iter().all(|w| had.contains(w)),
        _ => false,
    }
}

/// `requested` with every field it leaves out taken from `granted`.
fn complete(requested: &Value, granted: &Value) -> Value {
    let mut entry = requested.clone();
    if let (Some(fields), Some(granted_fields)) = (entry.as_object_mut(), granted.as_object()) {
        for (field, value) in granted_fields {
            if !fields.contains_key(field) {
                fields.insert(field.clone(), value.clone());
            }
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rar::tests::{parse, registry, BANK, PAYMENT};
    use crate::rar::{validate_type_registration, LOCATIONS};
    use crate::ErrorCode;
    use proptest::prelude::*;
    use serde_json::json;

    fn details(value: Value) -> AuthorizationDetails {
        parse(&value.to_string(), &registry()).unwrap()
    }

    fn narrow_with(
        requested: Option<&str>,
        granted: &AuthorizationDetails,
    ) -> Result<AuthorizationDetails, OAuthError> {
        let types = registry();
        narrow(requested, granted, &|name| {
            types.iter().find(|t| t.type_name() == name)
        })
    }

    fn account(extra: Value) -> Value {
        let mut entry = json!({"type": "account_information"});
        for (k, v) in extra.as_object().unwrap() {
            entry[k] = v.clone();
        }
        entry
    }

    #[test]
    fn rfc9396_6_no_request_keeps_what_was_granted() {
        let granted = parse(PAYMENT, &registry()).unwrap();
        assert_eq!(narrow_with(None, &granted).unwrap(), granted);
        assert!(is_narrower_or_equal(&granted, &granted));
    }

    #[test]
    fn rfc9396_6_1_token_request_may_only_narrow() {
        let granted = details(json!([
            account(json!({"actions": ["read", "write"], "datatypes": ["balances", "transactions"], "identifier": "acct-1"})),
            {"type": "file_access", "actions": ["read"]}
        ]));
        // Fewer actions, one datatype, one of the two entries.
        let raw = json!([account(
            json!({"actions": ["read"], "datatypes": ["balances"]})
        )])
        .to_string();
        let narrowed = narrow_with(Some(&raw), &granted).unwrap();
        assert!(is_narrower_or_equal(&narrowed, &granted));
        // What the request left out is filled in from the grant.
        assert_eq!(
            narrowed.entries()[0],
            json!({"type": "account_information", "actions": ["read"], "datatypes": ["balances"], "identifier": "acct-1", "locations": [BANK]})
        );

        for broader in [
            // An action not granted.
            json!([account(json!({"actions": ["read", "delete"]}))]),
            // A field the grant did not restrict.
            json!([account(json!({"privileges": ["admin"]}))]),
            // Another account.
            json!([account(json!({"identifier": "acct-2"}))]),
            // A type-specific field the grant did not have.
            json!([account(json!({"accounts": "all"}))]),
            // A type not granted at all.
            json!([{"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "1.00"}}]),
            // An action granted for another type only.
            json!([{"type": "file_access", "actions": ["write"]}]),
        ] {
            let raw = broader.to_string();
            let err = narrow_with(Some(&raw), &granted).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidAuthorizationDetails);
            assert!(
                err.description.contains("broader than what was granted"),
                "{err}"
            );
            assert!(!is_narrower_or_equal(&details(broader), &granted));
        }
    }

    #[test]
    fn rfc9396_6_1_type_specific_fields_must_be_equal() {
        let granted = parse(PAYMENT, &registry()).unwrap();
        let same_amount = r#"[{"type":"payment_initiation","actions":["status"],"instructedAmount":{"currency":"EUR","amount":"123.50"}}]"#;
        let narrowed = narrow_with(Some(same_amount), &granted).unwrap();
        assert_eq!(narrowed.entries()[0]["actions"], json!(["status"]));
        assert_eq!(narrowed.entries()[0]["creditorName"], "Merchant A");
        // A smaller amount is not inferred to be narrower: refused.
        let smaller = r#"[{"type":"payment_initiation","instructedAmount":{"currency":"EUR","amount":"1.00"}}]"#;
        assert!(narrow_with(Some(smaller), &granted).is_err());
    }

    #[test]
    fn rfc9396_6_1_identifier_may_be_named_when_the_grant_named_none() {
        let granted = details(json!([account(json!({"actions": ["read"]}))]));
        let one = details(json!([account(json!({"identifier": "acct-9"}))]));
        assert!(is_narrower_or_equal(&one, &granted));
    }

    #[test]
    fn rfc9396_6_requested_details_are_validated_like_any_request() {
        let granted = parse(PAYMENT, &registry()).unwrap();
        assert_eq!(
            narrow_with(Some("{"), &granted).unwrap_err().code,
            ErrorCode::InvalidAuthorizationDetails
        );
        let unknown = r#"[{"type":"crypto_withdrawal"}]"#;
        assert!(narrow_with(Some(unknown), &granted)
            .unwrap_err()
            .description
            .contains("unknown"));
        let elsewhere = r#"[{"type":"payment_initiation","locations":["https://evil.example/"]}]"#;
        assert!(narrow_with(Some(elsewhere), &granted).is_err());
    }

    #[test]
    fn empty_request_is_narrower_and_nothing_granted_covers_nothing() {
        let granted = parse(PAYMENT, &registry()).unwrap();
        assert!(narrow_with(Some("[]"), &granted).unwrap().is_empty());
        let nothing = AuthorizationDetails::default();
        assert!(narrow_with(Some(PAYMENT), &nothing).is_err());
        assert!(is_narrower_or_equal(&nothing, &nothing));
    }

    #[test]
    fn stored_details_of_a_changed_schema_still_compare() {
        // Granted details read back from storage are not revalidated.
        let granted = AuthorizationDetails::from_value(json!([
            {"type": "account_information", "locations": [BANK], "actions": ["read"], "legacy": true}
        ]))
        .unwrap();
        let requested = details(json!([account(json!({"actions": ["read"]}))]));
        assert!(is_narrower_or_equal(&requested, &granted));
        let types =
            [
                validate_type_registration("account_information", BANK, &json!({"type": "object"}))
                    .unwrap(),
            ];
        let issued = narrow(Some(&requested.to_value().to_string()), &granted, &|n| {
            types.iter().find(|t| t.type_name() == n)
        })
        .unwrap();
        assert_eq!(issued.entries()[0]["legacy"], true);
        assert_eq!(issued.entries()[0][LOCATIONS], json!([BANK]));
    }

    fn distinct_words() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set("[a-z]{1,6}", 1..5)
            .prop_map(|set| set.into_iter().collect())
    }

    /// A granted entry: some of the common arrays, maybe an identifier,
    /// maybe a type-specific field.
    fn granted_entry() -> impl Strategy<Value = Value> {
        (
            proptest::option::of(distinct_words()),
            proptest::option::of(distinct_words()),
            proptest::option::of(distinct_words()),
            proptest::option::of("[a-z0-9-]{1,12}"),
            proptest::option::of(0u32..1000),
        )
            .prop_map(|(actions, datatypes, privileges, identifier, limit)| {
                let mut entry = json!({"type": "account_information"});
                if let Some(a) = actions {
                    entry["actions"] = json!(a);
                }
                if let Some(d) = datatypes {
                    entry["datatypes"] = json!(d);
                }
                if let Some(p) = privileges {
                    entry["privileges"] = json!(p);
                }
                if let Some(i) = identifier {
                    entry["identifier"] = json!(i);
                }
                if let Some(l) = limit {
                    entry["limit"] = json!(l);
                }
                entry
            })
    }

    proptest! {
        #[test]
        fn subsets_are_narrower_and_additions_are_not(
            entry in granted_entry(),
            keep in proptest::collection::vec(any::<bool>(), 16),
            drop_field in proptest::collection::vec(any::<bool>(), 6),
            widen in 0usize..4,
        ) {
            let granted = details(json!([entry]));
            let granted_entry = &granted.entries()[0];

            // Any subset of each array, any field left out.
            let mut requested = json!({"type": "account_information"});
            let mut bit = 0;
            for (n, field) in ["locations", "actions", "datatypes", "privileges"].iter().enumerate() {
                if let Some(items) = granted_entry.get(*field).and_then(Value::as_array) {
                    if drop_field[n] {
                        continue;
                    }
                    let subset: Vec<Value> = items.iter().filter(|_| { bit += 1; keep[bit % keep.len()] }).cloned().collect();
                    requested[*field] = Value::Array(subset);
                }
            }
            for (n, field) in ["identifier", "limit"].iter().enumerate() {
                if let Some(value) = granted_entry.get(*field) {
                    if !drop_field[4 + n] {
                        requested[*field] = value.clone();
                    }
                }
            }
            // An empty locations array is refused by the parser, not a subset question.
            if requested.get("locations").and_then(Value::as_array).is_some_and(Vec::is_empty) {
                requested["locations"] = json!([BANK]);
            }
            let raw = json!([requested.clone()]).to_string();
            let narrowed = narrow_with(Some(&raw), &granted).unwrap();
            prop_assert!(is_narrower_or_equal(&narrowed, &granted));
            prop_assert!(is_narrower_or_equal(&details(json!([requested.clone()])), &granted));

            // Adding an element (7 letters: never generated) is not narrower.
            let field = ["actions", "datatypes", "privileges", "actions"][widen];
            let mut wider = requested.clone();
            let mut items = granted_entry.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
            items.push(json!("zzzzzzz"));
            wider[field] = Value::Array(items);
            let wider = details(json!([wider]));
            prop_assert!(!is_narrower_or_equal(&wider, &granted));
            prop_assert!(narrow_with(Some(&wider.to_value().to_string()), &granted).is_err());

            // So is another identifier, when one was granted, and another
            // value of a type-specific field.
            if granted_entry.get("identifier").is_some() {
                let mut other = requested.clone();
                other["identifier"] = json!("other identifier");
                prop_assert!(!is_narrower_or_equal(&details(json!([other])), &granted));
            }
            let mut other = requested;
            other["limit"] = json!(5000);
            prop_assert!(!is_narrower_or_equal(&details(json!([other])), &granted));
        }
    }
}
