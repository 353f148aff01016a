use super::*;
use crate::metadata::{validate_registration, RegistrationRules};
use crate::ErrorCode;
use serde_json::json;

const AS: &str = "https://as.example";
const API: &str = "https://api.example";
const DOCS: &str = "https://docs.example";
const NOW: i64 = 1_000_000;
const AT: &str = TOKEN_TYPE_ACCESS_TOKEN;
const JKT: &str = "jkt-of-the-subject-key";

fn registered(metadata: serde_json::Value) -> ClientMetadata {
    let rules = RegistrationRules {
        grant_types: vec!["client_credentials", GRANT_TOKEN_EXCHANGE],
        ..RegistrationRules::default()
    };
    validate_registration(&metadata, &rules).unwrap()
}

/// A confidential agent registered for token exchange, scopes read and
/// write, 300 s tokens.
fn agent() -> ClientMetadata {
    registered(
        json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read write",
                      "access_token_lifetime": 300}),
    )
}

fn form(body: &str) -> FormParams {
    FormParams::parse(body.as_bytes()).unwrap()
}

fn request(extra: &str) -> TokenExchangeRequest {
    let body = format!("subject_token=s.t.x&subject_token_type={AT}{extra}");
    parse(&form(&body)).unwrap()
}

fn parse_err(body: &str) -> OAuthError {
    parse(&form(body)).unwrap_err()
}

/// A person's token of this server: read write on API and DOCS.
fn person_token() -> TokenFacts {
    TokenFacts {
        iss: AS.into(),
        sub: "alice".into(),
        client_id: Some("app".into()),
        exp: NOW + 3_600,
        scopes: Some(vec!["read".into(), "write".into()]),
        audience: vec![API.into(), DOCS.into()],
        cnf: None,
        act: None,
        may_act: None,
        origin: Origin::Custos {
            jti: "jti-person".into(),
            grant_id: Some("family-1".into()),
            ancestry: vec![],
            ancestry_clients: vec![],
            authorization_details: Some(json!([{"type": "payment", "amount": 5}])),
        },
    }
}

/// A client's own token of this server (client credentials).
fn client_token(client_id: &str) -> TokenFacts {
    TokenFacts {
        sub: client_id.into(),
        client_id: Some(client_id.into()),
        audience: vec![AS.into()],
        origin: Origin::Custos {
            jti: format!("jti-{client_id}"),
            grant_id: None,
            ancestry: vec![],
            ancestry_clients: vec![],
            authorization_details: None,
        },
        ..person_token()
    }
}

fn known() -> Vec<KnownResource> {
    vec![
        KnownResource {
            uri: API.into(),
            scopes: vec!["read".into(), "write".into()],
        },
        KnownResource {
            uri: DOCS.into(),
            scopes: vec!["read".into()],
        },
        KnownResource {
            uri: "https://other.example".into(),
            scopes: vec!["read".into()],
        },
    ]
}

fn facts<'a>(
    client_id: &'a str,
    client: &'a ClientMetadata,
    subject: &'a TokenFacts,
    resources: &'a [KnownResource],
) -> ExchangeFacts<'a> {
    ExchangeFacts {
        issuer: AS,
        client_id,
        client,
        subject,
        actor: None,
        resources,
        proof: KeyProof::default(),
        now: NOW,
        config: TokenExchangeConfig::default(),
    }
}

// --- parse ---------------------------------------------------------------

#[test]
fn rfc8693_2_1_subject_token_and_its_type_are_required() {
    let err = parse_err("grant_type=x");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(err.description.contains("subject_token"), "{err}");
    let err = parse_err("subject_token=a.b.c");
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(err.description.contains("subject_token_type"), "{err}");
    let err = parse_err(&format!("subject_token_type={AT}"));
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

#[test]
fn rfc8693_2_1_actor_token_and_its_type_come_together() {
    let err = parse_err(&format!(
        "subject_token=s&subject_token_type={AT}&actor_token=a"
    ));
    assert!(err.description.contains("actor_token_type"), "{err}");
    let err = parse_err(&format!(
        "subject_token=s&subject_token_type={AT}&actor_token_type={AT}"
    ));
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(err.description.contains("actor_token"), "{err}");
    let ok = request(&format!(
        "&actor_token=a.b.c&actor_token_type={TOKEN_TYPE_JWT}"
    ));
    assert_eq!(ok.actor.unwrap().token_type, TokenType::Jwt);
}

#[test]
fn rfc8693_3_unsupported_token_types_are_invalid_request_naming_the_parameter() {
    for (body, parameter) in [
        (
            "subject_token=s&subject_token_type=urn:ietf:params:oauth:token-type:saml2".to_owned(),
            "subject_token_type",
        ),
        (
            format!("subject_token=s&subject_token_type={AT}&actor_token=a&actor_token_type=urn:x"),
            "actor_token_type",
        ),
        (
            format!("subject_token=s&subject_token_type={AT}&requested_token_type=urn:ietf:params:oauth:token-type:refresh_token"),
            "requested_token_type",
        ),
    ] {
        let err = parse_err(&body);
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        assert!(err.description.starts_with(parameter), "{err}");
    }
}

#[test]
fn rfc8693_2_2_1_issued_token_type_echoes_the_requested_type() {
    let default = request("");
    assert_eq!(default.requested_token_type, TokenType::AccessToken);
    let jwt = request(&format!("&requested_token_type={TOKEN_TYPE_JWT}"));
    let client = agent();
    let subject = person_token();
    let resources = known();
    let exchange = decide(&jwt, &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(exchange.issued_token_type, TOKEN_TYPE_JWT);
    let exchange = decide(&default, &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(exchange.issued_token_type, TOKEN_TYPE_ACCESS_TOKEN);
}

#[test]
fn tokens_are_bounded_to_16_kib() {
    let long = "a".repeat(MAX_EXCHANGED_TOKEN + 1);
    let err = parse_err(&format!("subject_token={long}&subject_token_type={AT}"));
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(
        !err.description.contains(&long[..64]),
        "never echoes the token"
    );
    let err = parse_err(&format!(
        "subject_token=s&subject_token_type={AT}&actor_token={long}&actor_token_type={AT}"
    ));
    assert!(err.description.starts_with("actor_token"), "{err}");
}

#[test]
fn rfc8707_audience_and_resource_are_absolute_uris_and_bounded() {
    let both = request("&resource=https%3A%2F%2Fapi.example&audience=https%3A%2F%2Fdocs.example");
    assert_eq!(both.targets, vec![API, DOCS]);
    let same = request("&resource=https%3A%2F%2Fapi.example&audience=https%3A%2F%2Fapi.example");
    assert_eq!(same.targets, vec![API]);
    for bad in [
        "&audience=api",
        "&audience=https%3A%2F%2Fa.example%23f",
        "&resource=x",
    ] {
        let err = parse_err(&format!("subject_token=s&subject_token_type={AT}{bad}"));
        assert_eq!(err.code, ErrorCode::InvalidTarget, "{bad}");
    }
    let many: String = (0..MAX_RESOURCES)
        .map(|i| format!("&resource=https%3A%2F%2Fr{i}.example"))
        .collect();
    let err = parse_err(&format!(
        "subject_token=s&subject_token_type={AT}{many}&audience=https%3A%2F%2Fone-more.example"
    ));
    assert_eq!(err.code, ErrorCode::InvalidTarget);
}

#[test]
fn custos_task_id_is_1_to_128_safe_characters() {
    let ok = request("&task_id=ticket-42:step_1.a");
    assert_eq!(ok.task_id.as_deref(), Some("ticket-42:step_1.a"));
    let longest = "a".repeat(MAX_TASK_ID);
    assert!(parse(&form(&format!(
        "subject_token=s&subject_token_type={AT}&task_id={longest}"
    )))
    .is_ok());
    for bad in [
        "a".repeat(MAX_TASK_ID + 1),
        "has%20space".into(),
        "slash%2F".into(),
        "%C3%BC".into(),
        "quote%22".into(),
    ] {
        let err = parse_err(&format!(
            "subject_token=s&subject_token_type={AT}&task_id={bad}"
        ));
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
        assert!(err.description.starts_with("task_id"), "{err}");
    }
}

#[test]
fn custos_expires_in_is_a_positive_integer_that_only_shortens() {
    for bad in ["0", "-5", "1.5", "abc", "+60", "99999999999"] {
        let err = parse_err(&format!(
            "subject_token=s&subject_token_type={AT}&expires_in={bad}"
        ));
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
        assert!(err.description.starts_with("expires_in"), "{err}");
    }
    let client = agent();
    let subject = person_token();
    let resources = known();
    let f = facts("agent", &client, &subject, &resources);
    let exchange = decide(&request("&expires_in=60"), &f).unwrap();
    assert_eq!(exchange.grant.lifetime, 60);
    let exchange = decide(&request("&expires_in=300"), &f).unwrap();
    assert_eq!(exchange.grant.lifetime, 300);
    let err = decide(&request("&expires_in=301"), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(err.description.contains("300"), "{err}");
}

// --- the client ----------------------------------------------------------

#[test]
fn rfc8693_2_client_not_registered_for_the_grant_is_unauthorized_client() {
    let client = registered(json!({"grant_types": ["client_credentials"], "scope": "read"}));
    let subject = person_token();
    let err = decide(&request(""), &facts("c", &client, &subject, &[])).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnauthorizedClient);
    let public = registered(json!({"grant_types": [GRANT_TOKEN_EXCHANGE],
                                   "token_endpoint_auth_method": "none"}));
    let err = decide(&request(""), &facts("c", &public, &subject, &[])).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnauthorizedClient);
}

// --- §4.1 act ------------------------------------------------------------

#[test]
fn scope_defaults_to_the_subject_tokens_within_the_clients() {
    let client = registered(json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read admin"}));
    let subject = person_token();
    let resources = known();
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(
        exchange.grant.scopes,
        vec!["read"],
        "read write ∩ read admin"
    );
}

#[test]
fn scope_outside_the_subject_token_or_the_client_is_invalid_scope() {
    let client = registered(json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read admin"}));
    let subject = person_token();
    let resources = known();
    let f = facts("agent", &client, &subject, &resources);
    let err = decide(&request("&scope=admin"), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidScope);
    assert!(err.description.contains("subject token"), "{err}");
    let err = decide(&request("&scope=write"), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidScope);
    assert!(err.description.contains("registered"), "{err}");
    assert_eq!(
        decide(&request("&scope=read"), &f).unwrap().grant.scopes,
        vec!["read"]
    );
}

#[test]
fn rfc8707_targets_narrow_within_the_subject_tokens_resources() {
    let client = agent();
    let subject = person_token();
    let resources = known();
    let f = facts("agent", &client, &subject, &resources);
    let exchange = decide(&request(""), &f).unwrap();
    assert_eq!(
        exchange.grant.audience,
        vec![API, DOCS],
        "kept when none is asked"
    );
    let exchange = decide(&request("&audience=https%3A%2F%2Fdocs.example"), &f).unwrap();
    assert_eq!(exchange.grant.audience, vec![DOCS]);
    assert_eq!(exchange.grant.scopes, vec!["read"], "what docs offers");
    let err = decide(&request("&resource=https%3A%2F%2Fother.example"), &f).unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::InvalidTarget,
        "registered, but not the subject's"
    );
    let err = decide(&request("&resource=https%3A%2F%2Funknown.example"), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidTarget);
    let err = decide(
        &request("&audience=https%3A%2F%2Fdocs.example&scope=write"),
        &f,
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidScope, "docs offers no write");
}

#[test]
fn rfc8707_a_subject_without_resource_audiences_may_target_registered_resources() {
    let client = agent();
    let subject = client_token("agent");
    let resources = known();
    let f = facts("agent", &client, &subject, &resources);
    assert_eq!(decide(&request(""), &f).unwrap().grant.audience, vec![AS]);
    let exchange = decide(&request("&resource=https%3A%2F%2Fother.example"), &f).unwrap();
    assert_eq!(exchange.grant.audience, vec!["https://other.example"]);
    assert_eq!(exchange.grant.scopes, vec!["read"]);
    let err = decide(&request("&resource=https%3A%2F%2Funknown.example"), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidTarget);
}

#[test]
fn lifetime_is_the_shortest_of_client_subject_actor_and_expires_in() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    let lifetime = |subject: &TokenFacts, extra: &str| {
        decide(
            &request(extra),
            &facts("agent", &client, subject, &resources),
        )
        .map(|e| e.grant.lifetime)
    };
    assert_eq!(lifetime(&subject, ""), Ok(300), "the client's");
    subject.exp = NOW + 120;
    assert_eq!(
        lifetime(&subject, ""),
        Ok(120),
        "what remains of the subject token"
    );
    let mut actor = client_token("agent");
    actor.exp = NOW + 90;
    let mut with_actor = facts("agent", &client, &subject, &resources);
    with_actor.actor = Some(&actor);
    assert_eq!(
        decide(&request(""), &with_actor).unwrap().grant.lifetime,
        90
    );
    assert_eq!(
        decide(&request("&expires_in=30"), &with_actor)
            .unwrap()
            .grant
            .lifetime,
        30
    );
    subject.exp = NOW;
    assert_eq!(
        lifetime(&subject, "").unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn authorization_details_grant_id_and_ancestry_are_carried() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(
        exchange.authorization_details,
        Some(json!([{"type": "payment", "amount": 5}]))
    );
    assert_eq!(exchange.grant_id.as_deref(), Some("family-1"));
    assert_eq!(exchange.ancestry, vec!["jti-person"]);
    let first_client = subject.client_id.clone().unwrap();
    assert_eq!(exchange.ancestry_clients, vec![first_client.clone()]);
    if let Origin::Custos {
        ancestry,
        ancestry_clients,
        ..
    } = &mut subject.origin
    {
        *ancestry = vec!["jti-b".into(), "jti-a".into()];
        *ancestry_clients = vec!["b".into(), first_client.clone()];
    }
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(
        exchange.ancestry,
        vec!["jti-person", "jti-b", "jti-a"],
        "nearest first"
    );
    assert_eq!(
        exchange.ancestry_clients,
        vec![first_client, "b".to_owned()],
        "each client once: disabling any of them deactivates the exchanged token"
    );
}

#[test]
fn ancestry_is_bounded() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    let limit = TokenExchangeConfig::default().max_ancestry();
    if let Origin::Custos { ancestry, .. } = &mut subject.origin {
        *ancestry = (0..limit - 1).map(|i| format!("j{i}")).collect();
    }
    let f = facts("agent", &client, &subject, &resources);
    assert_eq!(decide(&request(""), &f).unwrap().ancestry.len(), limit);
    if let Origin::Custos { ancestry, .. } = &mut subject.origin {
        ancestry.push("one-more".into());
    }
    let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

// --- sender constraint -------------------------------------------------------

#[test]
fn rfc9449_a_dpop_bound_subject_token_needs_a_proof_with_its_key() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    subject.cnf = Some(Confirmation {
        jkt: Some(JKT.into()),
        x5t_s256: None,
    });
    let mut f = facts("agent", &client, &subject, &resources);
    let err = decide(&request(""), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(err.description.contains("cnf.jkt"), "{err}");
    f.proof.dpop_jkt = Some("another-key");
    assert_eq!(
        decide(&request(""), &f).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    f.proof.dpop_jkt = Some(JKT);
    assert!(decide(&request(""), &f).is_ok());
}

#[test]
fn rfc8705_a_certificate_bound_subject_token_needs_that_certificate() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    subject.cnf = Some(Confirmation {
        jkt: None,
        x5t_s256: Some("x5t".into()),
    });
    let mut f = facts("agent", &client, &subject, &resources);
    f.proof.dpop_jkt = Some(JKT);
    let err = decide(&request(""), &f).unwrap_err();
    assert!(err.description.contains("x5t#S256"), "{err}");
    f.proof.certificate = Some("x5t");
    assert!(decide(&request(""), &f).is_ok());
}

#[test]
fn rfc8693_4_4_may_act_naming_the_actor_delegates_the_key_but_the_result_stays_bound() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    subject.cnf = Some(Confirmation {
        jkt: Some(JKT.into()),
        x5t_s256: None,
    });
    subject.may_act = Some(json!({"sub": "agent"}));
    let mut f = facts("agent", &client, &subject, &resources);
    let err = decide(&request(""), &f).unwrap_err();
    assert!(err.description.contains("sender-constrained"), "{err}");
    f.proof.dpop_jkt = Some("the-agents-own-key");
    assert!(decide(&request(""), &f).is_ok());
    // Someone may_act does not name still needs the subject's key.
    let f = facts("intruder", &client, &subject, &resources);
    assert_eq!(
        decide(&request(""), &f).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn a_bound_actor_token_needs_its_key() {
    let client = agent();
    let resources = known();
    let subject = person_token();
    let mut actor = client_token("agent");
    actor.cnf = Some(Confirmation {
        jkt: Some(JKT.into()),
        x5t_s256: None,
    });
    let mut f = facts("agent", &client, &subject, &resources);
    f.actor = Some(&actor);
    assert_eq!(
        decide(&request(""), &f).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
    f.proof.dpop_jkt = Some(JKT);
    assert!(decide(&request(""), &f).is_ok());
}

// --- trusted issuers' tokens -------------------------------------------------

#[test]
fn trusted_jwt_facts_are_read_and_unknown_bindings_refused() {
    let facts = TokenFacts::from_trusted_jwt(&json!({"iss": "https://idp.example",
        "sub": "alice", "aud": [AS], "exp": NOW + 60, "scope": "read",
        "cnf": {"jkt": JKT}, "may_act": {"sub": "agent"}}))
    .unwrap();
    assert_eq!(facts.scopes, Some(vec!["read".to_owned()]));
    assert_eq!(facts.cnf.unwrap().jkt.as_deref(), Some(JKT));
    assert_eq!(facts.may_act, Some(json!({"sub": "agent"})));
    assert_eq!(facts.origin, Origin::Trusted);
    for bad in [
        json!({"iss": "https://idp.example", "exp": 1}),
        json!({"iss": "https://idp.example", "sub": "a"}),
        json!({"iss": "https://idp.example", "sub": "a", "exp": 1, "cnf": {"jwk": {}}}),
        json!({"iss": "https://idp.example", "sub": "a", "exp": 1, "scope": ["read"]}),
    ] {
        assert!(TokenFacts::from_trusted_jwt(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_trusted_jwt_without_scope_is_limited_by_the_clients_registration() {
    let client = agent();
    let resources = known();
    let subject = TokenFacts::from_trusted_jwt(&json!({"iss": "https://idp.example",
        "sub": "alice", "aud": AS, "exp": NOW + 60}))
    .unwrap();
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(exchange.grant.scopes, vec!["read", "write"]);
    assert_eq!(exchange.grant.audience, vec![AS]);
    assert_eq!(exchange.grant.lifetime, 60);
    assert!(exchange.ancestry.is_empty() && exchange.grant_id.is_none());
    assert_eq!(
        exchange.act,
        Some(json!({"sub": "agent", "client_id": "agent"}))
    );
}

#[test]
fn a_custos_access_tokens_facts() {
    let mut claims = AccessTokenClaims::for_grant(
        AS,
        "app",
        &Grant {
            subject: "alice".into(),
            scopes: vec!["read".into()],
            audience: vec![API.into()],
            lifetime: 60,
        },
        NOW,
        "j1".into(),
    );
    claims.ancestry = Some(vec!["j0".into()]);
    claims.grant_id = Some("g".into());
    let facts = TokenFacts::from_access_token(&claims);
    assert_eq!(facts.scopes, Some(vec!["read".to_owned()]));
    assert_eq!(facts.exp, NOW + 60);
    assert_eq!(
        facts.origin,
        Origin::Custos {
            jti: "j1".into(),
            grant_id: Some("g".into()),
            ancestry: vec!["j0".into()],
            ancestry_clients: vec![],
            authorization_details: None
        }
    );
}

mod delegation;
