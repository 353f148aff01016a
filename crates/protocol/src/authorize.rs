//! The authorization request (draft-ietf-oauth-v2-1 §4.1.1) and its
//! response (§4.1.2, RFC 9207).
//!
//! The endpoint works in two steps, because what may be redirected depends
//! on what is already known (RFC 6749 §4.1.2.1, RFC 9700 §4.1):
//!
//! 1. [`client_and_redirect`] reads `client_id` and `redirect_uri`;
//!    the caller loads the client and [`resolve_redirect_uri`] holds the
//!    URI to its registration. Every error up to here is shown to the
//!    person on a page and never redirected: the redirect URI is not
//!    verified yet (an open redirector otherwise).
//! 2. [`validate`] checks everything else. Its errors go back to the
//!    client at the resolved redirect URI ([`error_redirect`], with `state`
//!    and `iss`); success, after the person's consent, goes back with the
//!    code ([`success_redirect`]).
//!
//! OAuth 2.1 narrows OAuth 2.0 here: `response_type=code` only (no token
//! ever travels in a URL, RFC 9700 §2.1.2), PKCE required with `S256`
//! (RFC 9700 §2.1.1), redirect URIs matched exactly (§2.1; RFC 8252 §7.3's
//! loopback port the one exception), the issuer in every response
//! (RFC 9207, against mix-up, RFC 9700 §4.4).

use crate::error::echo;
use crate::form::FormParams;
use crate::grant::parse_resources;
use crate::metadata::ClientMetadata;
use crate::names::GRANT_AUTHORIZATION_CODE;
use crate::pkce::{is_sha256_base64url, is_valid_challenge};
use crate::redirect::matches_registered;
use crate::scope::parse_scope;
use crate::{ErrorCode, OAuthError};
use url::Url;

/// Longest `state` accepted, characters.
pub const MAX_STATE_LENGTH: usize = 1024;
/// Longest `client_id` read, characters (no registered id comes near).
pub const MAX_CLIENT_ID_LENGTH: usize = 256;
/// Longest `error_description` put in a redirect, characters.
const MAX_REDIRECTED_DESCRIPTION: usize = 512;
/// Longest request text echoed in an error description, characters.
const ECHO_CHARS: usize = 64;

/// What decides whether errors may be redirected: the client and the
/// redirect URI as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAndRedirect {
    pub client_id: String,
    pub redirect_uri: Option<String>,
}

/// Reads `client_id` (required) and `redirect_uri` (optional) only; errors
/// here are shown on a page, never redirected.
pub fn client_and_redirect(form: &FormParams) -> Result<ClientAndRedirect, OAuthError> {
    let client_id = read_client_id(form)?;
    Ok(ClientAndRedirect {
        client_id: client_id.to_owned(),
        redirect_uri: form.get("redirect_uri").map(str::to_owned),
    })
}

fn read_client_id(form: &FormParams) -> Result<&str, OAuthError> {
    let client_id = form.require("client_id")?;
    if client_id.chars().count() > MAX_CLIENT_ID_LENGTH {
        return Err(OAuthError::invalid_request(format!(
            "client_id is longer than {MAX_CLIENT_ID_LENGTH} characters"
        )));
    }
    Ok(client_id)
}

/// The redirect URI to use: the one sent if it matches a registered one
/// exactly (`redirect::matches_registered`, incl. RFC 8252 §7.3 loopback
/// port), or the only registered one when none was sent; else an error to
/// show on a page (never redirect to an unverified URI).
///
/// Stricter than `matches_registered` alone: a loopback URI that is not
/// character for character a registered one must differ from it in the port
/// and nowhere else (no scheme or host case, IPv6 spelling, dot segment or
/// stripped tab that the URL parser would normalize away).
pub fn resolve_redirect_uri(
    sent: Option<&str>,
    registered: &[String],
) -> Result<String, OAuthError> {
    match sent {
        Some(uri) => {
            let matches = registered.iter().any(|r| {
                r == uri
                    || (differs_only_in_port(uri, r)
                        && matches_registered(uri, std::slice::from_ref(r)))
            });
            if matches {
                Ok(uri.to_owned())
            } else {
                Err(OAuthError::invalid_request(
                    "redirect_uri does not match any redirect URI registered for this client (draft-ietf-oauth-v2-1 section 4.1.1: exact match)",
                ))
            }
        }
        None => match registered {
            [only] => Ok(only.clone()),
            [] => Err(OAuthError::invalid_request(
                "this client has no registered redirect URI",
            )),
            _ => Err(OAuthError::invalid_request(
                "redirect_uri is required: this client registered more than one",
            )),
        },
    }
}

/// Is `sent` an `http` URI that is `registered` with only the port added,
/// removed or changed, textually? (Whether the host is a loopback IP
/// literal, RFC 8252 §7.3, is `matches_registered`'s check.)
fn differs_only_in_port(sent: &str, registered: &str) -> bool {
    match (split_port(sent), split_port(registered)) {
        (Some((host, _, rest)), Some((reg_host, _, reg_rest))) => {
            host == reg_host && rest == reg_rest
        }
        _ => false,
    }
}

/// `http://host[:port]rest` → (`host`, `port`, `rest`), the port 1–5 ASCII
/// digits when present.
fn split_port(uri: &str) -> Option<(&str, Option<&str>, &str)> {
    let after = uri.strip_prefix("http://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, tail) = authority.split_at(close + 1);
        match tail {
            "" => (host, None),
            _ => (host, Some(tail.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    Some((host, port, rest))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// Resolved by [`resolve_redirect_uri`].
    pub redirect_uri: String,
    /// As requested; empty when `scope` was absent (the client's registered
    /// scopes apply).
    pub scopes: Vec<String>,
    pub state: Option<String>,
    /// An `S256` challenge (RFC 7636 §4.2).
    pub code_challenge: String,
    /// RFC 8707 resource indicators.
    pub resources: Vec<String>,
    /// RFC 9449 §10: the thumbprint of the DPoP key the code is bound to.
    pub dpop_jkt: Option<String>,
}

/// Full validation once the client is known and the redirect URI resolved.
/// Errors are redirected (the caller adds `state` and `iss`):
///
/// - `response_type` exactly `code` (§4.1.1; any response type that
///   contains `token` is refused saying why: tokens never go in URLs);
/// - `response_mode` absent or `query`;
/// - `code_challenge` required and an `S256` challenge;
///   `code_challenge_method` required and `S256` (absent would mean `plain`,
///   RFC 7636 §4.3, which OAuth 2.1 servers need not and custos does not
///   support) → `invalid_request`;
/// - the client registered for `authorization_code` → else
///   `unauthorized_client`;
/// - every requested scope registered for the client → else `invalid_scope`;
/// - `resource`: absolute URIs without a fragment → else `invalid_target`;
/// - `dpop_jkt`, if present, a SHA-256 JWK thumbprint (43 base64url
///   characters) → else `invalid_request`;
/// - `state` at most [`MAX_STATE_LENGTH`] characters → else `invalid_request`.
///
/// `request` and `request_uri` (PAR, JAR) are the caller's; repeated
/// parameters were already refused by [`FormParams`].
pub fn validate(
    form: &FormParams,
    client: &ClientMetadata,
    redirect_uri: String,
) -> Result<AuthorizationRequest, OAuthError> {
    let client_id = read_client_id(form)?;

    let state = form.get("state");
    if state.is_some_and(|s| s.chars().count() > MAX_STATE_LENGTH) {
        return Err(OAuthError::invalid_request(format!(
            "state is longer than {MAX_STATE_LENGTH} characters"
        )));
    }

    let response_type = form.require("response_type")?;
    if response_type != "code" {
        return Err(if response_type.contains("token") {
            unsupported_response_type(format!(
                "response_type '{}' is not supported: OAuth 2.1 never returns tokens from the authorization endpoint (tokens never go in URLs); use response_type=code",
                echo(response_type, ECHO_CHARS)
            ))
        } else {
            unsupported_response_type(format!(
                "response_type '{}' is not supported; supported: code",
                echo(response_type, ECHO_CHARS)
            ))
        });
    }
    if !client.allows_grant(GRANT_AUTHORIZATION_CODE) {
        return Err(OAuthError::unauthorized_client(
            "this client is not registered for the authorization_code grant",
        ));
    }

    match form.get("response_mode") {
        None | Some("query") => {}
        Some(mode) => {
            return Err(OAuthError::invalid_request(format!(
                "response_mode '{}' is not supported; supported: query",
                echo(mode, ECHO_CHARS)
            )))
        }
    }

    let code_challenge = form.get("code_challenge").ok_or_else(|| {
        OAuthError::invalid_request(
            "code_challenge is required (PKCE, draft-ietf-oauth-v2-1 section 4.1.1)",
        )
    })?;
    match form.get("code_challenge_method") {
        Some("S256") => {}
        None => return Err(OAuthError::invalid_request(
            "code_challenge_method=S256 is required (absent means plain, which is not supported)",
        )),
        Some("plain") => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method 'plain' is not supported; use S256",
            ))
        }
        Some(method) => {
            return Err(OAuthError::invalid_request(format!(
                "code_challenge_method '{}' is not supported; supported: S256",
                echo(method, ECHO_CHARS)
            )))
        }
    }
    if !is_valid_challenge(code_challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge must be 43 base64url characters: BASE64URL(SHA256(code_verifier)) (RFC 7636 section 4.2)",
        ));
    }

    let scopes = form
        .get("scope")
        .map(parse_scope)
        .transpose()?
        .unwrap_or_default();
    let registered = client.scopes();
    if let Some(bad) = scopes.iter().find(|s| !registered.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "scope '{}' is not registered for this client",
            echo(bad, ECHO_CHARS)
        )));
    }

    let resources = parse_resources(form)?;

    let dpop_jkt = form.get("dpop_jkt");
    if dpop_jkt.is_some_and(|jkt| !is_sha256_base64url(jkt)) {
        return Err(OAuthError::invalid_request(
            "dpop_jkt must be a SHA-256 JWK thumbprint: 43 base64url characters (RFC 9449 section 10)",
        ));
    }

    Ok(AuthorizationRequest {
        client_id: client_id.to_owned(),
        redirect_uri,
        scopes,
        state: state.map(str::to_owned),
        code_challenge: code_challenge.to_owned(),
        resources,
        dpop_jkt: dpop_jkt.map(str::to_owned),
    })
}

/// RFC 6749 §4.1.2.1 `unsupported_response_type`.
fn unsupported_response_type(description: String) -> OAuthError {
    OAuthError::new(ErrorCode::UnsupportedResponseType, description)
}

/// RFC 6749 §4.1.2 + RFC 9207: `redirect_uri` with `code`, `state`
/// (untouched) and `iss` added to its query (keeping its own query),
/// properly percent-encoded (`application/x-www-form-urlencoded`,
/// Appendix B).
pub fn success_redirect(
    redirect_uri: &str,
    code: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![("code", code)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

/// §4.1.2.1 + RFC 9207: `error`, `error_description` (sanitized to the RFC
/// 6749 §5.2 set), `state`, `iss`.
pub fn error_redirect(
    redirect_uri: &str,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let description = sanitize_description(&error.description);
    let mut pairs: Vec<(&str, &str)> = vec![("error", error.code.as_str())];
    if !description.is_empty() {
        pairs.push(("error_description", &description));
    }
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}

/// RFC 6749 §5.2: `error_description` characters are %x20-21 / %x23-5B /
/// %x5D-7E; anything else is dropped, and the text is cut to
/// [`MAX_REDIRECTED_DESCRIPTION`] characters.
pub fn sanitize_description(description: &str) -> String {
    description
        .chars()
        .filter(|c| matches!(*c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
        .take(MAX_REDIRECTED_DESCRIPTION)
        .collect()
}

/// `uri` with `pairs` appended to its query (RFC 6749 §3.1.2: the
/// endpoint's own query is retained). A URI the parser refuses cannot have
/// come through [`resolve_redirect_uri`]; it gets the pairs appended
/// textually all the same.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        Err(_) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            let separator = match uri.find('?') {
                None => "?",
                Some(i) if i + 1 == uri.len() || uri.ends_with('&') => "",
                Some(_) => "&",
            };
            format!("{uri}{separator}{query}")
        }
    }
}

#[cfg(test)]
mod tests;
