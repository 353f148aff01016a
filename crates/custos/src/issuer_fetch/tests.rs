use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const KEY: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"k1","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
const OPENID: &str = "/.well-known/openid-configuration";

fn jwks() -> String {
    format!(r#"{{"keys":[{KEY}]}}"#)
}

fn discovery(issuer: &str, jwks_uri: &str) -> String {
    format!(r#"{{"issuer":"{issuer}","jwks_uri":"{jwks_uri}"}}"#)
}

fn bundle(hint: Option<u64>) -> String {
    let hint = hint.map_or(String::new(), |h| format!(r#","spiffe_refresh_hint":{h}"#));
    format!(r#"{{"keys":[],"spiffe_sequence":1{hint}}}"#)
}

/// A whole HTTP/1.1 response that closes the connection.
fn response(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

fn ok(body: &str) -> String {
    response("200 OK", "", body)
}

fn not_found() -> String {
    response("404 Not Found", "", "")
}

/// What the server is asked: its own base URL (`http://127.0.0.1:port`),
/// the request's path, and how many requests for that path came before.
struct Asked<'a> {
    base: &'a str,
    path: &'a str,
    earlier: usize,
}

struct Server {
    base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }
}

/// A server on 127.0.0.1:0 that reads each request's head, counts it
/// by path, waits `delay`, and writes what `respond` returns.
async fn serve_after<F>(delay: Duration, respond: F) -> Server
where
    F: Fn(Asked<'_>) -> String + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let (counter, respond, server_base) = (hits.clone(), Arc::new(respond), base.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (counter, respond, base) = (counter.clone(), respond.clone(), server_base.clone());
            tokio::spawn(async move {
                let Some(path) = read_path(&mut stream).await else {
                    return;
                };
                let earlier = {
                    let mut hits = counter.lock().unwrap();
                    let count = hits.entry(path.clone()).or_default();
                    *count += 1;
                    *count - 1
                };
                tokio::time::sleep(delay).await;
                let answer = respond(Asked {
                    base: &base,
                    path: &path,
                    earlier,
                });
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Server { base, hits }
}

async fn serve<F>(respond: F) -> Server
where
    F: Fn(Asked<'_>) -> String + Send + Sync + 'static,
{
    serve_after(Duration::ZERO, respond).await
}

/// The path of the request line, once the whole head has arrived.
async fn read_path(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    head.split(' ').nth(1).map(str::to_owned)
}

/// An issuer at the server's base URL: discovery, keys at `/jwks`.
async fn issuer_server() -> Server {
    serve(|asked| match asked.path {
        OPENID => ok(&discovery(asked.base, &format!("{}/jwks", asked.base))),
        "/jwks" => ok(&jwks()),
        _ => not_found(),
    })
    .await
}

fn source(limits: IssuerLimits) -> HttpIssuerKeySource {
    HttpIssuerKeySource::with_limits(true, limits).unwrap()
}

fn without_floor() -> IssuerLimits {
    let mut limits = IssuerLimits::default();
    limits.fetch.refetch_floor = Duration::ZERO;
    limits
}

fn kids(set: &JwkSet) -> Vec<&str> {
    set.keys
        .iter()
        .filter_map(|k| k.common.key_id.as_deref())
        .collect()
}

#[tokio::test]
async fn discovery_finds_the_issuers_keys_and_both_are_kept() {
    let server = issuer_server().await;
    let source = source(IssuerLimits::default());
    for _ in 0..3 {
        let set = source.oidc_keys(&server.base, None, false).await.unwrap();
        assert_eq!(kids(&set), ["k1"]);
    }
    assert_eq!(server.hits(OPENID), 1);
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(server.total(), 2);
}

/// OIDC Discovery §4.3: the document's `issuer` is the configured one,
/// character for character (a trailing slash is a different issuer).
#[tokio::test]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let server = serve(|asked| match asked.path {
        OPENID => ok(&discovery(
            "https://attacker.example",
            &format!("{}/jwks", asked.base),
        )),
        "/jwks" => ok(&jwks()),
        _ => not_found(),
    })
    .await;
    let source = source(IssuerLimits::default());
    let error = source
        .oidc_keys(&server.base, None, false)
        .await
        .unwrap_err();
    assert!(error.contains("is not the configured issuer"), "{error}");
    assert!(error.contains("attacker.example"), "{error}");

    let slash = issuer_server().await;
    let error = source
        .oidc_keys(&format!("{}/", slash.base), None, false)
        .await
        .unwrap_err();
    assert!(error.contains("is not the configured issuer"), "{error}");
    assert_eq!(server.hits("/jwks") + slash.hits("/jwks"), 0);
}

/// RFC 8414 §3.1: on 404, the well-known path goes between the host and
/// the issuer's path.
#[tokio::test]
async fn discovery_falls_back_to_the_oauth_metadata_url_on_404() {
    let server = serve(|asked| match asked.path {
        "/.well-known/oauth-authorization-server/tenant" => ok(&discovery(
            &format!("{}/tenant", asked.base),
            &format!("{}/jwks", asked.base),
        )),
        "/jwks" => ok(&jwks()),
        _ => not_found(),
    })
    .await;
    let source = source(IssuerLimits::default());
    let issuer = server.url("/tenant");
    let set = source.oidc_keys(&issuer, None, false).await.unwrap();
    assert_eq!(kids(&set), ["k1"]);
    assert_eq!(server.hits("/tenant/.well-known/openid-configuration"), 1);
    assert_eq!(server.total(), 3);
}

/// A failure other than 404 is not a reason to look elsewhere.
#[tokio::test]
async fn discovery_does_not_fall_back_on_other_failures() {
    let server = serve(|asked| match asked.path {
        OPENID => response("500 Internal Server Error", "", ""),
        _ => ok(&discovery(asked.base, &format!("{}/jwks", asked.base))),
    })
    .await;
    let source = source(IssuerLimits::default());
    let error = source
        .oidc_keys(&server.base, None, false)
        .await
        .unwrap_err();
    assert_eq!(error, "discovery URL: status 500");
    assert_eq!(server.total(), 1);
}

#[tokio::test]
async fn a_configured_jwks_uri_is_fetched_without_discovery() {
    let server = issuer_server().await;
    let source = source(IssuerLimits::default());
    let jwks_uri = server.url("/jwks");
    for _ in 0..3 {
        let set = source
            .oidc_keys("https://issuer.example", Some(&jwks_uri), false)
            .await
            .unwrap();
        assert_eq!(kids(&set), ["k1"]);
    }
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(server.total(), 1);
}

/// `refresh` (a token named a key not held) fetches the key set again,
/// at most once per floor, and not the discovery document.
#[tokio::test]
async fn an_unknown_kid_refresh_refetches_the_key_set_at_most_once_per_floor() {
    let server = issuer_server().await;
    let source = source(IssuerLimits::default());
    source.oidc_keys(&server.base, None, false).await.unwrap();
    for _ in 0..3 {
        source.oidc_keys(&server.base, None, true).await.unwrap();
    }
    assert_eq!(server.hits("/jwks"), 1, "within the 10 s floor");

    let server = issuer_server().await;
    let source = self::source(without_floor());
    source.oidc_keys(&server.base, None, false).await.unwrap();
    source.oidc_keys(&server.base, None, true).await.unwrap();
    assert_eq!(server.hits("/jwks"), 2, "refresh bypasses the held set");
    source.oidc_keys(&server.base, None, false).await.unwrap();
    assert_eq!(server.hits("/jwks"), 2, "the refreshed set is kept");
    assert_eq!(server.hits(OPENID), 1, "the discovery document is kept");
}

/// A failed refresh reports its error and keeps the held set.
#[tokio::test]
async fn a_failed_refresh_keeps_the_held_key_set() {
    let server = serve(|asked| match asked.earlier {
        0 => ok(&jwks()),
        _ => response("503 Service Unavailable", "", ""),
    })
    .await;
    let source = source(without_floor());
    let uri = server.url("/jwks");
    source.oidc_keys("x", Some(&uri), false).await.unwrap();
    let error = source.oidc_keys("x", Some(&uri), true).await.unwrap_err();
    assert_eq!(error, "jwks_uri: status 503");
    let set = source.oidc_keys("x", Some(&uri), false).await.unwrap();
    assert_eq!(kids(&set), ["k1"]);
}

/// Bodies past the cap are refused, declared or not, for each kind of
/// document.
#[tokio::test]
async fn an_oversized_body_is_refused() {
    let padded = |body: String| format!("{body:<2048}");
    let server = serve(move |asked| match asked.path {
        OPENID => ok(&padded(discovery(
            asked.base,
            &format!("{}/jwks", asked.base),
        ))),
        "/jwks" => ok(&padded(jwks())),
        "/chunked" => {
            let body = padded(jwks());
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
        }
        "/bundle" => ok(&padded(bundle(None))),
        _ => not_found(),
    })
    .await;
    let mut limits = IssuerLimits::default();
    limits.fetch.max_body = 1024;
    let source = source(limits);
    let error = source
        .oidc_keys(&server.base, None, false)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        "discovery URL: discovery document larger than 1024 bytes"
    );
    for path in ["/jwks", "/chunked"] {
        let error = source
            .oidc_keys("x", Some(&server.url(path)), false)
            .await
            .unwrap_err();
        assert_eq!(error, "jwks_uri: JWK Set larger than 1024 bytes", "{path}");
    }
    let error = source
        .spiffe_bundle(&server.url("/bundle"), false)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        "bundle endpoint: SPIFFE bundle larger than 1024 bytes"
    );
}

/// A redirect is an answer, not an instruction: never followed, for
/// discovery, key sets or bundles.
#[tokio::test]
async fn a_redirect_is_not_followed() {
    let server = serve(|asked| match asked.path {
        "/elsewhere" => ok(&jwks()),
        _ => response(
            "302 Found",
            &format!("Location: {}/elsewhere\r\n", asked.base),
            "",
        ),
    })
    .await;
    let source = source(IssuerLimits::default());
    let error = source
        .oidc_keys(&server.base, None, false)
        .await
        .unwrap_err();
    assert_eq!(error, "discovery URL: status 302");
    let error = source
        .oidc_keys("x", Some(&server.url("/jwks")), false)
        .await
        .unwrap_err();
    assert_eq!(error, "jwks_uri: status 302");
    let error = source
        .spiffe_bundle(&server.url("/bundle"), false)
        .await
        .unwrap_err();
    assert_eq!(error, "bundle endpoint: status 302");
    assert_eq!(server.hits("/elsewhere"), 0);
}

/// A discovered `jwks_uri` must be https: with `allow_private`, http
/// on loopback only.
#[tokio::test]
async fn a_discovered_jwks_uri_that_is_not_https_is_refused() {
    let server = serve(|asked| match asked.path {
        OPENID => ok(&discovery(asked.base, "http://192.0.2.1/jwks")),
        _ => not_found(),
    })
    .await;
    let source = source(IssuerLimits::default());
    let error = source
        .oidc_keys(&server.base, None, false)
        .await
        .unwrap_err();
    assert_eq!(error, "discovery document: jwks_uri must be https");
    assert_eq!(server.total(), 1);
}

/// Without `allow_private`: http, loopback literals (however written)
/// and names resolving to loopback are refused before any request.
#[tokio::test]
async fn private_addresses_are_refused_without_allow_private() {
    let server = issuer_server().await;
    let port = server.base.rsplit(':').next().unwrap().to_owned();
    let source = HttpIssuerKeySource::new(false).unwrap();

    let error = source
        .oidc_keys(&server.base, None, false)
        .await
        .unwrap_err();
    assert_eq!(error, "discovery URL must be https");
    let error = source
        .oidc_keys("x", Some(&server.url("/jwks")), false)
        .await
        .unwrap_err();
    assert_eq!(error, "jwks_uri must be https");
    let error = source
        .spiffe_bundle(&server.url("/bundle"), false)
        .await
        .unwrap_err();
    assert_eq!(error, "bundle endpoint must be https");

    let issuer = format!("https://127.0.0.1:{port}");
    let error = source.oidc_keys(&issuer, None, false).await.unwrap_err();
    assert_eq!(error, "discovery URL is not on a public address");
    for uri in [
        format!("https://[::1]:{port}/jwks"),
        format!("https://[::ffff:127.0.0.1]:{port}/jwks"),
        format!("https://10.0.0.1:{port}/jwks"),
        format!("https://169.254.169.254:{port}/jwks"),
    ] {
        let error = source.oidc_keys("x", Some(&uri), false).await.unwrap_err();
        assert_eq!(error, "jwks_uri is not on a public address", "{uri}");
    }
    let error = source
        .spiffe_bundle(&format!("https://localhost:{port}/bundle"), false)
        .await
        .unwrap_err();
    assert!(error.starts_with("bundle endpoint: "), "{error}");
    assert!(error.contains("no public address"), "{error}");
    assert_eq!(server.total(), 0);
}

/// Many callers waiting on one issuer make one discovery request and
/// one key set request; on one endpoint, one bundle request.
#[tokio::test]
async fn concurrent_callers_share_one_fetch_per_url() {
    let server = serve_after(Duration::from_millis(200), |asked| match asked.path {
        OPENID => ok(&discovery(asked.base, &format!("{}/jwks", asked.base))),
        "/jwks" => ok(&jwks()),
        "/bundle" => ok(&bundle(None)),
        _ => not_found(),
    })
    .await;
    let source = Arc::new(source(IssuerLimits::default()));
    let mut tasks = JoinSet::new();
    for i in 0..40 {
        let (source, base, endpoint) = (source.clone(), server.base.clone(), server.url("/bundle"));
        tasks.spawn(async move {
            if i % 2 == 0 {
                source.oidc_keys(&base, None, false).await.map(|_| ())
            } else {
                source.spiffe_bundle(&endpoint, false).await.map(|_| ())
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap().unwrap();
    }
    assert_eq!(server.hits(OPENID), 1);
    assert_eq!(server.hits("/jwks"), 1);
    assert_eq!(server.hits("/bundle"), 1);
}

/// A failing URL is asked once while its failure is remembered.
#[tokio::test]
async fn a_failure_is_remembered() {
    let server = serve(|_| response("500 Internal Server Error", "", "")).await;
    let source = source(IssuerLimits::default());
    for _ in 0..5 {
        let error = source
            .oidc_keys(&server.base, None, false)
            .await
            .unwrap_err();
        assert_eq!(error, "discovery URL: status 500");
        let error = source
            .spiffe_bundle(&server.url("/bundle"), false)
            .await
            .unwrap_err();
        assert_eq!(error, "bundle endpoint: status 500");
    }
    assert_eq!(server.total(), 2);
}

/// Encryption keys, unreadable keys and short RSA keys are left out;
/// a published private key refuses the set.
#[tokio::test]
async fn only_usable_signing_keys_are_kept() {
    let enc = r#"{"kty":"RSA","kid":"enc","use":"enc","alg":"RSA-OAEP","e":"AQAB","n":"AAAA"}"#;
    let odd = r#"{"kty":"XYZ","kid":"odd"}"#;
    let short = r#"{"kty":"RSA","kid":"short","e":"AQAB","n":"AAAA"}"#;
    let private = r#"{"kty":"OKP","crv":"Ed25519","kid":"p","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"AAAA"}"#;
    let mixed = format!(r#"{{"keys":[{enc},{odd},{short},{KEY}]}}"#);
    let leaked = format!(r#"{{"keys":[{KEY},{private}]}}"#);
    let none = format!(r#"{{"keys":[{enc}]}}"#);
    let server = serve(move |asked| match asked.path {
        "/mixed" => ok(&mixed),
        "/leaked" => ok(&leaked),
        "/none" => ok(&none),
        _ => not_found(),
    })
    .await;
    let source = source(IssuerLimits::default());
    let set = source
        .oidc_keys("x", Some(&server.url("/mixed")), false)
        .await
        .unwrap();
    assert_eq!(kids(&set), ["k1"]);
    let error = source
        .oidc_keys("x", Some(&server.url("/leaked")), false)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        "jwks_uri: the JWK Set holds a private or symmetric key"
    );
    let error = source
        .oidc_keys("x", Some(&server.url("/none")), false)
        .await
        .unwrap_err();
    assert_eq!(error, "jwks_uri: the JWK Set has no usable signing key");
}

/// The bundle comes back byte for byte; a document without a `keys`
/// array is not a bundle.
#[tokio::test]
async fn a_bundle_is_returned_as_served_and_must_have_keys() {
    let served = format!("{{ \"keys\": [{KEY}],\n  \"spiffe_sequence\": 7 }}");
    let body = served.clone();
    let server = serve(move |asked| match asked.path {
        "/bundle" => ok(&body),
        "/array" => ok("[]"),
        "/keyless" => ok(r#"{"spiffe_sequence":1}"#),
        _ => not_found(),
    })
    .await;
    let source = source(IssuerLimits::default());
    let bytes = source
        .spiffe_bundle(&server.url("/bundle"), false)
        .await
        .unwrap();
    assert_eq!(bytes, served.as_bytes());
    for path in ["/array", "/keyless"] {
        let error = source
            .spiffe_bundle(&server.url(path), false)
            .await
            .unwrap_err();
        assert_eq!(error, "bundle endpoint: not a bundle (no \"keys\" array)");
    }
}

/// `spiffe_refresh_hint` sets how long a bundle is kept, within
/// [30 s, 1 h]; 5 minutes without one; an invalid one fails the bundle.
#[test]
fn a_bundles_refresh_hint_is_honoured_within_bounds() {
    let limits = IssuerLimits::default();
    let lifetime = |body: &str| bundle_lifetime(&serde_json::from_str(body).unwrap(), &limits);
    for (hint, kept) in [
        (Some(120), 120),
        (Some(0), 30),
        (Some(29), 30),
        (Some(3600), 3600),
        (Some(86_400), 3600),
        (None, 300),
    ] {
        assert_eq!(
            lifetime(&bundle(hint)),
            Ok(Duration::from_secs(kept)),
            "{hint:?}"
        );
    }
    for hint in ["-1", "1.5", "\"60\""] {
        let body = format!(r#"{{"keys":[],"spiffe_refresh_hint":{hint}}}"#);
        assert!(lifetime(&body).is_err(), "{hint}");
    }
}

/// The cached bundle lives for its hint, then is fetched again; a
/// refresh within the floor is not a fetch.
#[tokio::test]
async fn a_bundle_is_kept_until_its_refresh_hint_then_fetched_again() {
    let server = serve(|asked| match asked.path {
        "/hinted" => ok(&bundle(Some(120))),
        "/brief" => ok(&bundle(Some(0))),
        _ => not_found(),
    })
    .await;
    let limits = IssuerLimits {
        shortest_hint: Duration::from_millis(100),
        ..IssuerLimits::default()
    };
    let source = source(limits);

    let hinted = server.url("/hinted");
    for refresh in [false, false, true, true] {
        source.spiffe_bundle(&hinted, refresh).await.unwrap();
    }
    assert_eq!(server.hits("/hinted"), 1, "kept, and refreshes are floored");
    let entry = source.bundles.get(&hinted).await.unwrap();
    let kept = entry.expires_at - entry.attempted_at;
    assert_eq!(kept, Duration::from_secs(120));

    let brief = server.url("/brief");
    source.spiffe_bundle(&brief, false).await.unwrap();
    source.spiffe_bundle(&brief, false).await.unwrap();
    assert_eq!(server.hits("/brief"), 1);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(250)).await;
    source.spiffe_bundle(&brief, false).await.unwrap();
    assert_eq!(
        server.hits("/brief"),
        2,
        "fetched again once the hint passed"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `refresh` of a bundle: at most once per floor, the held bundle kept
/// through a failure.
#[tokio::test]
async fn a_bundle_refresh_refetches_at_most_once_per_floor() {
    let server = serve(|asked| match asked.earlier {
        0 | 1 => ok(&bundle(Some(600))),
        _ => response("503 Service Unavailable", "", ""),
    })
    .await;
    let endpoint = server.url("/bundle");
    let floored = source(IssuerLimits::default());
    floored.spiffe_bundle(&endpoint, false).await.unwrap();
    floored.spiffe_bundle(&endpoint, true).await.unwrap();
    assert_eq!(server.total(), 1, "within the 10 s floor");

    let source = self::source(without_floor());
    source.spiffe_bundle(&endpoint, true).await.unwrap();
    assert_eq!(server.total(), 2, "a refresh with no set held fetches");
    let error = source.spiffe_bundle(&endpoint, true).await.unwrap_err();
    assert_eq!(error, "bundle endpoint: status 503");
    let held = source.spiffe_bundle(&endpoint, false).await.unwrap();
    assert_eq!(held, bundle(Some(600)).as_bytes());
    assert_eq!(server.total(), 3);
}

#[test]
fn the_oauth_metadata_url_puts_the_well_known_path_before_the_issuers_path() {
    for (issuer, url) in [
        (
            "https://as.example",
            "https://as.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://as.example/",
            "https://as.example/.well-known/oauth-authorization-server",
        ),
        (
            "https://as.example/tenant/1",
            "https://as.example/.well-known/oauth-authorization-server/tenant/1",
        ),
    ] {
        assert_eq!(oauth_metadata_url(issuer).unwrap(), url);
    }
}
