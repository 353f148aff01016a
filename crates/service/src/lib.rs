//! Use cases: each public method of [`Service`] loads what it needs from the
//! store, decides with the pure `protocol` crate, persists, and records an
//! audit event. No HTTP here: callers pass plain values and get plain values
//! or an `OAuthError` back.

pub mod admin;
pub mod audit;
mod authenticate;
mod client_cache;
pub mod clock;
pub mod crypto;
pub mod keyring;
pub mod limiter;
pub mod registration;
pub mod token;
pub mod token_state;

use audit::{AuditSink, AuditWriter};
use clock::Clock;
use crypto::{KeyError, MasterKey};
use custos_governance::{AuditEvent, Outcome};
use custos_protocol::OAuthError;
use custos_store::{Store, StoreError};
use keyring::{KeyRing, SigningAlg};
use std::sync::Arc;

pub use authenticate::{JwksFetcher, NoJwksFetching};
pub use custos_protocol::client_auth::Secret;

/// Settings the service needs, checked by the binary before it gets here.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The issuer identifier, without a trailing slash.
    pub issuer: String,
    pub signing_alg: SigningAlg,
    /// Seconds between publishing a new signing key and signing with it.
    pub key_activation_delay: i64,
    /// Bearer token for the admin API; also accepted as an initial access token.
    pub admin_token: Option<Secret>,
    /// Seconds a rotated-out client secret keeps working.
    pub secret_rotation_grace: i64,
    /// Longest accepted remaining lifetime of a client assertion, seconds.
    pub assertion_max_lifetime: i64,
    /// Clock skew tolerated on assertion times, seconds.
    pub clock_leeway: i64,
    /// Accept `jwks_uri`s on loopback or private addresses (insecure:
    /// development and tests only).
    pub allow_private_jwks_uri: bool,
    /// How long a client read from the store may be reused (zero: never).
    pub client_cache_ttl: std::time::Duration,
}

impl ServiceConfig {
    pub fn new(issuer: impl Into<String>) -> Self {
        ServiceConfig {
            issuer: issuer.into(),
            signing_alg: SigningAlg::Es256,
            key_activation_delay: 90,
            admin_token: None,
            secret_rotation_grace: 86_400,
            assertion_max_lifetime: 3_600,
            clock_leeway: 30,
            allow_private_jwks_uri: false,
            client_cache_ttl: std::time::Duration::from_secs(2),
        }
    }
}

/// Who is calling, as far as the transport knows.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub source_addr: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Key(#[from] KeyError),
}

pub struct Service {
    store: Arc<dyn Store>,
    config: ServiceConfig,
    master: MasterKey,
    keys: KeyRing,
    audit: AuditSink,
    clock: Arc<dyn Clock>,
    jwks_fetcher: Arc<dyn JwksFetcher>,
    failures: limiter::FailureLimiter,
    clients: client_cache::ClientCache,
    /// The token endpoint URL, an accepted client assertion audience.
    token_endpoint: String,
}

impl Service {
    /// Loads (on first start: creates) the signing keys and starts the audit
    /// writer. Drop every `Arc<Service>`, then `finish` the writer, to shut
    /// down without losing events.
    pub async fn start(
        store: Arc<dyn Store>,
        config: ServiceConfig,
        master: MasterKey,
        clock: Arc<dyn Clock>,
        jwks_fetcher: Arc<dyn JwksFetcher>,
    ) -> Result<(Arc<Service>, AuditWriter), StartError> {
        let now = clock.now();
        if store.list_signing_keys().await?.is_empty() {
            let first = keyring::generate_key(config.signing_alg, &master, now, now)?;
            store.insert_first_signing_key(&first).await?;
        }
        let keys = KeyRing::empty();
        keys.load(&store.list_signing_keys().await?, &master, now)?;
        let (audit, writer) = AuditSink::start(store.clone());
        let token_endpoint = format!(
            "{}{}",
            config.issuer,
            custos_protocol::discovery::paths::TOKEN
        );
        let clients = client_cache::ClientCache::new(config.client_cache_ttl);
        let service = Service {
            store,
            config,
            master,
            keys,
            audit,
            clock,
            jwks_fetcher,
            failures: limiter::FailureLimiter::default(),
            clients,
            token_endpoint,
        };
        Ok((Arc::new(service), writer))
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The RFC 8414 metadata document.
    pub fn discovery_document(&self) -> serde_json::Value {
        custos_protocol::discovery::authorization_server_metadata(
            &self.config.issuer,
            self.config.signing_alg.as_str(),
        )
    }

    /// The published JWK Set.
    pub fn jwks(&self) -> Arc<serde_json::Value> {
        self.keys.jwks()
    }

    /// Re-reads the signing keys (rotations made by other replicas) and
    /// forgets keys whose tokens have all expired. Call periodically.
    pub async fn refresh_keys(&self) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let mut records = self.store.list_signing_keys().await.map_err(internal)?;
        let unpublished = |k: &custos_store::SigningKeyRecord| {
            k.retired_at
                .is_some_and(|r| r + keyring::MAX_TOKEN_LIFETIME <= now)
        };
        // A write only when there is something to delete: this runs every
        // few seconds on every replica.
        if records.iter().any(unpublished) {
            self.store
                .delete_expired_signing_keys(now, keyring::MAX_TOKEN_LIFETIME)
                .await
                .map_err(internal)?;
            records.retain(|k| !unpublished(k));
        }
        self.keys
            .load(&records, &self.master, now)
            .map_err(internal)
    }

    /// Deletes expired replay records, revocations and initial access tokens.
    pub async fn prune(&self) -> Result<u64, OAuthError> {
        self.store
            .prune_expired(self.clock.now())
            .await
            .map_err(internal)
    }

    async fn record(&self, event: AuditEvent) {
        self.audit.record(event).await;
    }

    fn event(&self, event_type: &str, outcome: Outcome, ctx: &RequestContext) -> AuditEvent {
        let mut event = AuditEvent::new(event_type, self.clock.now_ms(), outcome);
        event.source_addr = ctx.source_addr.clone();
        event
    }
}

impl Service {
    /// Writes a client and forgets this replica's cached copy.
    pub(crate) async fn update_client(
        &self,
        record: &custos_store::ClientRecord,
    ) -> Result<bool, custos_store::StoreError> {
        let result = self.store.update_client(record).await;
        self.clients.invalidate(&record.client_id);
        result
    }

    /// Checks a guessable bearer credential under the brute-force brake:
    /// refused outright while `ctx`'s source is braked; a failed `check`
    /// counts against it and, given a `refusal` event type, is audited.
    pub(crate) async fn braked<T>(
        &self,
        ctx: &RequestContext,
        refusal: Option<&str>,
        check: impl std::future::Future<Output = Result<T, OAuthError>>,
    ) -> Result<T, OAuthError> {
        let source = ctx.source_addr.as_deref().unwrap_or("unknown");
        let now = self.clock.now();
        if let Some(seconds) = self.failures.retry_after(source, now) {
            return Err(OAuthError::new(
                custos_protocol::ErrorCode::TemporarilyUnavailable,
                format!("too many failed attempts from this address; retry in {seconds} s"),
            ));
        }
        let result = check.await;
        if let Err(error) = &result {
            if error.code == custos_protocol::ErrorCode::InvalidToken {
                self.failures.record_failure(source, now);
                if let Some(refusal) = refusal {
                    let mut event = self.event(refusal, Outcome::Failure, ctx);
                    event.reason = Some(error.to_string());
                    self.record(event).await;
                }
            }
        }
        result
    }
}

/// Logs an internal failure and answers `server_error` without details.
pub(crate) fn internal(error: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %error, "internal error");
    OAuthError::server_error("the server could not complete the request")
}
