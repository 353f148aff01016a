//! Runs one test body against a fresh database of each engine.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use custos_store::{connect, ConnectOptions, Store};
use sqlx::{Connection, Executor, PgConnection};

/// What a test body gets: the URL of its private database and a store
/// already connected to it.
pub struct TestDb {
    pub url: String,
    pub store: Arc<dyn Store>,
}

impl TestDb {
    /// Opens another store on the same database.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        connect(&options(&self.url))
            .await
            .expect("reopen the store")
    }
}

pub fn options(url: &str) -> ConnectOptions {
    ConnectOptions {
        url: url.to_owned(),
        max_connections: 8,
    }
}

/// A name no other test (in this or a concurrent run) uses.
fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `body` in its own task; a panic in it is re-raised after `cleanup`.
async fn run<F, Fut>(db: TestDb, body: F) -> Result<(), Box<dyn std::any::Any + Send>>
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let store = db.store.clone();
    let result = tokio::spawn(body(db)).await;
    store.close().await;
    result.map_err(|e| match e.try_into_panic() {
        Ok(panic) => panic,
        Err(e) => Box::new(e.to_string()),
    })
}

/// An empty database of one engine, not yet migrated, removed by [`Self::remove`].
pub struct EmptyDb {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    File(PathBuf),
    Schema { admin: PgConnection, schema: String },
}

impl EmptyDb {
    /// A new SQLite file path in the temporary directory.
    pub fn sqlite() -> EmptyDb {
        let path = std::env::temp_dir().join(format!("{}.db", unique("custos_store_test")));
        EmptyDb {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::File(path),
        }
    }

    /// A new schema in the database of `CUSTOS_TEST_POSTGRES_URL`, with the
    /// URL setting `search_path` to it; `None` (after saying so) to skip.
    pub async fn postgres(name: &str) -> Option<EmptyDb> {
        let base = postgres_url(name)?;
        let schema = unique("custos_t");
        let mut admin = PgConnection::connect(&base)
            .await
            .expect("connect to CUSTOS_TEST_POSTGRES_URL");
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .expect("create the test schema");
        Some(EmptyDb {
            url: with_search_path(&base, &schema),
            cleanup: Cleanup::Schema { admin, schema },
        })
    }

    /// Deletes the file (and its WAL files) or drops the schema.
    pub async fn remove(self) {
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            Cleanup::Schema { mut admin, schema } => {
                let _ = admin
                    .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                    .await;
                let _ = admin.close().await;
            }
        }
    }

    /// Connects a store (migrating the database), runs `body` with it, and
    /// removes the database, re-raising a panic of `body` afterwards.
    async fn run_body<F, Fut>(self, body: F)
    where
        F: FnOnce(TestDb) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let store = connect(&options(&self.url))
            .await
            .expect("open a store on a fresh database");
        let result = run(
            TestDb {
                url: self.url.clone(),
                store,
            },
            body,
        )
        .await;
        self.remove().await;
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }
}

pub async fn on_sqlite<F, Fut>(_name: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    EmptyDb::sqlite().run_body(body).await;
}

pub async fn on_postgres<F, Fut>(name: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Some(db) = EmptyDb::postgres(name).await {
        db.run_body(body).await;
    }
}

/// The PostgreSQL URL under test, or `None` (after saying so) to skip.
pub fn postgres_url(name: &str) -> Option<String> {
    match std::env::var("CUSTOS_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ => {
            assert!(
                std::env::var("CUSTOS_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CUSTOS_REQUIRE_POSTGRES=1 but CUSTOS_TEST_POSTGRES_URL is not set"
            );
            // Written straight to stderr so that the test harness's output
            // capture does not swallow it.
            let _ = writeln!(
                std::io::stderr(),
                "{name}::postgres skipped: CUSTOS_TEST_POSTGRES_URL is not set"
            );
            None
        }
    }
}

/// `url` with `search_path` set to `schema` on every connection.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}
