use super::*;
use serde_json::json;

const ID: &str = "https://app.example.com/oauth/client.json";

fn rules() -> RegistrationRules {
    RegistrationRules::default()
}

fn doc(extra: Value) -> Vec<u8> {
    let mut d = json!({"client_id": ID, "client_name": "Example MCP client",
                       "redirect_uris": ["http://127.0.0.1:33418/callback", "https://app.example.com/cb"],
                       "grant_types": ["authorization_code"], "response_types": ["code"]});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    serde_json::to_vec(&d).unwrap()
}

#[test]
fn cimd_3_client_id_urls() {
    assert!(check_client_id_url(ID, false).is_ok());
    assert!(check_client_id_url("https://app.example.com:8443/c", false).is_ok());
    for (bad, why) in [
        ("http://app.example.com/c", "scheme"),
        ("https://app.example.com", "path"),
        ("https://app.example.com/", "path"),
        ("https://app.example.com/a/../c", "normal form"),
        ("https://app.example.com/./c", "normal form"),
        ("https://app.example.com/c#f", "fragment"),
        ("https://user:pw@app.example.com/c", "user name"),
        ("https://app.example.com/c?x=1", "query"),
        ("https://10.0.0.1/c", "address"),
        ("https://[::1]/c", "address"),
        ("HTTPS://APP.example.com/c", "normal form"),
        ("https://app.example.com:443/c", "normal form"),
        ("https://app.example.com./c", "trailing dot"),
        ("https://app..example.com/c", "empty labels"),
        ("https:/app.example.com/c", "normal form"),
        ("not a url", "not a URL"),
    ] {
        let error = check_client_id_url(bad, false).expect_err(bad);
        assert!(
            error.description.contains(why),
            "{bad}: {}",
            error.description
        );
    }
    let long = format!(
        "https://app.example.com/{}",
        "a".repeat(MAX_CLIENT_ID_URL_LENGTH)
    );
    assert!(check_client_id_url(&long, false).is_err());
    // Development (CUSTOS_ALLOW_PRIVATE_URLS): plain http and addresses.
    assert!(check_client_id_url("http://127.0.0.1:9000/client.json", true).is_ok());
    assert!(check_client_id_url("http://127.0.0.1:9000/client.json", false).is_err());
    assert!(check_client_id_url("ftp://127.0.0.1/c", true).is_err());
    assert!(is_document_client_id(ID) && is_document_client_id("HTTPS://x"));
    assert!(is_document_client_id_or_http("http://x/y") && !is_document_client_id("http://x/y"));
    assert!(!is_document_client_id("abc") && !is_document_client_id("http://x/y"));
}

#[test]
fn cimd_4_1_document_is_the_clients_metadata() {
    let metadata = validate_document(ID, &doc(json!({})), &rules()).unwrap();
    assert_eq!(metadata.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(metadata.client_name.as_deref(), Some("Example MCP client"));
    assert_eq!(metadata.redirect_uris.len(), 2);
}

#[test]
fn cimd_4_1_client_id_must_be_its_own_url_exactly() {
    for other in [
        json!("https://app.example.com/oauth/client.json/"),
        json!("https://APP.example.com/oauth/client.json"),
        json!("https://evil.example/oauth/client.json"),
        json!(1),
        Value::Null,
    ] {
        let error = validate_document(ID, &doc(json!({"client_id": other})), &rules())
            .expect_err("another client_id");
        assert_eq!(error.code, crate::ErrorCode::InvalidClient);
    }
}

#[test]
fn cimd_6_2_no_shared_secrets() {
    for extra in [
        json!({"client_secret": "s3cret"}),
        json!({"client_secret_expires_at": 0}),
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
        json!({"token_endpoint_auth_method": "client_secret_post"}),
        json!({"token_endpoint_auth_method": "client_secret_jwt"}),
        json!({"token_endpoint_auth_method": "tls_client_auth"}),
    ] {
        assert!(
            validate_document(ID, &doc(extra.clone()), &rules()).is_err(),
            "{extra}"
        );
    }
    // private_key_jwt needs its keys.
    assert!(validate_document(
        ID,
        &doc(json!({"token_endpoint_auth_method": "private_key_jwt"})),
        &rules()
    )
    .is_err());
    let with_keys = doc(json!({"token_endpoint_auth_method": "private_key_jwt",
                               "jwks_uri": "https://app.example.com/jwks.json"}));
    let metadata = validate_document(ID, &with_keys, &rules()).unwrap();
    assert_eq!(
        metadata.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
}

#[test]
fn operator_fields_in_a_document_are_ignored() {
    let metadata = validate_document(
        ID,
        &doc(json!({"owner": "security", "tags": ["trusted"], "access_token_lifetime": 3600,
                    "spiffe_id": "spiffe://example.org/x", "require_pushed_authorization_requests": false})),
        &rules(),
    )
    .unwrap();
    assert_eq!(metadata.owner, None);
    assert!(metadata.tags.is_empty());
    assert_eq!(metadata.attestation.spiffe_id, None);
    assert_eq!(
        metadata.access_token_lifetime,
        crate::metadata::DEFAULT_ACCESS_TOKEN_LIFETIME
    );
}

#[test]
fn cimd_6_6_size_and_shape() {
    let mut big = doc(json!({}));
    big.truncate(big.len() - 1);
    big.extend(
        format!(
            r#","client_uri":"https://app.example.com/{}"}}"#,
            "x".repeat(MAX_DOCUMENT_BYTES)
        )
        .bytes(),
    );
    assert!(validate_document(ID, &big, &rules())
        .unwrap_err()
        .description
        .contains("larger"));
    assert!(validate_document(ID, b"[1,2]", &rules()).is_err());
    assert!(validate_document(ID, b"<html>", &rules()).is_err());
    assert!(validate_document(ID, b"", &rules()).is_err());
}

#[test]
fn cimd_6_3_a_document_may_not_weaken_a_stored_client() {
    let keyed = validate_document(
        ID,
        &doc(json!({"token_endpoint_auth_method": "private_key_jwt",
                    "jwks_uri": "https://app.example.com/jwks.json", "dpop_bound_access_tokens": true})),
        &rules(),
    )
    .unwrap();
    let public = validate_document(ID, &doc(json!({})), &rules()).unwrap();
    assert!(weakens(&keyed, &public).is_some());
    assert!(weakens(&public, &keyed).is_none());
    assert!(weakens(&keyed, &keyed).is_none());
    let unbound = ClientMetadata {
        dpop_bound_access_tokens: false,
        ..keyed.clone()
    };
    assert!(weakens(&keyed, &unbound).unwrap().contains("dpop"));
}

#[test]
fn host_rules() {
    let rules =
        HostRules::new(vec![], vec!["evil.example".into(), "*.bad.example".into()]).unwrap();
    assert!(rules.permits("app.example.com"));
    assert!(!rules.permits("evil.example") && !rules.permits("EVIL.example"));
    assert!(!rules.permits("x.bad.example") && rules.permits("bad.example"));
    assert!(rules.permits("notevil.example"));
    assert!(!rules.lists("app.example.com"));

    let only = HostRules::new(
        vec!["*.corp.example".into(), "tools.example".into()],
        vec![],
    )
    .unwrap();
    assert!(only.permits("mcp.corp.example") && only.lists("mcp.corp.example"));
    assert!(!only.permits("corp.example") && !only.permits("xcorp.example"));
    assert!(only.permits("tools.example") && !only.permits("tools.example.evil"));
    assert!(HostRules::new(vec!["http://x".into()], vec![]).is_err());
    assert!(HostRules::new(vec!["".into()], vec![]).is_err());
}

#[test]
fn cimd_4_4_cache_lifetime() {
    assert_eq!(cache_lifetime(None, None), DEFAULT_CACHE_LIFETIME);
    assert_eq!(
        cache_lifetime(Some("public, max-age=600"), None),
        Duration::from_secs(600)
    );
    assert_eq!(
        cache_lifetime(Some("max-age=600"), Some("100")),
        Duration::from_secs(500)
    );
    assert_eq!(
        cache_lifetime(Some("max-age=600, s-maxage=7200"), None),
        Duration::from_secs(7200)
    );
    assert_eq!(cache_lifetime(Some("no-store"), None), MIN_CACHE_LIFETIME);
    assert_eq!(cache_lifetime(Some("max-age=1"), None), MIN_CACHE_LIFETIME);
    assert_eq!(
        cache_lifetime(Some("max-age=99999999999"), None),
        MAX_CACHE_LIFETIME
    );
    assert_eq!(
        cache_lifetime(Some("max-age=junk"), None),
        DEFAULT_CACHE_LIFETIME
    );
}

proptest::proptest! {
    #[test]
    fn client_id_checks_never_panic(raw in ".{0,300}") {
        let _ = check_client_id_url(&raw, false);
        let _ = check_client_id_url(&raw, true);
        let _ = is_document_client_id(&raw);
    }

    /// An accepted URL is exactly what the parser writes back: the string
    /// compared with the document's `client_id` is the one fetched.
    #[test]
    fn accepted_urls_are_normal(path in "[a-zA-Z0-9._~%/-]{1,40}", host in "[a-z]{1,10}\\.[a-z]{2,5}") {
        let candidate = format!("https://{host}/{path}");
        if let Ok(url) = check_client_id_url(&candidate, false) {
            proptest::prop_assert_eq!(url.as_str(), candidate.as_str());
        }
    }

    /// No near miss of a listed host matches it.
    #[test]
    fn host_patterns_have_no_near_misses(label in "[a-z]{1,8}", noise in "[a-z.-]{0,4}") {
        let rules = HostRules::new(vec![format!("*.{label}.example")], vec![]).unwrap();
        let near = format!("{label}.example{noise}");
        let below = format!(".{}.example", label);
        let matched = rules.permits(&near);
        proptest::prop_assert!(!matched || near.ends_with(&below), "{} matched", near);
        let suffix_attack = format!("x{label}.example");
        proptest::prop_assert!(!rules.permits(&suffix_attack));
    }
}
