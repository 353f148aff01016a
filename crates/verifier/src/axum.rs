//! axum integration (feature `axum`): [`Rejection`] as a response, the
//! [`Authenticated`] extractor, the [`RequireToken`] layer and the
//! protected resource metadata route.
//!
//! ```no_run
//! use axum::{routing::post, Router};
//! use custos_verifier::axum::{Authenticated, RequireToken};
//! use custos_verifier::Verifier;
//!
//! async fn mcp(Authenticated(token): Authenticated) -> String {
//!     format!("hello {}", token.subject())
//! }
//!
//! # fn app() -> Result<Router, custos_verifier::BuildError> {
//! let verifier = Verifier::builder("https://auth.example.com", "https://mcp.example.com/mcp")
//!     .build()?;
//! let app = Router::new()
//!     .route("/mcp", post(mcp))
//!     .layer(RequireToken::new(verifier.clone()).scopes(["mcp:tools"]))
//!     // outside the layer: the metadata is public
//!     .merge(verifier.metadata_router());
//! # Ok(app) }
//! ```

use crate::challenge::Rejection;
use crate::claims::VerifiedToken;
use crate::metadata::ProtectedResourceMetadata;
use crate::request::Request;
use crate::verifier::Verifier;
use axum::body::Body;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::header::{HeaderValue, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE};
use http::request::Parts;
use http::{Extensions, HeaderMap, Method, Uri};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service};

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (parts, body) = self.to_http_response().into_parts();
        Response::from_parts(parts, Body::from(body))
    }
}

/// The client certificate (DER) of the request's mutual-TLS connection,
/// as a request extension: insert it where the TLS connection is accepted
/// so tokens bound to the certificate (RFC 8705) are accepted.
#[derive(Debug, Clone)]
pub struct ClientCertificate(pub Arc<[u8]>);

/// Checks a request with `verifier`: its public URL from the verifier's
/// origin and the path the client asked for (before any `nest`).
async fn authenticate(
    verifier: &Verifier,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &Extensions,
    scopes: &[&str],
) -> Result<VerifiedToken, Rejection> {
    let path = extensions
        .get::<OriginalUri>()
        .map_or(uri.path(), |original| original.0.path());
    let url = verifier
        .request_url(path)
        .unwrap_or_else(|| uri.to_string());
    let mut request = Request::new(method.as_str(), &url).with_headers(headers);
    if let Some(ClientCertificate(der)) = extensions.get::<ClientCertificate>() {
        request = request.client_certificate(der);
    }
    verifier.verify_with_scopes(&request, scopes).await
}

/// The verified token of the request, as a handler argument.
///
/// Behind [`RequireToken`] it is the token the layer checked. Without the
/// layer it checks the request with the [`Verifier`] found in the request
/// extensions (`.layer(axum::Extension(verifier))`). With neither, it is
/// a 500: the server is set up wrong.
///
/// `Option<Authenticated>` is `None` for a request with no
/// `Authorization` header and still refuses a bad token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub VerifiedToken);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        if let Some(token) = parts.extensions.get::<VerifiedToken>() {
            return Ok(Authenticated(token.clone()));
        }
        let Some(verifier) = parts.extensions.get::<Verifier>().cloned() else {
            return Err(Rejection::misconfigured(
                "Authenticated needs the RequireToken layer or an Extension(Verifier)",
            ));
        };
        let token = authenticate(
            &verifier,
            &parts.method,
            &parts.uri,
            &parts.headers,
            &parts.extensions,
            &[],
        )
        .await?;
        parts.extensions.insert(token.clone());
        Ok(Authenticated(token))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Option<Self>, Rejection> {
        if parts.extensions.get::<VerifiedToken>().is_none()
            && !parts.headers.contains_key(http::header::AUTHORIZATION)
        {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// A layer that lets through only requests with a valid token (and the
/// scopes asked for), putting the [`VerifiedToken`] in the request
/// extensions for [`Authenticated`] or `Extension<VerifiedToken>`.
/// Refused requests get the [`Rejection`]'s response.
#[derive(Debug, Clone)]
pub struct RequireToken {
    verifier: Verifier,
    scopes: Arc<[String]>,
}

impl RequireToken {
    /// Requires a token `verifier` accepts.
    pub fn new(verifier: Verifier) -> Self {
        RequireToken {
            verifier,
            scopes: Arc::from(Vec::new()),
        }
    }

    /// Also requires these scopes (besides the verifier's own), e.g. for
    /// one route.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            verifier: self.verifier.clone(),
            scopes: Arc::clone(&self.scopes),
        }
    }
}

/// The service [`RequireToken`] wraps around a router or handler.
#[derive(Debug, Clone)]
pub struct RequireTokenService<S> {
    inner: S,
    verifier: Verifier,
    scopes: Arc<[String]>,
}

impl<S, B> Service<http::Request<B>> for RequireTokenService<S>
where
    S: Service<http::Request<B>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was not polled ready stays; the ready one is used.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let scopes = Arc::clone(&self.scopes);
        Box::pin(async move {
            let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
            let outcome = authenticate(
                &verifier,
                request.method(),
                request.uri(),
                request.headers(),
                request.extensions(),
                &scopes,
            )
            .await;
            match outcome {
                Ok(token) => {
                    request.extensions_mut().insert(token);
                    Ok(inner.call(request).await.into_response())
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}

/// The metadata document as a response: JSON, cacheable for an hour,
/// readable from any origin (browser-based MCP clients fetch it).
pub fn metadata_response(metadata: &ProtectedResourceMetadata) -> Response {
    let body = serde_json::to_vec(metadata).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

impl Verifier {
    /// A router serving [`Verifier::metadata`] at its RFC 9728 well-known
    /// path (`/.well-known/oauth-protected-resource` followed by the
    /// resource's path). Merge it outside any [`RequireToken`] layer.
    pub fn metadata_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let metadata = self.metadata().clone();
        let path = metadata
            .path()
            .unwrap_or_else(|| format!("/.well-known/{}", crate::metadata::WELL_KNOWN_SUFFIX));
        let response = Arc::new(metadata);
        Router::new().route(
            &route_literal(&path),
            get(move || {
                let metadata = Arc::clone(&response);
                async move { metadata_response(&metadata) }
            }),
        )
    }
}

/// `path` as an axum route that matches it literally: characters axum
/// reads as captures or wildcards are percent-encoded.
fn route_literal(path: &str) -> String {
    path.chars()
        .map(|c| match c {
            '{' | '}' | '*' | ':' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect()
}
