use super::*;
use crate::spiffe::test_certs::{issue, root, self_signed, svid_params};
use rcgen::{date_time_ymd, CertificateParams, DnType, DnValue, IsCa, SanType};
use serde_json::json;

fn facts(subject_dn: &str) -> LeafFacts {
    LeafFacts {
        subject_dn: subject_dn.to_owned(),
        san_uris: Vec::new(),
        san_dns: Vec::new(),
        san_ips: Vec::new(),
        san_emails: Vec::new(),
        is_ca: false,
        not_before: 0,
        not_after: 0,
        thumbprint_s256: String::new(),
    }
}

fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CountryName,
        DnValue::PrintableString("US".try_into().unwrap()),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example, Inc.");
    params
        .distinguished_name
        .push(DnType::CommonName, "client 1");
    params.subject_alt_names = vec![
        SanType::URI("https://client.example.com/id".try_into().unwrap()),
        SanType::DnsName("Client.Example.com".try_into().unwrap()),
        SanType::IpAddress("192.0.2.7".parse().unwrap()),
        SanType::IpAddress("2001:db8::7".parse().unwrap()),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
    ];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2028, 1, 1);
    params
}

// RFC 8705 §3.1: x5t#S256

#[test]
fn rfc8705_3_1_thumbprint_is_base64url_sha256_of_the_der() {
    // SHA-256 of the empty string, base64url without padding.
    assert_eq!(
        thumbprint_s256(b""),
        "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
    );
    let der = issue(client_params(), &root("ca"));
    let thumbprint = thumbprint_s256(&der);
    assert_eq!(thumbprint.len(), 43);
    assert!(!thumbprint.contains(['=', '+', '/']));
    assert_eq!(LeafFacts::parse(&der).unwrap().thumbprint_s256, thumbprint);
}

#[test]
fn rfc8705_leaf_facts_read_from_a_certificate() {
    let der = issue(client_params(), &root("ca"));
    let leaf = LeafFacts::parse(&der).unwrap();
    // RFC 4514 §2.1: the last RDN first; §2.4: ',' escaped.
    assert_eq!(leaf.subject_dn, r"CN=client 1,O=Example\, Inc.,C=US");
    assert_eq!(leaf.san_uris, ["https://client.example.com/id"]);
    assert_eq!(leaf.san_dns, ["Client.Example.com"]);
    assert_eq!(leaf.san_ips, ["192.0.2.7", "2001:db8::7"]);
    assert_eq!(leaf.san_emails, ["ops@example.com"]);
    assert!(!leaf.is_ca);
    assert_eq!(leaf.not_before, 1_767_225_600); // 2026-01-01
    assert_eq!(leaf.not_after, 1_830_297_600); // 2028-01-01
    assert!(LeafFacts::parse(&root("ca").der()).unwrap().is_ca);
}

#[test]
fn rfc8705_leaf_facts_refuse_what_is_not_one_certificate() {
    assert_eq!(LeafFacts::parse(b""), Err(X509Error::MalformedCertificate));
    assert_eq!(
        LeafFacts::parse(b"\x30\x03abc"),
        Err(X509Error::MalformedCertificate)
    );
    let mut der = issue(client_params(), &root("ca"));
    der.push(0);
    assert_eq!(LeafFacts::parse(&der), Err(X509Error::TrailingData));
}

// RFC 8705 §2.1.2: tls_client_auth_subject_dn, compared as RFC 4514 names

#[test]
fn rfc8705_2_1_2_subject_dn_matches_normalised_forms() {
    let leaf = facts("CN=client 1,O=Example Corp,C=US");
    for registered in [
        "CN=client 1,O=Example Corp,C=US",
        "cn=client 1,o=Example Corp,c=US",
        "commonName=client 1,organizationName=Example Corp,countryName=US",
        "2.5.4.3=client 1,2.5.4.10=Example Corp,2.5.4.6=US",
        "CN=CLIENT 1,O=example corp,C=us",
        "CN=client 1, O=Example Corp, C=US",
        "CN = client 1 , O = Example Corp , C = US",
        "CN=  client   1 ,O=Example\tCorp,C=US",
        "CN=client\\201,O=Example Corp,C=US",
    ] {
        assert!(subject_dn_matches(registered, &leaf), "{registered}");
    }
}

#[test]
fn rfc8705_2_1_2_subject_dn_differences_do_not_match() {
    let leaf = facts("CN=client 1,O=Example Corp,C=US");
    for registered in [
        "C=US,O=Example Corp,CN=client 1",
        "CN=client 1,O=Example Corp",
        "CN=client 1,O=Example Corp,C=US,DC=com",
        "CN=client 2,O=Example Corp,C=US",
        "CN=client1,O=Example Corp,C=US",
        "CN=client 1+O=Example Corp,C=US",
        "OU=client 1,O=Example Corp,C=US",
        "CN=client 1,O=Example Corp,C=UK",
    ] {
        assert!(!subject_dn_matches(registered, &leaf), "{registered}");
    }
}

#[test]
fn rfc8705_2_1_2_subject_dn_matches_with_escapes() {
    let cases = [
        (r"CN=Doe\, John,O=Example", r"CN=Doe\2C John,O=Example"),
        (r"CN=a\+b,O=Example", r"CN=a\2bb,O=Example"),
        (r"CN=a\;b\<c\>d\=e\\f\22g", r#"CN=a\3Bb\3Cc\3Ed=e\5Cf\"g"#),
        (r"CN=\#1", r"CN=\231"),
        (r"CN=J\C3\BCrgen", "CN=jürgen"),
        (r"CN=JÜRGEN", "CN=jürgen"),
        ("CN=#0c06636c69656e74", "CN=client"),
        ("CN=#1306434c49454e54", "CN=client"),
        ("UID=#0201ff", "UID=#0201FF"),
        (
            "foo=Bar,E=a@example.com",
            "FOO=bar,emailAddress=A@example.com",
        ),
    ];
    for (registered, leaf) in cases {
        assert!(
            subject_dn_matches(registered, &facts(leaf)),
            "{registered} vs {leaf}"
        );
    }
    // The escaped comma is part of the value, not a separator.
    assert!(!subject_dn_matches(
        r"CN=Doe\, John",
        &facts("CN=Doe,CN=John")
    ));
    assert!(!subject_dn_matches("UID=#0201ff", &facts("UID=#0201fe")));
}

#[test]
fn rfc8705_2_1_2_subject_dn_multi_valued_rdns_in_any_order() {
    let leaf = facts("CN=client+UID=42,O=Example");
    assert!(subject_dn_matches("UID=42+CN=client,O=Example", &leaf));
    assert!(subject_dn_matches("cn=Client + uid=42, o=example", &leaf));
    assert!(!subject_dn_matches("CN=client,UID=42,O=Example", &leaf));
    assert!(!subject_dn_matches("CN=client+UID=43,O=Example", &leaf));
    assert!(!subject_dn_matches("CN=client,O=Example", &leaf));
}

#[test]
fn rfc8705_2_1_2_malformed_or_empty_registered_dn_matches_nothing() {
    let empty = facts("");
    assert!(!subject_dn_matches("", &empty));
    assert!(!subject_dn_matches("   ", &empty));
    let leaf = facts("CN=a,O=b");
    for registered in [
        "CN=a;O=b",
        "CN",
        "=a,O=b",
        "CN=a,",
        "CN=a,O=b\\",
        "CN=a\\zz,O=b",
        "CN=a\"b\",O=b",
        "C N=a,O=b",
        "1=a,O=b",
        "01.2.3=a,O=b",
        "2.=a,O=b",
        "CN=#0c0,O=b",
        "CN=#zz,O=b",
        "CN=\\C3,O=b",
    ] {
        assert!(
            DistinguishedName::parse(registered).is_err(),
            "{registered}"
        );
        assert!(!subject_dn_matches(registered, &leaf), "{registered}");
    }
    let long = format!("CN={}", "a".repeat(MAX_DN_LENGTH));
    assert_eq!(DistinguishedName::parse(&long), Err(X509Error::DnTooLong));
}

#[test]
fn rfc4514_2_subject_string_round_trips_special_values() {
    let mut params = client_params();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "#lead, \"quoted\" + <x>; \\ trail ");
    params.distinguished_name.push(
        DnType::OrganizationName,
        DnValue::BmpString("Bmp Ünïcode".try_into().unwrap()),
    );
    params
        .distinguished_name
        .push(DnType::CustomDnType(vec![2, 5, 4, 97]), "org-id");
    let der = issue(params, &root("ca"));
    let leaf = LeafFacts::parse(&der).unwrap();
    assert_eq!(
        leaf.subject_dn,
        r#"2.5.4.97=org-id,O=Bmp Ünïcode,CN=\#lead\, \"quoted\" \+ \<x\>\; \\ trail\ "#
    );
    assert!(subject_dn_matches(
        r#"2.5.4.97=ORG-ID,O=bmp ünïcode,CN=\#lead\2C \22quoted\" \+ \<x\>\; \\ trail"#,
        &leaf
    ));
}

// RFC 8705 §2.1.2: exactly one expected subject value

#[test]
fn rfc8705_2_1_2_each_expectation_reads_its_own_san_type() {
    let leaf = LeafFacts::parse(&issue(client_params(), &root("ca"))).unwrap();
    use TlsClientAuthExpectation::*;
    let matching = [
        SubjectDn("cn=Client 1, o=Example\\, Inc., c=us".into()),
        SanDns("client.example.COM".into()),
        SanUri("https://client.example.com/id".into()),
        SanIp("192.0.2.7".into()),
        SanIp("2001:DB8:0:0::7".into()),
        SanEmail("ops@example.com".into()),
    ];
    for expectation in matching {
        assert!(expectation.matches(&leaf), "{expectation:?}");
    }
    let other = [
        SubjectDn("CN=client 1".into()),
        SubjectDn("".into()),
        SanDns("other.example.com".into()),
        SanDns("client.example.com.evil".into()),
        SanDns("".into()),
        // URIs are compared exactly, case included.
        SanUri("https://CLIENT.example.com/id".into()),
        SanUri("https://client.example.com/id/".into()),
        SanUri("".into()),
        // Binary comparison: an IPv4-mapped IPv6 address is not the IPv4 one.
        SanIp("::ffff:192.0.2.7".into()),
        SanIp("192.0.2.70".into()),
        SanIp("not an ip".into()),
        SanEmail("OPS@example.com".into()),
        SanEmail("".into()),
        // A value of one type is not looked for among the others.
        SanDns("ops@example.com".into()),
        SanEmail("Client.Example.com".into()),
        SanUri("192.0.2.7".into()),
    ];
    for expectation in other {
        assert!(!expectation.matches(&leaf), "{expectation:?}");
    }
}

#[test]
fn rfc8705_2_1_2_metadata_names_and_registration_checks() {
    use TlsClientAuthExpectation::*;
    for (i, name) in TlsClientAuthExpectation::METADATA_NAMES.iter().enumerate() {
        let expectation = TlsClientAuthExpectation::from_metadata(name, "x").unwrap();
        let expected = [SubjectDn, SanDns, SanUri, SanIp, SanEmail][i]("x".into());
        assert_eq!(expectation, expected);
    }
    assert_eq!(
        TlsClientAuthExpectation::from_metadata("tls_client_auth", "x"),
        None
    );
    assert!(SubjectDn("CN=a".into()).validate().is_ok());
    assert_eq!(SubjectDn("".into()).validate(), Err(X509Error::EmptyDn));
    assert!(matches!(
        SubjectDn("CN".into()).validate(),
        Err(X509Error::MalformedDn { .. })
    ));
    assert!(SanIp("::1".into()).validate().is_ok());
    assert_eq!(
        SanIp("1.2.3".into()).validate(),
        Err(X509Error::MalformedIp)
    );
    assert_eq!(SanDns("".into()).validate(), Err(X509Error::EmptyValue));
    assert!(SanUri("spiffe://td/a".into()).validate().is_ok());
}

// RFC 8705 §2.2: self_signed_tls_client_auth

#[test]
fn rfc8705_2_2_self_signed_certificate_matches_a_registered_x5c() {
    let (der, jwk) = self_signed(client_params());
    let (other_der, other_jwk) = self_signed(client_params());
    let jwks = |keys: serde_json::Value| -> JwkSet {
        serde_json::from_value(json!({ "keys": keys })).unwrap()
    };
    assert!(self_signed_matches(&der, &jwks(json!([jwk.clone()]))));
    assert!(self_signed_matches(
        &der,
        &jwks(json!([other_jwk.clone(), jwk.clone()]))
    ));
    assert!(!self_signed_matches(
        &other_der,
        &jwks(json!([jwk.clone()]))
    ));
    assert!(!self_signed_matches(&der, &jwks(json!([]))));
    // Only the first x5c certificate is the key's own.
    let mut chained = other_jwk.clone();
    chained["x5c"] = json!([other_jwk["x5c"][0], jwk["x5c"][0]]);
    assert!(!self_signed_matches(&der, &jwks(json!([chained]))));
    // A key without x5c registers no certificate.
    let mut bare = jwk.clone();
    bare.as_object_mut().unwrap().remove("x5c");
    assert!(!self_signed_matches(&der, &jwks(json!([bare]))));
}

#[test]
fn rfc8705_2_2_self_signed_ignores_the_chain_and_validity() {
    // An expired, self-issued CA certificate is still the registered one.
    let mut params = svid_params("spiffe://example.org/a");
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_after = date_time_ymd(2020, 1, 1);
    params.not_before = date_time_ymd(2019, 1, 1);
    let (der, jwk) = self_signed(params);
    let jwks: JwkSet = serde_json::from_value(json!({ "keys": [jwk] })).unwrap();
    assert!(self_signed_matches(&der, &jwks));
}
