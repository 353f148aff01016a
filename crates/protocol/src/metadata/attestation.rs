//! The registration metadata of clients whose platform proves who they are:
//! RFC 8705's mTLS subject (§2.1.2) and certificate binding (§3.4),
//! draft-ietf-oauth-spiffe-client-auth's `spiffe_id`, and custos's
//! `federated_credentials` (CONTRACT.md). Checked against the client's
//! `token_endpoint_auth_method`: a method gets exactly the metadata it
//! needs, and metadata no registered method reads is refused rather than
//! silently kept.

use super::{short, AuthMethod};
use crate::spiffe::SpiffeIdPattern;
use crate::x509::TlsClientAuthExpectation;
use crate::OAuthError;
use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many federated credentials per client.
pub const MAX_FEDERATED_CREDENTIALS: usize = 16;
/// At most this many claim conditions per federated credential.
pub const MAX_CLAIM_CONDITIONS: usize = 16;
/// Longest issuer, subject, audience or claim value of a credential.
const MAX_VALUE: usize = 512;
/// Longest claim name (or JSON pointer) of a condition.
const MAX_CLAIM_NAME: usize = 128;

/// How an attested client is recognised, as stored and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationMetadata {
    /// RFC 8705 §2.1.2: the one expected subject value of a
    /// `tls_client_auth` client (at most one of the five is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// RFC 8705 §3.4: every access token of this client is bound to the
    /// certificate it presented; a request without one gets nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// The SPIFFE ID (or `spiffe://td/path/*` prefix) of a `spiffe_jwt` or
    /// `spiffe_x509` client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spiffe_id: Option<String>,
    /// Tokens from trusted issuers that stand for this client: for
    /// `federated_jwt` authentication and the JWT bearer grant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_credentials: Vec<FederatedCredential>,
}

impl AttestationMetadata {
    /// The registered fields that name a workload identity the client may
    /// authenticate as (never settable by the client itself).
    pub fn identity_fields(&self) -> Vec<&'static str> {
        let mut fields: Vec<&'static str> = TlsClientAuthExpectation::METADATA_NAMES
            .iter()
            .zip(self.tls_values())
            .filter(|(_, value)| value.is_some())
            .map(|(name, _)| *name)
            .collect();
        if self.spiffe_id.is_some() {
            fields.push("spiffe_id");
        }
        if !self.federated_credentials.is_empty() {
            fields.push("federated_credentials");
        }
        fields
    }

    /// The registered `tls_client_auth` subject value.
    pub fn tls_expectation(&self) -> Option<TlsClientAuthExpectation> {
        TlsClientAuthExpectation::METADATA_NAMES
            .iter()
            .zip(self.tls_values())
            .find_map(|(name, value)| {
                value.and_then(|v| TlsClientAuthExpectation::from_metadata(name, v))
            })
    }

    /// The registered SPIFFE ID pattern.
    pub fn spiffe_pattern(&self) -> Option<SpiffeIdPattern> {
        self.spiffe_id
            .as_deref()
            .and_then(|id| SpiffeIdPattern::parse(id).ok())
    }

    /// The values of the five `tls_client_auth_*` members, in the order of
    /// [`TlsClientAuthExpectation::METADATA_NAMES`].
    fn tls_values(&self) -> [Option<&str>; 5] {
        [
            self.tls_client_auth_subject_dn.as_deref(),
            self.tls_client_auth_san_dns.as_deref(),
            self.tls_client_auth_san_uri.as_deref(),
            self.tls_client_auth_san_ip.as_deref(),
            self.tls_client_auth_san_email.as_deref(),
        ]
    }
}

/// A token from a trusted issuer that stands for the client: its `iss`
/// and `sub` must equal these exactly, its `aud` must name `audience` (or,
/// without one, this server), and each claim condition must hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Conditions beyond `sub`: claim name (or an RFC 6901 JSON pointer
    /// starting with `/`, for nested claims such as
    /// `/kubernetes.io/namespace`) → the exact string it must hold.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
}

impl FederatedCredential {
    /// Whether a verified token's claims satisfy this credential's `iss`,
    /// `sub` and claim conditions (`aud` is the verifier's).
    pub fn matches(&self, claims: &serde_json::Value) -> bool {
        let str_claim = |name: &str| claims.get(name).and_then(|v| v.as_str());
        str_claim("iss") == Some(self.issuer.as_str())
            && str_claim("sub") == Some(self.subject.as_str())
            && self.claims.iter().all(|(name, expected)| {
                let value = if name.starts_with('/') {
                    claims.pointer(name)
                } else {
                    claims.get(name)
                };
                value.and_then(|v| v.as_str()) == Some(expected.as_str())
            })
    }
}

/// What a registration request may send.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RawAttestation {
    tls_client_auth_subject_dn: Option<String>,
    tls_client_auth_san_dns: Option<String>,
    tls_client_auth_san_uri: Option<String>,
    tls_client_auth_san_ip: Option<String>,
    tls_client_auth_san_email: Option<String>,
    tls_client_certificate_bound_access_tokens: Option<bool>,
    spiffe_id: Option<String>,
    federated_credentials: Option<Vec<serde_json::Value>>,
}

fn bad(message: impl Into<String>) -> OAuthError {
    OAuthError::invalid_client_metadata(message)
}

/// Checks the attestation metadata of a client registering `method`.
pub(super) fn validate(
    method: AuthMethod,
    raw: RawAttestation,
    jwks: Option<&JwkSet>,
) -> Result<AttestationMetadata, OAuthError> {
    let metadata = AttestationMetadata {
        tls_client_auth_subject_dn: raw.tls_client_auth_subject_dn,
        tls_client_auth_san_dns: raw.tls_client_auth_san_dns,
        tls_client_auth_san_uri: raw.tls_client_auth_san_uri,
        tls_client_auth_san_ip: raw.tls_client_auth_san_ip,
        tls_client_auth_san_email: raw.tls_client_auth_san_email,
        tls_client_certificate_bound_access_tokens: raw
            .tls_client_certificate_bound_access_tokens
            .unwrap_or(false),
        spiffe_id: raw.spiffe_id,
        federated_credentials: raw
            .federated_credentials
            .map(|list| validate_credentials(&list))
            .transpose()?
            .unwrap_or_default(),
    };

    let tls_given: Vec<&str> = TlsClientAuthExpectation::METADATA_NAMES
        .iter()
        .zip(metadata.tls_values())
        .filter(|(_, value)| value.is_some())
        .map(|(name, _)| *name)
        .collect();
    if method == AuthMethod::TlsClientAuth {
        // RFC 8705 §2.1.2: exactly one of them.
        let [name] = tls_given.as_slice() else {
            return Err(bad(format!(
                "tls_client_auth needs exactly one of {} (RFC 8705 §2.1.2)",
                TlsClientAuthExpectation::METADATA_NAMES.join(", ")
            )));
        };
        let value = metadata.tls_values().into_iter().flatten().next();
        let expectation = value
            .and_then(|v| TlsClientAuthExpectation::from_metadata(name, v))
            .ok_or_else(|| bad(format!("{name} is not valid")))?;
        expectation
            .validate()
            .map_err(|e| bad(format!("{name}: {e}")))?;
    } else if let Some(name) = tls_given.first() {
        return Err(bad(format!(
            "{name} is only read for token_endpoint_auth_method tls_client_auth"
        )));
    }

    if method == AuthMethod::SelfSignedTlsClientAuth {
        // RFC 8705 §2.2: the certificates are registered as `x5c` of the
        // client's keys.
        let has_certificate = jwks.is_some_and(|set| {
            set.keys.iter().any(|key| {
                key.common
                    .x509_chain
                    .as_ref()
                    .is_some_and(|c| !c.is_empty())
            })
        });
        if !has_certificate {
            return Err(bad(
                "self_signed_tls_client_auth needs jwks with at least one key carrying its certificate in x5c (RFC 8705 §2.2)",
            ));
        }
    }

    let spiffe_method = matches!(method, AuthMethod::SpiffeJwt | AuthMethod::SpiffeX509);
    match (&metadata.spiffe_id, spiffe_method) {
        (Some(id), true) => {
            SpiffeIdPattern::parse(id).map_err(|e| bad(format!("spiffe_id: {e}")))?;
        }
        (None, true) => {
            return Err(bad(format!(
                "{} needs spiffe_id (a SPIFFE ID, or spiffe://trust-domain/path/* for every ID below a path)",
                method.as_str()
            )))
        }
        (Some(_), false) => {
            return Err(bad(
                "spiffe_id is only read for token_endpoint_auth_method spiffe_jwt or spiffe_x509",
            ))
        }
        (None, false) => {}
    }

    if method == AuthMethod::FederatedJwt && metadata.federated_credentials.is_empty() {
        return Err(bad(
            "federated_jwt needs federated_credentials: [{\"issuer\", \"subject\", \"audience\"?, \"claims\"?}]",
        ));
    }
    Ok(metadata)
}

fn validate_credentials(
    list: &[serde_json::Value],
) -> Result<Vec<FederatedCredential>, OAuthError> {
    if list.is_empty() || list.len() > MAX_FEDERATED_CREDENTIALS {
        return Err(bad(format!(
            "federated_credentials must hold between 1 and {MAX_FEDERATED_CREDENTIALS} entries"
        )));
    }
    let mut credentials = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        let credential: FederatedCredential = serde_json::from_value(value.clone())
            .map_err(|e| bad(format!("federated_credentials[{i}]: {e}")))?;
        let text_ok =
            |v: &str| !v.is_empty() && v.len() <= MAX_VALUE && !v.chars().any(char::is_control);
        for (name, field) in [
            ("issuer", Some(credential.issuer.as_str())),
            ("subject", Some(credential.subject.as_str())),
            ("audience", credential.audience.as_deref()),
        ] {
            if field.is_some_and(|v| !text_ok(v)) {
                return Err(bad(format!(
                    "federated_credentials[{i}].{name} must be 1 to {MAX_VALUE} characters without control characters"
                )));
            }
        }
        // Trusted OIDC issuers are https URLs; a JWT-SVID without such an
        // `iss` is for spiffe_jwt, not a federated credential.
        let issuer = url::Url::parse(&credential.issuer).ok();
        if !issuer
            .as_ref()
            .is_some_and(|u| u.scheme() == "https" && u.host().is_some())
        {
            return Err(bad(format!(
                "federated_credentials[{i}].issuer must be the https URL a trusted OIDC issuer's tokens carry in iss (for SPIFFE JWT-SVIDs, register spiffe_jwt with a spiffe_id): '{}'",
                short(&credential.issuer)
            )));
        }
        if credential.claims.len() > MAX_CLAIM_CONDITIONS
            || credential.claims.iter().any(|(name, value)| {
                name.is_empty() || name.len() > MAX_CLAIM_NAME || !text_ok(value)
            })
        {
            return Err(bad(format!(
                "federated_credentials[{i}].claims: at most {MAX_CLAIM_CONDITIONS} conditions, names of 1 to {MAX_CLAIM_NAME} characters, string values of 1 to {MAX_VALUE}"
            )));
        }
        if credential.claims.contains_key("iss") || credential.claims.contains_key("sub") {
            return Err(bad(format!(
                "federated_credentials[{i}].claims: iss and sub are given by issuer and subject"
            )));
        }
        if credentials.contains(&credential) {
            return Err(bad(format!("federated_credentials[{i}] is listed twice")));
        }
        credentials.push(credential);
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(value: serde_json::Value) -> RawAttestation {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rfc8705_2_1_2_tls_client_auth_needs_exactly_one_subject_value() {
        assert!(validate(AuthMethod::TlsClientAuth, raw(json!({})), None).is_err());
        let two =
            json!({"tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a.example"});
        assert!(validate(AuthMethod::TlsClientAuth, raw(two), None).is_err());
        let one = validate(
            AuthMethod::TlsClientAuth,
            raw(json!({"tls_client_auth_san_uri": "spiffe://example.org/ns/prod/sa/api"})),
            None,
        )
        .unwrap();
        assert_eq!(
            one.tls_expectation(),
            Some(TlsClientAuthExpectation::SanUri(
                "spiffe://example.org/ns/prod/sa/api".into()
            ))
        );
        // Read only for tls_client_auth.
        assert!(validate(
            AuthMethod::PrivateKeyJwt,
            raw(json!({"tls_client_auth_subject_dn": "CN=a"})),
            None
        )
        .is_err());
        assert!(validate(
            AuthMethod::TlsClientAuth,
            raw(json!({"tls_client_auth_san_ip": "not an ip"})),
            None
        )
        .is_err());
    }

    #[test]
    fn rfc8705_2_2_self_signed_needs_a_registered_certificate() {
        assert!(validate(AuthMethod::SelfSignedTlsClientAuth, raw(json!({})), None).is_err());
        let without_x5c: JwkSet = serde_json::from_value(json!({"keys": [{
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRjmAr1hfr-b1Xxw6DiDa1Ufo2Ws1sD7FH1AVGc"}]}))
        .unwrap();
        assert!(validate(
            AuthMethod::SelfSignedTlsClientAuth,
            raw(json!({})),
            Some(&without_x5c)
        )
        .is_err());
    }

    #[test]
    fn spiffe_methods_need_a_valid_spiffe_id_and_others_refuse_one() {
        assert!(validate(AuthMethod::SpiffeJwt, raw(json!({})), None).is_err());
        assert!(validate(
            AuthMethod::SpiffeX509,
            raw(json!({"spiffe_id": "spiffe://Example.org/x"})),
            None
        )
        .is_err());
        let ok = validate(
            AuthMethod::SpiffeJwt,
            raw(json!({"spiffe_id": "spiffe://example.org/ns/prod/*"})),
            None,
        )
        .unwrap();
        assert!(ok.spiffe_pattern().is_some());
        assert!(validate(
            AuthMethod::ClientSecretBasic,
            raw(json!({"spiffe_id": "spiffe://example.org/a"})),
            None
        )
        .is_err());
    }

    #[test]
    fn federated_credentials_are_checked() {
        assert!(validate(AuthMethod::FederatedJwt, raw(json!({})), None).is_err());
        for bad in [
            json!([]),
            json!([{"issuer": "http://insecure.example", "subject": "s"}]),
            json!([{"issuer": "https://i.example", "subject": ""}]),
            json!([{"issuer": "https://i.example", "subject": "s", "claims": {"sub": "x"}}]),
            json!([{"issuer": "https://i.example", "subject": "s"}, {"issuer": "https://i.example", "subject": "s"}]),
            json!([{"issuer": "https://i.example", "subject": "s", "claims": {"ref": 1}}]),
            json!([{"issuer": "spiffe://example.org", "subject": "spiffe://example.org/a"}]),
        ] {
            assert!(
                validate(
                    AuthMethod::FederatedJwt,
                    raw(json!({"federated_credentials": bad.clone()})),
                    None
                )
                .is_err(),
                "{bad}"
            );
        }
        let ok = validate(
            AuthMethod::FederatedJwt,
            raw(json!({"federated_credentials": [{
                "issuer": "https://token.actions.githubusercontent.com",
                "subject": "repo:acme/api:environment:prod",
                "claims": {"repository": "acme/api", "/kubernetes.io/namespace": "prod"}
            }]})),
            None,
        )
        .unwrap();
        assert_eq!(ok.federated_credentials.len(), 1);
    }

    #[test]
    fn a_federated_credential_matches_iss_sub_and_every_condition() {
        let credential = FederatedCredential {
            issuer: "https://k8s.example".into(),
            subject: "system:serviceaccount:prod:api".into(),
            audience: None,
            claims: BTreeMap::from([("/kubernetes.io/namespace".to_owned(), "prod".to_owned())]),
        };
        let claims = json!({
            "iss": "https://k8s.example",
            "sub": "system:serviceaccount:prod:api",
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "api"}}
        });
        assert!(credential.matches(&claims));
        let mut other_ns = claims.clone();
        other_ns["kubernetes.io"]["namespace"] = json!("dev");
        assert!(!credential.matches(&other_ns));
        let mut other_sub = claims.clone();
        other_sub["sub"] = json!("system:serviceaccount:prod:api2");
        assert!(!credential.matches(&other_sub));
        let mut missing = claims;
        missing.as_object_mut().unwrap().remove("kubernetes.io");
        assert!(!credential.matches(&missing));
    }

    #[test]
    fn a_client_cannot_change_the_workload_identity_it_authenticates_as() {
        use crate::metadata::self_service::check_update;
        use crate::metadata::{validate_registration, RegistrationRules};
        let register = |extra: serde_json::Value| {
            let mut body = json!({
                "token_endpoint_auth_method": "federated_jwt",
                "grant_types": ["client_credentials"],
                "federated_credentials": [
                    {"issuer": "https://k8s.example", "subject": "system:serviceaccount:prod:a"},
                    {"issuer": "https://k8s.example", "subject": "system:serviceaccount:prod:b"}
                ]
            });
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            validate_registration(&body, &RegistrationRules::default()).unwrap()
        };
        let old = register(json!({"tls_client_certificate_bound_access_tokens": true}));
        assert_eq!(
            old.attestation.identity_fields(),
            vec!["federated_credentials"]
        );
        // Dropping a credential narrows: accepted.
        let fewer = register(json!({
            "tls_client_certificate_bound_access_tokens": true,
            "federated_credentials": [{"issuer": "https://k8s.example", "subject": "system:serviceaccount:prod:a"}]
        }));
        assert!(check_update(&old, &fewer).is_ok());
        // Adding or changing one is the administrator's.
        let other = register(json!({
            "tls_client_certificate_bound_access_tokens": true,
            "federated_credentials": [{"issuer": "https://k8s.example", "subject": "system:serviceaccount:prod:evil"}]
        }));
        assert!(check_update(&old, &other).is_err());
        // RFC 8705 section 3: the binding cannot be turned off.
        let unbound = register(json!({}));
        assert!(check_update(&old, &unbound).is_err());
    }
}
