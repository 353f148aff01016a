//! Any bytes as the workload-attestation inputs a caller controls: a SPIFFE
//! ID (a `client_id`, a JWT-SVID's `sub`, a certificate's URI SAN), a
//! distinguished name, a SPIFFE bundle (fetched from a bundle endpoint), a
//! client certificate, a trusted-issuer registration and a workload JWT —
//! none may panic, and what parses keeps its invariants.
#![no_main]
use custos_protocol::federation::{
    unverified_issuer_and_subject, validate_trusted_issuer, verify_workload_jwt, WorkloadJwtRules,
};
use custos_protocol::spiffe::{SpiffeBundle, SpiffeId, SpiffeIdPattern, TrustDomain};
use custos_protocol::x509::{DistinguishedName, LeafFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = SpiffeId::parse(&text) {
        assert!(id.as_str().starts_with("spiffe://"));
        assert!(id.as_str().len() <= 2048);
        assert!(!id.as_str().ends_with('/'));
        let exact = SpiffeIdPattern::parse(id.as_str()).expect("an ID is a pattern");
        assert!(exact.matches(&id));
    }
    if let Ok(pattern) = SpiffeIdPattern::parse(&text) {
        if let Ok(id) = SpiffeId::parse(&text) {
            assert!(pattern.matches(&id));
        }
    }
    let _ = DistinguishedName::parse(&text);
    if let Ok(domain) = TrustDomain::parse("example.org") {
        let _ = SpiffeBundle::parse(domain, data);
    }
    let _ = LeafFacts::parse(data);
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = validate_trusted_issuer(&json, false);
    }
    let _ = unverified_issuer_and_subject(&text);
    let audiences = ["https://as.example".to_owned()];
    let rules = WorkloadJwtRules {
        issuer: None,
        audiences: &audiences,
        only_these_audiences: true,
        now: 1_790_000_000,
        leeway: 30,
        max_lifetime: 3600,
    };
    let _ = verify_workload_jwt(&text, &[], &rules);
});
