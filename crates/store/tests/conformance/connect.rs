//! `connect`: engines, migrations, and errors.

use custos_store::{connect, ConnectOptions, Engine, StoreError};

use crate::clients::client;
use crate::harness::{options, EmptyDb, TestDb};

/// Connecting again (also twice at once) to a migrated database works and
/// sees the same data.
async fn migrations_idempotent(db: TestDb) {
    let expected = if db.url.starts_with("sqlite") {
        Engine::Sqlite
    } else {
        Engine::Postgres
    };
    assert_eq!(db.store.engine(), expected);
    db.store.insert_client(&client("kept", 1)).await.unwrap();

    let (a, b) = tokio::join!(db.reopen(), db.reopen());
    assert_eq!(a.engine(), expected);
    assert_eq!(a.get_client("kept").await.unwrap(), Some(client("kept", 1)));
    assert_eq!(b.list_clients().await.unwrap(), vec![client("kept", 1)]);
    a.close().await;
    b.close().await;
    let c = db.reopen().await;
    assert_eq!(c.list_clients().await.unwrap().len(), 1);
    c.close().await;
}

conformance!(migrations_idempotent);

/// Several replicas starting at the same moment on an empty database: all
/// start, and the schema is applied once.
async fn concurrent_first_start(db: EmptyDb) {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { connect(&options(&url)).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        // Each replica must start and find a usable schema.
        let result = match task.await.unwrap() {
            Ok(store) => {
                let listed = store.list_clients().await.map(|clients| clients.len());
                store.close().await;
                listed
            }
            Err(e) => Err(e),
        };
        results.push(result);
    }
    db.remove().await;
    for result in results {
        assert_eq!(result.expect("every replica starts"), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_start_sqlite() {
    concurrent_first_start(EmptyDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_start_postgres() {
    if let Some(db) = EmptyDb::postgres(module_path!()).await {
        concurrent_first_start(db).await;
    }
}

/// The schema files of each version, in order, per engine.
const SQLITE_VERSIONS: [&str; 7] = [
    include_str!("../../migrations/sqlite/0001_initial.sql"),
    include_str!("../../migrations/sqlite/0002_client_version.sql"),
    include_str!("../../migrations/sqlite/0003_grants.sql"),
    include_str!("../../migrations/sqlite/0004_refresh_grace_once.sql"),
    include_str!("../../migrations/sqlite/0005_trusted_issuers.sql"),
    include_str!("../../migrations/sqlite/0006_policies.sql"),
    include_str!("../../migrations/sqlite/0007_authorization_details.sql"),
];
const POSTGRES_VERSIONS: [&str; 7] = [
    include_str!("../../migrations/postgres/0001_initial.sql"),
    include_str!("../../migrations/postgres/0002_client_version.sql"),
    include_str!("../../migrations/postgres/0003_grants.sql"),
    include_str!("../../migrations/postgres/0004_refresh_grace_once.sql"),
    include_str!("../../migrations/postgres/0005_trusted_issuers.sql"),
    include_str!("../../migrations/postgres/0006_policies.sql"),
    include_str!("../../migrations/postgres/0007_authorization_details.sql"),
];

/// `db` as an earlier build at schema `version` left it (each version's
/// file applied and recorded in `custos_schema_migrations`, as migrate.rs
/// does), and a raw connection to it with its URL.
async fn at_version(db: &EmptyDb, version: usize) -> (sqlx::AnyConnection, String) {
    use sqlx::{Connection, Executor};
    let sqlite = db.url.starts_with("sqlite");
    let files = if sqlite {
        &SQLITE_VERSIONS[..version]
    } else {
        &POSTGRES_VERSIONS[..version]
    };
    sqlx::any::install_default_drivers();
    let raw_url = if sqlite {
        format!("{}?mode=rwc", db.url)
    } else {
        db.url.clone()
    };
    let mut raw = sqlx::AnyConnection::connect(&raw_url).await.unwrap();
    raw.execute(
        "CREATE TABLE custos_schema_migrations (\
         version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .unwrap();
    for (version, sql) in (1..).zip(files) {
        raw.execute(*sql).await.unwrap();
        raw.execute(
            format!(
                "INSERT INTO custos_schema_migrations (version, applied_at) \
                 VALUES ({version}, 1700000000)"
            )
            .as_str(),
        )
        .await
        .unwrap();
    }
    (raw, raw_url)
}

/// A database created by an earlier build (schema version 1 recorded in
/// `custos_schema_migrations`, clients without a version) is upgraded in
/// place: its clients get version 1 and take conditional updates, and the
/// tables of later versions (grants, version 3) are there.
async fn upgrade_from_version_1(db: EmptyDb) {
    use sqlx::{Connection, Executor, Row};
    let (mut raw, raw_url) = at_version(&db, 1).await;
    raw.execute(
        "INSERT INTO custos_clients (client_id, metadata_json, created_at, updated_at) \
         VALUES ('old', '{}', 10, 10)",
    )
    .await
    .unwrap();
    raw.close().await.unwrap();

    let store = connect(&options(&db.url)).await.expect("upgrade");
    let old = store.get_client("old").await.unwrap().expect("kept");
    assert_eq!((old.version, old.created_at), (1, 10));
    let disabled = custos_store::ClientRecord {
        disabled_at: Some(20),
        ..old.clone()
    };
    assert!(store.update_client(&disabled).await.unwrap());
    assert!(!store.update_client(&old).await.unwrap());
    assert_eq!(store.get_client("old").await.unwrap().unwrap().version, 2);
    store.insert_client(&client("new", 30)).await.unwrap();
    let grant = custos_store::GrantRecord {
        grant_id: "g".into(),
        client_id: "new".into(),
        subject: "alice".into(),
        scope: "openid".into(),
        resources: vec![],
        dpop_jkt: None,
        created_at: 30,
        expires_at: 90,
        revoked_at: None,
        revoked_reason: None,
        authorization_details: None,
    };
    store.insert_grant(&grant).await.unwrap();
    assert_eq!(store.get_grant("g").await.unwrap(), Some(grant));
    store.close().await;

    // Every version is recorded once; connecting again changes nothing.
    let again = connect(&options(&db.url)).await.expect("reopen");
    assert_eq!(again.list_clients().await.unwrap().len(), 2);
    again.close().await;
    let mut raw = sqlx::AnyConnection::connect(&raw_url).await.unwrap();
    let versions: Vec<i64> =
        sqlx::query("SELECT version FROM custos_schema_migrations ORDER BY version")
            .fetch_all(&mut raw)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
    raw.close().await.unwrap();
    db.remove().await;
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_from_version_1_sqlite() {
    upgrade_from_version_1(EmptyDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_from_version_1_postgres() {
    if let Some(db) = EmptyDb::postgres(module_path!()).await {
        upgrade_from_version_1(db).await;
    }
}

/// Migration 8 on a database with refresh tokens: their index by grant
/// and foreign key go, every token is kept, and one that outlived its
/// grant now expires with it, so that pruning by expiry takes it.
async fn upgrade_from_version_7_keeps_refresh_tokens(db: EmptyDb) {
    use sqlx::{Connection, Executor};
    let sqlite = db.url.starts_with("sqlite");
    let (mut raw, raw_url) = at_version(&db, 7).await;
    // A grant ending at 90; one token within it, one outliving it (as a
    // client's idle lifetime longer than its absolute one made them).
    raw.execute(
        "INSERT INTO custos_grants (grant_id, client_id, subject, scope, resources_json, \
         created_at, expires_at) VALUES ('g', 'c1', 'alice', 'read', '[]', 10, 90)",
    )
    .await
    .unwrap();
    for (hash, expires_at, used_at) in [(1u8, 50i64, None), (2, 500, Some(20i64))] {
        sqlx::query(
            "INSERT INTO custos_refresh_tokens (token_hash, grant_id, client_id, scope, \
             created_at, expires_at, used_at) VALUES ($1, 'g', 'c1', 'read', 10, $2, $3)",
        )
        .bind(vec![hash])
        .bind(expires_at)
        .bind(used_at)
        .execute(&mut raw)
        .await
        .unwrap();
    }
    raw.close().await.unwrap();

    let store = connect(&options(&db.url)).await.expect("upgrade");
    let within = store.get_refresh_token(&[1]).await.unwrap().expect("kept");
    assert_eq!((within.expires_at, within.used_at), (50, None));
    let outliving = store.get_refresh_token(&[2]).await.unwrap().expect("kept");
    assert_eq!((outliving.expires_at, outliving.used_at), (90, Some(20)));
    // New tokens: still only of an existing grant, and capped the same way.
    let mut new = outliving.clone();
    new.token_hash = vec![3];
    new.used_at = None;
    new.expires_at = 1_000;
    store.insert_refresh_token(&new).await.unwrap();
    assert_eq!(
        store
            .get_refresh_token(&[3])
            .await
            .unwrap()
            .unwrap()
            .expires_at,
        90
    );
    let orphan = custos_store::RefreshTokenRecord {
        token_hash: vec![4],
        grant_id: "no-such-grant".into(),
        ..new.clone()
    };
    assert!(matches!(
        store.insert_refresh_token(&orphan).await,
        Err(StoreError::Database(_))
    ));
    // The grant's end takes every token of it.
    assert_eq!(store.prune_expired(90).await.unwrap(), 4);
    // And it is pruning by expiry that did: no foreign key, no index by
    // grant is left.
    let mut raw = sqlx::AnyConnection::connect(&raw_url).await.unwrap();
    let (foreign_keys, by_grant) = if sqlite {
        (
            "SELECT COUNT(*) FROM pragma_foreign_key_list('custos_refresh_tokens')",
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'custos_refresh_tokens_by_grant'",
        )
    } else {
        (
            "SELECT COUNT(*) FROM pg_constraint \
             WHERE conrelid = 'custos_refresh_tokens'::regclass AND contype = 'f'",
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = 'custos_refresh_tokens_by_grant'",
        )
    };
    for sql in [foreign_keys, by_grant] {
        let count: i64 = sqlx::query_scalar(sql).fetch_one(&mut raw).await.unwrap();
        assert_eq!(count, 0, "{sql}");
    }
    raw.close().await.unwrap();
    for hash in [1u8, 2, 3] {
        assert_eq!(store.get_refresh_token(&[hash]).await.unwrap(), None);
    }
    store.close().await;
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_from_version_7_keeps_refresh_tokens_sqlite() {
    upgrade_from_version_7_keeps_refresh_tokens(EmptyDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upgrade_from_version_7_keeps_refresh_tokens_postgres() {
    if let Some(db) = EmptyDb::postgres(module_path!()).await {
        upgrade_from_version_7_keeps_refresh_tokens(db).await;
    }
}

fn config_error(result: Result<impl Sized, StoreError>) -> String {
    match result {
        Err(StoreError::Config(message)) => message,
        Err(other) => panic!("expected a Config error, got {other:?}"),
        Ok(_) => panic!("expected a Config error, got a store"),
    }
}

#[tokio::test]
async fn bad_urls_are_config_errors() {
    let message = config_error(connect(&options("mysql://root:hunter2@localhost/custos")).await);
    assert!(message.contains("CUSTOS_DATABASE_URL"), "{message}");
    assert!(message.contains("mysql"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(!message.contains('\n'), "one line: {message}");

    let message = config_error(connect(&options("custos.db")).await);
    assert!(message.contains("CUSTOS_DATABASE_URL"), "{message}");

    let missing_dir = std::env::temp_dir()
        .join("custos-no-such-dir-4711")
        .join("custos.db");
    let message =
        config_error(connect(&options(&format!("sqlite://{}", missing_dir.display()))).await);
    assert!(message.contains("custos-no-such-dir-4711"), "{message}");

    config_error(connect(&options("sqlite::memory:")).await);
}

#[tokio::test]
async fn unreachable_postgres_is_a_database_error_without_password() {
    // Port 1 on loopback: nothing listens there, the connection is refused.
    let url = "postgres://custos:pa55-w0rd@127.0.0.1:1/custos";
    match connect(&options(url)).await {
        Err(StoreError::Database(message)) => {
            assert!(!message.contains("pa55-w0rd"), "{message}");
            assert!(message.contains("127.0.0.1:1/custos"), "{message}");
            assert!(message.contains("CUSTOS_DATABASE_URL"), "{message}");
        }
        Err(other) => panic!("expected a Database error, got {other:?}"),
        Ok(_) => panic!("connected to port 1?"),
    }
}

#[test]
fn connect_options_debug_hides_the_password() {
    let options = ConnectOptions {
        url: "postgres://custos:pa55-w0rd@db/custos".into(),
        max_connections: 4,
    };
    let shown = format!("{options:?}");
    assert!(!shown.contains("pa55-w0rd"), "{shown}");
    assert!(shown.contains("postgres://custos:***@db/custos"), "{shown}");
}

/// The SQLite file is left in WAL mode (a persistent, per-file setting).
#[tokio::test]
async fn sqlite_uses_wal() {
    use sqlx::{Connection, Row};
    let db = EmptyDb::sqlite();
    let store = connect(&options(&db.url)).await.expect("open");
    assert_eq!(store.engine(), Engine::Sqlite);
    store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let mode: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    conn.close().await.unwrap();
    db.remove().await;
}
