//! Redirect URIs by OAuth 2.1's rules (draft-ietf-oauth-v2-1 §2.3.1, §7.5.3;
//! RFC 8252 §7.3 for loopback).
//!
//! Registration: absolute, no fragment, no wildcard, `https` unless the host is
//! a loopback address (`http` allowed), or a private-use scheme for native
//! apps (a reverse domain name, with a dot). Matching: exact string comparison,
//! with the single RFC 8252 exception that the port of a loopback IP literal
//! may vary.

use crate::OAuthError;
use url::{Host, Url};

/// Longest redirect URI accepted.
pub const MAX_REDIRECT_URI_LENGTH: usize = 2000;

/// The host of an `https` URI (lower-case, as the URL parser writes it);
/// `None` for any other URI.
pub fn https_host(uri: &str) -> Option<String> {
    Url::parse(uri)
        .ok()
        .filter(|u| u.scheme() == "https")
        .and_then(|u| u.host_str().map(str::to_owned))
}

/// Checks a redirect URI offered at registration.
pub fn validate_redirect_uri(uri: &str) -> Result<(), OAuthError> {
    let bad = |why: &str| OAuthError::invalid_redirect_uri(format!("redirect URI {why}"));
    if uri.len() > MAX_REDIRECT_URI_LENGTH {
        return Err(bad("is too long"));
    }
    if uri.contains('*') {
        return Err(bad("must not contain a wildcard"));
    }
    if uri.contains('#') {
        return Err(bad("must not contain a fragment"));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain whitespace or control characters"));
    }
    let url = Url::parse(uri).map_err(|_| bad("must be an absolute URI"))?;
    match url.scheme() {
        "https" => {
            if url.host().is_none() {
                return Err(bad("must name a host"));
            }
        }
        "http" => {
            if !is_loopback(&url) {
                return Err(bad("must use https unless its host is a loopback address"));
            }
        }
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" => {
            return Err(bad("uses a forbidden scheme"));
        }
        scheme => {
            // Private-use URI scheme (RFC 8252 §7.1): a reversed domain name.
            if !scheme.contains('.') {
                return Err(bad(
                    "must use https, http on a loopback host, or a private-use scheme that is a reversed domain name",
                ));
            }
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain user information"));
    }
    Ok(())
}

/// True if the URL's host is a loopback IP literal or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Does `requested` match one of `registered`? Exact string match; for
/// loopback IP literals with `http`, the port may differ (RFC 8252 §7.3).
pub fn matches_registered(requested: &str, registered: &[String]) -> bool {
    if registered.iter().any(|r| r == requested) {
        return true;
    }
    let Ok(req) = Url::parse(requested) else {
        return false;
    };
    if req.scheme() != "http"
        || !matches!(req.host(), Some(Host::Ipv4(_)) | Some(Host::Ipv6(_)))
        || !is_loopback(&req)
    {
        return false;
    }
    registered.iter().any(|r| {
        let Ok(mut reg) = Url::parse(r) else {
            return false;
        };
        let mut req = req.clone();
        if reg.set_port(None).is_err() || req.set_port(None).is_err() {
            return false;
        }
        reg == req
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn refused(uri: &str) -> bool {
        matches!(validate_redirect_uri(uri), Err(e) if e.code == ErrorCode::InvalidRedirectUri)
    }

    #[test]
    fn oauth21_redirect_uri_must_be_absolute() {
        assert!(refused("/callback"));
        assert!(refused("callback"));
        assert!(refused(""));
    }

    #[test]
    fn oauth21_redirect_uri_must_not_have_fragment() {
        assert!(refused("https://app.example/cb#frag"));
        assert!(refused("https://app.example/cb#"));
    }

    #[test]
    fn oauth21_redirect_uri_must_not_have_wildcard() {
        assert!(refused("https://*.example/cb"));
        assert!(refused("https://app.example/*"));
    }

    #[test]
    fn oauth21_redirect_uri_https_unless_loopback() {
        assert!(refused("http://app.example/cb"));
        assert!(validate_redirect_uri("https://app.example/cb").is_ok());
        assert!(validate_redirect_uri("http://127.0.0.1:8000/cb").is_ok());
        assert!(validate_redirect_uri("http://[::1]/cb").is_ok());
        assert!(validate_redirect_uri("http://localhost:3000/cb").is_ok());
    }

    #[test]
    fn dangerous_schemes_are_refused() {
        assert!(refused("javascript:alert(1)"));
        assert!(refused("data:text/html,hi"));
        assert!(refused("custom:/cb"));
        assert!(validate_redirect_uri("com.example.app:/oauth2redirect").is_ok());
        assert!(refused("https://user:pw@app.example/cb"));
    }

    #[test]
    fn rfc8252_7_3_loopback_port_may_vary() {
        let reg = vec!["http://127.0.0.1/cb".to_string()];
        assert!(matches_registered("http://127.0.0.1:51234/cb", &reg));
        assert!(!matches_registered("http://127.0.0.1:51234/other", &reg));
        let reg = vec!["https://app.example/cb".to_string()];
        assert!(matches_registered("https://app.example/cb", &reg));
        assert!(!matches_registered("https://app.example/cb/", &reg));
        assert!(!matches_registered("https://app.example:443/cb?x=1", &reg));
    }

    proptest::proptest! {
        #[test]
        fn validation_never_panics(uri in "\\PC{0,80}") {
            let _ = validate_redirect_uri(&uri);
            let _ = matches_registered(&uri, &["https://a.example/cb".to_string()]);
        }
    }

    /// A registered URI whose port may not vary: https, a private-use
    /// scheme, or `localhost` (a name, not an IP literal: RFC 8252 §7.3's
    /// exception does not apply).
    fn fixed_port_uri() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let path = (
            prop::collection::vec("[a-zA-Z0-9._~-]{1,8}", 0..3),
            prop::option::of("[a-z]{1,4}=[a-z0-9]{0,4}"),
        )
            .prop_map(|(segments, query)| {
                let query = query.map(|q| format!("?{q}")).unwrap_or_default();
                format!("/{}{query}", segments.join("/"))
            });
        let port = prop::option::of(1u16..=65535)
            .prop_map(|p| p.map(|p| format!(":{p}")).unwrap_or_default());
        prop_oneof![
            (
                "[a-z0-9]{1,8}(\\.[a-z]{2,5}){1,2}",
                port.clone(),
                path.clone()
            )
                .prop_map(|(host, port, path)| format!("https://{host}{port}{path}")),
            ("[a-z]{2,5}\\.[a-z]{2,8}", path.clone())
                .prop_map(|(scheme, path)| format!("{scheme}:{path}")),
            (port, path).prop_map(|(port, path)| format!("http://localhost{port}{path}")),
        ]
    }

    /// `uri` with one near miss applied: a character changed, added or
    /// removed, a letter's case flipped, a trailing slash, an extra query.
    fn near_miss(uri: &str, kind: u8, at: usize, c: char) -> String {
        let mut chars: Vec<char> = uri.chars().collect();
        let n = chars.len();
        match kind % 6 {
            0 => chars[at % n] = c,
            1 => chars.insert(at % (n + 1), c),
            2 => {
                chars.remove(at % n);
            }
            3 => {
                let letters: Vec<usize> =
                    (0..n).filter(|&i| chars[i].is_ascii_alphabetic()).collect();
                let i = letters[at % letters.len()];
                chars[i] = if chars[i].is_ascii_lowercase() {
                    chars[i].to_ascii_uppercase()
                } else {
                    chars[i].to_ascii_lowercase()
                };
            }
            4 => chars.push('/'),
            _ => {
                chars.push(if uri.contains('?') { '&' } else { '?' });
                chars.extend("x=1".chars());
            }
        }
        chars.into_iter().collect()
    }

    proptest::proptest! {
        #[test]
        fn oauth21_no_near_miss_matches_a_fixed_port_registration(
            registered in fixed_port_uri(),
            kind in 0u8..6,
            at in proptest::prelude::any::<usize>(),
            c in proptest::prop_oneof![
                proptest::char::range('!', '~'),
                proptest::sample::select(vec![' ', '\t', '\n', '\u{0}', 'é']),
            ],
        ) {
            proptest::prop_assert!(validate_redirect_uri(&registered).is_ok(), "{}", registered);
            let sent = near_miss(&registered, kind, at, c);
            proptest::prop_assert_eq!(
                matches_registered(&sent, std::slice::from_ref(&registered)),
                sent == registered,
                "{:?} against {:?}", sent, registered
            );
        }

        #[test]
        fn rfc8252_7_3_any_port_matches_a_loopback_ip_registration(
            host in proptest::sample::select(vec!["127.0.0.1", "127.1.2.3", "[::1]"]),
            registered_port in proptest::option::of(1u16..=65535),
            port in 1u16..=65535,
            path in "(/[a-z0-9]{1,6}){0,3}(\\?[a-z]=[a-z0-9]{0,3})?",
        ) {
            let registered_port = registered_port.map(|p| format!(":{p}")).unwrap_or_default();
            let registered = format!("http://{host}{registered_port}{path}");
            proptest::prop_assert!(validate_redirect_uri(&registered).is_ok());
            let sent = format!("http://{host}:{port}{path}");
            proptest::prop_assert!(matches_registered(&sent, &[registered]));
        }
    }
}
