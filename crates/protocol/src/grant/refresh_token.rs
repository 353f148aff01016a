//! The refresh token grant (RFC 6749 §6; draft-ietf-oauth-v2-1 §4.3).
//!
//! A refresh never widens: the scopes asked must be among those originally
//! granted (§6), and the resources asked among those of the grant (RFC 8707
//! §2.2); asking nothing gets what was granted. Confidential clients have
//! authenticated before [`decide`] is called.
//!
//! Needs: what the token's family (the chain of rotated refresh tokens of
//! one authorization) was granted ([`FamilyFacts`]). Whether the token is
//! the family's current one, revoked or expired is the store's decision
//! (rotation, OAuth 2.1 §4.3.1; RFC 9700 §4.14.2), made atomically before or
//! with this one.

use super::{parse_resources, Grant};
use crate::error::echo;
use crate::form::FormParams;
use crate::metadata::ClientMetadata;
use crate::names::GRANT_REFRESH_TOKEN;
use crate::scope::parse_scope;
use crate::{ErrorCode, OAuthError};

/// Longest `refresh_token` accepted, characters.
pub const MAX_REFRESH_TOKEN_LENGTH: usize = 512;

/// Longest request text echoed in an error description, characters.
const ECHO_CHARS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRequest {
    pub refresh_token: String,
    /// `scope` as asked; `None` when absent (or empty): the granted scopes.
    pub scope: Option<Vec<String>>,
    /// RFC 8707 resource indicators; empty: the granted resources.
    pub resources: Vec<String>,
}

/// §6: `refresh_token` required (at most [`MAX_REFRESH_TOKEN_LENGTH`]
/// characters), optional `scope` (RFC 6749 §3.3 syntax, else
/// `invalid_scope`) and RFC 8707 `resource` (else `invalid_target`).
pub fn parse(form: &FormParams) -> Result<RefreshTokenRequest, OAuthError> {
    let refresh_token = form.require("refresh_token")?;
    if refresh_token.chars().count() > MAX_REFRESH_TOKEN_LENGTH {
        return Err(OAuthError::invalid_request(format!(
            "refresh_token is longer than {MAX_REFRESH_TOKEN_LENGTH} characters"
        )));
    }
    let scope = form
        .get("scope")
        .map(parse_scope)
        .transpose()?
        .filter(|scopes| !scopes.is_empty());
    let resources = parse_resources(form)?;
    Ok(RefreshTokenRequest {
        refresh_token: refresh_token.to_owned(),
        scope,
        resources,
    })
}

/// What the refresh token's family was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyFacts<'a> {
    /// The client the family was issued to.
    pub client_id: &'a str,
    /// The person who authorized.
    pub subject: &'a str,
    /// The scopes originally granted.
    pub scopes: Vec<String>,
    /// The RFC 8707 resources originally granted (empty: the default
    /// audience).
    pub resources: Vec<String>,
    /// RFC 9449 §5: the DPoP key the family is bound to.
    pub dpop_jkt: Option<&'a str>,
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

/// Decides what a refresh issues.
///
/// - the client must be registered for the grant → else `unauthorized_client`;
/// - the family must belong to the client → else `invalid_grant` (§6: "the
///   refresh token was issued to the authenticated client");
/// - a family bound to a DPoP key needs a proof made with that key → else
///   `invalid_grant` (RFC 9449 §5; the proof itself was verified by the
///   caller, so what fails is the token's binding, not the proof);
/// - every scope asked must have been granted → else `invalid_scope`; none
///   asked: the granted ones;
/// - every resource asked must have been granted → else `invalid_target`;
///   none asked: the granted ones, or `default_audience` when none was.
pub fn decide(
    request: &RefreshTokenRequest,
    facts: &FamilyFacts<'_>,
    client_id: &str,
    client: &ClientMetadata,
    proof_jkt: Option<&str>,
    default_audience: &str,
) -> Result<Grant, OAuthError> {
    if !client.allows_grant(GRANT_REFRESH_TOKEN) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the refresh_token grant",
        ));
    }
    if facts.client_id != client_id {
        return Err(invalid_grant(
            "the refresh token was not issued to this client",
        ));
    }
    if let Some(bound) = facts.dpop_jkt {
        match proof_jkt {
            Some(jkt) if jkt == bound => {}
            Some(_) => {
                return Err(invalid_grant(
                    "the refresh token is bound to another DPoP key (RFC 9449 section 5)",
                ))
            }
            None => {
                return Err(invalid_grant(
                    "the refresh token is bound to a DPoP key: the request needs a DPoP proof made with it (RFC 9449 section 5)",
                ))
            }
        }
    }
    let scopes = match &request.scope {
        Some(asked) => {
            if let Some(bad) = asked.iter().find(|s| !facts.scopes.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope '{}' was not granted: a refresh may narrow the scope, never widen it (RFC 6749 section 6)",
                    echo(bad, ECHO_CHARS)
                )));
            }
            asked.clone()
        }
        None => facts.scopes.clone(),
    };
    let audience = if !request.resources.is_empty() {
        if let Some(bad) = request
            .resources
            .iter()
            .find(|r| !facts.resources.contains(r))
        {
            return Err(OAuthError::invalid_target(format!(
                "resource '{}' was not granted: a refresh may narrow the resources, never widen them (RFC 8707 section 2.2)",
                echo(bad, ECHO_CHARS)
            )));
        }
        request.resources.clone()
    } else if facts.resources.is_empty() {
        vec![default_audience.to_owned()]
    } else {
        facts.resources.clone()
    };
    Ok(Grant {
        subject: facts.subject.to_owned(),
        scopes,
        audience,
        lifetime: client.access_token_lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{validate_registration, RegistrationRules};
    use proptest::prelude::*;
    use serde_json::json;

    const AS: &str = "https://as.example";
    const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const OTHER_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    const API: &str = "https://api.example";
    const B: &str = "https://b.example";

    fn client(grant_types: &[&str]) -> ClientMetadata {
        validate_registration(
            &json!({
                "redirect_uris": ["https://app.example/cb"],
                "token_endpoint_auth_method": "none",
                "grant_types": grant_types,
                "scope": "read write admin",
                "access_token_lifetime": 900,
            }),
            &RegistrationRules::default(),
        )
        .unwrap()
    }

    fn refreshing() -> ClientMetadata {
        client(&["authorization_code", "refresh_token"])
    }

    fn facts() -> FamilyFacts<'static> {
        FamilyFacts {
            client_id: "c1",
            subject: "alice",
            scopes: vec!["read".into(), "write".into()],
            resources: vec![API.into(), B.into()],
            dpop_jkt: None,
        }
    }

    fn request(body: &str) -> RefreshTokenRequest {
        parse(&FormParams::parse(body.as_bytes()).unwrap()).unwrap()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn rfc6749_6_parse() {
        let cases: [(&str, Result<RefreshTokenRequest, ErrorCode>); 7] = [
            (
                "grant_type=refresh_token&refresh_token=rt",
                Ok(RefreshTokenRequest {
                    refresh_token: "rt".into(),
                    scope: None,
                    resources: vec![],
                }),
            ),
            (
                "refresh_token=rt&scope=read+write&resource=https%3A%2F%2Fapi.example",
                Ok(RefreshTokenRequest {
                    refresh_token: "rt".into(),
                    scope: Some(strings(&["read", "write"])),
                    resources: strings(&[API]),
                }),
            ),
            (
                "refresh_token=rt&scope=+",
                Ok(RefreshTokenRequest {
                    refresh_token: "rt".into(),
                    scope: None,
                    resources: vec![],
                }),
            ),
            ("grant_type=refresh_token", Err(ErrorCode::InvalidRequest)),
            ("refresh_token=", Err(ErrorCode::InvalidRequest)),
            ("refresh_token=rt&scope=%22", Err(ErrorCode::InvalidScope)),
            (
                "refresh_token=rt&resource=%2Fapi",
                Err(ErrorCode::InvalidTarget),
            ),
        ];
        for (body, expected) in cases {
            let got = parse(&FormParams::parse(body.as_bytes()).unwrap()).map_err(|e| e.code);
            assert_eq!(got, expected, "{body}");
        }
        let at_limit = format!("refresh_token={}", "r".repeat(MAX_REFRESH_TOKEN_LENGTH));
        assert!(parse(&FormParams::parse(at_limit.as_bytes()).unwrap()).is_ok());
        let over = format!("refresh_token={}", "r".repeat(MAX_REFRESH_TOKEN_LENGTH + 1));
        let err = parse(&FormParams::parse(over.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn rfc6749_6_scope_may_narrow_never_widen() {
        let cases: [(&str, Result<Vec<&str>, ErrorCode>); 6] = [
            ("refresh_token=rt", Ok(vec!["read", "write"])),
            ("refresh_token=rt&scope=read", Ok(vec!["read"])),
            (
                "refresh_token=rt&scope=write+read",
                Ok(vec!["write", "read"]),
            ),
            // Registered for the client, but never granted.
            ("refresh_token=rt&scope=admin", Err(ErrorCode::InvalidScope)),
            (
                "refresh_token=rt&scope=read+admin",
                Err(ErrorCode::InvalidScope),
            ),
            ("refresh_token=rt&scope=other", Err(ErrorCode::InvalidScope)),
        ];
        for (body, expected) in cases {
            let got = decide(&request(body), &facts(), "c1", &refreshing(), None, AS)
                .map(|g| g.scopes)
                .map_err(|e| e.code);
            assert_eq!(got, expected.map(|v| strings(&v)), "{body}");
        }
    }

    /// (what was granted, the request, the audience expected)
    type ResourceCase = (
        FamilyFacts<'static>,
        String,
        Result<Vec<&'static str>, ErrorCode>,
    );

    #[test]
    fn rfc8707_2_2_resources_may_narrow_never_widen() {
        let api = "resource=https%3A%2F%2Fapi.example";
        let other = "resource=https%3A%2F%2Fother.example";
        let cases: [ResourceCase; 6] = [
            (facts(), "refresh_token=rt".into(), Ok(vec![API, B])),
            (facts(), format!("refresh_token=rt&{api}"), Ok(vec![API])),
            (
                facts(),
                format!("refresh_token=rt&{other}"),
                Err(ErrorCode::InvalidTarget),
            ),
            (
                facts(),
                format!("refresh_token=rt&{api}&{other}"),
                Err(ErrorCode::InvalidTarget),
            ),
            // Granted for the default audience: no resource may be added.
            (
                FamilyFacts {
                    resources: vec![],
                    ..facts()
                },
                "refresh_token=rt".into(),
                Ok(vec![AS]),
            ),
            (
                FamilyFacts {
                    resources: vec![],
                    ..facts()
                },
                format!("refresh_token=rt&{api}"),
                Err(ErrorCode::InvalidTarget),
            ),
        ];
        for (facts, body, expected) in cases {
            let got = decide(&request(&body), &facts, "c1", &refreshing(), None, AS)
                .map(|g| g.audience)
                .map_err(|e| e.code);
            assert_eq!(got, expected.map(|v| strings(&v)), "{body}");
        }
    }

    #[test]
    fn rfc6749_6_family_must_belong_to_the_client() {
        let err = decide(
            &request("refresh_token=rt"),
            &facts(),
            "c2",
            &refreshing(),
            None,
            AS,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidGrant);
    }

    #[test]
    fn rfc9449_5_family_bound_to_a_dpop_key_needs_that_key() {
        let bound = FamilyFacts {
            dpop_jkt: Some(JKT),
            ..facts()
        };
        let cases: [(&FamilyFacts<'_>, Option<&str>, bool); 5] = [
            (&bound, Some(JKT), true),
            (&bound, Some(OTHER_JKT), false),
            (&bound, None, false),
            (&facts(), Some(JKT), true),
            (&facts(), None, true),
        ];
        for (facts, proof_jkt, accepted) in cases {
            let got = decide(
                &request("refresh_token=rt"),
                facts,
                "c1",
                &refreshing(),
                proof_jkt,
                AS,
            );
            match got {
                Ok(_) => assert!(accepted, "{:?} {proof_jkt:?}", facts.dpop_jkt),
                Err(e) => {
                    assert!(!accepted, "{:?} {proof_jkt:?}", facts.dpop_jkt);
                    assert_eq!(e.code, ErrorCode::InvalidGrant);
                    assert!(e.description.contains("DPoP"));
                }
            }
        }
    }

    #[test]
    fn rfc6749_5_2_client_not_registered_for_refresh_is_unauthorized_client() {
        let err = decide(
            &request("refresh_token=rt"),
            &facts(),
            "c1",
            &client(&["authorization_code"]),
            None,
            AS,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::UnauthorizedClient);
    }

    #[test]
    fn oauth21_4_3_grant_keeps_subject_and_client_lifetime() {
        let grant = decide(
            &request("refresh_token=rt"),
            &facts(),
            "c1",
            &refreshing(),
            None,
            AS,
        )
        .unwrap();
        assert_eq!(
            grant,
            Grant {
                subject: "alice".into(),
                scopes: strings(&["read", "write"]),
                audience: strings(&[API, B]),
                lifetime: 900,
            }
        );
    }

    const UNIVERSE: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
    const RESOURCES: [&str; 4] = [
        "https://r0.example",
        "https://r1.example",
        "https://r2.example",
        "https://r3.example",
    ];

    fn pick(all: &[&str], mask: u8) -> Vec<String> {
        all.iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, s)| (*s).to_owned())
            .collect()
    }

    proptest! {
        #[test]
        fn rfc6749_6_any_subset_of_the_granted_scopes_passes_any_superset_fails(
            granted in 0u8..64,
            asked in 1u8..64,
        ) {
            let facts = FamilyFacts { scopes: pick(&UNIVERSE, granted), ..facts() };
            let body = format!("refresh_token=rt&scope={}", pick(&UNIVERSE, asked).join("+"));
            let got = decide(&request(&body), &facts, "c1", &refreshing(), None, AS);
            if asked & !granted == 0 {
                prop_assert_eq!(got.unwrap().scopes, pick(&UNIVERSE, asked));
            } else {
                prop_assert_eq!(got.unwrap_err().code, ErrorCode::InvalidScope);
            }
        }

        #[test]
        fn rfc8707_any_subset_of_the_granted_resources_passes_any_superset_fails(
            granted in 0u8..16,
            asked in 1u8..16,
        ) {
            let facts = FamilyFacts { resources: pick(&RESOURCES, granted), ..facts() };
            let body: String = std::iter::once("refresh_token=rt".to_owned())
                .chain(pick(&RESOURCES, asked).iter().map(|r| {
                    format!("resource={}", form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>())
                }))
                .collect::<Vec<_>>()
                .join("&");
            let got = decide(&request(&body), &facts, "c1", &refreshing(), None, AS);
            if asked & !granted == 0 {
                prop_assert_eq!(got.unwrap().audience, pick(&RESOURCES, asked));
            } else {
                prop_assert_eq!(got.unwrap_err().code, ErrorCode::InvalidTarget);
            }
        }

        #[test]
        fn a_refresh_never_widens(
            granted in 0u8..64,
            body_scope in proptest::option::of("[a-g ]{0,12}"),
        ) {
            let facts = FamilyFacts { scopes: pick(&UNIVERSE, granted), ..facts() };
            let body = match &body_scope {
                Some(scope) => format!("refresh_token=rt&scope={}", scope.replace(' ', "+")),
                None => "refresh_token=rt".to_owned(),
            };
            if let Ok(request) = parse(&FormParams::parse(body.as_bytes()).unwrap()) {
                if let Ok(grant) = decide(&request, &facts, "c1", &refreshing(), None, AS) {
                    prop_assert!(grant.scopes.iter().all(|s| facts.scopes.contains(s)));
                }
            }
        }
    }
}
