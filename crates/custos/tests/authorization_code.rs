//! The authorization code flow end to end over HTTP (draft-ietf-oauth-v2-1
//! §4.1, RFC 9700): the person's pages, the code at the exact redirect URI
//! with `state` and `iss`, PKCE, single-use codes, refresh rotation and
//! reuse detection, and the errors that must never redirect.

mod common;

use common::browser::{browser, hidden, param, pkce, query, PASSWORD, REDIRECT};
use common::flow::public_flow;
use common::{jwt_parts, ClientKey, Database, ADMIN_TOKEN};
use serde_json::{json, Value};

async fn oauth21_4_1_code_flow_with_pkce_end_to_end(db: Database) {
    let flow = public_flow(&db).await;
    let discovery = flow.server.discovery().await;
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"],
        true
    );
    let grants = discovery["grant_types_supported"].as_array().unwrap();
    assert!(
        grants.iter().any(|g| g == "authorization_code")
            && grants.iter().any(|g| g == "refresh_token")
    );

    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
        .await;
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    let params = query(&location);
    assert_eq!(
        param(&params, "state").as_deref(),
        Some("st@te/ü"),
        "RFC 6749 section 4.1.2: state untouched"
    );
    assert_eq!(
        param(&params, "iss").as_deref(),
        Some(flow.server.url.as_str()),
        "RFC 9207"
    );
    let code = param(&params, "code").unwrap();

    let (status, wrong) = flow.redeem(&code, &pkce().0).await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (400, Some("invalid_grant")),
        "RFC 7636 section 4.6: {wrong}"
    );
    // The failed redemption used the code up; start again.
    let (verifier, challenge) = {
        let _ = verifier;
        pkce()
    };
    let location = flow
        .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
        .await;
    let code = param(&query(&location), "code").unwrap();
    let (status, tokens) = flow.redeem(&code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "read");
    let (_, claims) = jwt_parts(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], flow.client_id.as_str());
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // A refresh rotates and never widens.
    let (status, widened) = flow
        .refresh_with(&refresh, &[("scope", "read write")])
        .await;
    assert_eq!(
        (status, widened["error"].as_str()),
        (400, Some("invalid_scope")),
        "a refresh never widens scope"
    );
    let (status, rotated) = flow.refresh(&refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh);
    let (status, _) = flow.refresh(&next).await;
    assert_eq!(status, 200, "the rotated token works once");

    let events = flow.server.events("?type=code.issued").await;
    assert_eq!(events.len(), 2);
    let log = flow.server.log.lock().unwrap().clone();
    for secret in [
        code.as_str(),
        refresh.as_str(),
        next.as_str(),
        tokens["access_token"].as_str().unwrap(),
        verifier.as_str(),
        PASSWORD,
    ] {
        assert!(
            !log.contains(secret),
            "the log shows no token, code, verifier or password"
        );
    }
}

/// RFC 9700 §4.14, OAuth 2.1 §4.1.3: a second redemption is refused and
/// revokes every token the first produced.
async fn rfc9700_4_14_a_reused_code_revokes_its_tokens(db: Database) {
    let flow = public_flow(&db).await;
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
        .await;
    let code = param(&query(&location), "code").unwrap();
    let (status, tokens) = flow.redeem(&code, &verifier).await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(flow.introspect(access).await["active"], true);
    let (status, again) = flow.redeem(&code, &verifier).await;
    assert_eq!(
        (status, again["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(flow.introspect(access).await, json!({"active": false}));
    let (status, _) = flow
        .refresh(tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        status, 400,
        "the first redemption's refresh token is revoked too"
    );
    assert_eq!(flow.server.events("?type=code.reused").await.len(), 1);
}

/// RFC 9700 §4.14.2: a rotated-out refresh token presented again revokes
/// its family — that family only.
async fn rfc9700_4_14_2_refresh_reuse_revokes_the_family_only(db: Database) {
    let flow = public_flow(&db).await;
    let mut families = Vec::new();
    for _ in 0..2 {
        families.push(flow.authorize_and_redeem().await);
    }
    let first = families[0]["refresh_token"].as_str().unwrap();
    let (_, rotated) = flow.refresh(first).await;
    let newest = rotated["refresh_token"].as_str().unwrap().to_owned();
    let (status, reused) = flow.refresh(first).await;
    assert_eq!(
        (status, reused["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = flow.refresh(&newest).await;
    assert_eq!(status, 400, "the whole family is revoked");
    assert_eq!(
        flow.introspect(rotated["access_token"].as_str().unwrap())
            .await["active"],
        false
    );
    let (status, other) = flow
        .refresh(families[1]["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        status, 200,
        "another family of the same client is untouched: {other}"
    );
    assert_eq!(
        flow.server.events("?type=refresh_token.reused").await.len(),
        1
    );
}

/// Errors about the client or the redirect URI are shown, never
/// redirected; every other error is a 303 to the client with `iss`.
async fn oauth21_4_1_2_1_errors_never_redirect_to_unverified_uris(db: Database) {
    let flow = public_flow(&db).await;
    let (_, challenge) = pkce();
    let browser = browser();
    let mut unknown = url::Url::parse(&flow.authorization_url(&challenge, &[])).unwrap();
    let pairs: Vec<(String, String)> = unknown
        .query_pairs()
        .map(|(k, v)| {
            let value = if k == "client_id" {
                "nobody".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), value)
        })
        .collect();
    unknown.query_pairs_mut().clear().extend_pairs(pairs);
    for url in [
        unknown.to_string(),
        flow.authorization_url(&challenge, &[]).replace(
            &url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
            "https%3A%2F%2Fapp.example%2Fcb%2F",
        ),
    ] {
        let response = browser.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{url}");
        assert!(response.headers().get("location").is_none());
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    for (extra, error) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("response_mode", "fragment")], "invalid_request"),
        (vec![("scope", "admin")], "invalid_scope"),
    ] {
        let url = url::Url::parse(&flow.authorization_url(&challenge, &extra)).unwrap();
        let response = browser.get(url.as_str()).send().await.unwrap();
        assert_eq!(response.status(), 303, "{extra:?}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT));
        let params = query(&location);
        assert_eq!(
            param(&params, "error").as_deref(),
            Some(error),
            "{location}"
        );
        assert!(
            param(&params, "iss").is_some(),
            "RFC 9207: iss in errors too"
        );
        assert_eq!(param(&params, "state").as_deref(), Some("st@te/ü"));
        assert!(param(&params, "code").is_none() && param(&params, "access_token").is_none());
    }
}

/// A person who already consented to these scopes is not asked again;
/// one who denies sends `access_denied`.
async fn consent_is_remembered_and_deny_is_access_denied(db: Database) {
    let flow = public_flow(&db).await;
    let browser = browser();
    let (_, challenge) = pkce();
    flow.authorize(&browser, &flow.authorization_url(&challenge, &[]))
        .await;
    let response = browser
        .get(flow.authorization_url(&challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "remembered consent answers at once");
    assert!(param(
        &query(response.headers()["location"].to_str().unwrap()),
        "code"
    )
    .is_some());

    // More scope than consented: asked again; deny.
    let page = browser
        .get(flow.authorization_url(&challenge, &[("scope", "read write")]))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"value="deny""#), "{html}");
    let response = browser
        .post(&flow.authorize)
        .form(&[
            ("step", "consent"),
            ("pending", &hidden(&html, "pending")),
            ("csrf", &hidden(&html, "csrf")),
            ("decision", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        param(
            &query(response.headers()["location"].to_str().unwrap()),
            "error"
        )
        .as_deref(),
        Some("access_denied")
    );

    // A forged CSRF token is refused.
    let page = browser
        .get(flow.authorization_url(&challenge, &[("scope", "read write")]))
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    let response = browser
        .post(&flow.authorize)
        .form(&[
            ("step", "consent"),
            ("pending", &hidden(&html, "pending")),
            ("csrf", "AAAA"),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

/// Failed logins are braked per account (and per address).
async fn failed_logins_are_throttled(db: Database) {
    let flow = public_flow(&db).await;
    let browser = browser();
    let (_, challenge) = pkce();
    let html = browser
        .get(flow.authorization_url(&challenge, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (pending, csrf) = (hidden(&html, "pending"), hidden(&html, "csrf"));
    let mut last = String::new();
    for _ in 0..11 {
        last = browser
            .post(&flow.authorize)
            .form(&[
                ("step", "login"),
                ("pending", pending.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "alice"),
                ("password", "wrong password"),
            ])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    }
    assert!(last.contains("too many failed attempts"), "{last}");
    let right = browser
        .post(&flow.authorize)
        .form(&[
            ("step", "login"),
            ("pending", pending.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        right.contains("too many failed attempts"),
        "even the right password waits"
    );
    assert!(flow.server.events("?type=login.failed").await.len() >= 10);
    let _ = ADMIN_TOKEN;
}

/// RFC 9449 §10: a code bound to a DPoP key (`dpop_jkt`) is redeemed only
/// with a proof by that key; the tokens are DPoP-bound, the refresh family
/// too.
async fn rfc9449_10_dpop_jkt_binds_the_code(db: Database) {
    let flow = public_flow(&db).await;
    let key = ClientKey::generate("dpop");
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(
            &browser(),
            &flow.authorization_url(&challenge, &[("dpop_jkt", &key.jkt())]),
        )
        .await;
    let code = param(&query(&location), "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
        ("client_id", flow.client_id.as_str()),
    ];
    let proof = key.dpop_proof("POST", &flow.token, &json!({}));
    let response = flow
        .server
        .http
        .post(&flow.token)
        .header("DPoP", proof)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = flow.refresh(refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "a DPoP-bound family needs the key"
    );
    let proof = key.dpop_proof("POST", &flow.token, &json!({}));
    let response = flow
        .server
        .http
        .post(&flow.token)
        .header("DPoP", proof)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", flow.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

on_both_engines!(
    oauth21_4_1_code_flow_with_pkce_end_to_end,
    rfc9700_4_14_a_reused_code_revokes_its_tokens,
    rfc9700_4_14_2_refresh_reuse_revokes_the_family_only,
    oauth21_4_1_2_1_errors_never_redirect_to_unverified_uris,
    consent_is_remembered_and_deny_is_access_denied,
    failed_logins_are_throttled,
    rfc9449_10_dpop_jkt_binds_the_code,
);
