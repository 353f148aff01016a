//! What a use case can answer besides success.
//!
//! `OAuthError` (from `protocol`) carries only the codes the RFCs define.
//! Everything else a use case can run into is one more variant here: a
//! missing object, a conflicting one, a caller being braked, a bearer call
//! with no credentials at all, or an internal failure (already logged where
//! it happened, and never described to the caller). The HTTP edge maps
//! each variant to a status in one place.

use custos_protocol::OAuthError;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceError {
    /// An OAuth error (RFC 6749 §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2, …).
    OAuth(OAuthError),
    /// A bearer-protected call came with no credentials at all: on the wire
    /// `invalid_token` with a challenge that carries no error code (RFC
    /// 6750 §3.1).
    MissingCredentials(String),
    /// The addressed object does not exist (admin API, RFC 7592).
    NotFound(String),
    /// The object already exists, or changed while this request ran.
    Conflict(String),
    /// Too many failed attempts from this source; retry after this many
    /// seconds.
    Throttled {
        retry_after: u64,
        description: String,
    },
    /// RFC 9449 §8: the DPoP proof must carry this server nonce (sent back
    /// in the `DPoP-Nonce` header).
    UseDpopNonce { nonce: String, description: String },
    /// Something failed inside the server; logged where it happened.
    Internal,
}

impl ServiceError {
    pub fn missing_credentials(description: impl Into<String>) -> Self {
        ServiceError::MissingCredentials(description.into())
    }
    pub fn not_found(description: impl Into<String>) -> Self {
        ServiceError::NotFound(description.into())
    }
    pub fn conflict(description: impl Into<String>) -> Self {
        ServiceError::Conflict(description.into())
    }

    /// The OAuth error inside, if this is one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            ServiceError::OAuth(error) => Some(error),
            _ => None,
        }
    }

    /// The wire `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::OAuth(error) => error.code.as_str(),
            ServiceError::MissingCredentials(_) => "invalid_token",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::Throttled { .. } => "temporarily_unavailable",
            ServiceError::UseDpopNonce { .. } => "use_dpop_nonce",
            ServiceError::Internal => "server_error",
        }
    }

    /// The `error_description`.
    pub fn description(&self) -> &str {
        match self {
            ServiceError::OAuth(error) => &error.description,
            ServiceError::MissingCredentials(d)
            | ServiceError::NotFound(d)
            | ServiceError::Conflict(d)
            | ServiceError::Throttled { description: d, .. }
            | ServiceError::UseDpopNonce { description: d, .. } => d,
            ServiceError::Internal => "the server could not complete the request",
        }
    }
}

impl From<OAuthError> for ServiceError {
    fn from(error: OAuthError) -> Self {
        ServiceError::OAuth(error)
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.description())
    }
}

impl std::error::Error for ServiceError {}

/// Logs an internal failure and answers [`ServiceError::Internal`].
pub(crate) fn internal(error: impl fmt::Display) -> ServiceError {
    tracing::error!(error = %error, "internal error");
    ServiceError::Internal
}
