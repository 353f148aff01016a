//! `UserRepo`: local users in `custos_users`.

use async_trait::async_trait;

use super::{col, db_err, SqlStore};
use crate::{StoreResult, UserRecord, UserRepo};

#[async_trait]
impl UserRepo for SqlStore {
    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO custos_users (username, password_hash, created_at) VALUES ($1, $2, $3)",
        )
        .bind(user.username.as_str())
        .bind(user.password_hash.as_str())
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(
            "SELECT username, password_hash, created_at FROM custos_users WHERE username = $1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|row| {
            Ok(UserRecord {
                username: col(&row, "username")?,
                password_hash: col(&row, "password_hash")?,
                created_at: col(&row, "created_at")?,
            })
        })
        .transpose()
    }
}
