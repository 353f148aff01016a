//! The authorization code flow and refresh-token rotation (OAuth 2.1,
//! RFC 9700): `CodeRepo` over `custos_authorization_codes`, `GrantRepo`
//! over `custos_grants` and `custos_refresh_tokens`.
//!
//! Redemption is one conditional `UPDATE … RETURNING`. Rotation is one
//! transaction that reads the token and its grant and then writes; on
//! SQLite the transaction holds the write lock from its first statement
//! (`BEGIN IMMEDIATE`), on PostgreSQL it locks the token row and then the
//! grant row — always in that order, so two rotations (or a rotation and a
//! reuse) of one family cannot deadlock — and concurrent rotations of the
//! same token queue on the token's row lock, each reading the row as the
//! one before it left it.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Any;

use super::{col, conditional_write, conditional_write_returning, db_err, detached, SqlStore};
use crate::{
    AuthorizationCodeRecord, CodeRepo, GrantRecord, GrantRepo, Redemption, RefreshTokenRecord,
    Rotation, RotationCheck, StoreError, StoreResult,
};

/// The columns of `custos_authorization_codes`, in bind order.
macro_rules! code_columns {
    () => {
        "code_hash, client_id, redirect_uri, code_challenge, subject, scope, \
         resources_json, dpop_jkt, authorization_details_json, created_at, \
         expires_at, consumed_at, grant_id"
    };
}

/// The columns of `custos_grants`, in bind order.
macro_rules! grant_columns {
    () => {
        "grant_id, client_id, subject, scope, resources_json, dpop_jkt, \
         created_at, expires_at, revoked_at, revoked_reason, authorization_details_json"
    };
}

/// The columns of `custos_refresh_tokens`, in bind order.
macro_rules! token_columns {
    () => {
        "token_hash, grant_id, client_id, scope, created_at, expires_at, used_at"
    };
}

/// The family's columns in a `RETURNING` of `custos_refresh_tokens`
/// (correlated subqueries: both engines accept them there), read by
/// [`joined_grant`]. Its `revoked_at` is NULL where this is used.
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
         (SELECT g.revoked_reason FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS revoked_reason, \
         (SELECT g.authorization_details_json FROM custos_grants g WHERE g.grant_id = custos_refresh_tokens.grant_id) AS authorization_details_json"
    };
}

mod rotation;
mod rotation_batch;
use rotation::rotate;
pub(super) use rotation_batch::RotationBatch;

fn encode_resources(resources: &[String]) -> StoreResult<String> {
    serde_json::to_string(resources)
        .map_err(|e| StoreError::Database(format!("cannot encode resources: {e}")))
}

fn decode_resources(row: &AnyRow, what: &str) -> StoreResult<Vec<String>> {
    let json: String = col(row, "resources_json")?;
    serde_json::from_str(&json)
        .map_err(|e| StoreError::Corrupt(format!("resources of {what}: {e}")))
}

fn code_from_row(row: &AnyRow) -> StoreResult<AuthorizationCodeRecord> {
    Ok(AuthorizationCodeRecord {
        code_hash: col(row, "code_hash")?,
        client_id: col(row, "client_id")?,
        redirect_uri: col(row, "redirect_uri")?,
        code_challenge: col(row, "code_challenge")?,
        subject: col(row, "subject")?,
        scope: col(row, "scope")?,
        resources: decode_resources(row, "an authorization code")?,
        dpop_jkt: col(row, "dpop_jkt")?,
        authorization_details: col(row, "authorization_details_json")?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
        consumed_at: col(row, "consumed_at")?,
        grant_id: col(row, "grant_id")?,
    })
}

fn grant_from_row(row: &AnyRow) -> StoreResult<GrantRecord> {
    let grant_id: String = col(row, "grant_id")?;
    let resources = decode_resources(row, &format!("grant {grant_id}"))?;
    Ok(GrantRecord {
        grant_id,
        client_id: col(row, "client_id")?,
        subject: col(row, "subject")?,
        scope: col(row, "scope")?,
        resources,
        dpop_jkt: col(row, "dpop_jkt")?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
        revoked_at: col(row, "revoked_at")?,
        revoked_reason: col(row, "revoked_reason")?,
        authorization_details: col(row, "authorization_details_json")?,
    })
}

fn token_from_row(row: &AnyRow) -> StoreResult<RefreshTokenRecord> {
    Ok(RefreshTokenRecord {
        token_hash: col(row, "token_hash")?,
        grant_id: col(row, "grant_id")?,
        client_id: col(row, "client_id")?,
        scope: col(row, "scope")?,
        created_at: col(row, "created_at")?,
        expires_at: col(row, "expires_at")?,
        used_at: col(row, "used_at")?,
    })
}

/// The grant of a row that joined it to a refresh token (the grant's
/// columns that clash with the token's are `g_`-prefixed).
fn joined_grant(row: &AnyRow, grant_id: &str) -> StoreResult<GrantRecord> {
    Ok(GrantRecord {
        grant_id: grant_id.to_owned(),
        client_id: col(row, "g_client_id")?,
        subject: col(row, "g_subject")?,
        scope: col(row, "g_scope")?,
        resources: decode_resources(row, &format!("grant {grant_id}"))?,
        dpop_jkt: col(row, "dpop_jkt")?,
        created_at: col(row, "g_created_at")?,
        expires_at: col(row, "g_expires_at")?,
        revoked_at: col(row, "revoked_at")?,
        revoked_reason: col(row, "revoked_reason")?,
        authorization_details: col(row, "authorization_details_json")?,
    })
}

/// Whether refresh tokens of `grant` may still be used at `now`.
fn grant_is_live(grant: &GrantRecord, now: i64) -> bool {
    grant.revoked_at.is_none() && grant.expires_at > now
}

/// Inserts a token of an existing grant, expiring no later than the grant
/// (so that pruning by expiry takes it with its grant).
const INSERT_TOKEN: &str = concat!(
    "INSERT INTO custos_refresh_tokens (",
    token_columns!(),
    ") SELECT $1, $2, $3, $4, $5, \
     CASE WHEN $6 < g.expires_at THEN $6 ELSE g.expires_at END, $7 \
     FROM custos_grants g WHERE g.grant_id = $2"
);

async fn insert_token<'c, E>(token: &RefreshTokenRecord, executor: E) -> StoreResult<()>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let inserted = bind_token(sqlx::query(INSERT_TOKEN), token)
        .execute(executor)
        .await
        .map_err(db_err)?
        .rows_affected();
    if inserted == 0 {
        return Err(StoreError::Database(
            "a refresh token's grant_id names no grant".into(),
        ));
    }
    Ok(())
}

fn bind_token<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    token: &'q RefreshTokenRecord,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(token.token_hash.clone())
        .bind(token.grant_id.as_str())
        .bind(token.client_id.as_str())
        .bind(token.scope.as_str())
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token.used_at)
}

#[async_trait]
impl CodeRepo for SqlStore {
    async fn insert_code(&self, code: &AuthorizationCodeRecord) -> StoreResult<()> {
        let resources_json = encode_resources(&code.resources)?;
        let sql = concat!(
            "INSERT INTO custos_authorization_codes (",
            code_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        );
        sqlx::query(sql)
            .bind(code.code_hash.clone())
            .bind(code.client_id.as_str())
            .bind(code.redirect_uri.as_str())
            .bind(code.code_challenge.as_str())
            .bind(code.subject.as_str())
            .bind(code.scope.as_str())
            .bind(resources_json)
            .bind(code.dpop_jkt.as_deref())
            .bind(code.authorization_details.as_deref())
            .bind(code.created_at)
            .bind(code.expires_at)
            .bind(code.consumed_at)
            .bind(code.grant_id.as_deref())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// A conditional write whose `RETURNING` row is the winner's record;
    /// a loser (or a caller with an unknown or expired code) then reads the
    /// row, which, once consumed, only `prune_expired` changes.
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        grant_id: &str,
        now: i64,
    ) -> StoreResult<Redemption> {
        let redeem = concat!(
            "UPDATE custos_authorization_codes SET consumed_at = $2, grant_id = $3 \
             WHERE code_hash = $1 AND consumed_at IS NULL AND expires_at > $2 \
             AND client_id = $4 RETURNING ",
            code_columns!()
        );
        let won = conditional_write_returning(
            sqlx::query(redeem)
                .bind(code_hash.to_vec())
                .bind(now)
                .bind(grant_id)
                .bind(client_id),
            &self.pool,
        )
        .await?;
        if let Some(row) = won {
            return Ok(Redemption::Redeemed(code_from_row(&row)?));
        }
        let read = concat!(
            "SELECT ",
            code_columns!(),
            " FROM custos_authorization_codes WHERE code_hash = $1"
        );
        let row = sqlx::query(read)
            .bind(code_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        match row.as_ref().map(code_from_row).transpose()? {
            Some(code) if code.consumed_at.is_some() && code.client_id == client_id => {
                Ok(Redemption::AlreadyRedeemed(code))
            }
            // Missing, expired before anyone redeemed it, or another
            // client's: that client can neither use nor burn it.
            _ => Ok(Redemption::Unknown),
        }
    }
}

#[async_trait]
impl GrantRepo for SqlStore {
    async fn insert_grant(&self, grant: &GrantRecord) -> StoreResult<()> {
        let resources_json = encode_resources(&grant.resources)?;
        let sql = concat!(
            "INSERT INTO custos_grants (",
            grant_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        sqlx::query(sql)
            .bind(grant.grant_id.as_str())
            .bind(grant.client_id.as_str())
            .bind(grant.subject.as_str())
            .bind(grant.scope.as_str())
            .bind(resources_json)
            .bind(grant.dpop_jkt.as_deref())
            .bind(grant.created_at)
            .bind(grant.expires_at)
            .bind(grant.revoked_at)
            .bind(grant.revoked_reason.as_deref())
            .bind(grant.authorization_details.as_deref())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn get_grant(&self, grant_id: &str) -> StoreResult<Option<GrantRecord>> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM custos_grants WHERE grant_id = $1"
        );
        sqlx::query(sql)
            .bind(grant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(grant_from_row)
            .transpose()
    }

    /// A conditional write on `revoked_at IS NULL AND expires_at > now`.
    async fn revoke_grant(&self, grant_id: &str, now: i64, reason: &str) -> StoreResult<bool> {
        conditional_write(
            sqlx::query(
                "UPDATE custos_grants SET revoked_at = $2, revoked_reason = $3 \
                 WHERE grant_id = $1 AND revoked_at IS NULL AND expires_at > $2",
            )
            .bind(grant_id)
            .bind(now)
            .bind(reason),
            &self.pool,
        )
        .await
    }

    async fn bind_grant_key(&self, grant_id: &str, jkt: &str) -> StoreResult<bool> {
        conditional_write(
            sqlx::query(
                "UPDATE custos_grants SET dpop_jkt = $2 \
                 WHERE grant_id = $1 AND dpop_jkt IS NULL",
            )
            .bind(grant_id)
            .bind(jkt),
            &self.pool,
        )
        .await
    }

    async fn list_live_grants(&self, client_id: &str, now: i64) -> StoreResult<Vec<GrantRecord>> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM custos_grants \
             WHERE client_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
             ORDER BY created_at, grant_id"
        );
        sqlx::query(sql)
            .bind(client_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(grant_from_row)
            .collect()
    }

    async fn insert_refresh_token(&self, token: &RefreshTokenRecord) -> StoreResult<()> {
        insert_token(token, &self.pool).await
    }

    async fn get_refresh_token(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<RefreshTokenRecord>> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM custos_refresh_tokens WHERE token_hash = $1"
        );
        sqlx::query(sql)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(token_from_row)
            .transpose()
    }

    async fn get_refresh_token_with_grant(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<(RefreshTokenRecord, GrantRecord)>> {
        let sql = "SELECT t.token_hash, t.grant_id, t.client_id, t.scope, t.created_at, \
             t.expires_at, t.used_at, g.client_id AS g_client_id, g.subject AS g_subject, \
             g.scope AS g_scope, g.resources_json, g.dpop_jkt, g.created_at AS g_created_at, \
             g.expires_at AS g_expires_at, g.revoked_at, g.revoked_reason, \
             g.authorization_details_json \
             FROM custos_refresh_tokens t JOIN custos_grants g ON g.grant_id = t.grant_id \
             WHERE t.token_hash = $1";
        let Some(row) = sqlx::query(sql)
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let token = token_from_row(&row)?;
        let grant = joined_grant(&row, &token.grant_id)?;
        Ok(Some((token, grant)))
    }

    /// One write transaction (see the module documentation); a failure at
    /// any step rolls every step back.
    async fn rotate_refresh_token_if(
        &self,
        old_hash: &[u8],
        new: &RefreshTokenRecord,
        now: i64,
        grace_secs: i64,
        accept: RotationCheck,
    ) -> StoreResult<Rotation> {
        let job = rotation::RotationJob {
            old_hash: old_hash.to_vec(),
            new: new.clone(),
            now,
            grace_secs,
            accept,
        };
        if let Some(queues) = &self.queues {
            return queues.rotations.submit(job).await;
        }
        let store = self.clone();
        detached(async move {
            let (mut tx, _write) = store.begin_write().await?;
            let rotation = rotate(&mut tx, store.engine, &job).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(rotation)
        })
        .await
    }
}
