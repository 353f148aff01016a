//! X.509-SVID verification: RFC 5280 path validation to a trust domain's
//! `x509-svid` authorities, then the leaf rules of X509-SVID §5.2 and
//! draft-ietf-oauth-spiffe-client-auth §3.2.

use super::{SpiffeBundle, SpiffeId, SpiffeIdError, ECHO_CHARS, MAX_CHAIN_LENGTH};
use crate::error::echo;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use std::fmt;
use webpki::aws_lc_rs as algs;
use x509_parser::extensions::GeneralName;

/// Signature algorithms accepted on certificates: every algorithm
/// rustls-webpki implements with aws-lc-rs, the workspace's crypto backend.
/// Listed here rather than taken from `webpki::ALL_VERIFICATION_ALGS`,
/// which also holds *ring*'s when another crate enables that feature.
static SIGNATURE_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    algs::ECDSA_P256_SHA256,
    algs::ECDSA_P256_SHA384,
    algs::ECDSA_P256_SHA512,
    algs::ECDSA_P384_SHA256,
    algs::ECDSA_P384_SHA384,
    algs::ECDSA_P384_SHA512,
    algs::ECDSA_P521_SHA256,
    algs::ECDSA_P521_SHA384,
    algs::ECDSA_P521_SHA512,
    algs::ED25519,
    algs::RSA_PKCS1_2048_8192_SHA256,
    algs::RSA_PKCS1_2048_8192_SHA384,
    algs::RSA_PKCS1_2048_8192_SHA512,
    algs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    algs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    algs::RSA_PKCS1_3072_8192_SHA384,
    algs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    algs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    algs::ML_DSA_44,
    algs::ML_DSA_65,
    algs::ML_DSA_87,
];

/// Why a presented certificate chain is not a valid X.509-SVID of the
/// bundle's trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum X509SvidError {
    /// No client certificate was presented.
    EmptyChain,
    ChainTooLong,
    /// The trust domain's bundle has no `x509-svid` authority.
    NoX509Authorities,
    MalformedCertificate,
    Expired,
    NotYetValid,
    /// No path to one of the bundle's X.509 authorities.
    UnknownIssuer,
    /// A certificate names an authority of the bundle (or the chain) as its
    /// issuer, but that authority's signature does not verify.
    BadSignature,
    /// Path validation failed otherwise (webpki's reason).
    PathValidation(String),
    /// Not exactly one URI SAN (X509-SVID §2).
    UriSanCount(usize),
    InvalidSpiffeId(SpiffeIdError),
    /// The leaf's SPIFFE ID has no path (X509-SVID §3.1).
    RootSpiffeId,
    /// The SPIFFE ID is of another trust domain than the bundle's.
    TrustDomainMismatch,
    /// Basic constraints `cA=true` on the leaf (X509-SVID §4.1).
    LeafIsCa,
    /// No key usage extension (X509-SVID §4.3).
    MissingKeyUsage,
    /// Key usage without `digitalSignature` (X509-SVID §4.3).
    NoDigitalSignature,
    /// Key usage with `keyCertSign` or `cRLSign` on the leaf (X509-SVID §4.3).
    SigningKeyUsage,
}

impl fmt::Display for X509SvidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyChain => f.write_str("no client certificate was presented"),
            Self::ChainTooLong => write!(
                f,
                "the client certificate chain is longer than {MAX_CHAIN_LENGTH} certificates"
            ),
            Self::NoX509Authorities => {
                f.write_str("the trust domain's bundle has no X.509-SVID authorities")
            }
            Self::MalformedCertificate => f.write_str("the client certificate is malformed"),
            Self::Expired => f.write_str("the X.509-SVID has expired"),
            Self::NotYetValid => f.write_str("the X.509-SVID is not valid yet"),
            Self::UnknownIssuer => f.write_str(
                "the X.509-SVID does not chain to an X.509 authority of its trust domain",
            ),
            Self::BadSignature => f.write_str(
                "a signature in the X.509-SVID's chain does not verify with its issuer's key",
            ),
            Self::PathValidation(reason) => {
                write!(f, "the X.509-SVID's certificate path is invalid: {reason}")
            }
            Self::UriSanCount(count) => write!(
                f,
                "an X.509-SVID has exactly one URI SAN, this certificate has {count}"
            ),
            Self::InvalidSpiffeId(error) => write!(f, "the URI SAN is not a SPIFFE ID: {error}"),
            Self::RootSpiffeId => f.write_str(
                "the X.509-SVID's SPIFFE ID has no path (it names a trust domain, not a workload)",
            ),
            Self::TrustDomainMismatch => {
                f.write_str("the X.509-SVID's SPIFFE ID is of another trust domain than the bundle")
            }
            Self::LeafIsCa => f.write_str("the X.509-SVID leaf is a CA certificate"),
            Self::MissingKeyUsage => f.write_str("the X.509-SVID has no key usage extension"),
            Self::NoDigitalSignature => {
                f.write_str("the X.509-SVID's key usage lacks digitalSignature")
            }
            Self::SigningKeyUsage => {
                f.write_str("the X.509-SVID leaf's key usage includes keyCertSign or cRLSign")
            }
        }
    }
}

impl std::error::Error for X509SvidError {}

/// Verifies the client certificate chain a TLS handshake saw (`chain`, leaf
/// first, DER) as an X.509-SVID of `bundle`'s trust domain at
/// `now_unix_secs`, and returns its SPIFFE ID. First RFC 5280 path
/// validation to one of the bundle's `x509-svid` authorities (client-auth
/// usage, aws-lc-rs signatures), then the leaf rules of X509-SVID §5.2 and
/// the draft's §3.2: exactly one URI SAN, a SPIFFE ID with a path in the
/// bundle's trust domain, `cA=false`, key usage present with
/// `digitalSignature` and without `keyCertSign` or `cRLSign`. The caller
/// still holds the ID to the client's registered [`SpiffeIdPattern`].
pub fn verify_x509_svid(
    chain: &[Vec<u8>],
    bundle: &SpiffeBundle,
    now_unix_secs: i64,
) -> Result<SpiffeId, X509SvidError> {
    if bundle.x509_authorities.is_empty() {
        return Err(X509SvidError::NoX509Authorities);
    }
    verify_path(chain, &bundle.x509_authorities, now_unix_secs)?;
    check_svid_leaf(&chain[0], bundle.trust_domain.as_str())
}

/// RFC 5280 path validation of `chain` (leaf first, DER) to one of
/// `anchors` (DER) at `now_unix_secs`, for TLS client authentication.
pub(crate) fn verify_path(
    chain: &[Vec<u8>],
    anchors: &[Vec<u8>],
    now_unix_secs: i64,
) -> Result<(), X509SvidError> {
    let (leaf, intermediates) = chain.split_first().ok_or(X509SvidError::EmptyChain)?;
    if chain.len() > MAX_CHAIN_LENGTH {
        return Err(X509SvidError::ChainTooLong);
    }
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    let anchors: Vec<_> = anchor_ders
        .iter()
        .filter_map(|der| webpki::anchor_from_trusted_cert(der).ok())
        .collect();
    if anchors.is_empty() {
        return Err(X509SvidError::NoX509Authorities);
    }
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|der| CertificateDer::from(der.as_slice()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|_| X509SvidError::MalformedCertificate)?;
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now_unix_secs).unwrap_or(0),
    ));
    end_entity
        .verify_for_usage(
            SIGNATURE_ALGS,
            &anchors,
            &intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(path_error)?;
    Ok(())
}

fn path_error(error: webpki::Error) -> X509SvidError {
    match error {
        webpki::Error::BadDer | webpki::Error::BadDerTime => X509SvidError::MalformedCertificate,
        webpki::Error::CertExpired { .. } => X509SvidError::Expired,
        webpki::Error::CertNotValidYet { .. } => X509SvidError::NotYetValid,
        webpki::Error::UnknownIssuer => X509SvidError::UnknownIssuer,
        webpki::Error::InvalidSignatureForPublicKey => X509SvidError::BadSignature,
        webpki::Error::CaUsedAsEndEntity => X509SvidError::LeafIsCa,
        other => X509SvidError::PathValidation(echo(&format!("{other:?}"), ECHO_CHARS)),
    }
}

/// The X.509-SVID rules on a leaf whose path is already validated.
fn check_svid_leaf(leaf: &[u8], trust_domain: &str) -> Result<SpiffeId, X509SvidError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| X509SvidError::MalformedCertificate)?;
    let names = certificate
        .subject_alternative_name()
        .map_err(|_| X509SvidError::MalformedCertificate)?;
    let uris: Vec<&GeneralName<'_>> = names
        .iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter(|name| match name {
            GeneralName::URI(_) => true,
            // A URI SAN that is not even text still counts as one.
            GeneralName::Invalid(tag, _) => tag.0 == 6,
            _ => false,
        })
        .collect();
    let id = match uris.as_slice() {
        [GeneralName::URI(uri)] => SpiffeId::parse(uri).map_err(X509SvidError::InvalidSpiffeId)?,
        [_] => return Err(X509SvidError::MalformedCertificate),
        more => return Err(X509SvidError::UriSanCount(more.len())),
    };
    if id.path().is_empty() {
        return Err(X509SvidError::RootSpiffeId);
    }
    if id.trust_domain() != trust_domain {
        return Err(X509SvidError::TrustDomainMismatch);
    }
    if certificate.is_ca() {
        return Err(X509SvidError::LeafIsCa);
    }
    let usage = certificate
        .key_usage()
        .map_err(|_| X509SvidError::MalformedCertificate)?
        .ok_or(X509SvidError::MissingKeyUsage)?;
    if !usage.value.digital_signature() {
        return Err(X509SvidError::NoDigitalSignature);
    }
    if usage.value.key_cert_sign() || usage.value.crl_sign() {
        return Err(X509SvidError::SigningKeyUsage);
    }
    Ok(id)
}

#[cfg(test)]
mod tests;
