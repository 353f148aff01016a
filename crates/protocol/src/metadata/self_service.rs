//! RFC 7592 self-management may narrow a client, never widen it.
//!
//! With only its registration access token, a client may drop scopes,
//! grant types and redirect URIs, shorten its token lifetime, move to a
//! stronger authentication method, rotate its keys and rename itself.
//! Anything that gives it more — a scope, grant type or redirect URI it
//! did not have, a longer token lifetime, a weaker authentication method —
//! needs the admin API. [`check_update`] decides, and names every field
//! that changed for the audit trail.

use super::ClientMetadata;
use crate::OAuthError;

/// What an accepted update changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Names of the metadata fields whose value changed, sorted.
    pub fields: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

fn widening(what: &str, extra: &[String]) -> OAuthError {
    OAuthError::invalid_client_metadata(format!(
        "a client cannot widen its own registration (RFC 7592 through the registration access token may only narrow it): {what} {} would be added; ask an administrator",
        extra
            .iter()
            .map(|e| format!("'{}'", crate::error::echo(e, 100)))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn added(old: &[String], new: &[String]) -> Vec<String> {
    new.iter().filter(|v| !old.contains(v)).cloned().collect()
}

/// Accepts `new` as a self-service replacement of `old` if it widens
/// nothing; returns what changed.
pub fn check_update(old: &ClientMetadata, new: &ClientMetadata) -> Result<Changes, OAuthError> {
    let extra = added(&old.scopes(), &new.scopes());
    if !extra.is_empty() {
        return Err(widening("scope", &extra));
    }
    let extra = added(&old.grant_types, &new.grant_types);
    if !extra.is_empty() {
        return Err(widening("grant type", &extra));
    }
    let extra = added(&old.redirect_uris, &new.redirect_uris);
    if !extra.is_empty() {
        return Err(widening("redirect URI", &extra));
    }
    let extra = added(&old.response_types, &new.response_types);
    if !extra.is_empty() {
        return Err(widening("response type", &extra));
    }
    if new.access_token_lifetime > old.access_token_lifetime {
        return Err(OAuthError::invalid_client_metadata(format!(
            "a client cannot lengthen its own access_token_lifetime ({} s registered, {} s asked); ask an administrator",
            old.access_token_lifetime, new.access_token_lifetime
        )));
    }
    for (name, before, after) in [
        (
            "refresh_token_idle_lifetime",
            old.refresh_token_idle_lifetime,
            new.refresh_token_idle_lifetime,
        ),
        (
            "refresh_token_absolute_lifetime",
            old.refresh_token_absolute_lifetime,
            new.refresh_token_absolute_lifetime,
        ),
        (
            "refresh_token_reuse_grace",
            old.refresh_token_reuse_grace,
            new.refresh_token_reuse_grace,
        ),
    ] {
        if after > before {
            return Err(OAuthError::invalid_client_metadata(format!(
                "a client cannot lengthen its own {name} ({before} s registered, {after} s asked); ask an administrator"
            )));
        }
    }
    if old.require_pushed_authorization_requests && !new.require_pushed_authorization_requests {
        return Err(OAuthError::invalid_client_metadata(
            "a client cannot turn off its own require_pushed_authorization_requests (RFC 9126 section 6); ask an administrator",
        ));
    }
    if old.dpop_bound_access_tokens && !new.dpop_bound_access_tokens {
        return Err(OAuthError::invalid_client_metadata(
            "a client cannot turn off its own dpop_bound_access_tokens (RFC 9449 section 5.2); ask an administrator",
        ));
    }
    if old.attestation.tls_client_certificate_bound_access_tokens
        && !new.attestation.tls_client_certificate_bound_access_tokens
    {
        return Err(OAuthError::invalid_client_metadata(
            "a client cannot turn off its own tls_client_certificate_bound_access_tokens (RFC 8705 section 3); ask an administrator",
        ));
    }
    // The workload identities a client authenticates as are the
    // administrator's to grant: a client may drop federated credentials,
    // never add or change one, nor its SPIFFE ID or certificate subject.
    let (a, b) = (&old.attestation, &new.attestation);
    let same_identity = a.tls_client_auth_subject_dn == b.tls_client_auth_subject_dn
        && a.tls_client_auth_san_dns == b.tls_client_auth_san_dns
        && a.tls_client_auth_san_uri == b.tls_client_auth_san_uri
        && a.tls_client_auth_san_ip == b.tls_client_auth_san_ip
        && a.tls_client_auth_san_email == b.tls_client_auth_san_email
        && a.spiffe_id == b.spiffe_id;
    let only_dropped = b
        .federated_credentials
        .iter()
        .all(|c| a.federated_credentials.contains(c));
    if !same_identity || !only_dropped {
        return Err(OAuthError::invalid_client_metadata(
            "a client cannot change the workload identity it authenticates as (spiffe_id, tls_client_auth_*, or new federated_credentials); ask an administrator",
        ));
    }
    // What policies and the inventory know the client by is the
    // administrator's to say (CONTRACT.md: owner and tags need the admin
    // API).
    if old.owner != new.owner || old.tags != new.tags {
        return Err(OAuthError::invalid_client_metadata(
            "a client cannot change its own owner or tags (policies decide by them); ask an administrator",
        ));
    }
    let (before, after) = (
        old.token_endpoint_auth_method,
        new.token_endpoint_auth_method,
    );
    if after.strength() < before.strength() {
        return Err(OAuthError::invalid_client_metadata(format!(
            "a client cannot weaken its own authentication from {} to {}; ask an administrator",
            before.as_str(),
            after.as_str()
        )));
    }
    Ok(Changes {
        fields: changed_fields(old, new),
    })
}

/// Names of the top-level fields whose serialized value differs.
fn changed_fields(old: &ClientMetadata, new: &ClientMetadata) -> Vec<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let mut fields: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{validate_registration, RegistrationRules};
    use serde_json::json;

    fn meta(value: serde_json::Value) -> ClientMetadata {
        validate_registration(&value, &RegistrationRules::default()).unwrap()
    }

    fn base() -> serde_json::Value {
        json!({
            "grant_types": ["client_credentials", "authorization_code"],
            "redirect_uris": ["https://app.example/cb"],
            "scope": "read write",
            "access_token_lifetime": 600,
            "client_name": "app",
        })
    }

    fn with(patch: serde_json::Value) -> ClientMetadata {
        let mut value = base();
        for (k, v) in patch.as_object().unwrap() {
            value[k] = v.clone();
        }
        meta(value)
    }

    #[test]
    fn rfc7592_narrowing_and_renaming_are_accepted_and_named() {
        let old = meta(base());
        let changes = check_update(
            &old,
            &with(json!({"scope": "read", "client_name": "app 2", "access_token_lifetime": 60})),
        )
        .unwrap();
        assert_eq!(
            changes.fields,
            vec!["access_token_lifetime", "client_name", "scope"]
        );
        assert!(check_update(&old, &old).unwrap().is_empty());
        let fewer = with(json!({"grant_types": ["client_credentials"], "redirect_uris": []}));
        assert!(check_update(&old, &fewer).is_ok());
    }

    #[test]
    fn rfc7592_self_service_never_widens() {
        let old = meta(base());
        for (name, patch) in [
            ("scope", json!({"scope": "read write payroll:admin"})),
            ("lifetime", json!({"access_token_lifetime": 3600})),
            (
                "redirect",
                json!({"redirect_uris": ["https://app.example/cb", "https://evil.example/cb"]}),
            ),
            (
                "grant",
                json!({"grant_types": ["client_credentials", "authorization_code", "refresh_token"]}),
            ),
            (
                "weaker auth",
                json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code"]}),
            ),
        ] {
            let err = check_update(&old, &with(patch)).unwrap_err();
            assert_eq!(err.code, crate::ErrorCode::InvalidClientMetadata, "{name}");
        }
    }

    #[test]
    fn owner_and_tags_are_the_administrators_to_change() {
        let old =
            meta(json!({"grant_types": ["client_credentials"], "owner": "a", "tags": ["ci"]}));
        for patch in [
            json!({"grant_types": ["client_credentials"], "owner": "b", "tags": ["ci"]}),
            json!({"grant_types": ["client_credentials"], "owner": "a", "tags": ["ci", "trusted"]}),
            json!({"grant_types": ["client_credentials"], "owner": "a"}),
        ] {
            assert!(check_update(&old, &meta(patch.clone())).is_err(), "{patch}");
        }
        let same =
            meta(json!({"grant_types": ["client_credentials"], "owner": "a", "tags": ["ci"]}));
        assert!(check_update(&old, &same).is_ok());
    }

    #[test]
    fn rfc9449_5_2_dpop_binding_may_be_turned_on_not_off() {
        let old = meta(base());
        let bound = with(json!({"dpop_bound_access_tokens": true}));
        assert!(check_update(&old, &bound).is_ok(), "binding tokens narrows");
        let err = check_update(&bound, &old).unwrap_err();
        assert!(err.description.contains("dpop_bound_access_tokens"));
    }

    #[test]
    fn stronger_auth_and_same_strength_are_accepted() {
        let old = meta(base());
        assert!(check_update(
            &old,
            &with(json!({"token_endpoint_auth_method": "client_secret_post"}))
        )
        .is_ok());
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
        let stronger = with(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}));
        assert!(check_update(&old, &stronger).is_ok());
        let back = check_update(&stronger, &old).unwrap_err();
        assert!(back.description.contains("weaken"));
    }

    proptest::proptest! {
        /// Whatever subset of scopes is kept, narrowing is accepted; any
        /// new scope is refused.
        #[test]
        fn scope_subsets_pass_and_supersets_fail(keep in proptest::collection::vec(proptest::bool::ANY, 4), extra in "[a-z]{1,8}") {
            let all = ["a", "b", "c", "d"];
            let old = with(json!({"scope": all.join(" ")}));
            let kept: Vec<&str> = all.iter().zip(&keep).filter(|(_, k)| **k).map(|(s, _)| *s).collect();
            let narrowed = with(json!({"scope": if kept.is_empty() { serde_json::Value::Null } else { kept.join(" ").into() }}));
            proptest::prop_assert!(check_update(&old, &narrowed).is_ok());
            if !all.contains(&extra.as_str()) {
                let widened = with(json!({"scope": format!("{} {extra}", all.join(" "))}));
                proptest::prop_assert!(check_update(&old, &widened).is_err());
            }
        }
    }
}
