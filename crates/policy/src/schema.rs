//! The Cedar schema every policy is validated against (CONTRACT.md,
//! "Request-time policy (Cedar)"), parsed once.

use std::sync::LazyLock;

use cedar_policy::{EntityId, EntityTypeName, EntityUid, Schema, Validator};

use crate::request::Grant;

/// The Cedar schema of custos's authorization requests, namespace `Custos`.
///
/// Every request is one `Custos::Client` (the principal) asking for a token
/// by one grant (the action) for one `Custos::Resource`. Operators write
/// policies against this schema; a policy that does not validate against
/// it in strict mode is refused when it is stored.
pub const SCHEMA: &str = r#"namespace Custos {
  // The client asking for a token.
  entity Client = {
    // The client's client_id (also the entity id).
    client_id: String,
    // The token_endpoint_auth_method used for this request.
    auth_method: String,
    // True when the client authenticated with a static shared secret.
    uses_static_secret: Bool,
    // The SPIFFE ID, federated iss + sub, or certificate subject; "" when none.
    attested_id: String,
    owner: String,
    tags: Set<String>
  };

  // The resource (RFC 8707 resource indicator) the token is for.
  entity Resource = {
    uri: String,
    tags: Set<String>
  };

  // One action per grant.
  action client_credentials, authorization_code, refresh_token, token_exchange, jwt_bearer
    appliesTo {
      principal: Client,
      resource: Resource,
      context: {
        // The scopes the token would carry.
        scopes: Set<String>,
        // True when the token is bound to a key (DPoP or mTLS).
        sender_constrained: Bool,
        // Length of the act chain; 0 without one.
        delegation_depth: Long,
        // Client ids in the act chain.
        actors: Set<String>,
        // The person or the client the token is about.
        subject: String
      }
    };
}
"#;

/// What the rest of the crate needs from the schema, built once.
pub(crate) struct Compiled {
    pub(crate) validator: Validator,
    pub(crate) client_type: EntityTypeName,
    pub(crate) resource_type: EntityTypeName,
    /// Indexed by `Grant as usize`.
    pub(crate) actions: [EntityUid; Grant::ALL.len()],
}

static COMPILED: LazyLock<Result<Compiled, String>> = LazyLock::new(compile);

fn compile() -> Result<Compiled, String> {
    let (schema, _warnings) =
        Schema::from_cedarschema_str(SCHEMA).map_err(|e| format!("custos schema: {e}"))?;
    let type_name = |name: &str| {
        name.parse::<EntityTypeName>()
            .map_err(|e| format!("custos schema: {name}: {e}"))
    };
    let action_type = type_name("Custos::Action")?;
    let actions = Grant::ALL.map(|grant| {
        EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(grant.as_str()))
    });
    Ok(Compiled {
        validator: Validator::new(schema),
        client_type: type_name("Custos::Client")?,
        resource_type: type_name("Custos::Resource")?,
        actions,
    })
}

/// The parsed schema. An `Err` is a bug in [`SCHEMA`] (a test parses it);
/// callers turn it into a refusal rather than a panic.
pub(crate) fn compiled() -> Result<&'static Compiled, &'static str> {
    COMPILED.as_ref().map_err(String::as_str)
}

/// The parsed schema, for callers who want to reuse it (for example to
/// validate policies with Cedar's own tools).
pub fn schema() -> Option<&'static Schema> {
    compiled().ok().map(|c| c.validator.schema())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_text_parses_and_declares_the_contract() {
        let compiled = compiled().expect("schema parses");
        let schema = compiled.validator.schema();
        let mut actions: Vec<String> = schema
            .actions()
            .map(|a| a.id().escaped().to_string())
            .collect();
        actions.sort();
        assert_eq!(
            actions,
            [
                "authorization_code",
                "client_credentials",
                "jwt_bearer",
                "refresh_token",
                "token_exchange"
            ]
        );
        let mut types: Vec<String> = schema.entity_types().map(ToString::to_string).collect();
        types.sort();
        assert_eq!(types, ["Custos::Client", "Custos::Resource"]);
    }

    #[test]
    fn action_uids_follow_grant_order() {
        let compiled = compiled().expect("schema parses");
        for grant in Grant::ALL {
            assert_eq!(
                compiled.actions[grant as usize].to_string(),
                format!("Custos::Action::\"{}\"", grant.as_str())
            );
        }
    }
}
