//! Mutual-TLS client authentication and certificate-bound tokens
//! (RFC 8705), on the client certificate the TLS layer saw.
//!
//! - [`LeafFacts`]: what the rules read from the presented certificate,
//!   including `x5t#S256` ([`thumbprint_s256`], §3.1) for `cnf`.
//! - [`TlsClientAuthExpectation`]: the one subject value a
//!   `tls_client_auth` client registers (§2.1.2), and whether a certificate
//!   carries it. The chain itself is validated by the TLS layer or the
//!   caller, never here.
//! - [`subject_dn_matches`]: RFC 4514 strings compared as distinguished
//!   names ([`DistinguishedName`]): attribute types by OID, values after
//!   unescaping with LDAP `caseIgnoreMatch`, RDNs in order, the values of a
//!   multi-valued RDN in any order.
//! - [`self_signed_matches`]: `self_signed_tls_client_auth` (§2.2), the
//!   presented certificate is one the client registered in its JWK Set.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use x509_parser::extensions::GeneralName;

mod dn;
pub use dn::{DistinguishedName, MAX_DN_LENGTH};

/// RFC 8705 §2.1 (PKI method): whether `chain` (leaf first, DER, as the TLS
/// handshake presented it) has a valid path at `now_unix_secs` to one of
/// `anchors` (DER certificates: the server's client CAs), for client
/// authentication. The error says why not, for logs.
pub fn verify_client_chain(
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now_unix_secs: i64,
) -> Result<(), String> {
    crate::spiffe::verify_path(chain, anchors, now_unix_secs).map_err(|e| match e {
        crate::spiffe::X509SvidError::NoX509Authorities => "no client CA is configured".into(),
        crate::spiffe::X509SvidError::Expired => "the client certificate has expired".into(),
        crate::spiffe::X509SvidError::NotYetValid => {
            "the client certificate is not valid yet".into()
        }
        crate::spiffe::X509SvidError::UnknownIssuer => {
            "the client certificate does not chain to a configured client CA".into()
        }
        other => other.to_string(),
    })
}

/// Why a certificate or a distinguished name could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum X509Error {
    /// Not a DER X.509 certificate, or one with a malformed or repeated
    /// extension this module reads.
    MalformedCertificate,
    /// Bytes after the certificate.
    TrailingData,
    /// Not an RFC 4514 distinguished name; the byte offset where reading
    /// stopped.
    MalformedDn {
        at: usize,
    },
    DnTooLong,
    /// An empty distinguished name, which names no one.
    EmptyDn,
    /// A `tls_client_auth_san_ip` that is not an IP address.
    MalformedIp,
    /// An empty expected value.
    EmptyValue,
}

impl fmt::Display for X509Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedCertificate => f.write_str("the certificate is malformed"),
            Self::TrailingData => f.write_str("the certificate is followed by other data"),
            Self::MalformedDn { at } => {
                write!(f, "not an RFC 4514 distinguished name (at byte {at})")
            }
            Self::DnTooLong => write!(f, "a distinguished name is at most {MAX_DN_LENGTH} bytes"),
            Self::EmptyDn => f.write_str("the distinguished name is empty"),
            Self::MalformedIp => f.write_str("not an IPv4 or IPv6 address"),
            Self::EmptyValue => f.write_str("the expected value is empty"),
        }
    }
}

impl std::error::Error for X509Error {}

/// What the RFC 8705 rules read from a client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFacts {
    /// The subject as an RFC 4514 string (last RDN first).
    pub subject_dn: String,
    pub san_uris: Vec<String>,
    pub san_dns: Vec<String>,
    /// IP address SANs in their text form (RFC 5952 for IPv6).
    pub san_ips: Vec<String>,
    pub san_emails: Vec<String>,
    /// Basic constraints `cA=true`.
    pub is_ca: bool,
    /// Validity, seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// `x5t#S256`: base64url (no padding) SHA-256 of the DER (§3.1).
    pub thumbprint_s256: String,
}

impl LeafFacts {
    pub fn parse(der: &[u8]) -> Result<LeafFacts, X509Error> {
        let (rest, certificate) = x509_parser::parse_x509_certificate(der)
            .map_err(|_| X509Error::MalformedCertificate)?;
        if !rest.is_empty() {
            return Err(X509Error::TrailingData);
        }
        let basic_constraints = certificate
            .basic_constraints()
            .map_err(|_| X509Error::MalformedCertificate)?;
        let names = certificate
            .subject_alternative_name()
            .map_err(|_| X509Error::MalformedCertificate)?;
        // Basic constraints that do not parse are not silently absent.
        let unreadable = certificate.extensions().iter().any(|extension| {
            extension.oid == x509_parser::oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS
                && extension.parsed_extension().error().is_some()
        });
        if unreadable {
            return Err(X509Error::MalformedCertificate);
        }
        let validity = certificate.validity();
        let mut facts = LeafFacts {
            subject_dn: dn::rfc4514_string(certificate.subject()),
            san_uris: Vec::new(),
            san_dns: Vec::new(),
            san_ips: Vec::new(),
            san_emails: Vec::new(),
            is_ca: basic_constraints.is_some_and(|bc| bc.value.ca),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
            thumbprint_s256: thumbprint_s256(der),
        };
        for name in names.iter().flat_map(|san| san.value.general_names.iter()) {
            match name {
                GeneralName::URI(uri) => facts.san_uris.push((*uri).to_owned()),
                GeneralName::DNSName(dns) => facts.san_dns.push((*dns).to_owned()),
                GeneralName::RFC822Name(email) => facts.san_emails.push((*email).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        facts.san_ips.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(facts)
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        _ => None,
    }
}

/// `x5t#S256` of a DER certificate (RFC 8705 §3.1): base64url, no padding,
/// of its SHA-256.
pub fn thumbprint_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// The one subject value a `tls_client_auth` client registers (RFC 8705
/// §2.1.2: exactly one of these metadata parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsClientAuthExpectation {
    /// `tls_client_auth_subject_dn`, an RFC 4514 string.
    SubjectDn(String),
    /// `tls_client_auth_san_dns`.
    SanDns(String),
    /// `tls_client_auth_san_uri`.
    SanUri(String),
    /// `tls_client_auth_san_ip`, IPv4 dotted or IPv6 (RFC 5952) text.
    SanIp(String),
    /// `tls_client_auth_san_email`.
    SanEmail(String),
}

impl TlsClientAuthExpectation {
    /// The client metadata parameter names, one per variant.
    pub const METADATA_NAMES: [&'static str; 5] = [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ];

    /// The expectation a metadata parameter states; `None` for another name.
    pub fn from_metadata(name: &str, value: &str) -> Option<Self> {
        let value = value.to_owned();
        Some(match name {
            "tls_client_auth_subject_dn" => Self::SubjectDn(value),
            "tls_client_auth_san_dns" => Self::SanDns(value),
            "tls_client_auth_san_uri" => Self::SanUri(value),
            "tls_client_auth_san_ip" => Self::SanIp(value),
            "tls_client_auth_san_email" => Self::SanEmail(value),
            _ => return None,
        })
    }

    /// Checks a value at registration: non-empty, a distinguished name that
    /// parses, an IP address that parses.
    pub fn validate(&self) -> Result<(), X509Error> {
        match self {
            Self::SubjectDn(dn) => {
                DistinguishedName::parse(dn).and_then(|dn| match dn.is_empty() {
                    true => Err(X509Error::EmptyDn),
                    false => Ok(()),
                })
            }
            Self::SanIp(ip) => ip
                .parse::<IpAddr>()
                .map(|_| ())
                .map_err(|_| X509Error::MalformedIp),
            Self::SanDns(value) | Self::SanUri(value) | Self::SanEmail(value) => {
                match value.is_empty() {
                    true => Err(X509Error::EmptyValue),
                    false => Ok(()),
                }
            }
        }
    }

    /// Whether the certificate carries the expected value: the subject DN by
    /// [`subject_dn_matches`], DNS names ignoring ASCII case, IP addresses as
    /// addresses (binary form, §2.1.2), URIs and e-mail addresses exactly.
    pub fn matches(&self, leaf: &LeafFacts) -> bool {
        match self {
            Self::SubjectDn(dn) => subject_dn_matches(dn, leaf),
            Self::SanDns(dns) => {
                !dns.is_empty()
                    && leaf
                        .san_dns
                        .iter()
                        .any(|name| name.eq_ignore_ascii_case(dns))
            }
            Self::SanUri(uri) => !uri.is_empty() && leaf.san_uris.iter().any(|name| name == uri),
            Self::SanEmail(email) => {
                !email.is_empty() && leaf.san_emails.iter().any(|name| name == email)
            }
            Self::SanIp(ip) => ip.parse::<IpAddr>().is_ok_and(|expected| {
                leaf.san_ips
                    .iter()
                    .any(|name| name.parse::<IpAddr>() == Ok(expected))
            }),
        }
    }
}

/// Whether the certificate's subject is the registered distinguished name
/// (RFC 8705 §2.1.2). A registered name that does not parse, or is empty,
/// matches nothing.
pub fn subject_dn_matches(registered: &str, leaf: &LeafFacts) -> bool {
    match (
        DistinguishedName::parse(registered),
        DistinguishedName::parse(&leaf.subject_dn),
    ) {
        (Ok(registered), Ok(subject)) => !registered.is_empty() && registered == subject,
        _ => false,
    }
}

/// `self_signed_tls_client_auth` (RFC 8705 §2.2): whether the presented
/// certificate is the first `x5c` certificate of one of the client's
/// registered keys. The certificate's chain, validity and signature are not
/// checked; which certificate it is, is.
pub fn self_signed_matches(leaf_der: &[u8], registered_jwks: &JwkSet) -> bool {
    registered_jwks.keys.iter().any(|jwk| {
        jwk.common
            .x509_chain
            .as_ref()
            .and_then(|chain| chain.first())
            .and_then(|first| STANDARD.decode(first).ok())
            .is_some_and(|der| der == leaf_der)
    })
}

#[cfg(test)]
mod tests;
