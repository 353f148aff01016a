use super::*;
use crate::ErrorCode;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RsaEncoding,
    RsaPublicKeyComponents, ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;

const NOW: i64 = 1_800_000_000;
const HTU: &str = "https://as.example/token";

/// A proof key: its public JWK and a way to sign with it.
struct TestKey {
    alg: Algorithm,
    jwk: Value,
    /// For the algorithms jsonwebtoken signs with (EC, EdDSA).
    encoding: Option<EncodingKey>,
    /// For the others (RSA from a PKCS#8 key, which jsonwebtoken cannot load).
    rsa: Option<(aws_lc_rs::rsa::KeyPair, &'static dyn RsaEncoding)>,
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn ec_key(alg: Algorithm) -> TestKey {
    let (signing, crv, size): (&'static EcdsaSigningAlgorithm, _, _) = match alg {
        Algorithm::ES256 => (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32),
        _ => (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48),
    };
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(signing, pkcs8.as_ref()).unwrap();
    // An uncompressed point: 0x04 || x || y.
    let point = pair.public_key().as_ref();
    TestKey {
        alg,
        jwk: json!({
            "kty": "EC",
            "crv": crv,
            "x": b64(&point[1..1 + size]),
            "y": b64(&point[1 + size..]),
        }),
        encoding: Some(EncodingKey::from_ec_der(pkcs8.as_ref())),
        rsa: None,
    }
}

fn es256_key() -> TestKey {
    ec_key(Algorithm::ES256)
}

fn eddsa_key() -> TestKey {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    TestKey {
        alg: Algorithm::EdDSA,
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key())}),
        encoding: Some(EncodingKey::from_ed_der(pkcs8.as_ref())),
        rsa: None,
    }
}

fn rsa_key(alg: Algorithm, encoding: &'static dyn RsaEncoding) -> TestKey {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    TestKey {
        alg,
        jwk: json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)}),
        encoding: None,
        rsa: Some((pair, encoding)),
    }
}

impl TestKey {
    fn name(&self) -> String {
        format!("{:?}", self.alg)
    }

    /// The header a client would send: typ, alg and this key as jwk.
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": self.name(), "jwk": self.jwk})
    }

    fn thumbprint(&self) -> String {
        serde_json::from_value::<Jwk>(self.jwk.clone())
            .unwrap()
            .thumbprint(ThumbprintHash::SHA256)
    }

    fn signature(&self, input: &[u8]) -> String {
        if let Some(key) = &self.encoding {
            return jsonwebtoken::crypto::sign(input, key, self.alg).unwrap();
        }
        let (pair, padding) = self.rsa.as_ref().unwrap();
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(*padding, &SystemRandom::new(), input, &mut signature)
            .unwrap();
        b64(signature)
    }

    /// A proof signed by jsonwebtoken's `encode`, the header carrying
    /// this key as `jwk`.
    fn sign(&self, claims: &Value) -> String {
        let Some(encoding) = &self.encoding else {
            return self.sign_raw(&self.header(), claims);
        };
        let mut header = Header::new(self.alg);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(serde_json::from_value(self.jwk.clone()).unwrap());
        jsonwebtoken::encode(&header, claims, encoding).unwrap()
    }

    /// A proof with any header, even one jsonwebtoken's `Header` cannot
    /// express (a private member in `jwk`, an unknown `alg`).
    fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(serde_json::to_vec(header).unwrap()),
            b64(serde_json::to_vec(claims).unwrap())
        );
        let signature = self.signature(input.as_bytes());
        format!("{input}.{signature}")
    }
}

fn rules() -> ProofRules<'static> {
    ProofRules {
        htm: "POST",
        htu: HTU,
        now: NOW,
        max_age: 60,
        max_skew: 5,
        access_token: None,
    }
}

fn claims() -> Value {
    json!({"jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": HTU, "iat": NOW})
}

fn with(mut value: Value, name: &str, member: Value) -> Value {
    value[name] = member;
    value
}

fn without(mut value: Value, name: &str) -> Value {
    value.as_object_mut().unwrap().remove(name);
    value
}

/// Asserts that `proof` is refused as `invalid_dpop_proof` and that the
/// description says `why`.
#[track_caller]
fn assert_refused(proof: &str, rules: &ProofRules<'_>, why: &str) {
    let error = verify_proof(proof, rules).expect_err(why);
    assert_eq!(error.code, ErrorCode::InvalidDpopProof, "{why}");
    assert!(
        error.description.contains(why),
        "expected '{why}' in '{}'",
        error.description
    );
}

#[test]
fn rfc9449_4_3_valid_proof_is_accepted() {
    for key in [es256_key(), eddsa_key()] {
        let verified = verify_proof(&key.sign(&claims()), &rules()).unwrap();
        assert_eq!(
            verified,
            VerifiedProof {
                jkt: key.thumbprint(),
                jti: "e1j3V_bKic8-LAEB".into(),
                iat: NOW,
                nonce: None,
            },
            "{}",
            key.name()
        );
    }
}

#[test]
fn rfc9449_4_3_every_advertised_alg_is_verified() {
    use aws_lc_rs::signature::{
        RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512, RSA_PSS_SHA256, RSA_PSS_SHA384,
        RSA_PSS_SHA512,
    };
    let keys = [
        es256_key(),
        ec_key(Algorithm::ES384),
        eddsa_key(),
        rsa_key(Algorithm::RS256, &RSA_PKCS1_SHA256),
        rsa_key(Algorithm::RS384, &RSA_PKCS1_SHA384),
        rsa_key(Algorithm::RS512, &RSA_PKCS1_SHA512),
        rsa_key(Algorithm::PS256, &RSA_PSS_SHA256),
        rsa_key(Algorithm::PS384, &RSA_PSS_SHA384),
        rsa_key(Algorithm::PS512, &RSA_PSS_SHA512),
    ];
    let names: Vec<String> = keys.iter().map(TestKey::name).collect();
    assert_eq!(names, DPOP_SIGNING_ALGS);
    for key in &keys {
        let verified = verify_proof(&key.sign(&claims()), &rules())
            .unwrap_or_else(|e| panic!("{}: {e}", key.name()));
        assert_eq!(verified.jkt, key.thumbprint(), "{}", key.name());
    }
}

#[test]
fn rfc9449_5_advertised_algs_are_asymmetric() {
    for name in DPOP_SIGNING_ALGS {
        let alg: Algorithm = name.parse().unwrap();
        assert_ne!(alg.family(), jsonwebtoken::AlgorithmFamily::Hmac, "{name}");
    }
}

#[test]
fn rfc7638_3_1_thumbprint_example() {
    let jwk: Jwk = serde_json::from_value(json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    }))
    .unwrap();
    assert_eq!(
        jwk.thumbprint(ThumbprintHash::SHA256),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn rfc9449_4_2_ath_is_base64url_sha256_of_the_token() {
    // The access token and ath of RFC 9449 §7.1's example.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[test]
fn rfc9449_4_3_proof_must_be_one_well_formed_jwt() {
    let key = es256_key();
    let good = key.sign(&claims());
    let (input, _) = good.rsplit_once('.').unwrap();
    let table = [
        ("", "three parts"),
        ("junk", "three parts"),
        ("a.b", "three parts"),
        ("a.b.c.d", "three parts"),
        (&format!("{good}, {good}") as &str, "three parts"),
        (&format!("{input}.") as &str, "signature part is empty"),
        (&format!("{input}.!!") as &str, "signature is not base64url"),
        (&format!(" {good}") as &str, "header is not"),
        (
            &format!("{}.{}.c2ln", b64("[1]"), b64("{}")) as &str,
            "header is not",
        ),
        (
            &format!("{}.{}.c2ln", b64(key.header().to_string()), b64("null")) as &str,
            "payload is not",
        ),
        (
            &format!("{}.e30=.c2ln", b64(key.header().to_string())) as &str,
            "payload is not",
        ),
    ];
    for (proof, why) in table {
        assert_refused(proof, &rules(), why);
    }
}

#[test]
fn rfc9449_4_3_oversize_proof_is_refused() {
    let key = es256_key();
    let padding = "x".repeat(MAX_PROOF_LENGTH);
    let proof = key.sign(&with(claims(), "pad", json!(padding)));
    assert_refused(&proof, &rules(), "longer than 8192 bytes");
}

#[test]
fn rfc9449_4_3_typ_must_be_dpop_jwt() {
    let key = es256_key();
    for (typ, why) in [
        (Some(json!("JWT")), "typ must be 'dpop+jwt', not 'JWT'"),
        (Some(json!("DPOP+JWT")), "typ must be 'dpop+jwt'"),
        (
            Some(json!("application/dpop+jwt")),
            "typ must be 'dpop+jwt'",
        ),
        (Some(json!(["dpop+jwt"])), "must carry typ"),
        (None, "must carry typ"),
    ] {
        let header = match typ {
            Some(typ) => with(key.header(), "typ", typ),
            None => without(key.header(), "typ"),
        };
        assert_refused(&key.sign_raw(&header, &claims()), &rules(), why);
    }
}

#[test]
fn rfc9449_4_3_alg_must_be_asymmetric_and_supported() {
    let key = es256_key();
    let unsigned = format!(
        "{}.{}.",
        b64(with(key.header(), "alg", json!("none")).to_string()),
        b64(claims().to_string())
    );
    assert_refused(&unsigned, &rules(), "signature part is empty");
    for (alg, why) in [
        (json!("none"), "alg 'none' is not accepted"),
        (json!("HS256"), "alg 'HS256' is not accepted"),
        (json!("ES512"), "alg 'ES512' is not accepted"),
        (json!("es256"), "alg 'es256' is not accepted"),
        (json!(7), "must carry alg"),
    ] {
        // Signed with the EC key, whatever the header claims.
        let proof = key.sign_raw(&with(key.header(), "alg", alg), &claims());
        assert_refused(&proof, &rules(), why);
    }
    // A MAC by a symmetric key sent in the header.
    let secret = b"a shared secret of thirty-two by";
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_value(json!({"kty": "oct", "k": b64(secret)})).unwrap());
    let mac = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap();
    assert_refused(&mac, &rules(), "alg 'HS256' is not accepted");
}

#[test]
fn rfc9449_4_3_jwk_is_required() {
    let key = es256_key();
    let proof = key.sign_raw(&without(key.header(), "jwk"), &claims());
    assert_refused(&proof, &rules(), "must carry the public key in jwk");
    let proof = key.sign_raw(&with(key.header(), "jwk", json!("a key")), &claims());
    assert_refused(&proof, &rules(), "jwk header must be a JSON object");
}

#[test]
fn rfc9449_4_3_jwk_must_not_contain_a_private_key() {
    let key = es256_key();
    for member in PRIVATE_JWK_MEMBERS {
        let jwk = with(key.jwk.clone(), member, json!("AAAA"));
        let proof = key.sign_raw(&with(key.header(), "jwk", jwk), &claims());
        assert_refused(
            &proof,
            &rules(),
            &format!("must not contain a private key: it has the private member '{member}'"),
        );
    }
    let proof = key.sign_raw(
        &with(key.header(), "jwk", json!({"kty": "oct", "k": "c2VjcmV0"})),
        &claims(),
    );
    assert_refused(&proof, &rules(), "not a symmetric (oct) key");
}

#[test]
fn rfc9449_4_3_jwk_must_fit_alg() {
    let es256 = es256_key();
    let eddsa = eddsa_key();
    let x = es256.jwk["x"].clone();
    let y = es256.jwk["y"].clone();
    let table = [
        (&es256, eddsa.jwk.clone(), "it must be an EC key on P-256"),
        (
            &es256,
            json!({"kty": "EC", "crv": "Ed25519", "x": x, "y": y}),
            "it must be an EC key on P-256",
        ),
        (
            &es256,
            json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
            "it must be an EC key on P-256",
        ),
        (
            &eddsa,
            es256.jwk.clone(),
            "it must be an OKP key on Ed25519",
        ),
        (
            &eddsa,
            json!({"kty": "OKP", "crv": "P-256", "x": x}),
            "it must be an OKP key on Ed25519",
        ),
        (
            &es256,
            json!({"kty": "EC", "crv": "P-256", "x": x}),
            "not a well-formed public JWK",
        ),
        (
            &es256,
            json!({"kty": "XYZ"}),
            "not a well-formed public JWK",
        ),
    ];
    for (key, jwk, why) in table {
        let proof = key.sign_raw(&with(key.header(), "jwk", jwk), &claims());
        assert_refused(&proof, &rules(), why);
    }
    // ES384 names a P-384 key; a P-256 key is refused before verification.
    let proof = es256.sign_raw(&with(es256.header(), "alg", json!("ES384")), &claims());
    assert_refused(&proof, &rules(), "it must be an EC key on P-384");
}

#[test]
fn rfc9449_4_3_signature_must_verify_with_jwk() {
    let signer = es256_key();
    let other = es256_key();
    // Signed by one key, naming another.
    let proof = signer.sign_raw(&other.header(), &claims());
    assert_refused(&proof, &rules(), "signature does not verify");
    // A changed payload.
    let good = signer.sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(with(claims(), "htm", json!("GET")).to_string()),
        parts[2]
    );
    assert_refused(&forged, &rules(), "signature does not verify");
    // Another key's signature over the same input.
    let eddsa = eddsa_key();
    let proof = eddsa.sign(&claims());
    let (_, signature) = proof.rsplit_once('.').unwrap();
    let (input, _) = good.rsplit_once('.').unwrap();
    assert_refused(
        &format!("{input}.{signature}"),
        &rules(),
        "signature does not verify",
    );
}

#[test]
fn rfc7515_4_1_11_critical_extensions_are_refused() {
    let key = es256_key();
    let header = with(key.header(), "crit", json!(["b64"]));
    let proof = key.sign_raw(&with(header, "b64", json!(false)), &claims());
    assert_refused(&proof, &rules(), "critical extensions");
}

#[test]
fn rfc9449_4_2_required_claims() {
    let key = es256_key();
    for name in ["jti", "htm", "htu", "iat"] {
        let proof = key.sign(&without(claims(), name));
        let why = if name == "iat" {
            "must carry a numeric iat claim".to_string()
        } else {
            format!("must carry a {name} claim")
        };
        assert_refused(&proof, &rules(), &why);
    }
    for (name, value, why) in [
        ("jti", json!(1), "jti must be a string"),
        ("htm", json!(["POST"]), "htm must be a string"),
        ("htu", json!({"href": HTU}), "htu must be a string"),
        ("iat", json!(NOW.to_string()), "numeric iat"),
        ("iat", json!(null), "numeric iat"),
    ] {
        let proof = key.sign(&with(claims(), name, value));
        assert_refused(&proof, &rules(), why);
    }
}

#[test]
fn rfc9449_4_2_jti_is_bounded() {
    let key = es256_key();
    let proof = key.sign(&with(claims(), "jti", json!("")));
    assert_refused(&proof, &rules(), "jti must not be empty");
    let proof = key.sign(&with(claims(), "jti", json!("j".repeat(257))));
    assert_refused(&proof, &rules(), "at most 256 bytes");
    let proof = key.sign(&with(claims(), "jti", json!("j".repeat(256))));
    assert_eq!(verify_proof(&proof, &rules()).unwrap().jti.len(), 256);
}

#[test]
fn rfc9449_4_3_htm_must_match_method() {
    let key = es256_key();
    for htm in ["GET", "post", "POST "] {
        let proof = key.sign(&with(claims(), "htm", json!(htm)));
        assert_refused(&proof, &rules(), "does not match the request method 'POST'");
    }
}

#[test]
fn rfc9449_4_3_htu_must_match_url() {
    let key = es256_key();
    for htu in [
        "https://as.example/token2",
        "https://as.example/",
        "https://as.example/Token",
        "https://other.example/token",
        "http://as.example/token",
        "https://as.example:8443/token",
        "https://user@as.example/token",
        "/token",
        "as.example/token",
    ] {
        let proof = key.sign(&with(claims(), "htu", json!(htu)));
        assert_refused(&proof, &rules(), "does not match the request URL");
    }
}

#[test]
fn rfc9449_4_3_htu_ignores_query_and_fragment() {
    let key = es256_key();
    for htu in [
        "https://as.example/token?x=1",
        "https://as.example/token#frag",
        "https://as.example/token?x=1#frag",
        "HTTPS://AS.EXAMPLE/token",
        "https://as.example:443/token",
        "https://as.example/%74oken",
    ] {
        let proof = key.sign(&with(claims(), "htu", json!(htu)));
        verify_proof(&proof, &rules()).unwrap_or_else(|e| panic!("{htu}: {e}"));
    }
}

#[test]
fn rfc9449_4_3_htu_normalization() {
    let table = [
        // (claimed, request URL, match?)
        ("https://as.example/token", "https://as.example/token", true),
        ("HtTpS://As.Example/token", "https://as.example/token", true),
        (
            "https://as.example:443/token",
            "https://as.example/token",
            true,
        ),
        (
            "http://as.example:80/token",
            "http://as.example/token",
            true,
        ),
        ("https://as.example", "https://as.example/", true),
        ("https://as.example/a%2fb", "https://as.example/a%2Fb", true),
        (
            "https://as.example/%7Euser",
            "https://as.example/~user",
            true,
        ),
        (
            "https://as.example/a/../token",
            "https://as.example/token",
            true,
        ),
        (
            "https://as.example/token?a",
            "https://as.example/token?b#c",
            true,
        ),
        ("https://[::1]:443/t", "https://[0:0::1]/t", true),
        ("https://as.example/a%2Fb", "https://as.example/a/b", false),
        (
            "https://as.example/token",
            "https://as.example/token/",
            false,
        ),
        (
            "https://as.example/token",
            "https://as.example:444/token",
            false,
        ),
        (
            "https://as.example/Token",
            "https://as.example/token",
            false,
        ),
        ("http://as.example/token", "https://as.example/token", false),
        ("ftp://as.example/token", "ftp://as.example/token", false),
        (
            "https://u:p@as.example/t",
            "https://u:p@as.example/t",
            false,
        ),
        ("not a url", "not a url", false),
        ("", "", false),
    ];
    for (claimed, request, expected) in table {
        assert_eq!(
            htu_matches(claimed, request),
            expected,
            "{claimed} vs {request}"
        );
    }
}

#[test]
fn rfc9449_4_3_iat_must_be_recent() {
    let key = es256_key();
    for (iat, why) in [
        (json!(NOW - 61), "iat is too old"),
        (json!(0), "iat is too old"),
        (json!(-1), "iat is too old"),
        (json!(NOW + 6), "iat is in the future"),
        (json!(u64::MAX), "iat is in the future"),
        (json!(1e300), "iat is in the future"),
    ] {
        let proof = key.sign(&with(claims(), "iat", iat.clone()));
        assert_refused(&proof, &rules(), why);
    }
    for (iat, expected) in [
        (json!(NOW - 60), NOW - 60),
        (json!(NOW + 5), NOW + 5),
        (json!(NOW as f64 + 0.75), NOW),
    ] {
        let proof = key.sign(&with(claims(), "iat", iat));
        assert_eq!(verify_proof(&proof, &rules()).unwrap().iat, expected);
    }
}

#[test]
fn rfc9449_4_3_ath_is_required_with_an_access_token() {
    let key = es256_key();
    let token = "an.access.token";
    let presented = ProofRules {
        access_token: Some(token),
        ..rules()
    };
    for (ath, why) in [
        (None, "must carry ath"),
        (
            Some(json!(access_token_hash("another token"))),
            "ath does not match",
        ),
        (Some(json!(token)), "ath does not match"),
        (Some(json!(42)), "ath must be a string"),
    ] {
        let claims = match ath {
            Some(ath) => with(claims(), "ath", ath),
            None => claims(),
        };
        assert_refused(&key.sign(&claims), &presented, why);
    }
    let proof = key.sign(&with(claims(), "ath", json!(access_token_hash(token))));
    verify_proof(&proof, &presented).unwrap();
    // Without a token, an ath is not looked at.
    let proof = key.sign(&with(claims(), "ath", json!("whatever")));
    verify_proof(&proof, &rules()).unwrap();
}

#[test]
fn rfc9449_8_nonce_is_returned_for_the_caller() {
    let key = es256_key();
    let proof = key.sign(&with(claims(), "nonce", json!("eyJ7S_zG.eyJH0-Z.HX4w-7v")));
    assert_eq!(
        verify_proof(&proof, &rules()).unwrap().nonce.as_deref(),
        Some("eyJ7S_zG.eyJH0-Z.HX4w-7v")
    );
    for nonce in [json!(""), json!(1), json!(["n"])] {
        let proof = key.sign(&with(claims(), "nonce", nonce));
        assert_refused(&proof, &rules(), "nonce must be a non-empty string");
    }
}

#[test]
fn rfc9449_4_3_errors_echo_no_access_token() {
    let key = es256_key();
    let token = "secret-access-token-value";
    let presented = ProofRules {
        access_token: Some(token),
        ..rules()
    };
    let proof = key.sign(&with(claims(), "ath", json!("wrong")));
    let error = verify_proof(&proof, &presented).unwrap_err();
    assert!(!error.description.contains(token));
    assert!(!error.description.contains(&access_token_hash(token)));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn url() -> impl Strategy<Value = String> {
        "https?://[a-z]{1,10}(\\.[a-z]{2,6}){0,2}(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~%-]{0,8}){0,4}"
    }

    proptest! {
        #[test]
        fn verify_proof_never_panics(proof in "\\PC{0,300}") {
            prop_assert!(verify_proof(&proof, &rules()).is_err());
        }

        #[test]
        fn verify_proof_never_panics_on_jws_shapes(
            header in "[A-Za-z0-9_-]{0,60}",
            payload in "[A-Za-z0-9_-]{0,60}",
            signature in "[A-Za-z0-9_-]{0,60}",
        ) {
            let proof = format!("{header}.{payload}.{signature}");
            prop_assert!(verify_proof(&proof, &rules()).is_err());
        }

        #[test]
        fn verify_proof_never_panics_on_arbitrary_headers(
            header in proptest::collection::btree_map(
                proptest::sample::select(vec!["typ", "alg", "jwk", "crit", "kid"]),
                proptest::sample::select(vec![
                    json!("dpop+jwt"), json!("ES256"), json!("EdDSA"), json!("none"),
                    json!({"kty": "EC", "crv": "Ed25519", "x": "AA", "y": "AA"}),
                    json!({"kty": "OKP", "crv": "P-256", "x": "AA"}),
                    json!({"kty": "RSA", "n": "AA", "e": "AQAB"}),
                    json!(null), json!(1), json!([]),
                ]),
                0..5,
            ),
        ) {
            let proof = format!(
                "{}.{}.c2ln",
                b64(serde_json::to_vec(&header).unwrap()),
                b64(claims().to_string())
            );
            prop_assert!(verify_proof(&proof, &rules()).is_err());
        }

        #[test]
        fn htu_matches_is_reflexive(url in url()) {
            prop_assert!(htu_matches(&url, &url), "{}", url);
        }

        #[test]
        fn htu_with_another_path_never_matches(
            base in "https?://[a-z]{1,10}\\.example(:[1-9][0-9]{0,3})?",
            one in "[A-Za-z0-9_~-]{1,8}",
            other in "[A-Za-z0-9_~-]{1,8}",
        ) {
            prop_assume!(one != other);
            let claimed = format!("{base}/{one}");
            let request = format!("{base}/{other}");
            prop_assert!(!htu_matches(&claimed, &request), "{} vs {}", claimed, request);
        }

        #[test]
        fn htu_matching_never_panics(claimed in "\\PC{0,80}", request in "\\PC{0,80}") {
            let _ = htu_matches(&claimed, &request);
        }
    }
}
