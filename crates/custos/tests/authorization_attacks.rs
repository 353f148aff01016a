//! Regression tests for an attacker's review of the person's flow: each
//! test is one attack that worked before and must not again.

mod common;

use common::browser::{browser, hidden, location_param, pkce, PASSWORD, REDIRECT};
use common::{ClientKey, Database, Server, SHARED_ISSUER};
use reqwest::Method;
use serde_json::{json, Value};

struct Setup {
    server: Server,
    client_id: String,
    secret: Option<String>,
}

async fn setup(db: &Database, env: &[(&str, &str)], metadata: Value) -> Setup {
    let server = Server::start_with(db, env).await;
    for user in ["alice", "mallory"] {
        let (status, _) = server
            .admin(
                Method::POST,
                "/admin/users",
                Some(json!({"username": user, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, client) = server.register(metadata).await;
    assert_eq!(status, 201, "{client}");
    Setup {
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        secret: client["client_secret"].as_str().map(str::to_owned),
        server,
    }
}

fn public() -> Value {
    json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
           "redirect_uris": [REDIRECT], "scope": "read write"})
}

impl Setup {
    fn authorize_url(&self, challenge: &str, extra: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/authorize", self.server.url)).unwrap();
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in [
                ("response_type", "code"),
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("scope", "read"),
                ("code_challenge", challenge),
                ("code_challenge_method", "S256"),
            ] {
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

    /// The login page's pending request and CSRF token.
    async fn login_form(
        &self,
        browser: &reqwest::Client,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let (_, challenge) = pkce();
        let html = browser
            .get(self.authorize_url(&challenge, extra))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (hidden(&html, "pending"), hidden(&html, "csrf"))
    }

    async fn login(
        &self,
        browser: &reqwest::Client,
        pending: &str,
        csrf: &str,
        user: &str,
        password: &str,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let mut request = browser
            .post(format!("{}/authorize", self.server.url))
            .form(&[
                ("step", "login"),
                ("pending", pending),
                ("csrf", csrf),
                ("username", user),
                ("password", password),
            ]);
        if let Some(address) = forwarded_for {
            request = request.header("X-Forwarded-For", address);
        }
        request.send().await.unwrap()
    }

    /// A code for `user` through login and consent; `(verifier, code)`.
    async fn code(
        &self,
        browser: &reqwest::Client,
        user: &str,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let (verifier, challenge) = pkce();
        let html = browser
            .get(self.authorize_url(&challenge, extra))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let response = self
            .login(
                browser,
                &hidden(&html, "pending"),
                &hidden(&html, "csrf"),
                user,
                PASSWORD,
                None,
            )
            .await;
        let response = if response.status() == 303 {
            response
        } else {
            let consent = response.text().await.unwrap();
            browser
                .post(format!("{}/authorize", self.server.url))
                .form(&[
                    ("step", "consent"),
                    ("pending", hidden(&consent, "pending").as_str()),
                    ("csrf", hidden(&consent, "csrf").as_str()),
                    ("decision", "allow"),
                ])
                .send()
                .await
                .unwrap()
        };
        assert_eq!(response.status(), 303);
        (verifier, location_param(&response, "code").unwrap())
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", self.client_id.as_str()),
            ],
            None,
        )
        .await
    }

    async fn token(&self, form: &[(&str, &str)], dpop: Option<String>) -> (u16, Value) {
        let mut request = self
            .server
            .http
            .post(format!("{}/token", self.server.url))
            .form(form);
        if let Some(proof) = dpop {
            request = request.header("DPoP", proof);
        }
        if let Some(secret) = &self.secret {
            request = request.basic_auth(common::enc(&self.client_id), Some(common::enc(secret)));
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }
}

/// Concurrent wrong passwords are counted before they are checked: no more
/// than the limit is ever checked in a window.
async fn concurrent_guesses_cannot_pass_the_login_limit(db: Database) {
    let s = setup(&db, &[], public()).await;
    let browser = browser();
    let (pending, csrf) = s.login_form(&browser, &[]).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..30 {
        let (browser, url, pending, csrf) = (
            browser.clone(),
            format!("{}/authorize", s.server.url),
            pending.clone(),
            csrf.clone(),
        );
        tasks.spawn(async move {
            browser
                .post(url)
                .form(&[
                    ("step", "login"),
                    ("pending", pending.as_str()),
                    ("csrf", csrf.as_str()),
                    ("username", "alice"),
                    ("password", format!("guess {i}").as_str()),
                ])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
    }
    let mut checked = 0;
    while let Some(page) = tasks.join_next().await {
        if page.unwrap().contains("wrong username or password") {
            checked += 1;
        }
    }
    assert!(checked <= 10, "{checked} guesses were checked");
}

/// Failed logins brake the guesser's network, not the person: from another
/// address the right password still works.
async fn a_guesser_cannot_lock_a_person_out(db: Database) {
    let s = setup(&db, &[("CUSTOS_TRUSTED_PROXIES", "127.0.0.1/32")], public()).await;
    let browser = browser();
    let (pending, csrf) = s.login_form(&browser, &[]).await;
    for _ in 0..12 {
        s.login(
            &browser,
            &pending,
            &csrf,
            "alice",
            "wrong",
            Some("203.0.113.7"),
        )
        .await;
    }
    let braked = s
        .login(
            &browser,
            &pending,
            &csrf,
            "alice",
            PASSWORD,
            Some("203.0.113.7"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(braked.contains("too many failed attempts"));
    let elsewhere = s
        .login(
            &browser,
            &pending,
            &csrf,
            "alice",
            PASSWORD,
            Some("198.51.100.9"),
        )
        .await;
    let page = elsewhere.text().await.unwrap();
    assert!(
        !page.contains("too many failed attempts") && page.contains(r#"value="allow""#),
        "{page}"
    );
}

/// A form posted from another site is refused (login CSRF: signing the
/// victim into the attacker's account).
async fn cross_site_login_posts_are_refused(db: Database) {
    let s = setup(&db, &[], public()).await;
    let browser = browser();
    let (pending, csrf) = s.login_form(&browser, &[]).await;
    for (header, value) in [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Origin", "null"),
    ] {
        let response = browser
            .post(format!("{}/authorize", s.server.url))
            .header(header, value)
            .form(&[
                ("step", "login"),
                ("pending", pending.as_str()),
                ("csrf", csrf.as_str()),
                ("username", "mallory"),
                ("password", PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{header}: {value}");
        assert!(response.headers().get("set-cookie").is_none());
    }
    let same_origin = browser
        .post(format!("{}/authorize", s.server.url))
        .header("Origin", &s.server.url)
        .header("Sec-Fetch-Site", "same-origin")
        .form(&[
            ("step", "login"),
            ("pending", pending.as_str()),
            ("csrf", csrf.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
}

/// Consent remembered for `read` on no resource does not silently cover
/// `read` on a resource (RFC 8707).
async fn remembered_consent_does_not_cover_resources(db: Database) {
    let s = setup(&db, &[], public()).await;
    let (status, _) = s
        .server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://payroll.example/", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(status, 201);
    let browser = browser();
    s.code(&browser, "alice", &[]).await;
    let (_, challenge) = pkce();
    let again = browser
        .get(s.authorize_url(&challenge, &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303, "remembered for the same request");
    let with_resource = browser
        .get(s.authorize_url(&challenge, &[("resource", "https://payroll.example/")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_resource.status(),
        200,
        "a request naming a resource is asked"
    );
    let page = with_resource.text().await.unwrap();
    assert!(page.contains("payroll.example"), "{page}");
}

/// Made-up client ids with a request_uri, and a public client's failed
/// token requests, cannot make the audit trail grow without bound.
async fn unauthenticated_floods_stay_out_of_the_audit_trail(db: Database) {
    let s = setup(&db, &[], public()).await;
    let http = browser();
    for i in 0..300 {
        http.get(format!(
            "{}/authorize?client_id=made-up-{i}&request_uri=urn:ietf:params:oauth:request_uri:x",
            s.server.url
        ))
        .send()
        .await
        .unwrap();
    }
    let refused = s
        .server
        .events("?type=authorization.refused&limit=10000")
        .await;
    assert!(refused.len() <= 3, "{}", refused.len());
    for i in 0..100 {
        let code = format!("junk-{i}");
        let (status, _) = s
            .token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("code_verifier", "x".repeat(43).as_str()),
                    ("client_id", s.client_id.as_str()),
                    ("scope", "s".repeat(500).as_str()),
                ],
                None,
            )
            .await;
        assert_eq!(status, 400);
    }
    let refused = s
        .server
        .events(&format!(
            "?type=token.refused&client_id={}&limit=10000",
            s.client_id
        ))
        .await;
    assert!(
        refused.len() <= 21,
        "a public client proves nothing: {}",
        refused.len()
    );
}

/// A leaked code used by another client is neither burned nor able to
/// revoke what its client got with it.
async fn another_client_cannot_burn_or_revoke_a_code(db: Database) {
    let s = setup(&db, &[], public()).await;
    let (_, other) = s.server.register(public()).await;
    let other = other["client_id"].as_str().unwrap().to_owned();
    let browser = browser();
    let (verifier, code) = s.code(&browser, "alice", &[]).await;
    let (status, _) = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("client_id", other.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, tokens) = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("client_id", s.client_id.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200, "the code was not burned: {tokens}");
    let (status, _) = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("client_id", other.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .token(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", s.client_id.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200, "another client's replay revoked nothing");
}

/// A second retry within the grace window would fork the family: it is a
/// reuse, and revokes it.
async fn the_grace_window_allows_one_retry(db: Database) {
    let mut metadata = public();
    metadata["refresh_token_reuse_grace"] = json!(30);
    let s = setup(&db, &[], metadata).await;
    let (verifier, code) = s.code(&browser(), "alice", &[]).await;
    let (_, tokens) = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("client_id", s.client_id.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let (status, a) = s.refresh(first).await;
    assert_eq!(status, 200);
    let (status, _) = s.refresh(first).await;
    assert_eq!(status, 200, "one retry within the window");
    let (status, _) = s.refresh(first).await;
    assert_eq!(status, 400, "a second retry is a reuse");
    let (status, _) = s.refresh(a["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400, "and the family is revoked");
}

/// A client narrowed through RFC 7592 gets no more from its existing
/// refresh families than it is registered for now.
async fn narrowing_a_client_narrows_its_refresh_families(db: Database) {
    let server = Server::start(&db).await;
    let (status, _) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, client) = server.register(public()).await;
    let uri = client["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    let rat = client["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = Setup {
        client_id: client["client_id"].as_str().unwrap().to_owned(),
        secret: None,
        server,
    };
    let (verifier, code) = s
        .code(&browser(), "alice", &[("scope", "read write")])
        .await;
    let (_, tokens) = s
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("code_verifier", verifier.as_str()),
                ("client_id", s.client_id.as_str()),
                ("redirect_uri", REDIRECT),
            ],
            None,
        )
        .await;
    assert_eq!(tokens["scope"], "read write");
    let mut narrowed = public();
    narrowed["client_id"] = json!(s.client_id);
    narrowed["scope"] = json!("write");
    let response = s
        .server
        .http
        .put(&uri)
        .bearer_auth(&rat)
        .json(&narrowed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, refreshed) = s.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{refreshed}");
    assert_eq!(refreshed["scope"], "write");
}

/// RFC 9449 §10.1: a DPoP proof sent with a pushed request binds the code.
async fn a_dpop_proof_at_par_binds_the_code(db: Database) {
    let s = setup(
        &db,
        &[],
        json!({"token_endpoint_auth_method": "client_secret_basic",
        "grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "scope": "read"}),
    )
    .await;
    let key = ClientKey::generate("dpop");
    let par = format!("{}/par", s.server.url);
    let (verifier, challenge) = pkce();
    let response = s
        .server
        .http
        .post(&par)
        .basic_auth(
            common::enc(&s.client_id),
            Some(common::enc(s.secret.as_deref().unwrap())),
        )
        .header("DPoP", key.dpop_proof("POST", &par, &json!({})))
        .form(&[
            ("response_type", "code"),
            ("client_id", s.client_id.as_str()),
            ("redirect_uri", REDIRECT),
            ("scope", "read"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let pushed: Value = response.json().await.unwrap();
    let mut url = url::Url::parse(&format!("{}/authorize", s.server.url)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", &s.client_id)
        .append_pair("request_uri", pushed["request_uri"].as_str().unwrap());
    let browser = browser();
    let html = browser
        .get(url.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let consent = s
        .login(
            &browser,
            &hidden(&html, "pending"),
            &hidden(&html, "csrf"),
            "alice",
            PASSWORD,
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let response = browser
        .post(format!("{}/authorize", s.server.url))
        .form(&[
            ("step", "consent"),
            ("pending", hidden(&consent, "pending").as_str()),
            ("csrf", hidden(&consent, "csrf").as_str()),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap();
    let code = location_param(&response, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, body) = s.token(&form, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the code needs the key"
    );
}

/// Under https the session cookie is `__Host-` (Secure, Path=/).
async fn https_sessions_use_the_host_prefix(db: Database) {
    let s = setup(&db, &[("CUSTOS_ISSUER", SHARED_ISSUER)], public()).await;
    let browser = browser();
    let (_, challenge) = pkce();
    let html = browser
        .get(s.authorize_url(&challenge, &[]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let response = s
        .login(
            &browser,
            &hidden(&html, "pending"),
            &hidden(&html, "csrf"),
            "alice",
            PASSWORD,
            None,
        )
        .await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-custos_session="), "{cookie}");
    assert!(
        cookie.contains("Path=/;") && cookie.contains("Secure") && !cookie.contains("Domain"),
        "{cookie}"
    );
}

on_both_engines!(
    concurrent_guesses_cannot_pass_the_login_limit,
    a_guesser_cannot_lock_a_person_out,
    cross_site_login_posts_are_refused,
    remembered_consent_does_not_cover_resources,
    unauthenticated_floods_stay_out_of_the_audit_trail,
    another_client_cannot_burn_or_revoke_a_code,
    the_grace_window_allows_one_retry,
    narrowing_a_client_narrows_its_refresh_families,
    a_dpop_proof_at_par_binds_the_code,
    https_sessions_use_the_host_prefix,
);
