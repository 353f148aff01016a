//! Client authentication: who is calling the token, introspection or
//! revocation endpoint? (RFC 6749 §2.3.)
//!
//! Each method is one implementation of [`ClientAuthMethod`] in its own
//! file: it says whether a request presents its kind of credentials (and
//! for which client), and verifies them against the client's registration.
//! The [`Authenticator`] holds the table of methods, refuses a request that
//! presents more than one, loads the client and holds it to its registered
//! method. Adding a method (mTLS, SPIFFE, federated tokens) adds a file
//! here and one line in [`Authenticator::new`].

mod client_secret;
mod federated_jwt;
mod mtls;
mod none;
mod private_key_jwt;
mod spiffe;

pub use mtls::{ClientCaRoots, NoClientCa};
pub use private_key_jwt::{JwksFetcher, NoJwksFetching};

use crate::attested_clients::AttestedClients;
use crate::client_cache::{Cached, LoadedClient};
use crate::clients::ClientDirectory;
use crate::crypto::MasterKey;
use crate::error::ServiceError;
use crate::request::{ClientProof, RequestContext};
use crate::trusted_issuers::TrustedIssuers;
use async_trait::async_trait;
use custos_protocol::client_auth::{check_presentation, public_claim, Claim};
use custos_protocol::form::FormParams;
use custos_protocol::metadata::{AuthMethod, ClientMetadata};
use custos_protocol::OAuthError;
use custos_store::Store;
use std::sync::Arc;

/// A request as a client authentication method sees it.
pub struct Presented<'a> {
    pub form: &'a FormParams,
    pub proof: &'a ClientProof,
}

/// How a client proved itself, for the token, the policy and the audit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attestation {
    /// What the platform vouched for (a SPIFFE ID, a federated `iss` +
    /// `sub`, a certificate subject); `None` for secrets and plain keys.
    pub attested_id: Option<String>,
    /// `x5t#S256` of the certificate the client authenticated with over
    /// mutual TLS (RFC 8705 §3.1), if it did.
    pub certificate_thumbprint: Option<String>,
}

/// One client authentication method.
#[async_trait]
pub(crate) trait ClientAuthMethod: Send + Sync {
    /// The registered `token_endpoint_auth_method` this implements.
    fn method(&self) -> AuthMethod;

    /// The method whose credentials a request presents for this one: itself,
    /// or another method with the same shape of credential (`federated_jwt`
    /// presents an RFC 7523 assertion as `private_key_jwt` does). Only
    /// methods presented as themselves claim requests; the client's
    /// registration then says which of those sharing a shape verifies.
    fn presented_as(&self) -> AuthMethod {
        self.method()
    }

    /// The client this request claims to be, if it presents this method's
    /// credentials; an error if it presents them malformed. Only methods
    /// with credentials of their own implement it: for transport-bound
    /// methods (`none`, mTLS) the request names its client with
    /// `client_id` alone, and the registration picks the method.
    fn claim(&self, request: &Presented<'_>) -> Result<Option<Claim>, OAuthError> {
        Ok(public_claim(request.form))
    }

    /// Holds the claim against the client's registration.
    async fn verify(
        &self,
        client: &LoadedClient,
        claim: &Claim,
        request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<Attestation, ServiceError>;
}

/// A client that proved who it is (or, for public clients, said so).
pub struct VerifiedClient {
    pub(crate) loaded: Arc<LoadedClient>,
    pub method: AuthMethod,
    pub attestation: Attestation,
}

impl VerifiedClient {
    pub fn client_id(&self) -> &str {
        &self.loaded.record.client_id
    }
    pub fn metadata(&self) -> &ClientMetadata {
        &self.loaded.metadata
    }
    pub fn is_public(&self) -> bool {
        self.method == AuthMethod::None
    }
}

/// The client a request named, for the audit trail, even when
/// authentication failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimedClient {
    pub client_id: Option<String>,
    /// False when no such client is registered (or none was named): the
    /// audit trail bounds what such requests can make it keep.
    pub known: bool,
    /// How it authenticated, once it has (for the audit trail).
    pub auth_method: Option<AuthMethod>,
    /// What its platform attested, once verified.
    pub attested_id: Option<String>,
}

pub(crate) fn failed() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

pub struct Authenticator {
    methods: Vec<Box<dyn ClientAuthMethod>>,
    clients: Arc<ClientDirectory>,
    /// Which client a SPIFFE ID sent as `client_id` stands for.
    attested: Arc<AttestedClients>,
}

/// What the workload-attestation methods need.
pub(crate) struct AttestationParts {
    pub federated: Arc<crate::federation::FederatedVerifier>,
    pub trusted: Arc<TrustedIssuers>,
    pub attested: Arc<AttestedClients>,
    /// The client CAs, when the TLS layer asks for client certificates.
    pub mtls: Option<Arc<dyn ClientCaRoots>>,
}

impl Authenticator {
    /// The client directory it reads clients from.
    pub(crate) fn clients(&self) -> &ClientDirectory {
        &self.clients
    }

    pub(crate) fn new(
        clients: Arc<ClientDirectory>,
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        jwks: Arc<dyn JwksFetcher>,
        attestation: AttestationParts,
        assertion_rules: AssertionSettings,
    ) -> Self {
        let issuer = assertion_rules.issuer.clone();
        let leeway = assertion_rules.leeway;
        let mut methods: Vec<Box<dyn ClientAuthMethod>> = vec![
            Box::new(client_secret::ClientSecret::basic(master.clone())),
            Box::new(client_secret::ClientSecret::post(master)),
            Box::new(private_key_jwt::PrivateKeyJwt::new(
                store,
                jwks,
                assertion_rules,
            )),
            Box::new(federated_jwt::FederatedJwt::new(attestation.federated)),
            Box::new(spiffe::SpiffeJwt::new(
                attestation.trusted.clone(),
                &issuer,
                leeway,
            )),
            Box::new(none::NoAuthentication),
        ];
        // Offered only where the TLS layer asks for client certificates.
        if let Some(client_ca) = attestation.mtls {
            methods.push(Box::new(mtls::TlsClientAuth::new(client_ca)));
            methods.push(Box::new(mtls::SelfSignedTlsClientAuth));
            methods.push(Box::new(spiffe::SpiffeX509::new(attestation.trusted)));
        }
        Authenticator {
            methods,
            clients,
            attested: attestation.attested,
        }
    }

    /// The methods with an implementation, as registration and discovery
    /// advertise them.
    pub fn supported_methods(&self) -> Vec<AuthMethod> {
        self.methods.iter().map(|m| m.method()).collect()
    }

    /// Authenticates the client of `request`. `claimed` receives the
    /// client the request names, even when authentication fails.
    pub(crate) async fn authenticate(
        &self,
        request: &Presented<'_>,
        ctx: &RequestContext,
        claimed: &mut ClaimedClient,
    ) -> Result<VerifiedClient, ServiceError> {
        check_presentation(request.proof.authorization.as_deref(), request.form)?;
        let (method, claim) = self.claim(request)?;
        claimed.client_id = Some(claim.client_id.clone());
        let id = claim.client_id.as_str();
        match self.clients.cached(id) {
            Some(Cached::Unknown) => {
                return self
                    .verify_spiffe_selected(method, &claim, request, ctx, claimed)
                    .await
            }
            Some(Cached::Known(cached)) => {
                claimed.known = true;
                match self
                    .verify(method, cached.clone(), &claim, request, ctx)
                    .await
                {
                    Ok(verified) => return Ok(verified),
                    // The client may have changed on another replica: if
                    // the entry is not brand new, ask the database before
                    // refusing.
                    Err(error) if !cached.may_be_stale(ctx.now_ms) => return Err(error),
                    Err(_) => {}
                }
            }
            None => {}
        }
        let Some(loaded) = self.clients.load(id).await? else {
            return self
                .verify_spiffe_selected(method, &claim, request, ctx, claimed)
                .await;
        };
        claimed.known = true;
        self.verify(method, loaded, &claim, request, ctx).await
    }

    /// A `client_id` that is no client's id, which may be a SPIFFE ID
    /// selecting the client registered for it: that client must then
    /// prove this very ID (not merely one its `spiffe_id` pattern
    /// covers), and the audit trail names the client.
    async fn verify_spiffe_selected(
        &self,
        method: Option<&dyn ClientAuthMethod>,
        claim: &Claim,
        request: &Presented<'_>,
        ctx: &RequestContext,
        claimed: &mut ClaimedClient,
    ) -> Result<VerifiedClient, ServiceError> {
        let Some(loaded) = self.spiffe_client(&claim.client_id).await? else {
            claimed.known = false;
            return Err(failed().into());
        };
        claimed.client_id = Some(loaded.record.client_id.clone());
        claimed.known = true;
        let verified = self.verify(method, loaded, claim, request, ctx).await?;
        if verified.attestation.attested_id.as_deref() != Some(claim.client_id.as_str()) {
            return Err(OAuthError::invalid_client(
                "client_id is a SPIFFE ID that the presented SVID does not carry",
            )
            .into());
        }
        Ok(verified)
    }

    /// draft-ietf-oauth-spiffe-client-auth: a `client_id` that is a SPIFFE
    /// ID (and no client's id) selects the client registered for it.
    async fn spiffe_client(&self, id: &str) -> Result<Option<Arc<LoadedClient>>, ServiceError> {
        let Ok(spiffe_id) = custos_protocol::spiffe::SpiffeId::parse(id) else {
            return Ok(None);
        };
        let index = self.attested.index().await?;
        match index.spiffe_client(&spiffe_id) {
            Some(client_id) => self.clients.load(client_id).await,
            None => Ok(None),
        }
    }

    /// The one method whose credentials the request presents, and its
    /// claim; `None` for the method when the request presents none and
    /// names its client with `client_id` alone — then the client's
    /// registration says which transport-bound method (`none`, mTLS)
    /// applies.
    fn claim(
        &self,
        request: &Presented<'_>,
    ) -> Result<(Option<&dyn ClientAuthMethod>, Claim), OAuthError> {
        let mut found: Option<(&dyn ClientAuthMethod, Claim)> = None;
        for method in &self.methods {
            if method.method().is_transport_bound() || method.presented_as() != method.method() {
                continue;
            }
            if let Some(claim) = method.claim(request)? {
                if found.is_some() {
                    return Err(OAuthError::invalid_request(
                        "the client used more than one authentication method (RFC 6749 §2.3)",
                    ));
                }
                found = Some((method.as_ref(), claim));
            }
        }
        if let Some((method, claim)) = found {
            return Ok((Some(method), claim));
        }
        if request.form.contains("client_assertion") {
            return Err(OAuthError::invalid_client(format!(
                "unsupported client_assertion_type; expected {} or {}",
                custos_protocol::names::CLIENT_ASSERTION_TYPE_JWT_BEARER,
                custos_protocol::names::CLIENT_ASSERTION_TYPE_JWT_SPIFFE
            )));
        }
        match public_claim(request.form) {
            Some(claim) => Ok((None, claim)),
            None => Err(OAuthError::invalid_client(
                "client authentication is required",
            )),
        }
    }

    async fn verify(
        &self,
        presented: Option<&dyn ClientAuthMethod>,
        client: Arc<LoadedClient>,
        claim: &Claim,
        request: &Presented<'_>,
        ctx: &RequestContext,
    ) -> Result<VerifiedClient, ServiceError> {
        if client.record.disabled_at.is_some() {
            return Err(failed().into());
        }
        let registered = client.metadata.token_endpoint_auth_method;
        let method = match presented {
            Some(method) if method.method() != registered => self
                .methods
                .iter()
                .map(|m| m.as_ref())
                .find(|m| m.method() == registered && m.presented_as() == method.method()),
            Some(method) => Some(method),
            None if registered.is_transport_bound() => self
                .methods
                .iter()
                .map(|m| m.as_ref())
                .find(|m| m.method() == registered),
            None => None,
        };
        let method = match method {
            Some(method) if method.method() == registered => method,
            _ => {
                return Err(OAuthError::invalid_client(format!(
                    "this client must authenticate with {}",
                    registered.as_str()
                ))
                .into())
            }
        };
        let attestation = method.verify(&client, claim, request, ctx).await?;
        Ok(VerifiedClient {
            loaded: client,
            method: registered,
            attestation,
        })
    }
}

/// How client assertions are judged (RFC 7523 §3).
#[derive(Debug, Clone)]
pub struct AssertionSettings {
    /// The issuer identifier: the one `aud` draft-ietf-oauth-rfc7523bis
    /// expects.
    pub issuer: String,
    /// The token endpoint URL, which older clients put in `aud`.
    pub token_endpoint: String,
    /// Longest accepted remaining lifetime of an assertion, seconds.
    pub max_lifetime: i64,
    /// Clock skew tolerated on assertion times, seconds.
    pub leeway: i64,
}
