//! JWS compact serialization (RFC 7515 §7.1), the byte layout only.
//!
//! Signing needs a private key and, for ECDSA, randomness, so it happens in
//! the service; this module builds the signing input and assembles the
//! result. The header of a given key never changes, so callers encode it once
//! with [`encode_header`] and reuse it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

/// The protected header custos puts on what it signs.
#[derive(Debug, Clone, Serialize)]
pub struct JwsHeader<'a> {
    pub alg: &'a str,
    pub kid: &'a str,
    pub typ: &'a str,
}

/// BASE64URL(UTF8(JWS Protected Header)).
pub fn encode_header(header: &JwsHeader<'_>) -> String {
    // A struct of three strings always serialises.
    let json = serde_json::to_vec(header).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// `header_b64 || '.' || BASE64URL(claims)`: the JWS Signing Input.
pub fn signing_input<C: Serialize>(
    header_b64: &str,
    claims: &C,
) -> Result<String, serde_json::Error> {
    let payload = serde_json::to_vec(claims)?;
    let mut out = String::with_capacity(header_b64.len() + 1 + payload.len() * 4 / 3 + 4 + 120);
    out.push_str(header_b64);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    Ok(out)
}

/// Appends `'.' || BASE64URL(signature)` to the signing input.
pub fn assemble(mut signing_input: String, signature: &[u8]) -> String {
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut signing_input);
    signing_input
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7515_7_1_compact_layout() {
        let header = encode_header(&JwsHeader {
            alg: "ES256",
            kid: "k",
            typ: "at+jwt",
        });
        let input = signing_input(&header, &serde_json::json!({"a": 1})).unwrap();
        let jws = assemble(input, &[1, 2, 3]);
        let parts: Vec<&str> = jws.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts[0]).unwrap(),
            br#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#
        );
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[1]).unwrap(), br#"{"a":1}"#);
        assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), [1, 2, 3]);
    }
}
