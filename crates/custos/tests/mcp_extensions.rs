//! MCP's authorization extensions through the real server, on SQLite and
//! PostgreSQL: `io.modelcontextprotocol/enterprise-managed-authorization`
//! (an enterprise identity provider's ID-JAG redeemed at the JWT bearer
//! grant) and `io.modelcontextprotocol/oauth-client-credentials`
//! (machine-to-machine with `private_key_jwt` or a client secret), and
//! the metadata each asks for.

mod common;

use common::workload::{assert_refused, trust_oidc};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const IDP: &str = "https://acme.idp.example";
const MCP: &str = "https://mcp.chat.example/";

/// (why, assertion, extra parameters, status, error)
type RefusalCase = (
    &'static str,
    String,
    Vec<(&'static str, String)>,
    u16,
    &'static str,
);

fn id_jag(key: &ClientKey, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("oauth-id-jag+jwt".into());
    header.kid = key.public_jwk["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&key.pkcs8),
    )
    .unwrap()
}

async fn mcp_enterprise_managed_authorization_id_jag(db: Database) {
    let server = Server::start(&db).await;
    let discovery = server.discovery().await;
    assert_eq!(
        discovery["authorization_grant_profiles_supported"],
        json!(["urn:ietf:params:oauth:grant-profile:id-jag"])
    );
    assert!(discovery["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(JWT_BEARER_GRANT)));
    let idp_key = ClientKey::generate("idp-1");
    trust_oidc(&server, IDP, &idp_key, json!({"id_jag": true})).await;
    // A workload-identity issuer (CI, Kubernetes) does not vouch for people.
    let ci_key = ClientKey::generate("ci-1");
    trust_oidc(&server, "https://ci.example", &ci_key, json!({})).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": MCP, "scopes": ["chat.read", "chat.history", "chat.admin"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, client) = server
        .register(json!({"grant_types": [JWT_BEARER_GRANT], "scope": "chat.read chat.history",
                         "token_endpoint_auth_method": "client_secret_basic", "client_name": "chat agent"}))
        .await;
    assert_eq!(status, 201, "{client}");
    let id = client["client_id"].as_str().unwrap().to_owned();
    let secret = client["client_secret"].as_str().unwrap().to_owned();
    let claims = |jti: &str| {
        json!({"iss": IDP, "sub": "U019488227", "aud": issuer_url(&server), "resource": MCP,
               "client_id": id, "jti": jti, "iat": now(), "exp": now() + 300,
               "scope": "chat.read chat.history chat.admin"})
    };
    let redeem = |assertion: String, extra: Vec<(&'static str, String)>| {
        let mut form = vec![
            ("grant_type", JWT_BEARER_GRANT.to_owned()),
            ("assertion", assertion),
        ];
        form.extend(extra);
        let (server, id, secret) = (&server, id.clone(), secret.clone());
        async move {
            let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            server.token_basic(&id, &secret, &borrowed).await
        }
    };

    // The token: for the ID-JAG's person, its resource only, the scopes
    // the ID-JAG, the client and the resource all allow.
    let (status, body) = redeem(id_jag(&idp_key, &claims("j1")), vec![]).await;
    assert_eq!(status, 200, "{body}");
    let (_, token) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(token["sub"], "U019488227");
    assert_eq!(token["client_id"], id);
    assert!(
        token["aud"] == json!(MCP) || token["aud"] == json!([MCP]),
        "{token}"
    );
    assert_eq!(body["scope"], "chat.read chat.history");

    // Single use.
    let (status, body) = redeem(id_jag(&idp_key, &claims("j1")), vec![]).await;
    assert_refused((status, body), 400, "invalid_grant", "a replayed ID-JAG");

    let mut cases: Vec<RefusalCase> = Vec::new();
    let mut other_client = claims("j2");
    other_client["client_id"] = json!("someone-else");
    cases.push((
        "issued to another client",
        id_jag(&idp_key, &other_client),
        vec![],
        400,
        "invalid_grant",
    ));
    let mut other_aud = claims("j3");
    other_aud["aud"] = json!("https://other-as.example");
    cases.push((
        "for another authorization server",
        id_jag(&idp_key, &other_aud),
        vec![],
        400,
        "invalid_grant",
    ));
    let plain_jwt = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("idp-1".into());
        jsonwebtoken::encode(
            &header,
            &claims("j4"),
            &jsonwebtoken::EncodingKey::from_ec_der(&idp_key.pkcs8),
        )
        .unwrap()
    };
    cases.push((
        "a JWT that is not an ID-JAG",
        plain_jwt,
        vec![],
        400,
        "invalid_grant",
    ));
    let stranger = ClientKey::generate("idp-1");
    cases.push((
        "signed by another key",
        id_jag(&stranger, &claims("j5")),
        vec![],
        400,
        "invalid_grant",
    ));
    cases.push((
        "another resource asked for",
        id_jag(&idp_key, &claims("j6")),
        vec![("resource", "https://other.example/".to_owned())],
        400,
        "invalid_target",
    ));
    cases.push((
        "a scope the client is not registered for",
        id_jag(&idp_key, &claims("j7")),
        vec![("scope", "chat.admin".to_owned())],
        400,
        "invalid_scope",
    ));
    let mut unknown_resource = claims("j8");
    unknown_resource["resource"] = json!("https://unregistered.example/");
    cases.push((
        "for an unregistered resource",
        id_jag(&idp_key, &unknown_resource),
        vec![],
        400,
        "invalid_target",
    ));
    let mut untrusted = claims("j9");
    untrusted["iss"] = json!("https://evil-idp.example");
    cases.push((
        "from an untrusted issuer",
        id_jag(&idp_key, &untrusted),
        vec![],
        400,
        "invalid_grant",
    ));
    let mut from_ci = claims("j11");
    from_ci["iss"] = json!("https://ci.example");
    cases.push((
        "from a workload issuer not trusted for ID-JAGs",
        id_jag(&ci_key, &from_ci),
        vec![],
        400,
        "invalid_grant",
    ));
    let mut two_audiences = claims("j12");
    two_audiences["aud"] = json!([issuer_url(&server), "https://other-as.example"]);
    cases.push((
        "for this and another server",
        id_jag(&idp_key, &two_audiences),
        vec![],
        400,
        "invalid_grant",
    ));
    for (why, assertion, extra, status, error) in cases {
        assert_refused(redeem(assertion, extra).await, status, error, why);
    }

    // The client must authenticate.
    let endpoint = server.endpoint("token_endpoint").await;
    let (status, _, body) = server
        .post_form(
            &endpoint,
            None,
            &[
                ("grant_type", JWT_BEARER_GRANT),
                ("assertion", &id_jag(&idp_key, &claims("j10"))),
                ("client_id", &id),
            ],
        )
        .await;
    assert_eq!(status, 401, "{body}");
}

/// The issuer identifier the server runs under (its URL here).
fn issuer_url(server: &Server) -> String {
    server.url.clone()
}

/// `io.modelcontextprotocol/oauth-client-credentials`: the metadata it
/// asks for, and client credentials with `private_key_jwt` (no
/// `client_id` in the body, RFC 7523 §3) and with a secret in the body.
async fn mcp_oauth_client_credentials_extension(db: Database) {
    let server = Server::start(&db).await;
    let discovery = server.discovery().await;
    let methods = discovery["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("private_key_jwt")));
    assert!(methods.contains(&json!("client_secret_basic")));
    assert!(
        discovery["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("ES256"))
    );
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": MCP, "scopes": ["mcp:read"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let key = ClientKey::generate("m2m-1");
    let (status, client) = server
        .register(
            json!({"grant_types": ["client_credentials"], "scope": "mcp:read",
                         "token_endpoint_auth_method": "private_key_jwt",
                         "jwks": {"keys": [key.public_jwk]}}),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let id = client["client_id"].as_str().unwrap();
    let endpoint = server.endpoint("token_endpoint").await;
    let assertion = key.assertion(&json!({"iss": id, "sub": id, "aud": endpoint,
        "iat": now(), "exp": now() + 60, "jti": "m2m-j1"}));
    let (status, _, body) = server
        .post_form(
            &endpoint,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
                ("resource", MCP),
                ("scope", "mcp:read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id);
    assert!(claims["aud"] == json!(MCP) || claims["aud"] == json!([MCP]));

    let (status, client) = server
        .register(
            json!({"grant_types": ["client_credentials"], "scope": "mcp:read",
                         "token_endpoint_auth_method": "client_secret_post"}),
        )
        .await;
    assert_eq!(status, 201, "{client}");
    let (status, _, body) = server
        .post_form(
            &endpoint,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client["client_id"].as_str().unwrap()),
                ("client_secret", client["client_secret"].as_str().unwrap()),
                ("resource", MCP),
                ("scope", "mcp:read"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

on_both_engines!(
    mcp_enterprise_managed_authorization_id_jag,
    mcp_oauth_client_credentials_extension,
);
