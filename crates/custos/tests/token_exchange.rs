//! Token exchange (RFC 8693) through the real server, on SQLite and
//! PostgreSQL: a person's token delegated along agent → sub-agent → tool
//! (nested `act`, never wider), `may_act`, sender-constrained subject
//! tokens, revocation following the exchange, and per-task tokens.

mod common;

use common::browser::{browser, param, pkce, query, REDIRECT};
use common::flow::{setup, Flow};
use common::workload::{access_claims, assert_refused, issuer_of, trust_oidc};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const API: &str = "https://api.example/";
const DOCS: &str = "https://docs.example/";
const IDP: &str = "https://idp.example";

/// A confidential agent registered for token exchange (and client
/// credentials, for tokens of its own).
struct Agent {
    id: String,
    secret: String,
}

async fn agent(server: &Server, scope: &str, extra: Value) -> Agent {
    let mut metadata = json!({"grant_types": [EXCHANGE, "client_credentials"],
                              "token_endpoint_auth_method": "client_secret_basic",
                              "scope": scope});
    for (name, value) in extra.as_object().into_iter().flatten() {
        metadata[name] = value.clone();
    }
    let (status, body) = server.register(metadata).await;
    assert_eq!(status, 201, "{body}");
    Agent {
        id: body["client_id"].as_str().unwrap().to_owned(),
        secret: body["client_secret"].as_str().unwrap().to_owned(),
    }
}

async fn resource(server: &Server, uri: &str, scopes: &[&str]) {
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": uri, "scopes": scopes})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A token request of `agent` (Basic), with `dpop` as its DPoP header.
async fn token_request(
    server: &Server,
    agent: &Agent,
    form: &[(&str, &str)],
    dpop: Option<&ClientKey>,
) -> (u16, Value) {
    let endpoint = server.endpoint("token_endpoint").await;
    let mut request = server
        .http
        .post(&endpoint)
        .basic_auth(enc(&agent.id), Some(enc(&agent.secret)))
        .form(form);
    if let Some(key) = dpop {
        request = request.header("DPoP", key.dpop_proof("POST", &endpoint, &json!({})));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A token exchange by `agent` of `subject` (an access token), with
/// `extra` parameters.
async fn exchange(
    server: &Server,
    agent: &Agent,
    subject: &str,
    extra: &[(&str, &str)],
    dpop: Option<&ClientKey>,
) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", AT),
    ];
    form.extend_from_slice(extra);
    token_request(server, agent, &form, dpop).await
}

/// The agent's own client-credentials token.
async fn own_token(server: &Server, agent: &Agent, dpop: Option<&ClientKey>) -> String {
    let (status, body) =
        token_request(server, agent, &[("grant_type", "client_credentials")], dpop).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn token_of(status: u16, body: &Value) -> String {
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(server: &Server, token: &str) -> Value {
    let (id, secret) = server.secret_client("client_secret_basic", "").await;
    let endpoint = server.endpoint("introspection_endpoint").await;
    let (status, _, body) = server
        .post_form(&endpoint, Some((&id, &secret)), &[("token", token)])
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn revoke(server: &Server, agent: &Agent, token: &str) {
    let endpoint = server.endpoint("revocation_endpoint").await;
    let (status, _, body) = server
        .post_form(
            &endpoint,
            Some((&agent.id, &agent.secret)),
            &[("token", token)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Alice authorizes a public app for `read write` on API and DOCS; its
/// tokens (access and refresh).
async fn person_tokens(flow: &Flow) -> Value {
    let (verifier, challenge) = pkce();
    let url = flow.authorization_url(
        &challenge,
        &[
            ("scope", "read write"),
            ("resource", API),
            ("resource", DOCS),
        ],
    );
    let location = flow.authorize(&browser(), &url).await;
    let code = param(&query(&location), "code").unwrap();
    let (status, tokens) = flow.redeem(&code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

async fn person_flow(db: &Database) -> Flow {
    setup(
        db,
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read write", "client_name": "Assistant"}),
    )
    .await
}

// --- person → agent → sub-agent → tool ---------------------------------------

async fn rfc8693_a_persons_token_delegated_along_three_hops(db: Database) {
    let flow = person_flow(&db).await;
    let server = &flow.server;
    let discovery = server.discovery().await;
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == EXCHANGE),
        "discovery follows the grant table: {discovery}"
    );
    resource(server, API, &["read", "write"]).await;
    resource(server, DOCS, &["read"]).await;
    resource(server, "https://other.example/", &["read"]).await;
    let person = person_tokens(&flow).await;
    let p = person["access_token"].as_str().unwrap();
    let (_, p_claims) = jwt_parts(p);
    assert_eq!(p_claims["sub"], "alice");
    assert_eq!(p_claims["aud"], json!([API, DOCS]));

    let planner = agent(server, "read write", json!({})).await;
    let researcher = agent(server, "read write", json!({})).await;
    let tool = agent(server, "read write admin", json!({})).await;

    // Hop 1: the planner acts for Alice.
    let (status, body) = exchange(server, &planner, p, &[], None).await;
    assert_eq!(body["issued_token_type"], AT, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let t1 = token_of(status, &body);
    let c1 = jwt_parts(&t1).1;
    assert_eq!(c1["sub"], "alice", "sub stays the person");
    assert_eq!(c1["client_id"], planner.id.as_str());
    assert_eq!(
        c1["act"],
        json!({"sub": planner.id, "client_id": planner.id})
    );
    assert_eq!(c1["aud"], json!([API, DOCS]));
    assert_eq!(c1["scope"], "read write");
    assert_eq!(c1["grant_id"], p_claims["grant_id"], "the person's family");
    assert_eq!(c1["ancestry"], json!([p_claims["jti"]]));

    // Hop 2: the researcher, naming itself with its own token as the
    // actor token, for the API only.
    let researcher_own = own_token(server, &researcher, None).await;
    let (status, body) = exchange(
        server,
        &researcher,
        &t1,
        &[
            ("actor_token", &researcher_own),
            ("actor_token_type", AT),
            ("resource", API),
        ],
        None,
    )
    .await;
    let t2 = token_of(status, &body);
    let c2 = jwt_parts(&t2).1;
    assert_eq!(c2["aud"], API);
    assert_eq!(
        c2["act"],
        json!({"sub": researcher.id, "client_id": researcher.id,
               "act": {"sub": planner.id, "client_id": planner.id}})
    );

    // Hop 3: the tool, read only, as a JWT.
    for (refused, form, error) in [
        (
            "a scope the subject token lacks",
            vec![("scope", "admin")],
            "invalid_scope",
        ),
        (
            "a resource outside the subject token's audience",
            vec![("resource", DOCS)],
            "invalid_target",
        ),
        (
            "an audience that is not a registered resource",
            vec![("audience", "https://unknown.example/")],
            "invalid_target",
        ),
    ] {
        let got = exchange(server, &tool, &t2, &form, None).await;
        assert_refused(got, 400, error, refused);
    }
    let (status, body) = exchange(
        server,
        &tool,
        &t2,
        &[("scope", "read"), ("requested_token_type", JWT)],
        None,
    )
    .await;
    assert_eq!(body["issued_token_type"], JWT, "{body}");
    let t3 = token_of(status, &body);
    let c3 = jwt_parts(&t3).1;
    assert_eq!(c3["sub"], "alice");
    assert_eq!(c3["client_id"], tool.id.as_str());
    assert_eq!(
        c3["act"],
        json!({"sub": tool.id, "client_id": tool.id,
               "act": {"sub": researcher.id, "client_id": researcher.id,
                       "act": {"sub": planner.id, "client_id": planner.id}}}),
        "RFC 8693 section 4.1: newest actor outermost"
    );
    // No more than the person's token: scopes, audience, lifetime.
    assert_eq!(c3["scope"], "read");
    assert_eq!(c3["aud"], API);
    assert!(c3["exp"].as_i64() <= p_claims["exp"].as_i64());
    assert!(c3["exp"].as_i64() <= c2["exp"].as_i64());
    assert_eq!(
        c3["ancestry"],
        json!([c2["jti"], c1["jti"], p_claims["jti"]])
    );
    let seen = introspect(server, &t3).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["act"], c3["act"]);
    assert_eq!(seen["sub"], "alice");

    // A fourth actor reaches the limit (4); a fifth goes past it.
    let fourth = agent(server, "read", json!({})).await;
    let fifth = agent(server, "read", json!({})).await;
    let (status, body) = exchange(server, &fourth, &t3, &[], None).await;
    let t4 = token_of(status, &body);
    let got = exchange(server, &fifth, &t4, &[], None).await;
    assert_eq!(
        got.1["error_description"], "delegation chain deeper than 4 (RFC 8693 section 4.1)",
        "{got:?}"
    );
    assert_refused(got, 400, "invalid_request", "a fifth actor");

    // Revoking the person's authorization reaches every exchanged token.
    let revocation = server.endpoint("revocation_endpoint").await;
    let (status, _, _) = server
        .post_form(
            &revocation,
            None,
            &[
                ("token", person["refresh_token"].as_str().unwrap()),
                ("client_id", &flow.client_id),
            ],
        )
        .await;
    assert_eq!(status, 200);
    for token in [&t1, &t2, &t3, &t4] {
        assert_eq!(introspect(server, token).await, json!({"active": false}));
    }
    let got = exchange(server, &tool, &t2, &[], None).await;
    assert_refused(
        got,
        400,
        "invalid_request",
        "an exchange of a revoked token",
    );

    let events = server
        .events(&format!("?client_id={}&type=token.issued", tool.id))
        .await;
    assert!(
        events.iter().any(|e| e["grant_type"] == EXCHANGE),
        "{events:?}"
    );
    let log = server.log.lock().unwrap().clone();
    for token in [p, &t1, &t2, &t3] {
        assert!(!log.contains(token), "the log shows no token");
    }
}

// --- may_act and trusted issuers' tokens -----------------------------------

async fn rfc8693_4_4_may_act_names_who_may_act(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let idp_key = ClientKey::generate("idp-1");
    trust_oidc(&server, IDP, &idp_key, json!({})).await;
    let named = agent(&server, "read write", json!({})).await;
    let other = agent(&server, "read write", json!({})).await;
    let named_key = ClientKey::generate("named");
    let other_key = ClientKey::generate("other");
    let alice_key = ClientKey::generate("alice");
    let t = now();
    let subject = idp_key.assertion(&json!({
        "iss": IDP, "sub": "alice@idp.example", "aud": issuer, "iat": t, "exp": t + 600,
        "scope": "read", "may_act": {"sub": named.id}, "cnf": {"jkt": alice_key.jkt()}
    }));

    let got = exchange(&server, &other, &subject, &[], Some(&other_key)).await;
    assert_eq!(
        got.1["error_description"],
        "the subject token's may_act does not name this actor (RFC 8693 section 4.4)"
    );
    assert_refused(
        got,
        400,
        "invalid_request",
        "an actor may_act does not name",
    );

    // Named: Alice's key is delegated, but the result must be bound.
    let got = exchange(&server, &named, &subject, &[], None).await;
    assert_refused(got, 400, "invalid_request", "no key to bind the result to");
    let (status, body) = exchange(&server, &named, &subject, &[], Some(&named_key)).await;
    let claims = access_claims(status, &body);
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(claims["cnf"]["jkt"], named_key.jkt());
    assert_eq!(claims["sub"], "alice@idp.example");
    assert_eq!(
        claims["act"],
        json!({"sub": named.id, "client_id": named.id})
    );
    assert_eq!(claims["scope"], "read", "the subject token's scope");
    assert!(claims["exp"].as_i64().unwrap() <= t + 600);
    assert!(claims.get("ancestry").is_none(), "{claims}");

    // Without may_act, the key stays the subject's.
    let bound = idp_key.assertion(&json!({
        "iss": IDP, "sub": "alice@idp.example", "aud": issuer, "iat": t, "exp": t + 600,
        "cnf": {"jkt": alice_key.jkt()}
    }));
    let got = exchange(&server, &named, &bound, &[], Some(&named_key)).await;
    assert_refused(
        got,
        400,
        "invalid_request",
        "another key than the subject's",
    );
    let (status, body) = exchange(&server, &named, &bound, &[], Some(&alice_key)).await;
    assert_eq!(access_claims(status, &body)["cnf"]["jkt"], alice_key.jkt());

    // Tokens custos cannot vouch for.
    let elsewhere = idp_key.assertion(&json!({
        "iss": IDP, "sub": "alice@idp.example", "aud": "https://another-as.example",
        "iat": t, "exp": t + 600}));
    let untrusted = ClientKey::generate("x").assertion(&json!({
        "iss": "https://untrusted.example", "sub": "alice", "aud": issuer,
        "iat": t, "exp": t + 600}));
    let forged = ClientKey::generate("idp-1").assertion(&json!({
        "iss": IDP, "sub": "alice@idp.example", "aud": issuer, "iat": t, "exp": t + 600}));
    for (why, token) in [
        ("another audience", &elsewhere),
        ("an untrusted issuer", &untrusted),
        ("a forged signature", &forged),
    ] {
        let got = exchange(&server, &named, token, &[], None).await;
        let description = got.1["error_description"].as_str().unwrap_or("").to_owned();
        assert!(
            description.starts_with("subject_token: "),
            "{why}: {description}"
        );
        assert!(!description.contains(token.as_str()), "never the token");
        assert_refused(got, 400, "invalid_request", why);
    }
}

// --- sender-constrained subject tokens and per-task tokens ------------------

async fn a_bound_subject_token_needs_its_key_and_stays_bound(db: Database) {
    let server = Server::start(&db).await;
    resource(&server, API, &["read", "write"]).await;
    let holder = agent(&server, "read write", json!({})).await;
    let other = agent(&server, "read write", json!({})).await;
    let key = ClientKey::generate("holder");
    let bound = own_token(&server, &holder, Some(&key)).await;
    assert_eq!(jwt_parts(&bound).1["cnf"]["jkt"], key.jkt());

    let got = exchange(&server, &holder, &bound, &[], None).await;
    let description = got.1["error_description"].as_str().unwrap_or("").to_owned();
    assert!(description.contains("cnf.jkt"), "{description}");
    assert_refused(got, 400, "invalid_request", "no proof");
    let got = exchange(
        &server,
        &holder,
        &bound,
        &[],
        Some(&ClientKey::generate("x")),
    )
    .await;
    assert_refused(got, 400, "invalid_request", "a proof with another key");
    let got = exchange(
        &server,
        &other,
        &bound,
        &[],
        Some(&ClientKey::generate("o")),
    )
    .await;
    assert_refused(
        got,
        400,
        "invalid_request",
        "another client without the key",
    );

    let (status, body) = exchange(&server, &holder, &bound, &[("resource", API)], Some(&key)).await;
    let claims = access_claims(status, &body);
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(claims["cnf"]["jkt"], key.jkt(), "bound to the same key");
    assert!(claims.get("act").is_none(), "its own token: no hop");
    let seen = introspect(&server, body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (seen["active"].clone(), seen["token_type"].clone()),
        (json!(true), json!("DPoP"))
    );
}

async fn a_per_task_token_from_an_agents_dpop_bound_token(db: Database) {
    let server = Server::start(&db).await;
    resource(&server, API, &["read", "write"]).await;
    resource(&server, DOCS, &["read"]).await;
    let coder = agent(
        &server,
        "read write",
        json!({"dpop_bound_access_tokens": true}),
    )
    .await;
    let key = ClientKey::generate("coder");
    let own = own_token(&server, &coder, Some(&key)).await;
    let (status, body) = exchange(
        &server,
        &coder,
        &own,
        &[
            ("resource", API),
            ("scope", "read"),
            ("task_id", "ticket-4711:step-2"),
            ("expires_in", "60"),
        ],
        Some(&key),
    )
    .await;
    let claims = access_claims(status, &body);
    assert_eq!(body["token_type"], "DPoP", "{body}");
    assert_eq!(body["expires_in"], 60);
    assert_eq!(body["issued_token_type"], AT);
    assert_eq!(claims["cnf"]["jkt"], key.jkt());
    assert_eq!(claims["task_id"], "ticket-4711:step-2");
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["sub"], coder.id.as_str());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    assert!(claims.get("act").is_none(), "its own token: no hop");
    assert_eq!(claims["ancestry"], json!([jwt_parts(&own).1["jti"]]));

    let events = server
        .events(&format!("?client_id={}&type=token.issued", coder.id))
        .await;
    assert!(
        events
            .iter()
            .any(|e| e["task_id"] == "ticket-4711:step-2" && e["grant_type"] == EXCHANGE),
        "{events:?}"
    );

    for (why, form) in [
        (
            "expires_in beyond the client's lifetime",
            vec![("expires_in", "301")],
        ),
        ("a malformed task_id", vec![("task_id", "has space")]),
        ("a zero expires_in", vec![("expires_in", "0")]),
    ] {
        let got = exchange(&server, &coder, &own, &form, Some(&key)).await;
        assert_refused(got, 400, "invalid_request", why);
    }
}

// --- revocation follows exchange ---------------------------------------------

async fn revoking_a_subject_token_revokes_what_was_exchanged_from_it(db: Database) {
    let server = Server::start(&db).await;
    let owner = agent(&server, "read", json!({})).await;
    let middle = agent(&server, "read", json!({})).await;
    let last = agent(&server, "read", json!({})).await;
    let x = own_token(&server, &owner, None).await;
    let (status, body) = exchange(&server, &middle, &x, &[], None).await;
    let y = token_of(status, &body);
    let (status, body) = exchange(&server, &last, &y, &[], None).await;
    let z = token_of(status, &body);
    let (status, body) = exchange(&server, &middle, &x, &[], None).await;
    let y2 = token_of(status, &body);
    let (status, body) = exchange(&server, &last, &y2, &[], None).await;
    let z2 = token_of(status, &body);
    for token in [&x, &y, &z, &y2, &z2] {
        assert_eq!(introspect(&server, token).await["active"], true);
    }

    // Revoking the middle token reaches down, not up.
    revoke(&server, &middle, &y2).await;
    assert_eq!(introspect(&server, &z2).await, json!({"active": false}));
    assert_eq!(introspect(&server, &y2).await, json!({"active": false}));
    assert_eq!(introspect(&server, &x).await["active"], true);
    assert_eq!(introspect(&server, &z).await["active"], true);

    // Revoking the subject token reaches everything exchanged from it.
    revoke(&server, &owner, &x).await;
    for token in [&x, &y, &z] {
        assert_eq!(introspect(&server, token).await, json!({"active": false}));
    }
    let got = exchange(&server, &last, &y, &[], None).await;
    let description = got.1["error_description"].as_str().unwrap_or("").to_owned();
    assert!(description.contains("no longer active"), "{description}");
    assert_refused(got, 400, "invalid_request", "exchanging a revoked token");
}

// --- malformed requests ------------------------------------------------------

async fn malformed_and_unauthorized_exchanges_are_refused(db: Database) {
    let server = Server::start(&db).await;
    let actor = agent(&server, "read", json!({})).await;
    let someone = agent(&server, "read", json!({})).await;
    let subject_token = own_token(&server, &someone, None).await;
    let subject = subject_token.as_str();
    let theirs_token = own_token(&server, &someone, None).await;
    let theirs = theirs_token.as_str();

    let (plain_id, plain_secret) = server.secret_client("client_secret_basic", "read").await;
    let plain = Agent {
        id: plain_id,
        secret: plain_secret,
    };
    let got = exchange(&server, &plain, subject, &[], None).await;
    assert_refused(
        got,
        400,
        "unauthorized_client",
        "not registered for the grant",
    );

    let cases = vec![
        (
            "no subject_token_type",
            vec![("grant_type", EXCHANGE), ("subject_token", subject)],
            "invalid_request",
            "subject_token_type",
        ),
        (
            "an unsupported subject_token_type",
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
            ],
            "invalid_request",
            "subject_token_type",
        ),
        (
            "an unsupported requested_token_type",
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", AT),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
            ],
            "invalid_request",
            "requested_token_type",
        ),
        (
            "actor_token without its type",
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("actor_token", theirs),
            ],
            "invalid_request",
            "actor_token_type",
        ),
        (
            "someone else's token as the actor token",
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("actor_token", theirs),
                ("actor_token_type", AT),
            ],
            "invalid_request",
            "actor_token",
        ),
        (
            "a subject token that is no token",
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", "not-a-token-at-all"),
                ("subject_token_type", AT),
            ],
            "invalid_request",
            "subject_token",
        ),
        (
            "an audience that is no URI",
            vec![
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", AT),
                ("audience", "api"),
            ],
            "invalid_target",
            "audience",
        ),
    ];
    for (why, form, error, names) in cases {
        let got = token_request(&server, &actor, &form, None).await;
        let description = got.1["error_description"].as_str().unwrap_or("").to_owned();
        assert!(description.contains(names), "{why}: {description}");
        assert!(!description.contains(subject) && !description.contains("not-a-token-at-all"));
        assert_refused(got, 400, error, why);
    }
}

on_both_engines!(
    rfc8693_a_persons_token_delegated_along_three_hops,
    rfc8693_4_4_may_act_names_who_may_act,
    a_bound_subject_token_needs_its_key_and_stays_bound,
    a_per_task_token_from_an_agents_dpop_bound_token,
    revoking_a_subject_token_revokes_what_was_exchanged_from_it,
    malformed_and_unauthorized_exchanges_are_refused,
);
