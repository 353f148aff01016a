use std::sync::Arc;

use custos_governance::{event_type, AuditEvent, EventFilter, Outcome};

use crate::harness::TestDb;

fn event(kind: &str, time_ms: i64, client: Option<&str>) -> AuditEvent {
    AuditEvent {
        client_id: client.map(str::to_owned),
        ..AuditEvent::new(kind, time_ms, Outcome::Success)
    }
}

fn filter(
    client: Option<&str>,
    kind: Option<&str>,
    since_ms: Option<i64>,
    limit: u32,
) -> EventFilter {
    EventFilter {
        client_id: client.map(str::to_owned),
        event_type: kind.map(str::to_owned),
        since_ms,
        limit,
    }
}

/// Compares everything but the store-assigned id.
fn without_ids(events: &[AuditEvent]) -> Vec<AuditEvent> {
    events
        .iter()
        .map(|e| AuditEvent { id: 0, ..e.clone() })
        .collect()
}

async fn append_and_query(db: TestDb) {
    let s = db.store;
    s.append_events(&[]).await.unwrap();
    assert_eq!(
        s.query_events(&EventFilter::default()).await.unwrap(),
        vec![]
    );

    // 2500 events in two batches: several multi-row INSERTs with odd-sized
    // tails on both engines, and more than the default limit.
    let clients = ["alpha", "beta", "gamma"];
    let kinds = [
        event_type::TOKEN_ISSUED,
        event_type::TOKEN_REFUSED,
        event_type::CLIENT_UPDATED,
    ];
    let mut events: Vec<AuditEvent> = (0..2500i64)
        .map(|i| {
            let client = (i % 10 != 9).then(|| clients[(i % 3) as usize]);
            event(kinds[(i % 7 % 3) as usize], 1_000_000 + i, client)
        })
        .collect();
    events[5] = AuditEvent {
        id: 12345, // ignored: the store assigns ids
        time_ms: 1_000_005,
        event_type: event_type::TOKEN_REFUSED.into(),
        client_id: Some("beta".into()),
        grant_type: Some("client_credentials".into()),
        scope: Some("read write".into()),
        resource: Some("https://api.example/ urn:x".into()),
        outcome: Outcome::Failure,
        reason: Some("invalid_scope: scope \"admin\" is not allowed ✗".into()),
        source_addr: Some("[2001:db8::1]:443".into()),
        auth_method: Some("spiffe_x509".into()),
        attested_id: Some("spiffe://example.org/ns/prod/sa/api".into()),
        policy: Some("deny: acme.no-sensitive".into()),
        task_id: Some("task-42".into()),
    };
    s.append_events(&events[..1733]).await.unwrap();
    s.append_events(&events[1733..]).await.unwrap();

    let all = s
        .query_events(&filter(None, None, None, 5000))
        .await
        .unwrap();
    assert_eq!(without_ids(&all), without_ids(&events));
    assert!(
        all.windows(2).all(|w| w[0].id < w[1].id),
        "ids increase in append order"
    );

    // limit 0 → the newest 1000, oldest first.
    let default = s.query_events(&EventFilter::default()).await.unwrap();
    assert_eq!(default, all[1500..].to_vec());
    let last10 = s.query_events(&filter(None, None, None, 10)).await.unwrap();
    assert_eq!(last10, all[2490..].to_vec());

    let expect = |pred: &dyn Fn(&AuditEvent) -> bool, limit: usize| {
        let matching: Vec<AuditEvent> = all.iter().filter(|e| pred(e)).cloned().collect();
        matching[matching.len().saturating_sub(limit)..].to_vec()
    };
    let by_client = s
        .query_events(&filter(Some("beta"), None, None, 5000))
        .await
        .unwrap();
    assert_eq!(
        by_client,
        expect(&|e| e.client_id.as_deref() == Some("beta"), 5000)
    );
    assert!(by_client.contains(&AuditEvent {
        id: all[5].id,
        ..events[5].clone()
    }));

    let by_type = s
        .query_events(&filter(None, Some(event_type::TOKEN_REFUSED), None, 50))
        .await
        .unwrap();
    assert_eq!(by_type.len(), 50);
    assert_eq!(
        by_type,
        expect(&|e| e.event_type == event_type::TOKEN_REFUSED, 50)
    );

    let since = s
        .query_events(&filter(None, None, Some(1_002_400), 5000))
        .await
        .unwrap();
    assert_eq!(since, expect(&|e| e.time_ms >= 1_002_400, 5000));
    assert_eq!(since.len(), 100);

    let combined = s
        .query_events(&filter(
            Some("alpha"),
            Some(event_type::TOKEN_ISSUED),
            Some(1_001_000),
            7,
        ))
        .await
        .unwrap();
    assert_eq!(
        combined,
        expect(
            &|e| e.client_id.as_deref() == Some("alpha")
                && e.event_type == event_type::TOKEN_ISSUED
                && e.time_ms >= 1_001_000,
            7
        )
    );
    assert_eq!(combined.len(), 7);
    assert_eq!(
        s.query_events(&filter(Some("nobody"), None, None, 10))
            .await
            .unwrap(),
        vec![]
    );
}

async fn last_used(db: TestDb) {
    let s = db.store;
    assert_eq!(s.client_last_used().await.unwrap(), vec![]);
    s.append_events(&[
        event(event_type::TOKEN_ISSUED, 5_000, Some("b")),
        event(event_type::TOKEN_ISSUED, 9_000, Some("a")),
        event(event_type::TOKEN_ISSUED, 7_000, Some("a")),
        // Not token.issued, or no client: ignored.
        event(event_type::TOKEN_REFUSED, 99_000, Some("b")),
        event(event_type::CLIENT_REGISTERED, 99_000, Some("c")),
        event(event_type::TOKEN_ISSUED, 99_000, None),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.client_last_used().await.unwrap(),
        vec![("a".to_owned(), 9_000), ("b".to_owned(), 5_000)]
    );
}

/// Several writers at once (as several replicas' batch writers would be)
/// must all succeed; on SQLite this exercises busy_timeout/BEGIN IMMEDIATE.
async fn concurrent_writers(db: TestDb) {
    let s = db.store;
    let tasks: Vec<_> = (0..6)
        .map(|w| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                for batch in 0..15 {
                    let events: Vec<_> = (0..40)
                        .map(|i| {
                            event(
                                event_type::TOKEN_ISSUED,
                                batch * 100 + i,
                                Some(&format!("w{w}")),
                            )
                        })
                        .collect();
                    s.append_events(&events).await?;
                    s.record_jti_once("ns", &format!("{w}-{batch}"), 10, 0)
                        .await?;
                    s.prune_expired(0).await?;
                }
                Ok::<_, custos_store::StoreError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("no writer fails under contention");
    }
    let all = s
        .query_events(&filter(None, None, None, 10_000))
        .await
        .unwrap();
    assert_eq!(all.len(), 6 * 15 * 40);
    assert_eq!(s.client_last_used().await.unwrap().len(), 6);
}

/// Audit retention: the oldest events before the cutoff go first, at most
/// `max_rows` per call, across several internal batches.
async fn prune_audit_events(db: TestDb) {
    let s = db.store;
    let all = |s: Arc<dyn custos_store::Store>| async move {
        s.query_events(&filter(None, None, None, 10_000))
            .await
            .unwrap()
    };
    assert_eq!(s.prune_audit_events(i64::MAX, 100).await.unwrap(), 0);

    // 3000 events whose times (1000..4000) are a permutation of their
    // append order, so "oldest" cannot mean "lowest id".
    let events: Vec<AuditEvent> = (0..3000i64)
        .map(|i| event(event_type::TOKEN_ISSUED, 1_000 + i * 7919 % 3000, Some("c")))
        .collect();
    s.append_events(&events).await.unwrap();
    let times = |events: &[AuditEvent]| {
        let mut t: Vec<i64> = events.iter().map(|e| e.time_ms).collect();
        t.sort_unstable();
        t
    };

    // Nothing is older than 1000; the cutoff is exclusive.
    assert_eq!(s.prune_audit_events(1_000, 5_000).await.unwrap(), 0);
    assert_eq!(s.prune_audit_events(1_001, 0).await.unwrap(), 0);
    assert_eq!(s.prune_audit_events(1_001, 5_000).await.unwrap(), 1);

    // At most max_rows, the oldest ones.
    assert_eq!(s.prune_audit_events(2_500, 10).await.unwrap(), 10);
    assert_eq!(
        times(&all(Arc::clone(&s)).await),
        (1_011..4_000).collect::<Vec<_>>()
    );
    // More than one batch (1000), stopping when nothing before the cutoff
    // is left.
    assert_eq!(s.prune_audit_events(2_500, 2_300).await.unwrap(), 1_489);
    assert_eq!(s.prune_audit_events(2_500, 2_300).await.unwrap(), 0);
    let left = all(Arc::clone(&s)).await;
    assert_eq!(times(&left), (2_500..4_000).collect::<Vec<_>>());
    // The survivors are untouched, ids included.
    assert!(left.windows(2).all(|w| w[0].id < w[1].id));

    // Exactly at a batch boundary plus a remainder: 1200 of 1500.
    assert_eq!(s.prune_audit_events(i64::MAX, 1_200).await.unwrap(), 1_200);
    let left = all(Arc::clone(&s)).await;
    assert_eq!(times(&left), (3_700..4_000).collect::<Vec<_>>());

    // Two replicas pruning at once share the backlog without failing.
    let more: Vec<AuditEvent> = (0..2_500i64)
        .map(|i| event(event_type::TOKEN_REFUSED, 500 + i, None))
        .collect();
    s.append_events(&more).await.unwrap();
    let (a, b) = tokio::join!(
        s.prune_audit_events(3_000, 10_000),
        s.prune_audit_events(3_000, 10_000)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2_500);
    let left = all(Arc::clone(&s)).await;
    assert_eq!(times(&left), (3_700..4_000).collect::<Vec<_>>());
    assert_eq!(
        s.client_last_used().await.unwrap(),
        vec![("c".into(), 3_999)]
    );
}

/// Batches of every size up to one statement's worth (SQLite writes those
/// as one padded `INSERT`): each keeps its events, in order, and nothing
/// else is written.
async fn small_batches_keep_their_events_in_order(db: TestDb) {
    let s = db.store;
    let mut expected = Vec::new();
    let mut time_ms = 0;
    for size in [1usize, 2, 3, 5, 64, 127, 300, 500] {
        let batch: Vec<AuditEvent> = (0..size)
            .map(|k| {
                time_ms += 1;
                AuditEvent {
                    reason: (k % 2 == 0).then(|| format!("batch of {size}, event {k}")),
                    ..event(event_type::TOKEN_ISSUED, time_ms, Some("small"))
                }
            })
            .collect();
        s.append_events(&batch).await.unwrap();
        expected.extend(batch);
    }
    let all = s
        .query_events(&filter(None, None, None, 5000))
        .await
        .unwrap();
    assert_eq!(without_ids(&all), without_ids(&expected));
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
}

conformance!(
    append_and_query,
    small_batches_keep_their_events_in_order,
    last_used,
    concurrent_writers,
    prune_audit_events
);
