//! Dynamic client registration (RFC 7591) and its management protocol
//! (RFC 7592).
//!
//! Registration needs an initial access token (the admin token counts as
//! one). Management needs the client's registration access token. Secrets
//! and tokens are returned once and stored only as hashes.

use crate::audit::{bounded, Auditor, MAX_FIELD};
use crate::clients::{changed_meanwhile, ClientDirectory};
use crate::crypto::{constant_time_eq, random_token, sha256, MasterKey};
use crate::error::{internal, ServiceError};
use crate::guard::BearerGuard;
use crate::request::RequestContext;
use custos_governance::{event_type, Outcome};
use custos_protocol::discovery::paths;
use custos_protocol::metadata::self_service::check_update;
use custos_protocol::metadata::{validate_registration, ClientMetadata, RegistrationRules};
use custos_protocol::OAuthError;
use custos_store::{ClientRecord, Store};
use serde_json::{json, Value};
use std::sync::Arc;

/// Bytes of randomness in a client_id.
const CLIENT_ID_BYTES: usize = 16;
/// Bytes of randomness in secrets and bearer tokens: 256 bits.
const SECRET_BYTES: usize = 32;

pub struct Registration {
    issuer: String,
    clients: Arc<ClientDirectory>,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    guard: Arc<BearerGuard>,
    rules: RegistrationRules,
    audit: Auditor,
    /// Registrations with an initial access token, per source network and
    /// minute (MCP deprecates dynamic registration; it stays for older
    /// clients, braked).
    registrations: crate::brake::Brake,
}

/// Redirect URIs a client registered with an initial access token may
/// have (the admin token: `protocol::metadata::MAX_REDIRECT_URIS`).
pub const MAX_SELF_REGISTERED_REDIRECT_URIS: usize = 10;

/// The shape of a self-registered client's redirect URIs: at most
/// [`MAX_SELF_REGISTERED_REDIRECT_URIS`], and the https ones on one host —
/// a client registered by anyone holding an initial access token cannot
/// collect landing pages on many sites.
fn check_redirect_shape(metadata: &ClientMetadata) -> Result<(), OAuthError> {
    if metadata.redirect_uris.len() > MAX_SELF_REGISTERED_REDIRECT_URIS {
        return Err(OAuthError::invalid_redirect_uri(format!(
            "at most {MAX_SELF_REGISTERED_REDIRECT_URIS} redirect_uris without the admin token"
        )));
    }
    let mut hosts: Vec<String> = metadata
        .redirect_uris
        .iter()
        .filter_map(|u| custos_protocol::redirect::https_host(u))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    if hosts.len() > 1 {
        return Err(OAuthError::invalid_redirect_uri(
            "the https redirect_uris must all be on one host without the admin token",
        ));
    }
    Ok(())
}

impl Registration {
    pub(crate) fn new(
        issuer: String,
        clients: Arc<ClientDirectory>,
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        guard: Arc<BearerGuard>,
        rules: RegistrationRules,
        audit: Auditor,
    ) -> Self {
        Registration {
            issuer,
            clients,
            store,
            master,
            guard,
            rules,
            audit,
            registrations: crate::brake::Brake::default(),
        }
    }

    /// What registration accepts (derived from the grant and client
    /// authentication tables).
    pub fn rules(&self) -> &RegistrationRules {
        &self.rules
    }

    /// RFC 7591 §3: registers a client and returns the §3.2.1 response body.
    pub async fn register_client(
        &self,
        bearer: Option<&str>,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        let result = self.register_checked(bearer, body, ctx).await;
        let mut event = match &result {
            Ok(_) => self
                .audit
                .event(event_type::CLIENT_REGISTERED, Outcome::Success, ctx),
            Err(_) => self
                .audit
                .event(event_type::REGISTRATION_REFUSED, Outcome::Failure, ctx),
        };
        match &result {
            Ok(body) => {
                event.client_id = body["client_id"].as_str().map(str::to_owned);
                event.scope = body["scope"].as_str().map(str::to_owned);
                event.reason = body["token_endpoint_auth_method"]
                    .as_str()
                    .map(|m| format!("token_endpoint_auth_method {m}"));
            }
            Err(error) => event.reason = Some(bounded(&error.to_string(), MAX_FIELD)),
        }
        self.audit.record(event).await;
        result
    }

    async fn register_checked(
        &self,
        bearer: Option<&str>,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        // Refusals are audited by `register_client`.
        let admin = self
            .guard
            .braked(ctx, self.check_initial_access_token(bearer, ctx))
            .await?;
        let metadata = validate_registration(&parse_json(body)?, &self.rules)?;
        if !admin {
            check_redirect_shape(&metadata)?;
            let key = format!("register:{}", crate::authorize::network_of(ctx.source()));
            if let Some(retry_after) = self.registrations.attempt(&key, ctx.now()) {
                return Err(ServiceError::Throttled {
                    retry_after,
                    description: format!(
                        "too many clients registered from this network; try again in {retry_after} s"
                    ),
                });
            }
            if let Some(field) = metadata.attestation.identity_fields().first() {
                return Err(OAuthError::invalid_client_metadata(format!(
                    "{field} names a workload identity that authenticates the client; only the admin token may register one (an initial access token could otherwise claim another workload's identity)"
                ))
                .into());
            }
        }
        let now = ctx.now();
        let secret = metadata
            .token_endpoint_auth_method
            .uses_secret()
            .then(|| random_token(SECRET_BYTES));
        let registration_token = random_token(SECRET_BYTES);
        let record = ClientRecord {
            client_id: random_token(CLIENT_ID_BYTES),
            metadata_json: serde_json::to_string(&metadata).map_err(internal)?,
            secret_hash: secret.as_deref().map(|s| self.master.hash_client_secret(s)),
            secret_created_at: secret.as_ref().map(|_| now),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            registration_token_hash: Some(sha256(&registration_token)),
            created_at: now,
            updated_at: now,
            disabled_at: None,
            version: 1,
        };
        self.clients.insert(&record).await?;
        Ok(self.client_information(
            &record,
            &metadata,
            secret.as_deref(),
            Some(&registration_token),
        ))
    }

    /// RFC 7592 §2.1: the client's current configuration, with a new
    /// registration access token.
    pub async fn read_registration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        let (mut record, metadata) = self.managed_client(client_id, bearer, ctx).await?;
        let registration_token = self.rotate_registration_token(&mut record);
        if !self.clients.update(&record).await? {
            return Err(changed_meanwhile());
        }
        Ok(self.client_information(&record, &metadata, None, Some(&registration_token)))
    }

    /// RFC 7592 §3 requires the registration access token in every client
    /// information response, and only its hash is stored, so each read or
    /// update issues a new one (§2.1 allows this); the old one stops working.
    fn rotate_registration_token(&self, record: &mut ClientRecord) -> String {
        let token = random_token(SECRET_BYTES);
        record.registration_token_hash = Some(sha256(&token));
        token
    }

    /// RFC 7592 §2.2: replaces the client's metadata. The body must name the
    /// client; a `client_secret` in it must be the current one. A new secret
    /// is issued only when the client moves to a secret-based method. The
    /// update may narrow the client, never widen it (`self_service`); an
    /// omitted `access_token_lifetime` keeps the registered one.
    pub async fn update_registration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        let (record, current) = self.managed_client(client_id, bearer, ctx).await?;
        let result = self
            .apply_update(client_id, record, &current, body, ctx)
            .await;
        self.refused_unless_ok(client_id, result, ctx).await
    }

    async fn apply_update(
        &self,
        client_id: &str,
        mut record: ClientRecord,
        current: &ClientMetadata,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<Value, ServiceError> {
        let mut json = parse_json(body)?;
        let object = json.as_object_mut().ok_or_else(|| {
            OAuthError::invalid_client_metadata("the request must be a JSON object")
        })?;
        if object.get("client_id").and_then(Value::as_str) != Some(client_id) {
            return Err(OAuthError::invalid_request(
                "the request must include this client's client_id (RFC 7592 §2.2)",
            )
            .into());
        }
        for forbidden in [
            "registration_access_token",
            "registration_client_uri",
            "client_secret_expires_at",
            "client_id_issued_at",
        ] {
            if object.contains_key(forbidden) {
                return Err(OAuthError::invalid_request(format!(
                    "{forbidden} must not be sent in an update (RFC 7592 §2.2)"
                ))
                .into());
            }
        }
        if let Some(secret) = object.get("client_secret") {
            let matches = secret
                .as_str()
                .zip(record.secret_hash.as_deref())
                .is_some_and(|(s, h)| self.master.verify_client_secret(s, h));
            if !matches {
                return Err(OAuthError::invalid_request(
                    "client_secret does not match the current secret",
                )
                .into());
            }
        }
        if !object.contains_key("access_token_lifetime") {
            object.insert(
                "access_token_lifetime".into(),
                current.access_token_lifetime.into(),
            );
        }
        let metadata = validate_registration(&json, &self.rules)?;
        let changes = check_update(current, &metadata)?;
        let now = ctx.now();
        let mut new_secret = None;
        if metadata.token_endpoint_auth_method.uses_secret() {
            if record.secret_hash.is_none() {
                let secret = random_token(SECRET_BYTES);
                record.secret_hash = Some(self.master.hash_client_secret(&secret));
                record.secret_created_at = Some(now);
                new_secret = Some(secret);
            }
        } else {
            record.secret_hash = None;
            record.secret_created_at = None;
            record.previous_secret_hash = None;
            record.previous_secret_expires_at = None;
        }
        record.metadata_json = serde_json::to_string(&metadata).map_err(internal)?;
        record.updated_at = now;
        let registration_token = self.rotate_registration_token(&mut record);
        if !self.clients.update(&record).await? {
            return Err(changed_meanwhile());
        }
        let mut event = self
            .audit
            .event(event_type::CLIENT_UPDATED, Outcome::Success, ctx);
        event.client_id = Some(client_id.to_owned());
        event.scope = metadata.scope.clone();
        event.reason = Some(bounded(
            &format!(
                "RFC 7592 update; changed: {}; scope before: '{}'",
                if changes.is_empty() {
                    "nothing".to_owned()
                } else {
                    changes.fields.join(", ")
                },
                current.scope.as_deref().unwrap_or("")
            ),
            MAX_FIELD,
        ));
        self.audit.record(event).await;
        Ok(self.client_information(
            &record,
            &metadata,
            new_secret.as_deref(),
            Some(&registration_token),
        ))
    }

    /// RFC 7592 §2.3: deprovisions the client (disabled; its tokens stop
    /// being active everywhere).
    pub async fn delete_registration(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), ServiceError> {
        let (record, _) = self.managed_client(client_id, bearer, ctx).await?;
        disable_client(&self.clients, &self.audit, record, ctx).await
    }

    /// Loads a client for RFC 7592 management, checking its registration
    /// access token. Every failure is the same 401 (§2: do not reveal
    /// whether the client exists).
    async fn managed_client(
        &self,
        client_id: &str,
        bearer: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(ClientRecord, ClientMetadata), ServiceError> {
        // Registration access tokens are 256-bit random: not braked.
        let result = self.managed_client_unaudited(client_id, bearer).await;
        self.refused_unless_ok(client_id, result, ctx).await
    }

    /// Audits a refused RFC 7592 request.
    async fn refused_unless_ok<T>(
        &self,
        client_id: &str,
        result: Result<T, ServiceError>,
        ctx: &RequestContext,
    ) -> Result<T, ServiceError> {
        if let Err(error) = &result {
            let mut event = self
                .audit
                .event(event_type::MANAGEMENT_REFUSED, Outcome::Failure, ctx);
            event.client_id = Some(bounded(client_id, MAX_FIELD));
            event.reason = Some(bounded(&error.to_string(), MAX_FIELD));
            self.audit.record(event).await;
        }
        result
    }

    async fn managed_client_unaudited(
        &self,
        client_id: &str,
        bearer: Option<&str>,
    ) -> Result<(ClientRecord, ClientMetadata), ServiceError> {
        let bearer = bearer.ok_or_else(|| {
            ServiceError::missing_credentials(
                "client management requires the registration access token as a Bearer token",
            )
        })?;
        let (record, metadata) = self
            .clients
            .active(client_id)
            .await?
            .ok_or_else(invalid_registration_token)?;
        let stored = record
            .registration_token_hash
            .as_deref()
            .ok_or_else(invalid_registration_token)?;
        if !constant_time_eq(&sha256(bearer), stored) {
            return Err(invalid_registration_token());
        }
        Ok((record, metadata))
    }

    /// The admin token (`true`), or an unexpired stored initial access
    /// token (`false`).
    async fn check_initial_access_token(
        &self,
        bearer: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<bool, ServiceError> {
        let bearer = bearer.ok_or_else(|| {
            ServiceError::missing_credentials(
                "registration requires an initial access token as a Bearer token",
            )
        })?;
        if self.guard.is_admin_token(bearer) {
            return Ok(true);
        }
        let found = self
            .store
            .get_initial_access_token(&sha256(bearer))
            .await
            .map_err(internal)?;
        match found {
            Some(token) if token.expires_at > ctx.now() => Ok(false),
            _ => Err(
                OAuthError::invalid_token("the initial access token is invalid or expired").into(),
            ),
        }
    }

    /// RFC 7591 §3.2.1 client information response.
    fn client_information(
        &self,
        record: &ClientRecord,
        metadata: &ClientMetadata,
        secret: Option<&str>,
        registration_token: Option<&str>,
    ) -> Value {
        let mut body = serde_json::to_value(metadata).unwrap_or_else(|_| json!({}));
        if let Some(object) = body.as_object_mut() {
            object.insert("client_id".into(), record.client_id.clone().into());
            object.insert("client_id_issued_at".into(), record.created_at.into());
            if let Some(secret) = secret {
                object.insert("client_secret".into(), secret.into());
            }
            if metadata.token_endpoint_auth_method.uses_secret() {
                object.insert("client_secret_expires_at".into(), 0.into());
            }
            if let Some(token) = registration_token {
                object.insert("registration_access_token".into(), token.into());
            }
            object.insert(
                "registration_client_uri".into(),
                format!(
                    "{}{}/{}",
                    self.issuer,
                    paths::REGISTRATION,
                    record.client_id
                )
                .into(),
            );
        }
        body
    }
}

fn parse_json(body: &[u8]) -> Result<Value, OAuthError> {
    serde_json::from_slice(body).map_err(|e| {
        OAuthError::invalid_client_metadata(format!("the request body is not valid JSON: {e}"))
    })
}

fn invalid_registration_token() -> ServiceError {
    OAuthError::invalid_token("the registration access token is invalid for this client").into()
}

/// Disables a client read as `record` (RFC 7592 delete, `DELETE
/// /admin/clients/{id}`): it can no longer authenticate, manage itself or
/// hold an active token. Conditional: a client changed meanwhile is a
/// conflict, never overwritten.
pub(crate) async fn disable_client(
    clients: &ClientDirectory,
    audit: &Auditor,
    mut record: ClientRecord,
    ctx: &RequestContext,
) -> Result<(), ServiceError> {
    let now = ctx.now();
    record.disabled_at = Some(now);
    record.updated_at = now;
    record.registration_token_hash = None;
    if !clients.update(&record).await? {
        return Err(changed_meanwhile());
    }
    let mut event = audit.event(event_type::CLIENT_DELETED, Outcome::Success, ctx);
    event.client_id = Some(record.client_id.clone());
    audit.record(event).await;
    Ok(())
}
