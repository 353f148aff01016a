//! Rich authorization requests (RFC 9396) through the real server, on
//! SQLite and PostgreSQL: types registered with their resource and a JSON
//! Schema, `authorization_details` at the authorization endpoint, PAR and
//! the token endpoint, shown on the consent page, carried into the token
//! response, access tokens and introspection, narrowed (never widened) by
//! the token request, refresh and token exchange.

mod common;

use common::browser::{browser, decide, log_in_as_alice, param, pkce, query, REDIRECT};
use common::flow::{setup, Flow};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const BANK: &str = "https://bank.example/";
const PAYMENT: &str = "payment_initiation";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";

fn payment_schema() -> Value {
    json!({
        "type": "object",
        "required": ["type", "actions"],
        "properties": {
            "type": {"const": PAYMENT},
            "actions": {"type": "array", "items": {"enum": ["initiate", "status", "cancel"]}},
            "instructedAmount": {
                "type": "object",
                "required": ["currency", "amount"],
                "properties": {"currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                               "amount": {"type": "string"}}
            },
            "creditorName": {"type": "string", "maxLength": 70}
        }
    })
}

/// The bank, with the payment type and scope `read`.
async fn bank(server: &Server) {
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": BANK, "scopes": ["read"],
                        "authorization_details_types": [{"type": PAYMENT, "schema": payment_schema()}]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["authorization_details_types"][0]["type"], PAYMENT);
}

fn payment(actions: &[&str]) -> Value {
    json!({"type": PAYMENT, "actions": actions,
           "instructedAmount": {"currency": "EUR", "amount": "123.50"},
           "creditorName": "Merchant A"})
}

fn details(entries: &[Value]) -> String {
    Value::Array(entries.to_vec()).to_string()
}

async fn person_flow(db: &Database) -> Flow {
    let flow = setup(
        db,
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read", "client_name": "Budget App"}),
    )
    .await;
    bank(&flow.server).await;
    flow
}

/// Login and consent for `authorization_details`; the consent page must
/// describe them. Returns the redeemed token response.
async fn authorized(flow: &Flow, requested: &str, token_details: Option<&str>) -> (u16, Value) {
    let (verifier, challenge) = pkce();
    let url = flow.authorization_url(&challenge, &[("authorization_details", requested)]);
    let location = flow.authorize(&browser(), &url).await;
    let code = param(&query(&location), "code").unwrap_or_else(|| panic!("{location}"));
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", flow.client_id.as_str()),
    ];
    if let Some(narrower) = token_details {
        form.push(("authorization_details", narrower));
    }
    let (status, _, body) = flow.server.post_form(&flow.token, None, &form).await;
    (status, body)
}

async fn rfc9396_admin_registers_types_with_their_resource(db: Database) {
    let server = Server::start(&db).await;
    assert_eq!(
        server.discovery().await["authorization_details_types_supported"],
        json!([])
    );
    bank(&server).await;
    assert_eq!(
        server.discovery().await["authorization_details_types_supported"],
        json!([PAYMENT])
    );
    let listed = server.admin(Method::GET, "/admin/resources", None).await.1;
    assert_eq!(
        listed[0]["authorization_details_types"][0]["schema"],
        payment_schema()
    );

    // A name means one thing on a server: another resource cannot take it.
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://other.example/", "scopes": [],
                        "authorization_details_types": [{"type": PAYMENT, "schema": {"type": "object"}}]})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("already registered"));
    // Nothing of the refused resource was kept.
    assert_eq!(
        server
            .admin(Method::GET, "/admin/resources", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Schemas never make the server fetch anything, and must compile.
    for (why, schema) in [
        (
            "remote reference",
            json!({"$ref": "https://evil.example/schema.json"}),
        ),
        ("not a schema", json!({"type": "no-such-type"})),
        (
            "backtracking pattern",
            json!({"properties": {"a": {"pattern": "(a+)+\\1"}}}),
        ),
    ] {
        let (status, body) = server
            .admin(
                Method::POST,
                "/admin/resources",
                Some(json!({"uri": "https://third.example/", "scopes": [],
                            "authorization_details_types": [{"type": "t", "schema": schema}]})),
            )
            .await;
        assert_eq!(status, 400, "{why}: {body}");
        assert_eq!(body["error"], "invalid_request", "{why}");
    }
}

async fn rfc9396_person_authorizes_details_shown_in_words(db: Database) {
    let flow = person_flow(&db).await;
    let requested = details(&[payment(&["initiate", "status"])]);
    let (verifier, challenge) = pkce();
    let url = flow.authorization_url(&challenge, &[("authorization_details", &requested)]);

    // §3: the consent page says what is asked, in words.
    let b = browser();
    let page = b.get(&url).send().await.unwrap().text().await.unwrap();
    let consent = log_in_as_alice(&b, &flow.authorize, &page).await;
    assert!(
        consent.contains(PAYMENT)
            && consent.contains("actions initiate, status")
            && consent.contains("Merchant A"),
        "{consent}"
    );
    let response = decide(&b, &flow.authorize, &consent, "allow").await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let code = param(&query(&location), "code").unwrap();
    let (status, body) = flow.redeem(&code, &verifier).await;
    assert_eq!(status, 200, "{body}");

    // §7: the token response; §9: the token and introspection. Each entry
    // names where it applies: the type's resource, also the token's aud.
    let mut expected = payment(&["initiate", "status"]);
    expected["locations"] = json!([BANK]);
    assert_eq!(body["authorization_details"], json!([expected]));
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["authorization_details"], json!([expected]));
    assert!(
        claims["aud"] == json!(BANK) || claims["aud"] == json!([BANK]),
        "{claims}"
    );
    let introspected = flow
        .introspect(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["authorization_details"], json!([expected]));

    // Consent for details is never remembered: the next request asks again.
    let (_, challenge) = pkce();
    let url = flow.authorization_url(&challenge, &[("authorization_details", &requested)]);
    let again = b.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains(r#"value="allow""#));
}

async fn rfc9396_5_invalid_details_are_redirected_errors(db: Database) {
    let flow = person_flow(&db).await;
    let (_, challenge) = pkce();
    let cases = [
        (
            "unknown type",
            details(&[json!({"type": "wire_transfer"})]),
            "wire_transfer",
        ),
        (
            "schema violation",
            details(&[json!({"type": PAYMENT, "actions": ["steal"]})]),
            "schema",
        ),
        (
            "not an array",
            json!({"type": PAYMENT}).to_string(),
            "array",
        ),
        (
            "no type",
            details(&[json!({"actions": ["initiate"]})]),
            "type",
        ),
        (
            "another resource's location",
            details(&[
                json!({"type": PAYMENT, "actions": ["status"], "locations": ["https://evil.example/"]}),
            ]),
            "location",
        ),
    ];
    for (why, requested, names) in cases {
        let url = flow.authorization_url(&challenge, &[("authorization_details", &requested)]);
        let response = browser().get(&url).send().await.unwrap();
        assert_eq!(response.status(), 303, "{why}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let pairs = query(&location);
        assert_eq!(
            param(&pairs, "error").as_deref(),
            Some("invalid_authorization_details"),
            "{why}: {location}"
        );
        assert!(
            param(&pairs, "error_description").unwrap().contains(names),
            "{why}"
        );
        assert_eq!(param(&pairs, "state").as_deref(), Some("st@te/ü"), "{why}");
        assert!(param(&pairs, "iss").is_some(), "{why}");
    }
}

async fn rfc9396_6_1_token_request_and_refresh_narrow_never_widen(db: Database) {
    let flow = person_flow(&db).await;
    let granted = details(&[payment(&["initiate", "status"])]);

    // Wider at the token request: refused.
    let wider = details(&[payment(&["initiate", "status", "cancel"])]);
    let (status, body) = authorized(&flow, &granted, Some(&wider)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_authorization_details");

    // Narrower at the token request: issued as asked, completed with what
    // was granted; the refresh token keeps the whole grant.
    let narrower = details(&[json!({"type": PAYMENT, "actions": ["status"]})]);
    let (status, body) = authorized(&flow, &granted, Some(&narrower)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["authorization_details"][0]["actions"],
        json!(["status"])
    );
    assert_eq!(
        body["authorization_details"][0]["creditorName"],
        "Merchant A"
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // A refresh that widens: refused, and the token is not used up.
    let (status, body) = flow
        .refresh_with(&refresh, &[("authorization_details", &wider)])
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_authorization_details");

    // A plain refresh: everything the person authorized.
    let (status, body) = flow.refresh(&refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["authorization_details"][0]["actions"],
        json!(["initiate", "status"])
    );
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // A refresh that narrows.
    let (status, body) = flow
        .refresh_with(&refresh, &[("authorization_details", &narrower)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["authorization_details"][0]["actions"],
        json!(["status"])
    );
}

async fn rfc9396_6_client_credentials_and_exchange(db: Database) {
    let server = Server::start(&db).await;
    bank(&server).await;
    let (status, registered) = server
        .register(json!({"grant_types": ["client_credentials", EXCHANGE],
                         "token_endpoint_auth_method": "client_secret_basic", "scope": "read",
                         "authorization_details_types": [PAYMENT]}))
        .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["authorization_details_types"], json!([PAYMENT]));
    let id = registered["client_id"].as_str().unwrap().to_owned();
    let secret = registered["client_secret"].as_str().unwrap().to_owned();
    let (other, other_secret) = server.secret_client("client_secret_basic", "read").await;

    // §10.2: only the types the client registered, where no person consents.
    let requested = details(&[payment(&["initiate", "status"])]);
    let form = [
        ("grant_type", "client_credentials"),
        ("authorization_details", requested.as_str()),
    ];
    let (status, body) = server.token_basic(&other, &other_secret, &form).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_authorization_details");
    let (status, body) = server.token_basic(&id, &secret, &form).await;
    assert_eq!(status, 200, "{body}");
    let subject = body["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = jwt_parts(&subject);
    assert_eq!(
        claims["authorization_details"][0]["locations"],
        json!([BANK])
    );
    assert!(
        claims["aud"] == json!(BANK) || claims["aud"] == json!([BANK]),
        "{claims}"
    );

    // Token exchange: the subject token's details, or fewer; never more.
    let exchange = |extra: Option<String>| {
        let mut form = vec![
            ("grant_type", EXCHANGE.to_owned()),
            ("subject_token", subject.clone()),
            ("subject_token_type", AT.to_owned()),
        ];
        if let Some(requested) = extra {
            form.push(("authorization_details", requested));
        }
        form
    };
    let send = |form: Vec<(&'static str, String)>| {
        let server = &server;
        let (id, secret) = (id.clone(), secret.clone());
        async move {
            let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.token_basic(&id, &secret, &borrowed).await
        }
    };
    let (status, body) = send(exchange(None)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["authorization_details"][0]["actions"],
        json!(["initiate", "status"])
    );
    let narrower = details(&[json!({"type": PAYMENT, "actions": ["status"]})]);
    let (status, body) = send(exchange(Some(narrower))).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["authorization_details"][0]["actions"],
        json!(["status"])
    );
    let wider = details(&[payment(&["cancel"])]);
    let (status, body) = send(exchange(Some(wider))).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_authorization_details");
}

async fn rfc9126_pushed_requests_carry_checked_details(db: Database) {
    let flow = setup(
        &db,
        json!({"token_endpoint_auth_method": "client_secret_basic", "grant_types": ["authorization_code"],
               "redirect_uris": [REDIRECT], "scope": "read", "client_name": "Budget App"}),
    )
    .await;
    bank(&flow.server).await;
    let par = flow
        .server
        .endpoint("pushed_authorization_request_endpoint")
        .await;
    let secret = flow.registration["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, challenge) = pkce();
    let push = |requested: String| {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", flow.client_id.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "read".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("authorization_details", requested),
        ]
    };
    let bad = push(details(&[json!({"type": PAYMENT, "actions": "initiate"})]));
    let borrowed: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = flow
        .server
        .post_form(&par, Some((&flow.client_id, &secret)), &borrowed)
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_authorization_details");

    let good = push(details(&[payment(&["initiate"])]));
    let borrowed: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = flow
        .server
        .post_form(&par, Some((&flow.client_id, &secret)), &borrowed)
        .await;
    assert_eq!(status, 201, "{body}");
    let mut url = url::Url::parse(&flow.authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &flow.client_id)
        .append_pair("request_uri", body["request_uri"].as_str().unwrap());
    let b = browser();
    let page = b
        .get(url.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let consent = log_in_as_alice(&b, &flow.authorize, &page).await;
    assert!(consent.contains("actions initiate"), "{consent}");
}

/// A type registered on one replica is usable on another at once (a
/// request naming a type the replica does not know reloads the registry,
/// at most once a second) and in its discovery after the next refresh.
async fn a_type_registered_on_one_replica_works_on_another(db: Database) {
    let (a, b) = Server::replicas(&db).await;
    let (id, secret) = {
        let (status, registered) = b
            .register(
                json!({"grant_types": ["client_credentials"], "scope": "read",
                             "token_endpoint_auth_method": "client_secret_basic",
                             "authorization_details_types": [PAYMENT]}),
            )
            .await;
        assert_eq!(status, 201, "{registered}");
        (
            registered["client_id"].as_str().unwrap().to_owned(),
            registered["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    // b has loaded the (empty) registry at start; the type arrives on a.
    bank(&a).await;
    let requested = details(&[payment(&["status"])]);
    let form = [
        ("grant_type", "client_credentials"),
        ("authorization_details", requested.as_str()),
    ];
    let mut last = (0, Value::Null);
    for _ in 0..30 {
        last = b.token_basic(&id, &secret, &form).await;
        if last.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, 200, "{}", last.1);
    assert_eq!(last.1["authorization_details"][0]["type"], PAYMENT);
}

on_both_engines!(
    rfc9396_admin_registers_types_with_their_resource,
    rfc9396_person_authorizes_details_shown_in_words,
    rfc9396_5_invalid_details_are_redirected_errors,
    rfc9396_6_1_token_request_and_refresh_narrow_never_widen,
    rfc9396_6_client_credentials_and_exchange,
    rfc9126_pushed_requests_carry_checked_details,
    a_type_registered_on_one_replica_works_on_another,
);
