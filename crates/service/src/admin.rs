//! The admin API's use cases: people, resources, initial access tokens, the
//! client inventory, the audit trail, secret rotation, client removal and
//! signing-key rotation. Callers have already checked the admin token with
//! [`Admin::authorize`].

use crate::audit::Auditor;
use crate::clients::{changed_meanwhile, ClientDirectory};
use crate::crypto::{random_token, sha256, MasterKey};
use crate::error::{internal, ServiceError};
use crate::guard::BearerGuard;
use crate::keyring::KeyInfo;
use crate::registration::disable_client;
use crate::request::RequestContext;
use crate::signing_keys::SigningKeys;
use crate::trusted_issuers::TrustedIssuers;
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use argon2::Argon2;
use custos_governance::{event_type, AuditEvent, EventFilter, Outcome};
use custos_protocol::OAuthError;
use custos_store::{InitialAccessTokenRecord, Store, StoreError, UserRecord};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest lifetime of an initial access token: 30 days.
const MAX_INITIAL_ACCESS_TOKEN_LIFETIME: i64 = 30 * 86_400;

pub struct Admin {
    store: Arc<dyn Store>,
    clients: Arc<ClientDirectory>,
    keys: Arc<SigningKeys>,
    master: Arc<MasterKey>,
    guard: Arc<BearerGuard>,
    audit: Auditor,
    /// Seconds a rotated-out client secret keeps working.
    secret_rotation_grace: i64,
    trusted_issuers: Arc<TrustedIssuers>,
    /// URLs on loopback or private addresses are accepted (insecure).
    allow_private_urls: bool,
    policies: Arc<crate::policy::Policies>,
    detail_types: Arc<crate::detail_types::DetailTypes>,
}

/// What the admin use cases are configured with.
pub(crate) struct AdminSettings {
    /// Seconds a rotated-out client secret keeps working.
    pub secret_rotation_grace: i64,
    pub trusted_issuers: Arc<TrustedIssuers>,
    /// URLs on loopback or private addresses are accepted (insecure).
    pub allow_private_urls: bool,
    pub policies: Arc<crate::policy::Policies>,
    pub detail_types: Arc<crate::detail_types::DetailTypes>,
}

mod policies;
mod resources;
mod trusted_issuers;

/// Policy refusals the inventory shows per client.
const LAST_DENIALS: usize = 5;

impl Admin {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        clients: Arc<ClientDirectory>,
        keys: Arc<SigningKeys>,
        master: Arc<MasterKey>,
        guard: Arc<BearerGuard>,
        audit: Auditor,
        settings: AdminSettings,
    ) -> Self {
        Admin {
            store,
            clients,
            keys,
            master,
            guard,
            audit,
            secret_rotation_grace: settings.secret_rotation_grace,
            trusted_issuers: settings.trusted_issuers,
            allow_private_urls: settings.allow_private_urls,
            policies: settings.policies,
            detail_types: settings.detail_types,
        }
    }

    /// Checks the admin bearer token in constant time, under the
    /// brute-force brake; a wrong token is audited.
    pub async fn authorize(
        &self,
        bearer: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let result = self
            .guard
            .braked(ctx, async {
                match bearer {
                    Some(token) if self.guard.is_admin_token(token) => Ok(()),
                    None => Err(ServiceError::missing_credentials(
                        "the admin API requires Authorization: Bearer <admin token>",
                    )),
                    Some(_) => {
                        Err(OAuthError::invalid_token("the admin bearer token is not valid").into())
                    }
                }
            })
            .await;
        if let Err(error @ ServiceError::OAuth(_)) = &result {
            let mut event = self
                .audit
                .event(event_type::ADMIN_REFUSED, Outcome::Failure, ctx);
            event.reason = Some(error.to_string());
            self.audit.record(event).await;
        }
        result
    }

    pub fn enabled(&self) -> bool {
        self.guard.admin_enabled()
    }

    /// `POST /admin/users`: a person who can log in; the password is stored
    /// as an Argon2id hash.
    pub async fn create_user(
        &self,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        #[derive(Deserialize)]
        struct NewUser {
            username: String,
            password: String,
        }
        let user: NewUser = parse_body(body)?;
        let username = user.username.trim();
        if username.is_empty() || username.len() > 128 || username.chars().any(char::is_control) {
            return Err(OAuthError::invalid_request(
                "username must be 1 to 128 characters without control characters",
            )
            .into());
        }
        if user.password.chars().count() < 8 || user.password.len() > 1024 {
            return Err(
                OAuthError::invalid_request("password must be 8 to 1024 characters").into(),
            );
        }
        let salt = SaltString::generate(&mut OsRng);
        let password_hash = Argon2::default()
            .hash_password(user.password.as_bytes(), &salt)
            .map_err(internal)?
            .to_string();
        let now = ctx.now();
        let record = UserRecord {
            username: username.to_owned(),
            password_hash,
            created_at: now,
        };
        self.store
            .insert_user(&record)
            .await
            .map_err(conflict_as("a user with this username already exists"))?;
        let mut event = self
            .audit
            .event(event_type::USER_CREATED, Outcome::Success, ctx);
        event.reason = Some(format!("user {username}"));
        self.audit.record(event).await;
        Ok(json!({"username": username, "created_at": now}))
    }

    /// `POST /admin/initial-access-tokens`: `{"expires_in"?, "description"?}`.
    pub async fn create_initial_access_token(
        &self,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        #[derive(Deserialize, Default)]
        struct NewToken {
            expires_in: Option<i64>,
            description: Option<String>,
        }
        let request: NewToken = if body.iter().all(u8::is_ascii_whitespace) {
            NewToken::default()
        } else {
            parse_body(body)?
        };
        let expires_in = request.expires_in.unwrap_or(86_400);
        if !(1..=MAX_INITIAL_ACCESS_TOKEN_LIFETIME).contains(&expires_in) {
            return Err(OAuthError::invalid_request(format!(
                "expires_in must be between 1 and {MAX_INITIAL_ACCESS_TOKEN_LIFETIME} seconds"
            ))
            .into());
        }
        let token = random_token(32);
        let now = ctx.now();
        let record = InitialAccessTokenRecord {
            token_hash: sha256(&token),
            created_at: now,
            expires_at: now + expires_in,
            description: request.description.map(|d| d.chars().take(256).collect()),
        };
        self.store
            .insert_initial_access_token(&record)
            .await
            .map_err(internal)?;
        Ok(json!({"initial_access_token": token, "expires_at": record.expires_at}))
    }

    /// `GET /admin/clients`: the inventory, one entry per client.
    pub async fn client_inventory(&self, ctx: &RequestContext) -> Result<Value, ServiceError> {
        let now = ctx.now();
        self.audit.flush().await;
        let clients = self.clients.list().await?;
        let last_used: HashMap<String, i64> = self
            .store
            .client_last_used()
            .await
            .map_err(internal)?
            .into_iter()
            .collect();
        let policies = self.policies.current();
        let client_ids: Vec<&str> = clients.iter().map(|(c, _)| c.client_id.as_str()).collect();
        let mentioning = crate::policy::policies_mentioning(&policies.records, &client_ids);
        let mut out = Vec::with_capacity(clients.len());
        for (client, metadata) in clients {
            let denials = self.last_policy_denials(&client.client_id).await?;
            let live_families = self
                .store
                .list_live_grants(&client.client_id, now)
                .await
                .map_err(internal)?
                .len();
            let method = metadata.token_endpoint_auth_method;
            out.push(json!({
                "client_id": client.client_id,
                "client_name": metadata.client_name,
                "status": if client.disabled_at.is_some() { "disabled" } else { "active" },
                "token_endpoint_auth_method": method.as_str(),
                "uses_static_secret": method.uses_secret(),
                "grant_types": metadata.grant_types,
                "redirect_uris": metadata.redirect_uris,
                "pkce_required": metadata.allows_grant("authorization_code"),
                "dpop_bound_access_tokens": metadata.dpop_bound_access_tokens,
                "require_pushed_authorization_requests": metadata.require_pushed_authorization_requests,
                "refresh_token_reuse_grace": metadata.refresh_token_reuse_grace,
                "live_refresh_families": live_families,
                "scope": metadata.scope,
                "contacts": metadata.contacts,
                "owner": metadata.owner,
                "tags": metadata.tags,
                "review_interval": metadata.review_interval,
                "access_token_lifetime": metadata.access_token_lifetime,
                "created_at": client.created_at,
                "updated_at": client.updated_at,
                "disabled_at": client.disabled_at,
                "secret_created_at": client.secret_created_at,
                "secret_age_days": client.secret_created_at.map(|t| (now - t).max(0) / 86_400),
                "previous_secret_expires_at": client.previous_secret_expires_at.filter(|t| *t > now),
                "last_used_at": last_used.get(&client.client_id).map(|ms| ms / 1000),
                "attestation": attestation_summary(&metadata),
                "policies": mentioning.get(&client.client_id).cloned().unwrap_or_default(),
                "last_policy_denials": denials,
                // draft-ietf-oauth-client-id-metadata-document: where the
                // client's metadata comes from, and when it was last
                // fetched (and stored: the document it was last issued
                // something under).
                "client_id_metadata_document": custos_protocol::cimd::is_document_client_id_or_http(&client.client_id)
                    .then(|| json!({"url": client.client_id, "last_fetched_at": client.updated_at})),
            }));
        }
        Ok(Value::Array(out))
    }

    /// The client's latest token requests refused by policy (at most
    /// [`LAST_DENIALS`]), newest first.
    async fn last_policy_denials(&self, client_id: &str) -> Result<Vec<Value>, ServiceError> {
        let refused = self
            .store
            .query_events(&EventFilter {
                client_id: Some(client_id.to_owned()),
                event_type: Some(event_type::TOKEN_REFUSED.to_owned()),
                since_ms: None,
                limit: 100,
            })
            .await
            .map_err(internal)?;
        Ok(refused
            .iter()
            .rev()
            .filter(|e| e.policy.as_deref().is_some_and(|p| p.starts_with("deny")))
            .take(LAST_DENIALS)
            .map(|e| {
                json!({
                    "at": e.time_ms / 1000,
                    "grant_type": e.grant_type,
                    "resource": e.resource,
                    "policy": e.policy,
                })
            })
            .collect())
    }

    /// `GET /admin/events`.
    pub async fn audit_events(
        &self,
        filter: &EventFilter,
    ) -> Result<Vec<AuditEvent>, ServiceError> {
        self.audit.flush().await;
        self.store.query_events(filter).await.map_err(internal)
    }

    /// `POST /admin/clients/{id}/rotate-secret`: a new secret; the old one
    /// keeps working for the grace period so deployments can roll over.
    pub async fn rotate_client_secret(
        &self,
        client_id: &str,
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        let (mut record, metadata) = self.active_client(client_id).await?;
        if !metadata.token_endpoint_auth_method.uses_secret() {
            return Err(OAuthError::invalid_request(format!(
                "this client authenticates with {} and has no secret",
                metadata.token_endpoint_auth_method.as_str()
            ))
            .into());
        }
        let now = ctx.now();
        let secret = random_token(32);
        let previous_expires_at = now + self.secret_rotation_grace;
        record.previous_secret_hash = record.secret_hash.take();
        record.previous_secret_expires_at = Some(previous_expires_at);
        record.secret_hash = Some(self.master.hash_client_secret(&secret));
        record.secret_created_at = Some(now);
        record.updated_at = now;
        if !self.clients.update(&record).await? {
            return Err(changed_meanwhile());
        }
        let mut event = self
            .audit
            .event(event_type::CLIENT_SECRET_ROTATED, Outcome::Success, ctx);
        event.client_id = Some(client_id.to_owned());
        self.audit.record(event).await;
        Ok(json!({"client_secret": secret, "previous_expires_at": previous_expires_at}))
    }

    /// `DELETE /admin/clients/{id}`: the client can no longer
    /// authenticate, manage itself or hold an active token.
    pub async fn disable_client(
        &self,
        client_id: &str,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let (record, _) = self.active_client(client_id).await?;
        disable_client(&self.clients, &self.audit, record, ctx).await
    }

    /// `POST /admin/keys/rotate`: publishes a new signing key now; it signs
    /// after the activation delay, and the current key retires then.
    pub async fn rotate_signing_key(&self, ctx: &RequestContext) -> Result<KeyInfo, ServiceError> {
        let info = self.keys.rotate(ctx.now()).await?;
        let mut event = self
            .audit
            .event(event_type::KEY_ROTATED, Outcome::Success, ctx);
        event.reason = Some(format!(
            "new key {} signs from {}",
            info.kid, info.activates_at
        ));
        self.audit.record(event).await;
        Ok(info)
    }

    /// `GET /admin/consents?username=`: what people remembered consenting
    /// to.
    pub async fn consents(&self, username: Option<&str>) -> Result<Value, ServiceError> {
        let consents = self.store.list_consents(username).await.map_err(internal)?;
        Ok(Value::Array(
            consents
                .into_iter()
                .map(|c| {
                    json!({"username": c.username, "client_id": c.client_id,
                           "scope": c.scope, "created_at": c.created_at})
                })
                .collect(),
        ))
    }

    /// `DELETE /admin/consents/{username}/{client_id}`: the person is asked
    /// again next time. (Tokens already issued stay valid; revoke those
    /// through the client or its refresh tokens.)
    pub async fn revoke_consents(
        &self,
        username: &str,
        client_id: &str,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let removed = self
            .store
            .revoke_consents(username, client_id)
            .await
            .map_err(internal)?;
        if removed == 0 {
            return Err(ServiceError::not_found(
                "this person has no remembered consent for this client",
            ));
        }
        let mut event = self
            .audit
            .event(event_type::CONSENT_REVOKED, Outcome::Success, ctx);
        event.client_id = Some(client_id.to_owned());
        event.reason = Some(format!(
            "user {}: {removed} consents forgotten",
            crate::audit::bounded(username, 64)
        ));
        self.audit.record(event).await;
        Ok(())
    }

    /// `GET /admin/keys`.
    pub fn signing_keys(&self) -> Vec<KeyInfo> {
        self.keys.infos()
    }
}

impl Admin {
    /// An enabled client for an admin call, or `not_found`.
    async fn active_client(
        &self,
        client_id: &str,
    ) -> Result<
        (
            custos_store::ClientRecord,
            custos_protocol::metadata::ClientMetadata,
        ),
        ServiceError,
    > {
        // The stored client: an operator disables a document client
        // whatever its document says (or whether it can be fetched now).
        self.clients
            .active_stored(client_id)
            .await?
            .ok_or_else(|| ServiceError::not_found("no active client with this client_id"))
    }
}

/// How the inventory shows what a client's platform must prove: its
/// registered workload identities and whether its tokens are bound to its
/// certificate (`null` when the client proves nothing of the kind).
fn attestation_summary(metadata: &custos_protocol::metadata::ClientMetadata) -> Value {
    let a = &metadata.attestation;
    let tls = [
        ("tls_client_auth_subject_dn", &a.tls_client_auth_subject_dn),
        ("tls_client_auth_san_dns", &a.tls_client_auth_san_dns),
        ("tls_client_auth_san_uri", &a.tls_client_auth_san_uri),
        ("tls_client_auth_san_ip", &a.tls_client_auth_san_ip),
        ("tls_client_auth_san_email", &a.tls_client_auth_san_email),
    ]
    .into_iter()
    .find_map(|(name, value)| value.as_ref().map(|v| json!({ name: v })));
    let federated: Vec<Value> = a
        .federated_credentials
        .iter()
        .map(|c| json!({"issuer": c.issuer, "subject": c.subject}))
        .collect();
    if tls.is_none()
        && a.spiffe_id.is_none()
        && federated.is_empty()
        && !a.tls_client_certificate_bound_access_tokens
    {
        return Value::Null;
    }
    json!({
        "spiffe_id": a.spiffe_id,
        "tls_client_auth": tls,
        "federated_credentials": federated,
        "certificate_bound_access_tokens": a.tls_client_certificate_bound_access_tokens,
    })
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, OAuthError> {
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::invalid_request(format!("malformed JSON body: {e}")))
}

fn conflict_as(description: &'static str) -> impl Fn(StoreError) -> ServiceError {
    move |error| match error {
        StoreError::Conflict => ServiceError::conflict(description),
        other => internal(other),
    }
}
