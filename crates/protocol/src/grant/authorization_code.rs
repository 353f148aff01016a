//! The authorization code grant's token request (draft-ietf-oauth-v2-1
//! §4.1.3; RFC 6749 §4.1.3).
//!
//! The client exchanges the code the authorization endpoint returned
//! (`authorize`) for tokens, proving with `code_verifier` that it is the
//! one that started the flow (PKCE, RFC 7636 §4.5–4.6). Confidential
//! clients have authenticated before [`decide`] is called; a public
//! client's `client_id` is the one it identified itself with.
//!
//! Needs: what was stored with the code ([`CodeFacts`]); whether the code
//! was already used is the store's single-use decision, not this one's
//! (RFC 9700 §4.5 revokes what a replayed code issued).

use super::Grant;
use crate::form::FormParams;
use crate::metadata::ClientMetadata;
use crate::names::GRANT_AUTHORIZATION_CODE;
use crate::pkce::verify_s256;
use crate::{ErrorCode, OAuthError};

/// Longest `code` accepted, characters.
pub const MAX_CODE_LENGTH: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRequest {
    pub code: String,
    /// As sent in the token request, if at all.
    pub redirect_uri: Option<String>,
    pub code_verifier: String,
    /// RFC 8707 `resource` of the token request: one or more of the
    /// authorization request's, or none (all of them).
    pub resources: Vec<String>,
}

/// §4.1.3: `code` and `code_verifier` required (`invalid_request`); `code`
/// at most [`MAX_CODE_LENGTH`] characters; `redirect_uri` optional here
/// (whether it was required is [`decide`]'s question).
pub fn parse(form: &FormParams) -> Result<AuthorizationCodeRequest, OAuthError> {
    let code = form.require("code")?;
    if code.chars().count() > MAX_CODE_LENGTH {
        return Err(OAuthError::invalid_request(format!(
            "code is longer than {MAX_CODE_LENGTH} characters"
        )));
    }
    let code_verifier = form.require("code_verifier")?;
    Ok(AuthorizationCodeRequest {
        code: code.to_owned(),
        redirect_uri: form.get("redirect_uri").map(str::to_owned),
        code_verifier: code_verifier.to_owned(),
        resources: super::parse_resources(form)?,
    })
}

/// What was stored with the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeFacts<'a> {
    /// The client the code was issued to.
    pub client_id: &'a str,
    /// The redirect URI of the authorization request, resolved.
    pub redirect_uri: &'a str,
    /// Its `S256` challenge.
    pub code_challenge: &'a str,
    /// The person who authorized.
    pub subject: &'a str,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// RFC 8707 resources of the authorization request.
    pub resources: Vec<String>,
    /// RFC 9449 §10: the DPoP key the code is bound to.
    pub dpop_jkt: Option<&'a str>,
    /// Seconds since the epoch.
    pub expires_at: i64,
}

fn invalid_grant(description: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidGrant, description)
}

/// Decides what to issue for a code.
///
/// - the client must be registered for the grant → else `unauthorized_client`;
/// - `invalid_grant` when: the code was issued to another client (§4.1.3);
///   it expired (`now >= expires_at`); `redirect_uri` differs from the
///   authorization request's — if the token request carries one it must be
///   identical, and if it does not, the authorization request cannot have
///   sent one either, which holds only when the client has exactly one
///   registered redirect URI and that is the one stored; PKCE fails
///   (RFC 7636 §4.6); the code is bound to a DPoP key and the request's
///   proof (`proof_jkt`, the verified proof's thumbprint) is absent or made
///   with another key (RFC 9449 §10).
///
/// The grant: `sub` the person, the scopes granted, `aud` the resources of
/// the authorization request or `default_audience` when none, the client's
/// access token lifetime.
pub fn decide(
    request: &AuthorizationCodeRequest,
    facts: &CodeFacts<'_>,
    client_id: &str,
    client: &ClientMetadata,
    proof_jkt: Option<&str>,
    default_audience: &str,
    now: i64,
) -> Result<Grant, OAuthError> {
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the authorization_code grant",
        ));
    }
    if facts.client_id != client_id {
        return Err(invalid_grant(
            "the authorization code was not issued to this client",
        ));
    }
    if now >= facts.expires_at {
        return Err(invalid_grant("the authorization code has expired"));
    }
    match request.redirect_uri.as_deref() {
        Some(sent) if sent == facts.redirect_uri => {}
        Some(_) => {
            return Err(invalid_grant(
                "redirect_uri is not identical to the one in the authorization request",
            ))
        }
        None => {
            let only_registered =
                matches!(client.redirect_uris.as_slice(), [only] if only == facts.redirect_uri);
            if !only_registered {
                return Err(invalid_grant(
                    "redirect_uri is required: it was included in the authorization request",
                ));
            }
        }
    }
    if !verify_s256(&request.code_verifier, facts.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge of the authorization request (RFC 7636 section 4.6)",
        ));
    }
    if let Some(bound) = facts.dpop_jkt {
        match proof_jkt {
            Some(jkt) if jkt == bound => {}
            Some(_) => {
                return Err(invalid_grant(
                    "the authorization code is bound to another DPoP key (dpop_jkt, RFC 9449 section 10)",
                ))
            }
            None => {
                return Err(invalid_grant(
                    "the authorization code is bound to a DPoP key: the request needs a DPoP proof made with it (RFC 9449 section 10)",
                ))
            }
        }
    }
    // RFC 8707 §2.2 (and MCP: the token request's resource must match
    // the authorization's): a resource named here must be one the person
    // authorized; the token is then for those only.
    if let Some(other) = request
        .resources
        .iter()
        .find(|r| !facts.resources.contains(r))
    {
        return Err(OAuthError::invalid_target(format!(
            "resource '{}' was not part of the authorization request (RFC 8707 section 2.2)",
            crate::error::echo(other, 200)
        )));
    }
    let audience = if !request.resources.is_empty() {
        request.resources.clone()
    } else if facts.resources.is_empty() {
        vec![default_audience.to_owned()]
    } else {
        facts.resources.clone()
    };
    Ok(Grant {
        subject: facts.subject.to_owned(),
        scopes: facts.scopes.clone(),
        audience,
        lifetime: client.access_token_lifetime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{validate_registration, RegistrationRules};
    use serde_json::json;

    const AS: &str = "https://as.example";
    const CB: &str = "https://app.example/cb";
    const NOW: i64 = 1_800_000_000;
    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const OTHER_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

    fn client(redirect_uris: &[&str]) -> ClientMetadata {
        validate_registration(
            &json!({
                "redirect_uris": redirect_uris,
                "token_endpoint_auth_method": "none",
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "read write",
                "access_token_lifetime": 600,
            }),
            &RegistrationRules::default(),
        )
        .unwrap()
    }

    fn facts() -> CodeFacts<'static> {
        CodeFacts {
            client_id: "c1",
            redirect_uri: CB,
            code_challenge: CHALLENGE,
            subject: "alice",
            scopes: vec!["read".into()],
            resources: vec![],
            dpop_jkt: None,
            expires_at: NOW + 60,
        }
    }

    fn request(redirect_uri: Option<&str>, verifier: &str) -> AuthorizationCodeRequest {
        AuthorizationCodeRequest {
            code: "the-code".into(),
            redirect_uri: redirect_uri.map(str::to_owned),
            code_verifier: verifier.into(),
            resources: vec![],
        }
    }

    fn ok() -> AuthorizationCodeRequest {
        request(Some(CB), VERIFIER)
    }

    fn decide_with(
        request: &AuthorizationCodeRequest,
        facts: &CodeFacts<'_>,
        client: &ClientMetadata,
        proof_jkt: Option<&str>,
        now: i64,
    ) -> Result<Grant, ErrorCode> {
        decide(request, facts, "c1", client, proof_jkt, AS, now).map_err(|e| e.code)
    }

    #[test]
    fn oauth21_4_1_3_parse() {
        let cases: [(&str, Result<AuthorizationCodeRequest, ErrorCode>); 5] = [
            (
                "grant_type=authorization_code&code=abc&code_verifier=v&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
                Ok(AuthorizationCodeRequest {
                    code: "abc".into(),
                    redirect_uri: Some(CB.into()),
                    code_verifier: "v".into(),
                    resources: vec![],
                }),
            ),
            (
                "code=abc&code_verifier=v",
                Ok(AuthorizationCodeRequest {
                    code: "abc".into(),
                    redirect_uri: None,
                    code_verifier: "v".into(),
                    resources: vec![],
                }),
            ),
            ("code_verifier=v", Err(ErrorCode::InvalidRequest)),
            ("code=abc", Err(ErrorCode::InvalidRequest)),
            ("code=&code_verifier=v", Err(ErrorCode::InvalidRequest)),
        ];
        for (body, expected) in cases {
            let got = parse(&FormParams::parse(body.as_bytes()).unwrap()).map_err(|e| e.code);
            assert_eq!(got, expected, "{body}");
        }
        let at_limit = format!("code={}&code_verifier=v", "c".repeat(MAX_CODE_LENGTH));
        assert!(parse(&FormParams::parse(at_limit.as_bytes()).unwrap()).is_ok());
        let over = format!("code={}&code_verifier=v", "c".repeat(MAX_CODE_LENGTH + 1));
        let err = parse(&FormParams::parse(over.as_bytes()).unwrap()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn oauth21_4_1_3_valid_code_grant() {
        let grant = decide_with(&ok(), &facts(), &client(&[CB]), None, NOW).unwrap();
        assert_eq!(
            grant,
            Grant {
                subject: "alice".into(),
                scopes: vec!["read".into()],
                audience: vec![AS.into()],
                lifetime: 600,
            }
        );
    }

    /// RFC 8707 §2.2 (MCP: the token request's resource must match the
    /// authorization's): narrower or refused, never another.
    #[test]
    fn rfc8707_2_2_token_request_resource_must_be_one_authorized() {
        let facts = CodeFacts {
            resources: vec!["https://api.example".into(), "https://b.example".into()],
            ..facts()
        };
        let narrower = AuthorizationCodeRequest {
            resources: vec!["https://b.example".into()],
            ..ok()
        };
        let grant = decide_with(&narrower, &facts, &client(&[CB]), None, NOW).unwrap();
        assert_eq!(grant.audience, vec!["https://b.example".to_owned()]);
        let other = AuthorizationCodeRequest {
            resources: vec!["https://c.example".into()],
            ..ok()
        };
        assert_eq!(
            decide_with(&other, &facts, &client(&[CB]), None, NOW),
            Err(ErrorCode::InvalidTarget)
        );
        // Nothing authorized for a resource: naming one is refused.
        assert_eq!(
            decide_with(&other, &self::facts(), &client(&[CB]), None, NOW),
            Err(ErrorCode::InvalidTarget)
        );
    }

    #[test]
    fn rfc8707_resources_of_the_authorization_request_are_the_audience() {
        let facts = CodeFacts {
            resources: vec!["https://api.example".into(), "https://b.example".into()],
            ..facts()
        };
        let grant = decide_with(&ok(), &facts, &client(&[CB]), None, NOW).unwrap();
        assert_eq!(
            grant.audience,
            vec!["https://api.example", "https://b.example"]
        );
    }

    #[test]
    fn oauth21_4_1_3_code_issued_to_another_client_is_invalid_grant() {
        let facts = CodeFacts {
            client_id: "c2",
            ..facts()
        };
        assert_eq!(
            decide_with(&ok(), &facts, &client(&[CB]), None, NOW),
            Err(ErrorCode::InvalidGrant)
        );
    }

    #[test]
    fn oauth21_4_1_3_expired_code_is_invalid_grant() {
        let cases: [(i64, bool); 4] = [
            (NOW + 59, true),
            (NOW + 60, false),
            (NOW + 61, false),
            (i64::MAX, false),
        ];
        for (now, ok_) in cases {
            let got = decide_with(&ok(), &facts(), &client(&[CB]), None, now);
            assert_eq!(got.is_ok(), ok_, "now = expires_at {:+}", now - NOW - 60);
        }
    }

    #[test]
    fn oauth21_4_1_3_redirect_uri_must_be_identical() {
        let loopback = "http://127.0.0.1/cb";
        let loopback_sent = "http://127.0.0.1:51234/cb";
        // (registered, stored by the authorization request, sent now, accepted)
        let cases: [(&[&str], &str, Option<&str>, bool); 11] = [
            (&[CB], CB, Some(CB), true),
            (&[CB], CB, None, true),
            (&[CB], CB, Some("https://app.example/cb/"), false),
            (&[CB], CB, Some("https://APP.example/cb"), false),
            (&[CB], CB, Some("https://app.example/cb?x=1"), false),
            (&[CB, "https://app.example/2"], CB, Some(CB), true),
            // Two registered: the authorization request had to name one.
            (&[CB, "https://app.example/2"], CB, None, false),
            // A loopback port chosen at the authorization request was sent
            // there, so it must be sent again, port and all.
            (&[loopback], loopback_sent, Some(loopback_sent), true),
            (&[loopback], loopback_sent, None, false),
            (&[loopback], loopback_sent, Some(loopback), false),
            // The registration changed since the code was issued.
            (&["https://app.example/new"], CB, None, false),
        ];
        for (registered, stored, sent, accepted) in cases {
            let facts = CodeFacts {
                redirect_uri: stored,
                ..facts()
            };
            let got = decide_with(
                &request(sent, VERIFIER),
                &facts,
                &client(registered),
                None,
                NOW,
            );
            match got {
                Ok(_) => assert!(accepted, "{registered:?} {stored} {sent:?}"),
                Err(code) => {
                    assert!(!accepted, "{registered:?} {stored} {sent:?}");
                    assert_eq!(code, ErrorCode::InvalidGrant);
                }
            }
        }
    }

    #[test]
    fn rfc7636_4_6_pkce_verifier_must_match() {
        let cases: [(&str, String, bool); 5] = [
            ("Appendix B", VERIFIER.to_owned(), true),
            ("another verifier", "a".repeat(43), false),
            ("the challenge itself (plain)", CHALLENGE.to_owned(), false),
            ("too short", VERIFIER[..42].to_owned(), false),
            ("a character outside the set", format!("{VERIFIER}+"), false),
        ];
        for (case, verifier, accepted) in cases {
            let got = decide_with(
                &request(Some(CB), &verifier),
                &facts(),
                &client(&[CB]),
                None,
                NOW,
            );
            match got {
                Ok(_) => assert!(accepted, "{case}"),
                Err(code) => {
                    assert!(!accepted, "{case}");
                    assert_eq!(code, ErrorCode::InvalidGrant, "{case}");
                }
            }
        }
    }

    #[test]
    fn rfc9449_10_code_bound_to_a_dpop_key_needs_that_key() {
        let bound = CodeFacts {
            dpop_jkt: Some(JKT),
            ..facts()
        };
        let cases: [(&CodeFacts<'_>, Option<&str>, bool); 5] = [
            (&bound, Some(JKT), true),
            (&bound, Some(OTHER_JKT), false),
            (&bound, None, false),
            // An unbound code may be redeemed with or without a proof (the
            // token is then bound or not by the caller).
            (&facts(), Some(JKT), true),
            (&facts(), None, true),
        ];
        for (facts, proof_jkt, accepted) in cases {
            let got = decide_with(&ok(), facts, &client(&[CB]), proof_jkt, NOW);
            match got {
                Ok(_) => assert!(accepted, "{:?} {proof_jkt:?}", facts.dpop_jkt),
                Err(code) => {
                    assert!(!accepted, "{:?} {proof_jkt:?}", facts.dpop_jkt);
                    assert_eq!(code, ErrorCode::InvalidGrant);
                }
            }
        }
    }

    #[test]
    fn rfc6749_5_2_client_not_registered_for_code_is_unauthorized_client() {
        let m = validate_registration(
            &json!({"grant_types": ["client_credentials"], "scope": "read"}),
            &RegistrationRules::default(),
        )
        .unwrap();
        assert_eq!(
            decide_with(&ok(), &facts(), &m, None, NOW),
            Err(ErrorCode::UnauthorizedClient)
        );
    }

    proptest::proptest! {
        #[test]
        fn decide_never_panics_and_grants_only_what_was_stored(
            code in "\\PC{0,40}",
            verifier in proptest::prop_oneof![
                proptest::strategy::Just(VERIFIER.to_owned()),
                "[A-Za-z0-9._~-]{0,130}",
            ],
            redirect_uri in proptest::option::of(proptest::sample::select(vec![CB, "https://app.example/x", ""])),
            proof in proptest::option::of(proptest::sample::select(vec![JKT, OTHER_JKT])),
            bound in proptest::bool::ANY,
            now in NOW - 10..NOW + 100,
        ) {
            let request = AuthorizationCodeRequest {
                code,
                redirect_uri: redirect_uri.map(str::to_owned),
                code_verifier: verifier.clone(),
                resources: vec![],
            };
            let facts = CodeFacts { dpop_jkt: bound.then_some(JKT), ..facts() };
            if let Ok(grant) = decide_with(&request, &facts, &client(&[CB]), proof, now) {
                proptest::prop_assert_eq!(verifier, VERIFIER);
                proptest::prop_assert!(now < facts.expires_at);
                proptest::prop_assert!(!bound || proof == Some(JKT));
                proptest::prop_assert_eq!(grant.scopes, facts.scopes);
                proptest::prop_assert_eq!(grant.subject, "alice");
            }
        }
    }
}
