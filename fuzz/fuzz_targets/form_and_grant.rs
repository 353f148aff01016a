//! Any bytes as a token request body: parsing, then each grant's parser,
//! must return a value or an OAuthError — never panic.
#![no_main]
use custos_protocol::form::FormParams;
use custos_protocol::grant::{client_credentials, unsupported_grant_type};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = FormParams::parse(data) {
        let _ = client_credentials::parse(&form);
        if let Some(grant_type) = form.get("grant_type") {
            let _ = unsupported_grant_type(grant_type, &["client_credentials"]);
        }
    }
});
