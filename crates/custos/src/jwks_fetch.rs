//! Fetching clients' `jwks_uri` for private_key_jwt, with a cache so a busy
//! client costs one fetch per few minutes, and a bounded re-fetch when a
//! key is not found (the client may have rotated).

use async_trait::async_trait;
use custos_protocol::address::is_public_ip;
use custos_service::JwksFetcher;
use jsonwebtoken::jwk::JwkSet;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FRESH_FOR: Duration = Duration::from_secs(300);
const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
const MAX_BYTES: usize = 256 * 1024;
const MAX_CACHED: usize = 10_000;

pub struct HttpJwksFetcher {
    client: reqwest::Client,
    cache: Mutex<HashMap<String, (Instant, JwkSet)>>,
    allow_private: bool,
}

/// Resolves names, then refuses any answer that is not a public address,
/// so a `jwks_uri` cannot reach loopback, the private network or a cloud
/// metadata endpoint by way of DNS.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host(host)
                .await?
                .filter(|a| is_public_ip(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err("the name resolves to no public address".into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl HttpJwksFetcher {
    pub fn new(allow_private: bool) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder();
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnlyResolver));
        }
        let client = builder
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpJwksFetcher {
            client,
            cache: Mutex::new(HashMap::new()),
            allow_private,
        })
    }

    fn cached(&self, uri: &str, max_age: Duration) -> Option<JwkSet> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(uri)
            .filter(|(at, _)| at.elapsed() < max_age)
            .map(|(_, set)| set.clone())
    }
}

#[async_trait]
impl JwksFetcher for HttpJwksFetcher {
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<JwkSet, String> {
        let max_age = if refresh {
            MIN_REFETCH_INTERVAL
        } else {
            FRESH_FOR
        };
        if let Some(set) = self.cached(uri, max_age) {
            return Ok(set);
        }
        let url = reqwest::Url::parse(uri).map_err(|e| e.to_string())?;
        if !self.allow_private {
            if url.scheme() != "https" {
                return Err("jwks_uri must be https".into());
            }
            // IP literals never reach the resolver.
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
                _ => None,
            };
            if literal.is_some_and(|ip| !is_public_ip(ip)) {
                return Err("jwks_uri is not on a public address".into());
            }
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if bytes.len() > MAX_BYTES {
            return Err("JWK Set too large".into());
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let set = custos_protocol::metadata::validate_jwks(&value).map_err(|e| e.description)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(uri.to_owned(), (Instant::now(), set.clone()));
        }
        Ok(set)
    }
}
