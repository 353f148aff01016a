//! [`VerifierBuilder`]: a verifier's configuration.

use super::{Inner, Verifier};
use crate::challenge::ChallengeParams;
use crate::clock::{Clock, SystemClock};
use crate::dpop::{MemoryReplayStore, ReplayStore};
use crate::jose::{self, Algorithm};
use crate::jwks::JwksSource;
use crate::keys::KeyCache;
use crate::metadata::ProtectedResourceMetadata;
use std::sync::Arc;
use std::time::Duration;

/// Whether tokens must be DPoP-bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DpopPolicy {
    /// Bearer tokens and DPoP-bound tokens (with a proof) are accepted; a
    /// DPoP-bound token sent as Bearer is refused either way.
    #[default]
    Allowed,
    /// Only DPoP-bound tokens with a proof (RFC 9449 §7.1); advertised as
    /// `dpop_bound_access_tokens_required` in the metadata.
    Required,
}

/// A verifier that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The issuer is empty.
    #[error("the issuer must not be empty")]
    Issuer,
    /// The resource (audience) is empty.
    #[error("the resource (audience) must not be empty")]
    Resource,
    /// No algorithm is allowed for tokens or for DPoP proofs.
    #[error("at least one signature algorithm must be allowed")]
    Algorithms,
    /// The public URL is not an absolute http(s) origin.
    #[error("the public URL must be an absolute https (or http) URL: {0}")]
    PublicUrl(String),
    /// No key source given and none could be made (without the
    /// `http-jwks` feature, `jwks` must be set).
    #[error("no JWKS source: {0}")]
    Jwks(String),
}

type MetadataEdit = Box<dyn FnOnce(&mut ProtectedResourceMetadata) + Send>;

/// Configures a [`Verifier`]; made by [`Verifier::builder`].
pub struct VerifierBuilder {
    issuer: String,
    audiences: Vec<String>,
    jwks: Option<Arc<dyn JwksSource>>,
    algorithms: Vec<Algorithm>,
    dpop_algorithms: Vec<Algorithm>,
    required_scopes: Vec<String>,
    dpop: DpopPolicy,
    leeway: Duration,
    dpop_max_age: Duration,
    max_token_len: usize,
    replay: Option<Arc<dyn ReplayStore>>,
    clock: Arc<dyn Clock>,
    realm: Option<String>,
    resource_metadata_url: Option<String>,
    public_url: Option<String>,
    refresh_interval: Duration,
    max_key_age: Duration,
    metadata_edits: Vec<MetadataEdit>,
}

impl VerifierBuilder {
    pub(super) fn new(issuer: String, resource: String) -> Self {
        VerifierBuilder {
            issuer,
            audiences: vec![resource],
            jwks: None,
            algorithms: Algorithm::ALL.to_vec(),
            dpop_algorithms: Algorithm::ALL.to_vec(),
            required_scopes: Vec::new(),
            dpop: DpopPolicy::Allowed,
            leeway: Duration::from_secs(60),
            dpop_max_age: Duration::from_secs(60),
            max_token_len: 16 * 1024,
            replay: None,
            clock: Arc::new(SystemClock),
            realm: None,
            resource_metadata_url: None,
            public_url: None,
            refresh_interval: Duration::from_secs(30),
            max_key_age: Duration::from_secs(300),
            metadata_edits: Vec::new(),
        }
    }

    /// Also accepts tokens whose `aud` names `audience` (e.g. an older
    /// URL of the same resource).
    pub fn also_accept_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Where the issuer's keys come from. By default (feature
    /// `http-jwks`) [`HttpJwks::discover`](crate::HttpJwks::discover) of the
    /// issuer.
    pub fn jwks(mut self, source: impl JwksSource) -> Self {
        self.jwks = Some(Arc::new(source));
        self
    }

    /// Algorithms accepted for access tokens (default: all of
    /// [`Algorithm::ALL`]; custos signs with ES256 unless set otherwise).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Algorithms accepted for DPoP proofs (default: all of
    /// [`Algorithm::ALL`]), advertised in the `DPoP` challenge and the
    /// metadata.
    pub fn dpop_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.dpop_algorithms = algorithms.into_iter().collect();
        self
    }

    /// Scopes every request needs (all of them). Routes can ask for more
    /// with [`Verifier::verify_with_scopes`] or
    /// [`RequireToken::scopes`](crate::axum::RequireToken::scopes).
    pub fn required_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.required_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Whether tokens must be DPoP-bound (default [`DpopPolicy::Allowed`]).
    pub fn dpop(mut self, policy: DpopPolicy) -> Self {
        self.dpop = policy;
        self
    }

    /// Clock skew tolerated on `exp`, `nbf`, `iat` and a proof's `iat` in
    /// the future (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// How old a DPoP proof may be (default 60 s): also how long its `jti`
    /// is remembered.
    pub fn dpop_proof_max_age(mut self, max_age: Duration) -> Self {
        self.dpop_max_age = max_age;
        self
    }

    /// Longest token accepted, bytes (default 16 KiB).
    pub fn max_token_length(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Where used DPoP proofs are remembered (default a
    /// [`MemoryReplayStore`] of 100 000 entries).
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }

    /// The clock (default the system clock); see [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// A `realm` for the challenges.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// The URL of the protected resource metadata named in challenges
    /// (default: the RFC 9728 well-known URL of the resource).
    pub fn resource_metadata_url(mut self, url: impl Into<String>) -> Self {
        self.resource_metadata_url = Some(url.into());
        self
    }

    /// The origin clients reach this server at (e.g.
    /// `https://mcp.example.com`), for the DPoP `htu` of requests the
    /// axum layer sees (default: the origin of the resource).
    pub fn public_url(mut self, origin: impl Into<String>) -> Self {
        self.public_url = Some(origin.into());
        self
    }

    /// Least time between two fetches of the key set when tokens name
    /// unknown keys (default 30 s): however many made-up `kid`s arrive, the
    /// issuer sees at most one request per interval.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Age after which the key set is fetched again, so removed keys stop
    /// verifying (default 5 minutes).
    pub fn jwks_max_age(mut self, age: Duration) -> Self {
        self.max_key_age = age;
        self
    }

    /// Edits the protected resource metadata the verifier derives from its
    /// configuration (e.g. to set `resource_name` or `scopes_supported`).
    pub fn metadata(
        mut self,
        edit: impl FnOnce(&mut ProtectedResourceMetadata) + Send + 'static,
    ) -> Self {
        self.metadata_edits.push(Box::new(edit));
        self
    }

    /// The verifier.
    pub fn build(self) -> Result<Verifier, BuildError> {
        if self.issuer.is_empty() {
            return Err(BuildError::Issuer);
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(BuildError::Resource);
        }
        if self.algorithms.is_empty() || self.dpop_algorithms.is_empty() {
            return Err(BuildError::Algorithms);
        }
        let jwks = match self.jwks {
            Some(source) => source,
            None => default_jwks(&self.issuer)?,
        };
        let resource = self.audiences[0].clone();
        let origin = match &self.public_url {
            Some(url) => Some(origin_of(url).ok_or_else(|| BuildError::PublicUrl(url.clone()))?),
            None => origin_of(&resource),
        };
        let mut metadata = ProtectedResourceMetadata {
            resource: resource.clone(),
            authorization_servers: vec![self.issuer.clone()],
            scopes_supported: self.required_scopes.clone(),
            bearer_methods_supported: vec!["header".into()],
            dpop_signing_alg_values_supported: self
                .dpop_algorithms
                .iter()
                .map(|alg| alg.name().to_owned())
                .collect(),
            dpop_bound_access_tokens_required: Some(self.dpop == DpopPolicy::Required),
            ..Default::default()
        };
        for edit in self.metadata_edits {
            edit(&mut metadata);
        }
        let params = Arc::new(ChallengeParams {
            realm: self.realm,
            resource_metadata: self.resource_metadata_url.or_else(|| metadata.url()),
            dpop_algs: jose::names(&self.dpop_algorithms),
            bearer: self.dpop == DpopPolicy::Allowed,
        });
        let seconds = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let keys = KeyCache::new(
            jwks,
            self.algorithms.clone(),
            Arc::clone(&self.clock),
            seconds(self.refresh_interval),
            seconds(self.max_key_age),
        );
        Ok(Verifier(Arc::new(Inner {
            issuer: self.issuer,
            audiences: self.audiences,
            keys,
            algorithms: self.algorithms,
            dpop_algorithms: self.dpop_algorithms,
            required_scopes: self.required_scopes,
            dpop: self.dpop,
            leeway: seconds(self.leeway),
            dpop_max_age: seconds(self.dpop_max_age),
            max_token_len: self.max_token_len,
            replay: self
                .replay
                .unwrap_or_else(|| Arc::new(MemoryReplayStore::default())),
            clock: self.clock,
            params,
            origin,
            metadata,
        })))
    }
}

#[cfg(feature = "http-jwks")]
fn default_jwks(issuer: &str) -> Result<Arc<dyn JwksSource>, BuildError> {
    crate::HttpJwks::discover(issuer)
        .map(|source| Arc::new(source) as Arc<dyn JwksSource>)
        .map_err(|error| BuildError::Jwks(error.to_string()))
}

#[cfg(not(feature = "http-jwks"))]
fn default_jwks(_issuer: &str) -> Result<Arc<dyn JwksSource>, BuildError> {
    Err(BuildError::Jwks(
        "set one with VerifierBuilder::jwks (the http-jwks feature is off)".into(),
    ))
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    (matches!(url.scheme(), "https" | "http") && url.has_host())
        .then(|| url.origin().ascii_serialization())
}
