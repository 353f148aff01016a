//! Introspection (RFC 7662) and revocation (RFC 7009), on one replica and
//! across replicas sharing the database.

mod common;
use common::*;
use reqwest::Method;
use serde_json::json;

async fn issue(server: &Server, id: &str, secret: &str) -> String {
    let (status, body) = server
        .token_basic(
            id,
            secret,
            &[("grant_type", "client_credentials"), ("scope", "read")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn rfc7662_introspection_requires_client_authentication(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (rs_id, rs_secret) = server.secret_client("client_secret_basic", "").await;
    let token = issue(&server, &id, &secret).await;
    let introspection = server.endpoint("introspection_endpoint").await;

    let (status, _, body) = server
        .post_form(&introspection, None, &[("token", &token)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _, body) = server
        .post_form(
            &introspection,
            Some((&rs_id, "wrong")),
            &[("token", &token)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let (status, headers, body) = server
        .post_form(
            &introspection,
            Some((&rs_id, &rs_secret)),
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["active"], true);
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["scope"], "read");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], server.url);
    for claim in ["exp", "iat", "sub", "aud", "jti"] {
        assert!(body.get(claim).is_some(), "{claim}");
    }

    for junk in ["junk", "a.b.c", &format!("{token}x")] {
        let (status, _, body) = server
            .post_form(
                &introspection,
                Some((&rs_id, &rs_secret)),
                &[("token", junk)],
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            json!({"active": false}),
            "RFC 7662 §2.2: nothing more about an inactive token"
        );
    }
    let (status, _, body) = server
        .post_form(&introspection, Some((&rs_id, &rs_secret)), &[])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "token is required"
    );
}

async fn rfc7009_revoked_token_is_inactive_on_every_replica(db: Database) {
    let (first, second) = Server::replicas(&db).await;
    let (id, secret) = first.secret_client("client_secret_basic", "read").await;
    let token = issue(&first, &id, &secret).await;
    let introspect = |server: &Server| format!("{}/introspect", server.url);
    let (_, _, body) = second
        .post_form(
            &introspect(&second),
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(body["active"], true);

    let (status, headers, _) = first
        .post_form(
            &format!("{}/revoke", first.url),
            Some((&id, &secret)),
            &[("token", &token), ("token_type_hint", "access_token")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    for server in [&first, &second] {
        let (_, _, body) = server
            .post_form(
                &introspect(server),
                Some((&id, &secret)),
                &[("token", &token)],
            )
            .await;
        assert_eq!(body, json!({"active": false}));
    }
    let revoked = first
        .events(&format!("?client_id={id}&type=token.revoked"))
        .await;
    assert_eq!(revoked.len(), 1);
}

async fn rfc7009_2_2_invalid_tokens_and_other_clients_tokens(db: Database) {
    let server = Server::start(&db).await;
    let revocation = server.endpoint("revocation_endpoint").await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (other_id, other_secret) = server.secret_client("client_secret_basic", "read").await;
    let token = issue(&server, &id, &secret).await;

    let (status, _, _) = server
        .post_form(
            &revocation,
            Some((&id, &secret)),
            &[("token", "not-a-token")],
        )
        .await;
    assert_eq!(status, 200, "an invalid token is not an error (§2.2)");
    let (status, _, body) = server
        .post_form(
            &revocation,
            Some((&other_id, &other_secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "only the client it was issued to may revoke it"
    );
    let (status, _, body) = server
        .post_form(&revocation, None, &[("token", &token)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (_, _, body) = server
        .post_form(
            &format!("{}/introspect", server.url),
            Some((&id, &secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(
        body["active"], true,
        "refused revocations leave the token active"
    );
}

async fn deleted_client_tokens_are_inactive(db: Database) {
    let server = Server::start(&db).await;
    let (id, secret) = server.secret_client("client_secret_basic", "read").await;
    let (rs_id, rs_secret) = server.secret_client("client_secret_basic", "").await;
    let token = issue(&server, &id, &secret).await;
    let (status, _) = server
        .admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (_, _, body) = server
        .post_form(
            &format!("{}/introspect", server.url),
            Some((&rs_id, &rs_secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(body, json!({"active": false}));
    let (status, body) = server
        .token_basic(&id, &secret, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = server
        .admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    assert_eq!(status, 404);
}

on_both_engines!(
    rfc7662_introspection_requires_client_authentication,
    rfc7009_revoked_token_is_inactive_on_every_replica,
    rfc7009_2_2_invalid_tokens_and_other_clients_tokens,
    deleted_client_tokens_are_inactive,
    client_changes_reach_other_replicas,
);

/// Client changes made through one replica hold on another: a client
/// deleted at the first has no active tokens at the second at once.
async fn client_changes_reach_other_replicas(db: Database) {
    let (first, second) = Server::replicas(&db).await;
    let (id, old_secret) = first.secret_client("client_secret_basic", "read").await;
    let token = issue(&second, &id, &old_secret).await;
    let (status, body) = first
        .admin(
            Method::POST,
            &format!("/admin/clients/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(body["client_secret"].is_string());
    // That the second replica takes the new secret once its cached copy is
    // 250 ms old is tested on a moved clock in
    // crates/service/tests/time_travel.rs.

    let (status, _) = first
        .admin(Method::DELETE, &format!("/admin/clients/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (rs_id, rs_secret) = second.secret_client("client_secret_basic", "").await;
    let (_, _, body) = second
        .post_form(
            &format!("{}/introspect", second.url),
            Some((&rs_id, &rs_secret)),
            &[("token", &token)],
        )
        .await;
    assert_eq!(body, json!({"active": false}));
}
