//! [`Verifier`]: checks the access token a request carries.

use crate::challenge::{ChallengeParams, ErrorCode, Rejection, Scheme};
use crate::claims::{ClaimRules, VerifiedToken};
use crate::clock::Clock;
use crate::dpop::{self, ProofRules, ReplayStore};
use crate::jose::{self, Algorithm};
use crate::jwks::JwksError;
use crate::keys::{KeyCache, KeyLookupError};
use crate::metadata::ProtectedResourceMetadata;
use crate::request::{credentials, Credentials, Header, Request};
use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

mod builder;
pub use builder::{BuildError, DpopPolicy, VerifierBuilder};

/// Longest access token header part, characters.
const MAX_TOKEN_HEADER: usize = 2048;
/// Longest `kid`, bytes.
const MAX_KID_LEN: usize = 256;

struct Inner {
    issuer: String,
    audiences: Vec<String>,
    keys: KeyCache,
    algorithms: Vec<Algorithm>,
    dpop_algorithms: Vec<Algorithm>,
    required_scopes: Vec<String>,
    dpop: DpopPolicy,
    leeway: i64,
    dpop_max_age: i64,
    max_token_len: usize,
    replay: Arc<dyn ReplayStore>,
    clock: Arc<dyn Clock>,
    params: Arc<ChallengeParams>,
    origin: Option<String>,
    metadata: ProtectedResourceMetadata,
}

/// Checks access tokens issued by one custos issuer for one resource.
/// Cheap to clone; share one per resource (it holds the key cache).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use custos_verifier::{DpopPolicy, Request, Verifier};
///
/// let verifier = Verifier::builder("https://auth.example.com", "https://api.example.com")
///     .required_scopes(["files:read"])
///     .dpop(DpopPolicy::Allowed)
///     .build()?;
/// let request = Request::new("GET", "https://api.example.com/files")
///     .authorization("Bearer eyJ...");
/// match verifier.verify(&request).await {
///     Ok(token) => println!("hello {}", token.subject()),
///     Err(rejection) => println!("{} {:?}", rejection.status(), rejection.challenges()),
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.0.issuer)
            .field("audiences", &self.0.audiences)
            .field("dpop", &self.0.dpop)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A builder for tokens of `issuer` (compared exactly with `iss`)
    /// meant for `resource` (one of the token's `aud`; for an MCP server,
    /// its canonical URI, e.g. `https://mcp.example.com/mcp`).
    pub fn builder(issuer: impl Into<String>, resource: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into(), resource.into())
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The resource identifier (the first accepted audience).
    pub fn resource(&self) -> &str {
        &self.0.audiences[0]
    }

    /// The protected resource metadata document (RFC 9728).
    pub fn metadata(&self) -> &ProtectedResourceMetadata {
        &self.0.metadata
    }

    /// The metadata URL the challenges name, if any.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.0.params.resource_metadata.as_deref()
    }

    /// The public URL of a request path (`origin + path`, query dropped):
    /// the `htu` a DPoP proof for it must carry.
    pub fn request_url(&self, path: &str) -> Option<String> {
        let origin = self.0.origin.as_deref()?;
        let path = path.split(['?', '#']).next().unwrap_or("");
        Some(format!("{origin}{path}"))
    }

    /// Fetches the issuer's keys now (e.g. at startup, to fail early);
    /// the number of usable keys.
    pub async fn warm_up(&self) -> Result<usize, JwksError> {
        self.0.keys.load().await
    }

    /// Checks the request's token with the configured scopes.
    pub async fn verify(&self, request: &Request<'_>) -> Result<VerifiedToken, Rejection> {
        self.verify_with_scopes(request, &[]).await
    }

    /// Checks the request's token, which needs `scopes` besides the
    /// configured ones.
    pub async fn verify_with_scopes(
        &self,
        request: &Request<'_>,
        scopes: &[&str],
    ) -> Result<VerifiedToken, Rejection> {
        let inner = &*self.0;
        let params = &inner.params;
        // The scheme, spaces and the longest token accepted.
        let max_header = inner.max_token_len.saturating_add(32);
        let (scheme, token) = match credentials(request.authorization, max_header) {
            Credentials::None => {
                return Err(Rejection::unauthenticated(
                    params,
                    "this resource needs an access token",
                ))
            }
            Credentials::Malformed(why) => {
                return Err(Rejection::error(
                    params,
                    ErrorCode::InvalidRequest,
                    None,
                    why,
                ))
            }
            Credentials::Token(scheme, token) => (scheme, token),
        };
        let invalid =
            |why: String| Rejection::error(params, ErrorCode::InvalidToken, Some(scheme), why);
        if scheme == Scheme::Bearer && inner.dpop == DpopPolicy::Required {
            return Err(invalid(
                "this resource accepts only DPoP-bound tokens, sent with the DPoP scheme".into(),
            ));
        }
        let now = inner.clock.now();
        let verified = self.verify_token(token, scheme, now).await?;

        match (scheme, verified.dpop_thumbprint()) {
            (Scheme::Bearer, None) => {}
            (Scheme::Bearer, Some(_)) => {
                return Err(invalid(
                    "the token is DPoP-bound: send it with the DPoP scheme and a DPoP proof".into(),
                ))
            }
            (Scheme::DPoP, None) => {
                return Err(invalid(
                    "the token is not DPoP-bound: send it with the Bearer scheme".into(),
                ))
            }
            (Scheme::DPoP, Some(jkt)) => self.check_dpop(request, token, jkt, now).await?,
        }
        if let Some(bound) = verified.certificate_thumbprint() {
            let Some(der) = request.client_certificate else {
                return Err(invalid(
                    "the token is bound to a client certificate and the request came without one"
                        .into(),
                ));
            };
            let presented = URL_SAFE_NO_PAD.encode(digest(&SHA256, der));
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                presented.as_bytes(),
                bound.as_bytes(),
            )
            .is_err()
            {
                return Err(invalid(
                    "the token is bound to another client certificate (cnf x5t#S256)".into(),
                ));
            }
        }
        self.check_scopes_with(&verified, scopes)?;
        Ok(verified)
    }

    /// Signature, header and claims of the token itself.
    async fn verify_token(
        &self,
        token: &str,
        scheme: Scheme,
        now: i64,
    ) -> Result<VerifiedToken, Rejection> {
        let inner = &*self.0;
        let invalid = |why: String| {
            Rejection::error(&inner.params, ErrorCode::InvalidToken, Some(scheme), why)
        };
        let jws = jose::split(token, inner.max_token_len, MAX_TOKEN_HEADER)
            .map_err(|e| invalid(format!("the access token {e}")))?;
        // RFC 9068 §4: typ at+jwt (or application/at+jwt), nothing else.
        match jws.header.get("typ") {
            Some(Value::String(typ))
                if typ.eq_ignore_ascii_case("at+jwt")
                    || typ.eq_ignore_ascii_case("application/at+jwt") => {}
            _ => {
                return Err(invalid(
                    "the token's typ must be at+jwt (RFC 9068 section 4)".into(),
                ))
            }
        }
        let alg = jose::header_algorithm(&jws.header, &inner.algorithms)
            .map_err(|e| invalid(format!("the access token {e}")))?;
        jose::refuse_crit(&jws.header).map_err(|e| invalid(format!("the access token {e}")))?;
        let kid = match jws.header.get("kid") {
            None => None,
            Some(Value::String(kid)) if kid.len() <= MAX_KID_LEN => Some(kid.as_str()),
            Some(_) => return Err(invalid("the token's kid is not a short string".into())),
        };
        let keys = inner
            .keys
            .keys_for(kid, alg)
            .await
            .map_err(|error| match error {
                KeyLookupError::Unknown => invalid(format!(
                "the token is signed with a key the issuer does not publish (kid '{}', alg {alg})",
                jose::printable(kid.unwrap_or(""), 64)
            )),
                KeyLookupError::Unavailable(error) => Rejection::unavailable(
                    &inner.params,
                    format!("the issuer's keys cannot be had: {error}"),
                ),
            })?;
        let key = keys
            .find(kid, alg)
            .ok_or_else(|| invalid("no key of the issuer fits the token".into()))?;
        if alg
            .signature_len()
            .is_some_and(|len| len != jws.signature.len())
            || key
                .verify_sig(jws.signing_input.as_bytes(), &jws.signature)
                .is_err()
        {
            return Err(invalid("the token's signature does not verify".into()));
        }
        let claims = jose::decode_object(jws.payload_b64)
            .ok_or_else(|| invalid("the token's payload is not a base64url JSON object".into()))?;
        let rules = ClaimRules {
            issuer: &inner.issuer,
            audiences: &inner.audiences,
            now,
            leeway: inner.leeway,
        };
        VerifiedToken::from_claims(claims, &rules, scheme).map_err(invalid)
    }

    /// RFC 9449 §7.1: the proof, its key against `cnf.jkt`, single use.
    async fn check_dpop(
        &self,
        request: &Request<'_>,
        token: &str,
        jkt: &str,
        now: i64,
    ) -> Result<(), Rejection> {
        let inner = &*self.0;
        let bad_proof = |why: String| {
            Rejection::error(
                &inner.params,
                ErrorCode::InvalidDpopProof,
                Some(Scheme::DPoP),
                why,
            )
        };
        let proof = match request.dpop {
            Header::One(proof) => proof,
            Header::Absent => return Err(bad_proof("the request has no DPoP proof header".into())),
            Header::Invalid => {
                return Err(bad_proof(
                    "send exactly one DPoP header, of visible ASCII".into(),
                ))
            }
        };
        let rules = ProofRules {
            htm: request.method,
            htu: request.url,
            access_token: token,
            jkt,
            now,
            max_age: inner.dpop_max_age,
            max_skew: inner.leeway,
            algorithms: &inner.dpop_algorithms,
        };
        let checked = dpop::check_proof(proof, &rules).map_err(bad_proof)?;
        let key = dpop::replay_key(&checked.jkt, &checked.jti);
        let until = checked
            .iat
            .saturating_add(inner.dpop_max_age)
            .saturating_add(1);
        match inner.replay.first_use(&key, until, now).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(bad_proof("the DPoP proof was already used (jti)".into())),
            Err(error) => Err(Rejection::unavailable(&inner.params, error.to_string())),
        }
    }

    /// Whether `token` has every configured scope and every one of
    /// `scopes`; else an `insufficient_scope` refusal naming them all.
    pub fn check_scopes(&self, token: &VerifiedToken, scopes: &[&str]) -> Result<(), Rejection> {
        self.check_scopes_with(token, scopes)
    }

    fn check_scopes_with(&self, token: &VerifiedToken, scopes: &[&str]) -> Result<(), Rejection> {
        let configured = self.0.required_scopes.iter().map(String::as_str);
        let mut required: Vec<&str> = Vec::new();
        for scope in configured.chain(scopes.iter().copied()) {
            if !required.contains(&scope) {
                required.push(scope);
            }
        }
        if required.iter().all(|scope| token.has_scope(scope)) {
            return Ok(());
        }
        Err(Rejection::insufficient_scope(
            &self.0.params,
            Some(token.scheme()),
            &required,
        ))
    }

    /// A refusal with this verifier's challenges, for checks of your own
    /// (e.g. `InvalidToken` for a token whose subject you banned).
    pub fn reject(&self, code: ErrorCode, description: impl Into<String>) -> Rejection {
        Rejection::error(&self.0.params, code, None, description)
    }

    /// The refusal of a request without credentials (401, the challenges
    /// with `resource_metadata` and no error code).
    pub fn unauthenticated(&self) -> Rejection {
        Rejection::unauthenticated(&self.0.params, "this resource needs an access token")
    }
}

#[cfg(test)]
mod tests;
