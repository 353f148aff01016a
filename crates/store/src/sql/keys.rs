//! `SigningKeyRepo`: signing keys in `custos_signing_keys`.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{col, db_err, detached, SqlStore};
use crate::{Engine, SigningKeyRecord, SigningKeyRepo, StoreResult};

/// Key of the PostgreSQL advisory lock held while inserting the first
/// signing key (distinct from the migration lock's).
const FIRST_KEY_LOCK: i64 = 0x6375_7374_6b65_7931; // "custkey1"

fn from_row(row: &AnyRow) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: col(row, "kid")?,
        alg: col(row, "alg")?,
        public_jwk: col(row, "public_jwk")?,
        sealed_private_key: col(row, "sealed_private_key")?,
        created_at: col(row, "created_at")?,
        activates_at: col(row, "activates_at")?,
        retired_at: col(row, "retired_at")?,
    })
}

#[async_trait]
impl SigningKeyRepo for SqlStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query(
            "SELECT kid, alg, public_jwk, sealed_private_key, created_at, activates_at, retired_at \
             FROM custos_signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Retires the active keys and inserts `new_key` atomically: either both
    /// happen or neither (`Conflict` if `new_key.kid` exists, nothing changed).
    async fn rotate_signing_key(&self, new_key: &SigningKeyRecord) -> StoreResult<()> {
        let store = self.clone();
        let new_key = new_key.clone();
        detached(async move { store.rotate_signing_key_now(&new_key).await }).await
    }

    /// One statement: insert if the table is empty. On SQLite writers are
    /// serialised, so exactly one racer inserts. On PostgreSQL two racers
    /// with different kids may both insert (documented as harmless); with
    /// the same kid the second does nothing and gets `false`.
    async fn insert_first_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        let store = self.clone();
        let key = key.clone();
        detached(async move { store.insert_first_signing_key_now(&key).await }).await
    }

    async fn delete_expired_signing_keys(&self, now: i64, max_token_ttl: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM custos_signing_keys \
             WHERE retired_at IS NOT NULL AND retired_at <= $1 - $2",
        )
        .bind(now)
        .bind(max_token_ttl)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected())
    }
}

/// The transactions of the trait's methods, run [`detached`].
impl SqlStore {
    async fn rotate_signing_key_now(&self, new_key: &SigningKeyRecord) -> StoreResult<()> {
        let (mut tx, _write) = self.begin_write().await?;
        sqlx::query("UPDATE custos_signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(new_key.activates_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO custos_signing_keys \
             (kid, alg, public_jwk, sealed_private_key, created_at, activates_at, retired_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_key.kid.as_str())
        .bind(new_key.alg.as_str())
        .bind(new_key.public_jwk.as_str())
        .bind(new_key.sealed_private_key.clone())
        .bind(new_key.created_at)
        .bind(new_key.activates_at)
        .bind(new_key.retired_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    async fn insert_first_signing_key_now(&self, key: &SigningKeyRecord) -> StoreResult<bool> {
        // Replicas starting together on an empty database must agree on one
        // first key: SQLite serialises writers (BEGIN IMMEDIATE); on
        // PostgreSQL two READ COMMITTED inserts could both see the table
        // empty, so they queue on a transaction-scoped advisory lock.
        let (mut tx, _write) = self.begin_write().await?;
        if self.engine == Engine::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(FIRST_KEY_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let done = sqlx::query(
            "INSERT INTO custos_signing_keys \
             (kid, alg, public_jwk, sealed_private_key, created_at, activates_at, retired_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE NOT EXISTS (SELECT 1 FROM custos_signing_keys) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(key.kid.as_str())
        .bind(key.alg.as_str())
        .bind(key.public_jwk.as_str())
        .bind(key.sealed_private_key.clone())
        .bind(key.created_at)
        .bind(key.activates_at)
        .bind(key.retired_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}
