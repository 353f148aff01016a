//! Pushed authorization requests (RFC 9126): the client sends its
//! authorization request to the server directly, authenticated, and gets a
//! `request_uri` to send the person's browser with instead.
//!
//! Nothing is stored: the `request_uri` is the validated request itself,
//! sealed (AES-256-GCM under a key derived from the key encryption key,
//! bound to the client), so any replica can open it and no caller can make
//! custos keep anything. It lives 60 s. RFC 9126 §4 lets a server accept a
//! `request_uri` more than once (a person reloading the page); the code it
//! leads to is single use, and its PKCE challenge belongs to one client
//! session.

use crate::audit::Auditor;
use crate::client_auth::{Authenticator, ClaimedClient, Presented};
use crate::crypto::MasterKey;
use crate::detail_types::DetailTypes;
use crate::dpop::DpopChecker;
use crate::error::{internal, ServiceError};
use crate::request::{ClientProof, RequestContext};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use custos_governance::{event_type, Outcome};
use custos_protocol::authorize::{client_and_redirect, resolve_redirect_uri, validate};
use custos_protocol::form::FormParams;
use custos_protocol::OAuthError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `request_uri` prefix (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long a pushed request may be used, seconds.
pub const PUSHED_LIFETIME: i64 = 60;
/// Parameters that authenticate the client at the PAR endpoint and are not
/// part of the authorization request.
const CLIENT_AUTHENTICATION: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

/// The answer of the PAR endpoint (RFC 9126 §2.2).
#[derive(Debug, Clone, Serialize)]
pub struct PushedRequest {
    pub request_uri: String,
    pub expires_in: i64,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    client_id: String,
    exp: i64,
    /// The authorization request's parameters, form-encoded.
    params: String,
}

pub struct PushedAuthorization {
    authenticator: Arc<Authenticator>,
    master: Arc<MasterKey>,
    dpop: Arc<DpopChecker>,
    audit: Auditor,
    detail_types: Arc<DetailTypes>,
}

impl PushedAuthorization {
    pub(crate) fn new(
        authenticator: Arc<Authenticator>,
        master: Arc<MasterKey>,
        dpop: Arc<DpopChecker>,
        audit: Auditor,
        detail_types: Arc<DetailTypes>,
    ) -> Self {
        PushedAuthorization {
            authenticator,
            master,
            dpop,
            audit,
            detail_types,
        }
    }

    /// RFC 9126 §2: authenticates the client, validates the request as the
    /// authorization endpoint would, and answers with a `request_uri`.
    pub async fn push(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
    ) -> Result<PushedRequest, ServiceError> {
        let mut claimed = ClaimedClient::default();
        let result = self.push_unaudited(form, proof, ctx, &mut claimed).await;
        if let Err(error) = &result {
            let mut event =
                self.audit
                    .event(event_type::AUTHORIZATION_REFUSED, Outcome::Failure, ctx);
            event.client_id = claimed.client_id.clone();
            event.reason = Some(crate::audit::bounded(
                &format!("pushed authorization request: {error}"),
                crate::audit::MAX_FIELD,
            ));
            self.audit.record_unauthenticated(event, &claimed).await;
        }
        result
    }

    async fn push_unaudited(
        &self,
        form: &FormParams,
        proof: &ClientProof,
        ctx: &RequestContext,
        claimed: &mut ClaimedClient,
    ) -> Result<PushedRequest, ServiceError> {
        let client = self
            .authenticator
            .authenticate(&Presented { form, proof }, ctx, claimed)
            .await?;
        if form.contains("request_uri") {
            return Err(OAuthError::invalid_request(
                "request_uri must not be pushed (RFC 9126 section 2.1)",
            )
            .into());
        }
        let sent = client_and_redirect(form)?;
        if sent.client_id != client.client_id() {
            return Err(OAuthError::invalid_request(
                "client_id differs from the authenticated client (RFC 9126 section 2.1)",
            )
            .into());
        }
        let redirect_uri = resolve_redirect_uri(
            sent.redirect_uri.as_deref(),
            &client.metadata().redirect_uris,
        )
        .map_err(|e| OAuthError::new(custos_protocol::ErrorCode::InvalidRequest, e.description))?;
        validate(form, client.metadata(), redirect_uri)?;
        // RFC 9396 §2 at push time (the authorization endpoint checks it
        // again when the request is used: types cannot change meanwhile).
        if let Some(raw) = form.get("authorization_details") {
            self.detail_types.parse(raw).await?;
        }
        // RFC 9449 §10.1: a DPoP proof at the PAR endpoint binds the code
        // to its key, as `dpop_jkt` would.
        let mut params = form.encode_except(&CLIENT_AUTHENTICATION);
        if let Some(key) = self.dpop.check(proof, None, ctx).await? {
            match form.get("dpop_jkt") {
                Some(jkt) if jkt != key.jkt => {
                    return Err(OAuthError::invalid_request(
                        "dpop_jkt differs from the key of the request's DPoP proof (RFC 9449 section 10.1)",
                    )
                    .into())
                }
                Some(_) => {}
                None => {
                    params.push_str(if params.is_empty() { "" } else { "&" });
                    params.push_str("dpop_jkt=");
                    params.push_str(&key.jkt);
                }
            }
        }
        let sealed = Sealed {
            client_id: client.client_id().to_owned(),
            exp: ctx.now() + PUSHED_LIFETIME,
            params,
        };
        let plaintext = serde_json::to_vec(&sealed).map_err(internal)?;
        let ciphertext = self
            .master
            .seal_handout(&plaintext, aad(client.client_id()).as_bytes())
            .map_err(internal)?;
        Ok(PushedRequest {
            request_uri: format!("{REQUEST_URI_PREFIX}{}", URL_SAFE_NO_PAD.encode(ciphertext)),
            expires_in: PUSHED_LIFETIME,
        })
    }
}

fn aad(client_id: &str) -> String {
    format!("par\n{client_id}")
}

/// The pushed request a `request_uri` stands for, if it is one of ours,
/// pushed by `client_id` and unexpired.
pub(crate) fn open_pushed(
    master: &MasterKey,
    request_uri: &str,
    client_id: &str,
    now: i64,
) -> Result<FormParams, OAuthError> {
    let expired = || {
        OAuthError::invalid_request(
            "request_uri is unknown, expired, or was pushed by another client (RFC 9126 section 4)",
        )
    };
    let encoded = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .filter(|e| e.len() <= 16 * 1024)
        .ok_or_else(expired)?;
    let ciphertext = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| expired())?;
    let plaintext = master
        .open_handout(&ciphertext, aad(client_id).as_bytes())
        .ok_or_else(expired)?;
    let sealed: Sealed = serde_json::from_slice(&plaintext).map_err(|_| expired())?;
    if sealed.client_id != client_id || sealed.exp <= now {
        return Err(expired());
    }
    FormParams::parse(sealed.params.as_bytes())
}
