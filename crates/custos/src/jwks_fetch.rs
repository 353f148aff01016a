//! Fetching clients' `jwks_uri` for private_key_jwt, with a cache so a busy
//! client costs one fetch per few minutes, and a bounded re-fetch when a
//! key is not found (the client may have rotated).

use async_trait::async_trait;
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
}

impl HttpJwksFetcher {
    pub fn new() -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(HttpJwksFetcher {
            client,
            cache: Mutex::new(HashMap::new()),
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
        let response = self
            .client
            .get(uri)
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
