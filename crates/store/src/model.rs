//! Rows as the rest of custos sees them. Plain data, no behaviour.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A registered client. `metadata` is the validated RFC 7591 metadata as JSON
/// text; the store does not interpret it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub metadata_json: String,
    /// HMAC-SHA-256(pepper, secret) of the current secret, if any.
    pub secret_hash: Option<Vec<u8>>,
    pub secret_created_at: Option<i64>,
    /// The secret before the last rotation, valid until `previous_secret_expires_at`.
    pub previous_secret_hash: Option<Vec<u8>>,
    pub previous_secret_expires_at: Option<i64>,
    /// SHA-256 of the RFC 7592 registration access token.
    pub registration_token_hash: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
    /// Optimistic concurrency token. New clients are inserted with 1;
    /// [`ClientRepo::update_client`](crate::ClientRepo::update_client) writes
    /// only if the stored version still equals this one (the record was read
    /// at that version) and leaves the row at `version + 1`.
    pub version: i64,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("metadata_json", &self.metadata_json)
            .field(
                "secret_hash",
                &self.secret_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("secret_created_at", &self.secret_created_at)
            .field(
                "previous_secret_expires_at",
                &self.previous_secret_expires_at,
            )
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("disabled_at", &self.disabled_at)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A signing key. The private key is sealed (AES-256-GCM under the key
/// encryption key) by the service before it reaches the store.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// "ES256", "EdDSA" or "RS256".
    pub alg: String,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    pub sealed_private_key: Vec<u8>,
    pub created_at: i64,
    /// The key signs only from this time on (published before).
    pub activates_at: i64,
    /// Set when a newer key takes over: it stops signing at this time and
    /// stays published until every token it signed has expired.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// A protected resource (RFC 8707 target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    pub uri: String,
    pub scopes: Vec<String>,
    /// What policies see besides the URI (e.g. `sensitive`).
    pub tags: Vec<String>,
    pub created_at: i64,
}

/// An authorization details type (RFC 9396 §2), registered with the one
/// resource it belongs to. The name is unique on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailTypeRecord {
    pub type_name: String,
    /// The resource's URI.
    pub resource: String,
    /// The JSON Schema of one entry, as JSON text; not interpreted here.
    pub schema_json: String,
}

/// A request-time policy record (CONTRACT.md: `POST /admin/policies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// The operator's name for the record (`[A-Za-z0-9._:-]`, checked by
    /// the service).
    pub id: String,
    /// Cedar policy-set text, validated against the schema when added.
    pub cedar: String,
    pub created_at: i64,
}

/// A trusted issuer of workload identity (CONTRACT.md: `POST
/// /admin/trusted-issuers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuerRecord {
    pub id: String,
    /// `oidc` or `spiffe`.
    pub kind: String,
    /// The issuer URL (`oidc`) or trust domain (`spiffe`): unique.
    pub name: String,
    /// The validated registration, JSON.
    pub config_json: String,
    pub created_at: i64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub created_at: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// An RFC 7591 initial access token, stored as SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialAccessTokenRecord {
    pub token_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    pub description: Option<String>,
}

/// A revoked access token, remembered until it would have expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub jti: String,
    pub client_id: String,
    pub revoked_at: i64,
    pub expires_at: i64,
}

/// One person-to-client authorization, the family of its refresh tokens
/// (RFC 9700 §4.14.2). Revoking it ends every refresh token of the family;
/// callers treat access tokens issued from it as inactive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub grant_id: String,
    pub client_id: String,
    pub subject: String,
    /// Space-separated scope values.
    pub scope: String,
    /// RFC 8707 resource URIs.
    pub resources: Vec<String>,
    /// RFC 9449 JWK thumbprint the family is bound to, if any.
    pub dpop_jkt: Option<String>,
    pub created_at: i64,
    /// Absolute end of the family: no refresh token of it works from then on.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
    /// RFC 9396 `authorization_details` the person authorized, as JSON
    /// text; not interpreted here.
    pub authorization_details: Option<String>,
}

/// The reason [`GrantRepo::rotate_refresh_token`](crate::GrantRepo::rotate_refresh_token)
/// records when it revokes a family because a used refresh token came back.
pub const REFRESH_TOKEN_REUSED: &str = "refresh token reused";

/// An issued authorization code, stored as SHA-256 of the code.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub redirect_uri: String,
    /// The PKCE `code_challenge` (S256).
    pub code_challenge: String,
    pub subject: String,
    /// Space-separated scope values.
    pub scope: String,
    pub resources: Vec<String>,
    pub dpop_jkt: Option<String>,
    /// RFC 9396 `authorization_details` as JSON text; not interpreted here.
    pub authorization_details: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was redeemed; `None` while unused.
    pub consumed_at: Option<i64>,
    /// The grant its (first) redemption created.
    pub grant_id: Option<String>,
}

impl std::fmt::Debug for AuthorizationCodeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationCodeRecord")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("subject", &self.subject)
            .field("scope", &self.scope)
            .field("resources", &self.resources)
            .field("dpop_jkt", &self.dpop_jkt)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("consumed_at", &self.consumed_at)
            .field("grant_id", &self.grant_id)
            .finish_non_exhaustive()
    }
}

/// A refresh token, stored under a key derived from it (`token_hash`: its
/// issue time and SHA-256, or for earlier tokens the SHA-256 alone; see the
/// service's `refresh_token_value`), in the family (`grant_id`) it belongs
/// to.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: Vec<u8>,
    pub grant_id: String,
    pub client_id: String,
    /// Space-separated scope values.
    pub scope: String,
    pub created_at: i64,
    /// Idle expiry of this token (the family's absolute end is the grant's).
    pub expires_at: i64,
    /// When it was rotated; `None` while unused.
    pub used_at: Option<i64>,
}

impl std::fmt::Debug for RefreshTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshTokenRecord")
            .field("grant_id", &self.grant_id)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

/// What a person allowed a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub username: String,
    pub client_id: String,
    /// Normalized: sorted, deduplicated, space-separated (the store
    /// normalizes what it is given).
    pub scope: String,
    pub created_at: i64,
}

/// The answer of [`CodeRepo::redeem_code`](crate::CodeRepo::redeem_code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This call consumed the code; the record as stored now (`consumed_at`
    /// and `grant_id` set by this call).
    Redeemed(AuthorizationCodeRecord),
    /// The code was consumed before; its `grant_id` names the grant the
    /// first redemption created (RFC 9700 §4.5: revoke it).
    AlreadyRedeemed(AuthorizationCodeRecord),
    /// No such code, or it expired unused.
    Unknown,
}

/// The answer of [`GrantRepo::rotate_refresh_token`](crate::GrantRepo::rotate_refresh_token).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per refresh request, moved once and matched; boxing would only add an allocation to the common case"
)]
pub enum Rotation {
    /// The token was live (or, within the grace window, just rotated): `new` is stored.
    Rotated {
        /// The family the new token joined.
        grant_id: String,
        /// The presented token as stored now (`used_at` is this rotation's
        /// time, or the earlier rotation's within the grace window).
        old: RefreshTokenRecord,
        within_grace: bool,
    },
    /// Used before, past the grace window: its grant (family) has been revoked, in the same transaction.
    Reused {
        grant_id: String,
    },
    /// Known but expired (idle), or its grant is revoked or past its absolute expiry.
    Expired,
    /// Live, but the caller's check declined the request: nothing written.
    Declined,
    Unknown,
}
