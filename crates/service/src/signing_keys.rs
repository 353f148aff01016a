//! The signing keys as use cases need them: the loaded [`KeyRing`] plus
//! what keeps it in step with the store (first key at first start,
//! rotation, reloading rotations made by other replicas, forgetting keys
//! whose tokens have all expired).

use crate::crypto::{KeyError, MasterKey};
use crate::error::{internal, ServiceError};
use crate::keyring::{generate_key, KeyInfo, KeyRing, SigningAlg, MAX_TOKEN_LIFETIME};
use custos_protocol::access_token::{verify_access_token, AccessTokenClaims, VerificationKey};
use custos_store::{SigningKeyRecord, Store, StoreError};
use serde::Serialize;
use std::sync::Arc;

pub struct SigningKeys {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    ring: KeyRing,
    alg: SigningAlg,
    /// Seconds between publishing a new key and signing with it.
    activation_delay: i64,
    /// Access tokens of this server verified lately, by SHA-256 of the
    /// token, with the `kid` that verified them.
    verified: moka::sync::Cache<[u8; 32], Arc<(String, AccessTokenClaims)>>,
}

/// How long a verified access token is remembered (at most: never past
/// its `exp`, never once its key is no longer published).
const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Most verified access tokens remembered.
const VERIFIED_CAPACITY: u64 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum KeyStartError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Key(#[from] KeyError),
}

impl SigningKeys {
    /// Loads the stored keys (on first start: creates one).
    pub async fn start(
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        alg: SigningAlg,
        activation_delay: i64,
        now: i64,
    ) -> Result<Self, KeyStartError> {
        if store.list_signing_keys().await?.is_empty() {
            let first = generate_key(alg, &master, now, now)?;
            store.insert_first_signing_key(&first).await?;
        }
        let ring = KeyRing::empty();
        ring.load(&store.list_signing_keys().await?, &master, now)?;
        Ok(SigningKeys {
            store,
            master,
            ring,
            alg,
            activation_delay,
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_CAPACITY)
                .time_to_live(VERIFIED_TTL)
                .build(),
        })
    }

    /// An access token of this server, if its signature verifies with a
    /// published key, its `iss` is `issuer` and it is unexpired at `now`
    /// (whether it is still active is the store's question).
    ///
    /// A token verified before is remembered by its SHA-256 for up to
    /// [`VERIFIED_TTL`], so that an agent exchanging one token for many
    /// tasks, or a resource server introspecting the token of every call,
    /// pays for the signature once; a remembered token still needs its
    /// key published and `exp` after `now`.
    pub fn verify_access_token(
        &self,
        token: &str,
        issuer: &str,
        now: i64,
    ) -> Option<AccessTokenClaims> {
        let keys = self.verification_keys();
        let digest: [u8; 32] =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())
                .as_ref()
                .try_into()
                .ok()?;
        if let Some(known) = self.verified.get(&digest) {
            let (kid, claims) = known.as_ref();
            return (claims.exp > now
                && claims.iss == issuer
                && keys.iter().any(|k| &k.kid == kid))
            .then(|| claims.clone());
        }
        let claims = verify_access_token(token, &keys, issuer, now)?;
        if let Some(kid) = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid) {
            self.verified
                .insert(digest, Arc::new((kid, claims.clone())));
        }
        Some(claims)
    }

    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Signs `claims` with the key that signs at `now`.
    pub fn sign<C: Serialize>(&self, claims: &C, now: i64) -> Result<String, ServiceError> {
        self.ring.sign_access_token(claims, now).map_err(internal)
    }

    /// The published JWK Set.
    pub fn jwks(&self) -> Arc<serde_json::Value> {
        self.ring.jwks()
    }

    pub fn verification_keys(&self) -> Arc<Vec<VerificationKey>> {
        self.ring.verification_keys()
    }

    pub fn infos(&self) -> Vec<KeyInfo> {
        self.ring.infos()
    }

    /// Re-reads the keys (rotations made by other replicas) and forgets
    /// keys whose tokens have all expired.
    pub async fn refresh(&self, now: i64) -> Result<(), ServiceError> {
        let mut records = self.store.list_signing_keys().await.map_err(internal)?;
        let unpublished =
            |k: &SigningKeyRecord| k.retired_at.is_some_and(|r| r + MAX_TOKEN_LIFETIME <= now);
        // A write only when there is something to delete: this runs every
        // few seconds on every replica.
        if records.iter().any(unpublished) {
            self.store
                .delete_expired_signing_keys(now, MAX_TOKEN_LIFETIME)
                .await
                .map_err(internal)?;
            records.retain(|k| !unpublished(k));
        }
        self.ring
            .load(&records, &self.master, now)
            .map_err(internal)
    }

    /// Publishes a new key now; it signs after the activation delay, and
    /// the current key retires then.
    pub async fn rotate(&self, now: i64) -> Result<KeyInfo, ServiceError> {
        let activates_at = now + self.activation_delay;
        let record = generate_key(self.alg, &self.master, now, activates_at).map_err(internal)?;
        self.store
            .rotate_signing_key(&record)
            .await
            .map_err(internal)?;
        self.refresh(now).await?;
        Ok(KeyInfo {
            kid: record.kid,
            alg: record.alg,
            created_at: now,
            activates_at,
            retired_at: None,
            published_until: None,
        })
    }
}
