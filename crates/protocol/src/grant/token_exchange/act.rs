//! The delegation chain (RFC 8693 §4.1, §4.4): reading a token's `act`,
//! writing the new one (newest actor outermost), who an actor token names,
//! and whether `may_act` names an actor.

use super::{ExchangeFacts, Origin, TokenFacts, MAX_ACT_IDENTITY};
use crate::OAuthError;
use serde_json::{Map, Value};

/// One level of `act`: who acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Actor {
    pub(super) sub: String,
    /// `None`: this server.
    pub(super) iss: Option<String>,
    pub(super) client_id: Option<String>,
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

/// The actor an actor token names, if it is the authenticated client's.
pub(super) fn actor_of_token(
    token: &TokenFacts,
    facts: &ExchangeFacts<'_>,
) -> Result<Actor, OAuthError> {
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
pub(super) fn read_act(act: Option<&Value>, max_depth: usize) -> Result<Vec<Actor>, OAuthError> {
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
pub(super) fn write_act(chain: &[Actor]) -> Option<Value> {
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
pub(super) fn may_act_names(
    may_act: &Value,
    actor: &Actor,
    issuer: &str,
) -> Result<bool, OAuthError> {
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
