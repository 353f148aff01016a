//! The verifier's cache of the issuer's keys: prepared once per key set,
//! refreshed when a token names an unknown `kid` (rate limited and single
//! flight, so a flood of made-up kids costs the issuer at most one fetch
//! per interval) and when the set grows old.

use crate::clock::Clock;
use crate::jose::Algorithm;
use crate::jwk::{JwkError, JwkSet};
use crate::jwks::{JwksError, JwksSource};
use aws_lc_rs::signature::ParsedPublicKey;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// Least time between two fetches after a failed one, seconds.
const RETRY_AFTER_FAILURE: i64 = 5;

/// One key, prepared for each algorithm it may verify.
struct PreparedKey {
    kid: Option<String>,
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

/// A key set as fetched at one time.
pub(crate) struct Keys {
    keys: Vec<PreparedKey>,
    /// When it was fetched; `None` before the first successful fetch.
    fetched_at: Option<i64>,
    generation: u64,
}

impl Keys {
    /// The key for a token header's `kid` and `alg`. A header without `kid`
    /// is accepted only when exactly one key fits the algorithm.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&ParsedPublicKey> {
        fn fitting(key: &PreparedKey, alg: Algorithm) -> Option<&ParsedPublicKey> {
            key.by_alg
                .iter()
                .find(|(a, _)| *a == alg)
                .map(|(_, parsed)| parsed)
        }
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|key| key.kid.as_deref() == Some(kid))
                .find_map(|key| fitting(key, alg)),
            None => {
                let mut candidates = self.keys.iter().filter_map(|key| fitting(key, alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only),
                    _ => None,
                }
            }
        }
    }
}

/// Why no key was found.
#[derive(Debug)]
pub(crate) enum KeyLookupError {
    /// No key set could ever be had.
    Unavailable(JwksError),
    /// The set has no key with this `kid` (after a refresh, or a refresh
    /// was not allowed yet).
    Unknown,
}

/// What a refresh attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refreshed {
    /// A newer set is in place (fetched by this task or another).
    Yes,
    /// Too soon since the last attempt, or the fetch failed.
    No,
}

pub(crate) struct KeyCache {
    source: Arc<dyn JwksSource>,
    algorithms: Vec<Algorithm>,
    clock: Arc<dyn Clock>,
    current: RwLock<Arc<Keys>>,
    /// Held while fetching: one fetch at a time.
    refresh: tokio::sync::Mutex<Option<JwksError>>,
    /// When the last fetch was attempted; `i64::MIN` before any.
    last_attempt: AtomicI64,
    /// Least time between two fetches, seconds.
    min_interval: i64,
    /// Age after which the set is fetched again, seconds.
    max_age: i64,
}

impl KeyCache {
    pub(crate) fn new(
        source: Arc<dyn JwksSource>,
        algorithms: Vec<Algorithm>,
        clock: Arc<dyn Clock>,
        min_interval: i64,
        max_age: i64,
    ) -> Self {
        KeyCache {
            source,
            algorithms,
            clock,
            current: RwLock::new(Arc::new(Keys {
                keys: Vec::new(),
                fetched_at: None,
                generation: 0,
            })),
            refresh: tokio::sync::Mutex::new(None),
            last_attempt: AtomicI64::new(i64::MIN),
            min_interval: min_interval.max(0),
            max_age: max_age.max(1),
        }
    }

    fn current(&self) -> Arc<Keys> {
        match self.current.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The set to verify a token with `kid` and `alg`, refreshed first when
    /// none was fetched yet, when it is old, or when it lacks the key.
    pub(crate) async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<Keys>, KeyLookupError> {
        let mut keys = self.current();
        let now = self.clock.now();
        match keys.fetched_at {
            None => {
                self.refresh(keys.generation, true).await;
                keys = self.current();
                if keys.fetched_at.is_none() {
                    let error = self.refresh.lock().await.clone();
                    return Err(KeyLookupError::Unavailable(error.unwrap_or_else(|| {
                        JwksError::Metadata("no key set fetched yet".into())
                    })));
                }
            }
            Some(at) if now.saturating_sub(at) >= self.max_age => {
                // Old but usable: one task refreshes, the others go on with
                // what they have rather than wait.
                if self.refresh(keys.generation, false).await == Refreshed::Yes {
                    keys = self.current();
                }
            }
            Some(_) => {}
        }
        if keys.find(kid, alg).is_some() {
            return Ok(keys);
        }
        if kid.is_some() && self.refresh(keys.generation, true).await == Refreshed::Yes {
            keys = self.current();
            if keys.find(kid, alg).is_some() {
                return Ok(keys);
            }
        }
        Err(KeyLookupError::Unknown)
    }

    /// Fetches a new set unless one newer than `seen` is already in place,
    /// or the last attempt was less than the minimum interval ago. With
    /// `wait`, waits for a fetch under way; without, gives up at once.
    async fn refresh(&self, seen: u64, wait: bool) -> Refreshed {
        self.refresh_unless(seen, wait, false).await
    }

    async fn refresh_unless(&self, seen: u64, wait: bool, force: bool) -> Refreshed {
        let mut last_error = if wait {
            self.refresh.lock().await
        } else {
            match self.refresh.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Refreshed::No,
            }
        };
        if self.current().generation != seen && !force {
            return Refreshed::Yes;
        }
        let now = self.clock.now();
        let last = self.last_attempt.load(Ordering::Acquire);
        // After a failure, try again sooner (the set may be missing).
        let interval = if last_error.is_some() {
            self.min_interval.min(RETRY_AFTER_FAILURE)
        } else {
            self.min_interval
        };
        if !force && last != i64::MIN && now.saturating_sub(last) < interval {
            return Refreshed::No;
        }
        self.last_attempt.store(now, Ordering::Release);
        match self.source.fetch().await {
            Ok(set) => {
                let generation = self.current().generation + 1;
                let prepared = self.prepare(&set, now, generation);
                if prepared.keys.is_empty() {
                    // Kept: the set in place rather than none at all.
                    *last_error = Some(JwksError::Jwk(JwkError::MalformedSet(
                        "no usable signature key",
                    )));
                    return Refreshed::No;
                }
                match self.current.write() {
                    Ok(mut current) => *current = Arc::new(prepared),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(prepared),
                }
                *last_error = None;
                Refreshed::Yes
            }
            Err(error) => {
                *last_error = Some(error);
                Refreshed::No
            }
        }
    }

    /// Fetches the key set now, whatever the rate limit; the number of
    /// usable keys.
    pub(crate) async fn load(&self) -> Result<usize, JwksError> {
        let seen = self.current().generation;
        if self.refresh_unless(seen, true, true).await == Refreshed::Yes {
            return Ok(self.current().keys.len());
        }
        Err(self
            .refresh
            .lock()
            .await
            .clone()
            .unwrap_or_else(|| JwksError::Metadata("the key set could not be fetched".into())))
    }

    fn prepare(&self, set: &JwkSet, now: i64, generation: u64) -> Keys {
        let keys = set
            .keys()
            .iter()
            .map(|jwk| PreparedKey {
                kid: jwk.kid().map(str::to_owned),
                by_alg: self
                    .algorithms
                    .iter()
                    .filter_map(|alg| jwk.parsed(*alg).map(|parsed| (*alg, parsed)))
                    .collect(),
            })
            .filter(|key| !key.by_alg.is_empty())
            .collect();
        Keys {
            keys,
            fetched_at: Some(now),
            generation,
        }
    }
}

#[cfg(test)]
mod tests;
