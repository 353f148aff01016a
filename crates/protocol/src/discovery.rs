//! Authorization server metadata (RFC 8414 §2), built from what this server
//! really supports — nothing is advertised that does not work.

use serde_json::{json, Value};

/// Endpoint paths, relative to the issuer.
pub mod paths {
    pub const AUTHORIZATION: &str = "/authorize";
    pub const TOKEN: &str = "/token";
    pub const PAR: &str = "/par";
    pub const JWKS: &str = "/jwks";
    pub const REGISTRATION: &str = "/register";
    pub const INTROSPECTION: &str = "/introspect";
    pub const REVOCATION: &str = "/revoke";
}

/// Algorithms accepted on `private_key_jwt` assertions.
pub const ASSERTION_SIGNING_ALGS: [&str; 8] = [
    "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "EdDSA",
];

/// What the server really serves, as its grant and client-authentication
/// tables say.
#[derive(Debug, Clone)]
pub struct Capabilities<'a> {
    /// The issuer identifier, without a trailing slash.
    pub issuer: &'a str,
    /// The algorithm access tokens are signed with.
    pub signing_alg: &'a str,
    /// `grant_type`s the token endpoint dispatches.
    pub grant_types: &'a [&'a str],
    /// Client authentication methods with an implementation, `none`
    /// (public clients) included.
    pub auth_methods: &'a [&'a str],
    /// Every authorization request must be pushed (RFC 9126 §5).
    pub require_par: bool,
    /// The server asks for TLS client certificates (RFC 8705).
    pub mtls: bool,
    /// `https://` client ids are resolved by their metadata documents
    /// (draft-ietf-oauth-client-id-metadata-document §5).
    pub client_id_metadata_documents: bool,
}

/// The metadata document (RFC 8414 §2).
pub fn authorization_server_metadata(capabilities: &Capabilities<'_>) -> Value {
    let Capabilities {
        issuer,
        signing_alg,
        grant_types,
        auth_methods,
        require_par,
        mtls,
        client_id_metadata_documents,
    } = capabilities;
    let endpoint = |path: &str| format!("{issuer}{path}");
    // Introspection needs a confidential client (RFC 7662 §2.1).
    let confidential: Vec<&str> = auth_methods
        .iter()
        .copied()
        .filter(|m| *m != "none")
        .collect();
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": endpoint(paths::AUTHORIZATION),
        "token_endpoint": endpoint(paths::TOKEN),
        "pushed_authorization_request_endpoint": endpoint(paths::PAR),
        "require_pushed_authorization_requests": require_par,
        "jwks_uri": endpoint(paths::JWKS),
        "registration_endpoint": endpoint(paths::REGISTRATION),
        "introspection_endpoint": endpoint(paths::INTROSPECTION),
        "revocation_endpoint": endpoint(paths::REVOCATION),
        "grant_types_supported": grant_types,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "response_modes_supported": ["query"],
        "authorization_response_iss_parameter_supported": true,
        "token_endpoint_auth_methods_supported": auth_methods,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "introspection_endpoint_auth_methods_supported": confidential,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_SIGNING_ALGS,
        "access_token_signing_alg_values_supported": [signing_alg],
        "dpop_signing_alg_values_supported": crate::dpop::DPOP_SIGNING_ALGS,
        "client_id_metadata_document_supported": client_id_metadata_documents,
    });
    if grant_types.contains(&crate::names::GRANT_JWT_BEARER) {
        // MCP enterprise-managed authorization: ID-JAGs at the JWT bearer
        // grant (draft-ietf-oauth-identity-assertion-authz-grant).
        doc["authorization_grant_profiles_supported"] =
            json!([crate::grant::id_jag::ID_JAG_PROFILE]);
    }
    if *mtls {
        // RFC 8705 §3.3, §5: certificate-bound tokens; every endpoint takes
        // client certificates on the same listener, so the aliases are the
        // endpoints themselves (for clients that look only there).
        doc["tls_client_certificate_bound_access_tokens"] = json!(true);
        doc["mtls_endpoint_aliases"] = json!({
            "token_endpoint": endpoint(paths::TOKEN),
            "pushed_authorization_request_endpoint": endpoint(paths::PAR),
            "introspection_endpoint": endpoint(paths::INTROSPECTION),
            "revocation_endpoint": endpoint(paths::REVOCATION),
            "registration_endpoint": endpoint(paths::REGISTRATION),
        });
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_2_required_fields_and_oauth21_values() {
        let doc = authorization_server_metadata(&Capabilities {
            issuer: "https://as.example",
            signing_alg: "ES256",
            grant_types: &["client_credentials"],
            auth_methods: &["client_secret_basic", "private_key_jwt"],
            require_par: false,
            mtls: false,
            client_id_metadata_documents: true,
        });
        assert_eq!(doc["issuer"], "https://as.example");
        assert_eq!(doc["token_endpoint"], "https://as.example/token");
        assert_eq!(doc["response_types_supported"], json!(["code"]));
        assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
        let grants = doc["grant_types_supported"].as_array().unwrap();
        assert!(!grants.iter().any(|g| g == "password" || g == "implicit"));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            json!(["client_secret_basic", "private_key_jwt"])
        );
    }
}

#[cfg(test)]
mod mtls_tests {
    use super::*;

    fn doc(mtls: bool) -> Value {
        authorization_server_metadata(&Capabilities {
            issuer: "https://as.example",
            signing_alg: "ES256",
            grant_types: &["client_credentials"],
            auth_methods: &["tls_client_auth", "private_key_jwt"],
            require_par: false,
            mtls,
            client_id_metadata_documents: false,
        })
    }

    #[test]
    fn rfc8705_3_3_and_5_metadata_only_with_mtls() {
        let on = doc(true);
        assert_eq!(on["tls_client_certificate_bound_access_tokens"], true);
        assert_eq!(
            on["mtls_endpoint_aliases"]["token_endpoint"],
            "https://as.example/token"
        );
        let off = doc(false);
        assert!(off
            .get("tls_client_certificate_bound_access_tokens")
            .is_none());
        assert!(off.get("mtls_endpoint_aliases").is_none());
    }
}
