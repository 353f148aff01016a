//! The token endpoint from the outside: client credentials with every
//! supported client authentication method, RFC 9068 tokens, RFC 8707
//! resources, scopes, and bad input that must never produce a 5xx.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn verify_with_jwks(server: &Server, token: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(server.get_json("/jwks").await).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published in jwks");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .expect("signature verifies with the published key")
    .claims
}

async fn rfc9068_client_secret_basic_issues_a_jwt_access_token(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server
        .secret_client("client_secret_basic", "read write")
        .await;
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read");
    let token = body["access_token"].as_str().unwrap();
    let (header, _) = jwt_parts(token);
    assert_eq!(header["typ"], "at+jwt", "RFC 9068 §2.1");
    assert_eq!(header["alg"], "ES256");
    let claims = verify_with_jwks(&server, token).await;
    assert_eq!(claims["iss"], server.url);
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["aud"], server.url);
    assert_eq!(claims["scope"], "read");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 16);

    let (status, body) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["scope"], "read write",
        "no scope asked: the registered scopes"
    );
}

async fn rfc6749_5_1_token_response_is_not_cached(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let endpoint = server.endpoint("token_endpoint").await;
    let (status, headers, _) = server
        .post_form(
            &endpoint,
            Some((&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");
}

async fn client_secret_post_and_method_enforcement(db: Database) {
    let server = Server::start(&db).await;
    let endpoint = server.endpoint("token_endpoint").await;
    let (post_id, post_secret) = server.secret_client("client_secret_post", "read").await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", post_id.as_str()),
        ("client_secret", post_secret.as_str()),
    ];
    let (status, _, body) = server.post_form(&endpoint, None, &form).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = server
        .post_form(
            &endpoint,
            Some((&post_id, &post_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(status, 401, "a client_secret_post client may not use Basic");
    assert_eq!(body["error"], "invalid_client");

    let (basic_id, basic_secret) = server.secret_client("client_secret_basic", "read").await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", basic_id.as_str()),
        ("client_secret", basic_secret.as_str()),
    ];
    let (status, _, body) = server.post_form(&endpoint, None, &form).await;
    assert_eq!(
        status, 401,
        "a client_secret_basic client may not post its secret"
    );
    assert_eq!(body["error"], "invalid_client");
}

async fn rfc6749_5_2_wrong_secret_is_invalid_client_with_challenge(db: Database) {
    let server = Server::start(&db).await;
    let (id, _) = server.secret_client("client_secret_basic", "read").await;
    let endpoint = server.endpoint("token_endpoint").await;
    for (client, secret) in [
        (id.as_str(), "wrong"),
        ("no-such-client", "x"),
        (id.as_str(), ""),
    ] {
        let (status, headers, body) = server
            .post_form(
                &endpoint,
                Some((client, secret)),
                &[("grant_type", "client_credentials")],
            )
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic"));
    }
    let (status, _, body) = server
        .post_form(&endpoint, None, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    let refused = server
        .events(&format!("?client_id={id}&type=token.refused"))
        .await;
    assert_eq!(refused.len(), 2);
    assert_eq!(refused[0]["result"], "failure");
    assert!(refused[0]["reason"]
        .as_str()
        .unwrap()
        .contains("invalid_client"));
    assert!(
        !serde_json::to_string(&refused).unwrap().contains("wrong"),
        "no secret in audit events"
    );
}

async fn rfc7523_private_key_jwt_and_single_use_jti(db: Database) {
    let server = Server::start(&db).await;
    let key = ClientKey::generate("k1");
    let (status, body) = server
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.public_jwk]}, "scope": "read"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(
        body.get("client_secret").is_none(),
        "no secret for private_key_jwt"
    );
    let id = body["client_id"].as_str().unwrap().to_owned();
    let endpoint = server.endpoint("token_endpoint").await;
    let assert_with = |aud: &str, jti: &str, exp: i64| {
        key.assertion(
            &json!({"iss": id, "sub": id, "aud": aud, "jti": jti, "iat": now(), "exp": exp}),
        )
    };
    for (aud, jti) in [(server.url.as_str(), "a1"), (endpoint.as_str(), "a2")] {
        let assertion = assert_with(aud, jti, now() + 60);
        let form = assertion_form(&assertion);
        let (status, _, body) = server.post_form(&endpoint, None, &form).await;
        assert_eq!(status, 200, "aud {aud}: {body}");
        let (status, _, body) = server.post_form(&endpoint, None, &form).await;
        assert_eq!(status, 401, "replayed assertion must be refused");
        assert_eq!(body["error"], "invalid_client");
    }
    for (why, assertion) in [
        (
            "wrong aud",
            assert_with("https://elsewhere.example", "b1", now() + 60),
        ),
        ("expired", assert_with(&server.url, "b2", now() - 120)),
        (
            "too long-lived",
            assert_with(&server.url, "b3", now() + 7200),
        ),
        (
            "another key",
            ClientKey::generate("k1").assertion(
                &json!({"iss": id, "sub": id, "aud": server.url, "jti": "b4", "exp": now() + 60}),
            ),
        ),
        (
            "RFC 7523 section 3: no aud",
            key.assertion(&json!({"iss": id, "sub": id, "jti": "b5", "exp": now() + 60})),
        ),
        (
            "an aud array naming another party too",
            key.assertion(
                &json!({"iss": id, "sub": id, "aud": [server.url, "https://elsewhere.example"], "jti": "b6", "exp": now() + 60}),
            ),
        ),
    ] {
        let form = assertion_form(&assertion);
        let (status, _, body) = server.post_form(&endpoint, None, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{why}"
        );
        if why.contains("aud") {
            assert!(
                body["error_description"].as_str().unwrap().contains("aud"),
                "{why}: {body}"
            );
        }
    }
    let array = key.assertion(
        &json!({"iss": id, "sub": id, "aud": [server.url], "jti": "c1", "exp": now() + 60}),
    );
    let (status, _, body) = server
        .post_form(&endpoint, None, &assertion_form(&array))
        .await;
    assert_eq!(status, 200, "an array naming only the issuer: {body}");
}

/// Two replicas on one database: a jti used at one is refused at the other.
async fn rfc7523_jti_replay_is_refused_across_replicas(db: Database) {
    let (first, second) = Server::replicas(&db).await;
    let key = ClientKey::generate("k1");
    let (_, body) = first
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key.public_jwk]}}))
        .await;
    let id = body["client_id"].as_str().unwrap();
    let assertion = key.assertion(
        &json!({"iss": id, "sub": id, "aud": SHARED_ISSUER, "jti": "once", "exp": now() + 60}),
    );
    let form = assertion_form(&assertion);
    let (a, _, _) = first
        .post_form(&format!("{}/token", first.url), None, &form)
        .await;
    let (b, _, _) = second
        .post_form(&format!("{}/token", second.url), None, &form)
        .await;
    assert_eq!((a, b), (200, 401));
    let again = key.assertion(
        &json!({"iss": id, "sub": id, "aud": SHARED_ISSUER, "jti": "twice", "exp": now() + 60}),
    );
    let form = assertion_form(&again);
    let (a, _, _) = second
        .post_form(&format!("{}/token", second.url), None, &form)
        .await;
    let (b, _, _) = first
        .post_form(&format!("{}/token", first.url), None, &form)
        .await;
    assert_eq!((a, b), (200, 401), "either replica may see it first");
}

async fn rfc8707_resource_sets_aud_and_unknown_is_invalid_target(db: Database) {
    let server = Server::start(&db).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://api.example/", "scopes": ["read", "write"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://billing.example/", "scopes": ["bill"]})),
        )
        .await;
    let (id, secret) = server
        .secret_client("client_secret_basic", "read write bill")
        .await;
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example/"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example/");

    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example/"),
                ("resource", "https://billing.example/"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(
        claims["aud"],
        json!(["https://api.example/", "https://billing.example/"])
    );
    assert_eq!(claims["scope"], "read write bill");

    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://unknown.example/"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "relative/path"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.example/"),
                ("scope", "bill"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "scope the resource does not offer"
    );
}

async fn rfc6749_3_3_unregistered_scope_is_invalid_scope(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("admin"));
}

async fn per_client_token_lifetime(db: Database) {
    let server = Server::start(&db).await;
    let (status, body) = server
        .register(json!({"grant_types": ["client_credentials"], "access_token_lifetime": 3600}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (id, secret) = (
        body["client_id"].as_str().unwrap(),
        body["client_secret"].as_str().unwrap(),
    );
    let (status, body) = server
        .token_basic(id, secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["expires_in"], 3600);
    let (status, body) = server
        .register(json!({"grant_types": ["client_credentials"], "access_token_lifetime": 3601}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata"))
    );
}

async fn oauth21_removed_and_unknown_grants_are_unsupported(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    for grant in ["password", "implicit", "urn:example:unknown"] {
        let (status, body) = server
            .token_basic(
                &id,
                &secret,
                &[("grant_type", grant), ("username", "u"), ("password", "p")],
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type")),
            "{grant}"
        );
    }
    let (status, body) = server.token_basic(&id, &secret, &[("scope", "read")]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "missing grant_type"
    );
}

/// Bad input gets a 4xx with an RFC 6749 §5.2 body, never a 5xx.
async fn bad_input_is_a_4xx_never_a_5xx(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let endpoint = server.endpoint("token_endpoint").await;
    let http = &server.http;
    let basic = |r: reqwest::RequestBuilder| r.basic_auth(enc(&id), Some(enc(&secret)));
    let form = "application/x-www-form-urlencoded";
    let mut cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "repeated parameter",
            basic(http.post(&endpoint))
                .header("content-type", form)
                .body("grant_type=client_credentials&scope=read&scope=read"),
            400,
            "invalid_request",
        ),
        (
            "JSON body",
            basic(http.post(&endpoint)).json(&json!({"grant_type": "client_credentials"})),
            400,
            "invalid_request",
        ),
        (
            "no content type",
            basic(http.post(&endpoint)).body("grant_type=client_credentials"),
            400,
            "invalid_request",
        ),
        (
            "body over 64 KiB",
            basic(http.post(&endpoint))
                .header("content-type", form)
                .body(format!(
                    "grant_type=client_credentials&x={}",
                    "a".repeat(70 * 1024)
                )),
            413,
            "invalid_request",
        ),
        (
            "broken Basic",
            http.post(&endpoint)
                .header("authorization", "Basic !!!notbase64")
                .form(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            "Basic without colon",
            http.post(&endpoint)
                .header("authorization", "Basic Zm9vYmFy")
                .form(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            "Bearer at token endpoint",
            http.post(&endpoint)
                .header("authorization", "Bearer x")
                .form(&[("grant_type", "client_credentials")]),
            401,
            "invalid_client",
        ),
        (
            "junk assertion",
            http.post(&endpoint).form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", "junk.junk.junk"),
            ]),
            401,
            "invalid_client",
        ),
        (
            "assertion of unknown client",
            http.post(&endpoint).form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                (
                    "client_assertion",
                    "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJub2JvZHkifQ.c2ln",
                ),
            ]),
            401,
            "invalid_client",
        ),
        (
            "wrong assertion type",
            http.post(&endpoint).form(&[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", "urn:other"),
                ("client_assertion", "a.b.c"),
            ]),
            401,
            "invalid_client",
        ),
        (
            "two methods",
            basic(http.post(&endpoint)).form(&[
                ("grant_type", "client_credentials"),
                ("client_secret", "x"),
                ("client_id", id.as_str()),
            ]),
            400,
            "invalid_request",
        ),
        (
            "invalid UTF-8",
            basic(http.post(&endpoint))
                .header("content-type", form)
                .body(b"grant_type=client_credentials&scope=%FF%FE".to_vec()),
            400,
            "invalid_scope",
        ),
        (
            "bad scope characters",
            basic(http.post(&endpoint))
                .form(&[("grant_type", "client_credentials"), ("scope", "re\"ad")]),
            400,
            "invalid_scope",
        ),
    ];
    cases.push((
        "flood of parameters",
        basic(http.post(&endpoint))
            .header("content-type", form)
            .body((0..500).map(|i| format!("p{i}=v&")).collect::<String>()),
        400,
        "invalid_request",
    ));
    for (name, request, status, error) in cases {
        let response = request.send().await.unwrap();
        let got = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"], error, "{name}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{name}: useful description"
        );
    }
    let response = http.get(&endpoint).send().await.unwrap();
    assert_eq!(response.status(), 405, "GET token");
}

on_both_engines!(
    rfc9068_client_secret_basic_issues_a_jwt_access_token,
    rfc6749_5_1_token_response_is_not_cached,
    client_secret_post_and_method_enforcement,
    rfc6749_5_2_wrong_secret_is_invalid_client_with_challenge,
    rfc7523_private_key_jwt_and_single_use_jti,
    rfc7523_jti_replay_is_refused_across_replicas,
    rfc8707_resource_sets_aud_and_unknown_is_invalid_target,
    rfc6749_3_3_unregistered_scope_is_invalid_scope,
    per_client_token_lifetime,
    oauth21_removed_and_unknown_grants_are_unsupported,
    bad_input_is_a_4xx_never_a_5xx,
);
