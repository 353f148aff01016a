use super::test_certs::{root, x509_key};
use super::*;
use proptest::prelude::*;
use serde_json::json;

fn id(text: &str) -> SpiffeId {
    SpiffeId::parse(text).unwrap()
}

fn domain(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

// SPIFFE-ID §2

#[test]
fn spiffe_id_2_valid_ids_and_their_parts() {
    let cases = [
        ("spiffe://example.org", "example.org", ""),
        (
            "spiffe://example.org/ns/payments/sa/api",
            "example.org",
            "/ns/payments/sa/api",
        ),
        (
            "spiffe://a-b_c.9/Mixed.Case-Path_0",
            "a-b_c.9",
            "/Mixed.Case-Path_0",
        ),
        ("spiffe://10.0.0.1/w", "10.0.0.1", "/w"),
        ("spiffe://td/...", "td", "/..."),
    ];
    for (text, trust_domain, path) in cases {
        let parsed = id(text);
        assert_eq!(parsed.as_str(), text);
        assert_eq!(parsed.trust_domain(), trust_domain, "{text}");
        assert_eq!(parsed.path(), path, "{text}");
        assert_eq!(parsed.to_string(), text);
    }
}

#[test]
fn spiffe_id_2_1_scheme_is_spiffe_in_lowercase() {
    for text in [
        "SPIFFE://example.org/a",
        "Spiffe://example.org/a",
        "https://example.org/a",
        "spiffe:/example.org/a",
        "spiffe:example.org",
        "",
        "example.org/a",
    ] {
        assert_eq!(
            SpiffeId::parse(text),
            Err(SpiffeIdError::WrongScheme),
            "{text}"
        );
    }
}

#[test]
fn spiffe_id_2_1_trust_domain_rules() {
    use SpiffeIdError::*;
    let long = format!("spiffe://{}/a", "a".repeat(256));
    let longest = format!("spiffe://{}/a", "a".repeat(255));
    assert!(SpiffeId::parse(&longest).is_ok());
    let cases: &[(&str, SpiffeIdError)] = &[
        ("spiffe://", EmptyTrustDomain),
        ("spiffe:///a", EmptyTrustDomain),
        ("spiffe://Example.org/a", UppercaseTrustDomain),
        ("spiffe://example.ORG", UppercaseTrustDomain),
        ("spiffe://example.org:443/a", TrustDomainCharacter(':')),
        ("spiffe://user@example.org/a", TrustDomainCharacter('@')),
        ("spiffe://user:pw@example.org/a", TrustDomainCharacter(':')),
        ("spiffe://[::1]/a", TrustDomainCharacter('[')),
        ("spiffe://exa%6Dple.org/a", PercentEncoding),
        ("spiffe://example.org?x", QueryOrFragment),
        ("spiffe://example.org#x", QueryOrFragment),
        ("spiffe://exämple.org/a", TrustDomainCharacter('ä')),
        ("spiffe://*.example.org/a", MisplacedWildcard),
        (&long, TrustDomainTooLong),
    ];
    for (text, error) in cases {
        assert_eq!(SpiffeId::parse(text).as_ref(), Err(error), "{text}");
    }
}

#[test]
fn spiffe_id_2_2_path_rules() {
    use SpiffeIdError::*;
    let cases = [
        ("spiffe://td/", TrailingSlash),
        ("spiffe://td/a/", TrailingSlash),
        ("spiffe://td//a", EmptySegment),
        ("spiffe://td/a//b", EmptySegment),
        ("spiffe://td/.", DotSegment),
        ("spiffe://td/a/../b", DotSegment),
        ("spiffe://td/a/./b", DotSegment),
        ("spiffe://td/a%2Fb", PercentEncoding),
        ("spiffe://td/a?b=c", QueryOrFragment),
        ("spiffe://td/a#frag", QueryOrFragment),
        ("spiffe://td/a b", PathCharacter(' ')),
        ("spiffe://td/a~b", PathCharacter('~')),
        ("spiffe://td/é", PathCharacter('é')),
        ("spiffe://td/a*", MisplacedWildcard),
    ];
    for (text, error) in cases {
        assert_eq!(SpiffeId::parse(text), Err(error), "{text}");
    }
}

#[test]
fn spiffe_id_2_3_at_most_2048_bytes() {
    let prefix = "spiffe://td/";
    let longest = format!(
        "{prefix}{}",
        "a".repeat(MAX_SPIFFE_ID_LENGTH - prefix.len())
    );
    assert!(SpiffeId::parse(&longest).is_ok());
    let longer = format!("{longest}b");
    assert_eq!(SpiffeId::parse(&longer), Err(SpiffeIdError::TooLong));
}

#[test]
fn spiffe_id_errors_never_echo_the_input() {
    let hostile = format!("spiffe://td/{}<script>", "x".repeat(3000));
    for text in [hostile.as_str(), "spiffe://td/<script>", "spiffe://EVIL/a"] {
        let message = SpiffeId::parse(text).unwrap_err().to_string();
        assert!(
            !message.contains("script") && message.len() < 200,
            "{message}"
        );
    }
}

#[test]
fn spiffe_trust_domain_is_a_bare_lowercase_name() {
    assert_eq!(domain("example.org").as_str(), "example.org");
    assert_eq!(
        TrustDomain::parse("spiffe://example.org"),
        Err(SpiffeIdError::TrustDomainCharacter(':'))
    );
    assert_eq!(
        TrustDomain::parse("Example.org"),
        Err(SpiffeIdError::UppercaseTrustDomain)
    );
    assert_eq!(
        TrustDomain::parse("example.org/a"),
        Err(SpiffeIdError::TrustDomainCharacter('/'))
    );
    assert_eq!(TrustDomain::parse(""), Err(SpiffeIdError::EmptyTrustDomain));
    // A map keyed by trust domain is looked up with an ID's trust domain.
    let map = std::collections::HashMap::from([(domain("example.org"), 1)]);
    assert_eq!(
        map.get(id("spiffe://example.org/a").trust_domain()),
        Some(&1)
    );
}

#[test]
fn spiffe_ids_and_patterns_are_json_strings() {
    let parsed: SpiffeId = serde_json::from_value(json!("spiffe://td/a")).unwrap();
    assert_eq!(
        serde_json::to_value(&parsed).unwrap(),
        json!("spiffe://td/a")
    );
    let pattern: SpiffeIdPattern = serde_json::from_value(json!("spiffe://td/ns/*")).unwrap();
    assert_eq!(
        serde_json::to_value(&pattern).unwrap(),
        json!("spiffe://td/ns/*")
    );
    assert!(serde_json::from_value::<SpiffeId>(json!("spiffe://TD/a")).is_err());
    assert!(serde_json::from_value::<TrustDomain>(json!("td:1")).is_err());
}

// draft-ietf-oauth-spiffe-client-auth §5.1: spiffe_id

#[test]
fn spiffe_client_auth_5_1_exact_spiffe_id_matches_only_itself() {
    let pattern = SpiffeIdPattern::parse("spiffe://td/ns/a").unwrap();
    assert_eq!(pattern, SpiffeIdPattern::Exact(id("spiffe://td/ns/a")));
    assert_eq!(pattern.trust_domain(), "td");
    assert!(pattern.matches(&id("spiffe://td/ns/a")));
    for other in [
        "spiffe://td/ns/a/b",
        "spiffe://td/ns",
        "spiffe://td/ns/A",
        "spiffe://tdx/ns/a",
    ] {
        assert!(!pattern.matches(&id(other)), "{other}");
    }
}

#[test]
fn spiffe_client_auth_5_1_wildcard_matches_below_on_a_segment_boundary() {
    let pattern = SpiffeIdPattern::parse("spiffe://td/ns/*").unwrap();
    assert_eq!(pattern, SpiffeIdPattern::Below(id("spiffe://td/ns")));
    assert_eq!(pattern.to_string(), "spiffe://td/ns/*");
    for below in [
        "spiffe://td/ns/a",
        "spiffe://td/ns/a/b",
        "spiffe://td/ns/...",
    ] {
        assert!(pattern.matches(&id(below)), "{below}");
    }
    for other in [
        "spiffe://td/ns",
        "spiffe://td/nsx/a",
        "spiffe://td/n",
        "spiffe://td/NS/a",
        "spiffe://td",
        "spiffe://tdx/ns/a",
        "spiffe://other/ns/a",
        "spiffe://t/d/ns/a",
    ] {
        assert!(!pattern.matches(&id(other)), "{other}");
    }
    // The whole trust domain: any workload in it, not the domain itself.
    let everything = SpiffeIdPattern::parse("spiffe://td/*").unwrap();
    assert!(everything.matches(&id("spiffe://td/a")));
    assert!(!everything.matches(&id("spiffe://td")));
    assert!(!everything.matches(&id("spiffe://td.evil/a")));
}

#[test]
fn spiffe_client_auth_5_1_wildcard_is_exactly_a_final_slash_star() {
    for text in [
        "spiffe://td/ns*",
        "spiffe://td/*/a",
        "spiffe://td/ns/**",
        "spiffe://td/ns/a*b",
        "spiffe://*/a",
        "spiffe://td/ns//*",
        "spiffe://td/ns/*/",
        "spiffe:///*",
        "*",
    ] {
        assert!(SpiffeIdPattern::parse(text).is_err(), "{text}");
    }
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-][A-Za-z0-9._-]{0,7}".prop_filter("not a dot segment", |s| s != "." && s != "..")
}

fn trust_domain() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9._-]{0,15}"
}

fn join(trust_domain: &str, segments: &[String]) -> String {
    let mut text = format!("spiffe://{trust_domain}");
    for segment in segments {
        text.push('/');
        text.push_str(segment);
    }
    text
}

proptest! {
    #[test]
    fn spiffe_client_auth_5_1_every_id_below_the_prefix_matches(
        td in trust_domain(),
        base in prop::collection::vec(segment(), 0..4),
        extra in prop::collection::vec(segment(), 1..4),
    ) {
        let pattern = SpiffeIdPattern::parse(&format!("{}/*", join(&td, &base))).unwrap();
        let below = id(&join(&td, &[base.clone(), extra].concat()));
        prop_assert!(pattern.matches(&below));
        prop_assert!(!pattern.matches(&id(&join(&td, &base))));
        prop_assert!(!SpiffeIdPattern::Exact(id(&join(&td, &base))).matches(&below));
    }

    #[test]
    fn spiffe_client_auth_5_1_no_near_miss_matches(
        td in trust_domain(),
        base in prop::collection::vec(segment(), 1..4),
        extra in prop::collection::vec(segment(), 0..3),
        appended in "[A-Za-z0-9._-]{1,3}",
        other_td in trust_domain(),
        flip in any::<prop::sample::Index>(),
    ) {
        let exact = SpiffeIdPattern::parse(&join(&td, &base)).unwrap();
        let below = SpiffeIdPattern::parse(&format!("{}/*", join(&td, &base))).unwrap();
        // Characters appended to the prefix's last segment.
        let mut longer = base.clone();
        longer.last_mut().unwrap().push_str(&appended);
        let near = id(&join(&td, &[longer, extra.clone()].concat()));
        prop_assert!(!exact.matches(&near));
        prop_assert!(!below.matches(&near));
        // Another trust domain, the same path.
        if other_td != td {
            let moved = id(&join(&other_td, &[base.clone(), extra.clone()].concat()));
            prop_assert!(!exact.matches(&moved));
            prop_assert!(!below.matches(&moved));
        }
        // One letter of the prefix's path in the other case.
        let path: String = base.join("/");
        let letters: Vec<usize> = path
            .char_indices()
            .filter(|(_, c)| c.is_ascii_alphabetic())
            .map(|(i, _)| i)
            .collect();
        if !letters.is_empty() {
            let at = letters[flip.index(letters.len())];
            let mut flipped = path.into_bytes();
            flipped[at] ^= 0x20;
            let flipped = String::from_utf8(flipped).unwrap();
            let case = id(&format!("spiffe://{td}/{flipped}"));
            prop_assert!(!exact.matches(&case));
            let case_below = id(&format!("spiffe://{td}/{flipped}/x"));
            prop_assert!(!below.matches(&case_below));
        }
    }
}

// SPIFFE Trust Domain and Bundle §4

fn bundle(keys: Value) -> Result<SpiffeBundle, BundleError> {
    let document = json!({"keys": keys, "spiffe_sequence": 7, "spiffe_refresh_hint": 300});
    SpiffeBundle::parse(domain("example.org"), document.to_string().as_bytes())
}

fn jwt_key(kid: &str) -> Value {
    json!({
        "kty": "EC", "use": "jwt-svid", "kid": kid, "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    })
}

#[test]
fn spiffe_bundle_4_1_sequence_refresh_hint_and_keys() {
    let ca = root("ca");
    let parsed = bundle(json!([x509_key(&ca), jwt_key("k1")])).unwrap();
    assert_eq!(parsed.trust_domain().as_str(), "example.org");
    assert_eq!(parsed.sequence(), Some(7));
    assert_eq!(parsed.refresh_hint(), Some(300));
    assert_eq!(parsed.x509_authorities(), &[ca.der()]);
    assert_eq!(parsed.jwt_authorities().len(), 1);
    assert_eq!(
        parsed.jwt_authority("k1").unwrap().common.key_id.as_deref(),
        Some("k1")
    );
    assert!(parsed.jwt_authority("k2").is_none());

    let bare = SpiffeBundle::parse(domain("td"), br#"{"keys": []}"#).unwrap();
    assert_eq!((bare.sequence(), bare.refresh_hint()), (None, None));
    assert!(bare.x509_authorities().is_empty() && bare.jwt_authorities().is_empty());
}

#[test]
fn spiffe_bundle_4_1_malformed_documents_are_refused() {
    let parse = |text: &str| SpiffeBundle::parse(domain("td"), text.as_bytes());
    assert!(matches!(parse("not json"), Err(BundleError::NotJson(_))));
    assert!(matches!(parse("[]"), Err(BundleError::NotJson(_))));
    assert_eq!(parse("{}"), Err(BundleError::MissingKeys));
    assert_eq!(parse(r#"{"keys": {}}"#), Err(BundleError::MissingKeys));
    assert_eq!(
        parse(r#"{"keys": [], "spiffe_sequence": -1}"#),
        Err(BundleError::BadSequence)
    );
    assert_eq!(
        parse(r#"{"keys": [], "spiffe_sequence": "7"}"#),
        Err(BundleError::BadSequence)
    );
    assert_eq!(
        parse(r#"{"keys": [], "spiffe_refresh_hint": 1.5}"#),
        Err(BundleError::BadRefreshHint)
    );
    assert_eq!(
        parse(r#"{"keys": [1]}"#),
        Err(BundleError::KeyNotObject { index: 0 })
    );
}

#[test]
fn spiffe_bundle_at_most_1000_keys() {
    let key = json!({"kty": "EC", "use": "wit-svid"});
    assert!(bundle(Value::Array(vec![key.clone(); MAX_BUNDLE_KEYS])).is_ok());
    assert_eq!(
        bundle(Value::Array(vec![key; MAX_BUNDLE_KEYS + 1])),
        Err(BundleError::TooManyKeys)
    );
}

#[test]
fn spiffe_bundle_4_2_keys_with_missing_or_unknown_use_are_ignored() {
    let keys = json!([
        {"kty": "EC", "x5c": ["garbage"]},
        {"kty": "EC", "use": "sig", "x5c": ["garbage"]},
        {"kty": "EC", "use": "X509-SVID", "x5c": ["garbage"]},
        {"kty": "EC", "use": "wit-svid"},
        {"use": "something-new"},
        "x509-svid",
    ]);
    // The last one is no object at all: that is a broken document.
    assert_eq!(
        bundle(keys.clone()),
        Err(BundleError::KeyNotObject { index: 5 })
    );
    let mut keys = keys.as_array().unwrap().clone();
    keys.pop();
    let parsed = bundle(Value::Array(keys)).unwrap();
    assert!(parsed.x509_authorities().is_empty() && parsed.jwt_authorities().is_empty());
}

#[test]
fn spiffe_bundle_4_2_kty_is_required_on_used_keys() {
    let ca = root("ca");
    let mut key = x509_key(&ca);
    key.as_object_mut().unwrap().remove("kty");
    assert_eq!(
        bundle(json!([key])),
        Err(BundleError::MissingKty { index: 0 })
    );
}

#[test]
fn x509_svid_6_bundle_x5c_holds_exactly_one_certificate() {
    let ca = root("ca");
    let der = STANDARD.encode(ca.der());
    for x5c in [json!([]), json!([der, der]), json!(null), json!(der)] {
        let key = json!({"kty": "EC", "use": "x509-svid", "x5c": x5c});
        assert_eq!(
            bundle(json!([key])),
            Err(BundleError::X5cNotOneCertificate { index: 0 }),
            "{x5c}"
        );
    }
    // Not base64 (base64url is not what x5c holds, RFC 7517 §4.7), no DER,
    // empty.
    for x5c in ["%%%", "MII-_w", "AAAA", ""] {
        let key = json!({"kty": "EC", "use": "x509-svid", "x5c": [x5c]});
        assert_eq!(
            bundle(json!([key])),
            Err(BundleError::BadCertificate { index: 0 })
        );
    }
}

#[test]
fn jwt_svid_6_bundle_keys_need_a_kid() {
    let mut key = jwt_key("k");
    key.as_object_mut().unwrap().remove("kid");
    assert_eq!(
        bundle(json!([key])),
        Err(BundleError::MissingKid { index: 0 })
    );
    assert_eq!(
        bundle(json!([jwt_key("")])),
        Err(BundleError::MissingKid { index: 0 })
    );
    assert_eq!(
        bundle(json!([jwt_key("k"), jwt_key("k")])),
        Err(BundleError::DuplicateKid { index: 1 })
    );
}

#[test]
fn jwt_svid_6_bundle_keys_of_unknown_or_symmetric_kty_are_ignored() {
    let keys = json!([
        {"kty": "oct", "use": "jwt-svid", "kid": "mac", "k": "c2VjcmV0"},
        {"kty": "ML-DSA", "use": "jwt-svid", "kid": "future"},
        jwt_key("ec"),
    ]);
    let parsed = bundle(keys).unwrap();
    assert_eq!(parsed.jwt_authorities().len(), 1);
    assert!(parsed.jwt_authority("mac").is_none());
    let broken = json!({"kty": "EC", "use": "jwt-svid", "kid": "k", "crv": "P-256"});
    assert_eq!(
        bundle(json!([broken])),
        Err(BundleError::BadJwk { index: 0 })
    );
}
