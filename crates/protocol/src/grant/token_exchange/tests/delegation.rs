//! The delegation chain: `act` (RFC 8693 §4.1), actor tokens, `may_act`
//! (§4.4) and the depth limit.

use super::*;

#[test]
fn rfc8693_4_1_the_client_acting_for_a_person_is_the_actor() {
    let client = agent();
    let subject = person_token();
    let resources = known();
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(exchange.grant.subject, "alice", "sub stays the subject's");
    assert_eq!(
        exchange.act,
        Some(json!({"sub": "agent", "client_id": "agent"}))
    );
}

#[test]
fn rfc8693_4_1_newest_actor_outermost() {
    let client = agent();
    let mut subject = person_token();
    subject.act = Some(json!({"sub": "agent", "client_id": "agent",
                              "act": {"sub": "planner", "client_id": "planner"}}));
    let resources = known();
    let exchange = decide(
        &request(""),
        &facts("sub-agent", &client, &subject, &resources),
    )
    .unwrap();
    assert_eq!(
        exchange.act,
        Some(json!({"sub": "sub-agent", "client_id": "sub-agent",
                    "act": {"sub": "agent", "client_id": "agent",
                            "act": {"sub": "planner", "client_id": "planner"}}}))
    );
}

#[test]
fn rfc8693_4_1_only_identity_claims_of_prior_actors_are_kept() {
    let client = agent();
    let mut subject = person_token();
    subject.act = Some(
        json!({"sub": "a", "iss": "https://idp.example", "scope": "admin",
                              "exp": 1, "client_id": "x"}),
    );
    let resources = known();
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    assert_eq!(
        exchange.act.unwrap()["act"],
        json!({"sub": "a", "iss": "https://idp.example", "client_id": "x"})
    );
}

#[test]
fn rfc8693_4_1_malformed_act_is_invalid_request() {
    let client = agent();
    let resources = known();
    for act in [
        json!("agent"),
        json!({"client_id": "x"}),
        json!({"sub": 5}),
        json!({"sub": "a", "act": []}),
        json!({"sub": ""}),
    ] {
        let mut subject = person_token();
        subject.act = Some(act.clone());
        let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{act}");
    }
}

#[test]
fn rfc8693_4_1_a_client_exchanging_its_own_token_adds_no_hop() {
    let client = agent();
    let subject = client_token("agent");
    let resources = known();
    let exchange = decide(
        &request("&resource=https%3A%2F%2Fapi.example&task_id=t1&expires_in=60"),
        &facts("agent", &client, &subject, &resources),
    )
    .unwrap();
    assert_eq!(exchange.act, None);
    assert_eq!(exchange.grant.subject, "agent");
    assert_eq!(exchange.task_id.as_deref(), Some("t1"));
    assert_eq!(exchange.grant.audience, vec![API]);
    assert_eq!(exchange.grant.lifetime, 60);
}

#[test]
fn rfc8693_4_1_the_newest_actor_narrowing_again_adds_no_hop() {
    let client = agent();
    let mut subject = person_token();
    subject.act = Some(json!({"sub": "agent", "client_id": "agent"}));
    let resources = known();
    let exchange = decide(
        &request("&scope=read"),
        &facts("agent", &client, &subject, &resources),
    )
    .unwrap();
    assert_eq!(exchange.act, subject.act);
}

#[test]
fn rfc8693_4_1_the_actor_token_names_the_actor() {
    let client = agent();
    let subject = person_token();
    let resources = known();
    // Its own client token: the actor is the client.
    let own = client_token("agent");
    let mut f = facts("agent", &client, &subject, &resources);
    f.actor = Some(&own);
    let exchange = decide(&request(""), &f).unwrap();
    assert_eq!(
        exchange.act,
        Some(json!({"sub": "agent", "client_id": "agent"}))
    );
    // A token issued to it for someone else names that one, with the
    // client beside it.
    let mut issued_to_it = client_token("agent");
    issued_to_it.sub = "svc-account".into();
    f.actor = Some(&issued_to_it);
    let exchange = decide(&request(""), &f).unwrap();
    assert_eq!(
        exchange.act,
        Some(json!({"sub": "svc-account", "client_id": "agent"}))
    );
}

#[test]
fn rfc8693_2_1_another_clients_token_is_not_an_actor_token() {
    let client = agent();
    let subject = person_token();
    let resources = known();
    let theirs = client_token("someone-else");
    let mut f = facts("agent", &client, &subject, &resources);
    f.actor = Some(&theirs);
    let err = decide(&request(""), &f).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert!(err.description.contains("actor_token"), "{err}");
    // A delegated token is no actor token either.
    let mut delegated = client_token("agent");
    delegated.act = Some(json!({"sub": "x"}));
    f.actor = Some(&delegated);
    assert_eq!(
        decide(&request(""), &f).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn rfc8693_4_1_a_federated_actor_token_must_be_one_of_the_clients_credentials() {
    let k8s = "https://k8s.example";
    let client = registered(
        json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read write",
        "token_endpoint_auth_method": "federated_jwt",
        "federated_credentials": [{"issuer": k8s, "subject": "system:serviceaccount:ai:agent"}]}),
    );
    let subject = person_token();
    let resources = known();
    let actor = TokenFacts::from_trusted_jwt(&json!({"iss": k8s,
        "sub": "system:serviceaccount:ai:agent", "aud": AS, "exp": NOW + 600}))
    .unwrap();
    let mut f = facts("agent", &client, &subject, &resources);
    f.actor = Some(&actor);
    let exchange = decide(&request(""), &f).unwrap();
    assert_eq!(
        exchange.act,
        Some(json!({"sub": "system:serviceaccount:ai:agent", "iss": k8s, "client_id": "agent"}))
    );
    assert_eq!(exchange.grant.lifetime, 300);
    let other = TokenFacts::from_trusted_jwt(&json!({"iss": k8s,
        "sub": "system:serviceaccount:ai:other", "aud": AS, "exp": NOW + 600}))
    .unwrap();
    f.actor = Some(&other);
    assert_eq!(
        decide(&request(""), &f).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn rfc8693_4_1_delegation_deeper_than_the_limit_is_refused() {
    let client = agent();
    let resources = known();
    let chain = |depth: usize| {
        (0..depth).fold(None, |inner: Option<Value>, i| {
            let mut level = json!({"sub": format!("a{i}")});
            if let Some(inner) = inner {
                level["act"] = inner;
            }
            Some(level)
        })
    };
    let mut subject = person_token();
    subject.act = chain(3);
    let exchange = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
    let act = exchange.act.unwrap();
    assert_eq!(act["sub"], "agent");
    assert_eq!(act["act"]["act"]["act"]["sub"], "a0", "4 levels pass");
    subject.act = chain(4);
    let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.description,
        "delegation chain deeper than 4 (RFC 8693 section 4.1)"
    );
    // A subject chain already too deep, however deep, is refused as such.
    subject.act = chain(50);
    let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
    assert!(
        err.description
            .starts_with("delegation chain deeper than 4"),
        "{err}"
    );
    // The limit is the operator's.
    subject.act = chain(1);
    let mut f = facts("agent", &client, &subject, &resources);
    f.config.max_delegation_depth = 1;
    let err = decide(&request(""), &f).unwrap_err();
    assert!(
        err.description
            .starts_with("delegation chain deeper than 1"),
        "{err}"
    );
}

// --- §4.4 may_act ----------------------------------------------------------

#[test]
fn rfc8693_4_4_may_act_refuses_other_actor() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    subject.may_act = Some(json!({"sub": "agent"}));
    let err = decide(
        &request(""),
        &facts("intruder", &client, &subject, &resources),
    )
    .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
    assert_eq!(
        err.description,
        "the subject token's may_act does not name this actor (RFC 8693 section 4.4)"
    );
    assert!(decide(&request(""), &facts("agent", &client, &subject, &resources)).is_ok());
}

#[test]
fn rfc8693_4_4_may_act_iss_and_client_id_must_match_when_named() {
    let client = agent();
    let resources = known();
    let mut subject = person_token();
    for (may_act, allowed) in [
        (json!({"sub": "agent", "iss": AS}), true),
        (
            json!({"sub": "agent", "iss": "https://elsewhere.example"}),
            false,
        ),
        (json!({"sub": "agent", "client_id": "agent"}), true),
        (json!({"sub": "agent", "client_id": "other"}), false),
        (json!({"client_id": "agent"}), false),
        (json!({"sub": 7}), false),
    ] {
        subject.may_act = Some(may_act.clone());
        let decided = decide(&request(""), &facts("agent", &client, &subject, &resources));
        assert_eq!(decided.is_ok(), allowed, "{may_act}: {decided:?}");
    }
    subject.may_act = Some(json!("agent"));
    let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
}

// --- narrower only ---------------------------------------------------------
