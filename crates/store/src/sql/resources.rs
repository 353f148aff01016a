//! `ResourceRepo`: protected resources in `custos_resources` (the scope and
//! tag lists stored as JSON arrays in `scopes_json` and `tags_json`) and
//! their RFC 9396 authorization details types in
//! `custos_authorization_detail_types` (the type name its primary key, so
//! two resources can never claim one name, across replicas).

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{col, db_err, SqlStore};
use crate::{DetailTypeRecord, ResourceRecord, ResourceRepo, StoreError, StoreResult};

fn from_row(row: &AnyRow) -> StoreResult<ResourceRecord> {
    let uri: String = col(row, "uri")?;
    let scopes_json: String = col(row, "scopes_json")?;
    let scopes = serde_json::from_str(&scopes_json)
        .map_err(|e| StoreError::Corrupt(format!("scopes of resource {uri}: {e}")))?;
    let tags_json: String = col(row, "tags_json")?;
    let tags = serde_json::from_str(&tags_json)
        .map_err(|e| StoreError::Corrupt(format!("tags of resource {uri}: {e}")))?;
    Ok(ResourceRecord {
        uri,
        scopes,
        tags,
        created_at: col(row, "created_at")?,
    })
}

fn detail_type_from_row(row: &AnyRow) -> StoreResult<DetailTypeRecord> {
    Ok(DetailTypeRecord {
        type_name: col(row, "type_name")?,
        resource: col(row, "resource_uri")?,
        schema_json: col(row, "schema_json")?,
    })
}

const DETAIL_TYPE_COLUMNS: &str = "type_name, resource_uri, schema_json";

#[async_trait]
impl ResourceRepo for SqlStore {
    async fn insert_resource(
        &self,
        resource: &ResourceRecord,
        detail_types: &[DetailTypeRecord],
    ) -> StoreResult<()> {
        let scopes_json = serde_json::to_string(&resource.scopes)
            .map_err(|e| StoreError::Database(format!("cannot encode scopes: {e}")))?;
        let tags_json = serde_json::to_string(&resource.tags)
            .map_err(|e| StoreError::Database(format!("cannot encode tags: {e}")))?;
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO custos_resources (uri, scopes_json, tags_json, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(resource.uri.as_str())
        .bind(scopes_json)
        .bind(tags_json)
        .bind(resource.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for detail_type in detail_types {
            sqlx::query(
                "INSERT INTO custos_authorization_detail_types \
                 (type_name, resource_uri, schema_json, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(detail_type.type_name.as_str())
            .bind(resource.uri.as_str())
            .bind(detail_type.schema_json.as_str())
            .bind(resource.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn get_resource(&self, uri: &str) -> StoreResult<Option<ResourceRecord>> {
        sqlx::query(
            "SELECT uri, scopes_json, tags_json, created_at FROM custos_resources WHERE uri = $1",
        )
        .bind(uri)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// Every resource, ordered by created_at then uri.
    async fn list_resources(&self) -> StoreResult<Vec<ResourceRecord>> {
        sqlx::query(
            "SELECT uri, scopes_json, tags_json, created_at FROM custos_resources \
             ORDER BY created_at, uri",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn list_detail_types(&self) -> StoreResult<Vec<DetailTypeRecord>> {
        sqlx::query(&format!(
            "SELECT {DETAIL_TYPE_COLUMNS} FROM custos_authorization_detail_types \
             ORDER BY type_name"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .iter()
        .map(detail_type_from_row)
        .collect()
    }
}
