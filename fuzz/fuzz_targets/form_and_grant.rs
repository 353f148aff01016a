//! Any bytes as a token request body: parsing, then the grant dispatch,
//! must return a value or an OAuthError — never panic.
#![no_main]
use custos_protocol::form::FormParams;
use custos_protocol::grant::parse_token_request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = FormParams::parse(data) {
        let _ = parse_token_request(&form);
    }
});
