//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-
//! document; how MCP clients arrive) through the real server, on SQLite
//! and PostgreSQL, against a document server the test controls: documents
//! that lie about their `client_id`, redirect, grow past the limit, fail,
//! change, or come from a denied host; the code flow of a document client
//! end to end; `private_key_jwt` with the document's `jwks_uri`; the
//! inventory; an operator disabling a document client.
//!
//! The server runs with CUSTOS_ALLOW_PRIVATE_URLS=true (development), the
//! only way a document on 127.0.0.1 over plain http is fetched at all.

mod common;

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use common::browser::{browser, decide, log_in_as_alice, param, pkce, query, PASSWORD, REDIRECT};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the document server answers for one path.
#[derive(Clone)]
struct Answer {
    status: u16,
    content_type: &'static str,
    body: String,
    cache_control: Option<&'static str>,
    location: Option<String>,
}

impl Answer {
    fn json(body: Value) -> Answer {
        Answer {
            status: 200,
            content_type: "application/json",
            body: body.to_string(),
            cache_control: Some("max-age=300"),
            location: None,
        }
    }
}

/// A document server on 127.0.0.1: answers and fetch counts per path.
#[derive(Clone, Default)]
struct Documents {
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    fetches: Arc<Mutex<HashMap<String, usize>>>,
    base: Arc<Mutex<String>>,
}

impl Documents {
    async fn start() -> Documents {
        let documents = Documents::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *documents.base.lock().unwrap() = format!("http://{}", listener.local_addr().unwrap());
        let state = documents.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let state = state.clone();
            async move {
                let path = uri.path().to_owned();
                *state
                    .fetches
                    .lock()
                    .unwrap()
                    .entry(path.clone())
                    .or_default() += 1;
                let Some(answer) = state.answers.lock().unwrap().get(&path).cloned() else {
                    return StatusCode::NOT_FOUND.into_response();
                };
                let mut response = (
                    StatusCode::from_u16(answer.status).unwrap(),
                    [(header::CONTENT_TYPE, answer.content_type)],
                    answer.body,
                )
                    .into_response();
                if let Some(cache) = answer.cache_control {
                    response
                        .headers_mut()
                        .insert(header::CACHE_CONTROL, cache.parse().unwrap());
                }
                if let Some(location) = answer.location {
                    response
                        .headers_mut()
                        .insert(header::LOCATION, location.parse().unwrap());
                }
                response
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        documents
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.lock().unwrap())
    }

    fn serve(&self, path: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(path.to_owned(), answer);
    }

    fn fetches(&self, path: &str) -> usize {
        self.fetches.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// A public MCP client's document at `path`.
    fn client(&self, path: &str) -> String {
        let id = self.url(path);
        self.serve(
            path,
            Answer::json(json!({"client_id": id, "client_name": "Example MCP client",
                                "redirect_uris": [REDIRECT], "grant_types": ["authorization_code", "refresh_token"],
                                "token_endpoint_auth_method": "none", "scope": "read"})),
        );
        id
    }
}

async fn server(db: &Database, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("CUSTOS_ALLOW_PRIVATE_URLS", "true")];
    env.extend_from_slice(extra);
    let server = Server::start_with(db, &env).await;
    let (status, _) = server
        .admin(
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": PASSWORD})),
        )
        .await;
    // 409: a server before this one on the same database made her.
    assert!(status == 201 || status == 409, "{status}");
    server
}

fn authorization_url(server: &Server, client_id: &str, challenge: &str) -> String {
    let mut url = url::Url::parse(&format!("{}/authorize", server.url)).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "read")
        .append_pair("state", "s")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    url.to_string()
}

/// The authorization endpoint's first answer: (status, body).
async fn first_page(server: &Server, client_id: &str) -> (u16, String) {
    let (_, challenge) = pkce();
    let response = browser()
        .get(authorization_url(server, client_id, &challenge))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn cimd_a_document_client_through_the_code_flow(db: Database) {
    let documents = Documents::start().await;
    let server = server(&db, &[]).await;
    let discovery = server.discovery().await;
    assert_eq!(discovery["client_id_metadata_document_supported"], true);
    let client_id = documents.client("/mcp/client.json");

    let (verifier, challenge) = pkce();
    let b = browser();
    let login = b
        .get(authorization_url(&server, &client_id, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let login = login.text().await.unwrap();
    // §6.4: the client's host, prominently.
    assert!(
        login.contains(r#"<strong class="host">127.0.0.1</strong>"#),
        "{login}"
    );
    assert!(login.contains("Example MCP client"));
    let authorize = format!("{}/authorize", server.url);
    let consent = log_in_as_alice(&b, &authorize, &login).await;
    assert!(
        consent.contains(r#"<strong class="host">127.0.0.1</strong>"#),
        "{consent}"
    );
    let redirect = decide(&b, &authorize, &consent, "allow").await;
    assert_eq!(redirect.status(), 303);
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let code = param(&query(&location), "code").unwrap();
    let token_endpoint = server.endpoint("token_endpoint").await;
    let (status, _, body) = server
        .post_form(
            &token_endpoint,
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], client_id);
    // Consent to a client that describes itself is not remembered: the
    // same person asks again, and is asked again.
    let (_, challenge) = pkce();
    let again = b
        .get(authorization_url(&server, &client_id, &challenge))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200, "the consent page again");
    assert!(again.text().await.unwrap().contains(r#"value="allow""#));
    // One fetch for the whole flow, however many requests named it.
    assert_eq!(documents.fetches("/mcp/client.json"), 1);

    // The refresh token works, and the client is in the inventory with
    // its document.
    let (status, _, refreshed) = server
        .post_form(
            &token_endpoint,
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", body["refresh_token"].as_str().unwrap()),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    let (_, inventory) = server.admin(Method::GET, "/admin/clients", None).await;
    let listed = inventory
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == client_id)
        .unwrap_or_else(|| panic!("{inventory}"));
    assert_eq!(listed["client_id_metadata_document"]["url"], client_id);
    assert!(
        listed["client_id_metadata_document"]["last_fetched_at"]
            .as_i64()
            .unwrap()
            > 0
    );
    assert_eq!(listed["token_endpoint_auth_method"], "none");

    // A document held is used until its lifetime ends: a change is not
    // seen before (here: 300 s), and costs no fetch.
    documents.serve(
        "/mcp/client.json",
        Answer::json(json!({"client_id": client_id, "redirect_uris": ["https://evil.example/cb"]})),
    );
    let (status, _) = first_page(&server, &client_id).await;
    assert_eq!(status, 200);
    assert_eq!(documents.fetches("/mcp/client.json"), 1);

    // The operator disables it: refused from then on, its tokens inactive.
    let path = format!("/admin/clients/{}", percent_encode(&client_id));
    let (status, body) = server.admin(Method::DELETE, &path, None).await;
    assert_eq!(status, 204, "{body}");
    let (status, page) = first_page(&server, &client_id).await;
    assert_eq!(status, 400, "{page}");
    let introspected = server
        .post_form(
            &server.endpoint("introspection_endpoint").await,
            Some(&server.secret_client("client_secret_basic", "").await)
                .map(|(i, s)| (i.as_str(), s.as_str())),
            &[("token", refreshed["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(introspected.2["active"], false);
}

fn percent_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Every document the server must refuse, each shown as a page (never a
/// redirect: the redirect URIs are what could not be trusted).
async fn cimd_4_documents_that_must_be_refused(db: Database) {
    let documents = Documents::start().await;
    let server = server(&db, &[]).await;
    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "/lies.json",
            Answer::json(
                json!({"client_id": "http://127.0.0.1:1/other.json", "redirect_uris": [REDIRECT]}),
            ),
            "another client_id",
        ),
        (
            "/redirects.json",
            Answer {
                status: 302,
                content_type: "text/plain",
                body: String::new(),
                cache_control: None,
                location: Some("https://elsewhere.example/client.json".into()),
            },
            "redirects are not followed",
        ),
        (
            "/big.json",
            Answer {
                body: format!(r#"{{"client_id": "x", "padding": "{}"}}"#, "x".repeat(6000)),
                ..Answer::json(json!({}))
            },
            "larger than",
        ),
        (
            "/html.json",
            Answer {
                content_type: "text/html",
                ..Answer::json(json!({}))
            },
            "not JSON",
        ),
        (
            "/fails.json",
            Answer {
                status: 500,
                ..Answer::json(json!({}))
            },
            "status 500",
        ),
        (
            "/secret.json",
            Answer::json(
                json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}),
            ),
            "none or private_key_jwt",
        ),
        (
            "/missing.json",
            Answer {
                status: 404,
                ..Answer::json(json!({}))
            },
            "status 404",
        ),
    ];
    for (path, mut answer, says) in cases {
        let id = documents.url(path);
        if answer.status == 200 && answer.content_type == "application/json" {
            // Fill in the document's own client_id where the case does not
            // set another one.
            if let Ok(mut body) = serde_json::from_str::<Value>(&answer.body) {
                if body.get("client_id").is_none() {
                    body["client_id"] = json!(id);
                    answer.body = body.to_string();
                }
            }
        }
        documents.serve(path, answer);
        let (status, page) = first_page(&server, &id).await;
        assert_eq!(status, 400, "{path}: {page}");
        assert!(page.contains(says), "{path}: {page}");
    }
    // Errors are not kept (§4.4): a document fixed is used at once.
    let id = documents.client("/fails.json");
    let (status, page) = first_page(&server, &id).await;
    assert_eq!(status, 200, "{page}");

    // A redirect URI the document does not list: a page, no redirect.
    let id = documents.client("/strict.json");
    let mut url = url::Url::parse(&authorization_url(&server, &id, &pkce().1)).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .filter(|(k, _)| k != "redirect_uri")
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("redirect_uri", "https://evil.example/cb");
    let response = browser().get(url.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 400);
    // A client_id that cannot be a document URL at all.
    let (status, page) = first_page(&server, &format!("{}?q=1", documents.url("/q.json"))).await;
    assert_eq!(status, 400);
    assert!(page.contains("query"), "{page}");
}

/// The operator's lists, and the per-host brake on fetches.
async fn cimd_hosts_denied_and_fetches_braked(db: Database) {
    let documents = Documents::start().await;
    let denied = server(&db, &[("CUSTOS_CIMD_DENIED_HOSTS", "127.0.0.1")]).await;
    let id = documents.client("/denied.json");
    let (status, page) = first_page(&denied, &id).await;
    assert_eq!(status, 400);
    assert!(page.contains("not accepted"), "{page}");
    assert_eq!(documents.fetches("/denied.json"), 0, "never fetched");
    drop(denied);

    let server = server(&db, &[]).await;
    for i in 0..20 {
        let (status, _) = first_page(&server, &documents.url(&format!("/none-{i}.json"))).await;
        assert_eq!(status, 400);
    }
    let (status, page) = first_page(&server, &documents.url("/none-20.json")).await;
    assert_eq!(status, 400);
    assert!(page.contains("too many"), "{page}");
    assert_eq!(
        documents.fetches("/none-20.json"),
        0,
        "braked before fetching"
    );
}

/// §6.2: a document client with `private_key_jwt` and its `jwks_uri`;
/// client credentials only for a host the operator lists.
async fn cimd_6_2_private_key_jwt_with_the_documents_keys(db: Database) {
    let documents = Documents::start().await;
    let key = ClientKey::generate("k1");
    documents.serve(
        "/jwks.json",
        Answer::json(json!({"keys": [key.public_jwk.clone()]})),
    );
    let id = documents.url("/agent.json");
    documents.serve(
        "/agent.json",
        Answer::json(json!({"client_id": id, "client_name": "m2m agent",
                            "grant_types": ["client_credentials"], "scope": "read",
                            "token_endpoint_auth_method": "private_key_jwt",
                            "jwks_uri": documents.url("/jwks.json")})),
    );
    let request = |server: &Server, token_endpoint: &str| {
        let assertion = key.assertion(&json!({"iss": id, "sub": id, "aud": token_endpoint,
            "iat": now(), "exp": now() + 60, "jti": format!("j-{}", now_nanos())}));
        let form = vec![
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_assertion_type".to_owned(), JWT_BEARER.to_owned()),
            ("client_assertion".to_owned(), assertion),
        ];
        let http = server.http.clone();
        let endpoint = token_endpoint.to_owned();
        async move {
            let response = http.post(endpoint).form(&form).send().await.unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // A host not on the allow-list: its document may not ask for client
    // credentials.
    let open = server(&db, &[]).await;
    let endpoint = open.endpoint("token_endpoint").await;
    let (status, body) = request(&open, &endpoint).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_credentials"),
        "{body}"
    );
    drop(open);

    let listed = server(&db, &[("CUSTOS_CIMD_ALLOWED_HOSTS", "127.0.0.1")]).await;
    let endpoint = listed.endpoint("token_endpoint").await;
    let (status, body) = request(&listed, &endpoint).await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["sub"], id);

    // A client nobody vetted keeps its assertions short (each one's jti
    // is stored until it expires): an hour-long one is refused.
    let long = key.assertion(&json!({"iss": id, "sub": id, "aud": endpoint,
        "iat": now(), "exp": now() + 3600, "jti": format!("long-{}", now_nanos())}));
    let (status, _, body) = listed
        .post_form(
            &endpoint,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &long),
            ],
        )
        .await;
    assert_eq!(status, 401, "{body}");
}

/// MCP enterprise-managed authorization with a client that arrived by its
/// document: an ID-JAG naming the document URL as `client_id`, redeemed by
/// that client with `private_key_jwt` (its host not on any allow-list).
async fn cimd_client_redeems_an_id_jag(db: Database) {
    const MCP: &str = "https://mcp.example.com/mcp";
    const IDP: &str = "https://idp.example.com";
    let documents = Documents::start().await;
    let key = ClientKey::generate("k1");
    documents.serve(
        "/jwks.json",
        Answer::json(json!({"keys": [key.public_jwk.clone()]})),
    );
    let id = documents.url("/agent.json");
    documents.serve(
        "/agent.json",
        Answer::json(json!({"client_id": id, "client_name": "enterprise agent",
                            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
                            "scope": "mcp:tools", "token_endpoint_auth_method": "private_key_jwt",
                            "jwks_uri": documents.url("/jwks.json")})),
    );
    let server = server(&db, &[]).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": MCP, "scopes": ["mcp:tools"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let idp_key = ClientKey::generate("idp");
    common::workload::trust_oidc(&server, IDP, &idp_key, json!({"id_jag": true})).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("oauth-id-jag+jwt".into());
    header.kid = Some("idp".into());
    let id_jag = jsonwebtoken::encode(
        &header,
        &json!({"iss": IDP, "sub": "employee-42", "aud": server.url, "resource": MCP,
                "client_id": id, "jti": "jag-1", "iat": now(), "exp": now() + 300,
                "scope": "mcp:tools"}),
        &jsonwebtoken::EncodingKey::from_ec_der(&idp_key.pkcs8),
    )
    .unwrap();
    let endpoint = server.endpoint("token_endpoint").await;
    let assertion = key.assertion(&json!({"iss": id, "sub": id, "aud": endpoint,
        "iat": now(), "exp": now() + 60, "jti": format!("j-{}", now_nanos())}));
    let (status, _, body) = server
        .post_form(
            &endpoint,
            None,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &id_jag),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "employee-42");
    assert_eq!(claims["client_id"], id);
    let (_, inventory) = server.admin(Method::GET, "/admin/clients", None).await;
    assert!(inventory
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["client_id"] == id));
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

on_both_engines!(
    cimd_client_redeems_an_id_jag,
    cimd_a_document_client_through_the_code_flow,
    cimd_4_documents_that_must_be_refused,
    cimd_hosts_denied_and_fetches_braked,
    cimd_6_2_private_key_jwt_with_the_documents_keys,
);
