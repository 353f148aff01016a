//! Refusals: the error codes of RFC 6750 §3.1 and RFC 9449 §7.1, and the
//! `WWW-Authenticate` challenges that carry them, with the RFC 9728 §5.1
//! `resource_metadata` parameter that lets a client (an MCP client, say)
//! find the authorization server.

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::StatusCode;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// An error code of a refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// RFC 6750 §3.1: malformed request (e.g. two `Authorization`
    /// headers). 400.
    InvalidRequest,
    /// RFC 6750 §3.1: the token is expired, revoked, malformed, for
    /// another audience, or bound to a key the request did not prove. 401.
    InvalidToken,
    /// RFC 6750 §3.1: the token lacks a scope the request needs. 403.
    InsufficientScope,
    /// RFC 9449 §7.1: the DPoP proof is missing or invalid. 401.
    InvalidDpopProof,
}

impl ErrorCode {
    /// The registered name, e.g. `"invalid_token"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::InvalidDpopProof => "invalid_dpop_proof",
        }
    }

    /// The HTTP status that goes with it.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidToken | ErrorCode::InvalidDpopProof => StatusCode::UNAUTHORIZED,
            ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authentication scheme a token is presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `Authorization: Bearer <token>` (RFC 6750).
    Bearer,
    /// `Authorization: DPoP <token>` with a `DPoP` proof (RFC 9449).
    DPoP,
}

/// What every challenge of one verifier advertises.
#[derive(Debug)]
pub(crate) struct ChallengeParams {
    pub realm: Option<String>,
    pub resource_metadata: Option<String>,
    /// `algs` of the DPoP challenge, space-separated.
    pub dpop_algs: String,
    /// Whether Bearer tokens are accepted at all (DPoP always is).
    pub bearer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No credentials, or a scheme this resource does not know.
    Unauthenticated,
    Error(ErrorCode),
    /// The keys (or the replay store) could not be had.
    Unavailable,
    /// The server is set up wrong (e.g. an extractor with no verifier).
    Misconfigured,
}

/// A refused request: its status, `WWW-Authenticate` challenges and JSON
/// body. With the `axum` feature it is an `IntoResponse`; otherwise use
/// [`Rejection::to_http_response`].
#[derive(Debug, Clone)]
pub struct Rejection {
    kind: Kind,
    description: String,
    scheme: Option<Scheme>,
    scope: Option<String>,
    params: Arc<ChallengeParams>,
}

impl Rejection {
    pub(crate) fn unauthenticated(params: &Arc<ChallengeParams>, description: &str) -> Self {
        Self::build(Kind::Unauthenticated, description.into(), None, params)
    }

    pub(crate) fn error(
        params: &Arc<ChallengeParams>,
        code: ErrorCode,
        scheme: Option<Scheme>,
        description: impl Into<String>,
    ) -> Self {
        Self::build(Kind::Error(code), description.into(), scheme, params)
    }

    pub(crate) fn insufficient_scope(
        params: &Arc<ChallengeParams>,
        scheme: Option<Scheme>,
        required: &[&str],
    ) -> Self {
        let mut rejection = Self::error(
            params,
            ErrorCode::InsufficientScope,
            scheme,
            format!(
                "the token lacks a scope this request needs: {}",
                required.join(" ")
            ),
        );
        rejection.scope = Some(required.join(" "));
        rejection
    }

    pub(crate) fn unavailable(params: &Arc<ChallengeParams>, description: String) -> Self {
        Self::build(Kind::Unavailable, description, None, params)
    }

    /// A 500 refusal for a server set up wrong (e.g. a route that needs a
    /// token but was given no verifier), for framework integrations.
    pub fn misconfigured(description: &str) -> Self {
        let params = Arc::new(ChallengeParams {
            realm: None,
            resource_metadata: None,
            dpop_algs: String::new(),
            bearer: true,
        });
        Self::build(Kind::Misconfigured, description.into(), None, &params)
    }

    fn build(
        kind: Kind,
        description: String,
        scheme: Option<Scheme>,
        params: &Arc<ChallengeParams>,
    ) -> Self {
        Rejection {
            kind,
            description,
            scheme,
            scope: None,
            params: Arc::clone(params),
        }
    }

    /// The HTTP status: 400, 401, 403, 500 (misconfigured server) or 503
    /// (the issuer's keys could not be fetched).
    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Error(code) => code.status(),
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error code; `None` when the request carried no credentials
    /// (RFC 6750 §3.1: then the challenge has no error code) or the server
    /// could not decide.
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self.kind {
            Kind::Error(code) => Some(code),
            _ => None,
        }
    }

    /// Why, in words (sent as `error_description`).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The scopes an `insufficient_scope` refusal asks for.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The `WWW-Authenticate` challenges, one header value each: the scheme
    /// the error concerns first, then the other schemes accepted. Each
    /// carries `resource_metadata` when the verifier knows its metadata
    /// URL; the `DPoP` one carries `algs`. Empty for 500 and 503.
    ///
    /// For example `Bearer error="invalid_token", error_description="the
    /// token expired", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`.
    pub fn challenges(&self) -> Vec<String> {
        let (Kind::Error(_) | Kind::Unauthenticated) = self.kind else {
            return Vec::new();
        };
        let offered = |scheme: &Scheme| *scheme == Scheme::DPoP || self.params.bearer;
        let concerned = self
            .scheme
            .filter(offered)
            .unwrap_or(if self.params.bearer {
                Scheme::Bearer
            } else {
                Scheme::DPoP
            });
        let mut out = vec![self.challenge(concerned, true)];
        for other in [Scheme::Bearer, Scheme::DPoP] {
            if other != concerned && offered(&other) {
                out.push(self.challenge(other, false));
            }
        }
        out
    }

    fn challenge(&self, scheme: Scheme, with_error: bool) -> String {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(realm) = &self.params.realm {
            params.push(("realm", realm.clone()));
        }
        if let (true, Kind::Error(code)) = (with_error, self.kind) {
            params.push(("error", code.as_str().to_owned()));
            if !self.description.is_empty() {
                params.push(("error_description", description_chars(&self.description)));
            }
            if let Some(scope) = &self.scope {
                params.push(("scope", scope.clone()));
            }
        }
        if scheme == Scheme::DPoP {
            params.push(("algs", self.params.dpop_algs.clone()));
        }
        if let Some(url) = &self.params.resource_metadata {
            params.push(("resource_metadata", url.clone()));
        }
        let mut out = String::from(match scheme {
            Scheme::Bearer => "Bearer",
            Scheme::DPoP => "DPoP",
        });
        for (i, (name, value)) in params.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            out.push_str(name);
            out.push_str("=\"");
            out.push_str(&quoted(value));
            out.push('"');
        }
        out
    }

    /// The JSON body: `error` and `error_description` (and `scope`).
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        let error = match self.kind {
            Kind::Error(code) => Some(code.as_str()),
            Kind::Unauthenticated => None,
            Kind::Unavailable => Some("temporarily_unavailable"),
            Kind::Misconfigured => Some("server_error"),
        };
        if let Some(error) = error {
            body.insert("error".into(), error.into());
        }
        body.insert("error_description".into(), self.description.clone().into());
        if let Some(scope) = &self.scope {
            body.insert("scope".into(), scope.clone().into());
        }
        Value::Object(body)
    }

    /// The whole response, for any framework built on the `http` crate.
    pub fn to_http_response(&self) -> http::Response<String> {
        let mut response = http::Response::new(self.body().to_string());
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        for challenge in self.challenges() {
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                headers.append(WWW_AUTHENTICATE, value);
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.kind == Kind::Unavailable {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Error(code) => write!(f, "{code}: {}", self.description),
            _ => f.write_str(&self.description),
        }
    }
}

impl std::error::Error for Rejection {}

/// RFC 6749 §5.2: `error_description` is printable ASCII without `"` and `\`.
fn description_chars(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .collect()
}

/// The content of an RFC 9110 §5.6.4 quoted-string: printable ASCII, with
/// `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(bearer: bool) -> Arc<ChallengeParams> {
        Arc::new(ChallengeParams {
            realm: None,
            resource_metadata: Some(
                "https://api.example/.well-known/oauth-protected-resource".into(),
            ),
            dpop_algs: "ES256 EdDSA".into(),
            bearer,
        })
    }

    #[test]
    fn rfc6750_3_1_no_credentials_no_error_code() {
        let rejection = Rejection::unauthenticated(&params(true), "no token");
        assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(rejection.error_code(), None);
        assert_eq!(
            rejection.challenges(),
            [
                r#"Bearer resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
                r#"DPoP algs="ES256 EdDSA", resource_metadata="https://api.example/.well-known/oauth-protected-resource""#,
            ]
        );
        assert!(rejection.body().get("error").is_none());
    }

    #[test]
    fn the_error_goes_on_the_scheme_used() {
        let rejection = Rejection::error(
            &params(true),
            ErrorCode::InvalidDpopProof,
            Some(Scheme::DPoP),
            "bad \"proof\"\n",
        );
        let challenges = rejection.challenges();
        assert!(challenges[0].starts_with(
            r#"DPoP error="invalid_dpop_proof", error_description="bad 'proof'?", algs="ES256 EdDSA""#
        ));
        assert!(!challenges[1].contains("error"));
        assert!(challenges[1].starts_with("Bearer "));
        // Bearer not accepted: the error moves to DPoP, Bearer is not offered.
        let rejection = Rejection::error(
            &params(false),
            ErrorCode::InvalidToken,
            Some(Scheme::Bearer),
            "DPoP required",
        );
        let challenges = rejection.challenges();
        assert_eq!(challenges.len(), 1);
        assert!(challenges[0].starts_with(r#"DPoP error="invalid_token""#));
    }

    #[test]
    fn insufficient_scope_is_403_with_scope() {
        let rejection =
            Rejection::insufficient_scope(&params(true), Some(Scheme::Bearer), &["a", "b"]);
        assert_eq!(rejection.status(), StatusCode::FORBIDDEN);
        assert!(rejection.challenges()[0].contains(r#"scope="a b""#));
        assert_eq!(rejection.body()["scope"], "a b");
        let response = rejection.to_http_response();
        assert_eq!(response.status(), 403);
        assert_eq!(
            response.headers().get_all(WWW_AUTHENTICATE).iter().count(),
            2
        );
    }

    #[test]
    fn unavailable_has_no_challenge() {
        let rejection = Rejection::unavailable(&params(true), "keys".into());
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(rejection.challenges().is_empty());
        assert_eq!(rejection.body()["error"], "temporarily_unavailable");
        assert!(rejection
            .to_http_response()
            .headers()
            .contains_key("retry-after"));
    }

    #[test]
    fn quoting_escapes() {
        assert_eq!(quoted(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(quoted("é\r"), "??");
    }
}
