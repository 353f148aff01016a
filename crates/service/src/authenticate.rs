//! Client authentication: who is calling the token, introspection or
//! revocation endpoint? Each client is held to its registered method.

use crate::client_cache::{Cached, LoadedClient};
use crate::{internal, Service};
use async_trait::async_trait;
use custos_protocol::client_auth::{
    extract_credentials, verify_client_assertion, AssertionRules, ClientCredentials,
};
use custos_protocol::form::FormParams;
use custos_protocol::metadata::{AuthMethod, ClientMetadata};
use custos_protocol::OAuthError;
use custos_store::ClientRecord;
use jsonwebtoken::jwk::JwkSet;
use std::sync::Arc;

/// Fetches a client's `jwks_uri`. The only network I/O client
/// authentication needs; the binary provides it (with caching).
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

/// A client that proved who it is (or, for public clients, said so).
pub(crate) struct AuthenticatedClient {
    loaded: Arc<LoadedClient>,
}

impl AuthenticatedClient {
    pub fn client_id(&self) -> &str {
        &self.loaded.record.client_id
    }
    pub fn metadata(&self) -> &ClientMetadata {
        &self.loaded.metadata
    }
    pub fn is_public(&self) -> bool {
        self.loaded.metadata.token_endpoint_auth_method == AuthMethod::None
    }
}

fn failed() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

impl Service {
    /// Authenticates the client of a request to `endpoint_url`.
    /// `claimed` receives the client_id the request names, for the audit
    /// trail, even when authentication fails.
    pub(crate) async fn authenticate_client(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        endpoint_url: &str,
        claimed: &mut Option<String>,
    ) -> Result<AuthenticatedClient, OAuthError> {
        let credentials = extract_credentials(authorization, form)?
            .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?;
        *claimed = Some(credentials.client_id().to_owned());
        let id = credentials.client_id();
        match self.clients.get(id) {
            Some(Cached::Unknown) => return Err(failed()),
            Some(Cached::Known(cached)) => {
                let checked = self
                    .check_credentials(&cached, &credentials, endpoint_url)
                    .await;
                match checked {
                    Ok(()) => return Ok(AuthenticatedClient { loaded: cached }),
                    // The client may have changed on another replica: if
                    // the entry is not brand new, ask the database before
                    // refusing.
                    Err(error) if !cached.may_be_stale() => return Err(error),
                    Err(_) => {}
                }
            }
            None => {}
        }
        let loaded = self.load_client(id).await?.ok_or_else(failed)?;
        self.check_credentials(&loaded, &credentials, endpoint_url)
            .await?;
        Ok(AuthenticatedClient { loaded })
    }

    /// Reads a client from the store (and caches it if enabled).
    pub(crate) async fn load_client(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<LoadedClient>>, OAuthError> {
        let Some(record) = self.store.get_client(client_id).await.map_err(internal)? else {
            self.clients.put(client_id, None);
            return Ok(None);
        };
        let metadata: ClientMetadata =
            serde_json::from_str(&record.metadata_json).map_err(internal)?;
        let loaded = Arc::new(LoadedClient::new(record, metadata));
        self.clients.put(client_id, Some(&loaded));
        Ok(Some(loaded))
    }

    /// Holds the presented credentials against the client's registration.
    async fn check_credentials(
        &self,
        client: &LoadedClient,
        credentials: &ClientCredentials,
        endpoint_url: &str,
    ) -> Result<(), OAuthError> {
        let (record, metadata) = (&client.record, &client.metadata);
        if record.disabled_at.is_some() {
            return Err(failed());
        }
        let registered = metadata.token_endpoint_auth_method;
        if credentials.method() != registered {
            return Err(OAuthError::invalid_client(format!(
                "this client must authenticate with {}",
                registered.as_str()
            )));
        }
        match credentials {
            ClientCredentials::Basic { secret, .. } | ClientCredentials::Post { secret, .. } => {
                let now = self.clock.now();
                let current = record
                    .secret_hash
                    .as_deref()
                    .is_some_and(|h| self.master.verify_client_secret(secret.expose(), h));
                let previous = record
                    .previous_secret_hash
                    .as_deref()
                    .filter(|_| record.previous_secret_expires_at.is_some_and(|t| now < t))
                    .is_some_and(|h| self.master.verify_client_secret(secret.expose(), h));
                if !(current || previous) {
                    return Err(failed());
                }
            }
            ClientCredentials::JwtAssertion { assertion, .. } => {
                self.verify_assertion(record, metadata, assertion.expose(), endpoint_url)
                    .await?;
            }
            ClientCredentials::None { .. } => {}
        }
        Ok(())
    }

    async fn verify_assertion(
        &self,
        record: &ClientRecord,
        metadata: &ClientMetadata,
        assertion: &str,
        endpoint_url: &str,
    ) -> Result<(), OAuthError> {
        let now = self.clock.now();
        let audiences = [
            self.config.issuer.clone(),
            self.token_endpoint.clone(),
            endpoint_url.to_owned(),
        ];
        let rules = AssertionRules {
            client_id: &record.client_id,
            audiences: &audiences,
            now,
            leeway: self.config.clock_leeway,
            max_lifetime: self.config.assertion_max_lifetime,
        };
        let verified = match (&metadata.jwks, &metadata.jwks_uri) {
            (Some(jwks), _) => verify_client_assertion(assertion, jwks, &rules)?,
            (None, Some(uri)) => {
                let keys = self.fetch_client_jwks(uri, false).await?;
                match verify_client_assertion(assertion, &keys, &rules) {
                    Ok(v) => v,
                    Err(_) => {
                        let keys = self.fetch_client_jwks(uri, true).await?;
                        verify_client_assertion(assertion, &keys, &rules)?
                    }
                }
            }
            (None, None) => return Err(failed()),
        };
        let namespace = format!("client_assertion:{}", record.client_id);
        let first_use = self
            .store
            .record_jti_once(
                &namespace,
                &verified.jti,
                verified.exp + self.config.clock_leeway,
                now,
            )
            .await
            .map_err(internal)?;
        if !first_use {
            return Err(OAuthError::invalid_client(
                "client_assertion jti has already been used (RFC 7523 §3: single use)",
            ));
        }
        Ok(())
    }

    async fn fetch_client_jwks(&self, uri: &str, refresh: bool) -> Result<JwkSet, OAuthError> {
        self.jwks_fetcher.fetch(uri, refresh).await.map_err(|e| {
            tracing::warn!(jwks_uri = %uri, error = %e, "fetching a client's jwks_uri failed");
            OAuthError::invalid_client("the client's jwks_uri could not be fetched")
        })
    }
}
