//! The client credentials grant (RFC 6749 §4.4).
//!
//! "The client can request an access token using only its client
//! credentials … when the client is requesting access to the protected
//! resources under its control" (§4.4). The client MUST authenticate
//! (§4.4.2); that has happened before [`decide`] is called. No refresh token
//! is issued (§4.4.3).
//!
//! Needs: the client's registered metadata, its id, the registered resources
//! named by `resource` (RFC 8707), and the default audience.

use super::{parse_resources, Grant, KnownResource};
use crate::form::FormParams;
use crate::metadata::{AuthMethod, ClientMetadata};
use crate::names::GRANT_CLIENT_CREDENTIALS;
use crate::scope::parse_scope;
use crate::OAuthError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentialsRequest {
    /// `scope` as asked; `None` when absent (the registered scopes apply).
    pub scope: Option<Vec<String>>,
    /// RFC 8707 resource indicators.
    pub resources: Vec<String>,
}

/// §4.4.2: `grant_type` (already read), optional `scope`, and RFC 8707 `resource`.
pub fn parse(form: &FormParams) -> Result<ClientCredentialsRequest, OAuthError> {
    let scope = form.get("scope").map(parse_scope).transpose()?;
    let resources = parse_resources(form)?;
    Ok(ClientCredentialsRequest { scope, resources })
}

/// Decides what to issue to an authenticated client.
///
/// - the client must be registered for the grant → else `unauthorized_client`;
/// - every requested resource must be registered → else `invalid_target`;
/// - every requested scope must be registered for the client and, when
///   resources are named, offered by one of them → else `invalid_scope`;
/// - without `scope`, the client's registered scopes apply (RFC 6749 §3.3),
///   narrowed to those the named resources offer;
/// - `aud` is the named resources, or `default_audience` when none is named.
pub fn decide(
    request: &ClientCredentialsRequest,
    client_id: &str,
    client: &ClientMetadata,
    resources: &[KnownResource],
    default_audience: &str,
) -> Result<Grant, OAuthError> {
    if !client.allows_grant(GRANT_CLIENT_CREDENTIALS) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the client_credentials grant",
        ));
    }
    if client.token_endpoint_auth_method == AuthMethod::None {
        return Err(OAuthError::unauthorized_client(
            "a public client cannot use the client_credentials grant",
        ));
    }
    decide_for_itself(request, client_id, client, resources, default_audience)
}

/// A token for the client itself (`sub` = its id): the scopes and
/// audience of a client credentials request, checked against the client's
/// registration and the named resources. Shared with the JWT bearer grant,
/// where a workload's federated token stands in for client authentication.
pub(crate) fn decide_for_itself(
    request: &ClientCredentialsRequest,
    client_id: &str,
    client: &ClientMetadata,
    resources: &[KnownResource],
    default_audience: &str,
) -> Result<Grant, OAuthError> {
    let mut targets: Vec<&KnownResource> = Vec::with_capacity(request.resources.len());
    for uri in &request.resources {
        let known = resources.iter().find(|r| &r.uri == uri).ok_or_else(|| {
            OAuthError::invalid_target(format!("resource '{uri}' is not registered at this server"))
        })?;
        targets.push(known);
    }
    let offered = |scope: &String| targets.iter().any(|t| t.scopes.contains(scope));
    let registered = client.scopes();

    let scopes = match &request.scope {
        Some(asked) => {
            if let Some(bad) = asked.iter().find(|s| !registered.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope '{bad}' is not registered for this client"
                )));
            }
            if !targets.is_empty() {
                if let Some(bad) = asked.iter().find(|s| !offered(s)) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope '{bad}' is not offered by the requested resource"
                    )));
                }
            }
            asked.clone()
        }
        None if targets.is_empty() => registered,
        None => registered.into_iter().filter(|s| offered(s)).collect(),
    };

    let audience = if targets.is_empty() {
        vec![default_audience.to_owned()]
    } else {
        targets.iter().map(|t| t.uri.clone()).collect()
    };
    Ok(Grant {
        subject: client_id.to_owned(),
        scopes,
        audience,
        lifetime: client.access_token_lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{validate_registration, RegistrationRules};
    use crate::ErrorCode;
    use serde_json::json;

    const AS: &str = "https://as.example";

    fn client(scope: &str) -> ClientMetadata {
        validate_registration(
            &json!({"grant_types": ["client_credentials"], "scope": scope}),
            &RegistrationRules::default(),
        )
        .unwrap()
    }

    fn request(body: &str) -> ClientCredentialsRequest {
        parse(&FormParams::parse(body.as_bytes()).unwrap()).unwrap()
    }

    fn api() -> Vec<KnownResource> {
        vec![KnownResource {
            uri: "https://api.example".into(),
            scopes: vec!["read".into(), "write".into()],
        }]
    }

    #[test]
    fn rfc6749_4_4_default_scope_is_registered_scope() {
        let grant = decide(
            &request("grant_type=client_credentials"),
            "c1",
            &client("read write"),
            &[],
            AS,
        )
        .unwrap();
        assert_eq!(grant.scopes, vec!["read", "write"]);
        assert_eq!(grant.audience, vec![AS]);
        assert_eq!(grant.subject, "c1");
    }

    #[test]
    fn rfc6749_3_3_unregistered_scope_is_invalid_scope() {
        let err = decide(&request("scope=admin"), "c1", &client("read"), &[], AS).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
    }

    #[test]
    fn rfc8707_resource_sets_audience() {
        let grant = decide(
            &request("scope=read&resource=https%3A%2F%2Fapi.example"),
            "c1",
            &client("read"),
            &api(),
            AS,
        )
        .unwrap();
        assert_eq!(grant.audience, vec!["https://api.example"]);
    }

    #[test]
    fn rfc8707_unregistered_resource_is_invalid_target() {
        let err = decide(
            &request("resource=https%3A%2F%2Fother.example"),
            "c1",
            &client("read"),
            &api(),
            AS,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn rfc8707_2_resource_must_be_absolute_without_fragment() {
        for bad in ["resource=%2Fapi", "resource=https%3A%2F%2Fapi.example%23x"] {
            let err = parse(&FormParams::parse(bad.as_bytes()).unwrap()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidTarget, "{bad}");
        }
    }

    #[test]
    fn scope_not_offered_by_resource_is_invalid_scope() {
        let err = decide(
            &request("scope=admin&resource=https%3A%2F%2Fapi.example"),
            "c1",
            &client("read admin"),
            &api(),
            AS,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        let grant = decide(
            &request("resource=https%3A%2F%2Fapi.example"),
            "c1",
            &client("read admin"),
            &api(),
            AS,
        )
        .unwrap();
        assert_eq!(grant.scopes, vec!["read"]);
    }

    #[test]
    fn client_not_registered_for_grant_is_unauthorized_client() {
        let m = validate_registration(
            &json!({"redirect_uris": ["https://a.example/cb"]}),
            &RegistrationRules::default(),
        )
        .unwrap();
        let err = decide(&request("grant_type=client_credentials"), "c1", &m, &[], AS).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnauthorizedClient);
    }
}
