//! The registered RFC 9396 authorization details types, as every endpoint
//! reads them: compiled once per process and looked up without I/O.
//!
//! Types are registered with their resource (`POST /admin/resources`) and
//! never change afterwards, so a compiled type stays valid for the life of
//! the process. A type registered on another replica is found by the next
//! reload: [`DetailTypes::reload`] runs with each maintenance tick (the
//! signing-key refresh interval) and, at most once a second, when a request
//! names a type this process does not know yet — so an unknown name costs
//! a caller without credentials at most one shared query a second, never
//! one each.

use crate::error::{internal, ServiceError};
use custos_protocol::rar::{self, parse_authorization_details, AuthorizationDetails, CompiledType};
use custos_protocol::OAuthError;
use custos_store::{Store, StoreError};
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// A request naming an unknown type reloads the registry at most this
/// often.
const RELOAD_ON_MISS_INTERVAL: Duration = Duration::from_secs(1);

type Registry = Arc<HashMap<String, CompiledType>>;

pub struct DetailTypes {
    store: Arc<dyn Store>,
    known: RwLock<Registry>,
    /// When the registry was last read from the store (single flight).
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl DetailTypes {
    /// Reads every registered type.
    pub async fn start(store: Arc<dyn Store>) -> Result<Self, StoreError> {
        let types = DetailTypes {
            store,
            known: RwLock::new(Arc::default()),
            last_reload: tokio::sync::Mutex::new(None),
        };
        types.read_store().await?;
        Ok(types)
    }

    fn snapshot(&self) -> Registry {
        self.known.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every registered type name, sorted (discovery's
    /// `authorization_details_types_supported`, RFC 9396 §10).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.snapshot().keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// The type named `name`, if this process knows it.
    pub fn get(&self, name: &str) -> Option<CompiledType> {
        self.snapshot().get(name).cloned()
    }

    /// Adds types just registered by this process.
    pub fn add(&self, compiled: impl IntoIterator<Item = CompiledType>) {
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        let mut next: HashMap<String, CompiledType> = (**known).clone();
        for t in compiled {
            next.insert(t.type_name().to_owned(), t);
        }
        *known = Arc::new(next);
    }

    /// Reads the registry from the store, compiling only types this
    /// process has not seen. A stored type that no longer compiles (a
    /// newer validator stricter than the one that accepted it) is left
    /// out, with a warning.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let mut last = self.last_reload.lock().await;
        self.read_store().await.map_err(internal)?;
        *last = Some(Instant::now());
        Ok(())
    }

    /// [`reload`](Self::reload), unless one ran within
    /// [`RELOAD_ON_MISS_INTERVAL`] (a request that waited for a reload
    /// already under way uses its result).
    async fn reload_on_miss(&self) -> Result<(), ServiceError> {
        let mut last = self.last_reload.lock().await;
        if last.is_some_and(|at| at.elapsed() < RELOAD_ON_MISS_INTERVAL) {
            return Ok(());
        }
        self.read_store().await.map_err(internal)?;
        *last = Some(Instant::now());
        Ok(())
    }

    async fn read_store(&self) -> Result<(), StoreError> {
        let stored = self.store.list_detail_types().await?;
        let current = self.snapshot();
        let mut next = HashMap::with_capacity(stored.len());
        for record in stored {
            if let Some(known) = current.get(&record.type_name) {
                next.insert(record.type_name, known.clone());
                continue;
            }
            let compiled = serde_json::from_str(&record.schema_json)
                .map_err(|e| OAuthError::invalid_request(e.to_string()))
                .and_then(|schema| {
                    rar::validate_type_registration(&record.type_name, &record.resource, &schema)
                });
            match compiled {
                Ok(compiled) => {
                    next.insert(record.type_name, compiled);
                }
                Err(error) => tracing::warn!(
                    detail_type = %record.type_name,
                    error = %error.description,
                    "a stored authorization details type does not compile; it is not offered"
                ),
            }
        }
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        Ok(())
    }

    /// The `authorization_details` parameter of a request, checked against
    /// the registered types (RFC 9396 §2, §5).
    pub async fn parse(&self, raw: &str) -> Result<AuthorizationDetails, ServiceError> {
        let (result, missed) = self.try_parse(raw);
        if result.is_ok() || !missed {
            return result.map_err(Into::into);
        }
        self.reload_on_miss().await?;
        self.try_parse(raw).0.map_err(Into::into)
    }

    /// RFC 9396 §6: what to issue when a request may narrow `granted`
    /// (absent: `granted` itself).
    pub async fn narrow(
        &self,
        requested: Option<&str>,
        granted: &AuthorizationDetails,
    ) -> Result<AuthorizationDetails, ServiceError> {
        let Some(raw) = requested else {
            return Ok(granted.clone());
        };
        // Parsed against the registry (reloading on a miss), then compared.
        self.parse(raw).await?;
        self.narrow_now(Some(raw), granted).map_err(Into::into)
    }

    /// [`narrow`](Self::narrow) with the registry as it is, without I/O
    /// (inside a store transaction); parse the request with
    /// [`parse`](Self::parse) first so that a type registered elsewhere is
    /// known.
    pub fn narrow_now(
        &self,
        requested: Option<&str>,
        granted: &AuthorizationDetails,
    ) -> Result<AuthorizationDetails, OAuthError> {
        let registry = self.snapshot();
        rar::narrow(requested, granted, &|name| registry.get(name))
    }

    /// Parses with the registry as it is; also says whether a type name
    /// was not found.
    fn try_parse(&self, raw: &str) -> (Result<AuthorizationDetails, OAuthError>, bool) {
        let registry = self.snapshot();
        let missed = Cell::new(false);
        let lookup = |name: &str| {
            let found = registry.get(name);
            if found.is_none() {
                missed.set(true);
            }
            found
        };
        let result = parse_authorization_details(raw, &lookup);
        (result, missed.get())
    }
}

/// Details stored or signed earlier (a code, a grant, a token's claim).
pub fn stored_details(json: Option<&str>) -> Result<Option<AuthorizationDetails>, ServiceError> {
    json.map(|text| {
        serde_json::from_str::<serde_json::Value>(text)
            .map_err(internal)
            .and_then(|value| AuthorizationDetails::from_value(value).map_err(internal))
    })
    .transpose()
}
