//! Any JSON as RFC 7591 metadata: validation must accept or refuse, what
//! it accepts must survive the round trip through storage, and the RFC 7592
//! narrowing rule must judge any pair without panicking (and accept a
//! client's unchanged metadata).
#![no_main]
use custos_protocol::metadata::self_service::check_update;
use custos_protocol::metadata::{validate_registration, ClientMetadata, RegistrationRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let lenient = RegistrationRules {
        allow_private_jwks_uri: true,
        ..RegistrationRules::default()
    };
    let baseline = validate_registration(
        &serde_json::json!({"grant_types": ["client_credentials"], "scope": "read write"}),
        &lenient,
    )
    .expect("baseline metadata");
    for rules in [RegistrationRules::default(), lenient.clone()] {
        if let Ok(metadata) = validate_registration(&json, &rules) {
            let stored = serde_json::to_string(&metadata).expect("metadata serialises");
            let back: ClientMetadata = serde_json::from_str(&stored).expect("stored metadata parses");
            assert_eq!(back, metadata);
            let _ = check_update(&baseline, &metadata);
            let _ = check_update(&metadata, &baseline);
            assert!(check_update(&metadata, &metadata).is_ok(), "unchanged metadata widens nothing");
        }
    }
});
