use super::*;
use custos_protocol::access_token::verify_access_token;

fn master() -> MasterKey {
    MasterKey::from_secret(&"k".repeat(40)).unwrap()
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
}

fn claims(now: i64) -> Claims<'static> {
    Claims {
        iss: "https://as",
        sub: "c",
        aud: "https://as",
        client_id: "c",
        iat: now,
        exp: now + 300,
        jti: "j",
    }
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

#[test]
fn every_algorithm_signs_tokens_that_verify() {
    let master = master();
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
        let record = generate_key(alg, &master, 100, 100).unwrap();
        let ring = KeyRing::empty();
        ring.load(std::slice::from_ref(&record), &master, 100)
            .unwrap();
        let token = ring.sign_access_token(&claims(100), 100).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(record.kid.as_str()));
        let verified = verify_access_token(&token, &ring.verification_keys(), "https://as", 101);
        assert!(verified.is_some(), "{alg:?}");
        assert!(
            verify_access_token(&token, &ring.verification_keys(), "https://other", 101).is_none()
        );
        assert!(
            verify_access_token(&token, &ring.verification_keys(), "https://as", 400).is_none()
        );
        let jwk = &ring.jwks()["keys"][0];
        assert!(jwk.get("d").is_none());
        assert_eq!(jwk["alg"], alg.as_str());
    }
}

#[test]
fn rfc7638_kid_is_the_thumbprint() {
    // RFC 7638 §3.1 example key and thumbprint.
    let members = serde_json::json!({
        "e": "AQAB",
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    });
    assert_eq!(
        thumbprint(members.as_object().unwrap()).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn rotation_publishes_first_signs_later_and_unpublishes_after_expiry() {
    let master = master();
    let old = generate_key(SigningAlg::Es256, &master, 0, 0).unwrap();
    let mut old_retired = old.clone();
    old_retired.retired_at = Some(1090);
    let new = generate_key(SigningAlg::Es256, &master, 1000, 1090).unwrap();
    let ring = KeyRing::empty();
    let records = vec![old_retired, new.clone()];

    ring.load(&records, &master, 1000).unwrap();
    assert_eq!(
        ring.jwks()["keys"].as_array().unwrap().len(),
        2,
        "new key published at once"
    );
    assert_eq!(
        kid_of(&ring.sign_access_token(&claims(1000), 1000).unwrap()),
        old.kid,
        "old key signs until activation"
    );
    assert_eq!(
        kid_of(&ring.sign_access_token(&claims(1090), 1090).unwrap()),
        new.kid,
        "new key signs from activation"
    );

    ring.load(&records, &master, 1090 + MAX_TOKEN_LIFETIME - 1)
        .unwrap();
    assert_eq!(
        ring.jwks()["keys"].as_array().unwrap().len(),
        2,
        "old key published while its tokens live"
    );
    ring.load(&records, &master, 1090 + MAX_TOKEN_LIFETIME)
        .unwrap();
    assert_eq!(
        ring.jwks()["keys"].as_array().unwrap().len(),
        1,
        "old key unpublished after its last token expired"
    );
}

#[test]
fn wrong_master_key_is_refused() {
    let record = generate_key(SigningAlg::Es256, &master(), 0, 0).unwrap();
    let other = MasterKey::from_secret(&"z".repeat(40)).unwrap();
    assert!(matches!(
        KeyRing::empty().load(&[record], &other, 0),
        Err(KeyError::WrongKey)
    ));
}
