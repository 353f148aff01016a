//! Real certificates for the tests, made with rcgen: authorities, and
//! X.509-SVID leaves with whatever is wrong with them.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{json, Value};

/// 2027-01-15: inside every validity period below unless a test moves it.
pub const NOW: i64 = 1_800_000_000;

/// A certificate and its key, able to issue others.
pub struct Authority {
    pub cert: Certificate,
    pub key: KeyPair,
}

impl Authority {
    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2030, 1, 1);
    params
}

/// A self-signed root, as a trust domain's X.509 authority.
pub fn root(name: &str) -> Authority {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(name).self_signed(&key).unwrap();
    Authority { cert, key }
}

/// An intermediate CA under `parent`.
pub fn intermediate(parent: &Authority, name: &str) -> Authority {
    let key = KeyPair::generate().unwrap();
    let cert = ca_params(name)
        .signed_by(&key, &parent.cert, &parent.key)
        .unwrap();
    Authority { cert, key }
}

/// The parameters of a valid X.509-SVID leaf for `uri`: empty subject, one
/// URI SAN, `cA=false`, `digitalSignature`, server and client auth.
pub fn svid_params(uri: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2028, 1, 1);
    params
}

/// Issues a leaf from `params` under `issuer`, DER.
pub fn issue(params: CertificateParams, issuer: &Authority) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    params
        .signed_by(&key, &issuer.cert, &issuer.key)
        .unwrap()
        .der()
        .to_vec()
}

/// A self-signed leaf from `params` and the public JWK of its key with the
/// certificate in `x5c`.
pub fn self_signed(params: CertificateParams) -> (Vec<u8>, Value) {
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().to_vec();
    let point = key.public_key_raw();
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "x5c": [STANDARD.encode(&der)],
    });
    (der, jwk)
}

/// A bundle's `x509-svid` key for an authority.
pub fn x509_key(authority: &Authority) -> Value {
    json!({"kty": "EC", "use": "x509-svid", "x5c": [STANDARD.encode(authority.der())]})
}
