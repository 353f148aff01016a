//! `ClientRepo`: registered clients, one row each in `custos_clients`.

use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::Any;

use super::{col, conditional_write, db_err, SqlStore};
use crate::{ClientRecord, ClientRepo, StoreResult};

/// The columns of `custos_clients`, in bind order.
macro_rules! columns {
    () => {
        "client_id, metadata_json, secret_hash, secret_created_at, \
         previous_secret_hash, previous_secret_expires_at, registration_token_hash, \
         created_at, updated_at, disabled_at, version"
    };
}

/// Binds every column of `client` in `columns!()` order, as `$1..$11`.
fn bind_all<'q>(
    query: Query<'q, Any, AnyArguments<'q>>,
    client: &'q ClientRecord,
) -> Query<'q, Any, AnyArguments<'q>> {
    query
        .bind(client.client_id.as_str())
        .bind(client.metadata_json.as_str())
        .bind(client.secret_hash.clone())
        .bind(client.secret_created_at)
        .bind(client.previous_secret_hash.clone())
        .bind(client.previous_secret_expires_at)
        .bind(client.registration_token_hash.clone())
        .bind(client.created_at)
        .bind(client.updated_at)
        .bind(client.disabled_at)
        .bind(client.version)
}

fn from_row(row: &AnyRow) -> StoreResult<ClientRecord> {
    Ok(ClientRecord {
        client_id: col(row, "client_id")?,
        metadata_json: col(row, "metadata_json")?,
        secret_hash: col(row, "secret_hash")?,
        secret_created_at: col(row, "secret_created_at")?,
        previous_secret_hash: col(row, "previous_secret_hash")?,
        previous_secret_expires_at: col(row, "previous_secret_expires_at")?,
        registration_token_hash: col(row, "registration_token_hash")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        disabled_at: col(row, "disabled_at")?,
        version: col(row, "version")?,
    })
}

#[async_trait]
impl ClientRepo for SqlStore {
    /// Stores `client.version` as given (callers pass 1).
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO custos_clients (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        bind_all(sqlx::query(sql), client)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// The client with this id, disabled or not; `None` if unknown.
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM custos_clients WHERE client_id = $1"
        );
        sqlx::query(sql)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    /// A conditional write: one `UPDATE` of every column but `client_id`
    /// (which selects the row) and `version` (which must still be the one
    /// read, `$11`, and becomes `version + 1`).
    async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool> {
        let sql = "UPDATE custos_clients SET metadata_json = $2, secret_hash = $3, \
                   secret_created_at = $4, previous_secret_hash = $5, \
                   previous_secret_expires_at = $6, registration_token_hash = $7, \
                   created_at = $8, updated_at = $9, disabled_at = $10, \
                   version = version + 1 \
                   WHERE client_id = $1 AND version = $11";
        conditional_write(bind_all(sqlx::query(sql), client), &self.pool).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM custos_clients ORDER BY created_at, client_id"
        );
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(from_row)
            .collect()
    }
}
