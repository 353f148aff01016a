//! Fetching Client ID Metadata Documents
//! (draft-ietf-oauth-client-id-metadata-document §4, §6.5, §6.6) for the
//! service's `ClientDocuments`, which caches, coalesces and brakes.
//!
//! The same client as every other fetch (`jwks_fetch::fetch_client`): no
//! redirects (§4: MUST NOT follow them), names resolved to public
//! addresses only and IP literals checked (§6.5, unless
//! CUSTOS_ALLOW_PRIVATE_URLS), 5 s in all. Only a 200 with a JSON content
//! type is a document; the body is refused past 5 KiB as it arrives.

use crate::jwks_fetch::{fetch_client, read_body, send_get, Limits};
use async_trait::async_trait;
use custos_protocol::cimd::MAX_DOCUMENT_BYTES;
use custos_service::client_documents::{DocumentFetcher, FetchedDocument};

pub struct HttpDocumentFetcher {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpDocumentFetcher {
    pub fn new(allow_private: bool) -> Result<Self, String> {
        Ok(HttpDocumentFetcher {
            client: fetch_client(allow_private, &Limits::default())?,
            allow_private,
        })
    }
}

/// `application/json`, or a more specific `application/<x>+json` (§4.1).
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && sub.len() > "+json".len())
}

#[async_trait]
impl DocumentFetcher for HttpDocumentFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedDocument, String> {
        // What went wrong connecting (which names resolve, which ports
        // answer) is logged, not told: the caller has no credentials.
        let response = send_get(&self.client, url, self.allow_private, "client_id")
            .await
            .map_err(|reason| {
                tracing::info!(%url, %reason, "fetching a client ID metadata document failed");
                "the request failed (no answer, or not from a public address)".to_owned()
            })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(format!(
                "status {} (redirects are not followed)",
                status.as_u16()
            ));
        }
        if status != reqwest::StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE).unwrap_or_default();
        if !is_json(&content_type) {
            return Err("the content type is not JSON".into());
        }
        let cache_control = header(reqwest::header::CACHE_CONTROL);
        let age = header(reqwest::header::AGE);
        let body = read_body(response, MAX_DOCUMENT_BYTES, "the document is")
            .await
            .map_err(|reason| {
                if reason.contains("larger than") {
                    reason
                } else {
                    "reading the document failed".to_owned()
                }
            })?;
        Ok(FetchedDocument {
            body,
            cache_control,
            age,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON"));
        assert!(is_json("application/oauth-client+json"));
        assert!(!is_json("application/+json"));
        assert!(!is_json("text/html"));
        assert!(!is_json("text/json"));
        assert!(!is_json(""));
    }
}
