//! Workload attestation through the real server (issue 7), continued: the
//! JWT bearer grant selecting its client by federated credentials (RFC 7523
//! §2.1) and `spiffe_jwt` with SPIRE JWT-SVIDs
//! (draft-ietf-oauth-spiffe-client-auth §3.1).

mod common;
use common::workload::*;
use common::*;
use reqwest::Method;
use serde_json::json;

// --- 3. The JWT bearer grant (RFC 7523 §2.1) ---------------------------------

async fn jwt_bearer_grant_selects_the_client_listing_iss_and_sub(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let id = register_ok(
        &server,
        json!({"grant_types": [GRANT_JWT_BEARER], "token_endpoint_auth_method": "federated_jwt",
               "scope": "read write",
               "federated_credentials": [{"issuer": K8S, "subject": SERVICE_ACCOUNT}]}),
    )
    .await;
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let (status, body) = bearer_grant(&server, &projected, None).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["sub"], id.as_str(), "the token is the client's own");
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "federated_jwt", "attested_id": format!("{K8S}#{SERVICE_ACCOUNT}")})
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    // Reusable, and scope narrows as for client credentials.
    let (status, body) = token(
        &server,
        &[
            ("grant_type", GRANT_JWT_BEARER),
            ("assertion", &projected),
            ("scope", "read"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("read")),
        "{body}"
    );
    let got = token(
        &server,
        &[
            ("grant_type", GRANT_JWT_BEARER),
            ("assertion", &projected),
            ("scope", "admin"),
        ],
    )
    .await;
    assert_refused(got, 400, "invalid_scope", "a scope the client lacks");

    let events = server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events
        .iter()
        .all(|e| e["grant_type"] == GRANT_JWT_BEARER && e["result"] == "success"));
    let refused = server
        .events(&format!("?client_id={id}&type=token.refused"))
        .await;
    assert_eq!(refused.len(), 1, "{refused:?}");
}

async fn jwt_bearer_grant_refuses_unlisted_ambiguous_unregistered_and_bad_assertions(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let credential = json!([{"issuer": K8S, "subject": SERVICE_ACCOUNT}]);
    let first = register_ok(
        &server,
        json!({"grant_types": [GRANT_JWT_BEARER], "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": credential}),
    )
    .await;
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let (status, body) = bearer_grant(&server, &projected, None).await;
    assert_eq!(access_claims(status, &body)["sub"], first.as_str());

    // Nobody lists this service account.
    let nobody = key.assertion(&kubernetes_claims(
        &issuer,
        "system:serviceaccount:prod:nobody",
        "prod",
    ));
    assert_refused(
        bearer_grant(&server, &nobody, None).await,
        400,
        "invalid_grant",
        "no client lists iss and sub",
    );

    // A second client lists the same identity: the request must choose.
    let second = register_ok(
        &server,
        json!({"grant_types": [GRANT_JWT_BEARER, "client_credentials"],
               "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": credential}),
    )
    .await;
    assert_refused(
        bearer_grant(&server, &projected, None).await,
        400,
        "invalid_grant",
        "two clients list iss and sub",
    );
    // A token that does not verify learns nothing of who is registered:
    // the same answer as for an identity nobody lists.
    let forged = ClientKey::generate("k8s-1").assertion(&kubernetes_claims(
        &issuer,
        "system:serviceaccount:prod:api",
        "prod",
    ));
    let (status, forged_body) = bearer_grant(&server, &forged, None).await;
    let (_, nobody_body) = bearer_grant(&server, &nobody, None).await;
    assert_eq!(status, 400);
    assert_eq!(
        forged_body["error_description"], nobody_body["error_description"],
        "a forged token cannot tell registered identities from unknown ones"
    );
    let (status, body) = bearer_grant(&server, &projected, Some(&second)).await;
    assert_eq!(
        access_claims(status, &body)["sub"],
        second.as_str(),
        "client_id chooses"
    );
    let (status, body) = bearer_grant(&server, &projected, Some(&first)).await;
    assert_eq!(access_claims(status, &body)["sub"], first.as_str());
    assert_refused(
        bearer_grant(&server, &projected, Some("someone-else")).await,
        400,
        "invalid_grant",
        "client_id of a client that does not list it",
    );
    // A disabled client lists nothing: the first is alone again.
    let (status, body) = server
        .admin(Method::DELETE, &format!("/admin/clients/{second}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = bearer_grant(&server, &projected, None).await;
    assert_eq!(access_claims(status, &body)["sub"], first.as_str());
    assert_refused(
        bearer_grant(&server, &projected, Some(&second)).await,
        400,
        "invalid_grant",
        "client_id of a disabled client",
    );

    // Listed by a client that did not register the grant.
    let batch = "system:serviceaccount:prod:batch";
    register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "federated_jwt",
               "federated_credentials": [{"issuer": K8S, "subject": batch}]}),
    )
    .await;
    let batch_token = key.assertion(&kubernetes_claims(&issuer, batch, "prod"));
    assert_refused(
        bearer_grant(&server, &batch_token, None).await,
        400,
        "unauthorized_client",
        "the client did not register the jwt-bearer grant",
    );

    // Bad assertions for a listed identity.
    let stranger = ClientKey::generate("k8s-1");
    let forged = stranger.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let mut expired = kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod");
    expired["iat"] = json!(now() - 3_700);
    expired["exp"] = json!(now() - 100);
    let other_aud = kubernetes_claims("https://other-as.example", SERVICE_ACCOUNT, "prod");
    let mut no_iss = kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod");
    no_iss.as_object_mut().unwrap().remove("iss");
    for (assertion, case) in [
        (forged, "signed by another key"),
        (key.assertion(&expired), "expired"),
        (key.assertion(&other_aud), "for another audience"),
        (key.assertion(&no_iss), "without iss"),
        ("not-a-jwt".to_owned(), "not a JWT"),
    ] {
        assert_refused(
            bearer_grant(&server, &assertion, Some(&first)).await,
            400,
            "invalid_grant",
            case,
        );
    }
    let got = token(&server, &[("grant_type", GRANT_JWT_BEARER)]).await;
    assert_refused(got, 400, "invalid_request", "without assertion");

    let issued = server
        .events(&format!("?client_id={first}&type=token.issued"))
        .await;
    assert_eq!(issued.len(), 3, "{issued:?}");
    assert!(issued.iter().all(|e| e["grant_type"] == GRANT_JWT_BEARER));
}

async fn jwt_bearer_grant_with_client_authentication_holds_the_assertion_to_that_client(
    db: Database,
) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let key = ClientKey::generate("k8s-1");
    trust_oidc(&server, K8S, &key, json!({})).await;
    let (status, body) = server
        .register(json!({"grant_types": [GRANT_JWT_BEARER], "token_endpoint_auth_method": "client_secret_basic",
                         "federated_credentials": [{"issuer": K8S, "subject": SERVICE_ACCOUNT}]}))
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let projected = key.assertion(&kubernetes_claims(&issuer, SERVICE_ACCOUNT, "prod"));
    let form = [("grant_type", GRANT_JWT_BEARER), ("assertion", &projected)];
    let (status, body) = server.token_basic(&id, &secret, &form).await;
    assert_eq!(access_claims(status, &body)["sub"], id.as_str());
    let (status, body) = server.token_basic(&id, "wrong", &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let other = key.assertion(&kubernetes_claims(
        &issuer,
        "system:serviceaccount:prod:web",
        "prod",
    ));
    let (status, body) = server
        .token_basic(
            &id,
            &secret,
            &[("grant_type", GRANT_JWT_BEARER), ("assertion", &other)],
        )
        .await;
    assert_refused(
        (status, body),
        400,
        "invalid_grant",
        "an assertion the authenticated client does not list",
    );
}

// --- 4. spiffe_jwt -----------------------------------------------------------

async fn spiffe_jwt_svid_authenticates_a_client_registered_for_its_id(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let spire = ClientKey::generate("spire-1");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    let id = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!([issuer])));
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "spiffe_jwt", "attested_id": WORKLOAD})
    );
    // SVIDs are reused until they near expiry.
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    assert_eq!(status, 200, "the same SVID again: {body}");
    // A plain string aud, and the issuer with a trailing slash.
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!(issuer)));
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    assert_eq!(status, 200, "aud as a string: {body}");
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!([format!("{issuer}/")])));
    let (status, body) = spiffe_token(&server, Some(&id), &svid).await;
    assert_eq!(status, 200, "aud with a trailing slash: {body}");

    let events = server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 4, "{events:?}");
}

async fn spiffe_jwt_a_spiffe_id_as_client_id_selects_its_client(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let spire = ClientKey::generate("spire-1");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    let broad = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let exact = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/sa/billing"}),
    )
    .await;
    let svid = spire.assertion(&svid_claims(WORKLOAD, json!([issuer])));
    let (status, body) = spiffe_token(&server, Some(WORKLOAD), &svid).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], broad.as_str());
    assert_eq!(claims["sub"], broad.as_str());
    assert_eq!(claims["client_auth"]["attested_id"], WORKLOAD);
    // Without client_id the SVID's sub names the client.
    let (status, body) = spiffe_token(&server, None, &svid).await;
    assert_eq!(access_claims(status, &body)["client_id"], broad.as_str());
    // The audit trail names the client, not the SPIFFE ID it was asked by.
    let events = server
        .events(&format!("?client_id={broad}&type=token.issued"))
        .await;
    assert_eq!(events.len(), 2, "{events:?}");
    // The exact registration wins over the /* one.
    let billing = "spiffe://example.org/ns/prod/sa/billing";
    let svid = spire.assertion(&svid_claims(billing, json!([issuer])));
    let (status, body) = spiffe_token(&server, Some(billing), &svid).await;
    assert_eq!(access_claims(status, &body)["client_id"], exact.as_str());
    // The client_id must be the SVID's own ID.
    let got = spiffe_token(&server, Some(WORKLOAD), &svid).await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "client_id is another SPIFFE ID than the SVID's",
    );
    // A SPIFFE ID no client is registered for.
    let stray = "spiffe://example.org/ns/dev/sa/api";
    let svid = spire.assertion(&svid_claims(stray, json!([issuer])));
    let got = spiffe_token(&server, Some(stray), &svid).await;
    assert_refused(got, 401, "invalid_client", "no client for this SPIFFE ID");
}

async fn spiffe_jwt_refuses_other_audiences_ids_trust_domains_and_keys(db: Database) {
    let server = Server::start(&db).await;
    let issuer = issuer_of(&server).await;
    let spire = ClientKey::generate("spire-1");
    trust(
        &server,
        json!({"kind": "spiffe", "trust_domain": "example.org", "bundle": jwt_svid_bundle(&spire)}),
    )
    .await;
    let id = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let (status, body) = spiffe_token(
        &server,
        Some(&id),
        &spire.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_eq!(status, 200, "the control case: {body}");

    let mut expired = svid_claims(WORKLOAD, json!([issuer]));
    expired["iat"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    let mut no_exp = svid_claims(WORKLOAD, json!([issuer]));
    no_exp.as_object_mut().unwrap().remove("exp");
    let cases = [
        (
            svid_claims(WORKLOAD, json!([issuer, "https://other.example"])),
            "aud with a second value (§3.1: the issuer and nothing else)",
        ),
        (
            svid_claims(WORKLOAD, json!(["https://other.example"])),
            "aud of another server",
        ),
        (
            svid_claims("spiffe://example.org/ns/dev/sa/api", json!([issuer])),
            "a SPIFFE ID outside the registered pattern",
        ),
        (
            svid_claims("spiffe://example.org/ns/prod", json!([issuer])),
            "the pattern's base itself (/* is strictly below)",
        ),
        (
            svid_claims("spiffe://example.org/ns/production/sa/api", json!([issuer])),
            "a prefix that is not a segment boundary",
        ),
        (expired, "expired"),
        (no_exp, "without exp"),
    ];
    for (claims, case) in cases {
        let got = spiffe_token(&server, Some(&id), &spire.assertion(&claims)).await;
        assert_refused(got, 401, "invalid_client", case);
    }
    let stranger = ClientKey::generate("spire-1");
    let got = spiffe_token(
        &server,
        Some(&id),
        &stranger.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "signed by a key not in the bundle",
    );
    let rotated = ClientKey::generate("spire-2");
    let got = spiffe_token(
        &server,
        Some(&id),
        &rotated.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(got, 401, "invalid_client", "a kid the bundle lacks");

    // A client of a trust domain nobody registered.
    let other = register_ok(
        &server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_jwt",
               "spiffe_id": "spiffe://other.org/ns/prod/*"}),
    )
    .await;
    let got = spiffe_token(
        &server,
        Some(&other),
        &spire.assertion(&svid_claims(
            "spiffe://other.org/ns/prod/sa/api",
            json!([issuer]),
        )),
    )
    .await;
    assert_refused(got, 401, "invalid_client", "a trust domain not registered");

    // A JWT-SVID is not a federated token, nor the other way round.
    let federated = federated_client(
        &server,
        json!([{"issuer": "https://spire.example.org", "subject": WORKLOAD}]),
    )
    .await;
    let got = spiffe_token(
        &server,
        Some(&federated),
        &spire.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a federated_jwt client presenting a jwt-spiffe assertion",
    );
    let got = federated_token(
        &server,
        &id,
        &spire.assertion(&svid_claims(WORKLOAD, json!([issuer]))),
    )
    .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a spiffe_jwt client presenting a jwt-bearer assertion",
    );
}

on_both_engines!(
    jwt_bearer_grant_selects_the_client_listing_iss_and_sub,
    jwt_bearer_grant_refuses_unlisted_ambiguous_unregistered_and_bad_assertions,
    jwt_bearer_grant_with_client_authentication_holds_the_assertion_to_that_client,
    spiffe_jwt_svid_authenticates_a_client_registered_for_its_id,
    spiffe_jwt_a_spiffe_id_as_client_id_selects_its_client,
    spiffe_jwt_refuses_other_audiences_ids_trust_domains_and_keys,
);
