//! Token introspection responses (RFC 7662 §2.2).

use crate::access_token::{AccessTokenClaims, Audience};
use serde::Serialize;

/// The answer to an introspection request. An inactive token gets only
/// `{"active": false}` (§2.2: nothing else should be said of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub details: Option<ActiveDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveDetails {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub client_id: String,
    pub token_type: &'static str,
    pub exp: i64,
    pub iat: i64,
    pub sub: String,
    pub aud: Audience,
    pub iss: String,
    pub jti: String,
}

impl IntrospectionResponse {
    pub fn inactive() -> Self {
        IntrospectionResponse {
            active: false,
            details: None,
        }
    }

    pub fn active(claims: AccessTokenClaims) -> Self {
        IntrospectionResponse {
            active: true,
            details: Some(ActiveDetails {
                scope: claims.scope,
                client_id: claims.client_id,
                token_type: "Bearer",
                exp: claims.exp,
                iat: claims.iat,
                sub: claims.sub,
                aud: claims.aud,
                iss: claims.iss,
                jti: claims.jti,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7662_2_2_inactive_says_nothing_more() {
        assert_eq!(
            serde_json::to_string(&IntrospectionResponse::inactive()).unwrap(),
            r#"{"active":false}"#
        );
    }
}
