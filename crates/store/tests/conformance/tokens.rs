//! Replay protection, revocation and pruning.

use std::sync::Arc;

use custos_store::{InitialAccessTokenRecord, RevokedToken, Store};

use crate::harness::TestDb;

async fn jti_single_use(db: TestDb) {
    let s = db.store;
    let ns = "client_assertion:c1";
    assert!(s.record_jti_once(ns, "j1", 200, 100).await.unwrap());
    assert!(!s.record_jti_once(ns, "j1", 200, 100).await.unwrap());
    assert!(!s.record_jti_once(ns, "j1", 500, 199).await.unwrap());
    // Keys are (namespace, jti).
    assert!(s
        .record_jti_once("client_assertion:c2", "j1", 200, 100)
        .await
        .unwrap());
    assert!(s.record_jti_once(ns, "j2", 200, 100).await.unwrap());
    // At and after expires_at the old record no longer blocks reuse, and
    // the reuse is recorded with its new expiry.
    assert!(s.record_jti_once(ns, "j1", 400, 200).await.unwrap());
    assert!(!s.record_jti_once(ns, "j1", 400, 300).await.unwrap());
    assert!(s.record_jti_once(ns, "j1", 900, 400).await.unwrap());
}

/// 16 concurrent callers per key; exactly one may win, both for a fresh key
/// and for a key whose previous record has expired.
async fn jti_concurrent(db: TestDb) {
    let s = db.store;
    assert!(s.record_jti_once("ns", "stale", 100, 50).await.unwrap());
    for (round, jti) in ["fresh-1", "fresh-2", "fresh-3", "stale"]
        .into_iter()
        .enumerate()
    {
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s: Arc<dyn Store> = Arc::clone(&s);
                tokio::spawn(async move { s.record_jti_once("ns", jti, 1_000, 500).await })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            if task
                .await
                .unwrap()
                .expect("record_jti_once must not fail under contention")
            {
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "round {round} ({jti}): exactly one first use");
    }
}

async fn revocation(db: TestDb) {
    let s = db.store;
    assert!(!s.is_token_revoked("t1").await.unwrap());
    let revoked = RevokedToken {
        jti: "t1".into(),
        client_id: "c1".into(),
        revoked_at: 100,
        expires_at: 400,
    };
    s.revoke_token(&revoked).await.unwrap();
    assert!(s.is_token_revoked("t1").await.unwrap());
    assert!(!s.is_token_revoked("t2").await.unwrap());
    // Idempotent, including with a different expiry.
    s.revoke_token(&revoked).await.unwrap();
    s.revoke_token(&RevokedToken {
        expires_at: 300,
        ..revoked.clone()
    })
    .await
    .unwrap();
    assert!(s.is_token_revoked("t1").await.unwrap());
    // The later expiry (400) was kept: pruning at 350 keeps the row.
    s.prune_expired(350).await.unwrap();
    assert!(s.is_token_revoked("t1").await.unwrap());
    s.prune_expired(400).await.unwrap();
    assert!(!s.is_token_revoked("t1").await.unwrap());
}

async fn prune_expired(db: TestDb) {
    let s = db.store;
    let now = 1_000;
    // Replay: two expired (one exactly at now), one live.
    assert!(s.record_jti_once("ns", "old", 900, 0).await.unwrap());
    assert!(s.record_jti_once("ns", "edge", now, 0).await.unwrap());
    assert!(s.record_jti_once("ns", "live", 2_000, 0).await.unwrap());
    // Revocations: one expired, one live.
    for (jti, expires_at) in [("r-old", 999), ("r-live", 1_001)] {
        s.revoke_token(&RevokedToken {
            jti: jti.into(),
            client_id: "c".into(),
            revoked_at: 0,
            expires_at,
        })
        .await
        .unwrap();
    }
    // Initial access tokens: one expired, one live.
    for (hash, expires_at) in [(1u8, 500), (2u8, 5_000)] {
        s.insert_initial_access_token(&InitialAccessTokenRecord {
            token_hash: vec![hash; 32],
            created_at: 0,
            expires_at,
            description: None,
        })
        .await
        .unwrap();
    }

    assert_eq!(s.prune_expired(now).await.unwrap(), 4);
    assert_eq!(s.prune_expired(now).await.unwrap(), 0);

    // The live replay record still blocks; the expired ones are gone.
    assert!(!s.record_jti_once("ns", "live", 3_000, 0).await.unwrap());
    assert!(s.record_jti_once("ns", "old", 3_000, 0).await.unwrap());
    assert!(s.is_token_revoked("r-live").await.unwrap());
    assert!(!s.is_token_revoked("r-old").await.unwrap());
    assert!(s
        .get_initial_access_token(&[2; 32])
        .await
        .unwrap()
        .is_some());
    assert!(s
        .get_initial_access_token(&[1; 32])
        .await
        .unwrap()
        .is_none());
}

/// Many keys at once, each asked for twice and some already recorded (on
/// SQLite, written together in one statement): exactly one first use per
/// fresh key, none for a recorded one, and an expired record taken over.
async fn jti_many_keys_at_once(db: TestDb) {
    let s = db.store;
    assert!(s.record_jti_once("ns", "old-live", 1_000, 0).await.unwrap());
    assert!(s.record_jti_once("ns", "old-expired", 5, 0).await.unwrap());
    let mut tasks = Vec::new();
    for round in 0..2 {
        for key in 0..100 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let jti = format!("k{key}");
                (
                    jti.clone(),
                    round,
                    s.record_jti_once("ns", &jti, 1_000, 10).await.unwrap(),
                )
            }));
        }
    }
    for special in ["old-live", "old-expired"] {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            (
                special.to_owned(),
                0,
                s.record_jti_once("ns", special, 1_000, 10).await.unwrap(),
            )
        }));
    }
    let mut firsts = std::collections::HashMap::<String, usize>::new();
    for task in tasks {
        let (jti, _, first) = task.await.unwrap();
        *firsts.entry(jti).or_default() += usize::from(first);
    }
    for key in 0..100 {
        assert_eq!(firsts[&format!("k{key}")], 1, "key k{key}");
    }
    assert_eq!(firsts["old-live"], 0, "an unexpired record is a replay");
    assert_eq!(firsts["old-expired"], 1, "an expired record is taken over");
    // Namespaces keep keys apart.
    assert!(s.record_jti_once("other", "k1", 1_000, 10).await.unwrap());
}

/// One read answers for a token's whole lineage: its own `jti`, those it
/// was exchanged from, and its refresh family.
async fn lineage_revocation(db: TestDb) {
    let s = db.store;
    let lineage: Vec<String> = ["t3", "t2", "t1"].map(String::from).to_vec();
    assert!(!s.is_lineage_revoked(&lineage, None, &[]).await.unwrap());
    assert!(!s.is_lineage_revoked(&[], None, &[]).await.unwrap());
    // An unknown family counts as revoked (its tokens cannot be checked).
    assert!(s
        .is_lineage_revoked(&lineage, Some("g1"), &[])
        .await
        .unwrap());
    s.insert_grant(&crate::grants::grant("g1", "c1", 0, 10_000))
        .await
        .unwrap();
    assert!(!s
        .is_lineage_revoked(&lineage, Some("g1"), &[])
        .await
        .unwrap());
    assert!(!s.is_lineage_revoked(&[], Some("g1"), &[]).await.unwrap());
    s.revoke_token(&RevokedToken {
        jti: "t1".into(),
        client_id: "c1".into(),
        revoked_at: 100,
        expires_at: 400,
    })
    .await
    .unwrap();
    assert!(s.is_lineage_revoked(&lineage, None, &[]).await.unwrap());
    assert!(s
        .is_lineage_revoked(&lineage[2..], Some("g1"), &[])
        .await
        .unwrap());
    assert!(!s
        .is_lineage_revoked(&lineage[..2], Some("g1"), &[])
        .await
        .unwrap());
    s.revoke_grant("g1", 200, "test").await.unwrap();
    assert!(s
        .is_lineage_revoked(&lineage[..2], Some("g1"), &[])
        .await
        .unwrap());
    let too_long: Vec<String> = (0..=custos_store::MAX_LINEAGE)
        .map(|i| i.to_string())
        .collect();
    assert!(s.is_lineage_revoked(&too_long, None, &[]).await.is_err());

    // The clients the lineage was issued to: each must exist and be
    // enabled (named twice or not).
    let two: Vec<String> = ["a", "b", "a"].map(String::from).to_vec();
    assert!(s.is_lineage_revoked(&[], None, &two).await.unwrap());
    for id in ["a", "b"] {
        s.insert_client(&crate::clients::client(id, 10))
            .await
            .unwrap();
    }
    assert!(!s.is_lineage_revoked(&[], None, &two).await.unwrap());
    let mut b = s.get_client("b").await.unwrap().unwrap();
    b.disabled_at = Some(20);
    assert!(s.update_client(&b).await.unwrap());
    assert!(s.is_lineage_revoked(&[], None, &two).await.unwrap());
    assert!(!s.is_lineage_revoked(&[], None, &two[..1]).await.unwrap());
}

/// Many lineages asked at once (SQLite answers them in groups): each gets
/// its own answer.
async fn lineages_at_once(db: TestDb) {
    let s: Arc<dyn Store> = db.store;
    s.insert_client(&crate::clients::client("on", 10))
        .await
        .unwrap();
    s.insert_grant(&crate::grants::grant("live", "on", 0, 10_000))
        .await
        .unwrap();
    for i in (0..200).step_by(3) {
        s.revoke_token(&RevokedToken {
            jti: format!("j{i}"),
            client_id: "on".into(),
            revoked_at: 1,
            expires_at: 400,
        })
        .await
        .unwrap();
    }
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let jtis = vec![format!("j{i}"), format!("k{i}")];
                let grant = match i % 5 {
                    0 => Some("gone"),
                    1 | 2 => Some("live"),
                    _ => None,
                };
                let clients = vec![if i % 7 == 0 { "off" } else { "on" }.to_owned()];
                let expected = i % 3 == 0 || i % 5 == 0 || i % 7 == 0;
                let got = s.is_lineage_revoked(&jtis, grant, &clients).await.unwrap();
                (i, got, expected)
            })
        })
        .collect();
    for task in tasks {
        let (i, got, expected) = task.await.unwrap();
        assert_eq!(got, expected, "lineage {i}");
    }
}

conformance!(
    jti_single_use,
    lineages_at_once,
    jti_concurrent,
    jti_many_keys_at_once,
    revocation,
    lineage_revocation,
    prune_expired
);
