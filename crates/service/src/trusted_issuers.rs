//! Trusted issuers of workload identity (CONTRACT.md `POST
//! /admin/trusted-issuers`): OIDC issuers (Kubernetes, CI) and SPIFFE trust
//! domains. The registrations live in the store; each replica reads them
//! through a short cache, so an issuer added or deleted on one replica is
//! seen by every other within [`REGISTRY_TTL`]. Keys and bundles come
//! inline or through an [`IssuerKeySource`] (the binary's bounded HTTP
//! fetcher: https only, public addresses only unless the operator opts in,
//! size, time and rate limits, cached, one fetch however many wait).

use crate::error::{internal, ServiceError};
use async_trait::async_trait;
use custos_protocol::federation::TrustedIssuerConfig;
use custos_protocol::spiffe::{SpiffeBundle, TrustDomain};
use custos_store::{Store, TrustedIssuerRecord};
use jsonwebtoken::jwk::JwkSet;
use moka::future::Cache;
use std::sync::Arc;
use std::time::Duration;

/// How long a replica trusts its copy of an issuer's registration (or its
/// absence).
pub const REGISTRY_TTL: Duration = Duration::from_secs(5);

/// Fetches what trusted issuers publish. Implementations bound every fetch
/// (size, time, rate, addresses) and cache what they fetch.
#[async_trait]
pub trait IssuerKeySource: Send + Sync {
    /// An OIDC issuer's JWK Set: from `jwks_uri` if given, else from the
    /// `jwks_uri` of its discovery document
    /// (`{issuer}/.well-known/openid-configuration`, whose `issuer` must
    /// equal `issuer`). `refresh`: a token named a key not in the cached
    /// set; fetch again unless the last fetch was very recent.
    async fn oidc_keys(
        &self,
        issuer: &str,
        jwks_uri: Option<&str>,
        refresh: bool,
    ) -> Result<JwkSet, String>;

    /// A SPIFFE bundle (the raw JSON of a JWK Set with `spiffe_sequence`
    /// and `spiffe_refresh_hint`) from its bundle endpoint, authenticated
    /// by WebPKI (`https_web`), kept until its refresh hint (bounded).
    /// `refresh` as for [`IssuerKeySource::oidc_keys`].
    async fn spiffe_bundle(&self, endpoint: &str, refresh: bool) -> Result<Vec<u8>, String>;
}

/// For deployments (and tests) that fetch nothing: only inline keys and
/// bundles work.
pub struct NoIssuerFetching;

#[async_trait]
impl IssuerKeySource for NoIssuerFetching {
    async fn oidc_keys(&self, _: &str, _: Option<&str>, _: bool) -> Result<JwkSet, String> {
        Err("fetching issuer keys is disabled".into())
    }
    async fn spiffe_bundle(&self, _: &str, _: bool) -> Result<Vec<u8>, String> {
        Err("fetching SPIFFE bundles is disabled".into())
    }
}

/// The registered trusted issuers, with their keys.
pub struct TrustedIssuers {
    store: Arc<dyn Store>,
    source: Arc<dyn IssuerKeySource>,
    /// name (issuer URL or trust domain) → registration, `None` if none.
    registry: Cache<String, Option<Arc<TrustedIssuerConfig>>>,
    /// trust domain → its bundle, parsed (up to 1,000 keys: not again for
    /// every request that names the domain).
    bundles: Cache<String, Arc<SpiffeBundle>>,
}

impl TrustedIssuers {
    pub fn new(store: Arc<dyn Store>, source: Arc<dyn IssuerKeySource>) -> Self {
        TrustedIssuers {
            store,
            source,
            registry: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(REGISTRY_TTL)
                .build(),
            bundles: Cache::builder()
                .max_capacity(1_000)
                .time_to_live(REGISTRY_TTL)
                .build(),
        }
    }

    /// The registration named `name`, if any. Names come from unverified
    /// tokens: only names of at most 512 bytes are looked up, and unknown
    /// ones are remembered briefly like known ones (bounded).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<TrustedIssuerConfig>>, ServiceError> {
        if name.is_empty() || name.len() > 512 {
            return Ok(None);
        }
        let store = self.store.clone();
        let key = name.to_owned();
        self.registry
            .try_get_with(key.clone(), async move {
                let Some(record) = store.get_trusted_issuer(&key).await? else {
                    return Ok::<_, custos_store::StoreError>(None);
                };
                Ok(decode(&record).map(Arc::new))
            })
            .await
            .map_err(|e| internal(e.to_string()))
    }

    /// Forgets cached registrations (after a change on this replica).
    pub fn invalidate(&self) {
        self.registry.invalidate_all();
        self.bundles.invalidate_all();
    }

    /// The keys to verify `token` of an OIDC issuer with: fetched again once
    /// when the token names a `kid` not among them (the issuer may have
    /// rotated; the fetcher re-fetches at most once per its floor). The
    /// error is the reason to give the caller.
    pub async fn oidc_keys_for(
        &self,
        config: &TrustedIssuerConfig,
        token: &str,
    ) -> Result<Arc<JwkSet>, String> {
        let keys = self.oidc_keys(config, false).await?;
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        if kid.is_some_and(|kid| keys.find(&kid).is_none()) {
            return self.oidc_keys(config, true).await;
        }
        Ok(keys)
    }

    /// The keys of an OIDC issuer; `refresh` after an unknown `kid`. The
    /// error is the reason to give the caller (the details are logged).
    pub async fn oidc_keys(
        &self,
        config: &TrustedIssuerConfig,
        refresh: bool,
    ) -> Result<Arc<JwkSet>, String> {
        match config {
            TrustedIssuerConfig::Oidc {
                jwks: Some(jwks), ..
            } => Ok(Arc::new(jwks.clone())),
            TrustedIssuerConfig::Oidc {
                issuer, jwks_uri, ..
            } => self
                .source
                .oidc_keys(issuer, jwks_uri.as_deref(), refresh)
                .await
                .map(Arc::new)
                .map_err(|e| {
                    tracing::warn!(%issuer, error = %e, "a trusted issuer's keys could not be fetched");
                    "the token's issuer's keys could not be fetched".to_owned()
                }),
            TrustedIssuerConfig::Spiffe { .. } => {
                Err("a SPIFFE trust domain has bundles, not OIDC keys".into())
            }
        }
    }

    /// The bundle of a SPIFFE trust domain, parsed once per
    /// [`REGISTRY_TTL`]; `refresh` after an unknown key or authority (the
    /// source re-fetches at most once per its floor). The error is the
    /// reason to give the caller.
    pub async fn spiffe_bundle(
        &self,
        config: &TrustedIssuerConfig,
        refresh: bool,
    ) -> Result<Arc<SpiffeBundle>, String> {
        let TrustedIssuerConfig::Spiffe { trust_domain, .. } = config else {
            return Err("not a SPIFFE trust domain".into());
        };
        if !refresh {
            if let Some(bundle) = self.bundles.get(trust_domain).await {
                return Ok(bundle);
            }
        }
        let bundle = Arc::new(self.load_bundle(config, refresh).await?);
        self.bundles
            .insert(trust_domain.clone(), bundle.clone())
            .await;
        Ok(bundle)
    }

    async fn load_bundle(
        &self,
        config: &TrustedIssuerConfig,
        refresh: bool,
    ) -> Result<SpiffeBundle, String> {
        let TrustedIssuerConfig::Spiffe {
            trust_domain,
            bundle,
            bundle_endpoint_url,
        } = config
        else {
            return Err("not a SPIFFE trust domain".into());
        };
        let domain = TrustDomain::parse(trust_domain).map_err(|e| e.to_string())?;
        let bytes = match (bundle, bundle_endpoint_url) {
            (Some(inline), _) => serde_json::to_vec(inline).unwrap_or_default(),
            (None, Some(endpoint)) => self
                .source
                .spiffe_bundle(endpoint, refresh)
                .await
                .map_err(|e| {
                    tracing::warn!(%trust_domain, error = %e, "a SPIFFE bundle could not be fetched");
                    "the trust domain's bundle could not be fetched".to_owned()
                })?,
            (None, None) => Vec::new(),
        };
        SpiffeBundle::parse(domain, &bytes).map_err(|e| {
            tracing::warn!(%trust_domain, error = %e, "a SPIFFE bundle is not valid");
            "the trust domain's bundle is not valid".to_owned()
        })
    }
}

/// A stored registration, or `None` (logged) if it no longer parses.
fn decode(record: &TrustedIssuerRecord) -> Option<TrustedIssuerConfig> {
    serde_json::from_str(&record.config_json)
        .map_err(
            |e| tracing::error!(id = %record.id, error = %e, "a stored trusted issuer is corrupt"),
        )
        .ok()
}

/// A stored registration as the admin API shows it: `id`, `kind`,
/// `created_at` and the registration's fields.
pub fn public_view(record: &TrustedIssuerRecord) -> serde_json::Value {
    let mut view = serde_json::from_str::<serde_json::Value>(&record.config_json)
        .unwrap_or_else(|_| serde_json::json!({}));
    if let Some(object) = view.as_object_mut() {
        object.insert("id".into(), record.id.clone().into());
        object.insert("kind".into(), record.kind.clone().into());
        object.insert("created_at".into(), record.created_at.into());
    }
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_view_carries_id_kind_and_fields() {
        let record = TrustedIssuerRecord {
            id: "ti_1".into(),
            kind: "oidc".into(),
            name: "https://k8s.example".into(),
            config_json: r#"{"kind":"oidc","issuer":"https://k8s.example","max_token_lifetime":7200,"single_use":false}"#.into(),
            created_at: 5,
        };
        let view = public_view(&record);
        assert_eq!(view["id"], "ti_1");
        assert_eq!(view["issuer"], "https://k8s.example");
        assert_eq!(view["max_token_lifetime"], 7200);
        assert!(decode(&record).is_some());
        let corrupt = TrustedIssuerRecord {
            config_json: "{".into(),
            ..record
        };
        assert!(decode(&corrupt).is_none());
    }
}
