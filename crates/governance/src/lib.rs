//! Governance: what custos records about what it did.
//!
//! An [`AuditEvent`] describes one issuance, refusal or administrative act.
//! Architecture invariant: an event never carries a token, secret, assertion
//! or password — only identifiers, decisions and reasons. The types here are
//! plain data; the store persists them and the service decides what to record.

use serde::{Deserialize, Serialize};

/// The outcome an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

/// Event types, as stored and as filtered on by `GET /admin/events?type=`.
pub mod event_type {
    pub const TOKEN_ISSUED: &str = "token.issued";
    pub const TOKEN_REFUSED: &str = "token.refused";
    pub const TOKEN_REVOKED: &str = "token.revoked";
    pub const TOKEN_INTROSPECTED: &str = "token.introspected";
    pub const CLIENT_REGISTERED: &str = "client.registered";
    pub const CLIENT_UPDATED: &str = "client.updated";
    pub const CLIENT_DELETED: &str = "client.deleted";
    pub const CLIENT_SECRET_ROTATED: &str = "client.secret_rotated";
    pub const REGISTRATION_REFUSED: &str = "client.registration_refused";
    pub const MANAGEMENT_REFUSED: &str = "client.management_refused";
    pub const KEY_ROTATED: &str = "key.rotated";
    pub const ADMIN_REFUSED: &str = "admin.refused";
    pub const USER_CREATED: &str = "user.created";
    pub const RESOURCE_CREATED: &str = "resource.created";
    pub const TRUSTED_ISSUER_CREATED: &str = "trusted_issuer.created";
    pub const TRUSTED_ISSUER_DELETED: &str = "trusted_issuer.deleted";
    pub const POLICY_CREATED: &str = "policy.created";
    pub const POLICY_DELETED: &str = "policy.deleted";
    pub const AUDIT_PRUNED: &str = "audit.pruned";
    /// An authorization request refused (error page or error redirect).
    pub const AUTHORIZATION_REFUSED: &str = "authorization.refused";
    pub const LOGIN_SUCCEEDED: &str = "login.succeeded";
    pub const LOGIN_FAILED: &str = "login.failed";
    pub const CONSENT_GRANTED: &str = "consent.granted";
    pub const CONSENT_DENIED: &str = "consent.denied";
    pub const CONSENT_REVOKED: &str = "consent.revoked";
    pub const CODE_ISSUED: &str = "code.issued";
    /// A second redemption of a code: the tokens of its first are revoked.
    pub const CODE_REUSED: &str = "code.reused";
    /// A rotated-out refresh token presented again: its family is revoked.
    pub const REFRESH_TOKEN_REUSED: &str = "refresh_token.reused";
}

/// One audit record. `id` is assigned by the store (monotonic per store);
/// `time_ms` is milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(default)]
    pub id: i64,
    pub time_ms: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub client_id: Option<String>,
    pub grant_type: Option<String>,
    /// Space-separated scopes asked for or granted.
    pub scope: Option<String>,
    /// Space-separated resource indicators (RFC 8707) asked for or granted.
    pub resource: Option<String>,
    pub outcome: Outcome,
    /// Why: the OAuth error code and description of a refusal, or a short
    /// note for a success. Never a secret.
    pub reason: Option<String>,
    pub source_addr: Option<String>,
    /// The client authentication method the request used, when it
    /// authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
    /// The identity the client's platform attested (a SPIFFE ID, a
    /// federated token's `iss#sub`, a certificate subject or thumbprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attested_id: Option<String>,
    /// The request-time policy decision of a token request and the ids of
    /// the policies that determined it, e.g. `deny: acme.no-ci-writes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The task a per-task token was issued for (token exchange `task_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

impl AuditEvent {
    /// A new event of `event_type` at `time_ms`, everything else empty.
    pub fn new(event_type: &str, time_ms: i64, outcome: Outcome) -> Self {
        AuditEvent {
            id: 0,
            time_ms,
            event_type: event_type.to_owned(),
            client_id: None,
            grant_type: None,
            scope: None,
            resource: None,
            outcome,
            reason: None,
            source_addr: None,
            auth_method: None,
            attested_id: None,
            policy: None,
            task_id: None,
        }
    }
}

/// A filter over audit events, as `GET /admin/events` takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub client_id: Option<String>,
    pub event_type: Option<String>,
    /// Only events at or after this time (ms since epoch).
    pub since_ms: Option<i64>,
    /// At most this many events (the newest that match), returned oldest first.
    pub limit: u32,
}
