use custos_store::{ClientRecord, StoreError};

use crate::harness::TestDb;

pub fn client(id: &str, created_at: i64) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        metadata_json: format!(r#"{{"client_name":"{id}","redirect_uris":[]}}"#),
        secret_hash: Some(vec![1, 2, 3, 0, 255]),
        secret_created_at: Some(created_at),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        registration_token_hash: Some(vec![9; 32]),
        created_at,
        updated_at: created_at,
        disabled_at: None,
        version: 1,
    }
}

async fn insert_get_update_list(db: TestDb) {
    let s = db.store;
    assert_eq!(s.get_client("nobody").await.unwrap(), None);
    assert_eq!(s.list_clients().await.unwrap(), vec![]);

    let b = client("b-client", 200);
    let a = client("a-client", 200);
    let first = ClientRecord {
        secret_hash: None,
        secret_created_at: None,
        registration_token_hash: None,
        ..client("z-client", 100)
    };
    for c in [&b, &a, &first] {
        s.insert_client(c).await.unwrap();
    }
    assert_eq!(s.get_client("a-client").await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_client("z-client").await.unwrap(), Some(first.clone()));
    // Ordered by created_at, then client_id.
    assert_eq!(
        s.list_clients().await.unwrap(),
        vec![first.clone(), a.clone(), b.clone()]
    );

    // Every column changes, including Some → None and None → Some.
    let updated = ClientRecord {
        client_id: "a-client".into(),
        metadata_json: r#"{"client_name":"renamed ✓"}"#.into(),
        secret_hash: Some(vec![7; 32]),
        secret_created_at: Some(300),
        previous_secret_hash: Some(vec![1, 2, 3, 0, 255]),
        previous_secret_expires_at: Some(400),
        registration_token_hash: None,
        created_at: 200,
        updated_at: 300,
        disabled_at: Some(350),
        version: 1,
    };
    assert!(s.update_client(&updated).await.unwrap());
    let updated = ClientRecord {
        version: 2,
        ..updated
    };
    assert_eq!(
        s.get_client("a-client").await.unwrap(),
        Some(updated.clone())
    );
    // Disabled clients are still listed.
    assert_eq!(s.list_clients().await.unwrap(), vec![first, updated, b]);

    assert!(!s.update_client(&client("missing", 1)).await.unwrap());
    assert_eq!(s.get_client("missing").await.unwrap(), None);
}

async fn insert_conflict(db: TestDb) {
    let s = db.store;
    let original = client("dup", 10);
    s.insert_client(&original).await.unwrap();
    let again = ClientRecord {
        metadata_json: "{}".into(),
        ..client("dup", 20)
    };
    assert!(matches!(
        s.insert_client(&again).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.get_client("dup").await.unwrap(), Some(original));
    assert_eq!(s.list_clients().await.unwrap().len(), 1);
}

/// (a) An update made from a stale read returns false and writes nothing.
async fn update_with_stale_version(db: TestDb) {
    let s = db.store;
    s.insert_client(&client("c", 100)).await.unwrap();
    let read = s.get_client("c").await.unwrap().unwrap();
    assert_eq!(read.version, 1);

    let renamed = ClientRecord {
        metadata_json: r#"{"client_name":"renamed"}"#.into(),
        updated_at: 200,
        ..read.clone()
    };
    assert!(s.update_client(&renamed).await.unwrap());
    let stored = s.get_client("c").await.unwrap().unwrap();
    assert_eq!(
        stored,
        ClientRecord {
            version: 2,
            ..renamed
        }
    );

    // Built from the first read (version 1): refused, nothing changes.
    let stale = ClientRecord {
        secret_hash: None,
        secret_created_at: None,
        disabled_at: Some(300),
        updated_at: 300,
        ..read.clone()
    };
    assert!(!s.update_client(&stale).await.unwrap());
    assert_eq!(s.get_client("c").await.unwrap(), Some(stored.clone()));
    // A version from the future is refused too.
    let ahead = ClientRecord {
        version: 3,
        ..stale.clone()
    };
    assert!(!s.update_client(&ahead).await.unwrap());
    assert_eq!(s.get_client("c").await.unwrap(), Some(stored.clone()));
    assert_eq!(s.list_clients().await.unwrap(), vec![stored]);

    // A missing client is not created.
    assert!(!s.update_client(&client("missing", 1)).await.unwrap());
    assert_eq!(s.get_client("missing").await.unwrap(), None);
}

/// (b) "delete" (disable) and "rotate secret" made from the same read, run
/// concurrently: exactly one wins every round, the row is exactly the
/// winner's, and a disabled client is never re-enabled.
async fn delete_and_rotate_race(db: TestDb) {
    let s = db.store;
    let (mut deletes_won, mut rotates_won) = (0, 0);
    for round in 0..50u8 {
        let id = format!("race-{round}");
        s.insert_client(&client(&id, 100)).await.unwrap();
        let read = s.get_client(&id).await.unwrap().unwrap();
        let delete = |from: &ClientRecord| ClientRecord {
            disabled_at: Some(200),
            updated_at: 200,
            ..from.clone()
        };
        let rotate = ClientRecord {
            secret_hash: Some(vec![round; 32]),
            secret_created_at: Some(200),
            previous_secret_hash: read.secret_hash.clone(),
            previous_secret_expires_at: Some(260),
            updated_at: 200,
            disabled_at: None,
            ..read.clone()
        };
        let deletion = delete(&read);
        // Alternate which write is sent first.
        let (deleted, rotated) = if round % 2 == 0 {
            tokio::join!(s.update_client(&deletion), s.update_client(&rotate))
        } else {
            let (r, d) = tokio::join!(s.update_client(&rotate), s.update_client(&deletion));
            (d, r)
        };
        let (deleted, rotated) = (deleted.unwrap(), rotated.unwrap());
        assert!(
            deleted != rotated,
            "round {round}: exactly one update wins (delete: {deleted}, rotate: {rotated})"
        );
        let stored = s.get_client(&id).await.unwrap().unwrap();
        let winner = if deleted { &deletion } else { &rotate };
        assert_eq!(
            stored,
            ClientRecord {
                version: 2,
                ..winner.clone()
            },
            "round {round}: the row is the winner's write"
        );
        if deleted {
            deletes_won += 1;
            // The rotation, however late, cannot re-enable the client.
            assert!(!s.update_client(&rotate).await.unwrap());
            assert_eq!(s.get_client(&id).await.unwrap(), Some(stored));
        } else {
            rotates_won += 1;
            // The losing delete re-reads and applies to the fresh row.
            assert!(!s.update_client(&deletion).await.unwrap());
            assert!(s.update_client(&delete(&stored)).await.unwrap());
            let after = s.get_client(&id).await.unwrap().unwrap();
            assert_eq!((after.disabled_at, after.version), (Some(200), 3));
            assert_eq!(after.secret_hash, rotate.secret_hash);
        }
    }
    assert_eq!(deletes_won + rotates_won, 50);
    let clients = s.list_clients().await.unwrap();
    assert_eq!(clients.len(), 50);
    assert!(
        clients.iter().all(|c| c.disabled_at == Some(200)),
        "every client stays disabled"
    );

    // Many replicas writing from the same read: still one winner.
    let read = s.get_client("race-0").await.unwrap().unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = std::sync::Arc::clone(&s);
            let write = ClientRecord {
                updated_at: 1_000 + i,
                ..read.clone()
            };
            tokio::spawn(async move { s.update_client(&write).await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(
        s.get_client("race-0").await.unwrap().unwrap().version,
        read.version + 1
    );
}

/// (c) Every successful update increments the version by exactly one;
/// failed ones leave it; insert stores the version it is given.
async fn version_increments(db: TestDb) {
    let s = db.store;
    s.insert_client(&client("v", 1)).await.unwrap();
    for expected in 1..=5 {
        let read = s.get_client("v").await.unwrap().unwrap();
        assert_eq!(read.version, expected);
        let write = ClientRecord {
            updated_at: read.updated_at + 1,
            ..read.clone()
        };
        assert!(s.update_client(&write).await.unwrap());
        // The same read again is now stale.
        assert!(!s.update_client(&write).await.unwrap());
        assert_eq!(
            s.get_client("v").await.unwrap().unwrap().version,
            expected + 1
        );
    }

    let seven = ClientRecord {
        version: 7,
        ..client("seven", 1)
    };
    s.insert_client(&seven).await.unwrap();
    assert_eq!(s.get_client("seven").await.unwrap(), Some(seven.clone()));
    assert!(!s
        .update_client(&ClientRecord {
            version: 1,
            ..seven.clone()
        })
        .await
        .unwrap());
    assert!(s.update_client(&seven).await.unwrap());
    assert_eq!(s.get_client("seven").await.unwrap().unwrap().version, 8);
}

conformance!(
    insert_get_update_list,
    insert_conflict,
    update_with_stale_version,
    delete_and_rotate_race,
    version_increments,
);
