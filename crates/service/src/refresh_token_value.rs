//! Refresh token values and the keys they are stored under.
//!
//! A refresh token is 8 bytes of issue time (microseconds since the Unix
//! epoch, big-endian) followed by 32 random bytes, base64url without
//! padding (54 characters). It is stored under its key: the same 8 bytes
//! followed by the SHA-256 of the whole token.
//!
//! Why the time in front: the store's index on the key then grows at its
//! end, like a log. Keyed by a hash alone, every new token lands on a
//! random page of the index, so each commit of a group of rotations writes
//! one index page per token to SQLite's write-ahead log; keyed in time
//! order, the new tokens of a commit — and the tokens they replace, issued
//! a moment earlier — share a few pages at the end. That halves what the
//! single SQLite writer does per rotation (BENCHMARKS.md, issue 6).
//!
//! The time is not a secret (the holder knows when it got the token, and
//! the access token beside it says so too); the 256 random bits are. A key
//! can be found only from the whole token: its last 32 bytes are a hash of
//! all of it. Tokens issued before this format (43 characters, 32 random
//! bytes) are stored under their SHA-256 alone and are still found: the
//! two kinds of key differ in length, so neither can name the other.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Bytes of issue time in front of the random part.
const TIME_BYTES: usize = 8;
/// Random bytes of a token.
const RANDOM_BYTES: usize = 32;
/// Characters of a token in this format (base64url of 40 bytes).
const TOKEN_LENGTH: usize = (TIME_BYTES + RANDOM_BYTES) * 4 / 3 + 1;

/// A new refresh token, and the key to store it under.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    new_refresh_token_at(micros)
}

fn new_refresh_token_at(micros: u64) -> (String, Vec<u8>) {
    let mut raw = [0u8; TIME_BYTES + RANDOM_BYTES];
    raw[..TIME_BYTES].copy_from_slice(&micros.to_be_bytes());
    // The system RNG does not fail on supported platforms; if it ever did,
    // a predictable token must not be issued, so abort loudly.
    if SystemRandom::new().fill(&mut raw[TIME_BYTES..]).is_err() {
        panic!("system random number generator failed");
    }
    let token = URL_SAFE_NO_PAD.encode(raw);
    let key = refresh_token_key(&token);
    (token, key)
}

/// The key a presented refresh token is stored under (see the module
/// documentation). Any value has one; only a token custos issued has a
/// stored one.
pub fn refresh_token_key(token: &str) -> Vec<u8> {
    let hash = digest(&SHA256, token.as_bytes());
    if token.len() == TOKEN_LENGTH {
        if let Some(time) = URL_SAFE_NO_PAD
            .decode(token)
            .ok()
            .and_then(|raw| raw.get(..TIME_BYTES).map(<[u8]>::to_vec))
        {
            let mut key = time;
            key.reserve(hash.as_ref().len());
            key.extend_from_slice(hash.as_ref());
            return key;
        }
    }
    hash.as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_new_token_is_54_characters_and_found_under_its_key() {
        let (token, key) = new_refresh_token();
        assert_eq!(token.len(), TOKEN_LENGTH);
        assert_eq!(TOKEN_LENGTH, 54);
        assert_eq!(key, refresh_token_key(&token));
        assert_eq!(key.len(), TIME_BYTES + 32);
        assert_eq!(
            &key[TIME_BYTES..],
            digest(&SHA256, token.as_bytes()).as_ref()
        );
    }

    #[test]
    fn keys_of_later_tokens_sort_after_earlier_ones() {
        let (_, first) = new_refresh_token_at(1_764_000_000_000_000);
        let (_, second) = new_refresh_token_at(1_764_000_000_000_001);
        let (_, much_later) = new_refresh_token_at(1_864_000_000_000_000);
        assert!(first < second && second < much_later);
    }

    #[test]
    fn two_tokens_issued_at_once_differ() {
        let (a, key_a) = new_refresh_token_at(7);
        let (b, key_b) = new_refresh_token_at(7);
        assert_ne!(a, b);
        assert_ne!(key_a, key_b);
    }

    #[test]
    fn a_token_of_the_earlier_format_is_found_under_its_sha256() {
        let legacy = crate::crypto::random_token(32);
        assert_eq!(legacy.len(), 43);
        assert_eq!(refresh_token_key(&legacy), crate::crypto::sha256(&legacy));
    }

    #[test]
    fn a_54_character_value_that_is_not_base64url_is_hashed_whole() {
        let odd = "!".repeat(TOKEN_LENGTH);
        assert_eq!(refresh_token_key(&odd), crate::crypto::sha256(&odd));
    }

    proptest! {
        /// No value's key is another value's key: the key ends with the
        /// SHA-256 of the whole value, and its length tells the kinds apart.
        #[test]
        fn distinct_values_have_distinct_keys(a in "[A-Za-z0-9_-]{40,60}", b in "[A-Za-z0-9_-]{40,60}") {
            prop_assume!(a != b);
            prop_assert_ne!(refresh_token_key(&a), refresh_token_key(&b));
        }

        /// Whatever is presented, working out its key does not panic.
        #[test]
        fn any_value_has_a_key(value in ".{0,80}") {
            let key = refresh_token_key(&value);
            prop_assert!(key.len() == 32 || key.len() == 40);
        }
    }
}
