//! Any Authorization header and body: client credential extraction (Basic
//! decoding, assertion sniffing) must never panic.
#![no_main]
use custos_protocol::client_auth::extract_credentials;
use custos_protocol::form::FormParams;
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
        let _ = extract_credentials(Some(header), &form);
        let _ = extract_credentials(None, &form);
    }
});
