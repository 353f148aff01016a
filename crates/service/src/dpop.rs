//! DPoP at the token endpoint (RFC 9449): the pure proof checks of
//! `protocol::dpop`, then what needs state — server nonces and the proof's
//! single use.
//!
//! - Nonces (§8) are stateless: `base64url(window ‖ HMAC(key, window))`
//!   with a key every replica derives from the key encryption key, so a
//!   nonce issued by one replica is accepted by all without a shared store.
//!   A nonce is good in the window it was issued in and the next
//!   ([`NONCE_WINDOW_SECS`] each). Off unless `CUSTOS_DPOP_NONCE` asks for
//!   them.
//! - A proof's `jti` is recorded in the store, per key, until the proof
//!   could no longer pass the `iat` check: a replayed proof is refused on
//!   every replica (§11.1).

use crate::crypto::MasterKey;
use crate::error::{internal, ServiceError};
use crate::request::{ClientProof, RequestContext};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use custos_protocol::dpop::{verify_proof, ProofRules};
use custos_protocol::OAuthError;
use custos_store::Store;
use std::sync::Arc;

/// How long one nonce window lasts, seconds.
pub const NONCE_WINDOW_SECS: i64 = 60;
/// How old a proof's `iat` may be, seconds (§11.1 leaves it to the server).
pub const PROOF_MAX_AGE: i64 = 60;
/// How far in the future a proof's `iat` may be (clock skew), seconds.
pub const PROOF_MAX_SKEW: i64 = 5;

/// A proof that passed: the key the token is to be bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundKey {
    /// RFC 7638 thumbprint of the proof's key: `cnf.jkt`.
    pub jkt: String,
}

pub struct DpopChecker {
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    require_nonce: bool,
}

impl DpopChecker {
    pub fn new(store: Arc<dyn Store>, master: Arc<MasterKey>, require_nonce: bool) -> Self {
        DpopChecker {
            store,
            master,
            require_nonce,
        }
    }

    /// Whether proofs must carry a server nonce.
    pub fn requires_nonce(&self) -> bool {
        self.require_nonce
    }

    /// A fresh server nonce for `now` (the `DPoP-Nonce` header), when
    /// nonces are on.
    pub fn nonce(&self, now: i64) -> Option<String> {
        self.require_nonce
            .then(|| self.nonce_for_window(now.div_euclid(NONCE_WINDOW_SECS)))
    }

    fn nonce_for_window(&self, window: i64) -> String {
        let window = window.to_be_bytes();
        let tag = self.master.nonce_tag(&window);
        let mut bytes = window.to_vec();
        bytes.extend_from_slice(&tag[..16]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn nonce_is_current(&self, nonce: &str, now: i64) -> bool {
        let window = now.div_euclid(NONCE_WINDOW_SECS);
        // Constant time is not needed: a nonce is public, only unforgeable.
        [window, window - 1]
            .iter()
            .any(|w| self.nonce_for_window(*w) == nonce)
    }

    /// Checks the request's `DPoP` header, if any, for a request to
    /// `proof.url` presenting `access_token` (none at the token endpoint).
    /// `None` when the request carries no proof.
    pub async fn check(
        &self,
        proof: &ClientProof,
        access_token: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Option<BoundKey>, ServiceError> {
        let Some(header) = proof.dpop.as_deref() else {
            return Ok(None);
        };
        let now = ctx.now();
        let verified = verify_proof(
            header,
            &ProofRules {
                htm: &proof.method,
                htu: &proof.url,
                now,
                max_age: PROOF_MAX_AGE,
                max_skew: PROOF_MAX_SKEW,
                access_token,
            },
        )?;
        if self.require_nonce {
            let fresh = verified
                .nonce
                .as_deref()
                .is_some_and(|n| self.nonce_is_current(n, now));
            if !fresh {
                let description = if verified.nonce.is_some() {
                    "the DPoP proof's nonce is not current; use the one in the DPoP-Nonce header"
                } else {
                    "this server requires a nonce in DPoP proofs; use the one in the DPoP-Nonce header"
                };
                return Err(ServiceError::UseDpopNonce {
                    nonce: self.nonce_for_window(now.div_euclid(NONCE_WINDOW_SECS)),
                    description: description.into(),
                });
            }
        }
        let namespace = format!("dpop:{}", verified.jkt);
        let first_use = self
            .store
            .record_jti_once(
                &namespace,
                &verified.jti,
                verified.iat + PROOF_MAX_AGE + PROOF_MAX_SKEW,
                now,
            )
            .await
            .map_err(internal)?;
        if !first_use {
            return Err(OAuthError::invalid_dpop_proof(
                "the DPoP proof's jti has been used before (RFC 9449 section 11.1: a proof is used once)",
            )
            .into());
        }
        Ok(Some(BoundKey { jkt: verified.jkt }))
    }
}
