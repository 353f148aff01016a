//! Refresh-token rotation (RFC 9700 §4.14.2): the decision inside one
//! transaction ([`rotate`]), and on SQLite the same decisions for a group
//! of rotations in a few statements ([`RotationBatch`]).

use async_trait::async_trait;
use sqlx::{Any, Transaction};

use super::super::write_queue::Batch;
use super::super::{conditional_write, conditional_write_returning, db_err, SqlStore};
use super::{bind_token, grant_from_row, grant_is_live, joined_grant, token_from_row};
use crate::{
    Engine, GrantRecord, RefreshTokenRecord, Rotation, RotationCheck, StoreError, StoreResult,
    REFRESH_TOKEN_REUSED,
};

/// [`INSERT_TOKEN`] that reports an existing hash by inserting nothing,
/// instead of by an error that would abort the transaction (PostgreSQL) —
/// a rotation undoes its own first write then, and the other rotations of
/// its batch (SQLite) go on.
const INSERT_TOKEN_IF_NEW: &str = concat!(
    "INSERT INTO custos_refresh_tokens (",
    token_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (token_hash) DO NOTHING"
);

/// The family's columns in a `RETURNING` of `custos_refresh_tokens`
/// (correlated subqueries: both engines accept them there), read by
/// [`super::joined_grant`]. Its `revoked_at` is NULL where this is used.
macro_rules! family_columns {
    () => {
        "(SELECT g.client_id FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS g_client_id, \
         (SELECT g.subject FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS g_subject, \
         (SELECT g.scope FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS g_scope, \
         (SELECT g.resources_json FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS resources_json, \
         (SELECT g.dpop_jkt FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS dpop_jkt, \
         (SELECT g.created_at FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS g_created_at, \
         (SELECT g.expires_at FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS g_expires_at, \
         (SELECT g.revoked_at FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS revoked_at, \
         (SELECT g.revoked_reason FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS revoked_reason"
    };
}

/// The common rotation in one statement: a live, unused token of this
/// client in a live family is marked used, and returned as it is now.
const ROTATE_LIVE_TOKEN: &str = concat!(
    "UPDATE custos_refresh_tokens SET used_at = $2 \
     WHERE token_hash = $1 AND used_at IS NULL AND client_id = $3 AND expires_at > $2 \
     AND EXISTS (SELECT 1 FROM custos_grants g \
     WHERE g.grant_id = custos_refresh_tokens.grant_id \
     AND g.revoked_at IS NULL AND g.expires_at > $2) \
     RETURNING ",
    token_columns!(),
    ", ",
    family_columns!()
);

/// Reads a refresh token in a rotation, locking its row on PostgreSQL.
fn select_token_for_rotation(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => concat!(
            "SELECT ",
            token_columns!(),
            " FROM custos_refresh_tokens WHERE token_hash = $1"
        ),
        Engine::Postgres => concat!(
            "SELECT ",
            token_columns!(),
            " FROM custos_refresh_tokens WHERE token_hash = $1 FOR UPDATE"
        ),
    }
}

/// Reads a grant in a rotation, locking its row on PostgreSQL. `NO KEY
/// UPDATE` is enough for changing `revoked_at`, and does not block other
/// transactions' foreign-key checks of tokens inserted into the family.
fn select_grant_for_rotation(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => concat!(
            "SELECT ",
            grant_columns!(),
            " FROM custos_grants WHERE grant_id = $1"
        ),
        Engine::Postgres => concat!(
            "SELECT ",
            grant_columns!(),
            " FROM custos_grants WHERE grant_id = $1 FOR NO KEY UPDATE"
        ),
    }
}

/// Inserts `token` unless its hash exists; true if it was inserted.
async fn insert_token_if_new<'c, E>(token: &RefreshTokenRecord, executor: E) -> StoreResult<bool>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    Ok(bind_token(sqlx::query(INSERT_TOKEN_IF_NEW), token)
        .execute(executor)
        .await
        .map_err(db_err)?
        .rows_affected()
        == 1)
}

/// How often [`rotate`] re-reads a token whose conditional `UPDATE` found it
/// changed. Under the row lock (PostgreSQL) or the write lock (SQLite) that
/// cannot happen; the loop follows the conditional-write rule (re-read and
/// decide again, never write unconditionally) all the same.
const ROTATE_ATTEMPTS: usize = 3;

/// The decision of `rotate_refresh_token`, inside a transaction it shares
/// (on SQLite) with the other rotations of its batch: it returns `Conflict`
/// only after undoing its own writes, and any other error aborts the
/// transaction.
pub(super) async fn rotate(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    job: &RotationJob,
) -> StoreResult<Rotation> {
    // The common case, two statements: a live token of a live family.
    if let Some(row) = conditional_write_returning(
        sqlx::query(ROTATE_LIVE_TOKEN)
            .bind(job.old_hash.clone())
            .bind(job.now)
            .bind(job.new.client_id.as_str()),
        &mut **tx,
    )
    .await?
    {
        let old = token_from_row(&row)?;
        let family = joined_grant(&row, &old.grant_id)?;
        if !(job.accept)(&old, &family) {
            undo(tx, Mark::Used, &job.old_hash).await?;
            return Ok(Rotation::Declined);
        }
        let new = successor(job, &family);
        if !insert_token_if_new(&new, &mut **tx).await? {
            undo(tx, Mark::Used, &job.old_hash).await?;
            return Err(StoreError::Conflict);
        }
        return Ok(Rotation::Rotated {
            grant_id: old.grant_id.clone(),
            old,
            within_grace: false,
        });
    }
    rotate_decided(tx, engine, job).await
}

/// The token that replaces the presented one: in its family, with the
/// family's scope, living no longer than the family.
fn successor(job: &RotationJob, family: &GrantRecord) -> RefreshTokenRecord {
    RefreshTokenRecord {
        grant_id: family.grant_id.clone(),
        scope: family.scope.clone(),
        expires_at: job.new.expires_at.min(family.expires_at),
        ..job.new.clone()
    }
}

/// [`rotate`] for a token the one-statement rotation did not take: read
/// it and its grant (locked, on PostgreSQL), decide, write.
async fn rotate_decided(
    tx: &mut Transaction<'static, Any>,
    engine: Engine,
    job: &RotationJob,
) -> StoreResult<Rotation> {
    let (old_hash, now, grace_secs) = (job.old_hash.as_slice(), job.now, job.grace_secs);
    for _ in 0..ROTATE_ATTEMPTS {
        let Some(old) = sqlx::query(select_token_for_rotation(engine))
            .bind(old_hash.to_vec())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(token_from_row)
            .transpose()?
        else {
            return Ok(Rotation::Unknown);
        };
        // A token is known only to the client it was issued to.
        if old.client_id != job.new.client_id {
            return Ok(Rotation::Unknown);
        }
        let grant = sqlx::query(select_grant_for_rotation(engine))
            .bind(old.grant_id.as_str())
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(grant_from_row)
            .transpose()?;
        if let Some(used_at) = old.used_at {
            if now < used_at.saturating_add(grace_secs.max(0)) {
                // One retry within the grace window gets another live
                // token; a second would fork the family unseen, so it is a
                // reuse like any other.
                let live = grant
                    .as_ref()
                    .is_some_and(|g| grant_is_live(g, now) && old.expires_at > now);
                let family = match grant.as_ref() {
                    Some(family) if live => family,
                    _ => return Ok(Rotation::Expired),
                };
                if !(job.accept)(&old, family) {
                    return Ok(Rotation::Declined);
                }
                let new = successor(job, family);
                let first_retry = conditional_write(
                    sqlx::query(
                        "UPDATE custos_refresh_tokens SET grace_used_at = $2 \
                         WHERE token_hash = $1 AND grace_used_at IS NULL",
                    )
                    .bind(old_hash.to_vec())
                    .bind(now),
                    &mut **tx,
                )
                .await?;
                if first_retry {
                    if !insert_token_if_new(&new, &mut **tx).await? {
                        undo(tx, Mark::GraceRetry, old_hash).await?;
                        return Err(StoreError::Conflict);
                    }
                    return Ok(Rotation::Rotated {
                        grant_id: old.grant_id.clone(),
                        old,
                        within_grace: true,
                    });
                }
            }
            // Reuse: the family is compromised (RFC 9700 §4.14.2).
            if grant.as_ref().is_some_and(|g| g.revoked_at.is_none()) {
                conditional_write(
                    sqlx::query(
                        "UPDATE custos_grants SET revoked_at = $2, revoked_reason = $3 \
                         WHERE grant_id = $1 AND revoked_at IS NULL",
                    )
                    .bind(old.grant_id.as_str())
                    .bind(now)
                    .bind(REFRESH_TOKEN_REUSED),
                    &mut **tx,
                )
                .await?;
            }
            return Ok(Rotation::Reused {
                grant_id: old.grant_id,
            });
        }

        let family = match grant {
            Some(grant) if grant_is_live(&grant, now) && old.expires_at > now => grant,
            // The foreign key's cascade leaves no token without its grant;
            // one would be unusable all the same.
            _ => return Ok(Rotation::Expired),
        };
        if !(job.accept)(&old, &family) {
            return Ok(Rotation::Declined);
        }
        let new = successor(job, &family);
        let marked = conditional_write(
            sqlx::query(
                "UPDATE custos_refresh_tokens SET used_at = $2 \
                 WHERE token_hash = $1 AND used_at IS NULL",
            )
            .bind(old_hash.to_vec())
            .bind(now),
            &mut **tx,
        )
        .await?;
        if !marked {
            continue;
        }
        if !insert_token_if_new(&new, &mut **tx).await? {
            undo(tx, Mark::Used, old_hash).await?;
            return Err(StoreError::Conflict);
        }
        return Ok(Rotation::Rotated {
            grant_id: old.grant_id.clone(),
            old: RefreshTokenRecord {
                used_at: Some(now),
                ..old
            },
            within_grace: false,
        });
    }
    Err(StoreError::Database(format!(
        "a refresh token changed under its lock {ROTATE_ATTEMPTS} times during one rotation"
    )))
}

/// What a rotation marks on the presented token.
enum Mark {
    /// `used_at`: rotated out.
    Used,
    /// `grace_used_at`: its one retry within the grace window taken.
    GraceRetry,
}

/// Clears the mark this rotation set on the presented token: it was NULL
/// before, and the token's lock is held.
async fn undo(tx: &mut Transaction<'static, Any>, mark: Mark, old_hash: &[u8]) -> StoreResult<()> {
    let sql = match mark {
        Mark::Used => "UPDATE custos_refresh_tokens SET used_at = NULL WHERE token_hash = $1",
        Mark::GraceRetry => {
            "UPDATE custos_refresh_tokens SET grace_used_at = NULL WHERE token_hash = $1"
        }
    };
    sqlx::query(sql)
        .bind(old_hash.to_vec())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// A rotation waiting in SQLite's queue (see `write_queue`).
pub(crate) struct RotationJob {
    pub old_hash: Vec<u8>,
    pub new: RefreshTokenRecord,
    pub now: i64,
    pub grace_secs: i64,
    pub accept: RotationCheck,
}

/// SQLite's rotations, a group per commit: the first rotation of each
/// presented token tries the one-statement rotation together with the
/// others (one `UPDATE` for all, one `INSERT` of all the new tokens); what
/// that does not take — a used, expired or unknown token, the same token
/// presented again — is then decided one at a time, in arrival order, as
/// [`rotate`] would. The order is one the requests could have arrived in:
/// they were all waiting at once.
pub(crate) struct RotationBatch;

#[async_trait]
impl Batch for RotationBatch {
    type Job = RotationJob;
    type Output = Rotation;
    const NAME: &'static str = "refresh-token rotation";
    /// 2 values each in the `UPDATE` and 7 in the `INSERT`: well within
    /// SQLite's 32,766.
    const MAX: usize = 128;

    async fn commit(
        store: &SqlStore,
        jobs: &[RotationJob],
    ) -> StoreResult<Vec<StoreResult<Rotation>>> {
        let (mut tx, _write) = store.begin_write().await?;
        let mut answers: Vec<Option<StoreResult<Rotation>>> = jobs.iter().map(|_| None).collect();
        let mut seen = std::collections::HashSet::new();
        let mut first_of_each: Vec<usize> = (0..jobs.len())
            .filter(|&i| seen.insert(jobs[i].old_hash.as_slice()))
            .collect();
        // One statement per distinct `now` (the batch almost always shares
        // one second); a stable sort keeps arrival order within each.
        first_of_each.sort_by_key(|&i| jobs[i].now);
        for group in first_of_each.chunk_by(|&a, &b| jobs[a].now == jobs[b].now) {
            rotate_live_group(&mut tx, jobs, group, &mut answers).await?;
        }
        for (job, answer) in jobs.iter().zip(answers.iter_mut()) {
            if answer.is_some() {
                continue;
            }
            *answer = Some(match rotate_decided(&mut tx, store.engine, job).await {
                Err(StoreError::Conflict) => Err(StoreError::Conflict),
                Err(other) => return Err(other),
                Ok(rotation) => Ok(rotation),
            });
        }
        tx.commit().await.map_err(db_err)?;
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

/// The one-statement rotation for the jobs `group` (distinct tokens, one
/// `now`), and the insert of their new tokens; answers the jobs it took.
async fn rotate_live_group(
    tx: &mut Transaction<'static, Any>,
    jobs: &[RotationJob],
    group: &[usize],
    answers: &mut [Option<StoreResult<Rotation>>],
) -> StoreResult<()> {
    let Some(&first) = group.first() else {
        return Ok(());
    };
    let now = jobs[first].now;
    // Anonymous `?` placeholders: SQLite looks each named `$n` up by a
    // linear scan, which makes binding hundreds cost more than the write.
    let mut sql = String::from(
        "UPDATE custos_refresh_tokens SET used_at = ? WHERE (token_hash, client_id) IN (VALUES ",
    );
    for k in 0..group.len() {
        sql.push_str(if k == 0 { "(?, ?)" } else { ", (?, ?)" });
    }
    sql.push_str(concat!(
        ") AND used_at IS NULL AND expires_at > ? \
         AND EXISTS (SELECT 1 FROM custos_grants g \
         WHERE g.grant_id = custos_refresh_tokens.grant_id \
         AND g.revoked_at IS NULL AND g.expires_at > ?) RETURNING ",
        token_columns!(),
        ", ",
        family_columns!()
    ));
    let mut update = sqlx::query(&sql).persistent(false).bind(now);
    for &i in group {
        update = update
            .bind(jobs[i].old_hash.clone())
            .bind(jobs[i].new.client_id.as_str());
    }
    let update = update.bind(now).bind(now);
    let rows = update.fetch_all(&mut **tx).await.map_err(db_err)?;
    if rows.is_empty() {
        return Ok(());
    }
    let job_of: std::collections::HashMap<&[u8], usize> = group
        .iter()
        .map(|&i| (jobs[i].old_hash.as_slice(), i))
        .collect();
    let mut rotated = Vec::with_capacity(rows.len());
    for row in &rows {
        let old = token_from_row(row)?;
        let i = *job_of.get(old.token_hash.as_slice()).ok_or_else(|| {
            StoreError::Corrupt("a rotation returned a token not asked for".into())
        })?;
        let family = joined_grant(row, &old.grant_id)?;
        if !(jobs[i].accept)(&old, &family) {
            undo(tx, Mark::Used, &old.token_hash).await?;
            answers[i] = Some(Ok(Rotation::Declined));
            continue;
        }
        let new = successor(&jobs[i], &family);
        rotated.push((i, old, new));
    }
    if rotated.is_empty() {
        return Ok(());
    }

    let mut sql = String::from(concat!(
        "INSERT INTO custos_refresh_tokens (",
        token_columns!(),
        ") VALUES "
    ));
    for k in 0..rotated.len() {
        sql.push_str(if k == 0 {
            "(?, ?, ?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?, ?, ?)"
        });
    }
    sql.push_str(" ON CONFLICT (token_hash) DO NOTHING RETURNING token_hash");
    let mut insert = sqlx::query(&sql).persistent(false);
    for (_, _, new) in &rotated {
        insert = bind_token(insert, new);
    }
    let mut inserted = std::collections::HashSet::new();
    for row in insert.fetch_all(&mut **tx).await.map_err(db_err)? {
        inserted.insert(super::super::col::<Vec<u8>>(&row, "token_hash")?);
    }
    for (i, old, new) in rotated {
        // `remove`: of two new tokens with one hash, one is inserted.
        answers[i] = Some(if inserted.remove(&new.token_hash) {
            Ok(Rotation::Rotated {
                grant_id: old.grant_id.clone(),
                old,
                within_grace: false,
            })
        } else {
            undo(tx, Mark::Used, &old.token_hash).await?;
            Err(StoreError::Conflict)
        });
    }
    Ok(())
}
