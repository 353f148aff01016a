//! JWT access tokens (RFC 9068).
//!
//! §2.1: the header `typ` is `at+jwt`. §2.2: `iss`, `exp`, `aud`, `sub`,
//! `client_id`, `iat` and `jti` are required; `scope` is present when scopes
//! were granted. For a client acting for itself (client credentials) `sub`
//! is the client_id.

use crate::grant::Grant;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// `aud`: one string when there is one audience, else an array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(pub Vec<String>);

impl Audience {
    pub fn contains(&self, value: &str) -> bool {
        self.0.iter().any(|a| a == value)
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(deserializer)? {
            OneOrMany::One(one) => Audience(vec![one]),
            OneOrMany::Many(many) => Audience(many),
        })
    }
}

/// The claims of a custos access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub client_id: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// RFC 7800 / RFC 9449 §6 / RFC 8705 §3: the key the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the delegation chain, newest actor outermost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<serde_json::Value>,
    /// RFC 9396 §9: the authorization details granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_details: Option<serde_json::Value>,
    /// custos: the person's authorization this token was issued under (the
    /// refresh token family); revoking it makes the token inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// custos: how the client proved itself, when its platform attested
    /// it (mTLS, SPIFFE, a federated token); absent for secrets and keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<ClientAuthClaim>,
    /// custos (token exchange): the task a per-task token was issued for,
    /// as the client named it (`task_id`, 1 to 128 of `[A-Za-z0-9._:-]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// custos (token exchange): the `jti`s of the tokens of this server
    /// this one was exchanged from, nearest first; revoking any of them
    /// makes this one inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ancestry: Option<Vec<String>>,
    /// custos (token exchange): the clients the tokens of `ancestry` were
    /// issued to, each once; disabling any of them makes this one
    /// inactive, as it does their own tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ancestry_clients: Option<Vec<String>>,
}

/// The `client_auth` claim: the client authentication method used and the
/// identity the platform attested — a SPIFFE ID, a federated token's
/// `iss#sub`, a certificate's subject or `x5t#S256:<thumbprint>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAuthClaim {
    pub method: String,
    pub attested_id: String,
}

/// `cnf`: the proof-of-possession key a token is bound to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 9449 §6.1: SHA-256 JWK thumbprint of the DPoP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// RFC 8705 §3.1: SHA-256 thumbprint of the client certificate.
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl AccessTokenClaims {
    /// The claims for a grant decided at `now`, with a fresh random `jti`.
    pub fn for_grant(issuer: &str, client_id: &str, grant: &Grant, now: i64, jti: String) -> Self {
        AccessTokenClaims {
            iss: issuer.to_owned(),
            sub: grant.subject.clone(),
            aud: Audience(grant.audience.clone()),
            client_id: client_id.to_owned(),
            iat: now,
            exp: now + i64::from(grant.lifetime),
            jti,
            scope: (!grant.scopes.is_empty()).then(|| grant.scopes.join(" ")),
            cnf: None,
            act: None,
            authorization_details: None,
            grant_id: None,
            client_auth: None,
            task_id: None,
            ancestry: None,
            ancestry_clients: None,
        }
    }
}

/// A public key that may have signed an access token.
pub struct VerificationKey {
    pub kid: String,
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// Checks an access token this server issued: the header (`typ` at+jwt, a
/// known `kid`, its algorithm), the signature, `iss`, and `exp` at `now`.
/// Any failure means "not an active token of ours" and yields `None`: the
/// caller (introspection, revocation) must not say why.
pub fn verify_access_token(
    token: &str,
    keys: &[VerificationKey],
    issuer: &str,
    now: i64,
) -> Option<AccessTokenClaims> {
    if token.len() > 8192 {
        return None;
    }
    let header = jsonwebtoken::decode_header(token).ok()?;
    if !header.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt")
    }) {
        return None;
    }
    let kid = header.kid.as_deref()?;
    let key = keys.iter().find(|k| k.kid == kid && k.alg == header.alg)?;
    let mut validation = Validation::new(key.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<AccessTokenClaims>(token, &key.key, &validation)
        .ok()?
        .claims;
    (claims.iss == issuer && claims.exp > now).then_some(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(audience: &[&str]) -> Grant {
        Grant {
            subject: "c1".into(),
            scopes: vec!["read".into()],
            audience: audience.iter().map(|s| s.to_string()).collect(),
            lifetime: 300,
        }
    }

    #[test]
    fn rfc9068_2_2_required_claims_present() {
        let claims = AccessTokenClaims::for_grant(
            "https://as",
            "c1",
            &grant(&["https://api"]),
            1000,
            "j".into(),
        );
        let json = serde_json::to_value(&claims).unwrap();
        for name in ["iss", "exp", "aud", "sub", "client_id", "iat", "jti"] {
            assert!(json.get(name).is_some(), "{name}");
        }
        assert_eq!(json["aud"], "https://api");
        assert_eq!(json["exp"], 1300);
        assert_eq!(json["scope"], "read");
    }

    #[test]
    fn audience_array_when_many() {
        let claims = AccessTokenClaims::for_grant(
            "https://as",
            "c1",
            &grant(&["https://a", "https://b"]),
            0,
            "j".into(),
        );
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["aud"], serde_json::json!(["https://a", "https://b"]));
        let back: AccessTokenClaims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims);
    }

    #[test]
    fn junk_tokens_are_not_active() {
        for junk in [
            "",
            "x",
            "a.b.c",
            "eyJhbGciOiJub25lIn0.e30.",
            &"a".repeat(10_000),
        ] {
            assert!(verify_access_token(junk, &[], "https://as", 0).is_none());
        }
    }
}
