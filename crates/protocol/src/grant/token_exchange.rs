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
use serde_json::Value;

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
        /// The clients those tokens were issued to.
        ancestry_clients: Vec<String>,
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
                ancestry_clients: claims.ancestry_clients.clone().unwrap_or_default(),
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
    /// The clients of the tokens in `ancestry`, each once.
    pub ancestry_clients: Vec<String>,
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

    let (ancestry, ancestry_clients, grant_id, authorization_details) = match &subject.origin {
        Origin::Custos {
            jti,
            grant_id,
            ancestry,
            ancestry_clients,
            authorization_details,
        } => {
            let mut clients: Vec<String> = Vec::with_capacity(ancestry_clients.len() + 1);
            for client in subject.client_id.iter().chain(ancestry_clients) {
                if !clients.contains(client) {
                    clients.push(client.clone());
                }
            }
            (
                std::iter::once(jti.clone())
                    .chain(ancestry.iter().cloned())
                    .collect::<Vec<_>>(),
                clients,
                grant_id.clone(),
                authorization_details.clone(),
            )
        }
        Origin::Trusted => (Vec::new(), Vec::new(), None, None),
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
        ancestry_clients,
        task_id: request.task_id.clone(),
        issued_token_type: request.requested_token_type.uri(),
    })
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

mod act;
use act::{actor_of_token, may_act_names, read_act, write_act, Actor};

#[cfg(test)]
mod tests;
