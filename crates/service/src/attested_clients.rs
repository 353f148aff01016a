//! Which client a workload identity stands for, when the request does not
//! name the client by its id: the JWT bearer grant (a federated token's
//! `iss` + `sub`) and SPIFFE (a `client_id` that is a SPIFFE ID). Built
//! from every registered client and rebuilt at most once per
//! [`INDEX_TTL`], however many requests ask (one rebuild at a time), so a
//! client registered on another replica is found within that bound and
//! made-up identities never cost a database read each. A client written on
//! this replica is seen at once: the index is rebuilt after any.

use crate::clients::decode_metadata;
use crate::clock::Clock;
use crate::error::{internal, ServiceError};
use custos_protocol::spiffe::{SpiffeId, SpiffeIdPattern};
use custos_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

/// How long an index is used before it is rebuilt, milliseconds.
pub const INDEX_TTL_MS: i64 = 5_000;

/// The clients with attested identities, by identity.
#[derive(Debug, Default)]
pub(crate) struct AttestedIndex {
    /// (issuer, subject, client_id) of every federated credential of an
    /// enabled client.
    federated: Vec<(String, String, String)>,
    /// (pattern, client_id) of every enabled SPIFFE client.
    spiffe: Vec<(SpiffeIdPattern, String)>,
}

impl AttestedIndex {
    /// The clients listing `(iss, sub)` in their federated credentials.
    pub fn federated_clients(&self, iss: &str, sub: &str) -> Vec<&str> {
        let mut found: Vec<&str> = self
            .federated
            .iter()
            .filter(|(i, s, _)| i == iss && s == sub)
            .map(|(_, _, c)| c.as_str())
            .collect();
        found.dedup();
        found
    }

    /// The client registered for `id`: an exact `spiffe_id` first, else the
    /// longest `/*` prefix that matches; `None` when two clients match
    /// equally (ambiguous registrations select nobody).
    pub fn spiffe_client(&self, id: &SpiffeId) -> Option<&str> {
        let specificity = |pattern: &SpiffeIdPattern| match pattern {
            SpiffeIdPattern::Exact(_) => usize::MAX,
            SpiffeIdPattern::Below(prefix) => prefix.as_str().len(),
        };
        let mut best: Option<(usize, &str)> = None;
        let mut tie = false;
        for (pattern, client_id) in &self.spiffe {
            if !pattern.matches(id) {
                continue;
            }
            let rank = specificity(pattern);
            match best {
                Some((b, _)) if rank < b => {}
                Some((b, _)) if rank == b => tie = true,
                _ => {
                    best = Some((rank, client_id));
                    tie = false;
                }
            }
        }
        if tie {
            return None;
        }
        best.map(|(_, c)| c)
    }
}

pub(crate) struct AttestedClients {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// `ClientDirectory::changes`: this replica's client writes.
    changes: Arc<AtomicU64>,
    /// The index, when it was built and the count of writes it saw.
    current: Mutex<Option<(i64, u64, Arc<AttestedIndex>)>>,
}

impl AttestedClients {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, changes: Arc<AtomicU64>) -> Self {
        AttestedClients {
            store,
            clock,
            changes,
            current: Mutex::new(None),
        }
    }

    /// The index, rebuilt if older than [`INDEX_TTL_MS`] or if a client
    /// was written on this replica since it was built.
    pub async fn index(&self) -> Result<Arc<AttestedIndex>, ServiceError> {
        let now = self.clock.now_ms();
        let mut current = self.current.lock().await;
        // Read before listing: a write that lands during the listing
        // makes the next call rebuild.
        let changes = self.changes.load(Ordering::SeqCst);
        if let Some((built, seen, index)) = current.as_ref() {
            if now.saturating_sub(*built) < INDEX_TTL_MS && *seen == changes {
                return Ok(index.clone());
            }
        }
        let mut index = AttestedIndex::default();
        for record in self.store.list_clients().await.map_err(internal)? {
            if record.disabled_at.is_some() {
                continue;
            }
            let Ok(metadata) = decode_metadata(&record) else {
                continue;
            };
            for credential in &metadata.attestation.federated_credentials {
                index.federated.push((
                    credential.issuer.clone(),
                    credential.subject.clone(),
                    record.client_id.clone(),
                ));
            }
            if let Some(pattern) = metadata.attestation.spiffe_pattern() {
                index.spiffe.push((pattern, record.client_id.clone()));
            }
        }
        let index = Arc::new(index);
        *current = Some((now, changes, index.clone()));
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(patterns: &[(&str, &str)]) -> AttestedIndex {
        AttestedIndex {
            federated: vec![
                ("https://k8s".into(), "sa".into(), "c1".into()),
                ("https://k8s".into(), "sa".into(), "c2".into()),
                ("https://gh".into(), "sa".into(), "c3".into()),
            ],
            spiffe: patterns
                .iter()
                .map(|(p, c)| (SpiffeIdPattern::parse(p).unwrap(), (*c).to_owned()))
                .collect(),
        }
    }

    fn id(text: &str) -> SpiffeId {
        SpiffeId::parse(text).unwrap()
    }

    #[test]
    fn federated_lookup_is_by_issuer_and_subject() {
        let index = index(&[]);
        assert_eq!(
            index.federated_clients("https://k8s", "sa"),
            vec!["c1", "c2"]
        );
        assert_eq!(index.federated_clients("https://gh", "sa"), vec!["c3"]);
        assert!(index.federated_clients("https://k8s", "other").is_empty());
    }

    #[test]
    fn the_most_specific_spiffe_registration_wins_and_ties_select_nobody() {
        let index = index(&[
            ("spiffe://example.org/ns/*", "broad"),
            ("spiffe://example.org/ns/prod/*", "prod"),
            ("spiffe://example.org/ns/prod/api", "api"),
        ]);
        assert_eq!(
            index.spiffe_client(&id("spiffe://example.org/ns/prod/api")),
            Some("api")
        );
        assert_eq!(
            index.spiffe_client(&id("spiffe://example.org/ns/prod/web")),
            Some("prod")
        );
        assert_eq!(
            index.spiffe_client(&id("spiffe://example.org/ns/dev/web")),
            Some("broad")
        );
        assert_eq!(
            index.spiffe_client(&id("spiffe://other.org/ns/prod/api")),
            None
        );
        let tied = super::tests::index(&[
            ("spiffe://example.org/a", "one"),
            ("spiffe://example.org/a", "two"),
        ]);
        assert_eq!(tied.spiffe_client(&id("spiffe://example.org/a")), None);
    }
}
