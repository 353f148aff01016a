//! Any bytes as an authorization request form: reading the client and
//! redirect URI, resolving it against a registration, validating the rest
//! and building either redirect must never panic; whatever passes is a code
//! request with an S256 challenge, redirected to a registered URI.
#![no_main]
use custos_protocol::authorize::{
    client_and_redirect, error_redirect, resolve_redirect_uri, success_redirect, validate,
};
use custos_protocol::form::FormParams;
use custos_protocol::metadata::{validate_registration, RegistrationRules};
use custos_protocol::pkce::is_valid_challenge;
use custos_protocol::redirect::matches_registered;
use libfuzzer_sys::fuzz_target;

const ISSUER: &str = "https://as.example";

fuzz_target!(|data: &[u8]| {
    let Ok(form) = FormParams::parse(data) else {
        return;
    };
    let Ok(first) = client_and_redirect(&form) else {
        return;
    };
    let client = validate_registration(
        &serde_json::json!({
            "redirect_uris": [
                "https://app.example/cb?app=1",
                "http://127.0.0.1/cb",
                "com.example.app:/oauth2redirect",
            ],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "read write",
        }),
        &RegistrationRules::default(),
    )
    .expect("the fuzz client registers");
    let Ok(redirect_uri) =
        resolve_redirect_uri(first.redirect_uri.as_deref(), &client.redirect_uris)
    else {
        return;
    };
    assert!(matches_registered(&redirect_uri, &client.redirect_uris));
    match validate(&form, &client, redirect_uri.clone()) {
        Ok(request) => {
            assert_eq!(form.get("response_type"), Some("code"));
            assert!(is_valid_challenge(&request.code_challenge));
            assert_eq!(request.redirect_uri, redirect_uri);
            let _ = success_redirect(&redirect_uri, "code", request.state.as_deref(), ISSUER);
        }
        Err(error) => {
            let _ = error_redirect(&redirect_uri, &error, form.get("state"), ISSUER);
        }
    }
});
