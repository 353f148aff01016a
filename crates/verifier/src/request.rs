//! What the verifier needs of a request, independent of any framework.

use crate::challenge::Scheme;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Header<'a> {
    #[default]
    Absent,
    One(&'a str),
    /// More than one field, or a value that is not visible ASCII.
    Invalid,
}

impl<'a> Header<'a> {
    fn add(self, value: &'a str) -> Self {
        match self {
            Header::Absent => Header::One(value),
            _ => Header::Invalid,
        }
    }
}

/// The parts of an HTTP request that carry credentials.
///
/// ```
/// use custos_verifier::Request;
///
/// let request = Request::new("POST", "https://mcp.example.com/mcp")
///     .authorization("DPoP eyJ...")
///     .dpop("eyJ...");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
    pub(crate) authorization: Header<'a>,
    pub(crate) dpop: Header<'a>,
    pub(crate) client_certificate: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    /// A request with its method (e.g. `"GET"`) and the absolute URL it was
    /// sent to, as clients know the server (scheme and host of the public
    /// address, not of a proxy's backend). Query and fragment are ignored.
    pub fn new(method: &'a str, url: &'a str) -> Self {
        Request {
            method,
            url,
            ..Request::default()
        }
    }

    /// Adds an `Authorization` header value. Call once per header field:
    /// a request with two is refused (`invalid_request`).
    pub fn authorization(mut self, value: &'a str) -> Self {
        self.authorization = self.authorization.add(value);
        self
    }

    /// Adds a `DPoP` header value. Call once per header field: a request
    /// with two is refused (RFC 9449 §4.3 check 1).
    pub fn dpop(mut self, value: &'a str) -> Self {
        self.dpop = self.dpop.add(value);
        self
    }

    /// The client certificate (DER) of the mutual-TLS connection the
    /// request came on, for tokens bound to it (RFC 8705 §3).
    pub fn client_certificate(mut self, der: &'a [u8]) -> Self {
        self.client_certificate = Some(der);
        self
    }

    /// Reads `Authorization` and `DPoP` from a header map (every field of
    /// each, so duplicates are noticed).
    pub fn with_headers(mut self, headers: &'a http::HeaderMap) -> Self {
        for (name, slot) in [
            (http::header::AUTHORIZATION, &mut self.authorization),
            (http::HeaderName::from_static("dpop"), &mut self.dpop),
        ] {
            for value in headers.get_all(name) {
                *slot = match value.to_str() {
                    Ok(text) => slot.add(text),
                    Err(_) => Header::Invalid,
                };
            }
        }
        self
    }
}

/// What the `Authorization` header says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credentials<'a> {
    /// No header, or a scheme other than Bearer and DPoP (RFC 6750 §3.1:
    /// answered like no credentials).
    None,
    /// A scheme this resource understands with its token.
    Token(Scheme, &'a str),
    /// Malformed: `invalid_request`.
    Malformed(&'static str),
}

/// RFC 6750 §2.1 / RFC 9449 §7.1: `scheme 1*SP token68`, the scheme
/// case-insensitive; values longer than `max_len` bytes are refused unread.
pub(crate) fn credentials(authorization: Header<'_>, max_len: usize) -> Credentials<'_> {
    let value = match authorization {
        Header::Absent => return Credentials::None,
        Header::Invalid => {
            return Credentials::Malformed(
                "send exactly one Authorization header, of visible ASCII",
            )
        }
        Header::One(value) => value,
    };
    if value.len() > max_len {
        return Credentials::Malformed("the Authorization header is too long");
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::DPoP
    } else {
        return Credentials::None;
    };
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Credentials::Malformed("the Authorization header has no token");
    }
    // token68 (RFC 9110 §11.2).
    let body = token.trim_end_matches('=');
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        return Credentials::Malformed("the token in the Authorization header is not a token68");
    }
    Credentials::Token(scheme, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Credentials<'_> {
        credentials(Header::One(value), 1000)
    }

    #[test]
    fn rfc6750_2_1_and_rfc9449_7_1_schemes() {
        assert_eq!(
            parse("Bearer abc.def"),
            Credentials::Token(Scheme::Bearer, "abc.def")
        );
        assert_eq!(
            parse("bearer   abc"),
            Credentials::Token(Scheme::Bearer, "abc")
        );
        assert_eq!(
            parse("DPoP abc=="),
            Credentials::Token(Scheme::DPoP, "abc==")
        );
        assert_eq!(parse("dpop abc"), Credentials::Token(Scheme::DPoP, "abc"));
        assert_eq!(parse("Basic dXNlcjpwYXNz"), Credentials::None);
        assert_eq!(credentials(Header::Absent, 1000), Credentials::None);
        for bad in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "DPoP a\"b",
            "Bearer =a",
        ] {
            assert!(matches!(parse(bad), Credentials::Malformed(_)), "{bad}");
        }
        assert!(matches!(
            credentials(Header::Invalid, 1000),
            Credentials::Malformed(_)
        ));
        let long = format!("Bearer {}", "a".repeat(1000));
        assert!(matches!(parse(&long), Credentials::Malformed(_)));
    }

    #[test]
    fn duplicate_headers_are_noticed() {
        let request = Request::new("GET", "https://x")
            .authorization("Bearer a")
            .authorization("Bearer b");
        assert_eq!(request.authorization, Header::Invalid);
        let mut headers = http::HeaderMap::new();
        headers.append("dpop", "p1".parse().unwrap());
        headers.append("dpop", "p2".parse().unwrap());
        headers.append("authorization", "Bearer a".parse().unwrap());
        let request = Request::new("GET", "https://x").with_headers(&headers);
        assert_eq!(request.dpop, Header::Invalid);
        assert_eq!(request.authorization, Header::One("Bearer a"));
    }
}
