//! Any JSON as RFC 7591 metadata: validation must accept or refuse, and
//! what it accepts must survive the round trip through storage.
#![no_main]
use custos_protocol::metadata::{validate_registration, ClientMetadata, RegistrationRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for rules in [RegistrationRules::default(), RegistrationRules { allow_private_jwks_uri: true }] {
        if let Ok(metadata) = validate_registration(&json, &rules) {
            let stored = serde_json::to_string(&metadata).expect("metadata serialises");
            let back: ClientMetadata = serde_json::from_str(&stored).expect("stored metadata parses");
            assert_eq!(back, metadata);
        }
    }
});
