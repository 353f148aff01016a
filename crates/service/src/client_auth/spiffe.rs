//! SPIFFE client authentication (draft-ietf-oauth-spiffe-client-auth): the
//! workload proves its SPIFFE ID with an SVID its trust domain issued,
//! verified against that trust domain's bundle (registered through `POST
//! /admin/trusted-issuers` with `kind: spiffe`), never the system roots.
//!
//! - `spiffe_jwt` (§3.1): a JWT-SVID as `client_assertion` with type
//!   `urn:ietf:params:oauth:client-assertion-type:jwt-spiffe`; `sub` the
//!   SPIFFE ID, `aud` this server's issuer and nothing else, `exp`
//!   required, `iss` and `jti` optional and never single-use (workloads
//!   reuse an SVID until it nears expiry); keys from the bundle's
//!   `jwt-svid` authorities.
//! - `spiffe_x509` (§3.2): the X.509-SVID as the TLS client certificate,
//!   validated by the X509-SVID rules to the bundle's `x509-svid`
//!   authorities.
//!
//! Either way the SPIFFE ID must match the client's registered `spiffe_id`
//! (a trailing `/*` matches the IDs below a path).

use super::{Attestation, ClientAuthMethod, Presented};
use crate::client_cache::LoadedClient;
use crate::error::ServiceError;
use crate::request::RequestContext;
use crate::trusted_issuers::TrustedIssuers;
use async_trait::async_trait;
use custos_protocol::client_auth::{assertion_claim, Claim};
use custos_protocol::federation::{
    unverified_issuer_and_subject, verify_workload_jwt, WorkloadJwtRules,
    DEFAULT_MAX_TOKEN_LIFETIME,
};
use custos_protocol::metadata::AuthMethod;
use custos_protocol::names::CLIENT_ASSERTION_TYPE_JWT_SPIFFE;
use custos_protocol::spiffe::{verify_x509_svid, SpiffeBundle, SpiffeId};
use custos_protocol::x509::LeafFacts;
use custos_protocol::OAuthError;
use std::sync::Arc;

fn refused(method: AuthMethod, reason: impl std::fmt::Display) -> ServiceError {
    OAuthError::invalid_client(format!("{}: {reason}", method.as_str())).into()
}

/// The bundle of `id`'s trust domain, fetched again once when `refresh`
/// says the one held lacks what the SVID needs.
async fn bundle_of(
    trusted: &TrustedIssuers,
    id: &SpiffeId,
    refresh: bool,
) -> Result<Arc<SpiffeBundle>, String> {
    let config = trusted
        .get(id.trust_domain())
        .await
        .map_err(|_| "the trust domain could not be looked up".to_owned())?
        .ok_or("the SPIFFE ID's trust domain is not trusted")?;
    trusted.spiffe_bundle(&config, refresh).await
}

/// The client's registered `spiffe_id` must match `id`.
fn check_registered(
    client: &LoadedClient,
    id: &SpiffeId,
    method: AuthMethod,
) -> Result<(), ServiceError> {
    let matches = client
        .metadata
        .attestation
        .spiffe_pattern()
        .is_some_and(|pattern| pattern.matches(id));
    if matches {
        Ok(())
    } else {
        Err(refused(
            method,
            "the SVID's SPIFFE ID is not the client's registered spiffe_id",
        ))
    }
}

pub(crate) struct SpiffeJwt {
    trusted: Arc<TrustedIssuers>,
    /// The one `aud` a JWT-SVID may carry: the issuer identifier.
    issuer: String,
    leeway: i64,
}

impl SpiffeJwt {
    pub fn new(trusted: Arc<TrustedIssuers>, issuer: &str, leeway: i64) -> Self {
        SpiffeJwt {
            trusted,
            issuer: issuer.to_owned(),
            leeway,
        }
    }
}

#[async_trait]
impl ClientAuthMethod for SpiffeJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::SpiffeJwt
    }

    fn claim(&self, request: &Presented<'_>) -> Result<Option<Claim>, OAuthError> {
        assertion_claim(request.form, CLIENT_ASSERTION_TYPE_JWT_SPIFFE)
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        claim: &Claim,
        _request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let method = self.method();
        let svid = claim
            .credential
            .as_ref()
            .ok_or_else(super::failed)?
            .expose();
        let (_, sub) = unverified_issuer_and_subject(svid).map_err(|e| refused(method, e))?;
        let id = SpiffeId::parse(&sub).map_err(|e| refused(method, format!("sub: {e}")))?;
        check_registered(client, &id, method)?;
        // rfc7523bis: the issuer identifier; with a trailing slash too, as
        // the draft's own example writes it.
        let audiences = [self.issuer.clone(), format!("{}/", self.issuer)];
        let rules = WorkloadJwtRules {
            issuer: None,
            audiences: &audiences,
            only_these_audiences: true,
            now: ctx.now(),
            leeway: self.leeway,
            max_lifetime: i64::from(DEFAULT_MAX_TOKEN_LIFETIME),
        };
        let mut bundle = bundle_of(&self.trusted, &id, false)
            .await
            .map_err(|e| refused(method, e))?;
        // Every jwt-svid authority has a kid (SPIFFE Trust Domain and
        // Bundle §4.2.2): an SVID without one would make every key a
        // candidate.
        let kid = jsonwebtoken::decode_header(svid)
            .ok()
            .and_then(|h| h.kid)
            .ok_or_else(|| refused(method, "the JWT-SVID has no kid"))?;
        if bundle.jwt_authority(&kid).is_none() {
            bundle = bundle_of(&self.trusted, &id, true)
                .await
                .map_err(|e| refused(method, e))?;
        }
        let verified = verify_workload_jwt(svid, bundle.jwt_authorities(), &rules)
            .map_err(|e| refused(method, e))?;
        if verified.sub != id.as_str() {
            return Err(refused(method, "sub changed"));
        }
        Ok(Attestation {
            attested_id: Some(id.as_str().to_owned()),
            certificate_thumbprint: None,
        })
    }
}

pub(crate) struct SpiffeX509 {
    trusted: Arc<TrustedIssuers>,
}

impl SpiffeX509 {
    pub fn new(trusted: Arc<TrustedIssuers>) -> Self {
        SpiffeX509 { trusted }
    }
}

#[async_trait]
impl ClientAuthMethod for SpiffeX509 {
    fn method(&self) -> AuthMethod {
        AuthMethod::SpiffeX509
    }

    async fn verify(
        &self,
        client: &LoadedClient,
        _claim: &Claim,
        request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError> {
        let method = self.method();
        let chain = &request.proof.peer_certificates;
        let leaf = super::mtls::presented_leaf(request, method)?;
        let facts = LeafFacts::parse(leaf).map_err(|e| refused(method, e))?;
        let [uri] = facts.san_uris.as_slice() else {
            return Err(refused(method, "an X.509-SVID has exactly one URI SAN"));
        };
        let id = SpiffeId::parse(uri).map_err(|e| refused(method, e))?;
        check_registered(client, &id, method)?;
        let bundle = bundle_of(&self.trusted, &id, false)
            .await
            .map_err(|e| refused(method, e))?;
        let verified = match verify_x509_svid(chain, &bundle, ctx.now()) {
            Ok(verified) => verified,
            // The trust domain may have rotated its authorities.
            Err(custos_protocol::spiffe::X509SvidError::UnknownIssuer) => {
                let bundle = bundle_of(&self.trusted, &id, true)
                    .await
                    .map_err(|e| refused(method, e))?;
                verify_x509_svid(chain, &bundle, ctx.now()).map_err(|e| refused(method, e))?
            }
            Err(e) => return Err(refused(method, e)),
        };
        Ok(Attestation {
            attested_id: Some(verified.as_str().to_owned()),
            certificate_thumbprint: Some(facts.thumbprint_s256),
        })
    }
}
