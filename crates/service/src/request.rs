//! What the HTTP edge hands a use case besides the typed request itself:
//! who is calling from where, at what time, and everything the transport
//! saw that could prove which client it is.

use crate::clock::Clock;

/// One request's facts, fixed when it arrives: the source address and the
/// time, read from the clock once so every check in the request agrees.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The client's address (the TCP peer, or what trusted proxies say).
    pub source_addr: Option<String>,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub now_ms: i64,
}

impl RequestContext {
    pub fn new(source_addr: Option<String>, clock: &dyn Clock) -> Self {
        RequestContext {
            source_addr,
            now_ms: clock.now_ms(),
        }
    }

    /// Seconds since the Unix epoch when the request arrived.
    pub fn now(&self) -> i64 {
        self.now_ms.div_euclid(1000)
    }

    /// The source address, or "unknown" (brakes and audit need a key).
    pub fn source(&self) -> &str {
        self.source_addr.as_deref().unwrap_or("unknown")
    }
}

/// Everything the edge saw that may prove who the client is; each client
/// authentication method reads what it needs from it (and the form).
#[derive(Clone, Default)]
pub struct ClientProof {
    /// The `Authorization` header, if present and visible ASCII.
    pub authorization: Option<String>,
    /// The `DPoP` header (RFC 9449), if present.
    pub dpop: Option<String>,
    /// The TLS peer's certificate chain, leaf first, DER (RFC 8705).
    pub peer_certificates: Vec<Vec<u8>>,
    /// The HTTP method.
    pub method: String,
    /// The URL the request was addressed to, as the server is known by
    /// (issuer origin + path): what `htu` and assertion audiences name.
    pub url: String,
}

impl std::fmt::Debug for ClientProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientProof")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .field("dpop", &self.dpop.as_ref().map(|_| "<redacted>"))
            .field("peer_certificates", &self.peer_certificates.len())
            .field("method", &self.method)
            .field("url", &self.url)
            .finish()
    }
}
