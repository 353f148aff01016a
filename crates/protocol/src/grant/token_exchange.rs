//! OAuth 2.0 Token Exchange (RFC 8693) for delegation between agents.
//!
//! The authenticated client is the actor: an agent exchanging a token it
//! holds (the subject token — a person's token, another agent's delegated
//! token, its own client token) for a narrower one it may pass on or use
//! for one task. The issued token keeps the subject token's `sub` and
//! records who acts for it in `act`, newest actor outermost (§4.1).
//!
//! Every rule only narrows: scopes within the subject token's and the
//! client's, audiences within the subject token's resources, a lifetime
//! within every token presented, the subject token's key binding kept
//! (unless its `may_act` names the actor, §4.4), its refresh family
//! (`grant_id`) and the line of tokens it was exchanged from (`ancestry`)
//! carried so that revoking an ancestor revokes what was exchanged from it.
//!
//! custos extensions to the request: `task_id` (the task a per-task token
//! is for; claim `task_id`) and `expires_in` (a shorter lifetime). `audience`
//! values are read as resource indicators (RFC 8707): custos knows its
//! audiences only as registered resources.
//!
//! Needs: the verified facts of the subject (and actor) token
//! ([`TokenFacts`], built by the service after it verified the token), the
//! client's registration, the registered resources named by the request,
//! the key the request proved (DPoP, mutual TLS) and the time.

use super::{is_resource_indicator, parse_resources, Grant, KnownResource, MAX_RESOURCES};
use crate::access_token::{AccessTokenClaims, Confirmation};
use crate::error::echo;
use crate::form::FormParams;
use crate::metadata::{AuthMethod, ClientMetadata};
use crate::names::{GRANT_TOKEN_EXCHANGE, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT};
use crate::scope::parse_scope;
use crate::OAuthError;
use serde_json::{Map, Value};

/// Longest `subject_token` or `actor_token` read, bytes.
pub const MAX_EXCHANGED_TOKEN: usize = 16 * 1024;
/// Longest `task_id`, characters.
pub const MAX_TASK_ID: usize = 128;
/// Default for [`TokenExchangeConfig::max_delegation_depth`].
pub const DEFAULT_MAX_DELEGATION_DEPTH: usize = 4;
/// Longest identity string (`sub`, `iss`, `client_id`) kept in `act`.
const MAX_ACT_IDENTITY: usize = 512;

/// What the operator decides about token exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenExchangeConfig {
    /// Most nested `act` levels an issued token may carry.
    pub max_delegation_depth: usize,
}

impl Default for TokenExchangeConfig {
    fn default() -> Self {
        TokenExchangeConfig {
            max_delegation_depth: DEFAULT_MAX_DELEGATION_DEPTH,
        }
    }
}

impl TokenExchangeConfig {
    /// Most tokens of this server in a token's `ancestry`: each actor of
    /// the chain may exchange once to delegate and once to narrow (a
    /// per-task token), and the first once more.
    pub fn max_ancestry(&self) -> usize {
        self.max_delegation_depth
            .saturating_mul(2)
            .saturating_add(1)
    }
}

/// The token types custos reads and issues (RFC 8693 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    AccessToken,
    Jwt,
}

impl TokenType {
    pub fn uri(self) -> &'static str {
        match self {
            TokenType::AccessToken => TOKEN_TYPE_ACCESS_TOKEN,
            TokenType::Jwt => TOKEN_TYPE_JWT,
        }
    }

    /// The value of `parameter`, or `invalid_request` naming it.
    fn parse(parameter: &str, value: &str) -> Result<Self, OAuthError> {
        match value {
            TOKEN_TYPE_ACCESS_TOKEN => Ok(TokenType::AccessToken),
            TOKEN_TYPE_JWT => Ok(TokenType::Jwt),
            other => Err(OAuthError::invalid_request(format!(
                "{parameter} '{}' is not supported: use {TOKEN_TYPE_ACCESS_TOKEN} or {TOKEN_TYPE_JWT}",
                echo(other, 80)
            ))),
        }
    }
}

/// A token presented in the request with its declared type.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedToken {
    pub token: String,
    pub token_type: TokenType,
}

impl std::fmt::Debug for PresentedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresentedToken")
            .field("token", &format_args!("<{} bytes>", self.token.len()))
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// A token exchange request (RFC 8693 §2.1, with custos's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenExchangeRequest {
    pub subject: PresentedToken,
    pub actor: Option<PresentedToken>,
    /// `requested_token_type`, `access_token` when absent.
    pub requested_token_type: TokenType,
    /// `resource` (RFC 8707) and `audience` values, in order, once each.
    pub targets: Vec<String>,
    /// `scope` as asked; `None` when absent.
    pub scope: Option<Vec<String>>,
    /// custos: the task a per-task token is for.
    pub task_id: Option<String>,
    /// custos: the lifetime asked for, seconds (only ever shortens).
    pub expires_in: Option<u32>,
}

/// §2.1: `subject_token` and `subject_token_type` (required),
/// `actor_token` and `actor_token_type` (both or neither),
/// `requested_token_type`, `resource`, `audience`, `scope`; and custos's
/// `task_id` and `expires_in`. A malformed parameter is `invalid_request`
/// naming it (`invalid_target` for a resource or audience that is not an
/// absolute URI).
pub fn parse(form: &FormParams) -> Result<TokenExchangeRequest, OAuthError> {
    let subject = presented(form, "subject_token", "subject_token_type")?
        .ok_or_else(|| OAuthError::invalid_request("missing required parameter 'subject_token'"))?;
    let actor = presented(form, "actor_token", "actor_token_type")?;
    let requested_token_type = form
        .get("requested_token_type")
        .map(|value| TokenType::parse("requested_token_type", value))
        .transpose()?
        .unwrap_or(TokenType::AccessToken);
    let mut targets = parse_resources(form)?;
    let audiences = form.all("audience");
    if audiences.len() > MAX_RESOURCES {
        return Err(OAuthError::invalid_target(format!(
            "at most {MAX_RESOURCES} audience parameters are accepted"
        )));
    }
    for audience in audiences {
        if !is_resource_indicator(audience) {
            return Err(OAuthError::invalid_target(
                "audience must name a registered resource: an absolute URI without a fragment (RFC 8707 section 2)",
            ));
        }
        if !targets.contains(audience) {
            targets.push(audience.clone());
        }
    }
    if targets.len() > MAX_RESOURCES {
        return Err(OAuthError::invalid_target(format!(
            "at most {MAX_RESOURCES} resources and audiences together are accepted"
        )));
    }
    let scope = form.get("scope").map(parse_scope).transpose()?;
    let task_id = form.get("task_id").map(parse_task_id).transpose()?;
    let expires_in = form.get("expires_in").map(parse_expires_in).transpose()?;
    Ok(TokenExchangeRequest {
        subject,
        actor,
        requested_token_type,
        targets,
        scope,
        task_id,
        expires_in,
    })
}

/// A token parameter and its type parameter: both, or neither.
fn presented(
    form: &FormParams,
    token_name: &str,
    type_name: &str,
) -> Result<Option<PresentedToken>, OAuthError> {
    match (form.get(token_name), form.get(type_name)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(OAuthError::invalid_request(format!(
            "missing required parameter '{type_name}' (it goes with {token_name}, RFC 8693 section 2.1)"
        ))),
        (None, Some(_)) => Err(OAuthError::invalid_request(format!(
            "{type_name} was sent without {token_name} (RFC 8693 section 2.1)"
        ))),
        (Some(token), Some(token_type)) => {
            if token.len() > MAX_EXCHANGED_TOKEN {
                return Err(OAuthError::invalid_request(format!(
                    "{token_name} is longer than {MAX_EXCHANGED_TOKEN} bytes"
                )));
            }
            Ok(Some(PresentedToken {
                token: token.to_owned(),
                token_type: TokenType::parse(type_name, token_type)?,
            }))
        }
    }
}

/// custos `task_id`: 1 to 128 of `[A-Za-z0-9._:-]`.
fn parse_task_id(value: &str) -> Result<String, OAuthError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if value.is_empty() || value.len() > MAX_TASK_ID || !value.chars().all(allowed) {
        return Err(OAuthError::invalid_request(format!(
            "task_id must be 1 to {MAX_TASK_ID} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
        )));
    }
    Ok(value.to_owned())
}

/// custos `expires_in`: a positive number of seconds (its upper bound, the
/// client's access token lifetime, is the decision's).
fn parse_expires_in(value: &str) -> Result<u32, OAuthError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|seconds| *seconds >= 1 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            OAuthError::invalid_request("expires_in must be a positive whole number of seconds")
        })
}

/// Where a verified token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An access token of this server, verified and still active.
    Custos {
        jti: String,
        /// Its refresh family, if it belongs to a person's authorization.
        grant_id: Option<String>,
        /// The tokens it was itself exchanged from, nearest first.
        ancestry: Vec<String>,
        authorization_details: Option<Value>,
    },
    /// A JWT of a trusted OIDC issuer, verified with its keys.
    Trusted,
}

/// What a verified subject or actor token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFacts {
    pub iss: String,
    pub sub: String,
    /// The client it was issued to (tokens of this server).
    pub client_id: Option<String>,
    pub exp: i64,
    /// Its scopes; `None`: it carries no `scope` claim (a trusted issuer's
    /// identity token), so only the client's registration limits scopes.
    pub scopes: Option<Vec<String>>,
    pub audience: Vec<String>,
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: who already acts for the subject.
    pub act: Option<Value>,
    /// RFC 8693 §4.4: who may act for the subject.
    pub may_act: Option<Value>,
    pub origin: Origin,
}

impl TokenFacts {
    /// The facts of one of this server's access tokens (verified and found
    /// active by the caller).
    pub fn from_access_token(claims: &AccessTokenClaims) -> TokenFacts {
        TokenFacts {
            iss: claims.iss.clone(),
            sub: claims.sub.clone(),
            client_id: Some(claims.client_id.clone()),
            exp: claims.exp,
            scopes: Some(
                claims
                    .scope
                    .as_deref()
                    .map(|s| parse_scope(s).unwrap_or_default())
                    .unwrap_or_default(),
            ),
            audience: claims.aud.0.clone(),
            cnf: claims.cnf.clone(),
            act: claims.act.clone(),
            may_act: None,
            origin: Origin::Custos {
                jti: claims.jti.clone(),
                grant_id: claims.grant_id.clone(),
                ancestry: claims.ancestry.clone().unwrap_or_default(),
                authorization_details: claims.authorization_details.clone(),
            },
        }
    }

    /// The facts of a trusted issuer's JWT whose signature, `iss`, `aud`
    /// and times the caller verified. The error is the reason to give.
    pub fn from_trusted_jwt(claims: &Value) -> Result<TokenFacts, String> {
        let string = |name: &str| -> Result<Option<String>, String> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.len() <= MAX_ACT_IDENTITY => Ok(Some(s.clone())),
                Some(_) => Err(format!(
                    "its {name} must be a string of at most {MAX_ACT_IDENTITY} bytes"
                )),
            }
        };
        let iss = string("iss")?.ok_or("it has no iss")?;
        let sub = string("sub")?
            .filter(|s| !s.is_empty())
            .ok_or("it has no sub")?;
        let exp = claims
            .get("exp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .ok_or("it has no numeric exp")?;
        let scopes = match claims.get("scope") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => {
                Some(parse_scope(s).map_err(|_| "its scope is not a valid scope list".to_owned())?)
            }
            Some(_) => return Err("its scope must be a space-separated string".into()),
        };
        let audience = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let cnf = match claims.get("cnf") {
            None | Some(Value::Null) => None,
            Some(Value::Object(members)) => {
                // A binding custos cannot check would be lost in the
                // exchange: refuse rather than issue an unbound token.
                if let Some(other) = members.keys().find(|k| *k != "jkt" && *k != "x5t#S256") {
                    return Err(format!(
                        "it is bound by cnf.{}, which this server cannot check (only jkt and x5t#S256)",
                        echo(other, 32)
                    ));
                }
                Some(
                    serde_json::from_value::<Confirmation>(Value::Object(members.clone()))
                        .map_err(|_| "its cnf members must be strings".to_owned())?,
                )
            }
            Some(_) => return Err("its cnf must be an object".into()),
        };
        Ok(TokenFacts {
            iss,
            sub,
            client_id: None,
            exp,
            scopes,
            audience,
            cnf,
            act: claims.get("act").filter(|v| !v.is_null()).cloned(),
            may_act: claims.get("may_act").filter(|v| !v.is_null()).cloned(),
            origin: Origin::Trusted,
        })
    }

    fn is_bound(&self) -> bool {
        self.cnf
            .as_ref()
            .is_some_and(|c| c.jkt.is_some() || c.x5t_s256.is_some())
    }
}

/// The proof-of-possession the token request itself carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyProof<'a> {
    /// The thumbprint of the request's verified DPoP proof key.
    pub dpop_jkt: Option<&'a str>,
    /// The `x5t#S256` of the mutual-TLS client certificate.
    pub certificate: Option<&'a str>,
}

impl KeyProof<'_> {
    fn any(&self) -> bool {
        self.dpop_jkt.is_some() || self.certificate.is_some()
    }
}

/// Everything [`decide`] needs besides the request.
#[derive(Debug, Clone, Copy)]
pub struct ExchangeFacts<'a> {
    /// This server's issuer identifier (also the default audience).
    pub issuer: &'a str,
    /// The authenticated client: the actor.
    pub client_id: &'a str,
    pub client: &'a ClientMetadata,
    pub subject: &'a TokenFacts,
    pub actor: Option<&'a TokenFacts>,
    /// The registered resources among the request's targets.
    pub resources: &'a [KnownResource],
    pub proof: KeyProof<'a>,
    pub now: i64,
    pub config: TokenExchangeConfig,
}

/// What to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub grant: Grant,
    /// The delegation chain, newest actor outermost.
    pub act: Option<Value>,
    /// The subject token's, unchanged.
    pub authorization_details: Option<Value>,
    /// The subject token's refresh family.
    pub grant_id: Option<String>,
    /// The subject token's `jti` and its own ancestry (tokens of this
    /// server only), nearest first.
    pub ancestry: Vec<String>,
    pub task_id: Option<String>,
    /// `issued_token_type` (§2.2.1): the requested type.
    pub issued_token_type: &'static str,
}

/// The client must be registered for the grant and be confidential (it is
/// the actor: an actor that proves nothing names nobody).
pub fn check_client(client: &ClientMetadata) -> Result<(), OAuthError> {
    if !client.allows_grant(GRANT_TOKEN_EXCHANGE) {
        return Err(OAuthError::unauthorized_client(format!(
            "this client is not registered for the {GRANT_TOKEN_EXCHANGE} grant"
        )));
    }
    if client.token_endpoint_auth_method == AuthMethod::None {
        return Err(OAuthError::unauthorized_client(
            "a public client cannot exchange tokens: the actor must authenticate",
        ));
    }
    Ok(())
}

/// One level of `act`: who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Actor {
    sub: String,
    /// `None`: this server.
    iss: Option<String>,
    client_id: Option<String>,
}

impl Actor {
    fn to_object(&self) -> Map<String, Value> {
        let mut level = Map::new();
        level.insert("sub".into(), self.sub.clone().into());
        if let Some(iss) = &self.iss {
            level.insert("iss".into(), iss.clone().into());
        }
        if let Some(client_id) = &self.client_id {
            level.insert("client_id".into(), client_id.clone().into());
        }
        level
    }
}

/// Decides the exchange (RFC 8693 §2.2, §4.1, §4.4):
///
/// - the client must be registered for the grant and confidential →
///   else `unauthorized_client`;
/// - the actor is the actor token's `sub` (a token of this server issued
///   to the client or naming it, or a trusted issuer's token whose `iss`
///   and `sub` are one of the client's `federated_credentials`), else the
///   client itself; the chain gains a level unless the actor is the
///   subject or already its newest actor → an actor token that is not
///   the client's, or is itself delegated, is `invalid_request`;
/// - a subject token's `may_act` must name the actor; the chain may be
///   at most `max_delegation_depth` deep → else `invalid_request`;
/// - a bound subject or actor token needs the request to prove the same
///   key (for the subject, unless its `may_act` names the actor), and the
///   request must then carry a key to bind the new token to → else
///   `invalid_request`;
/// - scopes within the subject token's and the client's → else
///   `invalid_scope`; targets registered, within a subject token's
///   resource audiences, offering the scopes → else `invalid_target` /
///   `invalid_scope`;
/// - the lifetime is the shortest of the client's, what remains of each
///   token, and `expires_in`.
pub fn decide(
    request: &TokenExchangeRequest,
    facts: &ExchangeFacts<'_>,
) -> Result<Exchange, OAuthError> {
    check_client(facts.client)?;
    let normal_lifetime = facts.client.access_token_lifetime;
    if let Some(asked) = request.expires_in {
        if asked > normal_lifetime {
            return Err(OAuthError::invalid_request(format!(
                "expires_in may only shorten the lifetime: at most {normal_lifetime} seconds for this client"
            )));
        }
    }
    let subject = facts.subject;
    let max_depth = facts.config.max_delegation_depth;

    // §4.1: who acts.
    let actor = match facts.actor {
        Some(token) => actor_of_token(token, facts)?,
        None => Actor {
            sub: facts.client_id.to_owned(),
            iss: None,
            client_id: Some(facts.client_id.to_owned()),
        },
    };
    let subject_iss = (subject.iss != facts.issuer).then(|| subject.iss.clone());
    let mut chain = read_act(subject.act.as_ref(), max_depth)?;
    let is_subject = actor.sub == subject.sub && actor.iss == subject_iss;
    let already_newest = chain.first() == Some(&actor);
    let adds_hop = !is_subject && !already_newest;

    // §4.4: may_act names who may act for the subject.
    let mut explicit_delegation = false;
    if let Some(may_act) = &subject.may_act {
        if adds_hop || already_newest {
            if !may_act_names(may_act, &actor, facts.issuer)? {
                return Err(OAuthError::invalid_request(
                    "the subject token's may_act does not name this actor (RFC 8693 section 4.4)",
                ));
            }
            explicit_delegation = true;
        }
    }
    if adds_hop {
        chain.insert(0, actor);
    }
    if chain.len() > max_depth {
        return Err(OAuthError::invalid_request(format!(
            "delegation chain deeper than {max_depth} (RFC 8693 section 4.1)"
        )));
    }

    // Sender constraint: the keys the tokens are bound to stay bound.
    if !explicit_delegation {
        check_binding("subject_token", subject.cnf.as_ref(), &facts.proof)?;
    }
    if let Some(token) = facts.actor {
        check_binding("actor_token", token.cnf.as_ref(), &facts.proof)?;
    }
    let bound = subject.is_bound() || facts.actor.is_some_and(TokenFacts::is_bound);
    if bound && !facts.proof.any() {
        return Err(OAuthError::invalid_request(
            "the subject or actor token is sender-constrained, so the exchanged token must be too: send a DPoP proof (RFC 9449) or use mutual TLS (RFC 8705)",
        ));
    }

    let (scopes, audience) = narrow(request, facts)?;

    let mut lifetime = i64::from(normal_lifetime).min(subject.exp - facts.now);
    if let Some(token) = facts.actor {
        lifetime = lifetime.min(token.exp - facts.now);
    }
    if let Some(asked) = request.expires_in {
        lifetime = lifetime.min(i64::from(asked));
    }
    let lifetime = u32::try_from(lifetime)
        .ok()
        .filter(|l| *l > 0)
        .ok_or_else(|| OAuthError::invalid_request("the subject or actor token has expired"))?;

    let (ancestry, grant_id, authorization_details) = match &subject.origin {
        Origin::Custos {
            jti,
            grant_id,
            ancestry,
            authorization_details,
        } => (
            std::iter::once(jti.clone())
                .chain(ancestry.iter().cloned())
                .collect::<Vec<_>>(),
            grant_id.clone(),
            authorization_details.clone(),
        ),
        Origin::Trusted => (Vec::new(), None, None),
    };
    let max_ancestry = facts.config.max_ancestry();
    if ancestry.len() > max_ancestry {
        return Err(OAuthError::invalid_request(format!(
            "the subject token was exchanged from too many tokens already (at most {max_ancestry} in a line)"
        )));
    }

    Ok(Exchange {
        grant: Grant {
            subject: subject.sub.clone(),
            scopes,
            audience,
            lifetime,
        },
        act: write_act(&chain),
        authorization_details,
        grant_id,
        ancestry,
        task_id: request.task_id.clone(),
        issued_token_type: request.requested_token_type.uri(),
    })
}

/// The actor an actor token names, if it is the authenticated client's.
fn actor_of_token(token: &TokenFacts, facts: &ExchangeFacts<'_>) -> Result<Actor, OAuthError> {
    if token.act.is_some() {
        return Err(OAuthError::invalid_request(
            "the actor_token must identify the actor itself, not a delegation (it carries act)",
        ));
    }
    let own = match token.origin {
        Origin::Custos { .. } => {
            token.sub == facts.client_id || token.client_id.as_deref() == Some(facts.client_id)
        }
        Origin::Trusted => facts
            .client
            .attestation
            .federated_credentials
            .iter()
            .any(|c| c.issuer == token.iss && c.subject == token.sub),
    };
    if !own {
        return Err(OAuthError::invalid_request(
            "the actor_token does not identify the authenticated client: a token of this server must be issued to it or name it, a trusted issuer's token must match one of its federated_credentials",
        ));
    }
    Ok(Actor {
        sub: token.sub.clone(),
        iss: (token.iss != facts.issuer).then(|| token.iss.clone()),
        client_id: Some(facts.client_id.to_owned()),
    })
}

/// The levels of an `act` claim, outermost first, keeping the identity
/// claims (`sub`, `iss`, `client_id`) of each; malformed or deeper than
/// `max_depth` is `invalid_request`.
fn read_act(act: Option<&Value>, max_depth: usize) -> Result<Vec<Actor>, OAuthError> {
    let malformed = || {
        OAuthError::invalid_request(
            "the subject token's act claim is malformed: each level must be an object with a string sub (RFC 8693 section 4.1)",
        )
    };
    let mut levels = Vec::new();
    let mut next = act;
    while let Some(value) = next {
        if levels.len() >= max_depth {
            return Err(OAuthError::invalid_request(format!(
                "delegation chain deeper than {max_depth} (RFC 8693 section 4.1)"
            )));
        }
        let level = value.as_object().ok_or_else(malformed)?;
        let text = |name: &str| -> Result<Option<String>, OAuthError> {
            match level.get(name) {
                None => Ok(None),
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ACT_IDENTITY => {
                    Ok(Some(s.clone()))
                }
                Some(_) => Err(malformed()),
            }
        };
        levels.push(Actor {
            sub: text("sub")?.ok_or_else(malformed)?,
            iss: text("iss")?,
            client_id: text("client_id")?,
        });
        next = level.get("act");
    }
    Ok(levels)
}

/// The `act` claim of `chain` (outermost first).
fn write_act(chain: &[Actor]) -> Option<Value> {
    chain.iter().rev().fold(None, |inner, actor| {
        let mut level = actor.to_object();
        if let Some(inner) = inner {
            level.insert("act".into(), inner);
        }
        Some(Value::Object(level))
    })
}

/// RFC 8693 §4.4: whether `may_act` names `actor` — its `sub`, and its
/// `iss` and `client_id` when `may_act` names them.
fn may_act_names(may_act: &Value, actor: &Actor, issuer: &str) -> Result<bool, OAuthError> {
    let object = may_act.as_object().ok_or_else(|| {
        OAuthError::invalid_request("the subject token's may_act claim is not an object")
    })?;
    let wanted = |name: &str| object.get(name).map(|v| v.as_str());
    let actor_iss = actor.iss.as_deref().unwrap_or(issuer);
    let sub_ok = match wanted("sub") {
        Some(Some(sub)) => sub == actor.sub,
        _ => false,
    };
    let iss_ok = match wanted("iss") {
        None => true,
        Some(iss) => iss == Some(actor_iss),
    };
    let client_ok = match wanted("client_id") {
        None => true,
        Some(client_id) => client_id.is_some() && client_id == actor.client_id.as_deref(),
    };
    Ok(sub_ok && iss_ok && client_ok)
}

/// A token bound to a key (`cnf`) needs the request to prove that key.
fn check_binding(
    which: &str,
    cnf: Option<&Confirmation>,
    proof: &KeyProof<'_>,
) -> Result<(), OAuthError> {
    let Some(cnf) = cnf else {
        return Ok(());
    };
    if let Some(jkt) = &cnf.jkt {
        if proof.dpop_jkt != Some(jkt.as_str()) {
            return Err(OAuthError::invalid_request(format!(
                "the {which} is DPoP-bound (cnf.jkt): the request must carry a DPoP proof made with that key (RFC 9449)"
            )));
        }
    }
    if let Some(x5t) = &cnf.x5t_s256 {
        if proof.certificate != Some(x5t.as_str()) {
            return Err(OAuthError::invalid_request(format!(
                "the {which} is certificate-bound (cnf x5t#S256): the request must come over mutual TLS with that certificate (RFC 8705)"
            )));
        }
    }
    Ok(())
}

/// Scopes and audience, never wider than the subject token's and the
/// client's.
fn narrow(
    request: &TokenExchangeRequest,
    facts: &ExchangeFacts<'_>,
) -> Result<(Vec<String>, Vec<String>), OAuthError> {
    let subject = facts.subject;
    let registered = facts.client.scopes();
    let limit: Vec<String> = match &subject.scopes {
        Some(granted) => granted
            .iter()
            .filter(|s| registered.contains(s))
            .cloned()
            .collect(),
        None => registered.clone(),
    };
    // A token of this server issued for registered resources: the
    // exchanged token is for some of them.
    let subject_resources: Option<&[String]> = match subject.origin {
        Origin::Custos { .. } if subject.audience.iter().any(|a| a != facts.issuer) => {
            Some(subject.audience.as_slice())
        }
        _ => None,
    };
    let mut targets: Vec<&KnownResource> = Vec::with_capacity(request.targets.len());
    for uri in &request.targets {
        let known = facts
            .resources
            .iter()
            .find(|r| &r.uri == uri)
            .ok_or_else(|| {
                OAuthError::invalid_target(format!(
                    "resource '{}' is not registered at this server",
                    echo(uri, 200)
                ))
            })?;
        if subject_resources.is_some_and(|aud| !aud.contains(uri)) {
            return Err(OAuthError::invalid_target(format!(
                "resource '{}' is not an audience of the subject token: an exchange only narrows",
                echo(uri, 200)
            )));
        }
        targets.push(known);
    }
    let offered = |scope: &String| targets.iter().any(|t| t.scopes.contains(scope));
    let scopes = match &request.scope {
        Some(asked) => {
            for scope in asked {
                if !registered.contains(scope) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope '{scope}' is not registered for this client"
                    )));
                }
                if !limit.contains(scope) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope '{scope}' was not granted to the subject token: an exchange only narrows"
                    )));
                }
                if !targets.is_empty() && !offered(scope) {
                    return Err(OAuthError::invalid_scope(format!(
                        "scope '{scope}' is not offered by the requested resource"
                    )));
                }
            }
            asked.clone()
        }
        None if targets.is_empty() => limit,
        None => limit.into_iter().filter(|s| offered(s)).collect(),
    };
    let audience = if !targets.is_empty() {
        targets.iter().map(|t| t.uri.clone()).collect()
    } else if let Some(aud) = subject_resources {
        aud.to_vec()
    } else {
        vec![facts.issuer.to_owned()]
    };
    Ok((scopes, audience))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{validate_registration, RegistrationRules};
    use crate::ErrorCode;
    use serde_json::json;

    const AS: &str = "https://as.example";
    const API: &str = "https://api.example";
    const DOCS: &str = "https://docs.example";
    const NOW: i64 = 1_000_000;
    const AT: &str = TOKEN_TYPE_ACCESS_TOKEN;
    const JKT: &str = "jkt-of-the-subject-key";

    fn registered(metadata: serde_json::Value) -> ClientMetadata {
        let rules = RegistrationRules {
            grant_types: vec!["client_credentials", GRANT_TOKEN_EXCHANGE],
            ..RegistrationRules::default()
        };
        validate_registration(&metadata, &rules).unwrap()
    }

    /// A confidential agent registered for token exchange, scopes read and
    /// write, 300 s tokens.
    fn agent() -> ClientMetadata {
        registered(
            json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read write",
                          "access_token_lifetime": 300}),
        )
    }

    fn form(body: &str) -> FormParams {
        FormParams::parse(body.as_bytes()).unwrap()
    }

    fn request(extra: &str) -> TokenExchangeRequest {
        let body = format!("subject_token=s.t.x&subject_token_type={AT}{extra}");
        parse(&form(&body)).unwrap()
    }

    fn parse_err(body: &str) -> OAuthError {
        parse(&form(body)).unwrap_err()
    }

    /// A person's token of this server: read write on API and DOCS.
    fn person_token() -> TokenFacts {
        TokenFacts {
            iss: AS.into(),
            sub: "alice".into(),
            client_id: Some("app".into()),
            exp: NOW + 3_600,
            scopes: Some(vec!["read".into(), "write".into()]),
            audience: vec![API.into(), DOCS.into()],
            cnf: None,
            act: None,
            may_act: None,
            origin: Origin::Custos {
                jti: "jti-person".into(),
                grant_id: Some("family-1".into()),
                ancestry: vec![],
                authorization_details: Some(json!([{"type": "payment", "amount": 5}])),
            },
        }
    }

    /// A client's own token of this server (client credentials).
    fn client_token(client_id: &str) -> TokenFacts {
        TokenFacts {
            sub: client_id.into(),
            client_id: Some(client_id.into()),
            audience: vec![AS.into()],
            origin: Origin::Custos {
                jti: format!("jti-{client_id}"),
                grant_id: None,
                ancestry: vec![],
                authorization_details: None,
            },
            ..person_token()
        }
    }

    fn known() -> Vec<KnownResource> {
        vec![
            KnownResource {
                uri: API.into(),
                scopes: vec!["read".into(), "write".into()],
            },
            KnownResource {
                uri: DOCS.into(),
                scopes: vec!["read".into()],
            },
            KnownResource {
                uri: "https://other.example".into(),
                scopes: vec!["read".into()],
            },
        ]
    }

    fn facts<'a>(
        client_id: &'a str,
        client: &'a ClientMetadata,
        subject: &'a TokenFacts,
        resources: &'a [KnownResource],
    ) -> ExchangeFacts<'a> {
        ExchangeFacts {
            issuer: AS,
            client_id,
            client,
            subject,
            actor: None,
            resources,
            proof: KeyProof::default(),
            now: NOW,
            config: TokenExchangeConfig::default(),
        }
    }

    // --- parse ---------------------------------------------------------------

    #[test]
    fn rfc8693_2_1_subject_token_and_its_type_are_required() {
        let err = parse_err("grant_type=x");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("subject_token"), "{err}");
        let err = parse_err("subject_token=a.b.c");
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("subject_token_type"), "{err}");
        let err = parse_err(&format!("subject_token_type={AT}"));
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    #[test]
    fn rfc8693_2_1_actor_token_and_its_type_come_together() {
        let err = parse_err(&format!(
            "subject_token=s&subject_token_type={AT}&actor_token=a"
        ));
        assert!(err.description.contains("actor_token_type"), "{err}");
        let err = parse_err(&format!(
            "subject_token=s&subject_token_type={AT}&actor_token_type={AT}"
        ));
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("actor_token"), "{err}");
        let ok = request(&format!(
            "&actor_token=a.b.c&actor_token_type={TOKEN_TYPE_JWT}"
        ));
        assert_eq!(ok.actor.unwrap().token_type, TokenType::Jwt);
    }

    #[test]
    fn rfc8693_3_unsupported_token_types_are_invalid_request_naming_the_parameter() {
        for (body, parameter) in [
            (
                "subject_token=s&subject_token_type=urn:ietf:params:oauth:token-type:saml2".to_owned(),
                "subject_token_type",
            ),
            (
                format!("subject_token=s&subject_token_type={AT}&actor_token=a&actor_token_type=urn:x"),
                "actor_token_type",
            ),
            (
                format!("subject_token=s&subject_token_type={AT}&requested_token_type=urn:ietf:params:oauth:token-type:refresh_token"),
                "requested_token_type",
            ),
        ] {
            let err = parse_err(&body);
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
            assert!(err.description.starts_with(parameter), "{err}");
        }
    }

    #[test]
    fn rfc8693_2_2_1_issued_token_type_echoes_the_requested_type() {
        let default = request("");
        assert_eq!(default.requested_token_type, TokenType::AccessToken);
        let jwt = request(&format!("&requested_token_type={TOKEN_TYPE_JWT}"));
        let client = agent();
        let subject = person_token();
        let resources = known();
        let exchange = decide(&jwt, &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(exchange.issued_token_type, TOKEN_TYPE_JWT);
        let exchange = decide(&default, &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(exchange.issued_token_type, TOKEN_TYPE_ACCESS_TOKEN);
    }

    #[test]
    fn tokens_are_bounded_to_16_kib() {
        let long = "a".repeat(MAX_EXCHANGED_TOKEN + 1);
        let err = parse_err(&format!("subject_token={long}&subject_token_type={AT}"));
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(
            !err.description.contains(&long[..64]),
            "never echoes the token"
        );
        let err = parse_err(&format!(
            "subject_token=s&subject_token_type={AT}&actor_token={long}&actor_token_type={AT}"
        ));
        assert!(err.description.starts_with("actor_token"), "{err}");
    }

    #[test]
    fn rfc8707_audience_and_resource_are_absolute_uris_and_bounded() {
        let both =
            request("&resource=https%3A%2F%2Fapi.example&audience=https%3A%2F%2Fdocs.example");
        assert_eq!(both.targets, vec![API, DOCS]);
        let same =
            request("&resource=https%3A%2F%2Fapi.example&audience=https%3A%2F%2Fapi.example");
        assert_eq!(same.targets, vec![API]);
        for bad in [
            "&audience=api",
            "&audience=https%3A%2F%2Fa.example%23f",
            "&resource=x",
        ] {
            let err = parse_err(&format!("subject_token=s&subject_token_type={AT}{bad}"));
            assert_eq!(err.code, ErrorCode::InvalidTarget, "{bad}");
        }
        let many: String = (0..MAX_RESOURCES)
            .map(|i| format!("&resource=https%3A%2F%2Fr{i}.example"))
            .collect();
        let err = parse_err(&format!(
            "subject_token=s&subject_token_type={AT}{many}&audience=https%3A%2F%2Fone-more.example"
        ));
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn custos_task_id_is_1_to_128_safe_characters() {
        let ok = request("&task_id=ticket-42:step_1.a");
        assert_eq!(ok.task_id.as_deref(), Some("ticket-42:step_1.a"));
        let longest = "a".repeat(MAX_TASK_ID);
        assert!(parse(&form(&format!(
            "subject_token=s&subject_token_type={AT}&task_id={longest}"
        )))
        .is_ok());
        for bad in [
            "a".repeat(MAX_TASK_ID + 1),
            "has%20space".into(),
            "slash%2F".into(),
            "%C3%BC".into(),
            "quote%22".into(),
        ] {
            let err = parse_err(&format!(
                "subject_token=s&subject_token_type={AT}&task_id={bad}"
            ));
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
            assert!(err.description.starts_with("task_id"), "{err}");
        }
    }

    #[test]
    fn custos_expires_in_is_a_positive_integer_that_only_shortens() {
        for bad in ["0", "-5", "1.5", "abc", "+60", "99999999999"] {
            let err = parse_err(&format!(
                "subject_token=s&subject_token_type={AT}&expires_in={bad}"
            ));
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{bad}");
            assert!(err.description.starts_with("expires_in"), "{err}");
        }
        let client = agent();
        let subject = person_token();
        let resources = known();
        let f = facts("agent", &client, &subject, &resources);
        let exchange = decide(&request("&expires_in=60"), &f).unwrap();
        assert_eq!(exchange.grant.lifetime, 60);
        let exchange = decide(&request("&expires_in=300"), &f).unwrap();
        assert_eq!(exchange.grant.lifetime, 300);
        let err = decide(&request("&expires_in=301"), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("300"), "{err}");
    }

    // --- the client ----------------------------------------------------------

    #[test]
    fn rfc8693_2_client_not_registered_for_the_grant_is_unauthorized_client() {
        let client = registered(json!({"grant_types": ["client_credentials"], "scope": "read"}));
        let subject = person_token();
        let err = decide(&request(""), &facts("c", &client, &subject, &[])).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnauthorizedClient);
        let public = registered(json!({"grant_types": [GRANT_TOKEN_EXCHANGE],
                                       "token_endpoint_auth_method": "none"}));
        let err = decide(&request(""), &facts("c", &public, &subject, &[])).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnauthorizedClient);
    }

    // --- §4.1 act ------------------------------------------------------------

    #[test]
    fn rfc8693_4_1_the_client_acting_for_a_person_is_the_actor() {
        let client = agent();
        let subject = person_token();
        let resources = known();
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(exchange.grant.subject, "alice", "sub stays the subject's");
        assert_eq!(
            exchange.act,
            Some(json!({"sub": "agent", "client_id": "agent"}))
        );
    }

    #[test]
    fn rfc8693_4_1_newest_actor_outermost() {
        let client = agent();
        let mut subject = person_token();
        subject.act = Some(json!({"sub": "agent", "client_id": "agent",
                                  "act": {"sub": "planner", "client_id": "planner"}}));
        let resources = known();
        let exchange = decide(
            &request(""),
            &facts("sub-agent", &client, &subject, &resources),
        )
        .unwrap();
        assert_eq!(
            exchange.act,
            Some(json!({"sub": "sub-agent", "client_id": "sub-agent",
                        "act": {"sub": "agent", "client_id": "agent",
                                "act": {"sub": "planner", "client_id": "planner"}}}))
        );
    }

    #[test]
    fn rfc8693_4_1_only_identity_claims_of_prior_actors_are_kept() {
        let client = agent();
        let mut subject = person_token();
        subject.act = Some(
            json!({"sub": "a", "iss": "https://idp.example", "scope": "admin",
                                  "exp": 1, "client_id": "x"}),
        );
        let resources = known();
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(
            exchange.act.unwrap()["act"],
            json!({"sub": "a", "iss": "https://idp.example", "client_id": "x"})
        );
    }

    #[test]
    fn rfc8693_4_1_malformed_act_is_invalid_request() {
        let client = agent();
        let resources = known();
        for act in [
            json!("agent"),
            json!({"client_id": "x"}),
            json!({"sub": 5}),
            json!({"sub": "a", "act": []}),
            json!({"sub": ""}),
        ] {
            let mut subject = person_token();
            subject.act = Some(act.clone());
            let err =
                decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{act}");
        }
    }

    #[test]
    fn rfc8693_4_1_a_client_exchanging_its_own_token_adds_no_hop() {
        let client = agent();
        let subject = client_token("agent");
        let resources = known();
        let exchange = decide(
            &request("&resource=https%3A%2F%2Fapi.example&task_id=t1&expires_in=60"),
            &facts("agent", &client, &subject, &resources),
        )
        .unwrap();
        assert_eq!(exchange.act, None);
        assert_eq!(exchange.grant.subject, "agent");
        assert_eq!(exchange.task_id.as_deref(), Some("t1"));
        assert_eq!(exchange.grant.audience, vec![API]);
        assert_eq!(exchange.grant.lifetime, 60);
    }

    #[test]
    fn rfc8693_4_1_the_newest_actor_narrowing_again_adds_no_hop() {
        let client = agent();
        let mut subject = person_token();
        subject.act = Some(json!({"sub": "agent", "client_id": "agent"}));
        let resources = known();
        let exchange = decide(
            &request("&scope=read"),
            &facts("agent", &client, &subject, &resources),
        )
        .unwrap();
        assert_eq!(exchange.act, subject.act);
    }

    #[test]
    fn rfc8693_4_1_the_actor_token_names_the_actor() {
        let client = agent();
        let subject = person_token();
        let resources = known();
        // Its own client token: the actor is the client.
        let own = client_token("agent");
        let mut f = facts("agent", &client, &subject, &resources);
        f.actor = Some(&own);
        let exchange = decide(&request(""), &f).unwrap();
        assert_eq!(
            exchange.act,
            Some(json!({"sub": "agent", "client_id": "agent"}))
        );
        // A token issued to it for someone else names that one, with the
        // client beside it.
        let mut issued_to_it = client_token("agent");
        issued_to_it.sub = "svc-account".into();
        f.actor = Some(&issued_to_it);
        let exchange = decide(&request(""), &f).unwrap();
        assert_eq!(
            exchange.act,
            Some(json!({"sub": "svc-account", "client_id": "agent"}))
        );
    }

    #[test]
    fn rfc8693_2_1_another_clients_token_is_not_an_actor_token() {
        let client = agent();
        let subject = person_token();
        let resources = known();
        let theirs = client_token("someone-else");
        let mut f = facts("agent", &client, &subject, &resources);
        f.actor = Some(&theirs);
        let err = decide(&request(""), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("actor_token"), "{err}");
        // A delegated token is no actor token either.
        let mut delegated = client_token("agent");
        delegated.act = Some(json!({"sub": "x"}));
        f.actor = Some(&delegated);
        assert_eq!(
            decide(&request(""), &f).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn rfc8693_4_1_a_federated_actor_token_must_be_one_of_the_clients_credentials() {
        let k8s = "https://k8s.example";
        let client = registered(
            json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read write",
            "token_endpoint_auth_method": "federated_jwt",
            "federated_credentials": [{"issuer": k8s, "subject": "system:serviceaccount:ai:agent"}]}),
        );
        let subject = person_token();
        let resources = known();
        let actor = TokenFacts::from_trusted_jwt(&json!({"iss": k8s,
            "sub": "system:serviceaccount:ai:agent", "aud": AS, "exp": NOW + 600}))
        .unwrap();
        let mut f = facts("agent", &client, &subject, &resources);
        f.actor = Some(&actor);
        let exchange = decide(&request(""), &f).unwrap();
        assert_eq!(
            exchange.act,
            Some(
                json!({"sub": "system:serviceaccount:ai:agent", "iss": k8s, "client_id": "agent"})
            )
        );
        assert_eq!(exchange.grant.lifetime, 300);
        let other = TokenFacts::from_trusted_jwt(&json!({"iss": k8s,
            "sub": "system:serviceaccount:ai:other", "aud": AS, "exp": NOW + 600}))
        .unwrap();
        f.actor = Some(&other);
        assert_eq!(
            decide(&request(""), &f).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn rfc8693_4_1_delegation_deeper_than_the_limit_is_refused() {
        let client = agent();
        let resources = known();
        let chain = |depth: usize| {
            (0..depth).fold(None, |inner: Option<Value>, i| {
                let mut level = json!({"sub": format!("a{i}")});
                if let Some(inner) = inner {
                    level["act"] = inner;
                }
                Some(level)
            })
        };
        let mut subject = person_token();
        subject.act = chain(3);
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        let act = exchange.act.unwrap();
        assert_eq!(act["sub"], "agent");
        assert_eq!(act["act"]["act"]["act"]["sub"], "a0", "4 levels pass");
        subject.act = chain(4);
        let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(
            err.description,
            "delegation chain deeper than 4 (RFC 8693 section 4.1)"
        );
        // A subject chain already too deep, however deep, is refused as such.
        subject.act = chain(50);
        let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
        assert!(
            err.description
                .starts_with("delegation chain deeper than 4"),
            "{err}"
        );
        // The limit is the operator's.
        subject.act = chain(1);
        let mut f = facts("agent", &client, &subject, &resources);
        f.config.max_delegation_depth = 1;
        let err = decide(&request(""), &f).unwrap_err();
        assert!(
            err.description
                .starts_with("delegation chain deeper than 1"),
            "{err}"
        );
    }

    // --- §4.4 may_act ----------------------------------------------------------

    #[test]
    fn rfc8693_4_4_may_act_refuses_other_actor() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        subject.may_act = Some(json!({"sub": "agent"}));
        let err = decide(
            &request(""),
            &facts("intruder", &client, &subject, &resources),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert_eq!(
            err.description,
            "the subject token's may_act does not name this actor (RFC 8693 section 4.4)"
        );
        assert!(decide(&request(""), &facts("agent", &client, &subject, &resources)).is_ok());
    }

    #[test]
    fn rfc8693_4_4_may_act_iss_and_client_id_must_match_when_named() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        for (may_act, allowed) in [
            (json!({"sub": "agent", "iss": AS}), true),
            (
                json!({"sub": "agent", "iss": "https://elsewhere.example"}),
                false,
            ),
            (json!({"sub": "agent", "client_id": "agent"}), true),
            (json!({"sub": "agent", "client_id": "other"}), false),
            (json!({"client_id": "agent"}), false),
            (json!({"sub": 7}), false),
        ] {
            subject.may_act = Some(may_act.clone());
            let decided = decide(&request(""), &facts("agent", &client, &subject, &resources));
            assert_eq!(decided.is_ok(), allowed, "{may_act}: {decided:?}");
        }
        subject.may_act = Some(json!("agent"));
        let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    // --- narrower only ---------------------------------------------------------

    #[test]
    fn scope_defaults_to_the_subject_tokens_within_the_clients() {
        let client =
            registered(json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read admin"}));
        let subject = person_token();
        let resources = known();
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(
            exchange.grant.scopes,
            vec!["read"],
            "read write ∩ read admin"
        );
    }

    #[test]
    fn scope_outside_the_subject_token_or_the_client_is_invalid_scope() {
        let client =
            registered(json!({"grant_types": [GRANT_TOKEN_EXCHANGE], "scope": "read admin"}));
        let subject = person_token();
        let resources = known();
        let f = facts("agent", &client, &subject, &resources);
        let err = decide(&request("&scope=admin"), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        assert!(err.description.contains("subject token"), "{err}");
        let err = decide(&request("&scope=write"), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope);
        assert!(err.description.contains("registered"), "{err}");
        assert_eq!(
            decide(&request("&scope=read"), &f).unwrap().grant.scopes,
            vec!["read"]
        );
    }

    #[test]
    fn rfc8707_targets_narrow_within_the_subject_tokens_resources() {
        let client = agent();
        let subject = person_token();
        let resources = known();
        let f = facts("agent", &client, &subject, &resources);
        let exchange = decide(&request(""), &f).unwrap();
        assert_eq!(
            exchange.grant.audience,
            vec![API, DOCS],
            "kept when none is asked"
        );
        let exchange = decide(&request("&audience=https%3A%2F%2Fdocs.example"), &f).unwrap();
        assert_eq!(exchange.grant.audience, vec![DOCS]);
        assert_eq!(exchange.grant.scopes, vec!["read"], "what docs offers");
        let err = decide(&request("&resource=https%3A%2F%2Fother.example"), &f).unwrap_err();
        assert_eq!(
            err.code,
            ErrorCode::InvalidTarget,
            "registered, but not the subject's"
        );
        let err = decide(&request("&resource=https%3A%2F%2Funknown.example"), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
        let err = decide(
            &request("&audience=https%3A%2F%2Fdocs.example&scope=write"),
            &f,
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidScope, "docs offers no write");
    }

    #[test]
    fn rfc8707_a_subject_without_resource_audiences_may_target_registered_resources() {
        let client = agent();
        let subject = client_token("agent");
        let resources = known();
        let f = facts("agent", &client, &subject, &resources);
        assert_eq!(decide(&request(""), &f).unwrap().grant.audience, vec![AS]);
        let exchange = decide(&request("&resource=https%3A%2F%2Fother.example"), &f).unwrap();
        assert_eq!(exchange.grant.audience, vec!["https://other.example"]);
        assert_eq!(exchange.grant.scopes, vec!["read"]);
        let err = decide(&request("&resource=https%3A%2F%2Funknown.example"), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidTarget);
    }

    #[test]
    fn lifetime_is_the_shortest_of_client_subject_actor_and_expires_in() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        let lifetime = |subject: &TokenFacts, extra: &str| {
            decide(
                &request(extra),
                &facts("agent", &client, subject, &resources),
            )
            .map(|e| e.grant.lifetime)
        };
        assert_eq!(lifetime(&subject, ""), Ok(300), "the client's");
        subject.exp = NOW + 120;
        assert_eq!(
            lifetime(&subject, ""),
            Ok(120),
            "what remains of the subject token"
        );
        let mut actor = client_token("agent");
        actor.exp = NOW + 90;
        let mut with_actor = facts("agent", &client, &subject, &resources);
        with_actor.actor = Some(&actor);
        assert_eq!(
            decide(&request(""), &with_actor).unwrap().grant.lifetime,
            90
        );
        assert_eq!(
            decide(&request("&expires_in=30"), &with_actor)
                .unwrap()
                .grant
                .lifetime,
            30
        );
        subject.exp = NOW;
        assert_eq!(
            lifetime(&subject, "").unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn authorization_details_grant_id_and_ancestry_are_carried() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(
            exchange.authorization_details,
            Some(json!([{"type": "payment", "amount": 5}]))
        );
        assert_eq!(exchange.grant_id.as_deref(), Some("family-1"));
        assert_eq!(exchange.ancestry, vec!["jti-person"]);
        if let Origin::Custos { ancestry, .. } = &mut subject.origin {
            *ancestry = vec!["jti-b".into(), "jti-a".into()];
        }
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(
            exchange.ancestry,
            vec!["jti-person", "jti-b", "jti-a"],
            "nearest first"
        );
    }

    #[test]
    fn ancestry_is_bounded() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        let limit = TokenExchangeConfig::default().max_ancestry();
        if let Origin::Custos { ancestry, .. } = &mut subject.origin {
            *ancestry = (0..limit - 1).map(|i| format!("j{i}")).collect();
        }
        let f = facts("agent", &client, &subject, &resources);
        assert_eq!(decide(&request(""), &f).unwrap().ancestry.len(), limit);
        if let Origin::Custos { ancestry, .. } = &mut subject.origin {
            ancestry.push("one-more".into());
        }
        let err = decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }

    // --- sender constraint -------------------------------------------------------

    #[test]
    fn rfc9449_a_dpop_bound_subject_token_needs_a_proof_with_its_key() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        subject.cnf = Some(Confirmation {
            jkt: Some(JKT.into()),
            x5t_s256: None,
        });
        let mut f = facts("agent", &client, &subject, &resources);
        let err = decide(&request(""), &f).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("cnf.jkt"), "{err}");
        f.proof.dpop_jkt = Some("another-key");
        assert_eq!(
            decide(&request(""), &f).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        f.proof.dpop_jkt = Some(JKT);
        assert!(decide(&request(""), &f).is_ok());
    }

    #[test]
    fn rfc8705_a_certificate_bound_subject_token_needs_that_certificate() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        subject.cnf = Some(Confirmation {
            jkt: None,
            x5t_s256: Some("x5t".into()),
        });
        let mut f = facts("agent", &client, &subject, &resources);
        f.proof.dpop_jkt = Some(JKT);
        let err = decide(&request(""), &f).unwrap_err();
        assert!(err.description.contains("x5t#S256"), "{err}");
        f.proof.certificate = Some("x5t");
        assert!(decide(&request(""), &f).is_ok());
    }

    #[test]
    fn rfc8693_4_4_may_act_naming_the_actor_delegates_the_key_but_the_result_stays_bound() {
        let client = agent();
        let resources = known();
        let mut subject = person_token();
        subject.cnf = Some(Confirmation {
            jkt: Some(JKT.into()),
            x5t_s256: None,
        });
        subject.may_act = Some(json!({"sub": "agent"}));
        let mut f = facts("agent", &client, &subject, &resources);
        let err = decide(&request(""), &f).unwrap_err();
        assert!(err.description.contains("sender-constrained"), "{err}");
        f.proof.dpop_jkt = Some("the-agents-own-key");
        assert!(decide(&request(""), &f).is_ok());
        // Someone may_act does not name still needs the subject's key.
        let f = facts("intruder", &client, &subject, &resources);
        assert_eq!(
            decide(&request(""), &f).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn a_bound_actor_token_needs_its_key() {
        let client = agent();
        let resources = known();
        let subject = person_token();
        let mut actor = client_token("agent");
        actor.cnf = Some(Confirmation {
            jkt: Some(JKT.into()),
            x5t_s256: None,
        });
        let mut f = facts("agent", &client, &subject, &resources);
        f.actor = Some(&actor);
        assert_eq!(
            decide(&request(""), &f).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
        f.proof.dpop_jkt = Some(JKT);
        assert!(decide(&request(""), &f).is_ok());
    }

    // --- trusted issuers' tokens -------------------------------------------------

    #[test]
    fn trusted_jwt_facts_are_read_and_unknown_bindings_refused() {
        let facts = TokenFacts::from_trusted_jwt(&json!({"iss": "https://idp.example",
            "sub": "alice", "aud": [AS], "exp": NOW + 60, "scope": "read",
            "cnf": {"jkt": JKT}, "may_act": {"sub": "agent"}}))
        .unwrap();
        assert_eq!(facts.scopes, Some(vec!["read".to_owned()]));
        assert_eq!(facts.cnf.unwrap().jkt.as_deref(), Some(JKT));
        assert_eq!(facts.may_act, Some(json!({"sub": "agent"})));
        assert_eq!(facts.origin, Origin::Trusted);
        for bad in [
            json!({"iss": "https://idp.example", "exp": 1}),
            json!({"iss": "https://idp.example", "sub": "a"}),
            json!({"iss": "https://idp.example", "sub": "a", "exp": 1, "cnf": {"jwk": {}}}),
            json!({"iss": "https://idp.example", "sub": "a", "exp": 1, "scope": ["read"]}),
        ] {
            assert!(TokenFacts::from_trusted_jwt(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_trusted_jwt_without_scope_is_limited_by_the_clients_registration() {
        let client = agent();
        let resources = known();
        let subject = TokenFacts::from_trusted_jwt(&json!({"iss": "https://idp.example",
            "sub": "alice", "aud": AS, "exp": NOW + 60}))
        .unwrap();
        let exchange =
            decide(&request(""), &facts("agent", &client, &subject, &resources)).unwrap();
        assert_eq!(exchange.grant.scopes, vec!["read", "write"]);
        assert_eq!(exchange.grant.audience, vec![AS]);
        assert_eq!(exchange.grant.lifetime, 60);
        assert!(exchange.ancestry.is_empty() && exchange.grant_id.is_none());
        assert_eq!(
            exchange.act,
            Some(json!({"sub": "agent", "client_id": "agent"}))
        );
    }

    #[test]
    fn a_custos_access_tokens_facts() {
        let mut claims = AccessTokenClaims::for_grant(
            AS,
            "app",
            &Grant {
                subject: "alice".into(),
                scopes: vec!["read".into()],
                audience: vec![API.into()],
                lifetime: 60,
            },
            NOW,
            "j1".into(),
        );
        claims.ancestry = Some(vec!["j0".into()]);
        claims.grant_id = Some("g".into());
        let facts = TokenFacts::from_access_token(&claims);
        assert_eq!(facts.scopes, Some(vec!["read".to_owned()]));
        assert_eq!(facts.exp, NOW + 60);
        assert_eq!(
            facts.origin,
            Origin::Custos {
                jti: "j1".into(),
                grant_id: Some("g".into()),
                ancestry: vec!["j0".into()],
                authorization_details: None
            }
        );
    }
}
