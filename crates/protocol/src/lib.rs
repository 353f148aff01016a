//! The OAuth 2.1 protocol core of custos: pure functions from facts to
//! decisions.
//!
//! Architecture invariant: nothing here performs I/O, reads a clock, draws
//! randomness or reads the environment. Time (`now`, seconds since the Unix
//! epoch), random values (token ids) and keys are arguments. Nothing here
//! `.await`s. That makes every rule testable by a table and fuzzable.
//!
//! Workload attestation follows the same rule: `spiffe` (SPIFFE IDs,
//! bundles, X.509-SVID verification) and `x509` (RFC 8705 mutual-TLS client
//! authentication and `x5t#S256`) take the client certificate chain the TLS
//! layer saw as DER bytes, and bundles as the bytes someone else fetched.

pub mod access_token;
pub mod address;
pub mod authorize;
pub mod cimd;
pub mod client_auth;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod federation;
pub mod form;
pub mod grant;
pub mod introspection;
pub mod jws;
pub mod metadata;
pub mod pkce;
pub mod rar;
pub mod redirect;
pub mod scope;
pub mod spiffe;
pub mod x509;

#[cfg(test)]
mod test_keys;

pub use error::{ErrorCode, OAuthError};

/// Registered extension grant and assertion type names.
pub mod names {
    pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
    pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
    pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
    /// RFC 7523 §2.1.
    pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    /// RFC 8693 §2.1.
    pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
    /// RFC 8693 §3: an OAuth access token issued by the given authorization server.
    pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    /// RFC 8693 §3: a JWT (RFC 7519).
    pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    /// draft-ietf-oauth-spiffe-client-auth §3.1.
    pub const CLIENT_ASSERTION_TYPE_JWT_SPIFFE: &str =
        "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe";
    pub const CLIENT_ASSERTION_TYPE_JWT_BEARER: &str =
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
}
