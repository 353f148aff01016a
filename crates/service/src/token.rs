//! The token endpoint (RFC 6749 §3.2, §5): authenticate the client, parse
//! the grant, decide, sign, audit.

use crate::crypto::random_token;
use crate::{internal, RequestContext, Service};
use custos_governance::{event_type, Outcome};
use custos_protocol::access_token::AccessTokenClaims;
use custos_protocol::form::FormParams;
use custos_protocol::grant::{self, client_credentials, Grant, KnownResource, TokenRequest};
use custos_protocol::OAuthError;
use serde::Serialize;

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl Service {
    /// Handles a token request: `authorization` is the raw `Authorization`
    /// header, `body` the form body. Every outcome is audited.
    pub async fn issue_token(
        &self,
        authorization: Option<&str>,
        body: &[u8],
        ctx: &RequestContext,
    ) -> Result<TokenResponse, OAuthError> {
        let mut claimed_client = None;
        let form = FormParams::parse(body);
        let result = match &form {
            Ok(form) => {
                self.issue_for_form(authorization, form, &mut claimed_client)
                    .await
            }
            Err(e) => Err(e.clone()),
        };
        let (outcome, kind) = match &result {
            Ok(_) => (Outcome::Success, event_type::TOKEN_ISSUED),
            Err(_) => (Outcome::Failure, event_type::TOKEN_REFUSED),
        };
        let mut event = self.event(kind, outcome, ctx);
        event.client_id = claimed_client;
        if let Ok(form) = &form {
            event.grant_type = form.get("grant_type").map(bounded);
            event.resource = Some(form.all("resource").join(" "))
                .filter(|r| !r.is_empty())
                .map(|r| bounded(&r));
            event.scope = form.get("scope").map(bounded);
        }
        let result = match result {
            Ok((response, grant)) => {
                event.scope = response.scope.clone();
                event.resource = Some(grant.audience.join(" "));
                Ok(response)
            }
            Err(error) => {
                event.reason = Some(bounded(&error.to_string()));
                Err(error)
            }
        };
        self.record(event).await;
        result
    }

    async fn issue_for_form(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        claimed_client: &mut Option<String>,
    ) -> Result<(TokenResponse, Grant), OAuthError> {
        let request = grant::parse_token_request(form)?;
        let client = self
            .authenticate_client(authorization, form, &self.token_endpoint, claimed_client)
            .await?;
        let grant = match &request {
            TokenRequest::ClientCredentials(request) => {
                let resources = self.load_resources(&request.resources).await?;
                client_credentials::decide(
                    request,
                    client.client_id(),
                    client.metadata(),
                    &resources,
                    &self.config.issuer,
                )?
            }
        };
        let now = self.clock.now();
        let claims = AccessTokenClaims::for_grant(
            &self.config.issuer,
            client.client_id(),
            &grant,
            now,
            random_token(16),
        );
        let access_token = self
            .keys
            .sign_access_token(&claims, now)
            .map_err(internal)?;
        let response = TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: grant.lifetime,
            scope: claims.scope,
        };
        Ok((response, grant))
    }

    /// The registered resources among `uris`; unknown ones are left out
    /// (the grant's decision refuses them with `invalid_target`).
    async fn load_resources(&self, uris: &[String]) -> Result<Vec<KnownResource>, OAuthError> {
        let mut found = Vec::with_capacity(uris.len());
        for uri in uris {
            if let Some(record) = self.store.get_resource(uri).await.map_err(internal)? {
                found.push(KnownResource {
                    uri: record.uri,
                    scopes: record.scopes,
                });
            }
        }
        Ok(found)
    }
}

/// Bounds what a request controls before it reaches the audit trail.
pub(crate) fn bounded(text: &str) -> String {
    const MAX: usize = 512;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
