//! Refresh-token rotation under stress: callers that stop waiting, new
//! hashes that already exist, many families at once (SQLite's grouped
//! commits), and the caller's decision taken inside the rotation.

use std::sync::Arc;
use std::time::Instant;

use custos_store::{Rotation, StoreError};

use crate::grants::{family, grant, h, next};
use crate::harness::TestDb;

/// A caller that stops waiting half-way through a write transaction (an
/// HTTP client that disconnects mid-request, a timeout) must not leave the
/// transaction open: the rotation still completes, exactly once, and other
/// writes go through at once.
async fn cancelled_write_transactions_leave_no_lock_behind(db: TestDb) {
    let s = db.store;
    family(&s, "fam", "c0").await;
    let mut current = "c0".to_owned();
    for step in 1..=40u64 {
        let next_label = format!("c{step}");
        let now = step as i64;
        // Cut the caller off at a different point each time.
        let cut = std::time::Duration::from_micros(step * 37 % 400);
        let _ = tokio::time::timeout(
            cut,
            s.rotate_refresh_token(&h(&current), &next(&next_label, now), now, 0),
        )
        .await;
        // The rotation finishes on its own; wait until it has.
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        loop {
            if s.get_refresh_token(&h(&next_label))
                .await
                .unwrap()
                .is_some()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "step {step}: a rotation whose caller stopped waiting never finished"
            );
            tokio::task::yield_now().await;
        }
        current = next_label;
    }
    // Another write is not stuck behind a transaction left open.
    let started = Instant::now();
    s.insert_grant(&grant("other", "c1", 0, 10_000))
        .await
        .unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "a write waited {:?}: a cancelled transaction held the lock",
        started.elapsed()
    );
    let rotation = s
        .rotate_refresh_token(&h(&current), &next("last", 100), 100, 0)
        .await
        .unwrap();
    assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
}

/// A rotation whose new hash already exists is a `Conflict` and leaves
/// everything as it was: the presented token can still be rotated (fast
/// path and grace retry alike).
async fn rotation_to_an_existing_hash_is_a_conflict_and_changes_nothing(db: TestDb) {
    let s = db.store;
    family(&s, "fam", "a0").await;
    family(&s, "other", "b0").await;
    assert!(matches!(
        s.rotate_refresh_token(&h("a0"), &next("b0", 10), 10, 0)
            .await,
        Err(StoreError::Conflict)
    ));
    let a0 = s.get_refresh_token(&h("a0")).await.unwrap().unwrap();
    assert_eq!(a0.used_at, None, "the failed rotation is undone");
    assert!(matches!(
        s.rotate_refresh_token(&h("a0"), &next("a1", 10), 10, 60)
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: false,
            ..
        }
    ));
    // The grace retry: a conflict there gives the retry back.
    assert!(matches!(
        s.rotate_refresh_token(&h("a0"), &next("b0", 11), 11, 60)
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.rotate_refresh_token(&h("a0"), &next("a1b", 12), 12, 60)
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: true,
            ..
        }
    ));
    assert_eq!(s.get_grant("fam").await.unwrap().unwrap().revoked_at, None);
}

/// Many families rotating at once (on SQLite, decided together in one
/// commit) each get their own answer: all rotate, none is taken for a
/// reuse, and every new token joins its own family.
async fn concurrent_rotations_of_many_families_all_rotate(db: TestDb) {
    let s = db.store;
    for i in 0..100 {
        family(&s, &format!("f{i}"), &format!("f{i}-t0")).await;
    }
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.rotate_refresh_token(
                &h(&format!("f{i}-t0")),
                &next(&format!("f{i}-t1"), 50),
                50,
                0,
            )
            .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let rotation = task.await.unwrap().unwrap();
        assert!(
            matches!(&rotation, Rotation::Rotated { grant_id, .. } if *grant_id == format!("f{i}")),
            "family {i}: {rotation:?}"
        );
        let t1 = s
            .get_refresh_token(&h(&format!("f{i}-t1")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(t1.grant_id, format!("f{i}"));
    }
}

/// `rotate_refresh_token_if`: the caller's check sees the token and its
/// family as they are inside the rotation; declined, nothing is written
/// (the token still rotates later); accepted, the successor takes the
/// family's scope and lives no longer than the family. Alone (one
/// statement), in a group (SQLite's batch) and on a grace retry.
async fn rotation_decided_inside_declines_without_writing(db: TestDb) {
    use custos_store::RotationCheck;
    let s = db.store;
    let g = family(&s, "fam", "d0").await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let check = |accept: bool| -> RotationCheck {
        let seen = seen.clone();
        Arc::new(move |token, family| {
            seen.lock()
                .unwrap()
                .push((token.token_hash.clone(), family.clone()));
            accept
        })
    };
    let mut long = next("d1", 10);
    long.scope = String::new();
    long.expires_at = 1_000_000;
    assert_eq!(
        s.rotate_refresh_token_if(&h("d0"), &long, 10, 60, check(false))
            .await
            .unwrap(),
        Rotation::Declined
    );
    assert_eq!(seen.lock().unwrap().as_slice(), &[(h("d0"), g.clone())]);
    assert_eq!(
        s.get_refresh_token(&h("d0"))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
    assert_eq!(s.get_refresh_token(&h("d1")).await.unwrap(), None);
    assert!(matches!(
        s.rotate_refresh_token_if(&h("d0"), &long, 10, 60, check(true))
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: false,
            ..
        }
    ));
    let d1 = s.get_refresh_token(&h("d1")).await.unwrap().unwrap();
    assert_eq!(d1.scope, g.scope, "the family's scope");
    assert_eq!(d1.expires_at, g.expires_at, "no longer than the family");
    // The grace retry asks too, and a declined retry keeps it available.
    let mut retry = next("d1b", 11);
    retry.scope = String::new();
    assert_eq!(
        s.rotate_refresh_token_if(&h("d0"), &retry, 11, 60, check(false))
            .await
            .unwrap(),
        Rotation::Declined
    );
    assert!(matches!(
        s.rotate_refresh_token_if(&h("d0"), &retry, 11, 60, check(true))
            .await
            .unwrap(),
        Rotation::Rotated {
            within_grace: true,
            ..
        }
    ));
    // Many at once, half declined: the declined ones are untouched.
    for i in 0..40 {
        family(&s, &format!("b{i}"), &format!("b{i}-0")).await;
    }
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = s.clone();
        let accept = i % 2 == 0;
        let check: RotationCheck = Arc::new(move |_, _| accept);
        tasks.push(tokio::spawn(async move {
            s.rotate_refresh_token_if(
                &h(&format!("b{i}-0")),
                &next(&format!("b{i}-1"), 20),
                20,
                0,
                check,
            )
            .await
            .unwrap()
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let rotation = task.await.unwrap();
        let old = s
            .get_refresh_token(&h(&format!("b{i}-0")))
            .await
            .unwrap()
            .unwrap();
        let new = s.get_refresh_token(&h(&format!("b{i}-1"))).await.unwrap();
        if i % 2 == 0 {
            assert!(
                matches!(rotation, Rotation::Rotated { .. }),
                "{i}: {rotation:?}"
            );
            assert_eq!(old.used_at, Some(20));
            assert!(new.is_some());
        } else {
            assert_eq!(rotation, Rotation::Declined, "{i}");
            assert_eq!(old.used_at, None);
            assert!(new.is_none());
        }
    }
    // A reuse revokes the family whatever the check says.
    let reused = s
        .rotate_refresh_token_if(&h("b0-0"), &next("b0-x", 30), 30, 0, check(false))
        .await
        .unwrap();
    assert!(matches!(reused, Rotation::Reused { .. }), "{reused:?}");
    assert!(s
        .get_grant("b0")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
}

conformance!(
    cancelled_write_transactions_leave_no_lock_behind,
    rotation_to_an_existing_hash_is_a_conflict_and_changes_nothing,
    concurrent_rotations_of_many_families_all_rotate,
    rotation_decided_inside_declines_without_writing,
);
