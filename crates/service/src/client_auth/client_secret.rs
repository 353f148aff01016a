//! `client_secret_basic` and `client_secret_post` (RFC 6749 §2.3.1): a
//! server-issued 256-bit secret, compared in constant time as HMAC-SHA-256
//! under the server pepper. The previous secret keeps working until its
//! rotation grace ends.

use super::{failed, Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::crypto::MasterKey;
use crate::error::ServiceError;
use crate::request::RequestContext;
use async_trait::async_trait;
use custos_protocol::client_auth::{basic_claim, post_claim, Claim};
use custos_protocol::metadata::AuthMethod;
use custos_protocol::OAuthError;
use std::sync::Arc;

pub(crate) struct ClientSecret {
    method: AuthMethod,
    master: Arc<MasterKey>,
}

impl ClientSecret {
    /// `client_secret_basic`: the `Authorization: Basic` header.
    pub fn basic(master: Arc<MasterKey>) -> Self {
        ClientSecret {
            method: AuthMethod::ClientSecretBasic,
            master,
        }
    }

    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    pub fn post(master: Arc<MasterKey>) -> Self {
        ClientSecret {
            method: AuthMethod::ClientSecretPost,
            master,
        }
    }
}

#[async_trait]
impl ClientAuthMethod for ClientSecret {
    fn method(&self) -> AuthMethod {
        self.method
    }

    fn claim(&self, request: &Presented<'_>) -> Result<Option<Claim>, OAuthError> {
        match self.method {
            AuthMethod::ClientSecretBasic => {
                basic_claim(request.proof.authorization.as_deref(), request.form)
            }
            _ => post_claim(request.form),
        }
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        claim: &Claim,
        _request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let secret = claim.credential.as_ref().ok_or_else(failed)?;
        let record = &client.record;
        let matches = |hash: &[u8]| self.master.verify_client_secret(secret.expose(), hash);
        let current = record.secret_hash.as_deref().is_some_and(matches);
        let previous = record
            .previous_secret_hash
            .as_deref()
            .filter(|_| {
                record
                    .previous_secret_expires_at
                    .is_some_and(|t| ctx.now() < t)
            })
            .is_some_and(matches);
        if current || previous {
            Ok(Attestation::default())
        } else {
            Err(failed().into())
        }
    }
}
