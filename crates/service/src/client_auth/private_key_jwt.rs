//! `private_key_jwt` (RFC 7523 §2.2, §3): a JWT signed by one of the
//! client's registered keys (`jwks`, or fetched from `jwks_uri`), addressed
//! to this server, short-lived, and used once (its `jti` is recorded in the
//! store, atomically across replicas).

use super::{failed, AssertionSettings, Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::error::{internal, ServiceError};
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::client_auth::{
    assertion_claim, verify_client_assertion, AssertionRules, Claim,
};
use custos_protocol::metadata::AuthMethod;
use custos_protocol::names::CLIENT_ASSERTION_TYPE_JWT_BEARER;
use custos_protocol::OAuthError;
use custos_store::Store;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;

/// The longest client assertion a Client ID Metadata Document client may
/// present, seconds.
const DOCUMENT_CLIENT_ASSERTION_LIFETIME: i64 = 300;

/// Fetches a client's `jwks_uri`. The only network I/O client
/// authentication needs; the binary provides it (bounded and cached).
#[async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The key set at `uri`. `refresh` asks to bypass any cache (a key
    /// was not found, perhaps because the client rotated).
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<JwkSet, String>;
}

/// A fetcher for deployments that allow no outbound requests.
pub struct NoJwksFetching;

#[async_trait]
impl JwksFetcher for NoJwksFetching {
    async fn fetch(&self, _uri: &str, _refresh: bool) -> Result<JwkSet, String> {
        Err("fetching jwks_uri is disabled".into())
    }
}

pub(crate) struct PrivateKeyJwt {
    store: Arc<dyn Store>,
    fetcher: Arc<dyn JwksFetcher>,
    settings: AssertionSettings,
}

impl PrivateKeyJwt {
    pub fn new(
        store: Arc<dyn Store>,
        fetcher: Arc<dyn JwksFetcher>,
        settings: AssertionSettings,
    ) -> Self {
        PrivateKeyJwt {
            store,
            fetcher,
            settings,
        }
    }

    async fn fetch(&self, uri: &str, refresh: bool) -> Result<JwkSet, ServiceError> {
        self.fetcher.fetch(uri, refresh).await.map_err(|e| {
            tracing::warn!(jwks_uri = %uri, error = %e, "fetching a client's jwks_uri failed");
            OAuthError::invalid_client("the client's jwks_uri could not be fetched").into()
        })
    }
}

#[async_trait]
impl ClientAuthMethod for PrivateKeyJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::PrivateKeyJwt
    }

    fn claim(&self, request: &Presented<'_>) -> Result<Option<Claim>, OAuthError> {
        assertion_claim(request.form, CLIENT_ASSERTION_TYPE_JWT_BEARER)
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        claim: &Claim,
        request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let assertion = claim.credential.as_ref().ok_or_else(failed)?.expose();
        let now = ctx.now();
        // The issuer first: the value draft-ietf-oauth-rfc7523bis expects.
        // The endpoint called is accepted as RFC 7523 §3 first allowed.
        let audiences = [
            self.settings.issuer.clone(),
            self.settings.token_endpoint.clone(),
            request.proof.url.clone(),
        ];
        // A client that made itself (by Client ID Metadata Document) keeps
        // its assertions short: each one's `jti` is stored until it
        // expires, and nobody vetted the client.
        let max_lifetime =
            if custos_protocol::cimd::is_document_client_id_or_http(&client.record.client_id) {
                self.settings
                    .max_lifetime
                    .min(DOCUMENT_CLIENT_ASSERTION_LIFETIME)
            } else {
                self.settings.max_lifetime
            };
        let rules = AssertionRules {
            client_id: &client.record.client_id,
            audiences: &audiences,
            now,
            leeway: self.settings.leeway,
            max_lifetime,
        };
        let metadata = &client.metadata;
        let verified = match (&metadata.jwks, &metadata.jwks_uri) {
            (Some(jwks), _) => verify_client_assertion(assertion, jwks, &rules)?,
            (None, Some(uri)) => {
                let keys = self.fetch(uri, false).await?;
                match verify_client_assertion(assertion, &keys, &rules) {
                    Ok(v) => v,
                    Err(_) => {
                        let keys = self.fetch(uri, true).await?;
                        verify_client_assertion(assertion, &keys, &rules)?
                    }
                }
            }
            (None, None) => return Err(failed().into()),
        };
        let namespace = format!("client_assertion:{}", client.record.client_id);
        let first_use = self
            .store
            .record_jti_once(
                &namespace,
                &verified.jti,
                verified.exp + self.settings.leeway,
                now,
            )
            .await
            .map_err(internal)?;
        if !first_use {
            return Err(OAuthError::invalid_client(
                "client_assertion jti has already been used (RFC 7523 §3: single use)",
            )
            .into());
        }
        Ok(Attestation::default())
    }
}
