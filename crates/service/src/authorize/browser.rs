//! What the person's browser carries between requests, signed so custos
//! stores nothing for a visitor who has not logged in: the session cookie
//! (who logged in, until when), the pending authorization request (carried
//! in a hidden field from the login page to the consent page), and CSRF
//! tokens bound to both.
//!
//! A signed value is `base64url(json) "." base64url(HMAC(purpose, json))`
//! under a key derived from the key encryption key, so every replica
//! accepts what any other signed. Each carries its own expiry.

use crate::crypto::MasterKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Longest signed value accepted from a browser.
pub const MAX_SIGNED_LENGTH: usize = 16 * 1024;

/// Signs `payload` for `purpose`.
pub fn seal<T: Serialize>(master: &MasterKey, purpose: &str, payload: &T) -> String {
    let json = serde_json::to_vec(payload).unwrap_or_default();
    let tag = master.browser_tag(purpose, &json);
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&json),
        URL_SAFE_NO_PAD.encode(tag)
    )
}

/// The payload of a value sealed for `purpose`, if its tag verifies.
pub fn open<T: DeserializeOwned>(master: &MasterKey, purpose: &str, text: &str) -> Option<T> {
    if text.len() > MAX_SIGNED_LENGTH {
        return None;
    }
    let (body, tag) = text.split_once('.')?;
    let json = URL_SAFE_NO_PAD.decode(body).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    if !master.verify_browser_tag(purpose, &json, &tag) {
        return None;
    }
    serde_json::from_slice(&json).ok()
}

/// A logged-in person.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    /// The username.
    pub sub: String,
    /// Random, per login: binds CSRF tokens to this session.
    pub sid: String,
    /// Seconds since the epoch when the session ends.
    pub exp: i64,
}

/// A CSRF token for a form bound to the pending request `rid` and, once
/// logged in, the session `sid`.
pub fn csrf_token(master: &MasterKey, rid: &str, sid: Option<&str>) -> String {
    let message = format!("{rid}\n{}", sid.unwrap_or(""));
    URL_SAFE_NO_PAD.encode(master.browser_tag("csrf", message.as_bytes()))
}

/// Constant-time check of a CSRF token.
pub fn csrf_matches(master: &MasterKey, token: &str, rid: &str, sid: Option<&str>) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
        return false;
    };
    let message = format!("{rid}\n{}", sid.unwrap_or(""));
    master.verify_browser_tag("csrf", message.as_bytes(), &tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_secret(&"b".repeat(40)).unwrap()
    }

    #[test]
    fn sealed_values_open_only_with_their_purpose_and_untouched() {
        let master = master();
        let session = Session {
            sub: "alice".into(),
            sid: "s1".into(),
            exp: 10,
        };
        let sealed = seal(&master, "session", &session);
        assert_eq!(open::<Session>(&master, "session", &sealed), Some(session));
        assert_eq!(open::<Session>(&master, "pending", &sealed), None);
        let (body, tag) = sealed.split_once('.').unwrap();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory","sid":"s1","exp":10}"#)
        );
        assert_eq!(open::<Session>(&master, "session", &forged), None);
        assert_eq!(open::<Session>(&master, "session", body), None);
        let other = MasterKey::from_secret(&"c".repeat(40)).unwrap();
        assert_eq!(open::<Session>(&other, "session", &sealed), None);
    }

    #[test]
    fn csrf_tokens_bind_request_and_session() {
        let master = master();
        let token = csrf_token(&master, "r1", Some("s1"));
        assert!(csrf_matches(&master, &token, "r1", Some("s1")));
        assert!(!csrf_matches(&master, &token, "r2", Some("s1")));
        assert!(!csrf_matches(&master, &token, "r1", None));
        assert!(!csrf_matches(&master, "junk!", "r1", Some("s1")));
    }
}
