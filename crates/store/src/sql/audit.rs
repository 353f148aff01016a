//! `AuditRepo`: the append-only event log in `custos_audit_events`.

use std::fmt::Write as _;
use std::sync::OnceLock;

use async_trait::async_trait;
use custos_governance::{event_type, AuditEvent, EventFilter, Outcome};
use sqlx::any::AnyRow;

use super::{col, db_err, detached, SqlStore};
use crate::{AuditRepo, Engine, StoreError, StoreResult};

/// Columns bound per event by `append_events`.
const INSERT_COLUMNS: usize = 13;
/// Events per multi-row `INSERT`, by engine. SQLite binds anonymous `?`
/// placeholders here (see [`insert_sql`]); 500 rows (padded to 512) is
/// 6656 parameters, under its 32766 limit. PostgreSQL prefers fewer round
/// trips: 1000 rows is 13000 parameters, under its 65535 limit.
fn rows_per_insert(engine: Engine) -> usize {
    match engine {
        Engine::Sqlite => 500,
        Engine::Postgres => 1000,
    }
}
/// Most events deleted by one statement of [`prune_events`].
const PRUNE_BATCH: u64 = 1000;

/// What `EventFilter::limit == 0` means.
const DEFAULT_LIMIT: u32 = 1000;

const SELECT: &str = "SELECT id, time_ms, event_type, client_id, grant_type, scope, resource, \
     outcome, reason, source_addr, auth_method, attested_id, policy, task_id \
     FROM custos_audit_events";

/// `INSERT … VALUES ($1, …, $9), ($10, …), …` for `rows` events.
///
/// On SQLite the placeholders are anonymous `?`: SQLite resolves each named
/// `$n` by a linear scan of the statement's parameter names, which made a
/// 450-parameter insert spend more time binding than inserting.
fn insert_sql(rows: usize, engine: Engine) -> String {
    let mut sql = String::with_capacity(140 + rows * 60);
    sql.push_str(
        "INSERT INTO custos_audit_events (time_ms, event_type, client_id, grant_type, scope, \
         resource, outcome, reason, source_addr, auth_method, attested_id, policy, task_id) \
         VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..INSERT_COLUMNS {
            if c > 0 {
                sql.push_str(", ");
            }
            match engine {
                Engine::Sqlite => sql.push('?'),
                // Writing to a String cannot fail.
                Engine::Postgres => {
                    let _ = write!(sql, "${}", row * INSERT_COLUMNS + c + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

fn from_row(row: &AnyRow) -> StoreResult<AuditEvent> {
    let outcome: String = col(row, "outcome")?;
    Ok(AuditEvent {
        id: col(row, "id")?,
        time_ms: col(row, "time_ms")?,
        event_type: col(row, "event_type")?,
        client_id: col(row, "client_id")?,
        grant_type: col(row, "grant_type")?,
        scope: col(row, "scope")?,
        resource: col(row, "resource")?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown audit outcome {outcome:?}")))?,
        reason: col(row, "reason")?,
        source_addr: col(row, "source_addr")?,
        auth_method: col(row, "auth_method")?,
        attested_id: col(row, "attested_id")?,
        policy: col(row, "policy")?,
        task_id: col(row, "task_id")?,
    })
}

#[async_trait]
impl AuditRepo for SqlStore {
    /// Inserts all `events` (their `id` is ignored) in one transaction, in
    /// slice order, so ids increase along the slice. Uses multi-row
    /// `INSERT`s (50 events each on SQLite, 1000 on PostgreSQL). Nothing is
    /// written if any fails.
    async fn append_events(&self, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        let events = events.to_vec();
        detached(async move { store.append_events_now(&events).await }).await
    }

    /// Newest `limit` events matching every given filter (0 → 1000),
    /// returned in id order (oldest first).
    async fn query_events(&self, filter: &EventFilter) -> StoreResult<Vec<AuditEvent>> {
        let mut sql = String::from(SELECT);
        let mut n = 0;
        let mut next = |column: &str, op: &str| {
            n += 1;
            format!(
                " {} {column} {op} ${n}",
                if n == 1 { "WHERE" } else { "AND" }
            )
        };
        if filter.client_id.is_some() {
            sql.push_str(&next("client_id", "="));
        }
        if filter.event_type.is_some() {
            sql.push_str(&next("event_type", "="));
        }
        if filter.since_ms.is_some() {
            sql.push_str(&next("time_ms", ">="));
        }
        let limit_param = n + 1;
        let _ = write!(sql, " ORDER BY id DESC LIMIT ${limit_param}");

        let mut query = sqlx::query(&sql);
        if let Some(client_id) = &filter.client_id {
            query = query.bind(client_id.as_str());
        }
        if let Some(event_type) = &filter.event_type {
            query = query.bind(event_type.as_str());
        }
        if let Some(since_ms) = filter.since_ms {
            query = query.bind(since_ms);
        }
        let limit = if filter.limit == 0 {
            DEFAULT_LIMIT
        } else {
            filter.limit
        };
        query = query.bind(i64::from(limit));

        let mut events = query
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    /// `(client_id, time_ms)` of each client's latest `token.issued` event,
    /// ordered by client_id. Served by a partial index on
    /// `(client_id, time_ms) WHERE event_type = 'token.issued'`.
    async fn client_last_used(&self) -> StoreResult<Vec<(String, i64)>> {
        // The literal must match the partial index's predicate.
        debug_assert_eq!(event_type::TOKEN_ISSUED, "token.issued");
        let rows = sqlx::query(
            "SELECT client_id, MAX(time_ms) AS last_ms FROM custos_audit_events \
             WHERE event_type = 'token.issued' AND client_id IS NOT NULL \
             GROUP BY client_id ORDER BY client_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| Ok((col(row, "client_id")?, col(row, "last_ms")?)))
            .collect()
    }
}

/// `Maintenance::prune_audit_events`: deletes up to `max_rows` events with
/// `time_ms < recorded_before_ms`, oldest first, [`PRUNE_BATCH`] rows per
/// statement. Each batch is one autocommit `DELETE`, so the write lock
/// (SQLite) or the row locks (PostgreSQL) are held for one batch only, and
/// other writers, such as the audit batch writer, get in between batches.
/// The batch's rows are picked through `custos_audit_events_by_time`.
///
/// On PostgreSQL the batch is picked `FOR UPDATE SKIP LOCKED`, so replicas
/// pruning at the same time take disjoint batches instead of waiting on (or
/// deadlocking over) each other's rows; SQLite runs one writer at a time,
/// and every `DELETE` sees the rows its predecessors left.
///
/// Stops at the first batch that deletes fewer rows than it asked for:
/// nothing eligible is left (apart from rows a concurrent pruner is
/// deleting).
pub(super) async fn prune_events(
    store: &SqlStore,
    recorded_before_ms: i64,
    max_rows: u64,
) -> StoreResult<u64> {
    let sql = match store.engine {
        Engine::Sqlite => {
            "DELETE FROM custos_audit_events WHERE id IN (\
             SELECT id FROM custos_audit_events WHERE time_ms < $1 \
             ORDER BY time_ms, id LIMIT $2)"
        }
        Engine::Postgres => {
            "DELETE FROM custos_audit_events WHERE id IN (\
             SELECT id FROM custos_audit_events WHERE time_ms < $1 \
             ORDER BY time_ms, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
        }
    };
    let mut deleted = 0u64;
    while deleted < max_rows {
        let batch = (max_rows - deleted).min(PRUNE_BATCH);
        let done = sqlx::query(sql)
            .bind(recorded_before_ms)
            // At most PRUNE_BATCH: the conversion cannot fail.
            .bind(i64::try_from(batch).unwrap_or(i64::MAX))
            .execute(&store.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        deleted += done;
        if done < batch {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(deleted)
}

impl SqlStore {
    /// `append_events`' transaction, run [`detached`].
    async fn append_events_now(&self, events: &[AuditEvent]) -> StoreResult<()> {
        static SQLITE_FULL_CHUNK: OnceLock<String> = OnceLock::new();
        static POSTGRES_FULL_CHUNK: OnceLock<String> = OnceLock::new();
        let rows = rows_per_insert(self.engine);
        let full_chunk_sql = match self.engine {
            Engine::Sqlite => &SQLITE_FULL_CHUNK,
            Engine::Postgres => &POSTGRES_FULL_CHUNK,
        };
        if self.engine == Engine::Sqlite && events.len() <= rows {
            return self.append_events_in_one_statement(events).await;
        }
        let (mut tx, _write) = self.begin_write().await?;
        for chunk in events.chunks(rows) {
            let partial_sql;
            let (sql, persistent) = if chunk.len() == rows {
                (
                    full_chunk_sql
                        .get_or_init(|| insert_sql(rows, self.engine))
                        .as_str(),
                    true,
                )
            } else {
                // Odd-sized tails are not worth a slot in the statement cache.
                partial_sql = insert_sql(chunk.len(), self.engine);
                (partial_sql.as_str(), false)
            };
            let mut query = sqlx::query(sql).persistent(persistent);
            for event in chunk {
                query = bind_event(query, event);
            }
            query.execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// SQLite, up to one `INSERT`'s worth of events: the statement is a
    /// transaction of its own, so the write lock is held for one round trip
    /// to SQLite's worker thread instead of three (the refresh-token
    /// writer waits behind it). The rows are padded with NULLs to a power
    /// of two, which the `WHERE` drops, so the statement stays prepared.
    async fn append_events_in_one_statement(&self, events: &[AuditEvent]) -> StoreResult<()> {
        static PADDED: OnceLock<Vec<String>> = OnceLock::new();
        let rows = events.len().next_power_of_two();
        let statements = PADDED.get_or_init(|| {
            (0..=rows_per_insert(Engine::Sqlite)
                .next_power_of_two()
                .trailing_zeros())
                .map(|power| padded_insert_sql(1 << power))
                .collect()
        });
        let sql = statements
            .get(rows.trailing_zeros() as usize)
            .ok_or_else(|| StoreError::Database(format!("{} events in one statement", rows)))?;
        let mut query = sqlx::query(sql);
        for event in events {
            query = bind_event(query, event);
        }
        for _ in events.len()..rows {
            for _ in 0..INSERT_COLUMNS {
                query = query.bind(None::<String>);
            }
        }
        let Some(mut writer) = self.write_turn().await else {
            query.execute(&self.pool).await.map_err(db_err)?;
            return Ok(());
        };
        let written = query.execute(writer.get().await?).await;
        match written {
            Ok(_) => writer.finished(),
            Err(_) => writer.abandon().await,
        }
        written.map_err(db_err)?;
        Ok(())
    }
}

fn bind_event<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    event: &'q AuditEvent,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(event.time_ms)
        .bind(event.event_type.as_str())
        .bind(event.client_id.as_deref())
        .bind(event.grant_type.as_deref())
        .bind(event.scope.as_deref())
        .bind(event.resource.as_deref())
        .bind(event.outcome.as_str())
        .bind(event.reason.as_deref())
        .bind(event.source_addr.as_deref())
        .bind(event.auth_method.as_deref())
        .bind(event.attested_id.as_deref())
        .bind(event.policy.as_deref())
        .bind(event.task_id.as_deref())
}

/// SQLite: [`insert_sql`] for `rows` rows of which the NULL ones (no
/// `event_type`) are dropped.
fn padded_insert_sql(rows: usize) -> String {
    let values = insert_sql(rows, Engine::Sqlite);
    let (columns, values) = values
        .split_once(" VALUES ")
        .unwrap_or((values.as_str(), ""));
    format!("{columns} SELECT * FROM (VALUES {values}) WHERE column2 IS NOT NULL")
}
