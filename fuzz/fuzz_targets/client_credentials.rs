//! Any Authorization header and body: the client credential readers
//! (presentation checks, Basic decoding, secrets in the body, assertion
//! sniffing) must never panic.
#![no_main]
use custos_protocol::client_auth::{
    assertion_claim, basic_claim, check_presentation, post_claim, public_claim,
};
use custos_protocol::form::FormParams;
use custos_protocol::names::CLIENT_ASSERTION_TYPE_JWT_BEARER;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Ok(form) = FormParams::parse(body) {
        let _ = check_presentation(Some(header), &form);
        let _ = check_presentation(None, &form);
        let _ = basic_claim(Some(header), &form);
        let _ = post_claim(&form);
        let _ = assertion_claim(&form, CLIENT_ASSERTION_TYPE_JWT_BEARER);
        let _ = public_claim(&form);
    }
});
