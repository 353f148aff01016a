use super::*;
use crate::metadata::{validate_registration, RegistrationRules};
use crate::test_keys::{test_key, TestKey};
use crate::ErrorCode;
use serde_json::json;

const AS: &str = "https://as.example";
const IDP: &str = "https://idp.example";
const MCP: &str = "https://mcp.example/";
const NOW: i64 = 1_800_000_000;

fn sign(key: &TestKey, typ: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some(typ.into());
    header.kid = Some("k".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key.pkcs8),
    )
    .unwrap()
}

fn claims() -> Value {
    json!({"iss": IDP, "sub": "U019488227", "aud": AS, "resource": MCP, "client_id": "c1",
           "jti": "j1", "iat": NOW, "exp": NOW + 300, "scope": "chat.read chat.history"})
}

fn rules(audiences: &[String]) -> WorkloadJwtRules<'_> {
    WorkloadJwtRules {
        issuer: Some(IDP),
        audiences,
        only_these_audiences: false,
        now: NOW,
        leeway: 30,
        max_lifetime: 3600,
    }
}

#[test]
fn id_jag_5_1_verified_with_its_typ_and_claims() {
    let key = test_key("k");
    let own = [AS.to_owned()];
    let token = sign(&key, ID_JAG_TYP, &claims());
    assert!(is_id_jag(&token));
    let jag = verify_id_jag(&token, &key.jwks.keys, &rules(&own)).unwrap();
    assert_eq!(jag.sub, "U019488227");
    assert_eq!(jag.client_id, "c1");
    assert_eq!(jag.resource, MCP);
    assert_eq!(
        jag.scopes,
        Some(vec!["chat.read".to_owned(), "chat.history".to_owned()])
    );

    // RFC 8725: another typ is another kind of token.
    for typ in ["JWT", "at+jwt", "oauth-id-jag"] {
        let other = sign(&key, typ, &claims());
        assert!(!is_id_jag(&other) || typ.eq_ignore_ascii_case(ID_JAG_TYP));
        assert!(verify_id_jag(&other, &key.jwks.keys, &rules(&own))
            .unwrap_err()
            .contains("typ"));
    }
    // The audience must be this authorization server.
    let elsewhere = sign(
        &key,
        ID_JAG_TYP,
        &json!({"aud": "https://other.example"}).merge(claims()),
    );
    assert!(verify_id_jag(&elsewhere, &key.jwks.keys, &rules(&own)).is_err());
    // Every required claim.
    for missing in ["client_id", "resource", "jti", "iat", "sub"] {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(missing);
        let token = sign(&key, ID_JAG_TYP, &c);
        assert!(
            verify_id_jag(&token, &key.jwks.keys, &rules(&own)).is_err(),
            "{missing}"
        );
    }
    // Another key's signature.
    let stranger = test_key("k");
    let forged = sign(&stranger, ID_JAG_TYP, &claims());
    assert!(verify_id_jag(&forged, &key.jwks.keys, &rules(&own)).is_err());
    // Expired.
    let mut c = claims();
    c["exp"] = json!(NOW - 100);
    let expired = sign(&key, ID_JAG_TYP, &c);
    assert!(verify_id_jag(&expired, &key.jwks.keys, &rules(&own)).is_err());
}

trait Merge {
    fn merge(self, base: Value) -> Value;
}

impl Merge for Value {
    /// `self`'s members over `base`'s.
    fn merge(self, mut base: Value) -> Value {
        for (k, v) in self.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }
}

fn client(method: &str, scope: &str) -> ClientMetadata {
    let mut metadata = json!({"grant_types": [GRANT_JWT_BEARER], "scope": scope,
                              "token_endpoint_auth_method": method});
    if method == "private_key_jwt" {
        metadata["jwks_uri"] = json!("https://client.example/jwks");
    }
    validate_registration(&metadata, &RegistrationRules::default()).unwrap()
}

fn jag() -> IdJag {
    IdJag {
        iss: IDP.into(),
        sub: "U1".into(),
        client_id: "c1".into(),
        resource: MCP.into(),
        scopes: Some(vec!["chat.read".into(), "chat.history".into()]),
        jti: "j".into(),
        exp: NOW + 300,
    }
}

fn known() -> Vec<KnownResource> {
    vec![KnownResource {
        uri: MCP.into(),
        scopes: vec![
            "chat.read".into(),
            "chat.history".into(),
            "chat.admin".into(),
        ],
    }]
}

fn request(scope: Option<&str>, resources: &[&str]) -> JwtBearerRequest {
    JwtBearerRequest {
        assertion: "a.b.c".into(),
        scope: scope.map(|s| parse_scope(s).unwrap()),
        resources: resources.iter().map(|r| r.to_string()).collect(),
    }
}

#[test]
fn id_jag_token_for_its_resource_and_the_intersection_of_scopes() {
    let c = client("private_key_jwt", "chat.read chat.admin");
    let grant = decide(&request(None, &[]), &jag(), "c1", &c, &known()).unwrap();
    assert_eq!(grant.subject, "U1");
    assert_eq!(grant.audience, vec![MCP.to_owned()]);
    // chat.history is not registered for the client; chat.admin not in
    // the ID-JAG.
    assert_eq!(grant.scopes, vec!["chat.read".to_owned()]);
    let asked = decide(
        &request(Some("chat.read"), &[MCP]),
        &jag(),
        "c1",
        &c,
        &known(),
    )
    .unwrap();
    assert_eq!(asked.scopes, vec!["chat.read".to_owned()]);
    for wider in ["chat.admin", "chat.history", "other"] {
        let error = decide(&request(Some(wider), &[]), &jag(), "c1", &c, &known()).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidScope, "{wider}");
    }
    // Without a scope in the ID-JAG, the client's registered ones offered
    // by the resource.
    let unscoped = IdJag {
        scopes: None,
        ..jag()
    };
    let grant = decide(&request(None, &[]), &unscoped, "c1", &c, &known()).unwrap();
    assert_eq!(
        grant.scopes,
        vec!["chat.read".to_owned(), "chat.admin".to_owned()]
    );
}

#[test]
fn id_jag_5_1_client_and_resource_must_match() {
    let c = client("private_key_jwt", "chat.read");
    let error = decide(&request(None, &[]), &jag(), "c2", &c, &known()).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidGrant);
    let error = decide(
        &request(None, &["https://other.example/"]),
        &jag(),
        "c1",
        &c,
        &known(),
    )
    .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidTarget);
    let error = decide(&request(None, &[]), &jag(), "c1", &c, &[]).unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidTarget);
    // Public clients and clients not registered for the grant.
    let public = client("none", "chat.read");
    let error = decide(&request(None, &[]), &jag(), "c1", &public, &known()).unwrap_err();
    assert_eq!(error.code, ErrorCode::UnauthorizedClient);
    let cc_only = validate_registration(
        &json!({"grant_types": ["client_credentials"], "scope": "chat.read"}),
        &RegistrationRules::default(),
    )
    .unwrap();
    let error = decide(&request(None, &[]), &jag(), "c1", &cc_only, &known()).unwrap_err();
    assert_eq!(error.code, ErrorCode::UnauthorizedClient);
}
