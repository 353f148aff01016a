//! Short-lived token facts: initial access tokens, single-use `jti`s
//! (replay protection) and revoked access tokens.

use async_trait::async_trait;

use super::{col, db_err, SqlStore};
use crate::{
    InitialAccessTokenRecord, InitialAccessTokenRepo, ReplayRepo, RevocationRepo, RevokedToken,
    StoreResult,
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
}
