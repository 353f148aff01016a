use super::*;
use crate::testing::TestKey;
use serde_json::json;

const URL: &str = "https://api.example/mcp";

fn rules<'a>(key: &'a TestKey, token: &'a str, now: i64) -> ProofRules<'a> {
    ProofRules {
        htm: "POST",
        htu: URL,
        access_token: token,
        jkt: key.thumbprint(),
        now,
        max_age: 60,
        max_skew: 5,
        algorithms: &Algorithm::ALL,
    }
}

#[test]
fn a_good_proof() {
    let key = TestKey::es256();
    let now = crate::testing::now();
    let proof = key
        .proof("POST", URL)
        .access_token("tok")
        .issued_at(now)
        .jti("j-1")
        .sign();
    let checked = check_proof(&proof, &rules(&key, "tok", now)).unwrap();
    assert_eq!(checked.jkt, key.thumbprint());
    assert_eq!(checked.jti, "j-1");
    assert_eq!(checked.iat, now);
}

#[test]
fn rfc9449_4_3_refusals() {
    let key = TestKey::es256();
    let now = crate::testing::now();
    let base = || key.proof("POST", URL).access_token("tok").issued_at(now);
    let cases = [
        (base().header("typ", "at+jwt").sign(), "typ"),
        (base().header("alg", "none").sign(), "alg"),
        (base().header("crit", json!(["x"])).sign(), "crit"),
        (base().header("jwk", json!("not an object")).sign(), "jwk"),
        (
            base()
                .header("jwk", json!({"kty": "oct", "k": "c2VjcmV0"}))
                .sign(),
            "jwk",
        ),
        (base().claim("jti", "").sign(), "jti"),
        (base().claim("jti", "x".repeat(257)).sign(), "jti"),
        (base().claim("htm", 5).sign(), "htm"),
        (base().without("htu").sign(), "htu"),
        (base().claim("iat", "now").sign(), "iat"),
        (base().issued_at(now + 6).sign(), "future"),
        (base().claim("ath", 5).sign(), "ath"),
    ];
    for (proof, words) in cases {
        let error = check_proof(&proof, &rules(&key, "tok", now)).unwrap_err();
        assert!(error.contains(words), "{words}: {error}");
    }
    let huge = format!("{}.{}.AA", "a".repeat(MAX_PROOF_LEN), "b");
    assert!(check_proof(&huge, &rules(&key, "tok", now))
        .unwrap_err()
        .contains("longer"));
    // A proof whose signature was made over other claims.
    let proof = base().sign();
    let other = base().claim("htm", "GET").sign();
    let mut parts: Vec<&str> = proof.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    let forged = parts.join(".");
    assert!(check_proof(&forged, &rules(&key, "tok", now))
        .unwrap_err()
        .contains("signature"));
}

#[test]
fn rfc9449_4_3_htu_normalization() {
    assert!(htu_matches("https://api.example/mcp", URL));
    assert!(htu_matches("https://API.EXAMPLE:443/mcp?q=1#f", URL));
    assert!(htu_matches("https://api.example/a/../mcp", URL));
    assert!(htu_matches("https://api.example/%6Dcp", URL));
    assert!(htu_matches("https://api.example", "https://api.example/"));
    assert!(htu_matches(
        "https://api.example/a%2fb",
        "https://api.example/a%2Fb"
    ));
    assert!(!htu_matches("http://api.example/mcp", URL));
    assert!(!htu_matches("https://api.example:8443/mcp", URL));
    assert!(!htu_matches("https://api.example/mcp/", URL));
    assert!(!htu_matches("https://user@api.example/mcp", URL));
    assert!(!htu_matches(
        "ftp://api.example/mcp",
        "ftp://api.example/mcp"
    ));
    assert!(!htu_matches("/mcp", "/mcp"));
}

#[test]
fn access_token_hash_is_rfc9449_4_2() {
    // RFC 9449 §7.1's example token and its ath.
    assert_eq!(
        access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
}

#[tokio::test]
async fn memory_replay_store() {
    let store = MemoryReplayStore::new(32);
    assert!(store.is_empty());
    assert!(store.first_use("a", 100, 10).await.unwrap());
    assert!(!store.first_use("a", 100, 50).await.unwrap());
    assert!(store.first_use("b", 100, 50).await.unwrap());
    assert_eq!(store.len(), 2);
    // Once expired, forgotten (and usable again, though a proof that old
    // is refused before the store is asked).
    assert!(store.first_use("a", 200, 100).await.unwrap());
    assert_eq!(replay_key("k", "j"), replay_key("k", "j"));
    assert_ne!(replay_key("k", "j"), replay_key("k2", "j"));
}

#[tokio::test]
async fn memory_replay_store_fails_closed_when_full() {
    let store = MemoryReplayStore::new(16);
    let mut refused = 0;
    for i in 0..200 {
        match store.first_use(&format!("key-{i}"), 100, 10).await {
            Ok(true) => {}
            Ok(false) => panic!("not a replay"),
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0);
    assert!(store.len() <= 16);
    // Later, the entries have expired and there is room again.
    for i in 0..200 {
        let now = 100 + 2 * i;
        let key = format!("later-{i}");
        assert!(store.first_use(&key, now + 1, now).await.unwrap());
        assert!(!store.first_use(&key, now + 1, now).await.unwrap());
    }
}
