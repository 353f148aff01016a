use super::*;
use crate::spiffe::test_certs::{intermediate, issue, root, svid_params, x509_key, Authority, NOW};
use crate::spiffe::{BundleError, TrustDomain};
use rcgen::{date_time_ymd, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType};
use serde_json::{json, Value};

fn id(text: &str) -> SpiffeId {
    SpiffeId::parse(text).unwrap()
}

fn bundle(keys: Value) -> Result<SpiffeBundle, BundleError> {
    let domain = TrustDomain::parse("example.org").unwrap();
    SpiffeBundle::parse(domain, json!({"keys": keys}).to_string().as_bytes())
}

// X509-SVID §5 and draft-ietf-oauth-spiffe-client-auth §3.2

const SVID: &str = "spiffe://example.org/ns/payments/sa/api";

fn bundle_of(authorities: &[&Authority]) -> SpiffeBundle {
    let keys: Vec<Value> = authorities.iter().map(|a| x509_key(a)).collect();
    bundle(Value::Array(keys)).unwrap()
}

fn verify(chain: &[Vec<u8>], ca: &Authority) -> Result<SpiffeId, X509SvidError> {
    verify_x509_svid(chain, &bundle_of(&[ca]), NOW)
}

fn leaf_with(ca: &Authority, change: impl FnOnce(&mut rcgen::CertificateParams)) -> Vec<u8> {
    let mut params = svid_params(SVID);
    change(&mut params);
    issue(params, ca)
}

#[test]
fn spiffe_x509_svid_valid_leaf_yields_its_spiffe_id() {
    let ca = root("ca");
    let leaf = issue(svid_params(SVID), &ca);
    assert_eq!(verify(std::slice::from_ref(&leaf), &ca), Ok(id(SVID)));
    // Among other authorities of the trust domain.
    let other = root("other");
    let both = bundle_of(&[&other, &ca]);
    assert_eq!(verify_x509_svid(&[leaf], &both, NOW), Ok(id(SVID)));
}

#[test]
fn spiffe_x509_svid_chains_through_an_intermediate() {
    let ca = root("ca");
    let middle = intermediate(&ca, "intermediate");
    let leaf = issue(svid_params(SVID), &middle);
    assert_eq!(verify(&[leaf.clone(), middle.der()], &ca), Ok(id(SVID)));
    // Without the intermediate there is no path.
    assert_eq!(verify(&[leaf], &ca), Err(X509SvidError::UnknownIssuer));
}

#[test]
fn spiffe_client_auth_6_2_3_only_the_trust_domain_bundle_is_a_trust_anchor() {
    let ca = root("ca");
    let stranger = root("stranger");
    let leaf = issue(svid_params(SVID), &stranger);
    assert_eq!(
        verify(std::slice::from_ref(&leaf), &ca),
        Err(X509SvidError::UnknownIssuer)
    );
    // Presenting the stranger's root in the chain changes nothing.
    assert_eq!(
        verify(&[leaf, stranger.der()], &ca),
        Err(X509SvidError::UnknownIssuer)
    );
    // A stranger that takes the authority's name cannot sign for it.
    let impostor = root("ca");
    let leaf = issue(svid_params(SVID), &impostor);
    assert_eq!(verify(&[leaf], &ca), Err(X509SvidError::BadSignature));
}

#[test]
fn rfc5280_path_validation_checks_validity_period() {
    let ca = root("ca");
    let expired = leaf_with(&ca, |p| p.not_after = date_time_ymd(2026, 6, 1));
    assert_eq!(verify(&[expired], &ca), Err(X509SvidError::Expired));
    let early = leaf_with(&ca, |p| p.not_before = date_time_ymd(2027, 6, 1));
    assert_eq!(verify(&[early], &ca), Err(X509SvidError::NotYetValid));
    let leaf = issue(svid_params(SVID), &ca);
    assert_eq!(
        verify_x509_svid(&[leaf], &bundle_of(&[&ca]), -1),
        Err(X509SvidError::NotYetValid)
    );
}

#[test]
fn rfc8705_2_client_certificate_required() {
    let ca = root("ca");
    assert_eq!(verify(&[], &ca), Err(X509SvidError::EmptyChain));
    assert_eq!(
        verify(&[b"junk".to_vec()], &ca),
        Err(X509SvidError::MalformedCertificate)
    );
    let leaf = issue(svid_params(SVID), &ca);
    let long = vec![leaf; MAX_CHAIN_LENGTH + 1];
    assert_eq!(verify(&long, &ca), Err(X509SvidError::ChainTooLong));
}

#[test]
fn spiffe_bundle_4_1_3_no_x509_authorities_means_no_x509_svid_is_valid() {
    let ca = root("ca");
    let leaf = issue(svid_params(SVID), &ca);
    let no_x509 = bundle(json!([{"kty": "EC", "use": "wit-svid"}])).unwrap();
    assert_eq!(
        verify_x509_svid(&[leaf], &no_x509, NOW),
        Err(X509SvidError::NoX509Authorities)
    );
}

#[test]
fn spiffe_x509_svid_2_exactly_one_uri_san() {
    let ca = root("ca");
    let two = leaf_with(&ca, |p| {
        p.subject_alt_names.push(SanType::URI(
            "spiffe://example.org/other".try_into().unwrap(),
        ))
    });
    assert_eq!(verify(&[two], &ca), Err(X509SvidError::UriSanCount(2)));
    let none = leaf_with(&ca, |p| {
        p.subject_alt_names = vec![SanType::DnsName("api.example.org".try_into().unwrap())]
    });
    assert_eq!(verify(&[none], &ca), Err(X509SvidError::UriSanCount(0)));
    // Other SAN types beside the one URI are allowed.
    let with_dns = leaf_with(&ca, |p| {
        p.subject_alt_names
            .push(SanType::DnsName("api.example.org".try_into().unwrap()))
    });
    assert_eq!(verify(&[with_dns], &ca), Ok(id(SVID)));
}

#[test]
fn spiffe_x509_svid_2_uri_san_is_a_spiffe_id() {
    let ca = root("ca");
    for (uri, error) in [
        ("https://example.org/a", SpiffeIdError::WrongScheme),
        (
            "spiffe://Example.org/a",
            SpiffeIdError::UppercaseTrustDomain,
        ),
        ("spiffe://example.org/a/", SpiffeIdError::TrailingSlash),
    ] {
        let leaf = issue(svid_params(uri), &ca);
        assert_eq!(
            verify(&[leaf], &ca),
            Err(X509SvidError::InvalidSpiffeId(error)),
            "{uri}"
        );
    }
}

#[test]
fn spiffe_x509_svid_3_1_leaf_spiffe_id_has_a_path() {
    let ca = root("ca");
    let leaf = issue(svid_params("spiffe://example.org"), &ca);
    assert_eq!(verify(&[leaf], &ca), Err(X509SvidError::RootSpiffeId));
}

#[test]
fn spiffe_client_auth_6_1_svid_only_valid_in_its_bundles_trust_domain() {
    let ca = root("ca");
    let leaf = issue(svid_params("spiffe://other.org/ns/a"), &ca);
    assert_eq!(
        verify(&[leaf], &ca),
        Err(X509SvidError::TrustDomainMismatch)
    );
}

#[test]
fn spiffe_x509_svid_leaf_must_not_be_ca() {
    let ca = root("ca");
    let leaf = leaf_with(&ca, |p| {
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    });
    assert_eq!(verify(&[leaf], &ca), Err(X509SvidError::LeafIsCa));
    // Without a basic constraints extension a certificate is no CA.
    let leaf = leaf_with(&ca, |p| p.is_ca = IsCa::NoCa);
    assert_eq!(verify(&[leaf], &ca), Ok(id(SVID)));
}

#[test]
fn spiffe_x509_svid_4_3_key_usage_present_with_digital_signature() {
    let ca = root("ca");
    let missing = leaf_with(&ca, |p| p.key_usages.clear());
    assert_eq!(verify(&[missing], &ca), Err(X509SvidError::MissingKeyUsage));
    let without = leaf_with(&ca, |p| {
        p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]
    });
    assert_eq!(
        verify(&[without], &ca),
        Err(X509SvidError::NoDigitalSignature)
    );
    let more = leaf_with(&ca, |p| {
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyAgreement,
        ]
    });
    assert_eq!(verify(&[more], &ca), Ok(id(SVID)));
}

#[test]
fn spiffe_x509_svid_4_3_leaf_must_not_sign_certificates_or_crls() {
    let ca = root("ca");
    for usage in [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign] {
        let leaf = leaf_with(&ca, |p| {
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature, usage]
        });
        assert_eq!(verify(&[leaf], &ca), Err(X509SvidError::SigningKeyUsage));
    }
}

#[test]
fn spiffe_x509_svid_4_4_extended_key_usage_must_allow_client_auth() {
    let ca = root("ca");
    let server_only = leaf_with(&ca, |p| {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth]
    });
    let error = verify(&[server_only], &ca).unwrap_err();
    assert!(
        matches!(error, X509SvidError::PathValidation(_)),
        "{error:?}"
    );
    assert!(error.to_string().len() < 250, "{error}");
    // No extended key usage at all is accepted (SHOULD, not MUST).
    let none = leaf_with(&ca, |p| p.extended_key_usages.clear());
    assert_eq!(verify(&[none], &ca), Ok(id(SVID)));
}
