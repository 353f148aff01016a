//! Any text as a DPoP proof, and any two lines as a claimed `htu` and a
//! request URL: proof checking must say no without panicking, and `htu`
//! matching must be symmetric.
#![no_main]
use custos_protocol::dpop::{htu_matches, verify_proof, ProofRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = ProofRules {
        htm: "POST",
        htu: "https://as.example/token",
        now: 1_800_000_000,
        max_age: 60,
        max_skew: 5,
        access_token: Some("an.access.token"),
    };
    assert!(verify_proof(text, &rules).is_err());
    let (claimed, request) = text.split_once('\n').unwrap_or((text, text));
    assert_eq!(
        htu_matches(claimed, request),
        htu_matches(request, claimed)
    );
});
