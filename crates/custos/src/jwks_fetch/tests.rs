use super::*;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

struct Server {
    uri: String,
    requests: Arc<AtomicUsize>,
}

/// A server on 127.0.0.1:0 that reads each request's head, counts it
/// (the count before it is passed on), and lets `respond` answer.
async fn serve<F, Fut>(respond: F) -> Server
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = counter.clone();
            let respond = respond.clone();
            tokio::spawn(async move {
                if read_head(&mut stream).await {
                    let earlier = counter.fetch_add(1, SeqCst);
                    respond(stream, earlier).await;
                }
            });
        }
    });
    Server {
        uri: format!("http://{address}/jwks.json"),
        requests,
    }
}

async fn read_head(stream: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    true
}

async fn reply(mut stream: TcpStream, status: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn fetcher(limits: Limits) -> HttpJwksFetcher {
    HttpJwksFetcher::with_limits(true, limits).unwrap()
}

fn kid(set: &JwkSet) -> Option<&str> {
    set.keys.first()?.common.key_id.as_deref()
}

#[tokio::test]
async fn a_key_set_is_fetched_and_kept() {
    let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
    let fetcher = fetcher(Limits::default());
    for _ in 0..3 {
        let set = fetcher.fetch(&server.uri, false).await.unwrap();
        assert_eq!(kid(&set), Some("k1"));
    }
    assert_eq!(server.requests.load(SeqCst), 1);
}

/// (a) 200 MB, chunked, no Content-Length, 16 KiB a millisecond: the
/// fetcher stops after the cap; the server gets to write little more.
#[tokio::test]
async fn a_slow_endless_body_is_refused_after_the_cap() {
    const TOTAL: usize = 200 * 1024 * 1024;
    const CHUNK: usize = 16 * 1024;
    let written = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Notify::new());
    let (w, f) = (written.clone(), finished.clone());
    let server = serve(move |mut stream, _| {
        let (written, finished) = (w.clone(), f.clone());
        async move {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let mut chunk = format!("{CHUNK:x}\r\n").into_bytes();
            chunk.extend(std::iter::repeat_n(b' ', CHUNK));
            chunk.extend_from_slice(b"\r\n");
            if stream.write_all(head.as_bytes()).await.is_ok() {
                while written.load(SeqCst) < TOTAL {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                    written.fetch_add(CHUNK, SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            finished.notify_one();
        }
    })
    .await;
    let limits = Limits {
        timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let max = limits.max_body;
    let fetcher = fetcher(limits);
    let started = Instant::now();
    let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
    assert_eq!(error, format!("JWK Set larger than {max} bytes"));
    // The server notices the closed connection within a write or two.
    tokio::time::timeout(Duration::from_secs(10), finished.notified())
        .await
        .expect("the server kept writing after the fetcher gave up");
    let written = written.load(SeqCst);
    assert!(written > max, "{written}");
    assert!(written <= max + 1024 * 1024, "{written} bytes written");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// (d) A Content-Length over the cap is refused before any body: the
/// server sends the head only and holds the connection open.
#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_without_reading() {
    let server = serve(|mut stream, _| async move {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\n\r\n";
        let _ = stream.write_all(head.as_bytes()).await;
        std::future::pending::<()>().await;
    })
    .await;
    let limits = Limits {
        timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let max = limits.max_body;
    let fetcher = fetcher(limits);
    let error = tokio::time::timeout(Duration::from_secs(10), fetcher.fetch(&server.uri, false))
        .await
        .expect("the fetcher waited for the body")
        .unwrap_err();
    assert_eq!(error, format!("JWK Set larger than {max} bytes"));
}

/// The cap is inclusive, with or without a Content-Length.
#[tokio::test]
async fn a_body_of_exactly_the_cap_is_accepted_and_one_byte_more_is_not() {
    let max = 4096;
    let exact = format!("{JWKS:<max$}");
    let over = format!("{exact} ");
    for (body, chunked, accepted) in [
        (exact.clone(), false, true),
        (exact, true, true),
        (over.clone(), false, false),
        (over, true, false),
    ] {
        let served = body.clone();
        let server = serve(move |mut stream, _| {
            let body = served.clone();
            async move {
                if chunked {
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                } else {
                    reply(stream, "200 OK", &body).await;
                }
            }
        })
        .await;
        let fetcher = fetcher(Limits {
            max_body: max,
            ..Limits::default()
        });
        let result = fetcher.fetch(&server.uri, false).await;
        assert_eq!(
            result.is_ok(),
            accepted,
            "{} bytes, chunked {chunked}: {result:?}",
            body.len()
        );
    }
}

/// Spawns `n` fetches of `uri` at once and returns them once the server
/// has received the first request; the server answers when `gate`
/// opens.
fn spawn_fetches(
    fetcher: &Arc<HttpJwksFetcher>,
    uri: &str,
    refresh: bool,
    n: usize,
) -> JoinSet<Result<JwkSet, String>> {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let (fetcher, uri) = (fetcher.clone(), uri.to_owned());
        tasks.spawn(async move { fetcher.fetch(&uri, refresh).await });
    }
    tasks
}

async fn gated_server() -> (Server, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let server = serve(move |stream, _| {
        let gate = g.clone();
        async move {
            let _ = gate.acquire().await;
            reply(stream, "200 OK", JWKS).await;
        }
    })
    .await;
    (server, gate)
}

/// Holds the server's answer until the first request has arrived (on
/// this single-threaded runtime every spawned fetch has started by
/// then), then lets it go and checks every fetch got the set.
async fn release_and_collect(
    server: &Server,
    gate: &Semaphore,
    mut tasks: JoinSet<Result<JwkSet, String>>,
) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.requests.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("no request reached the server");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        let set = joined.unwrap().unwrap();
        assert_eq!(kid(&set), Some("k1"));
        answered += 1;
    }
    assert_eq!(answered, 50);
}

/// (b) 50 concurrent fetches of one URI make exactly one request.
#[tokio::test]
async fn concurrent_fetches_of_one_uri_make_one_request() {
    let (server, gate) = gated_server().await;
    let fetcher = Arc::new(fetcher(Limits::default()));
    let tasks = spawn_fetches(&fetcher, &server.uri, false, 50);
    release_and_collect(&server, &gate, tasks).await;
    assert_eq!(server.requests.load(SeqCst), 1);
}

/// 50 concurrent refreshes share one fetch too, even with no floor.
#[tokio::test]
async fn concurrent_refreshes_of_one_uri_make_one_request() {
    let (server, gate) = gated_server().await;
    let fetcher = Arc::new(fetcher(Limits {
        refetch_floor: Duration::ZERO,
        ..Limits::default()
    }));
    let tasks = spawn_fetches(&fetcher, &server.uri, true, 50);
    release_and_collect(&server, &gate, tasks).await;
    assert_eq!(server.requests.load(SeqCst), 1);
}

/// `refresh` bypasses the kept set, but not within the floor.
#[tokio::test]
async fn refresh_refetches_at_most_once_per_floor() {
    let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
    let fetcher = fetcher(Limits::default());
    fetcher.fetch(&server.uri, false).await.unwrap();
    fetcher.fetch(&server.uri, true).await.unwrap();
    fetcher.fetch(&server.uri, true).await.unwrap();
    assert_eq!(server.requests.load(SeqCst), 1, "within the 10 s floor");

    let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
    let fetcher = fetcher_without_floor();
    fetcher.fetch(&server.uri, false).await.unwrap();
    fetcher.fetch(&server.uri, true).await.unwrap();
    assert_eq!(server.requests.load(SeqCst), 2, "refresh bypasses the set");
    fetcher.fetch(&server.uri, false).await.unwrap();
    assert_eq!(server.requests.load(SeqCst), 2, "the refreshed set is kept");
}

fn fetcher_without_floor() -> HttpJwksFetcher {
    fetcher(Limits {
        refetch_floor: Duration::ZERO,
        ..Limits::default()
    })
}

/// A refresh that fails reports its error but keeps the set held.
#[tokio::test]
async fn a_failed_refresh_keeps_the_held_set() {
    let server = serve(|stream, earlier| async move {
        if earlier == 0 {
            reply(stream, "200 OK", JWKS).await;
        } else {
            reply(stream, "503 Service Unavailable", "").await;
        }
    })
    .await;
    let fetcher = fetcher_without_floor();
    fetcher.fetch(&server.uri, false).await.unwrap();
    let error = fetcher.fetch(&server.uri, true).await.unwrap_err();
    assert_eq!(error, "status 503");
    let set = fetcher.fetch(&server.uri, false).await.unwrap();
    assert_eq!(kid(&set), Some("k1"));
    assert_eq!(server.requests.load(SeqCst), 2);
}

/// (c) A failing URI fetched 10 times in a row makes one request; each
/// caller gets the error text.
#[tokio::test]
async fn a_failing_uri_is_fetched_once_while_its_failure_is_remembered() {
    let server = serve(|stream, _| reply(stream, "500 Internal Server Error", "")).await;
    let fetcher = fetcher(Limits::default());
    for _ in 0..10 {
        let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
        assert_eq!(error, "status 500");
    }
    assert_eq!(server.requests.load(SeqCst), 1);
}

/// Invalid key sets are failures too, remembered the same way.
#[tokio::test]
async fn an_invalid_key_set_is_a_remembered_failure() {
    let server = serve(|stream, _| reply(stream, "200 OK", r#"{"keys":[]}"#)).await;
    let fetcher = fetcher(Limits::default());
    for _ in 0..3 {
        let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
        assert!(error.contains("between 1 and 16 keys"), "{error}");
    }
    assert_eq!(server.requests.load(SeqCst), 1);
}

/// With no failure TTL, every call asks again.
#[tokio::test]
async fn a_failure_is_forgotten_after_its_ttl() {
    let server = serve(|stream, _| reply(stream, "500 Internal Server Error", "")).await;
    let fetcher = fetcher(Limits {
        failure_ttl: Duration::ZERO,
        ..Limits::default()
    });
    for _ in 0..3 {
        fetcher.fetch(&server.uri, false).await.unwrap_err();
    }
    assert_eq!(server.requests.load(SeqCst), 3);
}

/// Errors are short and do not repeat the URI (which could carry a
/// credential in its query).
#[tokio::test]
async fn errors_do_not_repeat_the_uri() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let fetcher = fetcher(Limits::default());
    let uri = format!("http://{address}/jwks?token=s3cret");
    let error = fetcher.fetch(&uri, false).await.unwrap_err();
    assert!(error.starts_with("could not connect"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
    assert!(error.len() < 200, "{error}");
}

/// Without `allow_private`, loopback and http are refused before any
/// request, including IPv6 forms of loopback.
#[tokio::test]
async fn private_addresses_are_refused_without_allow_private() {
    let server = serve(|stream, _| reply(stream, "200 OK", JWKS)).await;
    let fetcher = HttpJwksFetcher::new(false).unwrap();
    let error = fetcher.fetch(&server.uri, false).await.unwrap_err();
    assert_eq!(error, "jwks_uri must be https");
    for uri in [
        "https://127.0.0.1/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://[64:ff9b::7f00:1]/jwks",
        "https://[2002:7f00:1::]/jwks",
    ] {
        let error = fetcher.fetch(uri, false).await.unwrap_err();
        assert_eq!(error, "jwks_uri is not on a public address", "{uri}");
    }
    assert_eq!(server.requests.load(SeqCst), 0);
}
