//! DPoP (RFC 9449) and certificate (RFC 8705) binding.

use super::*;

#[tokio::test]
async fn rfc9449_7_1_dpop_bound_token_with_its_proof() {
    let f = fixture();
    let key = TestKey::es256();
    let token = f.issuer.token(AUD).dpop_bound(&key).sign();
    let proof = key.proof("POST", URL).access_token(&token).sign();
    let verified = f.dpop(&token, &proof).await.unwrap();
    assert_eq!(verified.dpop_thumbprint(), Some(key.thumbprint()));
    assert_eq!(verified.scheme(), Scheme::DPoP);
    // The same proof again: a replay.
    let rejection = refused(
        f.dpop(&token, &proof).await,
        ErrorCode::InvalidDpopProof,
        "already used",
    );
    assert!(rejection.challenges()[0].starts_with(r#"DPoP error="invalid_dpop_proof""#));
    // Another proof is fine; htu compares without query, with normalization.
    let proof = key
        .proof("POST", "HTTPS://API.example:443/mcp?x=1")
        .access_token(&token)
        .sign();
    assert!(f.dpop(&token, &proof).await.is_ok());
}

#[tokio::test]
async fn rfc9449_7_2_binding_and_scheme_must_agree() {
    let f = fixture();
    let key = TestKey::es256();
    let bound = f.issuer.token(AUD).dpop_bound(&key).sign();
    refused(
        f.bearer(&bound).await,
        ErrorCode::InvalidToken,
        "DPoP-bound",
    );
    let unbound = f.issuer.token(AUD).sign();
    let proof = key.proof("POST", URL).access_token(&unbound).sign();
    refused(
        f.dpop(&unbound, &proof).await,
        ErrorCode::InvalidToken,
        "not DPoP-bound",
    );
    // No proof, two proofs.
    let authorization = format!("DPoP {bound}");
    let request = Request::new("POST", URL).authorization(&authorization);
    refused(
        f.verifier.verify(&request).await,
        ErrorCode::InvalidDpopProof,
        "no DPoP proof",
    );
    let proof = key.proof("POST", URL).access_token(&bound).sign();
    let request = request.dpop(&proof).dpop(&proof);
    refused(
        f.verifier.verify(&request).await,
        ErrorCode::InvalidDpopProof,
        "exactly one",
    );
}

#[tokio::test]
async fn dpop_proof_checks() {
    let f = fixture();
    let key = TestKey::es256();
    let token = f.issuer.token(AUD).dpop_bound(&key).sign();
    let now = f.clock.now();
    let cases = [
        (key.proof("GET", URL).access_token(&token).sign(), "htm"),
        (
            key.proof("POST", "https://api.example/other")
                .access_token(&token)
                .sign(),
            "htu",
        ),
        (
            key.proof("POST", "https://evil.example/mcp")
                .access_token(&token)
                .sign(),
            "htu",
        ),
        (key.proof("POST", URL).sign(), "no ath"),
        (
            key.proof("POST", URL).access_token("another token").sign(),
            "ath",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .issued_at(now - 61)
                .sign(),
            "too old",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .issued_at(now + 61)
                .sign(),
            "future",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .header("typ", "jwt")
                .sign(),
            "typ",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .without("jti")
                .sign(),
            "jti",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .header("alg", "ES384")
                .sign(),
            "does not fit",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .header("alg", "HS256")
                .sign(),
            "alg",
        ),
        (
            key.proof("POST", URL)
                .access_token(&token)
                .without_header("jwk")
                .sign(),
            "jwk",
        ),
        (
            TestKey::es256()
                .proof("POST", URL)
                .access_token(&token)
                .sign(),
            "cnf jkt",
        ),
    ];
    for (proof, words) in cases {
        refused(
            f.dpop(&token, &proof).await,
            ErrorCode::InvalidDpopProof,
            words,
        );
    }
    // A private key in the header.
    let mut jwk = key.public_jwk();
    jwk["d"] = json!("AAAA");
    let proof = key
        .proof("POST", URL)
        .access_token(&token)
        .header("jwk", jwk)
        .sign();
    refused(
        f.dpop(&token, &proof).await,
        ErrorCode::InvalidDpopProof,
        "private",
    );
    // Within the window: fine.
    let proof = key
        .proof("POST", URL)
        .access_token(&token)
        .issued_at(now - 59)
        .sign();
    assert!(f.dpop(&token, &proof).await.is_ok());
}

#[tokio::test]
async fn dpop_with_other_key_types() {
    let f = fixture();
    for alg in [Algorithm::EdDSA, Algorithm::ES384, Algorithm::PS256] {
        let key = TestKey::generate(alg);
        let token = f.issuer.token(AUD).dpop_bound(&key).sign();
        let proof = key.proof("POST", URL).access_token(&token).sign();
        assert!(f.dpop(&token, &proof).await.is_ok(), "{alg}");
    }
    let f = fixture_with(|b| b.dpop_algorithms([Algorithm::ES256]));
    let key = TestKey::generate(Algorithm::EdDSA);
    let token = f.issuer.token(AUD).dpop_bound(&key).sign();
    let proof = key.proof("POST", URL).access_token(&token).sign();
    refused(
        f.dpop(&token, &proof).await,
        ErrorCode::InvalidDpopProof,
        "alg 'EdDSA'",
    );
}

#[tokio::test]
async fn dpop_required_refuses_bearer() {
    let f = fixture_with(|b| b.dpop(DpopPolicy::Required));
    let token = f.issuer.token(AUD).sign();
    let rejection = refused(f.bearer(&token).await, ErrorCode::InvalidToken, "only DPoP");
    let challenges = rejection.challenges();
    assert_eq!(challenges.len(), 1);
    assert!(challenges[0].starts_with(r#"DPoP error="invalid_token""#));
    assert_eq!(
        f.verifier.metadata().dpop_bound_access_tokens_required,
        Some(true)
    );
    let key = TestKey::es256();
    let token = f.issuer.token(AUD).dpop_bound(&key).sign();
    let proof = key.proof("POST", URL).access_token(&token).sign();
    assert!(f.dpop(&token, &proof).await.is_ok());
}

#[tokio::test]
async fn rfc8705_3_certificate_bound_tokens() {
    let f = fixture();
    let certificate = b"a DER certificate".to_vec();
    let token = f.issuer.token(AUD).certificate_bound(&certificate).sign();
    let authorization = format!("Bearer {token}");
    let with = |der: &'static [u8]| {
        Request::new("POST", URL)
            .authorization(&authorization)
            .client_certificate(der)
    };
    let request = Request::new("POST", URL)
        .authorization(&authorization)
        .client_certificate(&certificate);
    let verified = f.verifier.verify(&request).await.unwrap();
    assert_eq!(
        verified.certificate_thumbprint(),
        Some(certificate_thumbprint(&certificate).as_str())
    );
    refused(
        f.verifier.verify(&with(b"another certificate")).await,
        ErrorCode::InvalidToken,
        "another client certificate",
    );
    refused(
        f.bearer(&token).await,
        ErrorCode::InvalidToken,
        "without one",
    );
}
