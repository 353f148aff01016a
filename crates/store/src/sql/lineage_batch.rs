//! SQLite: whether tokens' lineages are revoked
//! ([`RevocationRepo::is_lineage_revoked`](crate::RevocationRepo)), read for
//! many requests at once.
//!
//! Each read is a round trip to sqlx's worker thread and the thread
//! wake-ups around it; under load (introspection, token exchange) they
//! cost more than the query. The lineages that queued up since the last
//! read are answered with one `SELECT` (through the queue of
//! [`write_queue`](super::write_queue), which reads as well as it writes):
//! still a read of the store made after each request arrived, so a
//! revocation committed before a request is seen by it.

use async_trait::async_trait;
use std::collections::HashSet;

use super::write_queue::{Batch, KeptConnection};
use super::{col, db_err, SqlStore};
use crate::StoreResult;

/// One lineage to check: as `is_lineage_revoked` takes it.
pub(crate) struct LineageJob {
    pub(crate) jtis: Vec<String>,
    pub(crate) grant_id: Option<String>,
    pub(crate) clients: Vec<String>,
}

pub(crate) struct LineageBatch;

/// Row kinds of the batch's `SELECT`.
const REVOKED_JTI: i64 = 1;
const LIVE_GRANT: i64 = 2;
const ENABLED_CLIENT: i64 = 3;

#[async_trait]
impl Batch for LineageBatch {
    type Job = LineageJob;
    type Output = bool;
    const NAME: &'static str = "token lineage";
    const WRITES: bool = false;
    /// Lineages are at most `MAX_LINEAGE` jtis and clients each, so a full
    /// batch stays within SQLite's 32,766 variables.
    const MAX: usize = 96;

    async fn commit(
        _store: &SqlStore,
        reader: &mut KeptConnection,
        jobs: &[LineageJob],
    ) -> StoreResult<Vec<StoreResult<bool>>> {
        let jtis = distinct(jobs.iter().flat_map(|j| j.jtis.iter()));
        let grants = distinct(jobs.iter().filter_map(|j| j.grant_id.as_ref()));
        let clients = distinct(jobs.iter().flat_map(|j| j.clients.iter()));
        let mut parts: Vec<String> = Vec::with_capacity(3);
        let mut binds: Vec<&str> = Vec::new();
        add_part(
            &mut parts,
            &mut binds,
            &format!(
                "SELECT {REVOKED_JTI} AS kind, jti AS id FROM custos_revoked_tokens WHERE jti"
            ),
            &jtis,
            "",
        );
        add_part(
            &mut parts,
            &mut binds,
            &format!(
                "SELECT {LIVE_GRANT} AS kind, grant_id AS id FROM custos_grants WHERE grant_id"
            ),
            &grants,
            " AND revoked_at IS NULL",
        );
        add_part(
            &mut parts,
            &mut binds,
            &format!(
                "SELECT {ENABLED_CLIENT} AS kind, client_id AS id FROM custos_clients WHERE client_id"
            ),
            &clients,
            " AND disabled_at IS NULL",
        );
        let mut revoked: HashSet<String> = HashSet::new();
        let mut live_grants: HashSet<String> = HashSet::new();
        let mut enabled: HashSet<String> = HashSet::new();
        if !parts.is_empty() {
            let sql = parts.join(" UNION ALL ");
            let mut query = sqlx::query(&sql);
            for value in binds {
                query = query.bind(value);
            }
            let conn = reader.get().await?;
            for row in query.fetch_all(&mut *conn).await.map_err(db_err)? {
                let kind: i64 = col(&row, "kind")?;
                let id: String = col(&row, "id")?;
                match kind {
                    REVOKED_JTI => revoked.insert(id),
                    LIVE_GRANT => live_grants.insert(id),
                    _ => enabled.insert(id),
                };
            }
        }
        Ok(jobs
            .iter()
            .map(|job| {
                Ok(job.jtis.iter().any(|j| revoked.contains(j))
                    || job
                        .grant_id
                        .as_ref()
                        .is_some_and(|g| !live_grants.contains(g))
                    || job.clients.iter().any(|c| !enabled.contains(c)))
            })
            .collect())
    }
}

/// `{select} IN (?, …){filter}` for `values` (none: nothing), padded to a
/// power of two by repeating the last value: a few statement shapes, each
/// prepared once on the kept connection.
fn add_part<'a>(
    parts: &mut Vec<String>,
    binds: &mut Vec<&'a str>,
    select: &str,
    values: &[&'a str],
    filter: &str,
) {
    let Some(&last) = values.last() else {
        return;
    };
    let padded = values.len().next_power_of_two();
    let placeholders = vec!["?"; padded].join(", ");
    parts.push(format!("{select} IN ({placeholders}){filter}"));
    binds.extend_from_slice(values);
    binds.extend(std::iter::repeat_n(last, padded - values.len()));
}

fn distinct<'a>(values: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    values
        .map(String::as_str)
        .filter(|v| seen.insert(*v))
        .collect()
}
