use super::*;
use crate::ErrorCode;
use serde_json::json;

fn code_of(json: serde_json::Value) -> Option<ErrorCode> {
    validate_registration(&json, &RegistrationRules::default())
        .err()
        .map(|e| e.code)
}

#[test]
fn rfc7591_defaults() {
    let m = validate_registration(
        &json!({"redirect_uris": ["https://app.example/cb"]}),
        &RegistrationRules::default(),
    )
    .unwrap();
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(m.grant_types, vec!["authorization_code"]);
    assert_eq!(m.response_types, vec!["code"]);
    assert_eq!(m.access_token_lifetime, DEFAULT_ACCESS_TOKEN_LIFETIME);
}

#[test]
fn client_credentials_client_needs_no_redirect() {
    let m = validate_registration(
        &json!({"grant_types": ["client_credentials"], "scope": "read write"}),
        &RegistrationRules::default(),
    )
    .unwrap();
    assert!(m.response_types.is_empty());
    assert_eq!(m.scope.as_deref(), Some("read write"));
}

#[test]
fn oauth21_password_and_implicit_grants_are_refused() {
    assert_eq!(
        code_of(json!({"grant_types": ["password"]})),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code_of(json!({"grant_types": ["implicit"]})),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn oauth21_token_response_type_is_refused() {
    assert_eq!(
        code_of(json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]})),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code_of(
            json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["code token"]})
        ),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn rfc7591_bad_redirect_uri_is_invalid_redirect_uri() {
    for uri in [
        "http://a.example/cb",
        "https://a.example/cb#x",
        "https://*.a.example/cb",
        "/cb",
    ] {
        assert_eq!(
            code_of(json!({"redirect_uris": [uri]})),
            Some(ErrorCode::InvalidRedirectUri),
            "{uri}"
        );
    }
    assert_eq!(
        code_of(json!({"grant_types": ["authorization_code"]})),
        Some(ErrorCode::InvalidRedirectUri)
    );
}

#[test]
fn rfc7591_2_1_inconsistent_grant_and_response_types() {
    assert_eq!(
        code_of(json!({"grant_types": ["client_credentials"], "response_types": ["code"]})),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn rfc7591_2_jwks_and_jwks_uri_are_exclusive() {
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    assert_eq!(
        code_of(
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks, "jwks_uri": "https://a.example/jwks"})
        ),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert!(validate_registration(&json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}), &RegistrationRules::default()).is_ok());
}

#[test]
fn private_key_jwt_requires_keys_and_refuses_private_members() {
    assert_eq!(
        code_of(
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"})
        ),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code_of(
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}})
        ),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn jwks_keys_must_be_usable_for_assertions() {
    let register = |key: serde_json::Value| {
        code_of(
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [key]}}),
        )
    };
    let p256 = json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
    assert_eq!(register(p256.clone()), None);
    let mut p521 = p256.clone();
    p521["crv"] = json!("P-521");
    assert_eq!(register(p521), Some(ErrorCode::InvalidClientMetadata));
    let mut wrong_alg = p256;
    wrong_alg["alg"] = json!("RS256");
    assert_eq!(register(wrong_alg), Some(ErrorCode::InvalidClientMetadata));
    assert_eq!(
        register(json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"})),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn public_client_cannot_use_client_credentials() {
    assert_eq!(
        code_of(
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"})
        ),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn unknown_auth_method_and_bad_types_are_refused() {
    assert_eq!(
        code_of(json!({"token_endpoint_auth_method": "client_secret_jwt"})),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code_of(json!({"redirect_uris": "https://a.example/cb"})),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code_of(json!([1, 2])),
        Some(ErrorCode::InvalidClientMetadata)
    );
    assert_eq!(
        code_of(json!({"grant_types": ["client_credentials"], "access_token_lifetime": 7200})),
        Some(ErrorCode::InvalidClientMetadata)
    );
}

#[test]
fn jwks_uri_must_be_public_unless_allowed() {
    let with_uri = |uri: &str| json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri});
    let strict = RegistrationRules::default();
    let lenient = RegistrationRules {
        allow_private_jwks_uri: true,
        ..RegistrationRules::default()
    };
    for uri in [
        "https://127.0.0.1/jwks",
        "https://10.0.0.8/jwks",
        "https://169.254.169.254/latest",
        "https://localhost/jwks",
        "http://127.0.0.1:8000/jwks",
        "https://[::1]/jwks",
    ] {
        assert!(
            validate_registration(&with_uri(uri), &strict).is_err(),
            "{uri}"
        );
    }
    assert!(validate_registration(&with_uri("https://keys.example.com/jwks"), &strict).is_ok());
    assert!(validate_registration(&with_uri("http://127.0.0.1:8000/jwks"), &lenient).is_ok());
    assert!(validate_registration(&with_uri("http://keys.example.com/jwks"), &lenient).is_err());
}

#[test]
fn unknown_metadata_is_ignored() {
    assert!(validate_registration(
        &json!({"grant_types": ["client_credentials"], "x_custom": 1}),
        &RegistrationRules::default(),
    )
    .is_ok());
}

#[test]
fn stored_form_round_trips() {
    let m = validate_registration(
        &json!({"grant_types": ["client_credentials"], "client_name": "n"}),
        &RegistrationRules::default(),
    )
    .unwrap();
    let text = serde_json::to_string(&m).unwrap();
    let back: ClientMetadata = serde_json::from_str(&text).unwrap();
    assert_eq!(back, m);
}

#[test]
fn governance_fields_are_kept_and_bounded() {
    let m = validate_registration(
        &json!({"grant_types": ["client_credentials"], "owner": "team-payments",
                "tags": ["ci", "agent", "ci"], "review_interval": 90}),
        &RegistrationRules::default(),
    )
    .unwrap();
    assert_eq!(m.owner.as_deref(), Some("team-payments"));
    assert_eq!(m.tags, vec!["ci", "agent"]);
    assert_eq!(m.review_interval, Some(90));
    for bad in [
        json!({"grant_types": ["client_credentials"], "tags": ["has space"]}),
        json!({"grant_types": ["client_credentials"], "tags": [""]}),
        json!({"grant_types": ["client_credentials"], "tags": (0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
        json!({"grant_types": ["client_credentials"], "owner": " "}),
        json!({"grant_types": ["client_credentials"], "owner": "a\u{7}b"}),
        json!({"grant_types": ["client_credentials"], "review_interval": 0}),
    ] {
        assert_eq!(
            code_of(bad.clone()),
            Some(ErrorCode::InvalidClientMetadata),
            "{bad}"
        );
    }
}
