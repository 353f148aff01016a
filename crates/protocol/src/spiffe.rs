//! SPIFFE identities for the `spiffe_jwt` and `spiffe_x509` client
//! authentication methods (draft-ietf-oauth-spiffe-client-auth §3).
//!
//! - [`SpiffeId`] and [`TrustDomain`]: parsed exactly as SPIFFE-ID §2 says
//!   (lowercase scheme and trust domain, no port, userinfo, query, fragment
//!   or percent-encoding, no empty, `.` or `..` segments, no trailing `/`,
//!   at most [`MAX_SPIFFE_ID_LENGTH`] bytes). Nothing is case-folded: an
//!   uppercase trust domain is refused, not lowered.
//! - [`SpiffeIdPattern`]: a client's registered `spiffe_id`, exact or ending
//!   in `/*` (a path-segment prefix, draft §5.1).
//! - [`SpiffeBundle`]: one trust domain's bundle (a JWK Set, SPIFFE Trust
//!   Domain and Bundle §4), kept with the name of the trust domain it was
//!   configured for: bundles carry no name, and an SVID is only ever checked
//!   against its own trust domain's bundle (draft §6).
//! - [`verify_x509_svid`]: RFC 5280 path validation to the bundle's X.509
//!   authorities (never the system trust store, draft §6.2.3), then the
//!   X509-SVID leaf rules (X509-SVID §5.2).

use crate::error::echo;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Borrow;
use std::fmt;

mod x509_svid;
pub(crate) use x509_svid::verify_path;
pub use x509_svid::{verify_x509_svid, X509SvidError};

/// Longest SPIFFE ID accepted, bytes, the whole URI (SPIFFE-ID §2.3).
pub const MAX_SPIFFE_ID_LENGTH: usize = 2048;
/// Longest trust domain name accepted, bytes (SPIFFE-ID §2.1).
pub const MAX_TRUST_DOMAIN_LENGTH: usize = 255;
/// Most keys a bundle may hold; a larger one is refused whole.
pub const MAX_BUNDLE_KEYS: usize = 1000;
/// Most certificates in a presented chain, leaf included.
pub const MAX_CHAIN_LENGTH: usize = 10;

const SCHEME: &str = "spiffe://";

/// Longest piece of presented text echoed in an error.
const ECHO_CHARS: usize = 120;

/// Why a string is not a SPIFFE ID, trust domain or `spiffe_id` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeIdError {
    TooLong,
    /// Not `spiffe://` (the scheme is lowercase, SPIFFE-ID §2.4 aside).
    WrongScheme,
    EmptyTrustDomain,
    TrustDomainTooLong,
    UppercaseTrustDomain,
    /// A character outside `[a-z0-9.-_]` (ports and userinfo end here).
    TrustDomainCharacter(char),
    PathCharacter(char),
    PercentEncoding,
    QueryOrFragment,
    EmptySegment,
    DotSegment,
    TrailingSlash,
    /// A `*` anywhere but a final `/*` of a pattern.
    MisplacedWildcard,
}

impl fmt::Display for SpiffeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "a SPIFFE ID is at most {MAX_SPIFFE_ID_LENGTH} bytes"),
            Self::WrongScheme => f.write_str("a SPIFFE ID starts with spiffe://"),
            Self::EmptyTrustDomain => f.write_str("the trust domain is empty"),
            Self::TrustDomainTooLong => write!(
                f,
                "a trust domain is at most {MAX_TRUST_DOMAIN_LENGTH} bytes"
            ),
            Self::UppercaseTrustDomain => f.write_str("a trust domain is lowercase"),
            Self::TrustDomainCharacter(c) => write!(
                f,
                "{c:?} is not allowed in a trust domain (letters a-z, digits, '.', '-', '_'; no port, no userinfo)"
            ),
            Self::PathCharacter(c) => write!(
                f,
                "{c:?} is not allowed in a SPIFFE ID path segment (letters, digits, '.', '-', '_')"
            ),
            Self::PercentEncoding => f.write_str("a SPIFFE ID has no percent-encoding"),
            Self::QueryOrFragment => f.write_str("a SPIFFE ID has no query and no fragment"),
            Self::EmptySegment => f.write_str("a SPIFFE ID path has no empty segments"),
            Self::DotSegment => f.write_str("a SPIFFE ID path has no '.' or '..' segments"),
            Self::TrailingSlash => f.write_str("a SPIFFE ID does not end with '/'"),
            Self::MisplacedWildcard => {
                f.write_str("a spiffe_id wildcard is a final '/*' and nothing else")
            }
        }
    }
}

impl std::error::Error for SpiffeIdError {}

/// A trust domain name, `example.org` (SPIFFE-ID §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustDomain(String);

impl TrustDomain {
    /// A bare name: no scheme, no path, no port.
    pub fn parse(name: &str) -> Result<TrustDomain, SpiffeIdError> {
        check_trust_domain(name)?;
        Ok(TrustDomain(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// So a map keyed by [`TrustDomain`] is looked up with
/// [`SpiffeId::trust_domain`].
impl Borrow<str> for TrustDomain {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// A SPIFFE ID, `spiffe://example.org/ns/payments/sa/api` (SPIFFE-ID §2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SpiffeId {
    id: String,
    /// Where the trust domain ends and the path (possibly empty) begins.
    path_start: usize,
}

impl SpiffeId {
    pub fn parse(id: &str) -> Result<SpiffeId, SpiffeIdError> {
        if id.len() > MAX_SPIFFE_ID_LENGTH {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = id.strip_prefix(SCHEME).ok_or(SpiffeIdError::WrongScheme)?;
        let domain_length = rest.find('/').unwrap_or(rest.len());
        check_trust_domain(&rest[..domain_length])?;
        check_path(&rest[domain_length..])?;
        Ok(SpiffeId {
            id: id.to_owned(),
            path_start: SCHEME.len() + domain_length,
        })
    }

    /// `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// `/ns/payments/sa/api`, or empty for the trust domain's own ID.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }
}

fn check_trust_domain(name: &str) -> Result<(), SpiffeIdError> {
    if name.is_empty() {
        return Err(SpiffeIdError::EmptyTrustDomain);
    }
    if let Some(c) = name.chars().find(|&c| !is_trust_domain_char(c)) {
        return Err(match c {
            '%' => SpiffeIdError::PercentEncoding,
            '?' | '#' => SpiffeIdError::QueryOrFragment,
            'A'..='Z' => SpiffeIdError::UppercaseTrustDomain,
            '*' => SpiffeIdError::MisplacedWildcard,
            c => SpiffeIdError::TrustDomainCharacter(c),
        });
    }
    if name.len() > MAX_TRUST_DOMAIN_LENGTH {
        return Err(SpiffeIdError::TrustDomainTooLong);
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), SpiffeIdError> {
    let Some(segments) = path.strip_prefix('/') else {
        return Ok(()); // empty: the path is optional
    };
    let mut segments = segments.split('/').peekable();
    while let Some(segment) = segments.next() {
        if let Some(c) = segment.chars().find(|&c| !is_path_char(c)) {
            return Err(match c {
                '%' => SpiffeIdError::PercentEncoding,
                '?' | '#' => SpiffeIdError::QueryOrFragment,
                '*' => SpiffeIdError::MisplacedWildcard,
                c => SpiffeIdError::PathCharacter(c),
            });
        }
        match segment {
            "" if segments.peek().is_none() => return Err(SpiffeIdError::TrailingSlash),
            "" => return Err(SpiffeIdError::EmptySegment),
            "." | ".." => return Err(SpiffeIdError::DotSegment),
            _ => {}
        }
    }
    Ok(())
}

fn is_trust_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_')
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// A client's registered `spiffe_id` (draft §5.1): one SPIFFE ID, or one
/// ending in `/*`, which stands for every ID strictly below that path in the
/// same trust domain, on a segment boundary.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SpiffeIdPattern {
    Exact(SpiffeId),
    /// The ID before the `/*`.
    Below(SpiffeId),
}

impl SpiffeIdPattern {
    pub fn parse(pattern: &str) -> Result<SpiffeIdPattern, SpiffeIdError> {
        match pattern.strip_suffix("/*") {
            Some(base) => SpiffeId::parse(base).map(SpiffeIdPattern::Below),
            None => SpiffeId::parse(pattern).map(SpiffeIdPattern::Exact),
        }
    }

    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            SpiffeIdPattern::Exact(exact) => exact == id,
            // The trust domain ends at the first '/', so a prefix that ends
            // where a segment of `id` begins names the same trust domain.
            SpiffeIdPattern::Below(base) => id
                .as_str()
                .strip_prefix(base.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
        }
    }

    pub fn trust_domain(&self) -> &str {
        match self {
            SpiffeIdPattern::Exact(id) | SpiffeIdPattern::Below(id) => id.trust_domain(),
        }
    }
}

macro_rules! string_forms {
    ($type:ty) => {
        impl TryFrom<String> for $type {
            type Error = SpiffeIdError;
            fn try_from(value: String) -> Result<Self, SpiffeIdError> {
                <$type>::parse(&value)
            }
        }
        impl From<$type> for String {
            fn from(value: $type) -> String {
                value.to_string()
            }
        }
    };
}
string_forms!(TrustDomain);
string_forms!(SpiffeId);
string_forms!(SpiffeIdPattern);

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl fmt::Display for SpiffeIdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpiffeIdPattern::Exact(id) => write!(f, "{id}"),
            SpiffeIdPattern::Below(id) => write!(f, "{id}/*"),
        }
    }
}

/// Why a document is not a usable SPIFFE bundle. `index` is the position of
/// the offending key in `keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// Not JSON, or not an object: the parser's message, shortened.
    NotJson(String),
    /// `keys` is absent or not an array (Trust Domain and Bundle §4.1.3).
    MissingKeys,
    TooManyKeys,
    /// `spiffe_sequence` is not an unsigned 64-bit integer.
    BadSequence,
    /// `spiffe_refresh_hint` is not a non-negative integer of seconds.
    BadRefreshHint,
    KeyNotObject {
        index: usize,
    },
    /// A key with a `use` this profile knows has no `kty` (§4.2.1).
    MissingKty {
        index: usize,
    },
    /// An `x509-svid` key whose `x5c` is not exactly one certificate.
    X5cNotOneCertificate {
        index: usize,
    },
    /// An `x509-svid` certificate that is not base64 DER of a certificate.
    BadCertificate {
        index: usize,
    },
    /// A `jwt-svid` key without a `kid` (JWT-SVID §6).
    MissingKid {
        index: usize,
    },
    DuplicateKid {
        index: usize,
    },
    /// A `jwt-svid` key that is not a valid public JWK.
    BadJwk {
        index: usize,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJson(message) => write!(f, "the bundle is not a JSON object: {message}"),
            Self::MissingKeys => f.write_str("the bundle has no \"keys\" array"),
            Self::TooManyKeys => write!(f, "the bundle has more than {MAX_BUNDLE_KEYS} keys"),
            Self::BadSequence => f.write_str("spiffe_sequence is not an unsigned integer"),
            Self::BadRefreshHint => {
                f.write_str("spiffe_refresh_hint is not a non-negative integer of seconds")
            }
            Self::KeyNotObject { index } => write!(f, "key {index} is not a JSON object"),
            Self::MissingKty { index } => write!(f, "key {index} has no kty"),
            Self::X5cNotOneCertificate { index } => {
                write!(
                    f,
                    "x509-svid key {index} has not exactly one certificate in x5c"
                )
            }
            Self::BadCertificate { index } => {
                write!(f, "x509-svid key {index} is not a base64 DER certificate")
            }
            Self::MissingKid { index } => write!(f, "jwt-svid key {index} has no kid"),
            Self::DuplicateKid { index } => {
                write!(f, "jwt-svid key {index} repeats the kid of an earlier key")
            }
            Self::BadJwk { index } => write!(f, "jwt-svid key {index} is not a valid public JWK"),
        }
    }
}

impl std::error::Error for BundleError {}

/// One trust domain's SPIFFE bundle (SPIFFE Trust Domain and Bundle §4).
#[derive(Debug, Clone, PartialEq)]
pub struct SpiffeBundle {
    trust_domain: TrustDomain,
    x509_authorities: Vec<Vec<u8>>,
    jwt_authorities: Vec<Jwk>,
    sequence: Option<u64>,
    refresh_hint: Option<u64>,
}

impl SpiffeBundle {
    /// Reads the bundle configured (or fetched) for `trust_domain`. Keys whose
    /// `use` is missing or neither `x509-svid` nor `jwt-svid`, and `jwt-svid`
    /// keys of a `kty` other than EC, RSA or OKP, are ignored (§4.1.3, §4.2.2);
    /// a key this profile uses but cannot read fails the whole bundle. A
    /// bundle without usable keys parses: it makes every SVID of its trust
    /// domain invalid.
    pub fn parse(trust_domain: TrustDomain, json: &[u8]) -> Result<SpiffeBundle, BundleError> {
        let document: Value = serde_json::from_slice(json)
            .map_err(|error| BundleError::NotJson(echo(&error.to_string(), ECHO_CHARS)))?;
        let Value::Object(document) = document else {
            return Err(BundleError::NotJson("not an object".to_owned()));
        };
        let keys = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(BundleError::MissingKeys)?;
        if keys.len() > MAX_BUNDLE_KEYS {
            return Err(BundleError::TooManyKeys);
        }
        let unsigned = |name: &str, error: BundleError| match document.get(name) {
            None => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or(error),
        };
        let mut bundle = SpiffeBundle {
            trust_domain,
            x509_authorities: Vec::new(),
            jwt_authorities: Vec::new(),
            sequence: unsigned("spiffe_sequence", BundleError::BadSequence)?,
            refresh_hint: unsigned("spiffe_refresh_hint", BundleError::BadRefreshHint)?,
        };
        for (index, key) in keys.iter().enumerate() {
            let object = key.as_object().ok_or(BundleError::KeyNotObject { index })?;
            let key_use = object.get("use").and_then(Value::as_str);
            if !matches!(key_use, Some("x509-svid" | "jwt-svid")) {
                continue;
            }
            let kty = object
                .get("kty")
                .and_then(Value::as_str)
                .ok_or(BundleError::MissingKty { index })?;
            if key_use == Some("x509-svid") {
                bundle.x509_authorities.push(x509_authority(object, index)?);
                continue;
            }
            if !matches!(kty, "EC" | "RSA" | "OKP") {
                continue;
            }
            let kid = match object.get("kid").and_then(Value::as_str) {
                Some(kid) if !kid.is_empty() => kid,
                _ => return Err(BundleError::MissingKid { index }),
            };
            if bundle.jwt_authority(kid).is_some() {
                return Err(BundleError::DuplicateKid { index });
            }
            let jwk: Jwk =
                serde_json::from_value(key.clone()).map_err(|_| BundleError::BadJwk { index })?;
            bundle.jwt_authorities.push(jwk);
        }
        Ok(bundle)
    }

    /// The trust domain this bundle was configured for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The `x509-svid` authorities, DER: the trust anchors for X.509-SVIDs.
    pub fn x509_authorities(&self) -> &[Vec<u8>] {
        &self.x509_authorities
    }

    /// The `jwt-svid` keys, each with a `kid`.
    pub fn jwt_authorities(&self) -> &[Jwk] {
        &self.jwt_authorities
    }

    /// The `jwt-svid` key with this `kid`.
    pub fn jwt_authority(&self, kid: &str) -> Option<&Jwk> {
        self.jwt_authorities
            .iter()
            .find(|jwk| jwk.common.key_id.as_deref() == Some(kid))
    }

    /// `spiffe_sequence`, which orders bundles of one trust domain (§4.1.1).
    pub fn sequence(&self) -> Option<u64> {
        self.sequence
    }

    /// `spiffe_refresh_hint`, seconds between polls (§4.1.2).
    pub fn refresh_hint(&self) -> Option<u64> {
        self.refresh_hint
    }
}

/// The certificate of an `x509-svid` key: `x5c` holds exactly one, and it
/// must be usable as a trust anchor.
fn x509_authority(
    object: &serde_json::Map<String, Value>,
    index: usize,
) -> Result<Vec<u8>, BundleError> {
    let certificate = match object
        .get("x5c")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([Value::String(certificate)]) => certificate,
        _ => return Err(BundleError::X5cNotOneCertificate { index }),
    };
    let der = STANDARD
        .decode(certificate)
        .map_err(|_| BundleError::BadCertificate { index })?;
    webpki::anchor_from_trusted_cert(&CertificateDer::from(der.as_slice()))
        .map_err(|_| BundleError::BadCertificate { index })?;
    Ok(der)
}

#[cfg(test)]
pub(crate) mod test_certs;
#[cfg(test)]
mod tests;
