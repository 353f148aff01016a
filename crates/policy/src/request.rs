//! The facts of one authorization request, and their Cedar form.

use std::collections::{HashMap, HashSet};

use cedar_policy::{Context, Entities, Entity, EntityId, EntityUid, RestrictedExpression};
use serde::{Deserialize, Serialize};

use crate::schema::Compiled;

/// The client asking for a token: the principal, `Custos::Client::"<client_id>"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFacts {
    pub client_id: String,
    /// The `token_endpoint_auth_method` used for this request.
    pub auth_method: String,
    /// True when the client authenticated with a static shared secret.
    pub uses_static_secret: bool,
    /// The SPIFFE ID, federated `iss` + `sub`, or certificate subject; `""`
    /// when none.
    pub attested_id: String,
    pub owner: String,
    pub tags: Vec<String>,
}

/// The resource the token is for: `Custos::Resource::"<uri>"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceFacts {
    pub uri: String,
    pub tags: Vec<String>,
}

/// The grant asked for: the action, `Custos::Action::"<as_str()>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    ClientCredentials = 0,
    AuthorizationCode = 1,
    RefreshToken = 2,
    TokenExchange = 3,
    JwtBearer = 4,
}

impl Grant {
    /// Every grant, in declaration order.
    pub const ALL: [Grant; 5] = [
        Grant::ClientCredentials,
        Grant::AuthorizationCode,
        Grant::RefreshToken,
        Grant::TokenExchange,
        Grant::JwtBearer,
    ];

    /// The Cedar action id (`Custos::Action::"<this>"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Grant::ClientCredentials => "client_credentials",
            Grant::AuthorizationCode => "authorization_code",
            Grant::RefreshToken => "refresh_token",
            Grant::TokenExchange => "token_exchange",
            Grant::JwtBearer => "jwt_bearer",
        }
    }

    /// The grant whose action id is `id`.
    pub fn from_action_id(id: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.as_str() == id)
    }

    /// The grant an OAuth `grant_type` value asks for (RFC 6749, RFC 8693,
    /// RFC 7523).
    pub fn from_grant_type(grant_type: &str) -> Option<Grant> {
        match grant_type {
            "client_credentials" => Some(Grant::ClientCredentials),
            "authorization_code" => Some(Grant::AuthorizationCode),
            "refresh_token" => Some(Grant::RefreshToken),
            "urn:ietf:params:oauth:grant-type:token-exchange" => Some(Grant::TokenExchange),
            "urn:ietf:params:oauth:grant-type:jwt-bearer" => Some(Grant::JwtBearer),
            _ => None,
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The request's context record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextFacts {
    /// The scopes the token would carry.
    pub scopes: Vec<String>,
    /// True when the token is bound to a key (DPoP or mTLS).
    pub sender_constrained: bool,
    /// Length of the `act` chain; 0 without one.
    pub delegation_depth: i64,
    /// Client ids in the `act` chain.
    pub actors: Vec<String>,
    /// The person or the client the token is about.
    pub subject: String,
}

/// One authorization request: may `client` get a token by `grant` for
/// `resource`, given `context`? Borrows its facts, so one client and
/// context serve a request per resource without copies.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub client: &'a ClientFacts,
    pub grant: Grant,
    pub resource: &'a ResourceFacts,
    pub context: &'a ContextFacts,
}

impl<'a> Request<'a> {
    pub fn new(
        client: &'a ClientFacts,
        grant: Grant,
        resource: &'a ResourceFacts,
        context: &'a ContextFacts,
    ) -> Self {
        Request {
            client,
            grant,
            resource,
            context,
        }
    }
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn string_set(items: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(items.iter().map(|s| string(s)))
}

/// The Cedar request and its two entities (the client and the resource;
/// actions carry no attributes and are compared by id, so they need no
/// entity). Built directly from restricted expressions: no JSON, and no
/// schema-directed entity parsing (the bench measures the difference).
/// The values are typed as the schema says by construction, so the request
/// is not validated against the schema again.
pub(crate) fn to_cedar(
    compiled: &Compiled,
    request: &Request<'_>,
) -> Result<(cedar_policy::Request, Entities), String> {
    let client = request.client;
    let principal = EntityUid::from_type_name_and_id(
        compiled.client_type.clone(),
        EntityId::new(&client.client_id),
    );
    let resource = EntityUid::from_type_name_and_id(
        compiled.resource_type.clone(),
        EntityId::new(&request.resource.uri),
    );
    let action = compiled.actions[request.grant as usize].clone();

    let client_attrs = HashMap::from([
        ("client_id".to_owned(), string(&client.client_id)),
        ("auth_method".to_owned(), string(&client.auth_method)),
        (
            "uses_static_secret".to_owned(),
            RestrictedExpression::new_bool(client.uses_static_secret),
        ),
        ("attested_id".to_owned(), string(&client.attested_id)),
        ("owner".to_owned(), string(&client.owner)),
        ("tags".to_owned(), string_set(&client.tags)),
    ]);
    let resource_attrs = HashMap::from([
        ("uri".to_owned(), string(&request.resource.uri)),
        ("tags".to_owned(), string_set(&request.resource.tags)),
    ]);
    let client_entity = Entity::new(principal.clone(), client_attrs, HashSet::new())
        .map_err(|e| format!("client entity: {e}"))?;
    let resource_entity = Entity::new(resource.clone(), resource_attrs, HashSet::new())
        .map_err(|e| format!("resource entity: {e}"))?;
    // Two entities with the same uid are impossible: their types differ.
    let entities = Entities::from_entities([client_entity, resource_entity], None)
        .map_err(|e| format!("entities: {e}"))?;

    let ctx = request.context;
    let context = Context::from_pairs([
        ("scopes".to_owned(), string_set(&ctx.scopes)),
        (
            "sender_constrained".to_owned(),
            RestrictedExpression::new_bool(ctx.sender_constrained),
        ),
        (
            "delegation_depth".to_owned(),
            RestrictedExpression::new_long(ctx.delegation_depth),
        ),
        ("actors".to_owned(), string_set(&ctx.actors)),
        ("subject".to_owned(), string(&ctx.subject)),
    ])
    .map_err(|e| format!("context: {e}"))?;

    let request = cedar_policy::Request::new(principal, action, resource, context, None)
        .map_err(|e| format!("request: {e}"))?;
    Ok((request, entities))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_action_ids_round_trip() {
        for grant in Grant::ALL {
            assert_eq!(Grant::from_action_id(grant.as_str()), Some(grant));
        }
        assert_eq!(Grant::from_action_id("password"), None);
    }

    #[test]
    fn grant_types_map_to_actions() {
        assert_eq!(
            Grant::from_grant_type("urn:ietf:params:oauth:grant-type:token-exchange"),
            Some(Grant::TokenExchange)
        );
        assert_eq!(
            Grant::from_grant_type("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            Some(Grant::JwtBearer)
        );
        assert_eq!(
            Grant::from_grant_type("client_credentials"),
            Some(Grant::ClientCredentials)
        );
        assert_eq!(Grant::from_grant_type("password"), None);
        assert_eq!(Grant::from_grant_type("implicit"), None);
    }
}
