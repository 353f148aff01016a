//! The authorization endpoint (draft-ietf-oauth-v2-1 §4.1): a person logs
//! in, consents, and the client gets a code at its registered redirect URI.
//!
//! Nothing is stored for a visitor who has not logged in: the validated
//! request travels between pages as a signed hidden field, the session as
//! a signed cookie (`browser`). Errors about the client or its redirect URI
//! are shown on a page and never redirected; every other error is a 303 to
//! the client with the RFC code, `state` and `iss` (RFC 9207). Login
//! failures are braked per account and per address. Codes are single use,
//! live 60 s, are bound to the client, the redirect URI, the PKCE challenge
//! and the DPoP key, and are stored hashed.

mod answer;
pub mod browser;
mod consent;
pub mod par;

use crate::audit::{bounded, Auditor};
use crate::brake::Brake;
use crate::clients::ClientDirectory;
use crate::crypto::{random_token, MasterKey};
use crate::detail_types::DetailTypes;
use crate::request::RequestContext;
use browser::{csrf_matches, csrf_token, open, seal, Session};
use custos_governance::{event_type, Outcome};
use custos_protocol::authorize::{
    client_and_redirect, error_redirect, resolve_redirect_uri, validate, AuthorizationRequest,
};
use custos_protocol::form::FormParams;
use custos_protocol::metadata::ClientMetadata;
use custos_protocol::rar::AuthorizationDetails;
use custos_protocol::{ErrorCode, OAuthError};
use custos_store::Store;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How long a code lives, seconds.
pub const CODE_LIFETIME: i64 = 60;
/// How long a pending request may wait for login and consent, seconds.
pub const PENDING_LIFETIME: i64 = 600;
/// How long a login lasts, seconds.
pub const SESSION_LIFETIME: i64 = 8 * 3600;
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "custos_session";

/// The request between pages, signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    /// Random: binds the CSRF token of its pages.
    rid: String,
    exp: i64,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    state: Option<String>,
    code_challenge: String,
    resources: Vec<String>,
    dpop_jkt: Option<String>,
    /// RFC 9396, checked against the registered types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorization_details: Option<AuthorizationDetails>,
}

/// The client as the person's pages show it.
#[derive(Debug, Clone, Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub uri: Option<String>,
    pub contacts: Vec<String>,
    /// The host a client ID metadata document came from.
    pub host: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoginPage {
    pub client: ClientView,
    pub pending: String,
    pub csrf: String,
    pub username: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsentPage {
    pub client: ClientView,
    pub username: String,
    pub scopes: Vec<String>,
    pub resources: Vec<String>,
    /// RFC 9396 §3: each authorization details entry in words.
    pub authorization_details: Vec<String>,
    pub pending: String,
    pub csrf: String,
}

/// What to answer.
#[derive(Debug, Clone)]
pub enum AuthorizeOutcome {
    Login(LoginPage),
    Consent(ConsentPage),
    /// 303 to the client (a code, or an error with `state` and `iss`).
    Redirect(String),
    /// A page saying what is wrong; the request cannot go back to the client.
    Error(OAuthError),
}

/// An outcome and, after a login, the session cookie to set.
#[derive(Debug, Clone)]
pub struct AuthorizeAnswer {
    pub outcome: AuthorizeOutcome,
    /// `(value, max_age seconds)` of the session cookie to set.
    pub set_session: Option<(String, i64)>,
}

impl AuthorizeAnswer {
    fn just(outcome: AuthorizeOutcome) -> Self {
        AuthorizeAnswer {
            outcome,
            set_session: None,
        }
    }
}

pub struct AuthorizationEndpoint {
    issuer: String,
    clients: Arc<ClientDirectory>,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    audit: Auditor,
    logins: Brake,
    /// Every authorization request must be pushed (RFC 9126 §5).
    require_par: bool,
    /// Password checks running at once, at most.
    password_checks: Arc<tokio::sync::Semaphore>,
    policies: Arc<crate::policy::Policies>,
    detail_types: Arc<DetailTypes>,
}

/// What decides a request besides the client: server-wide settings,
/// policies and the registered authorization details types.
pub(crate) struct AuthorizeRules {
    /// Every authorization request must be pushed (RFC 9126 §5).
    pub require_par: bool,
    pub policies: Arc<crate::policy::Policies>,
    pub detail_types: Arc<DetailTypes>,
}

/// What a password check found.
struct PasswordCheck {
    known: bool,
    matches: bool,
}

/// The network a source address stands for when braking: an IPv4
/// address, or an IPv6 /64 (one host usually holds a whole /64).
pub(crate) fn network_of(source: &str) -> String {
    match source.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => source.to_owned(),
    }
}

impl AuthorizationEndpoint {
    pub(crate) fn new(
        issuer: String,
        clients: Arc<ClientDirectory>,
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        audit: Auditor,
        rules: AuthorizeRules,
    ) -> Self {
        let AuthorizeRules {
            require_par,
            policies,
            detail_types,
        } = rules;
        AuthorizationEndpoint {
            issuer,
            clients,
            store,
            master,
            audit,
            logins: Brake::default(),
            require_par,
            policies,
            detail_types,
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    /// `GET` (or a `POST` of the request itself) at the authorization
    /// endpoint: validates the request and shows the login page, or the
    /// consent page to a logged-in person (or, with remembered consent,
    /// answers at once).
    pub async fn start(
        &self,
        form: &FormParams,
        session: Option<&str>,
        ctx: &RequestContext,
    ) -> AuthorizeAnswer {
        // RFC 9126 §4: a pushed request stands for every parameter but
        // client_id.
        let pushed = match form.get("request_uri") {
            Some(uri) => {
                let client_id = form.get("client_id").unwrap_or("");
                match par::open_pushed(&self.master, uri, client_id, ctx.now()) {
                    Ok(params) => Some(params),
                    Err(error) => {
                        self.audit_refusal(Some(client_id), false, &error, ctx)
                            .await;
                        return AuthorizeAnswer::just(AuthorizeOutcome::Error(error));
                    }
                }
            }
            None => None,
        };
        let is_pushed = pushed.is_some();
        let form = pushed.as_ref().unwrap_or(form);
        let (request, client) = match self.validated(form, is_pushed, ctx).await {
            Ok(found) => found,
            Err(outcome) => return AuthorizeAnswer::just(outcome),
        };
        let mut pending = Pending {
            rid: random_token(16),
            exp: ctx.now() + PENDING_LIFETIME,
            client_id: request.client_id,
            redirect_uri: request.redirect_uri,
            scopes: if request.scopes.is_empty() {
                client.scopes()
            } else {
                request.scopes
            },
            state: request.state,
            code_challenge: request.code_challenge,
            resources: request.resources,
            dpop_jkt: request.dpop_jkt,
            authorization_details: None,
        };
        // RFC 9396 §2: checked against the registered types; each entry's
        // location is a resource the code (and its tokens) is for.
        if let Some(raw) = form.get("authorization_details") {
            match self.detail_types.parse(raw).await {
                Ok(details) if !custos_protocol::rar::fits_on_consent_page(&details) => {
                    let error = custos_protocol::rar::invalid_authorization_details(format!(
                        "an authorization_details entry is too long to show to the person whole (at most {} characters in words)",
                        custos_protocol::rar::MAX_DESCRIPTION_CHARS
                    ));
                    return AuthorizeAnswer::just(
                        self.refuse_to_client(&pending, error, ctx).await,
                    );
                }
                Ok(details) => {
                    for location in details.resources() {
                        if !pending.resources.contains(&location) {
                            pending.resources.push(location);
                        }
                    }
                    pending.authorization_details = Some(details);
                }
                Err(crate::ServiceError::OAuth(error)) => {
                    return AuthorizeAnswer::just(
                        self.refuse_to_client(&pending, error, ctx).await,
                    );
                }
                Err(_) => {
                    return AuthorizeAnswer::just(AuthorizeOutcome::Error(
                        OAuthError::server_error("try again"),
                    ))
                }
            }
        }
        if let Err(error) = self.check_resources(&pending).await {
            return AuthorizeAnswer::just(self.refuse_to_client(&pending, error, ctx).await);
        }
        match self.session(session, ctx) {
            Some(session) => {
                AuthorizeAnswer::just(self.after_login(&pending, &client, &session, ctx).await)
            }
            None => AuthorizeAnswer::just(AuthorizeOutcome::Login(
                self.login_page(&pending, &client, None, None),
            )),
        }
    }

    /// A `POST` from one of the person's pages: `step=login` (username,
    /// password) or `step=consent` (decision), with the pending request and
    /// the CSRF token.
    pub async fn submit(
        &self,
        form: &FormParams,
        session: Option<&str>,
        ctx: &RequestContext,
    ) -> AuthorizeAnswer {
        let Some(pending) = form
            .get("pending")
            .and_then(|p| open::<Pending>(&self.master, "pending", p))
            .filter(|p| p.exp > ctx.now())
        else {
            return AuthorizeAnswer::just(AuthorizeOutcome::Error(OAuthError::invalid_request(
                "this authorization request has expired or was altered; start again from the application",
            )));
        };
        // The client or its redirect URI may have changed since.
        let client = match self.clients.active(&pending.client_id).await {
            Ok(Some((_, client)))
                if client.redirect_uris.contains(&pending.redirect_uri)
                    || resolve_redirect_uri(Some(&pending.redirect_uri), &client.redirect_uris)
                        .is_ok() =>
            {
                client
            }
            Ok(_) => {
                return AuthorizeAnswer::just(AuthorizeOutcome::Error(OAuthError::invalid_request(
                    "the application is no longer registered for this request",
                )))
            }
            Err(_) => {
                return AuthorizeAnswer::just(AuthorizeOutcome::Error(OAuthError::server_error(
                    "try again",
                )))
            }
        };
        match form.get("step") {
            Some("login") => self.login(form, &pending, &client, ctx).await,
            Some("consent") => {
                let Some(session) = self.session(session, ctx) else {
                    return AuthorizeAnswer::just(AuthorizeOutcome::Login(self.login_page(
                        &pending,
                        &client,
                        None,
                        Some("your session has ended; log in again".into()),
                    )));
                };
                let csrf_ok = form.get("csrf").is_some_and(|t| {
                    csrf_matches(&self.master, t, &pending.rid, Some(&session.sid))
                });
                if !csrf_ok {
                    return AuthorizeAnswer::just(AuthorizeOutcome::Error(OAuthError::invalid_request(
                        "the form's security token does not match; start again from the application",
                    )));
                }
                AuthorizeAnswer::just(
                    self.decide_consent(form, &pending, &client, &session, ctx)
                        .await,
                )
            }
            _ => AuthorizeAnswer::just(AuthorizeOutcome::Error(OAuthError::invalid_request(
                "unknown step",
            ))),
        }
    }

    /// Checks the request: errors about the client or redirect URI are
    /// pages; the rest are redirects to the client.
    async fn validated(
        &self,
        form: &FormParams,
        pushed: bool,
        ctx: &RequestContext,
    ) -> Result<(AuthorizationRequest, ClientMetadata), AuthorizeOutcome> {
        let page = |error: OAuthError| AuthorizeOutcome::Error(error);
        let sent = client_and_redirect(form).map_err(page)?;
        let client = match self.clients.active(&sent.client_id).await {
            Ok(Some((_, client))) => client,
            Ok(None) => {
                let error = OAuthError::invalid_request(
                    "unknown client_id: the application is not registered here",
                );
                self.audit_refusal(Some(&sent.client_id), false, &error, ctx)
                    .await;
                return Err(page(error));
            }
            // A client ID metadata document that could not be used.
            Err(crate::ServiceError::OAuth(error)) => {
                self.audit_refusal(Some(&sent.client_id), false, &error, ctx)
                    .await;
                return Err(page(error));
            }
            Err(crate::ServiceError::Throttled { description, .. }) => {
                return Err(page(OAuthError::new(
                    ErrorCode::TemporarilyUnavailable,
                    description,
                )))
            }
            Err(_) => return Err(page(OAuthError::server_error("try again"))),
        };
        let redirect_uri =
            match resolve_redirect_uri(sent.redirect_uri.as_deref(), &client.redirect_uris) {
                Ok(uri) => uri,
                Err(error) => {
                    self.audit_refusal(Some(&sent.client_id), true, &error, ctx)
                        .await;
                    return Err(page(error));
                }
            };
        let must_push = self.require_par || client.require_pushed_authorization_requests;
        let checked = if must_push && !pushed {
            Err(OAuthError::invalid_request(
                "authorization requests must be pushed first (RFC 9126): POST them to the pushed_authorization_request_endpoint and send request_uri",
            ))
        } else {
            validate(form, &client, redirect_uri.clone())
        };
        match checked {
            Ok(request) => Ok((request, client)),
            Err(error) => {
                self.audit_refusal(Some(&sent.client_id), true, &error, ctx)
                    .await;
                let state = form.get("state").filter(|s| s.len() <= 1024);
                Err(AuthorizeOutcome::Redirect(error_redirect(
                    &redirect_uri,
                    &error,
                    state,
                    &self.issuer,
                )))
            }
        }
    }

    /// RFC 8707: every resource asked for must be registered and, when
    /// resources are named, each scope offered by one of them.
    async fn check_resources(&self, pending: &Pending) -> Result<(), OAuthError> {
        let mut offered: Vec<String> = Vec::new();
        for uri in &pending.resources {
            match self.store.get_resource(uri).await {
                Ok(Some(resource)) => offered.extend(resource.scopes),
                Ok(None) => {
                    return Err(OAuthError::invalid_target(format!(
                        "resource '{}' is not registered at this server",
                        custos_protocol::error::echo(uri, 200)
                    )))
                }
                Err(_) => return Err(OAuthError::server_error("try again")),
            }
        }
        if !pending.resources.is_empty() {
            if let Some(bad) = pending.scopes.iter().find(|s| !offered.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope '{bad}' is not offered by the requested resource"
                )));
            }
        }
        Ok(())
    }

    fn session(&self, cookie: Option<&str>, ctx: &RequestContext) -> Option<Session> {
        cookie
            .and_then(|c| open::<Session>(&self.master, "session", c))
            .filter(|s| s.exp > ctx.now())
    }

    fn login_page(
        &self,
        pending: &Pending,
        client: &ClientMetadata,
        username: Option<String>,
        error: Option<String>,
    ) -> LoginPage {
        LoginPage {
            client: client_view(&pending.client_id, client),
            pending: seal(&self.master, "pending", pending),
            csrf: csrf_token(&self.master, &pending.rid, None),
            username,
            error,
        }
    }

    async fn login(
        &self,
        form: &FormParams,
        pending: &Pending,
        client: &ClientMetadata,
        ctx: &RequestContext,
    ) -> AuthorizeAnswer {
        let csrf_ok = form
            .get("csrf")
            .is_some_and(|t| csrf_matches(&self.master, t, &pending.rid, None));
        if !csrf_ok {
            return AuthorizeAnswer::just(AuthorizeOutcome::Error(OAuthError::invalid_request(
                "the form's security token does not match; start again from the application",
            )));
        }
        let username = form.get("username").unwrap_or("").trim().to_owned();
        let password = form.get("password").unwrap_or("");
        // Attempts count before the password is checked (so concurrent or
        // abandoned attempts cannot pass the limit), per address network
        // and per account *from* that network: a guesser is slowed down,
        // but cannot lock a person out from everywhere else.
        let network = network_of(ctx.source());
        let address_key = format!("address:{network}");
        let account_key = format!("account:{}:{network}", bounded(&username, 128));
        let now = ctx.now();
        let braked = [&address_key, &account_key]
            .iter()
            .filter_map(|k| self.logins.attempt(k, now))
            .max();
        if let Some(seconds) = braked {
            let message = format!("too many failed attempts; try again in {seconds} s");
            return AuthorizeAnswer::just(AuthorizeOutcome::Login(self.login_page(
                pending,
                client,
                Some(username),
                Some(message),
            )));
        }
        let checked = if username.is_empty() || password.is_empty() || password.len() > 1024 {
            Ok(PasswordCheck {
                known: false,
                matches: false,
            })
        } else {
            self.verify_password(&username, password).await
        };
        let check = match checked {
            Ok(check) => check,
            Err(busy) => {
                return AuthorizeAnswer::just(AuthorizeOutcome::Login(self.login_page(
                    pending,
                    client,
                    Some(username),
                    Some(busy),
                )))
            }
        };
        if !check.matches {
            let mut event = self
                .audit
                .event(event_type::LOGIN_FAILED, Outcome::Failure, ctx);
            event.client_id = Some(pending.client_id.clone());
            // A mistyped username may be a password: named only if it exists.
            event.reason = Some(if check.known {
                format!("user {}", bounded(&username, 64))
            } else {
                "unknown user".to_owned()
            });
            let claimed = crate::client_auth::ClaimedClient {
                client_id: Some(pending.client_id.clone()),
                known: true,
                ..Default::default()
            };
            self.audit.record_unauthenticated(event, &claimed).await;
            return AuthorizeAnswer::just(AuthorizeOutcome::Login(self.login_page(
                pending,
                client,
                Some(username),
                Some("wrong username or password".into()),
            )));
        }
        self.logins.forget(&account_key);
        self.logins.credit(&address_key);
        let session = Session {
            sub: username.clone(),
            sid: random_token(16),
            exp: now + SESSION_LIFETIME,
        };
        let mut event = self
            .audit
            .event(event_type::LOGIN_SUCCEEDED, Outcome::Success, ctx);
        event.client_id = Some(pending.client_id.clone());
        event.reason = Some(format!("user {}", bounded(&username, 64)));
        self.audit.record(event).await;
        let outcome = self.after_login(pending, client, &session, ctx).await;
        AuthorizeAnswer {
            outcome,
            set_session: Some((seal(&self.master, "session", &session), SESSION_LIFETIME)),
        }
    }

    /// Argon2id, off the async workers and at most a few at a time (each
    /// holds ~19 MiB and a core); an unknown user costs the same. `Err`
    /// with a message for the person when the server is too busy.
    async fn verify_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<PasswordCheck, String> {
        use argon2::{PasswordHash, PasswordVerifier};
        let busy = || "the server is busy; try again in a moment".to_owned();
        let permit = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.password_checks.clone().acquire_owned(),
        )
        .await
        .map_err(|_| busy())?
        .map_err(|_| busy())?;
        let stored = match self.store.get_user(username).await {
            Ok(user) => user.map(|u| u.password_hash),
            Err(_) => return Err(busy()),
        };
        let known = stored.is_some();
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let hash = stored.unwrap_or_else(dummy_hash);
            PasswordHash::new(&hash)
                .map(|parsed| {
                    argon2::Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        Ok(PasswordCheck {
            known,
            matches: known && matches,
        })
    }
}

/// Makes the dummy hash now (at start), so the first unknown username is
/// not slower than the others.
pub(crate) fn warm_up() {
    dummy_hash();
}

/// An Argon2id hash of a random password, made once: verifying an unknown
/// username against it costs what verifying a real one does, so timing
/// does not tell whether a username exists.
fn dummy_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(random_token(32).as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
    .clone()
}

fn client_view(client_id: &str, client: &ClientMetadata) -> ClientView {
    ClientView {
        client_id: client_id.to_owned(),
        name: client
            .client_name
            .clone()
            .unwrap_or_else(|| client_id.to_owned()),
        uri: client.client_uri.clone(),
        contacts: client.contacts.clone(),
        // draft-ietf-oauth-client-id-metadata-document §6.4: the host of a
        // document client_id, shown prominently.
        host: custos_protocol::cimd::document_host(client_id),
    }
}
