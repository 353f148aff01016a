use super::*;
use crate::ErrorCode;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

fn form(body: &str) -> FormParams {
    FormParams::parse(body.as_bytes()).unwrap()
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[test]
fn rfc6749_2_3_1_basic_is_form_urlencoded() {
    let creds = extract_credentials(
        Some(&basic("my%20client", "s%3Acret+x")),
        &form("grant_type=x"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        creds,
        ClientCredentials::Basic {
            client_id: "my client".into(),
            secret: Secret::new("s:cret x")
        }
    );
}

#[test]
fn rfc6749_2_3_client_must_not_use_more_than_one_method() {
    let err = extract_credentials(Some(&basic("a", "b")), &form("client_secret=b&client_id=a"))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidRequest);
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
        let err = extract_credentials(Some(header), &form("")).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidClient, "{header}");
    }
}

#[test]
fn post_and_public_and_absent() {
    assert_eq!(
        extract_credentials(None, &form("client_id=a&client_secret=b"))
            .unwrap()
            .unwrap()
            .method(),
        AuthMethod::ClientSecretPost
    );
    assert_eq!(
        extract_credentials(None, &form("client_id=a"))
            .unwrap()
            .unwrap()
            .method(),
        AuthMethod::None
    );
    assert_eq!(
        extract_credentials(None, &form("grant_type=x")).unwrap(),
        None
    );
    assert_eq!(
        extract_credentials(None, &form("client_secret=b"))
            .unwrap_err()
            .code,
        ErrorCode::InvalidRequest
    );
}

struct TestKey {
    pkcs8: Vec<u8>,
    jwks: JwkSet,
}

fn test_key(kid: &str) -> TestKey {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let jwks = serde_json::from_value(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]}))
    .unwrap();
    TestKey {
        pkcs8: pkcs8.as_ref().to_vec(),
        jwks,
    }
}

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
    let creds = extract_credentials(
        None,
        &form(&format!(
            "client_assertion_type={}&client_assertion={jwt}",
            CLIENT_ASSERTION_TYPE_JWT_BEARER
        )),
    )
    .unwrap()
    .unwrap();
    assert_eq!(creds.client_id(), "c1");
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
        let body = format!(
            "client_assertion_type={CLIENT_ASSERTION_TYPE_JWT_BEARER}&client_assertion={junk}"
        );
        if let Err(e) = extract_credentials(None, &form(&body)) {
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
