use custos_store::{PolicyRecord, StoreError};

use crate::harness::TestDb;

fn record(id: &str, created_at: i64) -> PolicyRecord {
    PolicyRecord {
        id: id.into(),
        cedar: format!(
            "forbid(principal, action, resource) when {{ principal.owner == \"{id}\" }};"
        ),
        created_at,
    }
}

/// Records are kept as written, listed in creation order, and every change
/// (and only a change) moves the generation replicas poll.
async fn policy_records_and_generation(db: TestDb) {
    let s = db.store;
    let start = s.policy_generation().await.unwrap();
    assert_eq!(s.list_policies().await.unwrap(), vec![]);

    s.insert_policy(&record("b.second", 20)).await.unwrap();
    s.insert_policy(&record("a.first", 10)).await.unwrap();
    assert_eq!(s.policy_generation().await.unwrap(), start + 2);
    assert_eq!(
        s.list_policies().await.unwrap(),
        vec![record("a.first", 10), record("b.second", 20)]
    );

    // An existing id is a conflict and changes nothing.
    assert!(matches!(
        s.insert_policy(&record("a.first", 30)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(s.policy_generation().await.unwrap(), start + 2);

    assert!(s.delete_policy("a.first").await.unwrap());
    assert!(!s.delete_policy("a.first").await.unwrap());
    assert_eq!(s.policy_generation().await.unwrap(), start + 3);
    assert_eq!(
        s.list_policies().await.unwrap(),
        vec![record("b.second", 20)]
    );
}

conformance!(policy_records_and_generation);
