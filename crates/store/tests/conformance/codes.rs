//! Authorization codes (OAuth 2.1 §4.1.3, RFC 9700 §4.5): single use,
//! decided by one conditional write — also under concurrent redemption on
//! two pools (two replicas) — bound to the client that redeems them.

use std::sync::Arc;

use custos_store::{AuthorizationCodeRecord, Redemption, Store, StoreError};

use crate::grants::h;
use crate::harness::TestDb;

pub(crate) fn code(label: &str, expires_at: i64) -> AuthorizationCodeRecord {
    AuthorizationCodeRecord {
        code_hash: h(label),
        client_id: "c1".into(),
        redirect_uri: "https://app.example/cb?x=1".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        subject: "alice".into(),
        scope: "openid read".into(),
        resources: vec!["https://api.example/".into()],
        dpop_jkt: Some("jkt".into()),
        authorization_details: Some(r#"[{"type":"payment_initiation"}]"#.into()),
        created_at: 0,
        expires_at,
        consumed_at: None,
        grant_id: None,
    }
}

async fn rfc9700_authorization_code_is_single_use(db: TestDb) {
    let s = db.store;
    let issued = code("code-1", 600);
    s.insert_code(&issued).await.unwrap();
    assert!(matches!(
        s.insert_code(&issued).await,
        Err(StoreError::Conflict)
    ));

    let redeemed = AuthorizationCodeRecord {
        consumed_at: Some(100),
        grant_id: Some("grant-1".into()),
        ..issued.clone()
    };
    assert_eq!(
        s.redeem_code(&h("code-1"), "c1", "grant-1", 100)
            .await
            .unwrap(),
        Redemption::Redeemed(redeemed.clone())
    );
    // The second redemption changes nothing and names the first one's grant.
    for now in [100, 101, 599] {
        assert_eq!(
            s.redeem_code(&h("code-1"), "c1", "grant-2", now)
                .await
                .unwrap(),
            Redemption::AlreadyRedeemed(redeemed.clone())
        );
    }
    assert_eq!(
        s.redeem_code(&h("unknown"), "c1", "grant-3", 100)
            .await
            .unwrap(),
        Redemption::Unknown
    );
    // Another client learns nothing of a redeemed code and cannot burn an
    // unredeemed one.
    assert_eq!(
        s.redeem_code(&h("code-1"), "c2", "grant-4", 100)
            .await
            .unwrap(),
        Redemption::Unknown
    );

    // Optional columns empty.
    let bare = AuthorizationCodeRecord {
        resources: vec![],
        dpop_jkt: None,
        authorization_details: None,
        ..code("code-2", 600)
    };
    s.insert_code(&bare).await.unwrap();
    assert_eq!(
        s.redeem_code(&h("code-2"), "c1", "g", 1).await.unwrap(),
        Redemption::Redeemed(AuthorizationCodeRecord {
            consumed_at: Some(1),
            grant_id: Some("g".into()),
            ..bare
        })
    );
}

/// 50 concurrent redemptions of one code on two pools (two replicas):
/// exactly one wins, and every loser learns the winner's grant.
async fn rfc9700_concurrent_code_redemption_has_exactly_one_winner(db: TestDb) {
    let s = db.store.clone();
    let replica = db.reopen().await;
    s.insert_code(&code("contested", 600)).await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = if i % 2 == 0 { &s } else { &replica };
            let s: Arc<dyn Store> = Arc::clone(s);
            tokio::spawn(async move {
                s.redeem_code(&h("contested"), "c1", &format!("grant-{i}"), 100)
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task
            .await
            .unwrap()
            .expect("redeem_code must not fail under contention")
        {
            Redemption::Redeemed(code) => winners.push(code),
            Redemption::AlreadyRedeemed(code) => losers.push(code),
            Redemption::Unknown => panic!("a live code is never Unknown"),
        }
    }
    replica.close().await;
    assert_eq!(winners.len(), 1, "exactly one redemption wins");
    assert_eq!(losers.len(), 49);
    let winner = &winners[0];
    assert_eq!(winner.consumed_at, Some(100));
    assert!(losers.iter().all(|l| l == winner), "losers see the winner");
}

async fn expired_authorization_code_is_unknown(db: TestDb) {
    let s = db.store;
    s.insert_code(&code("late", 100)).await.unwrap();
    // expires_at is the first second it no longer works.
    for now in [100, 101] {
        assert_eq!(
            s.redeem_code(&h("late"), "c1", "g", now).await.unwrap(),
            Redemption::Unknown
        );
    }
    // Nothing was written: the code was not consumed.
    s.insert_code(&code("in-time", 100)).await.unwrap();
    assert!(matches!(
        s.redeem_code(&h("in-time"), "c1", "g", 99).await.unwrap(),
        Redemption::Redeemed(_)
    ));
    // A consumed code keeps telling its reuse apart after its expiry, until
    // pruned.
    assert!(matches!(
        s.redeem_code(&h("in-time"), "c1", "g2", 150).await.unwrap(),
        Redemption::AlreadyRedeemed(c) if c.grant_id.as_deref() == Some("g")
    ));
    assert_eq!(s.prune_expired(150).await.unwrap(), 2);
    for label in ["late", "in-time"] {
        assert_eq!(
            s.redeem_code(&h(label), "c1", "g", 150).await.unwrap(),
            Redemption::Unknown
        );
    }
}

conformance!(
    rfc9700_authorization_code_is_single_use,
    rfc9700_concurrent_code_redemption_has_exactly_one_winner,
    expired_authorization_code_is_unknown,
);
