//! `TrustedIssuerRepo`: external issuers of workload identity in
//! `custos_trusted_issuers`; the registration is kept as JSON.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{col, db_err, SqlStore};
use crate::{StoreResult, TrustedIssuerRecord, TrustedIssuerRepo};

const COLUMNS: &str = "id, kind, name, config_json, created_at";

fn from_row(row: &AnyRow) -> StoreResult<TrustedIssuerRecord> {
    Ok(TrustedIssuerRecord {
        id: col(row, "id")?,
        kind: col(row, "kind")?,
        name: col(row, "name")?,
        config_json: col(row, "config_json")?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl TrustedIssuerRepo for SqlStore {
    async fn insert_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custos_trusted_issuers (id, kind, name, config_json, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(issuer.id.as_str())
        .bind(issuer.kind.as_str())
        .bind(issuer.name.as_str())
        .bind(issuer.config_json.as_str())
        .bind(issuer.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn list_trusted_issuers(&self) -> StoreResult<Vec<TrustedIssuerRecord>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM custos_trusted_issuers ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn get_trusted_issuer(&self, name: &str) -> StoreResult<Option<TrustedIssuerRecord>> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM custos_trusted_issuers WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    async fn delete_trusted_issuer(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM custos_trusted_issuers WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }
}
