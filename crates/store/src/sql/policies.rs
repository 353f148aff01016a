//! `PolicyRepo`: request-time policy records in `custos_policies`, and the
//! change counter every replica polls (`custos_policy_generation`).

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{col, db_err, detached, SqlStore};
use crate::{PolicyRecord, PolicyRepo, StoreResult};

const BUMP_GENERATION: &str =
    "UPDATE custos_policy_generation SET generation = generation + 1 WHERE singleton = 1";

fn from_row(row: &AnyRow) -> StoreResult<PolicyRecord> {
    Ok(PolicyRecord {
        id: col(row, "id")?,
        cedar: col(row, "cedar")?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl PolicyRepo for SqlStore {
    async fn insert_policy(&self, policy: &PolicyRecord) -> StoreResult<()> {
        let store = self.clone();
        let policy = policy.clone();
        detached(async move {
            let (mut tx, _write) = store.begin_write().await?;
            sqlx::query("INSERT INTO custos_policies (id, cedar, created_at) VALUES ($1, $2, $3)")
                .bind(policy.id.as_str())
                .bind(policy.cedar.as_str())
                .bind(policy.created_at)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(BUMP_GENERATION)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn list_policies(&self) -> StoreResult<Vec<PolicyRecord>> {
        sqlx::query("SELECT id, cedar, created_at FROM custos_policies ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(from_row)
            .collect()
    }

    async fn delete_policy(&self, id: &str) -> StoreResult<bool> {
        let store = self.clone();
        let id = id.to_owned();
        detached(async move {
            let (mut tx, _write) = store.begin_write().await?;
            let deleted = sqlx::query("DELETE FROM custos_policies WHERE id = $1")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                > 0;
            if deleted {
                sqlx::query(BUMP_GENERATION)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn policy_generation(&self) -> StoreResult<i64> {
        let row =
            sqlx::query("SELECT generation FROM custos_policy_generation WHERE singleton = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        col(&row, "generation")
    }
}
