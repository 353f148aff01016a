//! The claims of an RFC 9068 access token, checked, and what a handler
//! reads from them: [`VerifiedToken`].

use crate::challenge::Scheme;
use crate::jose::numeric_date;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Deepest `act` chain read (RFC 8693 §4.1 nests one object per actor).
const MAX_ACTORS: usize = 32;

/// What the claims are held to.
pub(crate) struct ClaimRules<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    pub now: i64,
    pub leeway: i64,
}

/// An access token that passed every check: signature, `typ`, `iss`,
/// `aud`, `exp`, and its binding (DPoP key or client certificate).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct VerifiedToken(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    issuer: String,
    subject: String,
    client_id: String,
    audience: Vec<String>,
    scopes: Vec<String>,
    issued_at: i64,
    expires_at: i64,
    jti: String,
    dpop_jkt: Option<String>,
    x5t_s256: Option<String>,
    scheme: Scheme,
    authorization_details: Vec<Value>,
    claims: Map<String, Value>,
}

/// One actor of an RFC 8693 delegation chain (`act`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The actor's `sub`.
    pub subject: String,
    /// The actor's `iss`, when given.
    pub issuer: Option<String>,
    /// The actor's `client_id`, when given.
    pub client_id: Option<String>,
}

impl VerifiedToken {
    /// Checks the registered claims (RFC 9068 §2.2, §4) and reads the rest.
    /// Errors describe an `invalid_token`.
    pub(crate) fn from_claims(
        claims: Map<String, Value>,
        rules: &ClaimRules<'_>,
        scheme: Scheme,
    ) -> Result<Self, String> {
        let text = |name: &str| -> Result<String, String> {
            match claims.get(name) {
                Some(Value::String(value)) if !value.is_empty() => Ok(value.clone()),
                Some(_) => Err(format!("the {name} claim must be a non-empty string")),
                None => Err(format!(
                    "the token has no {name} claim (RFC 9068 section 2.2)"
                )),
            }
        };
        let date = |name: &str| -> Result<Option<i64>, String> {
            claims
                .get(name)
                .map(|value| {
                    numeric_date(value).ok_or_else(|| format!("the {name} claim must be a number"))
                })
                .transpose()
        };

        let issuer = text("iss")?;
        if issuer != rules.issuer {
            return Err("the token was issued by another issuer (iss)".into());
        }
        let expires_at = date("exp")?.ok_or("the token has no exp claim")?;
        if expires_at.saturating_add(rules.leeway) <= rules.now {
            return Err("the token has expired".into());
        }
        let issued_at = date("iat")?.ok_or("the token has no iat claim")?;
        if issued_at > rules.now.saturating_add(rules.leeway) {
            return Err("the token is issued in the future (iat)".into());
        }
        if date("nbf")?.is_some_and(|nbf| nbf > rules.now.saturating_add(rules.leeway)) {
            return Err("the token is not valid yet (nbf)".into());
        }
        let audience = match claims.get("aud") {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many
                .iter()
                .map(|a| a.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("the aud claim must be a string or an array of strings")?,
            Some(_) => return Err("the aud claim must be a string or an array of strings".into()),
            None => return Err("the token has no aud claim (RFC 9068 section 2.2)".into()),
        };
        if !audience.iter().any(|a| rules.audiences.contains(a)) {
            return Err("the token is not meant for this resource (aud)".into());
        }
        let subject = text("sub")?;
        let client_id = text("client_id")?;
        let jti = text("jti")?;
        let scopes = match claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(scope)) => scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err("the scope claim must be a space-separated string".into()),
        };
        let (dpop_jkt, x5t_s256) = match claims.get("cnf") {
            None => (None, None),
            Some(Value::Object(cnf)) => {
                let member = |name: &str| match cnf.get(name) {
                    None => Ok(None),
                    Some(Value::String(value)) if !value.is_empty() => Ok(Some(value.clone())),
                    Some(_) => Err(format!("cnf.{name} must be a non-empty string")),
                };
                (member("jkt")?, member("x5t#S256")?)
            }
            Some(_) => return Err("the cnf claim must be an object".into()),
        };
        let authorization_details = match claims.get("authorization_details") {
            None => Vec::new(),
            Some(Value::Array(details)) if details.iter().all(Value::is_object) => details.clone(),
            Some(_) => return Err("authorization_details must be an array of objects".into()),
        };
        if claims.get("act").is_some_and(|act| !act.is_object()) {
            return Err("the act claim must be an object".into());
        }
        Ok(VerifiedToken(Arc::new(Inner {
            issuer,
            subject,
            client_id,
            audience,
            scopes,
            issued_at,
            expires_at,
            jti,
            dpop_jkt,
            x5t_s256,
            scheme,
            authorization_details,
            claims,
        })))
    }

    /// `iss`: the authorization server that issued the token.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// `sub`: the person (or, for client credentials, the client) the token
    /// speaks for.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// `client_id`: the client the token was issued to.
    pub fn client_id(&self) -> &str {
        &self.0.client_id
    }

    /// `aud`: the resources the token is meant for (RFC 8707 URIs).
    pub fn audience(&self) -> &[String] {
        &self.0.audience
    }

    /// The granted scopes, from `scope`.
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.0.scopes.iter().any(|s| s == scope)
    }

    /// `iat`, seconds since the epoch.
    pub fn issued_at(&self) -> i64 {
        self.0.issued_at
    }

    /// `exp`, seconds since the epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// `jti`: the token's unique id.
    pub fn jti(&self) -> &str {
        &self.0.jti
    }

    /// How the token was presented.
    pub fn scheme(&self) -> Scheme {
        self.0.scheme
    }

    /// `cnf.jkt`: the thumbprint of the DPoP key the token is bound to (and
    /// that signed this request's proof).
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.0.dpop_jkt.as_deref()
    }

    /// `cnf.x5t#S256`: the thumbprint of the client certificate the token
    /// is bound to (and that this request's TLS connection presented).
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.0.x5t_s256.as_deref()
    }

    /// The RFC 8693 delegation chain from `act`: the current actor first,
    /// then the one it acted for, and so on. Empty when no one acts for
    /// the subject.
    pub fn actors(&self) -> Vec<Actor> {
        let mut out = Vec::new();
        let mut next = self.0.claims.get("act");
        while let (Some(Value::Object(act)), true) = (next, out.len() < MAX_ACTORS) {
            let text = |name: &str| act.get(name).and_then(Value::as_str).map(str::to_owned);
            let Some(subject) = text("sub") else { break };
            out.push(Actor {
                subject,
                issuer: text("iss"),
                client_id: text("client_id"),
            });
            next = act.get("act");
        }
        out
    }

    /// RFC 9396 `authorization_details` granted with the token.
    pub fn authorization_details(&self) -> &[Value] {
        &self.0.authorization_details
    }

    /// The authorization details of one `type`.
    pub fn authorization_details_of_type<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Map<String, Value>> + 'a {
        self.0
            .authorization_details
            .iter()
            .filter_map(Value::as_object)
            .filter(move |detail| detail.get("type").and_then(Value::as_str) == Some(kind))
    }

    /// custos's `task_id`: the task a per-task token (from token exchange)
    /// was issued for.
    pub fn task_id(&self) -> Option<&str> {
        self.claim("task_id").and_then(Value::as_str)
    }

    /// Any claim, by name.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.0.claims.get(name)
    }

    /// All the claims, as the token carried them.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000;

    fn rules(audiences: &[String]) -> ClaimRules<'_> {
        ClaimRules {
            issuer: "https://as.example",
            audiences,
            now: NOW,
            leeway: 60,
        }
    }

    fn claims() -> Map<String, Value> {
        json!({
            "iss": "https://as.example", "sub": "alice", "aud": "https://api.example",
            "client_id": "c1", "iat": NOW, "exp": NOW + 300, "jti": "j1",
            "scope": "read  write",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn check(edit: impl FnOnce(&mut Map<String, Value>)) -> Result<VerifiedToken, String> {
        let audiences = ["https://api.example".to_owned()];
        let mut claims = claims();
        edit(&mut claims);
        VerifiedToken::from_claims(claims, &rules(&audiences), Scheme::Bearer)
    }

    #[test]
    fn reads_the_registered_claims() {
        let token = check(|_| {}).unwrap();
        assert_eq!(token.subject(), "alice");
        assert_eq!(token.client_id(), "c1");
        assert_eq!(token.scopes(), ["read", "write"]);
        assert!(token.has_scope("write") && !token.has_scope("admin"));
        assert_eq!(token.audience(), ["https://api.example"]);
        assert_eq!(token.expires_at(), NOW + 300);
        assert!(token.actors().is_empty());
        assert!(token.authorization_details().is_empty());
    }

    #[test]
    fn aud_string_or_array() {
        assert!(check(|c| {
            c.insert(
                "aud".into(),
                json!(["https://other", "https://api.example"]),
            );
        })
        .is_ok());
        for aud in [
            json!("https://other"),
            json!(["https://other"]),
            json!([]),
            json!(5),
            json!([5]),
        ] {
            assert!(
                check(|c| {
                    c.insert("aud".into(), aud.clone());
                })
                .is_err(),
                "{aud}"
            );
        }
        assert!(check(|c| {
            c.remove("aud");
        })
        .is_err());
    }

    #[test]
    fn rfc9068_required_claims() {
        for name in ["iss", "sub", "aud", "client_id", "iat", "exp", "jti"] {
            let error = check(|c| {
                c.remove(name);
            })
            .unwrap_err();
            assert!(error.contains(name), "{name}: {error}");
        }
        assert!(check(|c| {
            c.insert("sub".into(), json!(""));
        })
        .is_err());
        assert!(check(|c| {
            c.insert("iss".into(), json!("https://evil.example"));
        })
        .unwrap_err()
        .contains("iss"));
    }

    #[test]
    fn times_with_leeway() {
        let at = |name: &'static str, value: i64| {
            move |c: &mut Map<String, Value>| {
                c.insert(name.into(), json!(value));
            }
        };
        assert!(check(at("exp", NOW - 59)).is_ok());
        assert!(check(at("exp", NOW - 60)).unwrap_err().contains("expired"));
        assert!(check(at("iat", NOW + 60)).is_ok());
        assert!(check(at("iat", NOW + 61)).unwrap_err().contains("future"));
        assert!(check(at("nbf", NOW + 61)).unwrap_err().contains("nbf"));
        assert!(check(|c| {
            c.insert("exp".into(), json!("soon"));
        })
        .is_err());
    }

    #[test]
    fn cnf_act_and_authorization_details() {
        let token = check(|c| {
            c.insert("cnf".into(), json!({"jkt": "abc", "x5t#S256": "def"}));
            c.insert(
                "act".into(),
                json!({"sub": "agent", "client_id": "agent-app", "act": {"sub": "tool", "iss": "https://as.example"}}),
            );
            c.insert(
                "authorization_details".into(),
                json!([{"type": "payment", "amount": 5}, {"type": "other"}]),
            );
            c.insert("task_id".into(), json!("t-1"));
        })
        .unwrap();
        assert_eq!(token.dpop_thumbprint(), Some("abc"));
        assert_eq!(token.certificate_thumbprint(), Some("def"));
        let actors = token.actors();
        assert_eq!(actors.len(), 2);
        assert_eq!(actors[0].subject, "agent");
        assert_eq!(actors[0].client_id.as_deref(), Some("agent-app"));
        assert_eq!(actors[1].issuer.as_deref(), Some("https://as.example"));
        assert_eq!(token.authorization_details_of_type("payment").count(), 1);
        assert_eq!(token.task_id(), Some("t-1"));
        for (name, bad) in [
            ("cnf", json!("x")),
            ("cnf", json!({"jkt": 5})),
            ("act", json!("x")),
            ("authorization_details", json!({"type": "x"})),
            ("scope", json!(["a"])),
        ] {
            assert!(
                check(|c| {
                    c.insert(name.into(), bad.clone());
                })
                .is_err(),
                "{name} {bad}"
            );
        }
    }

    #[test]
    fn act_chain_is_bounded() {
        let mut act = json!({"sub": "last"});
        for i in 0..100 {
            act = json!({"sub": format!("a{i}"), "act": act});
        }
        let token = check(|c| {
            c.insert("act".into(), act);
        })
        .unwrap();
        assert_eq!(token.actors().len(), MAX_ACTORS);
    }
}
