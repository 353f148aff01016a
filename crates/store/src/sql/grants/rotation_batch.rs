//! SQLite's refresh-token rotations, a group per commit (see
//! `write_queue`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::AnyConnection;
use sqlx::Executor as _;

use super::super::write_queue::{Batch, KeptConnection};
use super::super::{col, db_err, SqlStore};
use super::rotation::{rotate_decided, successor, undo, Mark, RotationJob};
use super::{bind_token, token_from_row};
use crate::{GrantRecord, RefreshTokenRecord, Rotation, StoreError, StoreResult};

/// The family of each token in the group's `RETURNING`, as one column:
/// SQLite's `json_array` of the grant's columns, one lookup of the grant a
/// row where `family_columns!` makes one a column (ten), which was a third
/// of the `UPDATE`'s time. Read by [`family_from_json`].
macro_rules! family_json_column {
    () => {
        "(SELECT json_array(g.client_id, g.subject, g.scope, g.resources_json, g.dpop_jkt, \
         g.created_at, g.expires_at, g.revoked_at, g.revoked_reason, \
         g.authorization_details_json) \
         FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS family_json"
    };
}

/// The grant's columns in `family_json_column!`'s order.
type FamilyColumns = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The family a row of the group's `UPDATE` returned.
fn family_from_json(row: &sqlx::any::AnyRow, grant_id: &str) -> StoreResult<GrantRecord> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("grant {grant_id}: {e}"));
    let text: String = col(row, "family_json")?;
    let (
        client_id,
        subject,
        scope,
        resources_json,
        dpop_jkt,
        created_at,
        expires_at,
        revoked_at,
        revoked_reason,
        authorization_details,
    ): FamilyColumns = serde_json::from_str(&text).map_err(corrupt)?;
    Ok(GrantRecord {
        grant_id: grant_id.to_owned(),
        client_id,
        subject,
        scope,
        resources: serde_json::from_str(&resources_json).map_err(corrupt)?,
        dpop_jkt,
        created_at,
        expires_at,
        revoked_at,
        revoked_reason,
        authorization_details,
    })
}

/// SQLite's rotations, a group per commit: the first rotation of each
/// presented token tries the one-statement rotation together with the
/// others (one `UPDATE` for all, one `INSERT` of all the new tokens); what
/// that does not take — a used, expired or unknown token, the same token
/// presented again, a new token whose hash exists — is then decided one at
/// a time, in arrival order, as `rotate` would. The order is one the
/// requests could have arrived in: they were all waiting at once.
///
/// Every round trip to SQLite's worker thread costs about half a
/// millisecond under load, and the writer is the limit of the whole
/// refresh path: the transaction opens in the round trip of the group's
/// `UPDATE` and, when nothing is left to decide one at a time, commits in
/// that of its `INSERT`. Groups are padded to a power of two, so that the
/// writer's connection keeps a handful of statements prepared.
pub(crate) struct RotationBatch;

#[async_trait]
impl Batch for RotationBatch {
    type Job = RotationJob;
    type Output = Rotation;
    const NAME: &'static str = "refresh-token rotation";
    const WRITES: bool = true;
    /// 3 values each in the `UPDATE` and 7 in the `INSERT`: well within
    /// SQLite's 32,766.
    const MAX: usize = 128;

    async fn commit(
        store: &SqlStore,
        writer: &mut KeptConnection,
        jobs: &[RotationJob],
    ) -> StoreResult<Vec<StoreResult<Rotation>>> {
        let mut tx = BatchTransaction {
            conn: writer.get().await?,
            state: State::NotBegun,
        };
        let mut answers: Vec<Option<StoreResult<Rotation>>> = jobs.iter().map(|_| None).collect();
        // The one-statement rotation takes the first job of each presented
        // token whose new token's hash is new to the batch too (the next
        // job with that hash must then see the first's token).
        let mut presented = HashSet::new();
        let mut successors = HashSet::new();
        let mut fast: Vec<usize> = (0..jobs.len())
            .filter(|&i| {
                presented.insert(jobs[i].old_hash.as_slice())
                    & successors.insert(jobs[i].new.token_hash.as_slice())
            })
            .collect();
        // One statement per distinct `now` (the batch almost always shares
        // one second); a stable sort keeps arrival order within each.
        fast.sort_by_key(|&i| jobs[i].now);
        let groups: Vec<&[usize]> = fast.chunk_by(|&a, &b| jobs[a].now == jobs[b].now).collect();
        let mut rotated_so_far = 0;
        for (g, group) in groups.iter().enumerate() {
            let rotated = rotate_live_group(&mut tx, jobs, group, &mut answers).await?;
            let decided = answers.iter().filter(|a| a.is_some()).count();
            rotated_so_far += rotated.len();
            let last = g + 1 == groups.len() && decided + rotated_so_far == jobs.len();
            insert_successors(&mut tx, rotated, &mut answers, last).await?;
        }
        for (job, answer) in jobs.iter().zip(answers.iter_mut()) {
            if answer.is_some() {
                continue;
            }
            let conn = tx.begun().await?;
            *answer = Some(match rotate_decided(conn, store.engine, job).await {
                Err(StoreError::Conflict) => Err(StoreError::Conflict),
                Err(other) => return Err(other),
                Ok(rotation) => Ok(rotation),
            });
        }
        tx.commit().await?;
        Ok(answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(StoreError::Database("a rotation was left undecided".into()))
                })
            })
            .collect())
    }
}

/// Where the batch's transaction is.
#[derive(PartialEq)]
enum State {
    NotBegun,
    Open,
    Committed,
}

/// The batch's transaction on the writer's connection: `BEGIN IMMEDIATE`
/// is sent with the first statement and `COMMIT` with the last where it
/// can be. A failure leaves it to the writer to roll back.
struct BatchTransaction<'c> {
    conn: &'c mut AnyConnection,
    state: State,
}

impl BatchTransaction<'_> {
    /// `sql`, preceded by `BEGIN IMMEDIATE` if it opens the transaction.
    fn opening(&mut self, sql: &str) -> String {
        match self.state {
            State::NotBegun => {
                self.state = State::Open;
                format!("BEGIN IMMEDIATE; {sql}")
            }
            State::Open | State::Committed => sql.to_owned(),
        }
    }

    /// `sql` followed by `COMMIT` (the transaction is open).
    fn committing(&mut self, sql: String) -> String {
        self.state = State::Committed;
        sql + "; COMMIT"
    }

    /// The connection, inside the open transaction.
    async fn begun(&mut self) -> StoreResult<&mut AnyConnection> {
        if self.state == State::NotBegun {
            self.conn.execute("BEGIN IMMEDIATE").await.map_err(db_err)?;
            self.state = State::Open;
        }
        Ok(&mut *self.conn)
    }

    async fn commit(self) -> StoreResult<()> {
        if self.state == State::Open {
            self.conn.execute("COMMIT").await.map_err(db_err)?;
        }
        Ok(())
    }
}

/// `n` rounded up to a power of two, the size of the padded statement.
fn padded(n: usize) -> usize {
    n.next_power_of_two()
}

/// A rotation the one-statement rotation took and accepted: the job, the
/// presented token as it is now, and the token to insert.
type Rotated = (usize, RefreshTokenRecord, RefreshTokenRecord);

/// The one-statement rotation of the jobs `group` (distinct presented and
/// new tokens, one `now`): marks each live presented token used, unless its
/// new token's hash exists, and returns it with its family. Answers the
/// jobs the check declines (their mark undone); returns the rest.
async fn rotate_live_group(
    tx: &mut BatchTransaction<'_>,
    jobs: &[RotationJob],
    group: &[usize],
    answers: &mut [Option<StoreResult<Rotation>>],
) -> StoreResult<Vec<Rotated>> {
    let Some(&first) = group.first() else {
        return Ok(Vec::new());
    };
    let now = jobs[first].now;
    let rows = padded(group.len());
    // Anonymous `?` placeholders: SQLite looks each named `$n` up by a
    // linear scan, which makes binding hundreds cost more than the write.
    // The padding repeats the first job, which changes nothing.
    let mut sql = String::from(
        "UPDATE custos_refresh_tokens SET used_at = ? WHERE (token_hash, client_id) IN \
         (SELECT v.column1, v.column2 FROM (VALUES ",
    );
    for k in 0..rows {
        sql.push_str(if k == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
    }
    sql.push_str(concat!(
        ") AS v WHERE NOT EXISTS (SELECT 1 FROM custos_refresh_tokens t \
         WHERE t.token_hash = v.column3)) \
         AND used_at IS NULL AND expires_at > ? \
         AND EXISTS (SELECT 1 FROM custos_grants g \
         WHERE g.grant_id = custos_refresh_tokens.grant_id \
         AND g.revoked_at IS NULL AND g.expires_at > ?) RETURNING ",
        token_columns!(),
        ", ",
        family_json_column!()
    ));
    let sql = tx.opening(&sql);
    let mut update = sqlx::query(&sql).bind(now);
    for k in 0..rows {
        let job = &jobs[group.get(k).copied().unwrap_or(first)];
        update = update
            .bind(job.old_hash.clone())
            .bind(job.new.client_id.as_str())
            .bind(job.new.token_hash.clone());
    }
    let update = update.bind(now).bind(now);
    let rows = update.fetch_all(&mut *tx.conn).await.map_err(db_err)?;
    let job_of: HashMap<&[u8], usize> = group
        .iter()
        .map(|&i| (jobs[i].old_hash.as_slice(), i))
        .collect();
    let mut rotated = Vec::with_capacity(rows.len());
    for row in &rows {
        let old = token_from_row(row)?;
        let i = *job_of.get(old.token_hash.as_slice()).ok_or_else(|| {
            StoreError::Corrupt("a rotation returned a token not asked for".into())
        })?;
        let family = family_from_json(row, &old.grant_id)?;
        if !(jobs[i].accept)(&old, &family) {
            undo(tx.conn, Mark::Used, &old.token_hash).await?;
            answers[i] = Some(Ok(Rotation::Declined));
            continue;
        }
        let new = successor(&jobs[i], &family);
        rotated.push((i, old, new));
    }
    Ok(rotated)
}

/// Inserts the new tokens of `rotated` — none of whose hashes exists, as
/// the `UPDATE` checked under the write lock — and answers their jobs;
/// with `commit`, commits the batch in the same round trip.
async fn insert_successors(
    tx: &mut BatchTransaction<'_>,
    rotated: Vec<Rotated>,
    answers: &mut [Option<StoreResult<Rotation>>],
    commit: bool,
) -> StoreResult<()> {
    if rotated.is_empty() {
        return Ok(());
    }
    let rows = padded(rotated.len());
    // The padding rows are NULLs, which the `WHERE` drops.
    let mut sql = String::from(concat!(
        "INSERT INTO custos_refresh_tokens (",
        token_columns!(),
        ") SELECT * FROM (VALUES "
    ));
    for k in 0..rows {
        sql.push_str(if k == 0 {
            "(?, ?, ?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?, ?, ?)"
        });
    }
    sql.push_str(") WHERE column1 IS NOT NULL");
    let sql = if commit { tx.committing(sql) } else { sql };
    let mut insert = sqlx::query(&sql);
    for (_, _, new) in &rotated {
        insert = bind_token(insert, new);
    }
    for _ in rotated.len()..rows {
        insert = insert
            .bind(None::<Vec<u8>>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<String>)
            .bind(None::<i64>)
            .bind(None::<i64>)
            .bind(None::<i64>);
    }
    // Without `ON CONFLICT`, an existing hash would fail the statement
    // (and the batch) rather than go unnoticed.
    insert.execute(&mut *tx.conn).await.map_err(db_err)?;
    for (i, old, _) in rotated {
        answers[i] = Some(Ok(Rotation::Rotated {
            grant_id: old.grant_id.clone(),
            old,
            within_grace: false,
        }));
    }
    Ok(())
}
