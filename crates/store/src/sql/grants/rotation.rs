//! Refresh-token rotation (RFC 9700 §4.14.2): the decision inside one
//! transaction ([`rotate`]); `rotation_batch` makes the same decisions for
//! a group of rotations on SQLite.

use sqlx::Any;
use sqlx::AnyConnection;

use super::super::{conditional_write, conditional_write_returning, db_err};
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
/// UPDATE` is the lock for changing `revoked_at` (no key column changes).
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
    tx: &mut AnyConnection,
    engine: Engine,
    job: &RotationJob,
) -> StoreResult<Rotation> {
    // The common case, two statements: a live token of a live family.
    if let Some(row) = conditional_write_returning(
        sqlx::query(ROTATE_LIVE_TOKEN)
            .bind(job.old_hash.clone())
            .bind(job.now)
            .bind(job.new.client_id.as_str()),
        &mut *tx,
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
        if !insert_token_if_new(&new, &mut *tx).await? {
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
pub(super) fn successor(job: &RotationJob, family: &GrantRecord) -> RefreshTokenRecord {
    RefreshTokenRecord {
        grant_id: family.grant_id.clone(),
        scope: family.scope.clone(),
        expires_at: job.new.expires_at.min(family.expires_at),
        ..job.new.clone()
    }
}

/// [`rotate`] for a token the one-statement rotation did not take: read
/// it and its grant (locked, on PostgreSQL), decide, write.
pub(super) async fn rotate_decided(
    tx: &mut AnyConnection,
    engine: Engine,
    job: &RotationJob,
) -> StoreResult<Rotation> {
    let (old_hash, now, grace_secs) = (job.old_hash.as_slice(), job.now, job.grace_secs);
    for _ in 0..ROTATE_ATTEMPTS {
        let Some(old) = sqlx::query(select_token_for_rotation(engine))
            .bind(old_hash.to_vec())
            .fetch_optional(&mut *tx)
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
            .fetch_optional(&mut *tx)
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
                    &mut *tx,
                )
                .await?;
                if first_retry {
                    if !insert_token_if_new(&new, &mut *tx).await? {
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
                    &mut *tx,
                )
                .await?;
            }
            return Ok(Rotation::Reused {
                grant_id: old.grant_id,
            });
        }

        let family = match grant {
            Some(grant) if grant_is_live(&grant, now) && old.expires_at > now => grant,
            // A token without its grant (pruned: the token expires no
            // later) is unusable all the same.
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
            &mut *tx,
        )
        .await?;
        if !marked {
            continue;
        }
        if !insert_token_if_new(&new, &mut *tx).await? {
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
pub(super) enum Mark {
    /// `used_at`: rotated out.
    Used,
    /// `grace_used_at`: its one retry within the grace window taken.
    GraceRetry,
}

/// Clears the mark this rotation set on the presented token: it was NULL
/// before, and the token's lock is held.
pub(super) async fn undo(tx: &mut AnyConnection, mark: Mark, old_hash: &[u8]) -> StoreResult<()> {
    let sql = match mark {
        Mark::Used => "UPDATE custos_refresh_tokens SET used_at = NULL WHERE token_hash = $1",
        Mark::GraceRetry => {
            "UPDATE custos_refresh_tokens SET grace_used_at = NULL WHERE token_hash = $1"
        }
    };
    sqlx::query(sql)
        .bind(old_hash.to_vec())
        .execute(&mut *tx)
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
