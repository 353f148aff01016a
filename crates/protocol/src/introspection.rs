//! Token introspection responses (RFC 7662 §2.2).

use crate::access_token::{AccessTokenClaims, Audience, Confirmation};
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
    /// RFC 9449 §6.2, RFC 8705 §3.2: the key the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the delegation chain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 9396 §9.2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
}

impl IntrospectionResponse {
    pub fn inactive() -> Self {
        IntrospectionResponse {
            active: false,
            details: None,
        }
    }

    pub fn active(claims: AccessTokenClaims) -> Self {
        // RFC 9449 §6.2: a DPoP-bound token is introspected as `DPoP`.
        let dpop_bound = claims.cnf.as_ref().is_some_and(|c| c.jkt.is_some());
        IntrospectionResponse {
            active: true,
            details: Some(ActiveDetails {
                scope: claims.scope,
                client_id: claims.client_id,
                token_type: if dpop_bound { "DPoP" } else { "Bearer" },
                exp: claims.exp,
                iat: claims.iat,
                sub: claims.sub,
                aud: claims.aud,
                iss: claims.iss,
                jti: claims.jti,
                cnf: claims.cnf,
                act: claims.act,
                authorization_details: claims.authorization_details,
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

    fn claims(cnf: Option<Confirmation>) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "c1".into(),
            aud: Audience(vec!["https://api.example".into()]),
            client_id: "c1".into(),
            iat: 1,
            exp: 301,
            jti: "j".into(),
            scope: Some("read".into()),
            cnf,
            act: None,
            authorization_details: None,
            grant_id: None,
            client_auth: None,
            task_id: None,
            ancestry: None,
            ancestry_clients: None,
        }
    }

    #[test]
    fn rfc9449_6_2_a_dpop_bound_token_introspects_as_dpop_with_its_jkt() {
        let bound = Confirmation {
            jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
            x5t_s256: None,
        };
        let json =
            serde_json::to_value(IntrospectionResponse::active(claims(Some(bound)))).unwrap();
        assert_eq!(json["token_type"], "DPoP");
        assert_eq!(
            json["cnf"]["jkt"],
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        let json = serde_json::to_value(IntrospectionResponse::active(claims(None))).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        assert!(json.get("cnf").is_none());
    }
}
