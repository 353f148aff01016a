//! Use cases. Each one is its own struct naming exactly the dependencies
//! it needs, and each public method loads what it needs, decides with the
//! pure `protocol` crate, persists, and records an audit event:
//!
//! - [`TokenEndpoint`] (`token`): authenticate → grant table → sign → audit;
//! - [`TokenState`] (`token_state`): introspection and revocation;
//! - [`Registration`] (`registration`): RFC 7591 and RFC 7592;
//! - [`Admin`] (`admin`): the admin API.
//!
//! [`Service`] composes them (and runs maintenance); it is what the HTTP
//! edge holds. No HTTP here: callers pass typed requests ([`FormParams`],
//! [`ClientProof`], [`RequestContext`]) and get plain values or a
//! [`ServiceError`] back.
//!
//! [`FormParams`]: custos_protocol::form::FormParams

pub mod admin;
mod attested_clients;
pub mod audit;
pub mod authorize;
mod brake;
pub mod client_auth;
mod client_cache;
pub mod client_documents;
mod clients;
pub mod clock;
pub mod crypto;
pub mod detail_types;
pub mod dpop;
pub mod error;
mod federation;
mod grant;
mod guard;
pub mod keyring;
pub mod policy;
pub mod refresh_token_value;
pub mod refusals;
pub mod registration;
pub mod request;
pub mod signing_keys;
pub mod token;
pub mod token_state;
pub mod trusted_issuers;

pub use admin::Admin;
pub use authorize::AuthorizationEndpoint;
pub use client_auth::{ClientCaRoots, JwksFetcher, NoClientCa, NoJwksFetching};
pub use custos_protocol::client_auth::Secret;
pub use error::ServiceError;
pub use registration::Registration;
pub use request::{ClientProof, RequestContext};
pub use token::TokenEndpoint;
pub use token_state::TokenState;
pub use trusted_issuers::{IssuerKeySource, NoIssuerFetching, TrustedIssuers};

use audit::{AuditSink, AuditWriter, Auditor};
use client_auth::{AssertionSettings, Authenticator};
use clients::ClientDirectory;
use clock::Clock;
use crypto::MasterKey;
use custos_governance::{event_type, Outcome};
use custos_protocol::discovery::{authorization_server_metadata, paths, Capabilities};
use custos_protocol::metadata::RegistrationRules;
use custos_protocol::names::{GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN};
use custos_store::Store;
use error::internal;
use grant::GrantTable;
use guard::BearerGuard;
use keyring::SigningAlg;
use signing_keys::{KeyStartError, SigningKeys};
use std::sync::Arc;

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
    /// Days audit events are kept; older ones are pruned (0: forever).
    pub audit_retention_days: u32,
    /// DPoP proofs must carry a server nonce (RFC 9449 §8).
    pub dpop_require_nonce: bool,
    /// Every authorization request must be pushed (RFC 9126 §5).
    pub require_par: bool,
    /// Mutual TLS (RFC 8705): the server asks for client certificates, so
    /// certificate-bound tokens and the mTLS methods are offered.
    pub mtls: Option<MtlsConfig>,
    /// Where trusted issuers' keys and bundles are fetched from; `None`:
    /// nothing is fetched, only inline keys and bundles work.
    pub issuer_keys: Option<IssuerKeys>,
    /// Policy records `(id, Cedar text)` read from CUSTOS_POLICIES, after
    /// the default set.
    pub policy_files: Vec<(String, String)>,
    /// The longest delegation (`act`) chain: token exchange refuses longer
    /// ones and the default policy `default.max-delegation-depth` forbids
    /// them.
    pub max_delegation_depth: u32,
    /// Keep the default policy `default.permit-registered`; without it only
    /// the operator's `permit` policies allow anything.
    pub policy_default_permit: bool,
    /// Client ID Metadata Documents: how they are fetched and which hosts
    /// may serve them; `None`: `https://` client ids are unknown clients.
    pub client_documents: Option<ClientDocumentsConfig>,
}

/// How client ID metadata documents are fetched, and from which hosts.
#[derive(Clone)]
pub struct ClientDocumentsConfig {
    pub fetcher: Arc<dyn client_documents::DocumentFetcher>,
    pub hosts: custos_protocol::cimd::HostRules,
}

impl std::fmt::Debug for ClientDocumentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDocumentsConfig")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// The fetcher of trusted issuers' keys (see [`trusted_issuers`]).
#[derive(Clone)]
pub struct IssuerKeys(pub Arc<dyn IssuerKeySource>);

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IssuerKeys")
    }
}

/// Mutual TLS, when the server asks for client certificates.
#[derive(Clone)]
pub struct MtlsConfig {
    /// The client CAs `tls_client_auth` chains must validate to.
    pub client_ca: Arc<dyn ClientCaRoots>,
}

impl std::fmt::Debug for MtlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MtlsConfig")
            .field("client_ca_certificates", &self.client_ca.current().len())
            .finish()
    }
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
            audit_retention_days: 90,
            dpop_require_nonce: false,
            require_par: false,
            mtls: None,
            issuer_keys: None,
            policy_files: Vec::new(),
            max_delegation_depth: custos_policy::DEFAULT_MAX_DELEGATION_DEPTH,
            policy_default_permit: true,
            client_documents: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Store(#[from] custos_store::StoreError),
    #[error("{0}")]
    Key(#[from] crypto::KeyError),
    #[error("{0}")]
    Policy(String),
}

impl From<KeyStartError> for StartError {
    fn from(error: KeyStartError) -> Self {
        match error {
            KeyStartError::Store(e) => StartError::Store(e),
            KeyStartError::Key(e) => StartError::Key(e),
        }
    }
}

/// Grant types a client may register that the authorization endpoint,
/// not the token endpoint's table, starts: `authorization_code` is RFC
/// 7591's default `grant_types`, and `refresh_token` comes with it.
const AUTHORIZATION_ENDPOINT_GRANTS: [&str; 2] = [GRANT_AUTHORIZATION_CODE, GRANT_REFRESH_TOKEN];

/// Most rows one audit-retention prune deletes (the next one goes on).
const AUDIT_PRUNE_BATCH: u64 = 100_000;

/// The default policy CUSTOS_POLICY_DEFAULT_PERMIT=false leaves out.
const DEFAULT_PERMIT_POLICY: &str = "default.permit-registered";

/// Every use case, composed; what the HTTP edge holds.
pub struct Service {
    pub authorize: AuthorizationEndpoint,
    pub par: authorize::par::PushedAuthorization,
    pub token: TokenEndpoint,
    pub token_state: TokenState,
    pub registration: Registration,
    pub admin: Admin,
    keys: Arc<SigningKeys>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: Auditor,
    discovery: Arc<serde_json::Value>,
    detail_types: Arc<detail_types::DetailTypes>,
    audit_retention_days: u32,
    issuer: String,
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
        let master = Arc::new(master);
        tokio::task::spawn_blocking(authorize::warm_up);
        let keys = Arc::new(
            SigningKeys::start(
                store.clone(),
                master.clone(),
                config.signing_alg,
                config.key_activation_delay,
                clock.now(),
            )
            .await?,
        );
        let trusted_issuers = Arc::new(TrustedIssuers::new(
            store.clone(),
            config.issuer_keys.as_ref().map_or_else(
                || Arc::new(NoIssuerFetching) as Arc<dyn IssuerKeySource>,
                |k| k.0.clone(),
            ),
        ));
        let policies = policy::Policies::start(
            store.clone(),
            &config.issuer,
            custos_policy::default_records(config.max_delegation_depth)
                .into_iter()
                .filter(|r| config.policy_default_permit || r.id != DEFAULT_PERMIT_POLICY)
                .map(|r| (r.id, r.cedar))
                .collect(),
            config.policy_files.clone(),
        )
        .await
        .map_err(StartError::Policy)?;
        let detail_types = Arc::new(detail_types::DetailTypes::start(store.clone()).await?);
        let (sink, writer) = AuditSink::start(store.clone());
        let audit = Auditor::new(sink);
        let issuer = config.issuer.clone();
        let token_endpoint = format!("{issuer}{}", paths::TOKEN);
        let clients = Arc::new(ClientDirectory::new(
            store.clone(),
            config.client_cache_ttl,
            clock.clone(),
        ));
        let federated = Arc::new(federation::FederatedVerifier::new(
            trusted_issuers.clone(),
            store.clone(),
            &issuer,
            &token_endpoint,
            config.clock_leeway,
        ));
        let attested = Arc::new(attested_clients::AttestedClients::new(
            store.clone(),
            clock.clone(),
            clients.changes(),
        ));
        let authenticator = Arc::new(Authenticator::new(
            clients.clone(),
            store.clone(),
            master.clone(),
            jwks_fetcher,
            client_auth::AttestationParts {
                federated: federated.clone(),
                trusted: trusted_issuers.clone(),
                attested: attested.clone(),
                mtls: config.mtls.as_ref().map(|m| m.client_ca.clone()),
            },
            AssertionSettings {
                issuer: issuer.clone(),
                token_endpoint,
                max_lifetime: config.assertion_max_lifetime,
                leeway: config.clock_leeway,
            },
        ));
        let grants = GrantTable::new(
            store.clone(),
            &issuer,
            audit.clone(),
            grant::FederationParts {
                clients: clients.clone(),
                attested,
                verifier: federated.clone(),
            },
            grant::ExchangeParts {
                keys: keys.clone(),
                trusted: trusted_issuers.clone(),
                token_endpoint: format!("{issuer}{}", paths::TOKEN),
                leeway: config.clock_leeway,
                config: custos_protocol::grant::token_exchange::TokenExchangeConfig {
                    max_delegation_depth: config.max_delegation_depth as usize,
                },
            },
            detail_types.clone(),
        );
        let dpop = Arc::new(dpop::DpopChecker::new(
            store.clone(),
            master.clone(),
            config.dpop_require_nonce,
        ));
        let guard = Arc::new(BearerGuard::new(config.admin_token.clone()));

        let grant_types = grants.grant_types();
        let auth_methods = authenticator.supported_methods();
        let advertised_methods: Vec<&str> = auth_methods.iter().map(|m| m.as_str()).collect();
        let discovery = Arc::new(authorization_server_metadata(&Capabilities {
            issuer: &issuer,
            signing_alg: config.signing_alg.as_str(),
            grant_types: &grant_types,
            auth_methods: &advertised_methods,
            require_par: config.require_par,
            mtls: config.mtls.is_some(),
            client_id_metadata_documents: config.client_documents.is_some(),
        }));
        let mut registrable = grant_types.clone();
        for grant in AUTHORIZATION_ENDPOINT_GRANTS {
            if !registrable.contains(&grant) {
                registrable.push(grant);
            }
        }
        let rules = RegistrationRules {
            allow_private_jwks_uri: config.allow_private_jwks_uri,
            grant_types: registrable,
            auth_methods,
        };
        if let Some(documents) = &config.client_documents {
            clients.accept_documents(Arc::new(client_documents::ClientDocuments::new(
                documents.fetcher.clone(),
                client_documents::DocumentSettings {
                    hosts: documents.hosts.clone(),
                    development: config.allow_private_jwks_uri,
                },
                &rules,
            )));
        }

        let service = Service {
            authorize: AuthorizationEndpoint::new(
                issuer.clone(),
                clients.clone(),
                store.clone(),
                master.clone(),
                audit.clone(),
                authorize::AuthorizeRules {
                    require_par: config.require_par,
                    policies: policies.clone(),
                    detail_types: detail_types.clone(),
                },
            ),
            par: authorize::par::PushedAuthorization::new(
                authenticator.clone(),
                master.clone(),
                dpop.clone(),
                audit.clone(),
                detail_types.clone(),
            ),
            token: TokenEndpoint::new(
                issuer.clone(),
                authenticator.clone(),
                grants,
                dpop,
                keys.clone(),
                audit.clone(),
                policies.clone(),
            ),
            token_state: TokenState::new(
                issuer.clone(),
                authenticator,
                store.clone(),
                keys.clone(),
                audit.clone(),
            ),
            registration: Registration::new(
                issuer.clone(),
                clients.clone(),
                store.clone(),
                master.clone(),
                guard.clone(),
                rules,
                audit.clone(),
            ),
            admin: Admin::new(
                store.clone(),
                clients,
                keys.clone(),
                master,
                guard,
                audit.clone(),
                admin::AdminSettings {
                    secret_rotation_grace: config.secret_rotation_grace,
                    trusted_issuers: trusted_issuers.clone(),
                    allow_private_urls: config.allow_private_jwks_uri,
                    policies,
                    detail_types: detail_types.clone(),
                },
            ),
            keys,
            store,
            clock,
            audit,
            discovery,
            detail_types,
            audit_retention_days: config.audit_retention_days,
            issuer,
        };
        Ok((Arc::new(service), writer))
    }

    /// The issuer identifier, without a trailing slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// A request's context: its source and the time, read once.
    pub fn request_context(&self, source_addr: Option<String>) -> RequestContext {
        RequestContext::new(source_addr, self.clock.as_ref())
    }

    /// The RFC 8414 metadata document (what the grant and client
    /// authentication tables serve).
    pub fn discovery_document(&self) -> Arc<serde_json::Value> {
        // RFC 9396 §10: the registered types, as this replica knows them
        // (types registered elsewhere arrive with the next refresh).
        let mut doc = (*self.discovery).clone();
        doc["authorization_details_types_supported"] = self.detail_types.names().into();
        Arc::new(doc)
    }

    /// The published JWK Set.
    pub fn jwks(&self) -> Arc<serde_json::Value> {
        self.keys.jwks()
    }

    /// Re-reads the signing keys (rotations made by other replicas) and
    /// forgets keys whose tokens have all expired; records the summaries of
    /// collapsed refusals whose window ended. Call every few seconds.
    pub async fn refresh(&self) -> Result<(), ServiceError> {
        let now_ms = self.clock.now_ms();
        self.audit.close_refusal_windows(now_ms).await;
        let keys = self.keys.refresh(now_ms.div_euclid(1000)).await;
        // Authorization details types registered by other replicas.
        let types = self.detail_types.reload().await;
        keys.and(types)
    }

    /// Deletes expired replay records, revocations and initial access
    /// tokens, and audit events past the retention (that prune is itself
    /// audited). Call every few minutes.
    pub async fn prune(&self) -> Result<u64, ServiceError> {
        let ctx = self.request_context(None);
        let expired = self
            .store
            .prune_expired(ctx.now())
            .await
            .map_err(internal)?;
        if self.audit_retention_days == 0 {
            return Ok(expired);
        }
        let cutoff_ms = ctx.now_ms - i64::from(self.audit_retention_days) * 86_400_000;
        let pruned = self
            .store
            .prune_audit_events(cutoff_ms, AUDIT_PRUNE_BATCH)
            .await
            .map_err(internal)?;
        if pruned > 0 {
            let mut event = self
                .audit
                .event(event_type::AUDIT_PRUNED, Outcome::Success, &ctx);
            event.reason = Some(format!(
                "deleted {pruned} audit events recorded before {} (retention {} days)",
                cutoff_ms / 1000,
                self.audit_retention_days
            ));
            self.audit.record(event).await;
        }
        Ok(expired + pruned)
    }

    /// Records what is still pending (collapsed refusals) before shutdown.
    pub async fn finish(&self) {
        self.audit.close_refusal_windows(i64::MAX).await;
    }
}
