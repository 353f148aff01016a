//! The authorization code flow end to end over HTTP (draft-ietf-oauth-v2-1
//! §4.1, RFC 9700): the person's pages, the code at the exact redirect URI
//! with `state` and `iss`, PKCE, single-use codes, refresh rotation and
//! reuse detection, and the errors that must never redirect.

mod common;

use common::browser::{browser, hidden, param, pkce, query, PASSWORD, REDIRECT};
use common::{jwt_parts, ClientKey, Database, Server, ADMIN_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

struct Flow {
    server: Server,
    client_id: String,
    /// The RFC 7591 registration answer (with the secret, if any).
    registration: Value,
    authorize: String,
    token: String,
}

async fn setup(db: &Database, metadata: Value) -> Flow {
    let server = Server::start(db).await;
    let (status, _) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, client) = server.register(metadata).await;
    assert_eq!(status, 201, "{client}");
    let discovery = server.discovery().await;
    Flow {
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        registration: client.clone(),
        authorize: discovery["authorization_endpoint"]
            .as_str()
            .unwrap()
            .to_owned(),
        token: discovery["token_endpoint"].as_str().unwrap().to_owned(),
        server,
    }
}

async fn public_flow(db: &Database) -> Flow {
    setup(
        db,
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read write", "client_name": "Agent Smith"}),
    )
    .await
}

impl Flow {
    /// The authorization request URL; `extra` replaces or adds parameters.
    fn authorization_url(&self, challenge: &str, extra: &[(&str, &str)]) -> String {
        let defaults = [
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "read"),
            ("state", "st@te/ü"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ];
        let mut url = url::Url::parse(&self.authorize).unwrap();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in defaults {
                if !extra.iter().any(|(e, _)| *e == k) {
                    q.append_pair(k, v);
                }
            }
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }

    /// Login and consent in `browser`; returns the 303's Location.
    async fn authorize(&self, browser: &reqwest::Client, url: &str) -> String {
        let page = browser.get(url).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let headers = page.headers().clone();
        assert_eq!(headers["x-frame-options"], "DENY");
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'"));
        assert_eq!(headers["cache-control"], "no-store");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"name="username""#) && html.contains(r#"name="password""#));
        assert!(!html.contains("<script"));
        let response = browser
            .post(&self.authorize)
            .form(&[
                ("step", "login"),
                ("pending", &hidden(&html, "pending")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        if response.status() == 303 {
            // This person already consented to this client and scope.
            return response.headers()["location"].to_str().unwrap().to_owned();
        }
        assert_eq!(response.status(), 200);
        let consent = response.text().await.unwrap();
        assert!(
            consent.contains(
                self.registration["client_name"]
                    .as_str()
                    .unwrap_or(&self.client_id),
            ) && consent.contains("<code>read</code>"),
            "{consent}"
        );
        assert!(
            consent.contains(r#"name="decision" value="allow""#)
                && consent.contains(r#"name="decision" value="deny""#)
        );
        let response = browser
            .post(&self.authorize)
            .form(&[
                ("step", "consent"),
                ("pending", &hidden(&consent, "pending")),
                ("csrf", &hidden(&consent, "csrf")),
                ("decision", "allow"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            303,
            "RFC 9700 section 4.12: 303, never 307"
        );
        response.headers()["location"].to_str().unwrap().to_owned()
    }

    async fn redeem(&self, code: &str, verifier: &str) -> (u16, Value) {
        let (status, _, body) = self
            .server
            .post_form(
                &self.token,
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier),
                    ("client_id", &self.client_id),
                ],
            )
            .await;
        (status, body)
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        let (status, _, body) = self
            .server
            .post_form(
                &self.token,
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token),
                    ("client_id", &self.client_id),
                ],
            )
            .await;
        (status, body)
    }

    async fn introspect(&self, token: &str) -> Value {
        let (id, secret) = self.server.secret_client("client_secret_basic", "").await;
        let endpoint = self.server.endpoint("introspection_endpoint").await;
        self.server
            .post_form(&endpoint, Some((&id, &secret)), &[("token", token)])
            .await
            .2
    }
}

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
    let (status, _, widened) = flow
        .server
        .post_form(
            &flow.token,
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", &flow.client_id),
                ("scope", "read write"),
            ],
        )
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
        let (verifier, challenge) = pkce();
        let location = flow
            .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
            .await;
        let (status, tokens) = flow
            .redeem(&param(&query(&location), "code").unwrap(), &verifier)
            .await;
        assert_eq!(status, 200);
        families.push(tokens);
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

/// RFC 9126: a confidential client pushes its request, the browser carries
/// only `client_id` and `request_uri`; a client registered with
/// `require_pushed_authorization_requests` cannot skip it; a request_uri is
/// bound to its client and expires.
async fn rfc9126_pushed_authorization_requests(db: Database) {
    let flow = setup(
        &db,
        json!({"token_endpoint_auth_method": "client_secret_basic", "grant_types": ["authorization_code"],
               "redirect_uris": [REDIRECT], "scope": "read", "require_pushed_authorization_requests": true}),
    )
    .await;
    let discovery = flow.server.discovery().await;
    let par = discovery["pushed_authorization_request_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(discovery["require_pushed_authorization_requests"], false);
    let id = flow.client_id.clone();
    let secret = flow.registration["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let (verifier, challenge) = pkce();

    // Not pushed: refused, at the client's redirect URI.
    let response = browser()
        .get(flow.authorization_url(&challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        param(&query(&location), "error").as_deref(),
        Some("invalid_request")
    );

    let push = |extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("response_type", "code".to_owned()),
            ("client_id", id.clone()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("scope", "read".to_owned()),
            ("state", "pushed".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
        ];
        form.extend(extra);
        form
    };
    let form = push(vec![]);
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, pushed) = flow
        .server
        .post_form(&par, Some((&id, &secret)), &borrowed)
        .await;
    assert_eq!(status, 201, "{pushed}");
    assert_eq!(pushed["expires_in"], 60);
    let request_uri = pushed["request_uri"].as_str().unwrap().to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // Unauthenticated or with a request_uri inside: refused.
    let (status, _, _) = flow.server.post_form(&par, None, &borrowed).await;
    assert_eq!(status, 401);
    let mut with_uri = borrowed.clone();
    with_uri.push(("request_uri", request_uri.as_str()));
    let (status, _, body) = flow
        .server
        .post_form(&par, Some((&id, &secret)), &with_uri)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );

    // Another client cannot use it.
    let mut stolen = url::Url::parse(&flow.authorize).unwrap();
    stolen
        .query_pairs_mut()
        .append_pair("client_id", "someone-else")
        .append_pair("request_uri", &request_uri);
    assert_eq!(
        browser()
            .get(stolen.as_str())
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let mut url = url::Url::parse(&flow.authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &id)
        .append_pair("request_uri", &request_uri);
    let location = flow.authorize(&browser(), url.as_str()).await;
    let params = query(&location);
    assert_eq!(param(&params, "state").as_deref(), Some("pushed"));
    let code = param(&params, "code").unwrap();
    let (status, _, tokens) = flow
        .server
        .post_form(
            &flow.token,
            Some((&id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier.as_str()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{tokens}");
}

/// Remembered consent is listed and revoked through the admin API and the
/// CLI (the person is asked again); the inventory shows each client's
/// PKCE and DPoP requirements, redirect URIs and live refresh families.
async fn consents_and_inventory_through_the_admin_api_and_cli(db: Database) {
    let flow = public_flow(&db).await;
    let browser = browser();
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser, &flow.authorization_url(&challenge, &[]))
        .await;
    let (status, _) = flow
        .redeem(&param(&query(&location), "code").unwrap(), &verifier)
        .await;
    assert_eq!(status, 200);

    let (status, inventory) = flow.server.admin(Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 200);
    let entry = inventory
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == flow.client_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["pkce_required"], true);
    assert_eq!(entry["dpop_bound_access_tokens"], false);
    assert_eq!(entry["redirect_uris"], json!([REDIRECT]));
    assert_eq!(entry["live_refresh_families"], 1);

    let cli = |args: &[&str]| {
        let output = std::process::Command::new(common::binary())
            .args(["admin"])
            .args(args)
            .args(["--url", &flow.server.url])
            .env("CUSTOS_ADMIN_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let listed: Value =
        serde_json::from_str(&cli(&["consents", "list", "--username", "alice"])).unwrap();
    assert_eq!(listed[0]["client_id"], flow.client_id.as_str());
    assert_eq!(listed[0]["scope"], "read");
    cli(&["consents", "revoke", "alice", &flow.client_id]);
    let (status, listed) = flow
        .server
        .admin(Method::GET, "/admin/consents", None)
        .await;
    assert_eq!((status, listed), (200, json!([])));
    let (status, _) = flow
        .server
        .admin(
            Method::DELETE,
            &format!("/admin/consents/alice/{}", flow.client_id),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Asked again: the consent page, not a redirect.
    let page = browser
        .get(flow.authorization_url(&challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains(r#"value="allow""#));
    assert_eq!(flow.server.events("?type=consent.revoked").await.len(), 1);
}

/// RFC 9700 §4.14.2 across replicas: 500 concurrent refreshes with one
/// refresh token, spread over two replicas: exactly one succeeds, and since
/// the others are reuses, the family — the winner's new token included —
/// is revoked. Decided by the database, not by either process.
async fn rfc9700_concurrent_refreshes_across_replicas_have_one_winner(db: Database) {
    let (first, second) = Server::replicas(&db).await;
    let (status, _) = first
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, client) = first
        .register(json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
                         "redirect_uris": [REDIRECT], "scope": "read"}))
        .await;
    let flow = Flow {
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        registration: client.clone(),
        authorize: format!("{}/authorize", first.url),
        token: format!("{}/token", first.url),
        server: first,
    };
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
        .await;
    let (status, tokens) = flow
        .redeem(&param(&query(&location), "code").unwrap(), &verifier)
        .await;
    assert_eq!(status, 200, "{tokens}");
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let endpoints = [flow.token.clone(), format!("{}/token", second.url)];
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let (http, endpoint, refresh, client_id) = (
            http.clone(),
            endpoints[i % 2].clone(),
            refresh.clone(),
            flow.client_id.clone(),
        );
        tasks.spawn(async move {
            let response = http
                .post(endpoint)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", client_id.as_str()),
                ])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        });
    }
    let mut winners = Vec::new();
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.unwrap();
        match status {
            200 => winners.push(body),
            400 => {
                assert_eq!(body["error"], "invalid_grant");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    assert_eq!(refused, 499);
    let newest = winners[0]["refresh_token"].as_str().unwrap();
    let (status, _) = flow.refresh(newest).await;
    assert_eq!(
        status, 400,
        "the reuses revoked the family, the winner's token too"
    );
    let _ = second;
}

/// A client that races its own refreshes may be given a grace window:
/// within it the rotated-out token still rotates, and the family lives.
async fn refresh_reuse_grace_window_per_client(db: Database) {
    let flow = setup(
        &db,
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read", "refresh_token_reuse_grace": 30}),
    )
    .await;
    assert_eq!(flow.registration["refresh_token_reuse_grace"], 30);
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
        .await;
    let (_, tokens) = flow
        .redeem(&param(&query(&location), "code").unwrap(), &verifier)
        .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, a) = flow.refresh(refresh).await;
    assert_eq!(status, 200);
    let (status, b) = flow.refresh(refresh).await;
    assert_eq!(status, 200, "within the grace window: {b}");
    for token in [&a, &b] {
        let (status, _) = flow.refresh(token["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200, "the family lives on");
    }
}

on_both_engines!(
    rfc9700_concurrent_refreshes_across_replicas_have_one_winner,
    refresh_reuse_grace_window_per_client,
    consents_and_inventory_through_the_admin_api_and_cli,
    rfc9126_pushed_authorization_requests,
    oauth21_4_1_code_flow_with_pkce_end_to_end,
    rfc9700_4_14_a_reused_code_revokes_its_tokens,
    rfc9700_4_14_2_refresh_reuse_revokes_the_family_only,
    oauth21_4_1_2_1_errors_never_redirect_to_unverified_uris,
    consent_is_remembered_and_deny_is_access_denied,
    failed_logins_are_throttled,
    rfc9449_10_dpop_jkt_binds_the_code,
);
