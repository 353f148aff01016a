//! The policy set custos ships (CONTRACT.md: "permits what registration
//! allows"; operators add `forbid` and narrower `permit` policies).
//!
//! Each default policy is its own record, so the ids decisions report are
//! the record ids:
//!
//! - `default.permit-registered` permits every request. The service has
//!   already held the request to what the client's registration allows
//!   (grant types, scopes, resources) before it asks policy; policy only
//!   narrows. Remove it and only explicit `permit`s allow anything.
//! - `default.static-secret-not-sensitive` forbids a client that
//!   authenticated with a static shared secret from getting a token for a
//!   resource tagged `"sensitive"`: such resources need an attested or
//!   key-based client (`private_key_jwt`, mTLS, SPIFFE, federation).
//! - `default.max-delegation-depth` forbids a token whose `act` chain is
//!   longer than N (N = [`DEFAULT_MAX_DELEGATION_DEPTH`] = 4 unless the
//!   operator chooses another with [`default_records`]).

use crate::record::PolicyRecord;

/// The longest `act` chain the default policies allow.
pub const DEFAULT_MAX_DELEGATION_DEPTH: u32 = 4;

const PERMIT_REGISTERED: &str =
    "// Registration already limits grants, scopes and resources; policy narrows.
permit(principal, action, resource);
";

const STATIC_SECRET_NOT_SENSITIVE: &str =
    "// A static shared secret is not enough for a resource tagged \"sensitive\".
forbid(principal, action, resource)
when { principal.uses_static_secret && resource.tags.contains(\"sensitive\") };
";

/// Written out for the default depth; [`default_records`] builds the same
/// text for any depth.
const MAX_DELEGATION_DEPTH_4: &str =
    "// Delegation chains (token exchange `act`) longer than 4 are refused.
forbid(principal, action, resource)
when { context.delegation_depth > 4 };
";

/// The default policy records, `(id, Cedar text)`, with the default
/// delegation depth of 4.
pub const DEFAULT_POLICIES: &[(&str, &str)] = &[
    ("default.permit-registered", PERMIT_REGISTERED),
    (
        "default.static-secret-not-sensitive",
        STATIC_SECRET_NOT_SENSITIVE,
    ),
    ("default.max-delegation-depth", MAX_DELEGATION_DEPTH_4),
];

/// The default policy records with delegation chains limited to
/// `max_delegation_depth`.
pub fn default_records(max_delegation_depth: u32) -> Vec<PolicyRecord> {
    DEFAULT_POLICIES
        .iter()
        .map(|(id, cedar)| match *id {
            "default.max-delegation-depth" => PolicyRecord::new(
                *id,
                format!(
                    "// Delegation chains (token exchange `act`) longer than {max_delegation_depth} are refused.
forbid(principal, action, resource)
when {{ context.delegation_depth > {max_delegation_depth} }};
"
                ),
            ),
            _ => PolicyRecord::new(*id, *cedar),
        })
        .collect()
}
