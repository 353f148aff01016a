//! The JWT bearer grant (RFC 7523 §2.1) for workload identity federation:
//! a token from a trusted issuer (a Kubernetes service-account token, a CI
//! OIDC token, a JWT-SVID) stands in for the client's credentials. Its
//! `iss` and `sub` select the client whose `federated_credentials` list
//! them (the MCP workload identity federation profile); the token issued
//! is the client's own, as with client credentials.
//!
//! Never single-use by default: workloads reuse such tokens until they near
//! expiry. A trusted issuer may opt in to single use.

use super::client_credentials::{decide_for_itself, ClientCredentialsRequest};
use super::{parse_resources, Grant, KnownResource};
use crate::form::FormParams;
use crate::metadata::ClientMetadata;
use crate::names::GRANT_JWT_BEARER;
use crate::scope::parse_scope;
use crate::OAuthError;

/// A JWT bearer request (RFC 7523 §2.1): `assertion`, optional `scope`,
/// RFC 8707 `resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBearerRequest {
    pub assertion: String,
    pub scope: Option<Vec<String>>,
    pub resources: Vec<String>,
}

pub fn parse(form: &FormParams) -> Result<JwtBearerRequest, OAuthError> {
    let assertion = form.require("assertion")?.to_owned();
    if assertion.len() > crate::federation::MAX_WORKLOAD_JWT {
        return Err(OAuthError::invalid_grant("the assertion is too long"));
    }
    let scope = form.get("scope").map(parse_scope).transpose()?;
    let resources = parse_resources(form)?;
    Ok(JwtBearerRequest {
        assertion,
        scope,
        resources,
    })
}

/// Decides what to issue to the client the verified assertion selected:
/// it must be registered for the grant (else `unauthorized_client`), then
/// the client credentials rules for scopes and resources apply.
pub fn decide(
    request: &JwtBearerRequest,
    client_id: &str,
    client: &ClientMetadata,
    resources: &[KnownResource],
    default_audience: &str,
) -> Result<Grant, OAuthError> {
    if !client.allows_grant(GRANT_JWT_BEARER) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {GRANT_JWT_BEARER} grant"
        )));
    }
    let as_client_credentials = ClientCredentialsRequest {
        scope: request.scope.clone(),
        resources: request.resources.clone(),
    };
    decide_for_itself(
        &as_client_credentials,
        client_id,
        client,
        resources,
        default_audience,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{validate_registration, RegistrationRules};
    use crate::ErrorCode;
    use serde_json::json;

    fn form(body: &str) -> FormParams {
        FormParams::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn rfc7523_2_1_assertion_is_required() {
        let missing = parse(&form("grant_type=x")).unwrap_err();
        assert_eq!(missing.code, ErrorCode::InvalidRequest);
        let ok = parse(&form("assertion=a.b.c&scope=read")).unwrap();
        assert_eq!(ok.scope, Some(vec!["read".to_owned()]));
    }

    #[test]
    fn the_client_must_register_the_grant_and_gets_only_its_scopes() {
        let registered = |grants: serde_json::Value| {
            validate_registration(
                &json!({"grant_types": grants, "scope": "read",
                        "token_endpoint_auth_method": "federated_jwt",
                        "federated_credentials": [{"issuer": "https://k8s.example", "subject": "s"}]}),
                &RegistrationRules::default(),
            )
            .unwrap()
        };
        let request = parse(&form("assertion=a.b.c")).unwrap();
        let without = registered(json!(["client_credentials"]));
        assert_eq!(
            decide(&request, "c", &without, &[], "https://as")
                .unwrap_err()
                .code,
            ErrorCode::UnauthorizedClient
        );
        let with = registered(json!([GRANT_JWT_BEARER]));
        let grant = decide(&request, "c", &with, &[], "https://as").unwrap();
        assert_eq!(grant.subject, "c");
        assert_eq!(grant.scopes, vec!["read".to_owned()]);
        let wider = parse(&form("assertion=a.b.c&scope=write")).unwrap();
        assert_eq!(
            decide(&wider, "c", &with, &[], "https://as")
                .unwrap_err()
                .code,
            ErrorCode::InvalidScope
        );
    }
}
