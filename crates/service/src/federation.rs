//! Tokens from trusted OIDC issuers standing for a client (the
//! `federated_jwt` client authentication method and the JWT bearer grant):
//! the issuer must be trusted, the token verified with its keys (fetched
//! again once when it names a key not yet seen), and it must match one of
//! the client's `federated_credentials` — `iss`, `sub`, claim conditions
//! and `aud` (the credential's `audience`, else this server's issuer or
//! token endpoint). Reused tokens are accepted (workloads keep them until
//! they near expiry) unless the issuer opted in to single use.

use crate::trusted_issuers::TrustedIssuers;
use custos_protocol::federation::{
    unverified_issuer_and_subject, verify_workload_jwt, TrustedIssuerConfig, WorkloadJwtRules,
};
use custos_protocol::grant::id_jag::{verify_id_jag, IdJag};
use custos_protocol::metadata::FederatedCredential;
use custos_store::Store;
use serde_json::Value;
use std::sync::Arc;

/// Who a verified federated token says the workload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FederatedIdentity {
    pub iss: String,
    pub sub: String,
}

impl FederatedIdentity {
    /// The attested identity as policies, tokens and the audit trail see
    /// it: `<iss>#<sub>`.
    pub fn attested_id(&self) -> String {
        format!("{}#{}", self.iss, self.sub)
    }
}

pub(crate) struct FederatedVerifier {
    trusted: Arc<TrustedIssuers>,
    store: Arc<dyn Store>,
    /// What `aud` must name when a credential names no audience: this
    /// server's issuer identifier or token endpoint.
    own_audiences: Vec<String>,
    leeway: i64,
}

impl FederatedVerifier {
    pub fn new(
        trusted: Arc<TrustedIssuers>,
        store: Arc<dyn Store>,
        issuer: &str,
        token_endpoint: &str,
        leeway: i64,
    ) -> Self {
        FederatedVerifier {
            trusted,
            store,
            own_audiences: vec![issuer.to_owned(), token_endpoint.to_owned()],
            leeway,
        }
    }

    /// Verifies `token` as one of `credentials`; the error is the reason
    /// to give the caller. `record_use`: a single-use issuer's `jti` is
    /// recorded (false only for a check that a later verification repeats).
    pub async fn verify(
        &self,
        token: &str,
        credentials: &[FederatedCredential],
        now: i64,
        record_use: bool,
    ) -> Result<FederatedIdentity, String> {
        let (iss, _) = unverified_issuer_and_subject(token)?;
        let iss = iss.ok_or("the token has no iss")?;
        if !credentials.iter().any(|c| c.issuer == iss) {
            return Err("the token's issuer is not in the client's federated_credentials".into());
        }
        let config = self
            .trusted
            .get(&iss)
            .await
            .map_err(|_| "the token's issuer could not be looked up".to_owned())?
            .ok_or("the token's issuer is not a trusted issuer")?;
        let TrustedIssuerConfig::Oidc {
            max_token_lifetime,
            single_use,
            ..
        } = config.as_ref()
        else {
            return Err("the token's issuer is a SPIFFE trust domain: use spiffe_jwt".into());
        };
        let mut audiences = self.own_audiences.clone();
        audiences.extend(credentials.iter().filter_map(|c| c.audience.clone()));
        let rules = WorkloadJwtRules {
            issuer: Some(&iss),
            audiences: &audiences,
            only_these_audiences: false,
            now,
            leeway: self.leeway,
            max_lifetime: i64::from(*max_token_lifetime),
        };
        let keys = self.trusted.oidc_keys_for(&config, token).await?;
        let verified = verify_workload_jwt(token, &keys.keys, &rules)?;
        let aud = audience_values(&verified.claims);
        let matched = credentials.iter().any(|credential| {
            credential.matches(&verified.claims)
                && match &credential.audience {
                    Some(wanted) => aud.contains(&wanted.as_str()),
                    None => aud
                        .iter()
                        .any(|a| self.own_audiences.iter().any(|o| o == a)),
                }
        });
        if !matched {
            return Err(
                "the token matches none of the client's federated_credentials (iss, sub, aud, claims)"
                    .into(),
            );
        }
        if *single_use && record_use {
            let jti = verified
                .jti
                .as_deref()
                .ok_or("this issuer's tokens are single-use and must carry a jti")?;
            let first = self
                .store
                .record_jti_once(
                    &format!("federated:{iss}"),
                    jti,
                    verified.exp + self.leeway,
                    now,
                )
                .await
                .map_err(|_| "the token's single use could not be recorded".to_owned())?;
            if !first {
                return Err("this issuer's tokens are single-use and this one was used".into());
            }
        }
        Ok(FederatedIdentity {
            iss,
            sub: verified.sub,
        })
    }
}

impl FederatedVerifier {
    /// Verifies an ID-JAG (MCP enterprise-managed authorization): from a
    /// trusted OIDC issuer registered for ID-JAGs, `aud` this server's
    /// issuer identifier and nothing else. The error is the reason to give;
    /// [`use_id_jag`](Self::use_id_jag) then records its single use.
    pub async fn verify_id_jag(&self, token: &str, now: i64) -> Result<IdJag, String> {
        let (iss, _) = unverified_issuer_and_subject(token)?;
        let iss = iss.ok_or("the ID-JAG has no iss")?;
        let config = self
            .trusted
            .get(&iss)
            .await
            .map_err(|_| "the ID-JAG's issuer could not be looked up".to_owned())?
            .ok_or("the ID-JAG's issuer is not a trusted issuer of this server")?;
        let TrustedIssuerConfig::Oidc {
            max_token_lifetime,
            id_jag: true,
            ..
        } = config.as_ref()
        else {
            // A workload-identity issuer (Kubernetes, CI) must not vouch
            // for people: only issuers registered with `id_jag: true`.
            return Err(
                "the ID-JAG's issuer is not trusted for ID-JAGs (its registration needs id_jag: true)"
                    .into(),
            );
        };
        let audiences = [self.own_audiences[0].clone()];
        let rules = WorkloadJwtRules {
            issuer: Some(&iss),
            audiences: &audiences,
            // `aud` is this server alone: one ID-JAG, one redemption.
            only_these_audiences: true,
            now,
            leeway: self.leeway,
            max_lifetime: i64::from(*max_token_lifetime),
        };
        let keys = self.trusted.oidc_keys_for(&config, token).await?;
        verify_id_jag(token, &keys.keys, &rules)
    }

    /// Records an ID-JAG's `jti`, once the grant was decided for the client
    /// it names (someone else presenting it cannot use it up).
    pub async fn use_id_jag(&self, jag: &IdJag, now: i64) -> Result<(), String> {
        let first = self
            .store
            .record_jti_once(
                &format!("id-jag:{}", jag.iss),
                &jag.jti,
                jag.exp + self.leeway,
                now,
            )
            .await
            .map_err(|_| "the ID-JAG's single use could not be recorded".to_owned())?;
        if !first {
            return Err("this ID-JAG was already used (its jti is single use)".into());
        }
        Ok(())
    }
}

fn audience_values(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}
