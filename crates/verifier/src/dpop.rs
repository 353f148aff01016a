//! DPoP proofs at a resource server (RFC 9449 §4.3, §7.1) and the store
//! that makes each proof single use (§11.1).

use crate::jose::{self, Algorithm};
use crate::jwk::PublicJwk;
use async_trait::async_trait;
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

/// Longest proof accepted, bytes (an RSA-4096 `jwk` fits).
pub(crate) const MAX_PROOF_LEN: usize = 8192;
/// Longest proof header part, characters.
const MAX_PROOF_HEADER: usize = 4096;
/// Longest `jti` accepted, bytes.
const MAX_JTI_LEN: usize = 256;

/// What a proof is held to.
pub(crate) struct ProofRules<'a> {
    pub htm: &'a str,
    pub htu: &'a str,
    pub access_token: &'a str,
    /// The token's `cnf.jkt`: the proof's key must have this thumbprint.
    pub jkt: &'a str,
    pub now: i64,
    /// How old `iat` may be, seconds.
    pub max_age: i64,
    /// How far in the future `iat` may be, seconds.
    pub max_skew: i64,
    pub algorithms: &'a [Algorithm],
}

/// A proof whose key, signature and claims are good; the caller still
/// records `jti`.
#[derive(Debug)]
pub(crate) struct CheckedProof {
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// RFC 9449 §4.3 checks 2 to 12 (check 1, a single header, is the
/// caller's; check 10, the nonce, is not used). Errors describe an
/// `invalid_dpop_proof`.
pub(crate) fn check_proof(proof: &str, rules: &ProofRules<'_>) -> Result<CheckedProof, String> {
    let in_proof = |e: String| format!("the DPoP proof {e}");
    let jws = jose::split(proof, MAX_PROOF_LEN, MAX_PROOF_HEADER).map_err(in_proof)?;
    if jws.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err("the DPoP proof typ must be dpop+jwt".into());
    }
    let alg = jose::header_algorithm(&jws.header, rules.algorithms).map_err(in_proof)?;
    jose::refuse_crit(&jws.header).map_err(in_proof)?;
    let Some(Value::Object(raw_jwk)) = jws.header.get("jwk") else {
        return Err("the DPoP proof header has no jwk (the public key)".into());
    };
    let jwk = PublicJwk::from_json(raw_jwk)
        .map_err(|e| format!("the DPoP proof jwk is not usable: {e}"))?;
    if !jwk.fits(alg) {
        return Err(format!("the DPoP proof jwk does not fit alg {alg}"));
    }
    // RFC 9449 §7.1: the key the token is bound to. Compared before the
    // signature, so no other key costs a verification.
    if aws_lc_rs::constant_time::verify_slices_are_equal(
        jwk.thumbprint().as_bytes(),
        rules.jkt.as_bytes(),
    )
    .is_err()
    {
        return Err(
            "the DPoP proof is signed with a key other than the one the token is bound to (cnf jkt)"
                .into(),
        );
    }
    if alg
        .signature_len()
        .is_some_and(|len| len != jws.signature.len())
    {
        return Err("the DPoP proof signature does not verify".into());
    }
    let key = jwk
        .parsed(alg)
        .ok_or("the DPoP proof jwk is not a valid public key")?;
    key.verify_sig(jws.signing_input.as_bytes(), &jws.signature)
        .map_err(|_| "the DPoP proof signature does not verify".to_owned())?;
    let claims: Map<String, Value> = jose::decode_object(jws.payload_b64)
        .ok_or("the DPoP proof payload is not a base64url JSON object")?;

    let text = |name: &str| match claims.get(name) {
        Some(Value::String(value)) => Ok(value.as_str()),
        Some(_) => Err(format!("the DPoP proof {name} must be a string")),
        None => Err(format!("the DPoP proof has no {name} claim")),
    };
    let jti = text("jti")?;
    if jti.is_empty() || jti.len() > MAX_JTI_LEN {
        return Err(format!(
            "the DPoP proof jti must have 1 to {MAX_JTI_LEN} bytes"
        ));
    }
    if text("htm")? != rules.htm {
        return Err(format!(
            "the DPoP proof htm does not match the request method {}",
            jose::printable(rules.htm, 16)
        ));
    }
    if !htu_matches(text("htu")?, rules.htu) {
        return Err(format!(
            "the DPoP proof htu does not match the request URL {}",
            jose::printable(rules.htu, 200)
        ));
    }
    let iat = claims
        .get("iat")
        .and_then(jose::numeric_date)
        .ok_or("the DPoP proof has no numeric iat claim")?;
    if iat < rules.now.saturating_sub(rules.max_age) {
        return Err("the DPoP proof is too old (iat)".into());
    }
    if iat > rules.now.saturating_add(rules.max_skew) {
        return Err("the DPoP proof is issued in the future (iat)".into());
    }
    let ath = text("ath")?;
    let expected = access_token_hash(rules.access_token);
    if aws_lc_rs::constant_time::verify_slices_are_equal(ath.as_bytes(), expected.as_bytes())
        .is_err()
    {
        return Err("the DPoP proof ath does not match the access token".into());
    }
    Ok(CheckedProof {
        jkt: jwk.thumbprint().to_owned(),
        jti: jti.to_owned(),
        iat,
    })
}

/// `base64url(SHA-256(token))`: a proof's `ath` (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, access_token.as_bytes()))
}

/// RFC 9449 §4.3 check 9: the same http(s) URL once query and fragment are
/// dropped and scheme, host, default port, dot segments and
/// percent-encoding are normalized (RFC 3986 §6.2.2-3).
pub fn htu_matches(claimed: &str, request_url: &str) -> bool {
    match (normalized(claimed), normalized(request_url)) {
        (Some(claimed), Some(request)) => claimed == request,
        _ => false,
    }
}

fn normalized(text: &str) -> Option<String> {
    if text.len() > MAX_PROOF_LEN {
        return None;
    }
    let url = url::Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    Some(format!(
        "{}://{}:{}{}",
        url.scheme(),
        url.host_str()?,
        url.port_or_known_default()?,
        percent_normalized(url.path())
    ))
}

/// Uppercase percent-encodings, and unreserved characters decoded.
fn percent_normalized(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(char::from(byte));
                i += 3;
            }
            Some(byte) => {
                out.push_str(&format!("%{byte:02X}"));
                i += 3;
            }
            None => {
                let c = path[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(c);
                i += c.len_utf8().max(1);
            }
        }
    }
    out
}

/// The replay store's key for a proof: a digest of the key's thumbprint
/// and the `jti`, so one client's `jti`s cannot collide with another's.
pub(crate) fn replay_key(jkt: &str, jti: &str) -> String {
    let mut input = Vec::with_capacity(jkt.len() + 1 + jti.len());
    input.extend_from_slice(jkt.as_bytes());
    input.push(0);
    input.extend_from_slice(jti.as_bytes());
    URL_SAFE_NO_PAD.encode(digest(&SHA256, &input))
}

/// The replay store could not answer; the request is refused (503)
/// rather than risk accepting a replayed proof.
#[derive(Debug, Clone, thiserror::Error)]
#[error("DPoP replay store: {0}")]
pub struct ReplayStoreError(pub String);

/// Remembers DPoP proofs (by `jti` and key) until they are too old to be
/// accepted again, so each is used once (RFC 9449 §11.1).
///
/// [`MemoryReplayStore`] is the default; implement this for a store shared
/// by several instances of the server (e.g. Redis `SET key 1 NX EXAT t`).
#[async_trait]
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` as used until `expires_at` (seconds since the epoch).
    /// `Ok(true)` if it was not seen before, `Ok(false)` for a replay.
    async fn first_use(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError>;
}

#[async_trait]
impl<S: ReplayStore + ?Sized> ReplayStore for Arc<S> {
    async fn first_use(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError> {
        (**self).first_use(key, expires_at, now).await
    }
}

const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    seen: HashMap<Arc<str>, i64>,
    /// Keys in the order they were recorded, with their expiry, to drop
    /// the expired ones from the front.
    order: VecDeque<(i64, Arc<str>)>,
}

impl Shard {
    fn purge(&mut self, now: i64) {
        while let Some((expires_at, _)) = self.order.front() {
            if *expires_at > now {
                break;
            }
            if let Some((expires_at, key)) = self.order.pop_front() {
                if self.seen.get(&key) == Some(&expires_at) {
                    self.seen.remove(&key);
                }
            }
        }
    }
}

/// An in-process [`ReplayStore`]: bounded, sharded, entries dropped once
/// expired. When full of unexpired entries it refuses new proofs (fail
/// closed) instead of forgetting ones that could still be replayed.
///
/// Only right for a single instance; several instances behind a load
/// balancer need a shared store.
pub struct MemoryReplayStore {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

impl MemoryReplayStore {
    /// A store holding at most `capacity` live proofs (e.g. 100 000: a
    /// minute of proofs at about 1 600 requests per second).
    pub fn new(capacity: usize) -> Self {
        MemoryReplayStore {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// How many proofs are remembered.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |s| s.seen.len()))
            .sum()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, ReplayStoreError> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let index = (hasher.finish() % SHARDS as u64) as usize;
        let mut shard = match self.shards[index].lock() {
            Ok(shard) => shard,
            Err(poisoned) => poisoned.into_inner(),
        };
        shard.purge(now);
        if let Some(until) = shard.seen.get(key) {
            if *until > now {
                return Ok(false);
            }
        }
        if shard.seen.len() >= self.per_shard {
            // Entries recorded out of expiry order may still linger.
            shard.seen.retain(|_, until| *until > now);
            let live: std::collections::HashSet<Arc<str>> = shard.seen.keys().cloned().collect();
            shard.order.retain(|(_, key)| live.contains(key));
        }
        if shard.seen.len() >= self.per_shard {
            return Err(ReplayStoreError("full of live proofs".into()));
        }
        let key: Arc<str> = Arc::from(key);
        shard.seen.insert(Arc::clone(&key), expires_at);
        shard.order.push_back((expires_at, key));
        Ok(true)
    }
}

impl Default for MemoryReplayStore {
    /// Room for 100 000 live proofs.
    fn default() -> Self {
        Self::new(100_000)
    }
}

impl std::fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish()
    }
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn first_use(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError> {
        self.record(key, expires_at, now)
    }
}

#[cfg(test)]
mod tests;
