//! `ConsentRepo`: what people allowed clients, in `custos_consents`.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{col, db_err, SqlStore};
use crate::{ConsentRecord, ConsentRepo, StoreResult};

/// The columns of `custos_consents`, in bind order.
macro_rules! columns {
    () => {
        "username, client_id, scope, created_at"
    };
}

/// `scope` sorted, deduplicated and joined by single spaces.
fn normalize_scope(scope: &str) -> String {
    let mut values: Vec<&str> = scope.split_ascii_whitespace().collect();
    values.sort_unstable();
    values.dedup();
    values.join(" ")
}

fn from_row(row: &AnyRow) -> StoreResult<ConsentRecord> {
    Ok(ConsentRecord {
        username: col(row, "username")?,
        client_id: col(row, "client_id")?,
        scope: col(row, "scope")?,
        created_at: col(row, "created_at")?,
    })
}

#[async_trait]
impl ConsentRepo for SqlStore {
    /// One upsert on the primary key (username, client_id, scope).
    async fn record_consent(&self, consent: &ConsentRecord) -> StoreResult<()> {
        let sql = concat!(
            "INSERT INTO custos_consents (",
            columns!(),
            ") VALUES ($1, $2, $3, $4) \
             ON CONFLICT (username, client_id, scope) \
             DO UPDATE SET created_at = excluded.created_at"
        );
        sqlx::query(sql)
            .bind(consent.username.as_str())
            .bind(consent.client_id.as_str())
            .bind(normalize_scope(&consent.scope))
            .bind(consent.created_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn consents_of(
        &self,
        username: &str,
        client_id: &str,
    ) -> StoreResult<Vec<ConsentRecord>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM custos_consents WHERE username = $1 AND client_id = $2 ORDER BY scope"
        );
        sqlx::query(sql)
            .bind(username)
            .bind(client_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(from_row)
            .collect()
    }

    async fn list_consents(&self, username: Option<&str>) -> StoreResult<Vec<ConsentRecord>> {
        let rows = match username {
            Some(username) => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM custos_consents WHERE username = $1 \
                     ORDER BY username, client_id, scope"
                );
                sqlx::query(sql).bind(username).fetch_all(&self.pool).await
            }
            None => {
                let sql = concat!(
                    "SELECT ",
                    columns!(),
                    " FROM custos_consents ORDER BY username, client_id, scope"
                );
                sqlx::query(sql).fetch_all(&self.pool).await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(from_row).collect()
    }

    async fn revoke_consents(&self, username: &str, client_id: &str) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM custos_consents WHERE username = $1 AND client_id = $2")
                .bind(username)
                .bind(client_id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?
                .rows_affected(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_scope;

    #[test]
    fn scopes_are_sorted_deduplicated_and_single_spaced() {
        assert_eq!(normalize_scope("b a  b\tc "), "a b c");
        assert_eq!(normalize_scope(""), "");
        assert_eq!(normalize_scope("openid"), "openid");
    }
}
