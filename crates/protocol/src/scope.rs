//! Scopes (RFC 6749 §3.3): a space-delimited list of scope tokens.

use crate::OAuthError;

/// Longest scope string accepted.
pub const MAX_SCOPE_LENGTH: usize = 2048;

/// True if `token` is a valid scope-token: 1*( %x21 / %x23-5B / %x5D-7E ).
pub fn is_scope_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// Parses a scope parameter into distinct tokens, in first-seen order.
/// Separators are single spaces; runs of spaces are tolerated.
pub fn parse_scope(text: &str) -> Result<Vec<String>, OAuthError> {
    if text.len() > MAX_SCOPE_LENGTH {
        return Err(OAuthError::invalid_scope(format!(
            "scope is longer than {MAX_SCOPE_LENGTH} characters"
        )));
    }
    let mut scopes: Vec<String> = Vec::new();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return Err(OAuthError::invalid_scope(
                "scope contains a character outside RFC 6749 §3.3 scope-token syntax",
            ));
        }
        if !scopes.iter().any(|s| s == token) {
            scopes.push(token.to_owned());
        }
    }
    Ok(scopes)
}

/// Joins scopes with single spaces.
pub fn join_scope(scopes: &[String]) -> String {
    scopes.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_3_3_scope_token_syntax() {
        assert!(is_scope_token("read"));
        assert!(is_scope_token("https://api.example/read:all"));
        assert!(!is_scope_token("quote\"d"));
        assert!(!is_scope_token("back\\slash"));
        assert!(!is_scope_token("tab\there"));
        assert!(!is_scope_token("é"));
        assert!(!is_scope_token(""));
    }

    #[test]
    fn parse_deduplicates_and_keeps_order() {
        assert_eq!(parse_scope("b a  b").unwrap(), vec!["b", "a"]);
        assert!(parse_scope("").unwrap().is_empty());
    }

    proptest::proptest! {
        #[test]
        fn parsed_tokens_are_valid_and_rejoin(text in "[ -~]{0,64}") {
            if let Ok(scopes) = parse_scope(&text) {
                for s in &scopes {
                    proptest::prop_assert!(is_scope_token(s));
                }
                proptest::prop_assert_eq!(parse_scope(&join_scope(&scopes)).unwrap(), scopes);
            }
        }
    }
}
