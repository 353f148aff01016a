//! Schema migrations: a per-engine ordered list of DDL files, embedded in the
//! binary and applied at start by [`run`].
//!
//! Applied versions are kept in `custos_schema_migrations(version, applied_at)`.
//! Everything happens in one transaction, so a failed migration leaves the
//! schema as it was. On PostgreSQL the transaction first takes an advisory
//! lock, so replicas starting at the same time apply each migration once; on
//! SQLite the transaction is `BEGIN IMMEDIATE`, which serialises writers.
//!
//! Rules for adding a migration: append a file to BOTH engines' lists with
//! the next version number; never edit a released file.
//!
//! Why not sqlx's `Migrator` (checked with sqlx 0.8.6 over `Any`): on SQLite its lock is a
//! no-op and it reads the applied versions outside its deferred transaction, so 4 processes
//! starting on a new file fail 2–3 of 4 ("table custos_clients already exists"). And it keeps
//! its own `_sqlx_migrations` table, so on a database made here (`custos_schema_migrations`,
//! 0001 applied) it re-runs 0001 and fails on both engines. Only PostgreSQL would be served.

use sqlx::AnyConnection;
use sqlx::{Connection, Executor, Row};

use crate::sql::{begin_statement, db_err, unix_now};
use crate::{Engine, StoreResult};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "client_version",
        sql: include_str!("../migrations/sqlite/0002_client_version.sql"),
    },
    Migration {
        version: 3,
        name: "grants",
        sql: include_str!("../migrations/sqlite/0003_grants.sql"),
    },
    Migration {
        version: 4,
        name: "refresh_grace_once",
        sql: include_str!("../migrations/sqlite/0004_refresh_grace_once.sql"),
    },
    Migration {
        version: 5,
        name: "trusted_issuers",
        sql: include_str!("../migrations/sqlite/0005_trusted_issuers.sql"),
    },
    Migration {
        version: 6,
        name: "policies",
        sql: include_str!("../migrations/sqlite/0006_policies.sql"),
    },
    Migration {
        version: 7,
        name: "authorization_details",
        sql: include_str!("../migrations/sqlite/0007_authorization_details.sql"),
    },
    Migration {
        version: 8,
        name: "refresh_tokens_by_time",
        sql: include_str!("../migrations/sqlite/0008_refresh_tokens_by_time.sql"),
    },
];

const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "client_version",
        sql: include_str!("../migrations/postgres/0002_client_version.sql"),
    },
    Migration {
        version: 3,
        name: "grants",
        sql: include_str!("../migrations/postgres/0003_grants.sql"),
    },
    Migration {
        version: 4,
        name: "refresh_grace_once",
        sql: include_str!("../migrations/postgres/0004_refresh_grace_once.sql"),
    },
    Migration {
        version: 5,
        name: "trusted_issuers",
        sql: include_str!("../migrations/postgres/0005_trusted_issuers.sql"),
    },
    Migration {
        version: 6,
        name: "policies",
        sql: include_str!("../migrations/postgres/0006_policies.sql"),
    },
    Migration {
        version: 7,
        name: "authorization_details",
        sql: include_str!("../migrations/postgres/0007_authorization_details.sql"),
    },
    Migration {
        version: 8,
        name: "refresh_tokens_by_time",
        sql: include_str!("../migrations/postgres/0008_refresh_tokens_by_time.sql"),
    },
];

/// Key of the PostgreSQL advisory lock held while migrating
/// (ASCII "custmigr").
const PG_LOCK_KEY: i64 = 0x6375_7374_6d69_6772;

fn migrations(engine: Engine) -> &'static [Migration] {
    match engine {
        Engine::Sqlite => SQLITE,
        Engine::Postgres => POSTGRES,
    }
}

/// Applies every migration of `engine` not yet recorded, in version order,
/// in one transaction. Idempotent; safe to run concurrently from several
/// processes.
pub(crate) async fn run(conn: &mut AnyConnection, engine: Engine) -> StoreResult<()> {
    let mut tx = conn
        .begin_with(begin_statement(engine))
        .await
        .map_err(db_err)?;
    if engine == Engine::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PG_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        // Keeps "relation … already exists, skipping" notices out of the log.
        tx.execute("SET LOCAL client_min_messages = warning")
            .await
            .map_err(db_err)?;
    }
    tx.execute(
        "CREATE TABLE IF NOT EXISTS custos_schema_migrations (\
         version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(db_err)?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM custos_schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()
        .map_err(db_err)?;

    let known = migrations(engine);
    for migration in known {
        if applied.contains(&migration.version) {
            continue;
        }
        tracing::debug!(
            version = migration.version,
            name = migration.name,
            "applying store migration"
        );
        tx.execute(migration.sql).await.map_err(|e| {
            crate::StoreError::Database(format!(
                "migration {} ({}) failed: {e}",
                migration.version, migration.name
            ))
        })?;
        sqlx::query("INSERT INTO custos_schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(unix_now())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    let latest = known.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newer) = applied.iter().copied().filter(|v| *v > latest).max() {
        tracing::warn!(
            database_version = newer,
            known_version = latest,
            "the database schema is newer than this build of custos"
        );
    }
    tx.commit().await.map_err(db_err)
}
