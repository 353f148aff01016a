//! Short-lived token facts: initial access tokens, single-use `jti`s
//! (replay protection) and revoked access tokens.

use async_trait::async_trait;

use super::write_queue::{Batch, KeptConnection};
use super::{col, db_err, SqlStore};
use crate::{
    InitialAccessTokenRecord, InitialAccessTokenRepo, ReplayRepo, RevocationRepo, RevokedToken,
    StoreError, StoreResult,
};

#[async_trait]
impl InitialAccessTokenRepo for SqlStore {
    /// `Conflict` if a token with the same hash exists.
    async fn insert_initial_access_token(
        &self,
        token: &InitialAccessTokenRecord,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custos_initial_access_tokens \
             (token_hash, created_at, expires_at, description) VALUES ($1, $2, $3, $4)",
        )
        .bind(token.token_hash.clone())
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.description.as_deref())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// The token with this hash, expired or not (the caller checks
    /// `expires_at`; expired rows disappear at the next `prune_expired`).
    async fn get_initial_access_token(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<InitialAccessTokenRecord>> {
        let row = sqlx::query(
            "SELECT token_hash, created_at, expires_at, description \
             FROM custos_initial_access_tokens WHERE token_hash = $1",
        )
        .bind(token_hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|row| {
            Ok(InitialAccessTokenRecord {
                token_hash: col(&row, "token_hash")?,
                created_at: col(&row, "created_at")?,
                expires_at: col(&row, "expires_at")?,
                description: col(&row, "description")?,
            })
        })
        .transpose()
    }
}

#[async_trait]
impl ReplayRepo for SqlStore {
    /// One atomic upsert: inserts the key, or takes over an existing row only
    /// if that row has expired (`expires_at <= now`). Exactly one of any set
    /// of concurrent callers sees a row change, on both engines (SQLite
    /// serialises writers; PostgreSQL locks the conflicting row and
    /// re-evaluates the `WHERE`).
    async fn record_jti_once(
        &self,
        namespace: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        if let Some(queues) = &self.queues {
            let job = JtiJob {
                namespace: namespace.to_owned(),
                jti: jti.to_owned(),
                expires_at,
                now,
            };
            return queues.jti.submit(job).await;
        }
        let done = sqlx::query(
            "INSERT INTO custos_replay (namespace, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (namespace, jti) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE custos_replay.expires_at <= $4",
        )
        .bind(namespace)
        .bind(jti)
        .bind(expires_at)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}

/// A single-use record waiting in SQLite's queue (see `write_queue`).
pub(crate) struct JtiJob {
    namespace: String,
    jti: String,
    expires_at: i64,
    now: i64,
}

/// SQLite's single-use records, a group per statement: the same upsert as
/// `record_jti_once`, with one row per distinct key (a key asked for twice
/// in one batch is a replay for every ask after the first). Each statement
/// is atomic on its own; the rows are independent.
pub(crate) struct JtiBatch;

#[async_trait]
impl Batch for JtiBatch {
    type Job = JtiJob;
    type Output = bool;
    const NAME: &'static str = "single-use jti";
    const WRITES: bool = true;
    /// 3 values each: well within SQLite's 32,766.
    const MAX: usize = 256;

    async fn commit(
        _store: &SqlStore,
        writer: &mut KeptConnection,
        jobs: &[JtiJob],
    ) -> StoreResult<Vec<StoreResult<bool>>> {
        let conn = writer.get().await?;
        let mut first = vec![false; jobs.len()];
        let mut seen = std::collections::HashSet::new();
        let mut firsts: Vec<usize> = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            if seen.insert((job.namespace.as_str(), job.jti.as_str())) {
                firsts.push(i);
            }
        }
        // One statement per distinct `now`; arrival order within each.
        firsts.sort_by_key(|&i| jobs[i].now);
        for group in firsts.chunk_by(|&a, &b| jobs[a].now == jobs[b].now) {
            // Anonymous `?` placeholders: SQLite looks each named `$n` up by
            // a linear scan.
            let mut sql =
                String::from("INSERT INTO custos_replay (namespace, jti, expires_at) VALUES ");
            for k in 0..group.len() {
                sql.push_str(if k == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
            }
            sql.push_str(
                " ON CONFLICT (namespace, jti) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE custos_replay.expires_at <= ? RETURNING namespace, jti",
            );
            let mut query = sqlx::query(&sql).persistent(false);
            for &i in group {
                query = query
                    .bind(jobs[i].namespace.as_str())
                    .bind(jobs[i].jti.as_str())
                    .bind(jobs[i].expires_at);
            }
            let query = query.bind(jobs[group[0]].now);
            let rows = query.fetch_all(&mut *conn).await.map_err(db_err)?;
            let job_of: std::collections::HashMap<(&str, &str), usize> = group
                .iter()
                .map(|&i| ((jobs[i].namespace.as_str(), jobs[i].jti.as_str()), i))
                .collect();
            for row in &rows {
                let namespace: String = col(row, "namespace")?;
                let jti: String = col(row, "jti")?;
                let i = job_of
                    .get(&(namespace.as_str(), jti.as_str()))
                    .copied()
                    .ok_or_else(|| StoreError::Corrupt("a jti record not asked for".into()))?;
                first[i] = true;
            }
        }
        Ok(first.into_iter().map(Ok).collect())
    }
}

#[async_trait]
impl RevocationRepo for SqlStore {
    /// Idempotent: revoking again keeps one row and extends `expires_at` if
    /// the new one is later.
    async fn revoke_token(&self, revoked: &RevokedToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custos_revoked_tokens (jti, client_id, revoked_at, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE custos_revoked_tokens.expires_at < excluded.expires_at",
        )
        .bind(revoked.jti.as_str())
        .bind(revoked.client_id.as_str())
        .bind(revoked.revoked_at)
        .bind(revoked.expires_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    /// Whether a revocation row exists for `jti`. Rows stay until
    /// `prune_expired` removes them after `expires_at`, by which time the
    /// token itself has expired.
    async fn is_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM custos_revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn is_lineage_revoked(
        &self,
        jtis: &[String],
        grant_id: Option<&str>,
        clients: &[String],
    ) -> StoreResult<bool> {
        if jtis.len() > crate::MAX_LINEAGE || clients.len() > crate::MAX_LINEAGE {
            return Err(StoreError::Database(format!(
                "a lineage of more than {} tokens or clients",
                crate::MAX_LINEAGE
            )));
        }
        if let Some(queues) = &self.queues {
            return queues
                .lineage
                .submit(super::lineage_batch::LineageJob {
                    jtis: jtis.to_vec(),
                    grant_id: grant_id.map(str::to_owned),
                    clients: clients.to_vec(),
                })
                .await;
        }
        let mut next = 0;
        let mut placeholders = |n: usize| {
            let list: Vec<String> = (next + 1..=next + n).map(|i| format!("${i}")).collect();
            next += n;
            list.join(", ")
        };
        let zero = "CAST(0 AS BIGINT)";
        let revoked = if jtis.is_empty() {
            zero.to_owned()
        } else {
            format!(
                "(SELECT COUNT(*) FROM custos_revoked_tokens WHERE jti IN ({}))",
                placeholders(jtis.len())
            )
        };
        let dead_grant = match grant_id {
            Some(_) => format!(
                "(SELECT CAST(1 AS BIGINT) - COUNT(*) FROM custos_grants \
                 WHERE grant_id = {} AND revoked_at IS NULL)",
                placeholders(1)
            ),
            None => zero.to_owned(),
        };
        let mut distinct: Vec<&str> = clients.iter().map(String::as_str).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let dead_clients = if distinct.is_empty() {
            zero.to_owned()
        } else {
            format!(
                "(SELECT CAST({} AS BIGINT) - COUNT(*) FROM custos_clients \
                 WHERE client_id IN ({}) AND disabled_at IS NULL)",
                distinct.len(),
                placeholders(distinct.len())
            )
        };
        let sql = format!(
            "SELECT {revoked} AS revoked, {dead_grant} AS dead_grant, {dead_clients} AS dead_clients"
        );
        let mut query = sqlx::query(&sql);
        for jti in jtis {
            query = query.bind(jti.as_str());
        }
        if let Some(grant_id) = grant_id {
            query = query.bind(grant_id);
        }
        for client in &distinct {
            query = query.bind(*client);
        }
        let row = query.fetch_one(&self.pool).await.map_err(db_err)?;
        let revoked: i64 = col(&row, "revoked")?;
        let dead_grant: i64 = col(&row, "dead_grant")?;
        let dead_clients: i64 = col(&row, "dead_clients")?;
        Ok(revoked > 0 || dead_grant > 0 || dead_clients > 0)
    }
}
