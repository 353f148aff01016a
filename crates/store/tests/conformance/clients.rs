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
    };
    assert!(s.update_client(&updated).await.unwrap());
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

conformance!(insert_get_update_list, insert_conflict);
