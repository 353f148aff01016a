use super::*;
use crate::ErrorCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

fn form(body: &str) -> FormParams {
    FormParams::parse(body.as_bytes()).unwrap()
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

const JWT_BEARER: &str = crate::names::CLIENT_ASSERTION_TYPE_JWT_BEARER;

#[test]
fn rfc6749_2_3_1_basic_is_form_urlencoded() {
    let claim = basic_claim(
        Some(&basic("my%20client", "s%3Acret+x")),
        &form("grant_type=x"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        claim,
        Claim {
            client_id: "my client".into(),
            credential: Some(Secret::new("s:cret x"))
        }
    );
}

#[test]
fn rfc6749_2_3_1_malformed_percent_escapes_are_refused() {
    for bad in ["a%2", "a%zz", "%"] {
        let header = format!("Basic {}", STANDARD.encode(format!("{bad}:secret")));
        assert!(parse_basic(&header).is_err(), "{bad}");
    }
}

#[test]
fn rfc6749_2_3_client_must_not_use_more_than_one_method() {
    for (header, body) in [
        (Some(basic("a", "b")), "client_secret=b&client_id=a"),
        (
            Some(basic("a", "b")),
            "client_assertion=x&client_assertion_type=y",
        ),
        (
            None,
            "client_id=a&client_secret=b&client_assertion=x&client_assertion_type=y",
        ),
    ] {
        let err = check_presentation(header.as_deref(), &form(body)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
    }
}

#[test]
fn rfc7521_4_2_assertion_and_its_type_come_together() {
    for body in ["client_assertion=x", "client_assertion_type=y"] {
        let err = check_presentation(None, &form(body)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
    }
    let long = format!("client_id={}", "a".repeat(MAX_CREDENTIAL_LENGTH + 1));
    assert!(check_presentation(None, &form(&long)).is_err());
}

#[test]
fn broken_basic_is_invalid_client() {
    for header in [
        "Basic",
        "Basic !!!",
        "Basic Zm9v",
        "Bearer abc",
        "Basic OmZvbw==",
    ] {
        let err = basic_claim(Some(header), &form("")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient, "{header}");
    }
    let err = basic_claim(Some(&basic("a", "b")), &form("client_id=other")).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidClient);
}

#[test]
fn post_and_public_and_absent() {
    let claim = post_claim(&form("client_id=a&client_secret=b"))
        .unwrap()
        .unwrap();
    assert_eq!(claim.client_id, "a");
    assert_eq!(post_claim(&form("client_id=a")).unwrap(), None);
    assert_eq!(
        public_claim(&form("client_id=a")).map(|c| c.client_id),
        Some("a".to_owned())
    );
    assert_eq!(public_claim(&form("grant_type=x")), None);
    assert_eq!(
        post_claim(&form("client_secret=b")).unwrap_err().code,
        ErrorCode::InvalidRequest
    );
}

use crate::test_keys::{test_key, TestKey};

const NOW: i64 = 1_800_000_000;

fn sign(key: &TestKey, kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&key.pkcs8)).unwrap()
}

fn rules(audiences: &[String]) -> AssertionRules<'_> {
    AssertionRules {
        client_id: "c1",
        audiences,
        now: NOW,
        leeway: 30,
        max_lifetime: 3600,
    }
}

fn good_claims() -> serde_json::Value {
    json!({"iss": "c1", "sub": "c1", "aud": "https://as.example", "exp": NOW + 60, "iat": NOW, "jti": "j1"})
}

#[test]
fn rfc7523_3_valid_assertion_is_accepted() {
    let key = test_key("k1");
    let aud = vec![
        "https://as.example".to_string(),
        "https://as.example/token".to_string(),
    ];
    let jwt = sign(&key, "k1", good_claims());
    let claim = assertion_claim(
        &form(&format!(
            "client_assertion_type={JWT_BEARER}&client_assertion={jwt}"
        )),
        JWT_BEARER,
    )
    .unwrap()
    .unwrap();
    assert_eq!(claim.client_id, "c1");
    let other_type = form(&format!(
        "client_assertion_type=urn:x&client_assertion={jwt}"
    ));
    assert_eq!(assertion_claim(&other_type, JWT_BEARER).unwrap(), None);
    let verified = verify_client_assertion(&jwt, &key.jwks, &rules(&aud)).unwrap();
    assert_eq!(
        verified,
        VerifiedAssertion {
            jti: "j1".into(),
            exp: NOW + 60
        }
    );
}

#[test]
fn rfc7523_3_assertion_rules_are_enforced() {
    let key = test_key("k1");
    let aud = vec!["https://as.example".to_string()];
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("wrong aud", json!({"aud": "https://other.example"})),
        ("no aud", json!({"aud": null})),
        ("empty aud array", json!({"aud": []})),
        (
            "aud array naming another party",
            json!({"aud": ["https://as.example", "https://other.example"]}),
        ),
        ("aud not a string", json!({"aud": 7})),
        ("wrong iss", json!({"iss": "c2"})),
        ("wrong sub", json!({"sub": "c2"})),
        ("no exp", json!({"exp": null})),
        ("expired", json!({"exp": NOW - 100})),
        ("too long", json!({"exp": NOW + 7200})),
        ("future iat", json!({"iat": NOW + 600})),
        ("no jti", json!({"jti": null})),
    ];
    for (name, patch) in cases {
        let mut claims = good_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        let jwt = sign(&key, "k1", claims);
        let err = verify_client_assertion(&jwt, &key.jwks, &rules(&aud)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient, "{name}");
    }
}

#[test]
fn rfc7523_3_aud_is_required_and_may_be_the_issuer_or_token_endpoint() {
    let key = test_key("k1");
    let aud = vec![
        "https://as.example".to_string(),
        "https://as.example/token".to_string(),
    ];
    for good in [
        json!("https://as.example"),
        json!("https://as.example/token"),
        json!(["https://as.example"]),
        json!(["https://as.example", "https://as.example/token"]),
    ] {
        let mut claims = good_claims();
        claims["aud"] = good.clone();
        let jwt = sign(&key, "k1", claims);
        assert!(
            verify_client_assertion(&jwt, &key.jwks, &rules(&aud)).is_ok(),
            "{good}"
        );
    }
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove("aud");
    let err =
        verify_client_assertion(&sign(&key, "k1", claims), &key.jwks, &rules(&aud)).unwrap_err();
    assert!(err.description.contains("aud"), "{}", err.description);
}

#[test]
fn assertion_signed_by_another_key_is_refused() {
    let registered = test_key("k1");
    let attacker = test_key("k1");
    let aud = vec!["https://as.example".to_string()];
    let jwt = sign(&attacker, "k1", good_claims());
    assert!(verify_client_assertion(&jwt, &registered.jwks, &rules(&aud)).is_err());
}

#[test]
fn symmetric_and_none_algorithms_are_refused() {
    let key = test_key("k1");
    let aud = vec!["https://as.example".to_string()];
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good_claims(),
        &EncodingKey::from_secret(b"x"),
    )
    .unwrap();
    assert!(verify_client_assertion(&hs, &key.jwks, &rules(&aud)).is_err());
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    assert!(verify_client_assertion(&none, &key.jwks, &rules(&aud)).is_err());
}

#[test]
fn junk_assertions_are_invalid_client() {
    for junk in ["", "a.b", "a.b.c", "....", "eyJ.eyJ.x"] {
        let body = format!("client_assertion_type={JWT_BEARER}&client_assertion={junk}");
        if let Err(e) = assertion_claim(&form(&body), JWT_BEARER) {
            assert!(matches!(
                e.code,
                ErrorCode::InvalidClient | ErrorCode::InvalidRequest
            ));
        }
    }
}

proptest::proptest! {
    #[test]
    fn basic_parsing_never_panics(header in "\\PC{0,120}") {
        let _ = parse_basic(&header);
    }

    #[test]
    fn basic_round_trips(id in "[!-~]{1,40}", secret in "[ -~]{0,40}") {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let header = format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret))));
        let (got_id, got_secret) = parse_basic(&header).unwrap();
        proptest::prop_assert_eq!(got_id, id);
        proptest::prop_assert_eq!(got_secret.expose(), secret.as_str());
    }
}
