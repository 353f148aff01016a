//! Any text as an access token or a client assertion: verification must
//! say no without panicking.
#![no_main]
use custos_protocol::access_token::verify_access_token;
use custos_protocol::client_auth::{verify_client_assertion, AssertionRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert!(verify_access_token(text, &[], "https://as.example", 0).is_none());
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"
    }]}))
    .expect("fixed JWKS");
    let audiences = ["https://as.example".to_string()];
    let rules = AssertionRules {
        client_id: "c",
        audiences: &audiences,
        now: 1_800_000_000,
        leeway: 30,
        max_lifetime: 3600,
    };
    assert!(verify_client_assertion(text, &jwks, &rules).is_err());
});
