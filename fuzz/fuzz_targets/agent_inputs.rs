//! Any bytes as what an agent sends: a token exchange request body, RFC
//! 9396 `authorization_details` (against a registered type, then narrowed
//! against themselves) and a Cedar policy record an operator adds — none
//! may panic, and what parses keeps its invariants.
#![no_main]
use custos_protocol::form::FormParams;
use custos_protocol::grant::token_exchange;
use custos_protocol::rar::{
    is_narrower_or_equal, narrow, parse_authorization_details, validate_type_registration,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn payment() -> &'static custos_protocol::rar::CompiledType {
    static TYPE: OnceLock<custos_protocol::rar::CompiledType> = OnceLock::new();
    TYPE.get_or_init(|| {
        validate_type_registration(
            "payment_initiation",
            "https://bank.example/",
            &serde_json::json!({
                "type": "object",
                "properties": {
                    "actions": {"type": "array", "items": {"enum": ["initiate", "status"]}},
                    "instructedAmount": {"type": "object"}
                }
            }),
        )
        .expect("the fuzz target's type registers")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = FormParams::parse(data) {
        let _ = token_exchange::parse(&form);
    }
    let text = String::from_utf8_lossy(data);
    let types = |name: &str| (name == "payment_initiation").then(payment);
    if let Ok(details) = parse_authorization_details(&text, &types) {
        assert!(is_narrower_or_equal(&details, &details));
        let narrowed = narrow(Some(&text), &details, &types).expect("narrowing to itself");
        assert!(is_narrower_or_equal(&narrowed, &details));
    }
    if let Ok(summary) = custos_policy::check_record("fuzz.record", &text) {
        assert!(!summary.policies.is_empty());
    }
});
