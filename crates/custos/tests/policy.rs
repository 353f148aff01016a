//! Request-time policy (CONTRACT.md "Request-time policy (Cedar)"): the
//! admin API, decisions at the token endpoint (allow, deny, no match), the
//! default set, the audit trail and inventory, and a policy added on one
//! replica enforced on another.

mod common;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn cc(server: &Server, id: &str, secret: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend_from_slice(extra);
    server.token_basic(id, secret, &form).await
}

async fn add_policy(server: &Server, id: &str, cedar: &str) -> (u16, Value) {
    server
        .admin(
            Method::POST,
            "/admin/policies",
            Some(json!({"id": id, "cedar": cedar})),
        )
        .await
}

/// The default set is listed; a record that does not parse or validate
/// against the schema is refused with the reason; built-in records can be
/// neither replaced nor deleted; an added one is listed and deletable.
async fn policies_are_validated_listed_and_deleted(db: Database) {
    let server = Server::start(&db).await;
    let (status, list) = server.admin(Method::GET, "/admin/policies", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "default.permit-registered",
            "default.static-secret-not-sensitive",
            "default.max-delegation-depth"
        ]
    );
    assert!(list[0]["cedar"].as_str().unwrap().contains("permit"));
    assert_eq!(list[0]["source"], "default");

    for (cedar, reason) in [
        ("permit(principal, action, resource", "parse"),
        (
            "forbid(principal, action, resource) when { principal.nope == 1 };",
            "nope",
        ),
        (
            "forbid(principal, action == Custos::Action::\"password\", resource);",
            "password",
        ),
    ] {
        let (status, body) = add_policy(&server, "acme.bad", cedar).await;
        assert_eq!(status, 400, "{cedar}: {body}");
        assert_eq!(body["error"], "invalid_request");
        let description = body["error_description"].as_str().unwrap().to_lowercase();
        assert!(description.contains(reason), "{cedar}: {description}");
    }
    let (status, _) =
        add_policy(&server, "has space", "permit(principal, action, resource);").await;
    assert_eq!(status, 400);
    let (status, _) = add_policy(
        &server,
        "default.permit-registered",
        "permit(principal, action, resource);",
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = server
        .admin(
            Method::DELETE,
            "/admin/policies/default.permit-registered",
            None,
        )
        .await;
    assert_eq!(status, 400);

    let (status, body) = add_policy(
        &server,
        "acme.no-ci",
        "forbid(principal, action, resource) when { principal.tags.contains(\"ci\") };",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["policies"][0]["id"], "acme.no-ci");
    assert_eq!(body["policies"][0]["effect"], "forbid");
    let (status, _) = add_policy(
        &server,
        "acme.no-ci",
        "forbid(principal, action, resource);",
    )
    .await;
    assert_eq!(status, 409);
    let (_, list) = server.admin(Method::GET, "/admin/policies", None).await;
    assert_eq!(list.as_array().unwrap().len(), 4);
    assert_eq!(list[3]["source"], "api");
    let (status, _) = server
        .admin(Method::DELETE, "/admin/policies/acme.no-ci", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(Method::DELETE, "/admin/policies/acme.no-ci", None)
        .await;
    assert_eq!(status, 404);
    let created = server.events("?type=policy.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(server.events("?type=policy.deleted").await.len(), 1);
}

/// Allow, deny and no match at the token endpoint: a denial is 400
/// `unauthorized_client` naming the deciding policy; every decision is in
/// the audit event; the inventory shows the policies that name a client
/// and its last denials.
async fn token_endpoint_decides_with_policy(db: Database) {
    let server = Server::start(&db).await;
    let (allowed_id, allowed_secret) = server.secret_client("client_secret_basic", "read").await;
    let (denied_id, denied_secret) = server.secret_client("client_secret_basic", "read").await;

    let (status, body) = cc(&server, &allowed_id, &allowed_secret, &[]).await;
    assert_eq!(status, 200, "{body}");
    let issued = server
        .events(&format!("?client_id={allowed_id}&type=token.issued"))
        .await;
    assert_eq!(issued[0]["policy"], "allow: default.permit-registered");

    let (status, body) = add_policy(
        &server,
        "acme.block-one",
        &format!("forbid(principal == Custos::Client::\"{denied_id}\", action, resource);"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = cc(&server, &denied_id, &denied_secret, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unauthorized_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("denied by policy acme.block-one"),
        "{body}"
    );
    // The other client is untouched.
    assert_eq!(cc(&server, &allowed_id, &allowed_secret, &[]).await.0, 200);
    let refused = server
        .events(&format!("?client_id={denied_id}&type=token.refused"))
        .await;
    assert_eq!(refused[0]["policy"], "deny: acme.block-one");

    let (_, inventory) = server.admin(Method::GET, "/admin/clients", None).await;
    let entry = |id: &str| {
        inventory
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["client_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(entry(&denied_id)["policies"], json!(["acme.block-one"]));
    assert_eq!(
        entry(&denied_id)["last_policy_denials"][0]["policy"],
        "deny: acme.block-one"
    );
    assert_eq!(entry(&allowed_id)["policies"], json!([]));
    assert_eq!(entry(&allowed_id)["last_policy_denials"], json!([]));
}

/// Without the default permit, a request no `permit` matches is denied
/// ("no policy permits"), and a narrower permit allows exactly its case.
async fn no_matching_permit_denies(db: Database) {
    let server = Server::start_with(&db, &[("CUSTOS_POLICY_DEFAULT_PERMIT", "false")]).await;
    let (id, secret) = server
        .secret_client("client_secret_basic", "read write")
        .await;
    let (status, body) = cc(&server, &id, &secret, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("no policy permits"));
    let (status, body) = add_policy(
        &server,
        "acme.read-only",
        "permit(principal, action == Custos::Action::\"client_credentials\", resource) \
         when { context.scopes.containsAll([\"read\"]) && [\"read\"].containsAll(context.scopes) };",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(cc(&server, &id, &secret, &[("scope", "read")]).await.0, 200);
    let (status, body) = cc(&server, &id, &secret, &[("scope", "read write")]).await;
    assert_eq!(status, 400, "{body}");
    let refused = server
        .events(&format!("?client_id={id}&type=token.refused"))
        .await;
    assert_eq!(refused.last().unwrap()["policy"], "deny: no policy permits");
}

/// The default set: a client with a static secret gets no token for a
/// resource tagged `sensitive`; a `private_key_jwt` client does.
async fn default_static_secret_not_sensitive(db: Database) {
    let server = Server::start(&db).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/admin/resources",
            Some(json!({"uri": "https://payroll.example/", "scopes": ["read"], "tags": ["sensitive"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tags"], json!(["sensitive"]));
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (status, body) = cc(
        &server,
        &id,
        &secret,
        &[("resource", "https://payroll.example/")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("default.static-secret-not-sensitive"));

    let key = ClientKey::generate("k1");
    let (status, body) = server
        .register(json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "scope": "read",
            "jwks": {"keys": [key.public_jwk.clone()]},
        }))
        .await;
    assert_eq!(status, 201, "{body}");
    let key_client = body["client_id"].as_str().unwrap().to_owned();
    let token_endpoint = server.endpoint("token_endpoint").await;
    let issuer = server.discovery().await["issuer"]
        .as_str()
        .unwrap()
        .to_owned();
    let assertion = key.assertion(&json!({
        "iss": key_client, "sub": key_client, "aud": issuer,
        "exp": now() + 60, "iat": now(), "jti": format!("j-{}", now()),
    }));
    let mut form = assertion_form(&assertion).to_vec();
    form.push(("resource", "https://payroll.example/"));
    let (status, _, body) = server.post_form(&token_endpoint, None, &form).await;
    assert_eq!(status, 200, "{body}");
}

/// A policy added through one replica is enforced by another replica of
/// the same database within the stated bound (2 s).
async fn policy_added_on_one_replica_is_enforced_on_another(db: Database) {
    let (a, b) = Server::replicas(&db).await;
    let (id, secret) = a.secret_client("client_secret_basic", "read").await;
    assert_eq!(cc(&b, &id, &secret, &[]).await.0, 200);
    let (status, body) = add_policy(
        &a,
        "acme.stop",
        &format!("forbid(principal, action, resource) when {{ principal.client_id == \"{id}\" }};"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let added = Instant::now();
    // Poll replica B (each request is a real check, not a timed sleep)
    // until it refuses; it must do so within the bound.
    loop {
        let (status, _) = cc(&b, &id, &secret, &[]).await;
        if status == 400 {
            break;
        }
        assert!(
            added.elapsed() < Duration::from_secs(3),
            "replica B still allowed the client {:?} after the policy was added",
            added.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And deleting it on B frees the client on A as quickly.
    let (status, _) = b
        .admin(Method::DELETE, "/admin/policies/acme.stop", None)
        .await;
    assert_eq!(status, 204);
    let deleted = Instant::now();
    while cc(&a, &id, &secret, &[]).await.0 != 200 {
        assert!(deleted.elapsed() < Duration::from_secs(3));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CUSTOS_POLICIES loads records from a directory at start; a file that
/// does not validate stops the start with a line naming it.
#[tokio::test]
async fn policies_load_from_files_at_start() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let dir = db.dir.join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("acme.no-write.cedar"),
        "forbid(principal, action, resource) when { context.scopes.contains(\"write\") };",
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a policy").unwrap();
    let server = Server::start_with(&db, &[("CUSTOS_POLICIES", dir.to_str().unwrap())]).await;
    let (_, list) = server.admin(Method::GET, "/admin/policies", None).await;
    assert_eq!(list[3]["id"], "acme.no-write");
    assert_eq!(list[3]["source"], "file");
    let (id, secret) = server
        .secret_client("client_secret_basic", "read write")
        .await;
    assert_eq!(cc(&server, &id, &secret, &[("scope", "read")]).await.0, 200);
    let (status, body) = cc(&server, &id, &secret, &[("scope", "write")]).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server
        .admin(Method::DELETE, "/admin/policies/acme.no-write", None)
        .await;
    assert_eq!(status, 400);
    drop(server);

    std::fs::write(
        dir.join("broken.cedar"),
        "forbid(principal, action, resource) when { principal.nope };",
    )
    .unwrap();
    let output = std::process::Command::new(binary())
        .arg("serve")
        .env("CUSTOS_DATABASE_URL", &db.url)
        .env("CUSTOS_LISTEN", "127.0.0.1:0")
        .env("CUSTOS_POLICIES", dir.to_str().unwrap())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("CUSTOS_POLICIES") && stderr.contains("broken.cedar"),
        "{stderr}"
    );
}

/// At the authorization endpoint a denial is an `access_denied` redirect
/// to the client (with `state` and `iss`), after login and consent.
async fn authorization_endpoint_denial_is_access_denied(db: Database) {
    use common::browser::{browser, param, pkce, query};
    let flow = common::flow::public_flow(&db).await;
    let (status, body) = add_policy(
        &flow.server,
        "acme.no-write-for-agents",
        &format!(
            "forbid(principal == Custos::Client::\"{}\", action == Custos::Action::\"authorization_code\", resource) \
             when {{ context.scopes.contains(\"write\") }};",
            flow.client_id
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, challenge) = pkce();
    let location = flow
        .authorize(
            &browser(),
            &flow.authorization_url(&challenge, &[("scope", "read write")]),
        )
        .await;
    let pairs = query(&location);
    assert_eq!(
        param(&pairs, "error").as_deref(),
        Some("access_denied"),
        "{location}"
    );
    assert!(param(&pairs, "error_description")
        .unwrap()
        .contains("acme.no-write-for-agents"));
    assert_eq!(param(&pairs, "state").as_deref(), Some("st@te/ü"));
    assert!(param(&pairs, "iss").is_some());
    assert!(param(&pairs, "code").is_none());
    // Only the scope the policy names is refused.
    let (verifier, challenge) = pkce();
    let location = flow
        .authorize(&browser(), &flow.authorization_url(&challenge, &[]))
        .await;
    let code = param(&query(&location), "code").expect("a code for scope read");
    assert_eq!(flow.redeem(&code, &verifier).await.0, 200);
}

on_both_engines!(
    authorization_endpoint_denial_is_access_denied,
    policies_are_validated_listed_and_deleted,
    token_endpoint_decides_with_policy,
    no_matching_permit_denies,
    default_static_secret_not_sensitive,
    policy_added_on_one_replica_is_enforced_on_another,
);
