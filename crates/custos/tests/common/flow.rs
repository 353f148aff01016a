//! An authorization code flow driven over HTTP, as the person's browser and
//! the client would: the set-up (a person, a client) and each step.

use super::browser::{browser, hidden, param, pkce, query, PASSWORD, REDIRECT};
use super::{Database, Server};
use reqwest::Method;
use serde_json::{json, Value};

pub struct Flow {
    pub server: Server,
    pub client_id: String,
    /// The RFC 7591 registration answer (with the secret, if any).
    pub registration: Value,
    pub authorize: String,
    pub token: String,
}

pub async fn setup(db: &Database, metadata: Value) -> Flow {
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

pub async fn public_flow(db: &Database) -> Flow {
    setup(
        db,
        json!({"token_endpoint_auth_method": "none", "grant_types": ["authorization_code", "refresh_token"],
               "redirect_uris": [REDIRECT], "scope": "read write", "client_name": "Agent Smith"}),
    )
    .await
}

impl Flow {
    /// The authorization request URL; `extra` replaces or adds parameters.
    pub fn authorization_url(&self, challenge: &str, extra: &[(&str, &str)]) -> String {
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
    pub async fn authorize(&self, browser: &reqwest::Client, url: &str) -> String {
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

    pub async fn redeem(&self, code: &str, verifier: &str) -> (u16, Value) {
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

    /// One whole authorization in a fresh browser — PKCE, login and
    /// consent (or consent remembered), the code redeemed — and the token
    /// response, which must be a success.
    pub async fn authorize_and_redeem(&self) -> Value {
        let (verifier, challenge) = pkce();
        let location = self
            .authorize(&browser(), &self.authorization_url(&challenge, &[]))
            .await;
        let (status, tokens) = self
            .redeem(&param(&query(&location), "code").unwrap(), &verifier)
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    pub async fn refresh(&self, token: &str) -> (u16, Value) {
        self.refresh_with(token, &[]).await
    }

    /// A refresh with more parameters (`scope`, `authorization_details`…).
    pub async fn refresh_with(&self, token: &str, extra: &[(&str, &str)]) -> (u16, Value) {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", self.client_id.as_str()),
        ];
        form.extend_from_slice(extra);
        let (status, _, body) = self.server.post_form(&self.token, None, &form).await;
        (status, body)
    }

    pub async fn introspect(&self, token: &str) -> Value {
        let (id, secret) = self.server.secret_client("client_secret_basic", "").await;
        let endpoint = self.server.endpoint("introspection_endpoint").await;
        self.server
            .post_form(&endpoint, Some((&id, &secret)), &[("token", token)])
            .await
            .2
    }
}
