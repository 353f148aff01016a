//! Client metadata (RFC 7591 §2) validated by OAuth 2.1's rules.
//!
//! `validate_registration` turns the JSON a client sends into the normalised
//! [`ClientMetadata`] custos stores, or the RFC 7591 §3.2.2 error that says
//! what is wrong. Defaults follow RFC 7591: `token_endpoint_auth_method`
//! `client_secret_basic`, `grant_types` `["authorization_code"]`,
//! `response_types` `["code"]` when the code grant is used.

use crate::names::{GRANT_AUTHORIZATION_CODE, GRANT_CLIENT_CREDENTIALS, GRANT_REFRESH_TOKEN};
use crate::redirect::{is_loopback, validate_redirect_uri};
use crate::scope::parse_scope;
use crate::OAuthError;
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};

/// Default access token lifetime in seconds (5 minutes).
pub const DEFAULT_ACCESS_TOKEN_LIFETIME: u32 = 300;
/// Longest access token lifetime a client may register (1 hour).
pub const MAX_ACCESS_TOKEN_LIFETIME: u32 = 3600;
/// At most this many redirect URIs per client.
pub const MAX_REDIRECT_URIS: usize = 32;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// RFC 8705 §2.1: a certificate chained to the server's client CA,
    /// carrying the registered subject DN or SAN.
    TlsClientAuth,
    /// RFC 8705 §2.2: a certificate registered in the client's `jwks`.
    SelfSignedTlsClientAuth,
    /// A token from a trusted issuer (Kubernetes, CI, SPIRE) whose `iss`
    /// and `sub` the client registered in `federated_credentials`.
    FederatedJwt,
    /// draft-ietf-oauth-spiffe-client-auth §3.1: a JWT-SVID.
    SpiffeJwt,
    /// draft-ietf-oauth-spiffe-client-auth §3.2: an X.509-SVID over mTLS.
    SpiffeX509,
    None,
}

impl AuthMethod {
    /// Every method this crate knows; the service advertises those it
    /// implements.
    pub const SUPPORTED: [AuthMethod; 9] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
        AuthMethod::FederatedJwt,
        AuthMethod::SpiffeJwt,
        AuthMethod::SpiffeX509,
        AuthMethod::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::TlsClientAuth => "tls_client_auth",
            AuthMethod::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            AuthMethod::FederatedJwt => "federated_jwt",
            AuthMethod::SpiffeJwt => "spiffe_jwt",
            AuthMethod::SpiffeX509 => "spiffe_x509",
            AuthMethod::None => "none",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::SUPPORTED.into_iter().find(|m| m.as_str() == text)
    }

    /// How much a successful authentication proves, for RFC 7592's "never
    /// weaken": nothing (public), a shared secret, a private key (held by
    /// the client, or attested by its platform).
    pub fn strength(self) -> u8 {
        match self {
            AuthMethod::None => 0,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => 1,
            AuthMethod::PrivateKeyJwt
            | AuthMethod::TlsClientAuth
            | AuthMethod::SelfSignedTlsClientAuth
            | AuthMethod::FederatedJwt
            | AuthMethod::SpiffeJwt
            | AuthMethod::SpiffeX509 => 2,
        }
    }

    /// Does this method authenticate with a server-issued shared secret?
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }

    /// Does the request carry no credential of this method in its body or
    /// headers — only `client_id`, the rest being what the TLS connection
    /// proves (or nothing, for public clients)? Such a method is told by
    /// the client's registration, not by the request.
    pub fn is_transport_bound(self) -> bool {
        matches!(
            self,
            AuthMethod::None
                | AuthMethod::TlsClientAuth
                | AuthMethod::SelfSignedTlsClientAuth
                | AuthMethod::SpiffeX509
        )
    }
}

/// Every grant type a client may register with some server configuration.
pub const REGISTRABLE_GRANT_TYPES: [&str; 4] = [
    GRANT_CLIENT_CREDENTIALS,
    GRANT_AUTHORIZATION_CODE,
    GRANT_REFRESH_TOKEN,
    crate::names::GRANT_JWT_BEARER,
];

/// Validated, normalised client metadata as stored and returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Space-separated scopes the client may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwkSet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// custos extension: lifetime of this client's access tokens, seconds.
    pub access_token_lifetime: u32,
    /// RFC 9449 §5.2: every token request of this client must carry a DPoP
    /// proof; its access tokens are always DPoP-bound.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// custos extension: a refresh token unused for this long expires,
    /// seconds (each rotation starts a new one).
    #[serde(default = "default_refresh_idle")]
    pub refresh_token_idle_lifetime: u32,
    /// custos extension: every refresh token of one authorization ends
    /// this long after the person consented, seconds.
    #[serde(default = "default_refresh_absolute")]
    pub refresh_token_absolute_lifetime: u32,
    /// custos extension: seconds after a rotation during which the
    /// rotated-out refresh token still rotates (for clients that race their
    /// own refreshes); 0, the default, is strict reuse detection.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_token_reuse_grace: u32,
    /// RFC 9126 §6: this client's authorization requests must be pushed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// custos extension (governance): the person or team answerable for
    /// the client. Set only with the admin token; policies see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// custos extension (governance): labels policies and the inventory
    /// see (e.g. `ci`, `agent`). Set only with the admin token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// custos extension (governance): days between reviews of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_interval: Option<u32>,
    /// RFC 9396 §10.2: the authorization details types the client uses.
    /// A token request (client credentials, where no person consents) may
    /// carry only these; at the authorization endpoint, when listed, only
    /// these may be asked of the person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types: Vec<String>,
    /// How the client's platform proves it (mTLS subject, SPIFFE ID,
    /// federated credentials) and whether its tokens are bound to its
    /// certificate.
    #[serde(flatten)]
    pub attestation: AttestationMetadata,
}

/// Default idle lifetime of a refresh token: 14 days.
pub const DEFAULT_REFRESH_IDLE: u32 = 14 * 86_400;
/// Default absolute lifetime of an authorization's refresh tokens: 30 days.
pub const DEFAULT_REFRESH_ABSOLUTE: u32 = 30 * 86_400;
/// Longest refresh token lifetime a client may have: 365 days.
pub const MAX_REFRESH_LIFETIME: u32 = 365 * 86_400;
/// Longest reuse grace: 60 s.
pub const MAX_REFRESH_REUSE_GRACE: u32 = 60;

fn default_refresh_idle() -> u32 {
    DEFAULT_REFRESH_IDLE
}

fn default_refresh_absolute() -> u32 {
    DEFAULT_REFRESH_ABSOLUTE
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl ClientMetadata {
    pub fn allows_grant(&self, grant_type: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant_type)
    }

    /// The registered scopes as a list (empty if none registered).
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .as_deref()
            .and_then(|s| parse_scope(s).ok())
            .unwrap_or_default()
    }
}

/// What a client sends: every field optional, unknown fields ignored
/// (RFC 7591 §2: the server MUST ignore metadata it does not understand).
#[derive(Debug, Deserialize)]
struct RawMetadata {
    redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    client_name: Option<String>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    scope: Option<String>,
    contacts: Option<Vec<String>>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<serde_json::Value>,
    software_id: Option<String>,
    software_version: Option<String>,
    access_token_lifetime: Option<u32>,
    dpop_bound_access_tokens: Option<bool>,
    refresh_token_idle_lifetime: Option<u32>,
    refresh_token_absolute_lifetime: Option<u32>,
    refresh_token_reuse_grace: Option<u32>,
    require_pushed_authorization_requests: Option<bool>,
    owner: Option<String>,
    tags: Option<Vec<String>>,
    review_interval: Option<u32>,
    authorization_details_types: Option<Vec<String>>,
    #[serde(flatten)]
    attestation: attestation::RawAttestation,
}

/// Deployment choices that registration validation depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRules {
    /// Accept a `jwks_uri` on loopback or a private address, and plain http
    /// on loopback (development and tests only).
    pub allow_private_jwks_uri: bool,
    /// Grant types a client may register: what the server's grant table
    /// serves (the service derives it).
    pub grant_types: Vec<&'static str>,
    /// Client authentication methods with an implementation.
    pub auth_methods: Vec<AuthMethod>,
}

impl Default for RegistrationRules {
    /// Every grant type and method this crate knows.
    fn default() -> Self {
        RegistrationRules {
            allow_private_jwks_uri: false,
            grant_types: REGISTRABLE_GRANT_TYPES.to_vec(),
            auth_methods: AuthMethod::SUPPORTED.to_vec(),
        }
    }
}

/// Validates registration metadata (RFC 7591 §2, OAuth 2.1).
pub fn validate_registration(
    json: &serde_json::Value,
    rules: &RegistrationRules,
) -> Result<ClientMetadata, OAuthError> {
    if !json.is_object() {
        return Err(OAuthError::invalid_client_metadata(
            "the registration request must be a JSON object",
        ));
    }
    let raw: RawMetadata = serde_json::from_value(json.clone()).map_err(|e| {
        OAuthError::invalid_client_metadata(format!("malformed client metadata: {e}"))
    })?;

    let method = match raw.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(text) => AuthMethod::parse(text)
            .filter(|m| rules.auth_methods.contains(m))
            .ok_or_else(|| {
                let supported: Vec<&str> = rules.auth_methods.iter().map(|m| m.as_str()).collect();
                OAuthError::invalid_client_metadata(format!(
                    "token_endpoint_auth_method '{}' is not supported; supported: {}",
                    short(text),
                    supported.join(", ")
                ))
            })?,
    };

    let grant_types = dedup(
        raw.grant_types
            .unwrap_or_else(|| vec![GRANT_AUTHORIZATION_CODE.to_owned()]),
    );
    if grant_types.is_empty() {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types must not be empty",
        ));
    }
    for grant in &grant_types {
        match grant.as_str() {
            "password" | "implicit" => {
                return Err(OAuthError::invalid_client_metadata(format!(
                    "grant type '{grant}' was removed by OAuth 2.1 and is not supported"
                )))
            }
            g if rules.grant_types.contains(&g) => {}
            other => {
                return Err(OAuthError::invalid_client_metadata(format!(
                    "grant type '{}' is not supported; supported: {}",
                    short(other),
                    rules.grant_types.join(", ")
                )))
            }
        }
    }
    let uses_code = grant_types.iter().any(|g| g == GRANT_AUTHORIZATION_CODE);

    let response_types = dedup(raw.response_types.unwrap_or_else(|| {
        if uses_code {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        }
    }));
    for response_type in &response_types {
        if response_type != "code" {
            return Err(OAuthError::invalid_client_metadata(format!(
                "response type '{}' is not supported: OAuth 2.1 allows only 'code'",
                short(response_type)
            )));
        }
    }
    if uses_code == response_types.is_empty() {
        return Err(OAuthError::invalid_client_metadata(
            "grant_types and response_types are inconsistent: the authorization_code grant goes with response type 'code' (RFC 7591 §2.1)",
        ));
    }
    if grant_types.iter().any(|g| g == GRANT_REFRESH_TOKEN) && !uses_code {
        return Err(OAuthError::invalid_client_metadata(
            "refresh_token is only issued with the authorization_code grant",
        ));
    }

    let redirect_uris = dedup(raw.redirect_uris.unwrap_or_default());
    if redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(OAuthError::invalid_redirect_uri(format!(
            "at most {MAX_REDIRECT_URIS} redirect_uris may be registered"
        )));
    }
    for uri in &redirect_uris {
        validate_redirect_uri(uri)?;
    }
    if uses_code && redirect_uris.is_empty() {
        return Err(OAuthError::invalid_redirect_uri(
            "the authorization_code grant requires at least one redirect_uri",
        ));
    }

    if method == AuthMethod::None && grant_types.iter().any(|g| g == GRANT_CLIENT_CREDENTIALS) {
        return Err(OAuthError::invalid_client_metadata(
            "a public client (token_endpoint_auth_method 'none') cannot use the client_credentials grant",
        ));
    }

    if raw.jwks.is_some() && raw.jwks_uri.is_some() {
        return Err(OAuthError::invalid_client_metadata(
            "jwks and jwks_uri must not both be present (RFC 7591 §2)",
        ));
    }
    let jwks = raw.jwks.map(|value| validate_jwks(&value)).transpose()?;
    if let Some(uri) = &raw.jwks_uri {
        validate_jwks_uri(uri, rules)?;
    }
    if method == AuthMethod::PrivateKeyJwt && jwks.is_none() && raw.jwks_uri.is_none() {
        return Err(OAuthError::invalid_client_metadata(
            "private_key_jwt requires jwks or jwks_uri",
        ));
    }

    let attestation = attestation::validate(method, raw.attestation, jwks.as_ref())?;

    let scope = match raw.scope {
        Some(text) => {
            let scopes = parse_scope(&text).map_err(|e| {
                OAuthError::invalid_client_metadata(format!("scope: {}", e.description))
            })?;
            (!scopes.is_empty()).then(|| scopes.join(" "))
        }
        None => None,
    };

    let access_token_lifetime = raw
        .access_token_lifetime
        .unwrap_or(DEFAULT_ACCESS_TOKEN_LIFETIME);
    if access_token_lifetime == 0 || access_token_lifetime > MAX_ACCESS_TOKEN_LIFETIME {
        return Err(OAuthError::invalid_client_metadata(format!(
            "access_token_lifetime must be between 1 and {MAX_ACCESS_TOKEN_LIFETIME} seconds"
        )));
    }

    for (name, value) in [
        ("client_uri", &raw.client_uri),
        ("logo_uri", &raw.logo_uri),
        ("tos_uri", &raw.tos_uri),
        ("policy_uri", &raw.policy_uri),
    ] {
        if let Some(uri) = value {
            validate_https_uri(name, uri, false)?;
        }
    }
    for (name, value) in [
        ("client_name", &raw.client_name),
        ("software_id", &raw.software_id),
        ("software_version", &raw.software_version),
    ] {
        if value
            .as_ref()
            .is_some_and(|v| v.len() > 256 || v.chars().any(char::is_control))
        {
            return Err(OAuthError::invalid_client_metadata(format!(
                "{name} must be at most 256 characters without control characters"
            )));
        }
    }
    let refresh_token_idle_lifetime = raw
        .refresh_token_idle_lifetime
        .unwrap_or(DEFAULT_REFRESH_IDLE);
    let refresh_token_absolute_lifetime = raw
        .refresh_token_absolute_lifetime
        .unwrap_or(DEFAULT_REFRESH_ABSOLUTE.max(refresh_token_idle_lifetime));
    if refresh_token_idle_lifetime == 0
        || refresh_token_absolute_lifetime > MAX_REFRESH_LIFETIME
        || refresh_token_idle_lifetime > refresh_token_absolute_lifetime
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "refresh_token_idle_lifetime must be at least 1 s and at most refresh_token_absolute_lifetime, which is at most {MAX_REFRESH_LIFETIME} s"
        )));
    }
    let refresh_token_reuse_grace = raw.refresh_token_reuse_grace.unwrap_or(0);
    if refresh_token_reuse_grace > MAX_REFRESH_REUSE_GRACE {
        return Err(OAuthError::invalid_client_metadata(format!(
            "refresh_token_reuse_grace must be at most {MAX_REFRESH_REUSE_GRACE} s"
        )));
    }
    let contacts = raw.contacts.unwrap_or_default();
    if contacts.len() > 16 || contacts.iter().any(|c| c.len() > 256) {
        return Err(OAuthError::invalid_client_metadata(
            "contacts: at most 16 entries of at most 256 characters",
        ));
    }
    if let Some(owner) = &raw.owner {
        if owner.trim().is_empty() || owner.len() > 256 || owner.chars().any(char::is_control) {
            return Err(OAuthError::invalid_client_metadata(
                "owner: 1 to 256 characters, no control characters",
            ));
        }
    }
    let tags = validate_tags(raw.tags.unwrap_or_default())
        .map_err(|message| OAuthError::invalid_client_metadata(format!("tags: {message}")))?;
    if raw.review_interval == Some(0) || raw.review_interval.is_some_and(|d| d > 3650) {
        return Err(OAuthError::invalid_client_metadata(
            "review_interval: 1 to 3650 days",
        ));
    }
    let authorization_details_types = raw.authorization_details_types.unwrap_or_default();
    if authorization_details_types.len() > MAX_AUTHORIZATION_DETAILS_TYPES {
        return Err(OAuthError::invalid_client_metadata(format!(
            "authorization_details_types: at most {MAX_AUTHORIZATION_DETAILS_TYPES} types"
        )));
    }
    if let Some(bad) = authorization_details_types
        .iter()
        .find(|t| !crate::rar::types::is_type_name(t))
    {
        return Err(OAuthError::invalid_client_metadata(format!(
            "authorization_details_types: '{}' is not a type name (1 to 128 printable ASCII characters, no spaces)",
            crate::error::echo(bad, 64)
        )));
    }
    let authorization_details_types = dedup(authorization_details_types);

    Ok(ClientMetadata {
        redirect_uris,
        token_endpoint_auth_method: method,
        grant_types,
        response_types,
        client_name: raw.client_name,
        client_uri: raw.client_uri,
        logo_uri: raw.logo_uri,
        scope,
        contacts,
        tos_uri: raw.tos_uri,
        policy_uri: raw.policy_uri,
        jwks_uri: raw.jwks_uri,
        jwks,
        software_id: raw.software_id,
        software_version: raw.software_version,
        access_token_lifetime,
        dpop_bound_access_tokens: raw.dpop_bound_access_tokens.unwrap_or(false),
        refresh_token_idle_lifetime,
        refresh_token_absolute_lifetime,
        refresh_token_reuse_grace,
        require_pushed_authorization_requests: raw
            .require_pushed_authorization_requests
            .unwrap_or(false),
        owner: raw.owner,
        tags,
        review_interval: raw.review_interval,
        authorization_details_types,
        attestation,
    })
}

/// Most authorization details types a client may list.
pub const MAX_AUTHORIZATION_DETAILS_TYPES: usize = 32;

/// Most tags a client or resource carries.
pub const MAX_TAGS: usize = 32;

/// Tags of a client or resource, as policies see them: at most
/// [`MAX_TAGS`], each 1 to 64 characters of `[A-Za-z0-9._:/-]`,
/// duplicates dropped, order kept.
pub fn validate_tags(tags: Vec<String>) -> Result<Vec<String>, String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags"));
    }
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for tag in tags {
        let valid = !tag.is_empty()
            && tag.len() <= 64
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b));
        if !valid {
            return Err(format!(
                "'{}' is not a tag: 1 to 64 characters of A-Z a-z 0-9 . _ : / -",
                tag.escape_debug()
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// A client's public keys: a JWK Set with no private key material.
pub fn validate_jwks(value: &serde_json::Value) -> Result<JwkSet, OAuthError> {
    let keys = value
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| {
            OAuthError::invalid_client_metadata("jwks must be a JWK Set: {\"keys\": [...]}")
        })?;
    if keys.is_empty() || keys.len() > 16 {
        return Err(OAuthError::invalid_client_metadata(
            "jwks must hold between 1 and 16 keys",
        ));
    }
    for key in keys {
        check_usable_key(key)?;
        for private_member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if key.get(private_member).is_some() {
                return Err(OAuthError::invalid_client_metadata(
                    "jwks must contain public keys only (a private or symmetric key member was found)",
                ));
            }
        }
    }
    serde_json::from_value(value.clone()).map_err(|e| {
        OAuthError::invalid_client_metadata(format!("jwks is not a valid JWK Set: {e}"))
    })
}

/// `jwks_uri`: https, on a public address unless the deployment allows
/// private ones (then http on loopback is accepted too).
fn validate_jwks_uri(uri: &str, rules: &RegistrationRules) -> Result<(), OAuthError> {
    validate_https_uri("jwks_uri", uri, rules.allow_private_jwks_uri)?;
    if rules.allow_private_jwks_uri {
        return Ok(());
    }
    let url = url::Url::parse(uri)
        .map_err(|_| OAuthError::invalid_client_metadata("jwks_uri must be an absolute URI"))?;
    let private = match url.host() {
        Some(url::Host::Ipv4(ip)) => !crate::address::is_public_ip(ip.into()),
        Some(url::Host::Ipv6(ip)) => !crate::address::is_public_ip(ip.into()),
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        None => true,
    };
    if private {
        return Err(OAuthError::invalid_client_metadata(
            "jwks_uri must be on a public address (this server does not fetch from loopback or private networks)",
        ));
    }
    Ok(())
}

/// A key custos can verify client assertions with: EC P-256/P-384, RSA of
/// at least 2048 bits, or Ed25519, with an `alg` (if given) that matches.
fn check_usable_key(key: &serde_json::Value) -> Result<(), OAuthError> {
    let text = |name: &str| key.get(name).and_then(|v| v.as_str());
    let unusable = |why: &str| OAuthError::invalid_client_metadata(format!("jwks: {why}"));
    let algs: &[&str] = match (text("kty"), text("crv")) {
        (Some("EC"), Some("P-256")) => &["ES256"],
        (Some("EC"), Some("P-384")) => &["ES384"],
        (Some("OKP"), Some("Ed25519")) => &["EdDSA", "Ed25519"],
        (Some("RSA"), _) => {
            let modulus_bits = text("n")
                .map(|n| n.trim_end_matches('=').len() * 6)
                .unwrap_or(0);
            if modulus_bits < 2040 {
                return Err(unusable("RSA keys must be at least 2048 bits"));
            }
            &["RS256", "RS384", "RS512", "PS256", "PS384"]
        }
        (Some("EC"), _) => return Err(unusable("EC keys must use curve P-256 or P-384")),
        (Some("OKP"), _) => return Err(unusable("OKP keys must use curve Ed25519")),
        _ => {
            return Err(unusable(
                "keys must be EC (P-256, P-384), RSA or OKP (Ed25519)",
            ))
        }
    };
    match text("alg") {
        Some(alg) if !algs.contains(&alg) => Err(unusable(&format!(
            "alg '{}' does not fit the key type",
            short(alg)
        ))),
        _ => Ok(()),
    }
}

fn validate_https_uri(name: &str, uri: &str, allow_loopback_http: bool) -> Result<(), OAuthError> {
    let url = url::Url::parse(uri).map_err(|_| {
        OAuthError::invalid_client_metadata(format!("{name} must be an absolute URI"))
    })?;
    let ok = url.scheme() == "https"
        || (allow_loopback_http && url.scheme() == "http" && is_loopback(&url));
    if !ok || url.host().is_none() || uri.len() > 2000 {
        return Err(OAuthError::invalid_client_metadata(format!(
            "{name} must be an https URI"
        )));
    }
    Ok(())
}

/// `list` without repeats, first occurrences kept in order.
pub fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn short(text: &str) -> String {
    crate::error::echo(text, 80)
}

pub mod attestation;
pub mod self_service;
pub use attestation::{AttestationMetadata, FederatedCredential};

#[cfg(test)]
mod tests;
