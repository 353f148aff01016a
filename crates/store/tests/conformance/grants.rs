//! The authorization code flow and refresh-token rotation (OAuth 2.1,
//! RFC 9700): single-use codes, rotation, reuse detection that revokes the
//! family, the grace window, consents and pruning — including concurrent
//! redemptions and rotations decided by the database.

use std::sync::Arc;
use std::time::Instant;

use custos_store::{
    ConsentRecord, GrantRecord, Redemption, RefreshTokenRecord, Rotation, Store, StoreError,
    REFRESH_TOKEN_REUSED,
};

use crate::codes::code;
use crate::harness::TestDb;

/// A stand-in for a SHA-256 value: binary (0 and 255), distinct per label.
pub(crate) fn h(label: &str) -> Vec<u8> {
    let mut hash = vec![0u8, 255];
    hash.extend_from_slice(label.as_bytes());
    hash
}

pub(crate) fn grant(id: &str, client_id: &str, created_at: i64, expires_at: i64) -> GrantRecord {
    GrantRecord {
        grant_id: id.to_owned(),
        client_id: client_id.to_owned(),
        subject: "alice".into(),
        scope: "openid read".into(),
        resources: vec!["https://api.example/".into(), "urn:ü \"quoted\"".into()],
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        created_at,
        expires_at,
        revoked_at: None,
        revoked_reason: None,
        authorization_details: Some(
            r#"[{"type":"payment_initiation","locations":["https://api.example/"],"amount":"1€"}]"#
                .into(),
        ),
    }
}

/// A refresh token of `client_id` ("c1" in every family here).
pub(crate) fn token(
    label: &str,
    grant_id: &str,
    created_at: i64,
    expires_at: i64,
) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: h(label),
        grant_id: grant_id.to_owned(),
        client_id: "c1".into(),
        scope: "openid read".into(),
        created_at,
        expires_at,
        used_at: None,
    }
}

/// A new token for a rotation: the store fills in the family.
pub(crate) fn next(label: &str, now: i64) -> RefreshTokenRecord {
    token(label, "", now, now + 1_000)
}

/// Stores a live family `id` of client "c1" with its first token `first`.
pub(crate) async fn family(s: &Arc<dyn Store>, id: &str, first: &str) -> GrantRecord {
    let g = grant(id, "c1", 0, 10_000);
    s.insert_grant(&g).await.unwrap();
    s.insert_refresh_token(&token(first, id, 0, 1_000))
        .await
        .unwrap();
    g
}

async fn grants_round_trip_and_live_listing(db: TestDb) {
    let s = db.store;
    assert_eq!(s.get_grant("nope").await.unwrap(), None);
    assert_eq!(
        s.get_refresh_token_with_grant(&h("nope")).await.unwrap(),
        None
    );
    assert_eq!(s.list_live_grants("c", 0).await.unwrap(), vec![]);

    let g1 = grant("g1", "c", 10, 1_000);
    let g2 = GrantRecord {
        resources: vec![],
        dpop_jkt: None,
        ..grant("g2", "c", 5, 1_000)
    };
    let expired = grant("g3", "c", 1, 500);
    let other = grant("g4", "other", 1, 1_000);
    let revoked = GrantRecord {
        revoked_at: Some(7),
        revoked_reason: Some("admin".into()),
        ..grant("g5", "c", 1, 1_000)
    };
    for g in [&g1, &g2, &expired, &other, &revoked] {
        s.insert_grant(g).await.unwrap();
    }
    assert!(matches!(
        s.insert_grant(&grant("g1", "x", 0, 1)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_grant("g1").await.unwrap(), Some(g1.clone()));
    assert_eq!(s.get_grant("g2").await.unwrap(), Some(g2.clone()));
    assert_eq!(s.get_grant("g5").await.unwrap(), Some(revoked));
    // Live: unrevoked and expires_at > now; by created_at, then grant_id.
    assert_eq!(
        s.list_live_grants("c", 499).await.unwrap(),
        vec![expired.clone(), g2.clone(), g1.clone()]
    );
    assert_eq!(
        s.list_live_grants("c", 500).await.unwrap(),
        vec![g2.clone(), g1.clone()]
    );

    // Revocation: true once, for a live grant; the first time and reason stay.
    assert!(s.revoke_grant("g1", 600, "user").await.unwrap());
    assert!(!s.revoke_grant("g1", 700, "again").await.unwrap());
    let g1_revoked = GrantRecord {
        revoked_at: Some(600),
        revoked_reason: Some("user".into()),
        ..g1
    };
    assert_eq!(s.get_grant("g1").await.unwrap(), Some(g1_revoked));
    assert!(!s.revoke_grant("g3", 600, "expired").await.unwrap());
    assert_eq!(s.get_grant("g3").await.unwrap(), Some(expired));
    assert!(!s.revoke_grant("missing", 600, "x").await.unwrap());
    assert_eq!(s.get_grant("missing").await.unwrap(), None);
    assert_eq!(s.list_live_grants("c", 600).await.unwrap(), vec![g2]);
    assert_eq!(s.list_live_grants("other", 600).await.unwrap(), vec![other]);

    // Refresh tokens: round trip, duplicates, and a family that must exist.
    let t = token("t", "g2", 5, 900);
    s.insert_refresh_token(&t).await.unwrap();
    assert_eq!(s.get_refresh_token(&h("t")).await.unwrap(), Some(t.clone()));
    assert_eq!(s.get_refresh_token(&h("nope")).await.unwrap(), None);
    assert!(matches!(
        s.insert_refresh_token(&t).await,
        Err(StoreError::Conflict)
    ));
    assert!(s
        .insert_refresh_token(&token("orphan", "no-such-grant", 5, 900))
        .await
        .is_err());
    assert_eq!(s.get_refresh_token(&h("orphan")).await.unwrap(), None);

    // Debug never shows the hashes.
    let shown = format!("{t:?} {:?}", code("c", 1));
    assert!(!shown.contains("hash"), "{shown}");
    assert!(!shown.contains("255"), "{shown}");
    // A grant is bound to a DPoP key once, never rebound.
    let unbound = GrantRecord {
        grant_id: "unbound".into(),
        dpop_jkt: None,
        ..s.get_grant("g1").await.unwrap().unwrap()
    };
    s.insert_grant(&unbound).await.unwrap();
    assert!(s.bind_grant_key("unbound", "k1").await.unwrap());
    assert!(!s.bind_grant_key("unbound", "k2").await.unwrap());
    assert_eq!(
        s.get_grant("unbound")
            .await
            .unwrap()
            .unwrap()
            .dpop_jkt
            .as_deref(),
        Some("k1")
    );
}

async fn rfc9700_refresh_token_rotation_chain(db: TestDb) {
    let s = db.store;
    let g = family(&s, "fam", "t0").await;
    let chain = ["t0", "t1", "t2", "t3"];
    for (i, pair) in chain.windows(2).enumerate() {
        let now = 100 * (i as i64 + 1);
        let before = s.get_refresh_token(&h(pair[0])).await.unwrap().unwrap();
        assert_eq!(before.used_at, None);
        let rotation = s
            .rotate_refresh_token(&h(pair[0]), &next(pair[1], now), now, 0)
            .await
            .unwrap();
        assert_eq!(
            rotation,
            Rotation::Rotated {
                grant_id: g.grant_id.clone(),
                old: RefreshTokenRecord {
                    used_at: Some(now),
                    ..before
                },
                within_grace: false,
            },
            "rotation {i}"
        );
        // The new token joined the family.
        assert_eq!(
            s.get_refresh_token(&h(pair[1])).await.unwrap(),
            Some(token(pair[1], "fam", now, now + 1_000))
        );
        assert_eq!(
            s.get_refresh_token_with_grant(&h(pair[1])).await.unwrap(),
            Some((token(pair[1], "fam", now, now + 1_000), g.clone()))
        );
    }
    for (label, used_at) in [("t0", Some(100)), ("t1", Some(200)), ("t2", Some(300))] {
        assert_eq!(
            s.get_refresh_token(&h(label))
                .await
                .unwrap()
                .unwrap()
                .used_at,
            used_at
        );
    }
    assert_eq!(s.get_grant("fam").await.unwrap(), Some(g));
}

async fn rfc9700_refresh_token_reuse_revokes_the_family(db: TestDb) {
    let s = db.store;
    family(&s, "fam", "t0").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("t0"), &next("t1", 100), 100, 0)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Grace 0: any second use, even in the same second, is a reuse.
    assert_eq!(
        s.rotate_refresh_token(&h("t0"), &next("x1", 100), 100, 0)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "fam".into()
        }
    );
    let revoked = s.get_grant("fam").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(100));
    assert_eq!(
        revoked.revoked_reason.as_deref(),
        Some(REFRESH_TOKEN_REUSED)
    );
    assert_eq!(s.get_refresh_token(&h("x1")).await.unwrap(), None);
    // The newest token of the family no longer works, and stays unused.
    assert_eq!(
        s.rotate_refresh_token(&h("t1"), &next("t2", 150), 150, 0)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert_eq!(
        s.get_refresh_token(&h("t1"))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
    assert_eq!(s.get_refresh_token(&h("t2")).await.unwrap(), None);
    // Reusing again still says Reused; the first revocation is kept.
    assert_eq!(
        s.rotate_refresh_token(&h("t0"), &next("x2", 200), 200, 0)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "fam".into()
        }
    );
    assert_eq!(s.get_grant("fam").await.unwrap(), Some(revoked));
    assert_eq!(s.list_live_grants("c1", 200).await.unwrap(), vec![]);

    // With a grace window, reuse at its end (used_at + grace) revokes too.
    family(&s, "fam2", "u0").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("u0"), &next("u1", 100), 100, 30)
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: false,
            ..
        }
    ));
    assert_eq!(
        s.rotate_refresh_token(&h("u0"), &next("u2", 130), 130, 30)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "fam2".into()
        }
    );
    assert_eq!(
        s.get_grant("fam2").await.unwrap().unwrap().revoked_at,
        Some(130)
    );
}

async fn rfc9700_retry_within_grace_rotates_again(db: TestDb) {
    let s = db.store;
    let g = family(&s, "fam", "t0").await;
    let Rotation::Rotated { old: first, .. } = s
        .rotate_refresh_token(&h("t0"), &next("t1", 100), 100, 10)
        .await
        .unwrap()
    else {
        panic!("first rotation");
    };
    // A retry within the window (now < used_at + grace) gets another token;
    // the old token keeps its first used_at, so the window does not slide.
    for (now, label) in [(105, "t1b")] {
        assert_eq!(
            s.rotate_refresh_token(&h("t0"), &next(label, now), now, 10)
                .await
                .unwrap(),
            Rotation::Rotated {
                grant_id: g.grant_id.clone(),
                old: first.clone(),
                within_grace: true,
            }
        );
        assert_eq!(
            s.get_refresh_token(&h(label)).await.unwrap(),
            Some(token(label, "fam", now, now + 1_000))
        );
    }
    assert_eq!(
        s.get_refresh_token(&h("t0"))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(100)
    );
    // Every token handed out in the window works.
    assert!(matches!(
        s.rotate_refresh_token(&h("t1b"), &next("t2", 106), 106, 10)
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: false,
            ..
        }
    ));
    // A second retry within the window would fork the family: a reuse.
    assert_eq!(
        s.rotate_refresh_token(&h("t0"), &next("t1c", 109), 109, 10)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "fam".into()
        }
    );
    assert!(s.get_refresh_token(&h("t1c")).await.unwrap().is_none());

    // Within the window but the family is revoked: Expired.
    family(&s, "fam2", "u0").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("u0"), &next("u1", 100), 100, 10)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert!(s.revoke_grant("fam2", 101, "logout").await.unwrap());
    assert_eq!(
        s.rotate_refresh_token(&h("u0"), &next("u2", 102), 102, 10)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert_eq!(s.get_refresh_token(&h("u2")).await.unwrap(), None);
}

async fn revoked_or_expired_family_tokens_are_expired(db: TestDb) {
    let s = db.store;
    // Revoked family.
    family(&s, "revoked", "r0").await;
    assert!(s.revoke_grant("revoked", 50, "admin").await.unwrap());
    assert_eq!(
        s.rotate_refresh_token(&h("r0"), &next("r1", 100), 100, 0)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // Past the family's absolute expiry (the token's idle expiry is later).
    s.insert_grant(&grant("ended", "c1", 0, 200)).await.unwrap();
    s.insert_refresh_token(&token("e0", "ended", 0, 1_000))
        .await
        .unwrap();
    assert_eq!(
        s.rotate_refresh_token(&h("e0"), &next("e1", 200), 200, 0)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // The token's idle expiry passed (the family is live).
    s.insert_grant(&grant("idle", "c1", 0, 10_000))
        .await
        .unwrap();
    s.insert_refresh_token(&token("i0", "idle", 0, 150))
        .await
        .unwrap();
    assert_eq!(
        s.rotate_refresh_token(&h("i0"), &next("i1", 150), 150, 0)
            .await
            .unwrap(),
        Rotation::Expired
    );
    // None of them was marked used, nothing new was stored.
    for label in ["r0", "e0", "i0"] {
        assert_eq!(
            s.get_refresh_token(&h(label))
                .await
                .unwrap()
                .unwrap()
                .used_at,
            None,
            "{label}"
        );
    }
    for label in ["r1", "e1", "i1"] {
        assert_eq!(s.get_refresh_token(&h(label)).await.unwrap(), None);
    }
    // One second earlier the idle token still rotates.
    assert!(matches!(
        s.rotate_refresh_token(&h("i0"), &next("i1", 149), 149, 0)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));

    assert_eq!(
        s.rotate_refresh_token(&h("nope"), &next("n1", 100), 100, 0)
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

/// RFC 6749 §6: a refresh token works only for the client it was issued
/// to; another client presenting it learns nothing and changes nothing.
async fn refresh_token_of_another_client_is_unknown(db: TestDb) {
    let s = db.store;
    family(&s, "fam", "t0").await;
    let stolen = RefreshTokenRecord {
        client_id: "c2".into(),
        ..next("t1", 100)
    };
    assert_eq!(
        s.rotate_refresh_token(&h("t0"), &stolen, 100, 0)
            .await
            .unwrap(),
        Rotation::Unknown
    );
    assert_eq!(
        s.get_refresh_token(&h("t0"))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
    assert_eq!(s.get_refresh_token(&h("t1")).await.unwrap(), None);
    // The rightful client rotates it as if nothing happened.
    assert!(matches!(
        s.rotate_refresh_token(&h("t0"), &next("t1", 101), 101, 0)
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: false,
            ..
        }
    ));
    assert_eq!(s.get_grant("fam").await.unwrap().unwrap().revoked_at, None);
}

/// N concurrent rotations of one live token (grace 0) on two pools (two
/// replicas): exactly one is Rotated, every other Reused, the family ends
/// revoked and the winner's new token no longer works.
async fn rfc9700_concurrent_rotation_has_one_winner_and_revokes_the_family(db: TestDb) {
    let s = db.store.clone();
    // Under a second on either engine (SQLite: one writer at a time).
    let n = 500;
    let replica = db.reopen().await;
    family(&s, "fam", "t0").await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let s = if i % 2 == 0 { &s } else { &replica };
            let s: Arc<dyn Store> = Arc::clone(s);
            tokio::spawn(async move {
                s.rotate_refresh_token(&h("t0"), &next(&format!("new-{i}"), 100), 100, 0)
                    .await
            })
        })
        .collect();
    let (mut rotated, mut reused) = (Vec::new(), 0);
    for (i, task) in tasks.into_iter().enumerate() {
        match task
            .await
            .unwrap()
            .expect("rotate_refresh_token must not fail under contention")
        {
            Rotation::Rotated {
                within_grace: false,
                ..
            } => rotated.push(i),
            Rotation::Reused { grant_id } => {
                assert_eq!(grant_id, "fam");
                reused += 1;
            }
            other => panic!("task {i}: unexpected {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    replica.close().await;
    assert_eq!(rotated.len(), 1, "exactly one rotation wins");
    assert_eq!(reused, n - 1, "every other one is a reuse");

    let g = s.get_grant("fam").await.unwrap().unwrap();
    assert_eq!(g.revoked_at, Some(100));
    assert_eq!(g.revoked_reason.as_deref(), Some(REFRESH_TOKEN_REUSED));
    // Only the winner's token was stored, and it is dead with its family.
    let winner = format!("new-{}", rotated[0]);
    for i in 0..n {
        let label = format!("new-{i}");
        assert_eq!(
            s.get_refresh_token(&h(&label)).await.unwrap().is_some(),
            label == winner,
            "{label}"
        );
    }
    assert_eq!(
        s.rotate_refresh_token(&h(&winner), &next("after", 101), 101, 0)
            .await
            .unwrap(),
        Rotation::Expired
    );
    assert!(
        elapsed.as_secs() < 10,
        "{n} concurrent rotations took {elapsed:?}"
    );
}

async fn consents_upsert_list_revoke(db: TestDb) {
    let s = db.store;
    let consent = |username: &str, client_id: &str, scope: &str, created_at| ConsentRecord {
        username: username.into(),
        client_id: client_id.into(),
        scope: scope.into(),
        created_at,
    };
    assert_eq!(s.list_consents(None).await.unwrap(), vec![]);
    // Scopes are normalized, so these two are the same consent: an upsert.
    s.record_consent(&consent("alice", "c1", " read openid read", 10))
        .await
        .unwrap();
    s.record_consent(&consent("alice", "c1", "openid read", 20))
        .await
        .unwrap();
    s.record_consent(&consent("alice", "c1", "admin", 30))
        .await
        .unwrap();
    s.record_consent(&consent("alice", "c2", "x", 40))
        .await
        .unwrap();
    s.record_consent(&consent("bob", "c1", "y", 50))
        .await
        .unwrap();

    assert_eq!(
        s.consents_of("alice", "c1").await.unwrap(),
        vec![
            consent("alice", "c1", "admin", 30),
            consent("alice", "c1", "openid read", 20),
        ]
    );
    assert_eq!(s.consents_of("alice", "c3").await.unwrap(), vec![]);
    assert_eq!(s.consents_of("Alice", "c1").await.unwrap(), vec![]);
    assert_eq!(
        s.list_consents(None).await.unwrap(),
        vec![
            consent("alice", "c1", "admin", 30),
            consent("alice", "c1", "openid read", 20),
            consent("alice", "c2", "x", 40),
            consent("bob", "c1", "y", 50),
        ]
    );
    assert_eq!(
        s.list_consents(Some("bob")).await.unwrap(),
        vec![consent("bob", "c1", "y", 50)]
    );
    assert_eq!(s.list_consents(Some("carol")).await.unwrap(), vec![]);

    assert_eq!(s.revoke_consents("alice", "c1").await.unwrap(), 2);
    assert_eq!(s.revoke_consents("alice", "c1").await.unwrap(), 0);
    assert_eq!(s.consents_of("alice", "c1").await.unwrap(), vec![]);
    assert_eq!(
        s.list_consents(None).await.unwrap(),
        vec![
            consent("alice", "c2", "x", 40),
            consent("bob", "c1", "y", 50)
        ]
    );
}

async fn prune_removes_expired_codes_tokens_and_grants(db: TestDb) {
    let s = db.store;
    let now = 1_000;
    // Codes: expired unused, consumed and expired exactly now (both go);
    // consumed and live (stays, so its reuse is still recognised).
    s.insert_code(&code("code-old", 900)).await.unwrap();
    for label in ["code-edge", "code-live"] {
        let expires_at = if label == "code-edge" { now } else { 2_000 };
        s.insert_code(&code(label, expires_at)).await.unwrap();
        assert!(matches!(
            s.redeem_code(&h(label), "c1", "g", 500).await.unwrap(),
            Redemption::Redeemed(_)
        ));
    }
    // Grants: live, expired now, revoked but not yet expired (stays),
    // revoked and expired.
    let live = grant("live", "c1", 0, 5_000);
    let revoked_live = GrantRecord {
        revoked_at: Some(10),
        revoked_reason: Some("admin".into()),
        ..grant("revoked-live", "c1", 0, 5_000)
    };
    for g in [
        &live,
        &grant("ended", "c1", 0, now),
        &revoked_live,
        &GrantRecord {
            revoked_at: Some(10),
            ..grant("revoked-ended", "c1", 0, 999)
        },
    ] {
        s.insert_grant(g).await.unwrap();
    }
    // Tokens: idle-expired (goes), live and used-but-live (stay) in the live
    // family; live tokens of the ended families go with them.
    let used_live = RefreshTokenRecord {
        used_at: Some(500),
        ..token("used-live", "live", 0, 3_000)
    };
    for t in [
        &token("idle", "live", 0, now),
        &token("fresh", "live", 0, 3_000),
        &used_live,
        &token("of-ended", "ended", 0, 3_000),
        &token("of-revoked-ended", "revoked-ended", 0, 3_000),
        &token("of-revoked-live", "revoked-live", 0, 3_000),
    ] {
        s.insert_refresh_token(t).await.unwrap();
    }

    // 2 codes + 3 tokens + 2 grants.
    assert_eq!(s.prune_expired(now).await.unwrap(), 7);
    assert_eq!(s.prune_expired(now).await.unwrap(), 0);

    for (label, expected) in [("code-old", false), ("code-edge", false)] {
        assert_eq!(
            s.redeem_code(&h(label), "c1", "g2", now).await.unwrap() != Redemption::Unknown,
            expected,
            "{label}"
        );
    }
    assert!(matches!(
        s.redeem_code(&h("code-live"), "c1", "g2", now)
            .await
            .unwrap(),
        Redemption::AlreadyRedeemed(_)
    ));
    assert_eq!(s.get_grant("live").await.unwrap(), Some(live));
    assert_eq!(
        s.get_grant("revoked-live").await.unwrap(),
        Some(revoked_live)
    );
    assert_eq!(s.get_grant("ended").await.unwrap(), None);
    assert_eq!(s.get_grant("revoked-ended").await.unwrap(), None);
    for (label, kept) in [
        ("idle", false),
        ("fresh", true),
        ("used-live", true),
        ("of-ended", false),
        ("of-revoked-ended", false),
        ("of-revoked-live", true),
    ] {
        assert_eq!(
            s.get_refresh_token(&h(label)).await.unwrap().is_some(),
            kept,
            "{label}"
        );
    }
    // The kept used token still trips reuse detection.
    assert_eq!(
        s.rotate_refresh_token(&h("used-live"), &next("x", now), now, 0)
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "live".into()
        }
    );
}

conformance!(
    grants_round_trip_and_live_listing,
    rfc9700_refresh_token_rotation_chain,
    rfc9700_refresh_token_reuse_revokes_the_family,
    rfc9700_retry_within_grace_rotates_again,
    revoked_or_expired_family_tokens_are_expired,
    refresh_token_of_another_client_is_unknown,
    rfc9700_concurrent_rotation_has_one_winner_and_revokes_the_family,
    consents_upsert_list_revoke,
    prune_removes_expired_codes_tokens_and_grants,
);
