//! Where the issuer's public keys come from: the [`JwksSource`] trait, a
//! fixed [`StaticJwks`], and [`HttpJwks`] which fetches the issuer's
//! `jwks_uri` (feature `http-jwks`).
//!
//! The verifier caches what a source returns and asks again only when a
//! token names a key it does not know (at most once per refresh interval)
//! or when the cached set is older than its maximum age; see
//! [`VerifierBuilder::jwks_refresh_interval`](crate::VerifierBuilder::jwks_refresh_interval).

use crate::jwk::{JwkError, JwkSet};
use async_trait::async_trait;
use std::sync::Arc;

/// Why the keys could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// The URL is not usable: not `https` (and plain HTTP was not allowed),
    /// or not a URL.
    #[error("refusing JWKS URL '{0}': it must be an absolute https URL")]
    InsecureUrl(String),
    /// The request failed: connection, timeout, a status other than 200,
    /// a redirect (never followed), or a body over the size limit.
    #[error("fetching {url} failed: {reason}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The issuer's metadata was malformed or names another issuer.
    #[error("authorization server metadata: {0}")]
    Metadata(String),
    /// The key set was malformed.
    #[error(transparent)]
    Jwk(#[from] JwkError),
}

/// A source of the issuer's signature keys.
///
/// Implement it to load keys from somewhere else (a file, a secret store,
/// another HTTP client). `fetch` is called by one task at a time and at
/// most once per refresh interval, so it need not cache or rate-limit.
#[async_trait]
pub trait JwksSource: Send + Sync + 'static {
    /// The current key set.
    async fn fetch(&self) -> Result<JwkSet, JwksError>;
}

#[async_trait]
impl<S: JwksSource + ?Sized> JwksSource for Arc<S> {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        (**self).fetch().await
    }
}

/// A key set that never changes: keys configured by hand, or tests.
///
/// ```
/// use custos_verifier::StaticJwks;
///
/// let jwks = StaticJwks::from_json(br#"{"keys":[{"kty":"OKP","crv":"Ed25519",
///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#).unwrap();
/// assert_eq!(jwks.set().keys().len(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct StaticJwks(JwkSet);

impl StaticJwks {
    /// The given set.
    pub fn new(set: JwkSet) -> Self {
        StaticJwks(set)
    }

    /// A set read from a JWKS document.
    pub fn from_json(document: &[u8]) -> Result<Self, JwkError> {
        JwkSet::from_json(document).map(StaticJwks)
    }

    /// The keys.
    pub fn set(&self) -> &JwkSet {
        &self.0
    }
}

#[async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        Ok(self.0.clone())
    }
}

#[cfg(feature = "http-jwks")]
pub use self::http::HttpJwks;

/// RFC 8414 §3.1: the metadata URL of an issuer, `/.well-known/
/// oauth-authorization-server` inserted between the host and the path.
pub fn authorization_server_metadata_url(issuer: &str) -> Option<String> {
    let url = url::Url::parse(issuer).ok()?;
    if url.query().is_some() || url.fragment().is_some() || !url.has_host() {
        return None;
    }
    let path = url.path().trim_end_matches('/');
    let mut origin = url.origin().ascii_serialization();
    origin.push_str("/.well-known/oauth-authorization-server");
    origin.push_str(path);
    Some(origin)
}

#[cfg(feature = "http-jwks")]
mod http {
    use super::{authorization_server_metadata_url, JwksError, JwksSource};
    use crate::jwk::JwkSet;
    use async_trait::async_trait;
    use std::time::Duration;
    use tokio::sync::OnceCell;

    /// Default time limit of one fetch.
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default largest response accepted, bytes.
    const DEFAULT_MAX_BYTES: usize = 256 * 1024;

    #[derive(Debug)]
    enum Target {
        Jwks(String),
        Issuer {
            issuer: String,
            jwks_uri: OnceCell<String>,
        },
    }

    /// Fetches the key set over HTTPS with reqwest.
    ///
    /// Hardened for a resource server that must not be steered by what it
    /// fetches: `https` only (unless [`allow_insecure_http`]), redirects are
    /// never followed, each fetch has a time limit (5 s by default) and the
    /// body a size limit (256 KiB by default).
    ///
    /// [`allow_insecure_http`]: HttpJwks::allow_insecure_http
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), custos_verifier::JwksError> {
    /// use custos_verifier::{HttpJwks, JwksSource};
    ///
    /// // The jwks_uri from the issuer's metadata, found on first use:
    /// let jwks = HttpJwks::discover("https://auth.example.com")?;
    /// // or a known one:
    /// let jwks = HttpJwks::new("https://auth.example.com/jwks")?;
    /// let keys = jwks.fetch().await?;
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct HttpJwks {
        target: Target,
        client: reqwest::Client,
        timeout: Duration,
        max_bytes: usize,
        allow_http: bool,
    }

    impl HttpJwks {
        /// Fetches the key set from `jwks_uri`.
        pub fn new(jwks_uri: impl Into<String>) -> Result<Self, JwksError> {
            Self::with_target(Target::Jwks(jwks_uri.into()))
        }

        /// Reads the issuer's RFC 8414 metadata
        /// (`/.well-known/oauth-authorization-server`) on the first fetch,
        /// checks its `issuer`, and fetches its `jwks_uri` from then on.
        pub fn discover(issuer: impl Into<String>) -> Result<Self, JwksError> {
            Self::with_target(Target::Issuer {
                issuer: issuer.into(),
                jwks_uri: OnceCell::new(),
            })
        }

        fn with_target(target: Target) -> Result<Self, JwksError> {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|error| JwksError::Fetch {
                    url: String::new(),
                    reason: format!("cannot build the HTTP client: {error}"),
                })?;
            Ok(HttpJwks {
                target,
                client,
                timeout: DEFAULT_TIMEOUT,
                max_bytes: DEFAULT_MAX_BYTES,
                allow_http: false,
            })
        }

        /// Uses this client (for proxies or extra root certificates). It
        /// should not follow redirects: build it with
        /// `.redirect(reqwest::redirect::Policy::none())`.
        pub fn client(mut self, client: reqwest::Client) -> Self {
            self.client = client;
            self
        }

        /// Time limit of one request (default 5 s).
        pub fn timeout(mut self, timeout: Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// Largest response body accepted, bytes (default 256 KiB).
        pub fn max_response_bytes(mut self, bytes: usize) -> Self {
            self.max_bytes = bytes;
            self
        }

        /// Allows plain `http` URLs: for tests and an issuer on loopback
        /// only. Keys fetched over plain HTTP can be replaced by anyone on
        /// the path.
        pub fn allow_insecure_http(mut self, allow: bool) -> Self {
            self.allow_http = allow;
            self
        }

        fn checked(&self, url: &str) -> Result<(), JwksError> {
            match url::Url::parse(url) {
                Ok(parsed)
                    if parsed.has_host()
                        && (parsed.scheme() == "https"
                            || (self.allow_http && parsed.scheme() == "http")) =>
                {
                    Ok(())
                }
                _ => Err(JwksError::InsecureUrl(crate::jose::printable(url, 200))),
            }
        }

        async fn get(&self, url: &str) -> Result<Vec<u8>, JwksError> {
            self.checked(url)?;
            let failed = |reason: String| JwksError::Fetch {
                url: url.to_owned(),
                reason,
            };
            let mut response = self
                .client
                .get(url)
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.timeout)
                .send()
                .await
                .map_err(|error| failed(error.without_url().to_string()))?;
            if response.status() != reqwest::StatusCode::OK {
                return Err(failed(format!("status {}", response.status())));
            }
            if response
                .content_length()
                .is_some_and(|len| len > self.max_bytes as u64)
            {
                return Err(failed(format!("body larger than {} bytes", self.max_bytes)));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|error| failed(error.without_url().to_string()))?
            {
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(failed(format!("body larger than {} bytes", self.max_bytes)));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        }

        async fn jwks_uri(&self) -> Result<&str, JwksError> {
            match &self.target {
                Target::Jwks(uri) => Ok(uri),
                Target::Issuer { issuer, jwks_uri } => jwks_uri
                    .get_or_try_init(|| self.discover_jwks_uri(issuer))
                    .await
                    .map(String::as_str),
            }
        }

        async fn discover_jwks_uri(&self, issuer: &str) -> Result<String, JwksError> {
            let url = authorization_server_metadata_url(issuer)
                .ok_or_else(|| JwksError::Metadata(format!("issuer '{issuer}' is not a URL")))?;
            let body = self.get(&url).await?;
            let metadata: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|_| JwksError::Metadata("not a JSON document".into()))?;
            // RFC 8414 §3.3: the issuer in the document must be the one asked about.
            if metadata.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
                return Err(JwksError::Metadata(format!(
                    "the document at {url} is not about issuer '{issuer}'"
                )));
            }
            let jwks_uri = metadata
                .get("jwks_uri")
                .and_then(|v| v.as_str())
                .ok_or_else(|| JwksError::Metadata("no jwks_uri".into()))?;
            self.checked(jwks_uri)?;
            Ok(jwks_uri.to_owned())
        }
    }

    #[async_trait]
    impl JwksSource for HttpJwks {
        async fn fetch(&self) -> Result<JwkSet, JwksError> {
            let uri = self.jwks_uri().await?;
            let body = self.get(uri).await?;
            Ok(JwkSet::from_json(&body)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_3_1_metadata_url() {
        assert_eq!(
            authorization_server_metadata_url("https://as.example.com").as_deref(),
            Some("https://as.example.com/.well-known/oauth-authorization-server")
        );
        assert_eq!(
            authorization_server_metadata_url("https://as.example.com/").as_deref(),
            Some("https://as.example.com/.well-known/oauth-authorization-server")
        );
        assert_eq!(
            authorization_server_metadata_url("https://as.example.com:8443/tenant/a").as_deref(),
            Some("https://as.example.com:8443/.well-known/oauth-authorization-server/tenant/a")
        );
        assert_eq!(authorization_server_metadata_url("not a url"), None);
        assert_eq!(authorization_server_metadata_url("https://as?x=1"), None);
    }

    #[cfg(feature = "http-jwks")]
    #[tokio::test]
    async fn http_jwks_refuses_plain_http_unless_allowed() {
        let jwks = HttpJwks::new("http://127.0.0.1:1/jwks").unwrap();
        assert!(matches!(jwks.fetch().await, Err(JwksError::InsecureUrl(_))));
        let jwks = HttpJwks::new("file:///etc/passwd")
            .unwrap()
            .allow_insecure_http(true);
        assert!(matches!(jwks.fetch().await, Err(JwksError::InsecureUrl(_))));
        let jwks = HttpJwks::new("http://127.0.0.1:1/jwks")
            .unwrap()
            .allow_insecure_http(true);
        assert!(matches!(jwks.fetch().await, Err(JwksError::Fetch { .. })));
    }
}
