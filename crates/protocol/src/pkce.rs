//! Proof Key for Code Exchange (RFC 7636), `S256` only as OAuth 2.1 wants
//! (draft-ietf-oauth-v2-1 §4.1.1: `plain` is not supported here).
//!
//! The client sends `code_challenge = BASE64URL(SHA256(code_verifier))` with
//! the authorization request and the verifier with the token request; the
//! server holds one against the other ([`verify_s256`], §4.6).

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Shortest `code_verifier` (RFC 7636 §4.1).
pub const MIN_VERIFIER_LENGTH: usize = 43;
/// Longest `code_verifier` (RFC 7636 §4.1).
pub const MAX_VERIFIER_LENGTH: usize = 128;
/// Length of an `S256` challenge: a SHA-256 digest in unpadded base64url.
pub const CHALLENGE_LENGTH: usize = 43;

/// §4.1: 43–128 characters of [A-Z a-z 0-9 - . _ ~].
pub fn is_valid_verifier(verifier: &str) -> bool {
    (MIN_VERIFIER_LENGTH..=MAX_VERIFIER_LENGTH).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge: 43 base64url characters (a SHA-256 digest).
///
/// The encoding must be canonical (the unused low bits of the last
/// character zero), since no verifier could ever produce another one.
pub fn is_valid_challenge(challenge: &str) -> bool {
    is_sha256_base64url(challenge)
}

/// §4.6: BASE64URL(SHA256(verifier)) == challenge, compared in constant
/// time; false for an invalid verifier or challenge.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) || !is_valid_challenge(challenge) {
        return false;
    }
    let expected = s256_challenge(verifier);
    verify_slices_are_equal(expected.as_bytes(), challenge.as_bytes()).is_ok()
}

/// §4.2: the `S256` challenge of a verifier, `BASE64URL(SHA256(ASCII(verifier)))`.
/// (For clients and tests; the server only ever verifies.)
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()))
}

/// 43 unpadded base64url characters that decode, canonically, to 32 bytes:
/// a SHA-256 digest (a PKCE challenge, an RFC 7638 thumbprint).
pub(crate) fn is_sha256_base64url(text: &str) -> bool {
    text.len() == CHALLENGE_LENGTH
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 7636 Appendix B.
    const B_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const B_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(B_VERIFIER), B_CHALLENGE);
        assert!(verify_s256(B_VERIFIER, B_CHALLENGE));
    }

    #[test]
    fn rfc7636_4_6_wrong_verifier_or_challenge_fails() {
        let mut other_verifier = B_VERIFIER.to_owned();
        other_verifier.replace_range(0..1, "e");
        let mut other_challenge = B_CHALLENGE.to_owned();
        other_challenge.replace_range(0..1, "F");
        let cases: [(&str, &str, &str); 6] = [
            ("another verifier", &other_verifier, B_CHALLENGE),
            ("another challenge", B_VERIFIER, &other_challenge),
            (
                "plain: the verifier as its own challenge",
                B_VERIFIER,
                B_VERIFIER,
            ),
            ("empty verifier", "", B_CHALLENGE),
            ("empty challenge", B_VERIFIER, ""),
            (
                "padded challenge",
                B_VERIFIER,
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=",
            ),
        ];
        for (case, verifier, challenge) in cases {
            assert!(!verify_s256(verifier, challenge), "{case}");
        }
    }

    #[test]
    fn rfc7636_4_1_verifier_syntax() {
        let cases: [(&str, String, bool); 9] = [
            ("43 characters", "a".repeat(43), true),
            ("128 characters", "a".repeat(128), true),
            ("42 characters", "a".repeat(42), false),
            ("129 characters", "a".repeat(129), false),
            (
                "every unreserved character",
                format!("{}-._~AZaz09", "x".repeat(40)),
                true,
            ),
            ("a space", format!("{} ", "a".repeat(43)), false),
            ("a plus", format!("{}+", "a".repeat(43)), false),
            ("a slash", format!("{}/", "a".repeat(43)), false),
            ("a non-ASCII letter", format!("{}é", "a".repeat(43)), false),
        ];
        for (case, verifier, valid) in cases {
            assert_eq!(is_valid_verifier(&verifier), valid, "{case}");
        }
    }

    #[test]
    fn rfc7636_4_2_s256_challenge_syntax() {
        let cases: [(&str, String, bool); 7] = [
            ("Appendix B", B_CHALLENGE.to_owned(), true),
            ("42 characters", B_CHALLENGE[..42].to_owned(), false),
            ("44 characters", format!("{B_CHALLENGE}A"), false),
            (
                "standard base64 alphabet",
                B_CHALLENGE.replace('-', "+"),
                false,
            ),
            ("padding", format!("{}=", &B_CHALLENGE[..42]), false),
            // The last character carries 2 unused bits, which must be zero.
            (
                "non-canonical last character",
                format!("{}N", &B_CHALLENGE[..42]),
                false,
            ),
            (
                "canonical last character",
                format!("{}A", &B_CHALLENGE[..42]),
                true,
            ),
        ];
        for (case, challenge, valid) in cases {
            assert_eq!(is_valid_challenge(&challenge), valid, "{case}");
        }
    }

    #[test]
    fn rfc7636_4_6_invalid_verifier_never_verifies_even_with_its_own_digest() {
        let short = "a".repeat(42);
        assert!(!verify_s256(&short, &s256_challenge(&short)));
        let long = "a".repeat(129);
        assert!(!verify_s256(&long, &s256_challenge(&long)));
    }

    proptest! {
        #[test]
        fn every_valid_verifier_verifies_against_its_challenge(
            verifier in "[A-Za-z0-9._~-]{43,128}"
        ) {
            let challenge = s256_challenge(&verifier);
            prop_assert!(is_valid_challenge(&challenge));
            prop_assert!(verify_s256(&verifier, &challenge));
        }

        #[test]
        fn another_verifier_never_verifies(
            a in "[A-Za-z0-9._~-]{43,128}",
            b in "[A-Za-z0-9._~-]{43,128}",
        ) {
            prop_assume!(a != b);
            prop_assert!(!verify_s256(&b, &s256_challenge(&a)));
        }

        #[test]
        fn arbitrary_text_never_panics(verifier in "\\PC{0,140}", challenge in "\\PC{0,50}") {
            let _ = is_valid_verifier(&verifier);
            let _ = is_valid_challenge(&challenge);
            let _ = verify_s256(&verifier, &challenge);
        }
    }
}
