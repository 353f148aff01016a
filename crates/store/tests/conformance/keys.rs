use std::sync::Arc;

use custos_store::{SigningKeyRecord, StoreError};

use crate::harness::TestDb;

fn key(kid: &str, created_at: i64, activates_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: "ES256".into(),
        public_jwk: format!(r#"{{"kty":"EC","kid":"{kid}"}}"#),
        sealed_private_key: vec![0xAB; 60],
        created_at,
        activates_at,
        retired_at: None,
    }
}

async fn first_key_and_rotation(db: TestDb) {
    let s = db.store;
    assert_eq!(s.list_signing_keys().await.unwrap(), vec![]);
    let k1 = key("k1", 100, 100);
    assert!(s.insert_first_signing_key(&k1).await.unwrap());
    // Not the first any more: nothing inserted, same kid or not.
    assert!(!s
        .insert_first_signing_key(&key("k0", 50, 50))
        .await
        .unwrap());
    assert!(!s.insert_first_signing_key(&k1).await.unwrap());
    assert_eq!(s.list_signing_keys().await.unwrap(), vec![k1.clone()]);

    let k2 = key("k2", 200, 260);
    s.rotate_signing_key(&k2).await.unwrap();
    let k1_retired = SigningKeyRecord {
        retired_at: Some(260),
        ..k1.clone()
    };
    assert_eq!(
        s.list_signing_keys().await.unwrap(),
        vec![k1_retired.clone(), k2.clone()]
    );

    let k3 = key("k3", 300, 360);
    s.rotate_signing_key(&k3).await.unwrap();
    let k2_retired = SigningKeyRecord {
        retired_at: Some(360),
        ..k2.clone()
    };
    // Already-retired keys keep their retired_at.
    let after = vec![k1_retired, k2_retired, k3.clone()];
    assert_eq!(s.list_signing_keys().await.unwrap(), after);

    // A rotation that cannot insert changes nothing (one transaction).
    let clash = key("k2", 400, 460);
    assert!(matches!(
        s.rotate_signing_key(&clash).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.list_signing_keys().await.unwrap(), after);
}

async fn first_key_race(db: TestDb) {
    let s = db.store;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.insert_first_signing_key(&key(&format!("race{i}"), 1, 1))
                    .await
            })
        })
        .collect();
    let mut inserted = 0;
    for task in tasks {
        if task.await.unwrap().expect("no racer fails") {
            inserted += 1;
        }
    }
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(
        inserted, 1,
        "replicas starting together agree on one first key"
    );
    assert_eq!(keys.len(), 1);
}

async fn delete_expired_keys(db: TestDb) {
    let s = db.store;
    let retired = |kid: &str, at: i64| SigningKeyRecord {
        retired_at: Some(at),
        ..key(kid, at - 50, at - 50)
    };
    s.insert_first_signing_key(&retired("old", 100))
        .await
        .unwrap();
    s.rotate_signing_key(&retired("edge", 150)).await.unwrap();
    s.rotate_signing_key(&retired("recent", 200)).await.unwrap();
    s.rotate_signing_key(&key("active", 300, 300))
        .await
        .unwrap();
    // rotate_signing_key retires nothing here: all but "active" already are.
    let kids = |keys: Vec<SigningKeyRecord>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(
        kids(s.list_signing_keys().await.unwrap()),
        ["old", "edge", "recent", "active"]
    );

    // retired_at + ttl <= now: 100+850 and 150+850 are gone, 200+850 stays.
    assert_eq!(s.delete_expired_signing_keys(1000, 850).await.unwrap(), 2);
    assert_eq!(
        kids(s.list_signing_keys().await.unwrap()),
        ["recent", "active"]
    );
    assert_eq!(s.delete_expired_signing_keys(1000, 850).await.unwrap(), 0);
    // The active key is never deleted.
    assert_eq!(
        s.delete_expired_signing_keys(i64::MAX / 2, 0)
            .await
            .unwrap(),
        1
    );
    assert_eq!(kids(s.list_signing_keys().await.unwrap()), ["active"]);
}

conformance!(first_key_and_rotation, first_key_race, delete_expired_keys);
