//! Request-time policy (CONTRACT.md "Request-time policy (Cedar)"): the
//! compiled policy set every issuance asks, kept current on every replica.
//!
//! The set is the built-in records (the default set, then any loaded from
//! files at start) followed by the records added through the admin API.
//! A replica re-reads the stored records when the store's policy
//! generation moves: it checks every [`POLICY_REFRESH`], and at once after
//! its own changes, so a change applies on every replica within
//! [`POLICY_PROPAGATION_BOUND`]. Deciding is pure (`custos_policy`) and
//! reads the current set without waiting for anything.

use crate::error::{internal, ServiceError};
use custos_policy::{ContextFacts, Decision, PolicySet, ResourceFacts};
use custos_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// How often a replica checks the store for policy changes.
pub const POLICY_REFRESH: Duration = Duration::from_secs(1);
/// A change made on one replica applies on every other within this (one
/// check interval, plus reading and compiling the set).
pub const POLICY_PROPAGATION_BOUND: Duration = Duration::from_secs(2);
/// Most records the admin API accepts.
pub const MAX_STORED_POLICIES: usize = 10_000;
/// Resource tags are cached this long (resources cannot be changed once
/// registered; the cache only bounds how long a lookup is remembered).
const RESOURCE_TAGS_TTL: Duration = Duration::from_secs(30);
const RESOURCE_TAGS_CAPACITY: u64 = 10_000;

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// Shipped with custos.
    Default,
    /// Read from CUSTOS_POLICIES at start.
    File,
    /// Added through `POST /admin/policies`.
    Api,
}

impl PolicySource {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicySource::Default => "default",
            PolicySource::File => "file",
            PolicySource::Api => "api",
        }
    }
}

/// A record of the current set.
#[derive(Debug, Clone)]
pub struct LoadedRecord {
    pub id: String,
    pub cedar: String,
    pub source: PolicySource,
    /// When it was added (API records; 0 for the others).
    pub created_at: i64,
}

/// The set in force and what it was built from.
pub struct LoadedPolicies {
    /// The store's policy generation the stored records were read at.
    pub generation: i64,
    pub records: Vec<LoadedRecord>,
    pub set: PolicySet,
    /// Decisions of this set, by their request. A Cedar decision depends
    /// on nothing but the set and the request (the schema has no time or
    /// other ambient input), so a remembered one is exact; building the
    /// Cedar request and evaluating cost a client credentials request a
    /// third of its CPU (BENCHMARKS.md). A new set starts empty.
    decisions: moka::sync::Cache<String, Arc<Decision>>,
}

/// Decisions remembered per policy set, at most.
const DECISION_CACHE_CAPACITY: u64 = 16_384;

impl LoadedPolicies {
    fn new(generation: i64, records: Vec<LoadedRecord>, set: PolicySet) -> Self {
        LoadedPolicies {
            generation,
            records,
            set,
            decisions: moka::sync::Cache::new(DECISION_CACHE_CAPACITY),
        }
    }
}

pub struct Policies {
    store: Arc<dyn Store>,
    builtin: Vec<LoadedRecord>,
    current: RwLock<Arc<LoadedPolicies>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    resource_tags: moka::future::Cache<String, Arc<Vec<String>>>,
    issuer: String,
}

impl Policies {
    /// Compiles the built-in records (`defaults`, then `files`) and the
    /// stored ones. Built-in records that do not compile are a start-up
    /// error naming the record; a stored record that no longer compiles
    /// (written by another version) is replaced by a policy that forbids
    /// everything, so it fails closed, and logged.
    pub async fn start(
        store: Arc<dyn Store>,
        issuer: &str,
        defaults: Vec<(String, String)>,
        files: Vec<(String, String)>,
    ) -> Result<Arc<Policies>, String> {
        let builtin: Vec<LoadedRecord> = defaults
            .into_iter()
            .map(|r| (r, PolicySource::Default))
            .chain(files.into_iter().map(|r| (r, PolicySource::File)))
            .map(|((id, cedar), source)| LoadedRecord {
                id,
                cedar,
                source,
                created_at: 0,
            })
            .collect();
        let set = PolicySet::compile(builtin.iter().map(|r| (r.id.as_str(), r.cedar.as_str())))
            .map_err(|e| format!("CUSTOS_POLICIES: {e}"))?;
        let policies = Arc::new(Policies {
            store,
            current: RwLock::new(Arc::new(LoadedPolicies::new(-1, builtin.clone(), set))),
            builtin,
            reloading: tokio::sync::Mutex::new(()),
            resource_tags: moka::future::Cache::builder()
                .max_capacity(RESOURCE_TAGS_CAPACITY)
                .time_to_live(RESOURCE_TAGS_TTL)
                .build(),
            issuer: issuer.to_owned(),
        });
        policies
            .reload()
            .await
            .map_err(|e| format!("cannot load the stored policies: {e}"))?;
        tokio::spawn(refresh(Arc::downgrade(&policies)));
        Ok(policies)
    }

    /// The set in force.
    pub fn current(&self) -> Arc<LoadedPolicies> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn is_builtin(&self, id: &str) -> Option<PolicySource> {
        self.builtin.iter().find(|r| r.id == id).map(|r| r.source)
    }

    /// Re-reads the stored records if the store's generation moved.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let _one = self.reloading.lock().await;
        let generation = self.store.policy_generation().await.map_err(internal)?;
        if generation == self.current().generation {
            return Ok(());
        }
        let stored = self.store.list_policies().await.map_err(internal)?;
        let mut records = self.builtin.clone();
        records.extend(stored.into_iter().map(|r| LoadedRecord {
            id: r.id,
            cedar: r.cedar,
            source: PolicySource::Api,
            created_at: r.created_at,
        }));
        let set = compile_failing_closed(&records);
        let loaded = Arc::new(LoadedPolicies::new(generation, records, set));
        match self.current.write() {
            Ok(mut current) => *current = loaded,
            Err(poisoned) => *poisoned.into_inner() = loaded,
        }
        Ok(())
    }

    /// The set the current records plus `extra` would make, or why not.
    pub fn compile_with(
        &self,
        extra: (&str, &str),
    ) -> Result<PolicySet, custos_policy::PolicyError> {
        let current = self.current();
        PolicySet::compile(
            current
                .records
                .iter()
                .map(|r| (r.id.as_str(), r.cedar.as_str()))
                .chain(std::iter::once(extra)),
        )
    }

    /// What policies see of the resource `uri`: its registered tags.
    pub async fn resource(&self, uri: &str) -> Result<ResourceFacts, ServiceError> {
        if uri == self.issuer {
            return Ok(ResourceFacts {
                uri: uri.to_owned(),
                tags: Vec::new(),
            });
        }
        let store = self.store.clone();
        let key = uri.to_owned();
        let tags = self
            .resource_tags
            .try_get_with(key.clone(), async move {
                store
                    .get_resource(&key)
                    .await
                    .map(|r| Arc::new(r.map(|r| r.tags).unwrap_or_default()))
            })
            .await
            .map_err(|e| internal(e.to_string()))?;
        Ok(ResourceFacts {
            uri: uri.to_owned(),
            tags: tags.as_ref().clone(),
        })
    }

    /// What policies see of each resource in `uris` (a token's audience).
    pub async fn resources(&self, uris: &[String]) -> Result<Vec<ResourceFacts>, ServiceError> {
        let mut resources = Vec::with_capacity(uris.len());
        for uri in uris {
            resources.push(self.resource(uri).await?);
        }
        Ok(resources)
    }

    /// Decides every resource of an issuance: allowed only if each is.
    pub fn decide_all(
        &self,
        client: &custos_policy::ClientFacts,
        grant: custos_policy::Grant,
        resources: &[ResourceFacts],
        context: &ContextFacts,
    ) -> Arc<Decision> {
        let current = self.current();
        let key = request_key(client, grant, resources, context);
        if let Some(decision) = current.decisions.get(&key) {
            return decision;
        }
        let decision = Arc::new(decide_uncached(
            &current.set,
            client,
            grant,
            resources,
            context,
        ));
        current.decisions.insert(key, decision.clone());
        decision
    }
}

/// The cache key of a request: every input, each length-prefixed so that
/// no two different requests share a key.
fn request_key(
    client: &custos_policy::ClientFacts,
    grant: custos_policy::Grant,
    resources: &[ResourceFacts],
    context: &ContextFacts,
) -> String {
    use std::fmt::Write as _;
    let mut key = String::with_capacity(256);
    let mut field = |value: &str| {
        // Writing to a String cannot fail.
        let _ = write!(key, "{}:{value}", value.len());
    };
    field(&client.client_id);
    field(&client.auth_method);
    field(if client.uses_static_secret { "s" } else { "-" });
    field(&client.attested_id);
    field(&client.owner);
    field(&client.tags.len().to_string());
    client.tags.iter().for_each(|t| field(t));
    field(grant.as_str());
    field(&resources.len().to_string());
    for resource in resources {
        field(&resource.uri);
        field(&resource.tags.len().to_string());
        resource.tags.iter().for_each(|t| field(t));
    }
    field(&context.scopes.len().to_string());
    context.scopes.iter().for_each(|s| field(s));
    field(if context.sender_constrained { "b" } else { "-" });
    field(&context.delegation_depth.to_string());
    field(&context.actors.len().to_string());
    context.actors.iter().for_each(|a| field(a));
    field(&context.subject);
    key
}

/// Every resource decided by `set`: allowed only if each is.
fn decide_uncached(
    set: &PolicySet,
    client: &custos_policy::ClientFacts,
    grant: custos_policy::Grant,
    resources: &[ResourceFacts],
    context: &ContextFacts,
) -> Decision {
    let mut allowed = Decision {
        allowed: true,
        determining: Vec::new(),
        errors: Vec::new(),
    };
    let mut denied: Option<Decision> = None;
    for resource in resources {
        let decision = set.decide(&custos_policy::Request::new(
            client, grant, resource, context,
        ));
        if decision.allowed {
            merge(&mut allowed, decision);
        } else {
            match &mut denied {
                Some(d) => merge(d, decision),
                None => denied = Some(decision),
            }
        }
    }
    denied.unwrap_or(allowed)
}

/// What policies see of a client: its registration, and how it proved
/// itself this time (`method`, `attested_id`).
pub(crate) fn client_facts(
    client_id: &str,
    method: custos_protocol::metadata::AuthMethod,
    attested_id: Option<&str>,
    metadata: &custos_protocol::metadata::ClientMetadata,
) -> custos_policy::ClientFacts {
    custos_policy::ClientFacts {
        client_id: client_id.to_owned(),
        auth_method: method.as_str().to_owned(),
        uses_static_secret: method.uses_secret(),
        attested_id: attested_id.unwrap_or_default().to_owned(),
        owner: metadata.owner.clone().unwrap_or_default(),
        tags: metadata.tags.clone(),
    }
}

fn merge(into: &mut Decision, from: Decision) {
    for id in from.determining {
        if !into.determining.contains(&id) {
            into.determining.push(id);
        }
    }
    into.determining.sort();
    into.errors.extend(from.errors);
    into.errors.truncate(custos_policy::MAX_DECISION_ERRORS);
}

/// How a decision reads in an audit event: `allow: a, b`, `deny: c` or
/// `deny: no policy permits`.
pub fn audit_note(decision: &Decision) -> String {
    match (decision.allowed, decision.determining.is_empty()) {
        (true, _) => format!("allow: {}", decision.determining.join(", ")),
        (false, false) => format!("deny: {}", decision.determining.join(", ")),
        (false, true) => "deny: no policy permits".to_owned(),
    }
}

/// Compiles `records`; a record that does not compile is replaced by one
/// that forbids everything (`<id>.invalid`), so a broken forbid never
/// opens anything.
fn compile_failing_closed(records: &[LoadedRecord]) -> PolicySet {
    let mut texts: Vec<(String, String)> = Vec::with_capacity(records.len());
    for record in records {
        match custos_policy::check_record(&record.id, &record.cedar) {
            Ok(_) => texts.push((record.id.clone(), record.cedar.clone())),
            Err(error) => {
                tracing::error!(
                    policy = %record.id,
                    %error,
                    "a stored policy does not compile; it is replaced by one that forbids every request until it is deleted"
                );
                // Ids are ASCII; the suffix keeps within the id limit.
                let stem = &record.id[..record.id.len().min(custos_policy::MAX_ID_BYTES - 8)];
                texts.push((
                    format!("{stem}.invalid"),
                    "forbid(principal, action, resource);".to_owned(),
                ));
            }
        }
    }
    PolicySet::compile(texts.iter().map(|(a, b)| (a.as_str(), b.as_str()))).unwrap_or_else(|error| {
        tracing::error!(%error, "the policy set does not compile; every request is denied until it is fixed");
        PolicySet::empty()
    })
}

/// Checks the store for changes every [`POLICY_REFRESH`] until the
/// policies are dropped.
async fn refresh(policies: Weak<Policies>) {
    let mut tick = tokio::time::interval(POLICY_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(policies) = policies.upgrade() else {
            return;
        };
        if let Err(error) = policies.reload().await {
            tracing::warn!(%error, "cannot check for policy changes; the current set stays in force");
        }
    }
}

/// Policy ids that name `client_id` (as a quoted string in their text),
/// per client: what the inventory shows.
pub fn policies_mentioning(
    records: &[LoadedRecord],
    client_ids: &[&str],
) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for client_id in client_ids {
        let quoted = format!(
            "\"{}\"",
            client_id.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let ids: Vec<String> = records
            .iter()
            .filter(|r| r.cedar.contains(&quoted))
            .map(|r| r.id.clone())
            .collect();
        if !ids.is_empty() {
            out.insert((*client_id).to_owned(), ids);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_policy::{ClientFacts, Grant};

    fn client(id: &str, owner: &str) -> ClientFacts {
        ClientFacts {
            client_id: id.into(),
            auth_method: "private_key_jwt".into(),
            owner: owner.into(),
            ..ClientFacts::default()
        }
    }

    #[test]
    fn request_keys_differ_whenever_an_input_does() {
        let context = ContextFacts::default();
        let key = |c: &ClientFacts, r: &[ResourceFacts], x: &ContextFacts| {
            request_key(c, Grant::ClientCredentials, r, x)
        };
        let base = key(&client("ab", "c"), &[], &context);
        // The same characters split differently between fields.
        assert_ne!(base, key(&client("a", "bc"), &[], &context));
        assert_eq!(base, key(&client("ab", "c"), &[], &context));
        let tagged = ClientFacts {
            tags: vec!["x".into()],
            ..client("ab", "c")
        };
        assert_ne!(base, key(&tagged, &[], &context));
        let resource = ResourceFacts {
            uri: "https://r.example/".into(),
            tags: vec![],
        };
        assert_ne!(base, key(&client("ab", "c"), &[resource], &context));
        for changed in [
            ContextFacts {
                scopes: vec!["read".into()],
                ..ContextFacts::default()
            },
            ContextFacts {
                sender_constrained: true,
                ..ContextFacts::default()
            },
            ContextFacts {
                delegation_depth: 1,
                ..ContextFacts::default()
            },
            ContextFacts {
                actors: vec!["agent".into()],
                ..ContextFacts::default()
            },
            ContextFacts {
                subject: "alice".into(),
                ..ContextFacts::default()
            },
        ] {
            assert_ne!(base, key(&client("ab", "c"), &[], &changed));
        }
        assert_ne!(
            base,
            request_key(&client("ab", "c"), Grant::TokenExchange, &[], &context)
        );
    }
}
