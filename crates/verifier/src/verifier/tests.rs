use super::*;
use crate::testing::{certificate_thumbprint, TestIssuer, TestKey};
use crate::{JwkSet, JwksError, JwksSource, ManualClock, StaticJwks};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const ISS: &str = "https://as.example";
const AUD: &str = "https://api.example/mcp";
const URL: &str = "https://api.example/mcp";
const METADATA: &str = "https://api.example/.well-known/oauth-protected-resource/mcp";

struct Fixture {
    issuer: TestIssuer,
    clock: ManualClock,
    verifier: Verifier,
}

fn fixture_with(edit: impl FnOnce(VerifierBuilder) -> VerifierBuilder) -> Fixture {
    let issuer = TestIssuer::new(ISS);
    let clock = ManualClock::new(crate::testing::now());
    let builder = Verifier::builder(ISS, AUD)
        .jwks(issuer.jwks())
        .clock(clock.clone());
    let verifier = edit(builder).build().unwrap();
    Fixture {
        issuer,
        clock,
        verifier,
    }
}

fn fixture() -> Fixture {
    fixture_with(|b| b)
}

impl Fixture {
    async fn bearer(&self, token: &str) -> Result<VerifiedToken, Rejection> {
        let authorization = format!("Bearer {token}");
        let request = Request::new("POST", URL).authorization(&authorization);
        self.verifier.verify(&request).await
    }

    async fn dpop(&self, token: &str, proof: &str) -> Result<VerifiedToken, Rejection> {
        let authorization = format!("DPoP {token}");
        let request = Request::new("POST", URL)
            .authorization(&authorization)
            .dpop(proof);
        self.verifier.verify(&request).await
    }
}

mod binding;

fn refused(result: Result<VerifiedToken, Rejection>, code: ErrorCode, words: &str) -> Rejection {
    let rejection = result.expect_err("should be refused");
    assert_eq!(rejection.error_code(), Some(code), "{rejection}");
    assert!(
        rejection.description().contains(words),
        "'{}' should contain '{words}'",
        rejection.description()
    );
    rejection
}

#[tokio::test]
async fn accepts_a_bearer_token() {
    let f = fixture();
    let token = f.issuer.token(AUD).scope("tools:call read").sign();
    let verified = f.bearer(&token).await.unwrap();
    assert_eq!(verified.subject(), "alice");
    assert_eq!(verified.client_id(), "client-1");
    assert_eq!(verified.issuer(), ISS);
    assert_eq!(verified.scopes(), ["tools:call", "read"]);
    assert_eq!(verified.scheme(), Scheme::Bearer);
}

#[tokio::test]
async fn rfc6750_3_1_no_token_gets_a_challenge_without_error() {
    let f = fixture();
    for request in [
        Request::new("GET", URL),
        Request::new("GET", URL).authorization("Basic dXNlcjpwYXNz"),
    ] {
        let rejection = f.verifier.verify(&request).await.unwrap_err();
        assert_eq!(rejection.status(), 401);
        assert_eq!(rejection.error_code(), None);
        let challenges = rejection.challenges();
        assert_eq!(
            challenges[0],
            format!(r#"Bearer resource_metadata="{METADATA}""#)
        );
        assert!(challenges[1].starts_with("DPoP algs=\"ES256 ES384 EdDSA"));
    }
    assert_eq!(f.verifier.resource_metadata_url(), Some(METADATA));
}

#[tokio::test]
async fn malformed_authorization_is_invalid_request() {
    let f = fixture();
    for request in [
        Request::new("GET", URL).authorization("Bearer"),
        Request::new("GET", URL).authorization("Bearer a b"),
        Request::new("GET", URL)
            .authorization("Bearer a")
            .authorization("Bearer b"),
    ] {
        let rejection = f.verifier.verify(&request).await.unwrap_err();
        assert_eq!(rejection.error_code(), Some(ErrorCode::InvalidRequest));
        assert_eq!(rejection.status(), 400);
    }
}

#[tokio::test]
async fn rfc9068_4_typ_must_be_at_jwt() {
    let f = fixture();
    let ok = f
        .issuer
        .token(AUD)
        .header("typ", "application/AT+JWT")
        .sign();
    assert!(f.bearer(&ok).await.is_ok());
    for typ in [json!("JWT"), json!("dpop+jwt"), json!(1)] {
        let token = f.issuer.token(AUD).header("typ", typ).sign();
        refused(f.bearer(&token).await, ErrorCode::InvalidToken, "typ");
    }
    let token = f.issuer.token(AUD).without_header("typ").sign();
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "typ");
}

#[tokio::test]
async fn alg_none_and_hmac_are_refused() {
    let f = fixture();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"iss": ISS, "sub": "mallory", "aud": AUD, "client_id": "c",
        "iat": f.clock.now(), "exp": f.clock.now() + 60, "jti": "j"});
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": f.issuer.kid()})),
        b64(claims.clone())
    );
    refused(f.bearer(&none).await, ErrorCode::InvalidToken, "not signed");
    let none_signed = format!("{none}AAAA");
    refused(
        f.bearer(&none_signed).await,
        ErrorCode::InvalidToken,
        "alg 'none'",
    );
    // HS256 with the public key as the secret (the classic confusion).
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "at+jwt", "kid": f.issuer.kid()})),
        b64(claims)
    );
    let secret = f.issuer.jwks_document().to_string();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let hs = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    refused(f.bearer(&hs).await, ErrorCode::InvalidToken, "alg 'HS256'");
}

#[tokio::test]
async fn alg_must_fit_the_key_and_the_allow_list() {
    let f = fixture();
    let token = f.issuer.token(AUD).header("alg", "ES384").sign();
    refused(
        f.bearer(&token).await,
        ErrorCode::InvalidToken,
        "does not publish",
    );
    let f = fixture_with(|b| b.algorithms([Algorithm::EdDSA]));
    let token = f.issuer.token(AUD).sign();
    refused(
        f.bearer(&token).await,
        ErrorCode::InvalidToken,
        "alg 'ES256'",
    );
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let f = fixture();
    let token = f.issuer.token(AUD).scope("read").sign();
    let forged_claims = f.issuer.token(AUD).scope("admin").sign();
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[1] = forged_claims.split('.').nth(1).unwrap();
    let forged = parts.join(".");
    refused(
        f.bearer(&forged).await,
        ErrorCode::InvalidToken,
        "signature",
    );
    let other = TestIssuer::new(ISS);
    let token = other.token(AUD).header("kid", f.issuer.kid()).sign();
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "signature");
    let token = f.issuer.token(AUD).header("crit", json!(["exp"])).sign();
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "crit");
    let f = fixture_with(|b| b.max_token_length(1000));
    let long = "a".repeat(1001);
    refused(f.bearer(&long).await, ErrorCode::InvalidToken, "longer");
    let long = "a".repeat(20_000);
    refused(f.bearer(&long).await, ErrorCode::InvalidRequest, "too long");
}

#[tokio::test]
async fn claims_iss_aud_exp() {
    let f = fixture();
    let token = f
        .issuer
        .token(AUD)
        .claim("iss", "https://evil.example")
        .sign();
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "iss");
    let token = f.issuer.token("https://other.example").sign();
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "aud");
    let token = f
        .issuer
        .token(AUD)
        .claim("aud", json!(["https://other.example", AUD]))
        .sign();
    assert!(f.bearer(&token).await.is_ok());
    let token = f.issuer.token(AUD).sign();
    f.clock.advance(300 + 59);
    assert!(f.bearer(&token).await.is_ok(), "within the leeway");
    f.clock.advance(1);
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "expired");
}

#[tokio::test]
async fn also_accepted_audience() {
    let f = fixture_with(|b| b.also_accept_audience("https://old.example"));
    let token = f.issuer.token("https://old.example").sign();
    assert!(f.bearer(&token).await.is_ok());
}

#[tokio::test]
async fn scopes_required_by_the_verifier_and_the_route() {
    let f = fixture_with(|b| b.required_scopes(["read"]));
    let token = f.issuer.token(AUD).scope("write").sign();
    let rejection = refused(f.bearer(&token).await, ErrorCode::InsufficientScope, "read");
    assert_eq!(rejection.status(), 403);
    assert_eq!(rejection.scope(), Some("read"));
    assert!(rejection.challenges()[0].contains(&format!(
        r#"error="insufficient_scope", error_description="the token lacks a scope this request needs: read", scope="read", resource_metadata="{METADATA}""#
    )));

    let token = f.issuer.token(AUD).scope("read").sign();
    let authorization = format!("Bearer {token}");
    let request = Request::new("POST", URL).authorization(&authorization);
    let verified = f.verifier.verify(&request).await.unwrap();
    let rejection = f
        .verifier
        .verify_with_scopes(&request, &["tools:call", "read"])
        .await
        .unwrap_err();
    assert_eq!(rejection.scope(), Some("read tools:call"));
    assert!(f.verifier.check_scopes(&verified, &["read"]).is_ok());
    assert!(f.verifier.check_scopes(&verified, &["admin"]).is_err());
    assert_eq!(f.verifier.metadata().scopes_supported, ["read"]);
}

#[tokio::test]
async fn other_issuer_key_types() {
    for alg in [
        Algorithm::EdDSA,
        Algorithm::ES384,
        Algorithm::RS256,
        Algorithm::PS512,
    ] {
        let issuer = TestIssuer::with_key(ISS, TestKey::generate(alg));
        let verifier = Verifier::builder(ISS, AUD)
            .jwks(issuer.jwks())
            .build()
            .unwrap();
        let token = issuer.token(AUD).sign();
        let authorization = format!("Bearer {token}");
        let request = Request::new("GET", URL).authorization(&authorization);
        assert!(verifier.verify(&request).await.is_ok(), "{alg}");
    }
}

#[tokio::test]
async fn a_token_without_kid_needs_a_single_fitting_key() {
    let f = fixture();
    let token = f.issuer.token(AUD).without_header("kid").sign();
    assert!(f.bearer(&token).await.is_ok());
    let token = f.issuer.token(AUD).header("kid", json!(5)).sign();
    refused(f.bearer(&token).await, ErrorCode::InvalidToken, "kid");
}

/// A key set that can be changed, counting fetches.
#[derive(Default)]
struct Rotating {
    set: Mutex<JwkSet>,
    fetches: AtomicUsize,
    failing: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl JwksSource for Rotating {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(JwksError::Fetch {
                url: "test".into(),
                reason: "down".into(),
            });
        }
        Ok(self.set.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn key_rotation_is_picked_up_and_bogus_kids_are_rate_limited() {
    let old = TestIssuer::new(ISS);
    let source = Arc::new(Rotating::default());
    *source.set.lock().unwrap() = old.jwks().set().clone();
    let clock = ManualClock::new(crate::testing::now());
    let verifier = Verifier::builder(ISS, AUD)
        .jwks(Arc::clone(&source))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(verifier.warm_up().await.unwrap(), 1);
    let check = |token: String| {
        let verifier = verifier.clone();
        async move {
            let authorization = format!("Bearer {token}");
            verifier
                .verify(&Request::new("GET", URL).authorization(&authorization))
                .await
        }
    };
    assert!(check(old.token(AUD).sign()).await.is_ok());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);

    // A flood of made-up kids: one fetch (none right after the warm-up).
    let bogus = old.token(AUD).header("kid", "bogus").sign();
    assert!(check(bogus).await.is_err());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    clock.advance(30);
    for i in 0..100 {
        let token = old.token(AUD).header("kid", format!("bogus-{i}")).sign();
        assert!(check(token).await.is_err());
    }
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);

    // The issuer rotates; within the interval the new kid is not fetched…
    let new = TestIssuer::new(ISS);
    *source.set.lock().unwrap() = new.jwks().set().clone();
    clock.advance(10);
    assert!(check(new.token(AUD).sign()).await.is_err());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    // … after it, it is, and the old key is gone.
    clock.advance(20);
    assert!(check(new.token(AUD).sign()).await.is_ok());
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    assert!(check(old.token(AUD).sign()).await.is_err());
}

#[tokio::test]
async fn no_keys_at_all_is_503() {
    let source = Arc::new(Rotating::default());
    source.failing.store(true, Ordering::SeqCst);
    let clock = ManualClock::new(crate::testing::now());
    let issuer = TestIssuer::new(ISS);
    let verifier = Verifier::builder(ISS, AUD)
        .jwks(Arc::clone(&source))
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(verifier.warm_up().await.is_err());
    let token = issuer.token(AUD).sign();
    let authorization = format!("Bearer {token}");
    let request = Request::new("GET", URL).authorization(&authorization);
    let rejection = verifier.verify(&request).await.unwrap_err();
    assert_eq!(rejection.status(), 503);
    assert!(rejection.description().contains("down"), "{rejection}");
    // The issuer comes back: after the retry delay, tokens verify.
    source.failing.store(false, Ordering::SeqCst);
    *source.set.lock().unwrap() = issuer.jwks().set().clone();
    clock.advance(5);
    assert!(verifier.verify(&request).await.is_ok());
}

#[tokio::test]
async fn garbage_never_panics() {
    let f = fixture();
    let key = TestKey::es256();
    let token = f.issuer.token(AUD).dpop_bound(&key).sign();
    let proof = key.proof("POST", URL).access_token(&token).sign();
    // Deterministic mutations: every byte position, a few replacement bytes.
    let mut seed: u32 = 7;
    for _ in 0..400 {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let target = if seed & 1 == 0 { &token } else { &proof };
        let mut bytes = target.as_bytes().to_vec();
        let at = (seed as usize >> 3) % bytes.len();
        bytes[at] = b"A.-_=/+ \0z9"[(seed as usize >> 16) % 11];
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        let (t, p) = if seed & 1 == 0 {
            (mutated.as_str(), proof.as_str())
        } else {
            (token.as_str(), mutated.as_str())
        };
        let _ = f.dpop(t, p).await;
    }
    for garbage in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "e30.e30.e30",
        "W10.W10.AA",
        "bnVsbA.bnVsbA.AA",
    ] {
        assert!(f.bearer(garbage).await.is_err());
        assert!(f.dpop(&token, garbage).await.is_err());
    }
}

#[tokio::test]
async fn metadata_is_derived_from_the_configuration() {
    let f = fixture_with(|b| {
        b.required_scopes(["mcp:tools"])
            .dpop_algorithms([Algorithm::ES256, Algorithm::EdDSA])
            .metadata(|m| m.resource_name = Some("Example MCP".into()))
    });
    let metadata = serde_json::to_value(f.verifier.metadata()).unwrap();
    assert_eq!(
        metadata,
        json!({
            "resource": AUD,
            "authorization_servers": [ISS],
            "scopes_supported": ["mcp:tools"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Example MCP",
            "dpop_signing_alg_values_supported": ["ES256", "EdDSA"],
            "dpop_bound_access_tokens_required": false,
        })
    );
    assert_eq!(
        f.verifier.request_url("/mcp?x=1").as_deref(),
        Some("https://api.example/mcp")
    );
}

#[test]
fn build_errors() {
    let jwks = StaticJwks::new(JwkSet::default());
    assert!(matches!(
        Verifier::builder("", AUD).jwks(jwks.clone()).build(),
        Err(BuildError::Issuer)
    ));
    assert!(matches!(
        Verifier::builder(ISS, "").jwks(jwks.clone()).build(),
        Err(BuildError::Resource)
    ));
    assert!(matches!(
        Verifier::builder(ISS, AUD)
            .jwks(jwks.clone())
            .algorithms([])
            .build(),
        Err(BuildError::Algorithms)
    ));
    assert!(matches!(
        Verifier::builder(ISS, AUD)
            .jwks(jwks)
            .public_url("nope")
            .build(),
        Err(BuildError::PublicUrl(_))
    ));
}
