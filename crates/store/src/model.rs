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
