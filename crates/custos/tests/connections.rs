//! Slow and idle clients, and too many of them: CUSTOS_HEADER_READ_TIMEOUT,
//! CUSTOS_IDLE_TIMEOUT and CUSTOS_MAX_CONNECTIONS, over plain HTTP and
//! HTTPS, with raw sockets (no client library would be this rude).

mod common;
use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: custos\r\n\r\n";

/// Small limits so that every test takes seconds.
fn limits(header: &str, idle: &str, max: &str) -> [(&'static str, String); 3] {
    [
        ("CUSTOS_HEADER_READ_TIMEOUT", header.to_owned()),
        ("CUSTOS_IDLE_TIMEOUT", idle.to_owned()),
        ("CUSTOS_MAX_CONNECTIONS", max.to_owned()),
    ]
}

/// Starts custos; the harness's pooled keep-alive connection (which would
/// hold a slot) is let go.
async fn start(db: &Database, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut server = Server::start_with(db, &env).await;
    server.http = reqwest::Client::new();
    server
}

fn address(server: &Server) -> String {
    server.url.split_once("://").unwrap().1.to_owned()
}

/// Whether a read result means the server closed the connection.
fn closed(result: &std::io::Result<usize>) -> bool {
    match result {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

/// Reads (and, every 200 ms, sends one byte of `trickle`, if any) until the
/// server closes the connection; returns when that happened, or `None` if
/// it was still open at `give_up`.
fn wait_closed<S: Read + Write>(
    stream: &mut S,
    trickle: &[u8],
    give_up: Instant,
) -> Option<Instant> {
    let mut trickle = trickle.iter();
    let mut buf = [0u8; 4096];
    while Instant::now() < give_up {
        let result = stream.read(&mut buf);
        if closed(&result) {
            return Some(Instant::now());
        }
        if result.is_err() {
            if let Some(byte) = trickle.next() {
                if stream
                    .write_all(&[*byte])
                    .and_then(|_| stream.flush())
                    .is_err()
                {
                    return Some(Instant::now());
                }
            }
        }
    }
    None
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
}

/// Sends one request and reads its whole response (the body of /healthz
/// is short; Content-Length tells the end).
fn request_ok<S: Read + Write>(stream: &mut S, request: &[u8]) -> String {
    stream.write_all(request).unwrap();
    stream.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no complete response");
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read failed: {e}"),
        }
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A connection that says nothing and one that trickles its header are
/// closed after the header read timeout; a keep-alive connection idle after
/// a request is closed after the idle timeout (longer here, so the two
/// clocks are told apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = start(&db, &limits("1", "3", "20")).await;
    let address = address(&server);

    let silent = {
        let address = address.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut stream = connect(&address);
            wait_closed(&mut stream, b"", start + Duration::from_secs(10)).map(|t| t - start)
        })
    };
    let trickling = {
        let address = address.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut stream = connect(&address);
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: cus")
                .unwrap();
            let rest = b"tos\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            wait_closed(&mut stream, rest, start + Duration::from_secs(10)).map(|t| t - start)
        })
    };
    let idle = {
        let address = address.clone();
        std::thread::spawn(move || {
            let mut stream = connect(&address);
            request_ok(&mut stream, HEALTHZ);
            let answered = Instant::now();
            // Still served before the idle timeout: a second request.
            std::thread::sleep(Duration::from_millis(1500));
            request_ok(&mut stream, HEALTHZ);
            let answered_again = Instant::now();
            let closed = wait_closed(&mut stream, b"", answered + Duration::from_secs(10));
            (
                answered_again - answered,
                closed.map(|t| t - answered_again),
            )
        })
    };

    let silent = silent
        .join()
        .unwrap()
        .expect("silent connection never closed");
    let trickling = trickling
        .join()
        .unwrap()
        .expect("trickling connection never closed");
    let (between, idle) = idle.join().unwrap();
    let idle = idle.expect("idle keep-alive connection never closed");
    assert!(
        (0.8..4.0).contains(&secs(silent)),
        "silent connection closed after {silent:?}"
    );
    assert!(
        (0.8..4.0).contains(&secs(trickling)),
        "trickling connection closed after {trickling:?}"
    );
    assert!(secs(between) >= 1.4, "{between:?}");
    assert!(
        (2.5..6.0).contains(&secs(idle)),
        "idle keep-alive connection closed after {idle:?} (idle timeout 3 s)"
    );
}

/// 30 slow connections against a cap of 20: a health check arriving
/// after them waits for a slot (the cap holds) and is answered once the
/// header read timeout has closed the slow ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_healthz_waits_for_a_slot_and_is_answered() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = start(&db, &limits("2", "30", "20")).await;
    let address = address(&server);

    let start = Instant::now();
    let mut slow = Vec::new();
    for i in 0..30 {
        let mut stream = connect(&address);
        if i % 2 == 0 {
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
        }
        slow.push(stream);
    }
    // The slow connections hold every slot for the header read timeout
    // (2 s); ask for /healthz in the middle of it.
    tokio::time::sleep_until((start + Duration::from_millis(1000)).into()).await;
    let asked = Instant::now();
    let answered = {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            let mut stream = connect(&address);
            request_ok(&mut stream, HEALTHZ);
            Instant::now()
        })
        .await
        .unwrap()
    };
    let waited = answered - asked;
    assert!(
        secs(waited) >= 0.5,
        "answered after {waited:?}: the cap of 20 did not hold"
    );
    assert!(
        secs(waited) < 4.0,
        "answered only after {waited:?}: slow connections were not closed in time"
    );
    let mut gone = 0;
    for stream in &mut slow {
        if wait_closed(stream, b"", Instant::now() + Duration::from_secs(1)).is_some() {
            gone += 1;
        }
    }
    assert_eq!(gone, 30, "every slow connection is closed");
}

/// A connection over the cap waits at most the header read timeout; a
/// slot comes back as soon as its client hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_cap_waits_at_most_the_header_read_timeout() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let server = start(&db, &limits("1", "20", "2")).await;
    let address = address(&server);
    let result = {
        let address = address.clone();
        tokio::task::spawn_blocking(move || {
            // Two keep-alive connections hold both slots (idle timeout 20 s).
            let mut holders: Vec<TcpStream> = (0..2).map(|_| connect(&address)).collect();
            for holder in &mut holders {
                request_ok(holder, HEALTHZ);
            }
            let start = Instant::now();
            let mut waiting = connect(&address);
            waiting.write_all(HEALTHZ).unwrap();
            let closed = wait_closed(&mut waiting, b"", start + Duration::from_secs(10));
            let waited = closed.map(|t| t - start);
            drop(holders);
            std::thread::sleep(Duration::from_millis(100));
            let mut next = connect(&address);
            let served = Instant::now();
            request_ok(&mut next, HEALTHZ);
            (waited, served.elapsed())
        })
        .await
        .unwrap()
    };
    let waited = result.0.expect("the waiting connection was never closed");
    assert!(
        (0.8..3.0).contains(&secs(waited)),
        "over the cap, closed after {waited:?}"
    );
    assert!(
        secs(result.1) < 1.0,
        "slots freed by hanging up are reused at once: {:?}",
        result.1
    );
}

fn tls_files(db: &Database) -> (String, String, Arc<rustls::ClientConfig>, reqwest::Client) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let cert_path = db.dir.join("server.pem");
    let key_path = db.dir.join("server.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        Arc::new(config),
        http,
    )
}

/// The same clocks over HTTPS: a client that never finishes its TLS
/// handshake is closed after the header read timeout, a TLS keep-alive
/// connection idle after a request after the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_slow_and_idle_connections_are_closed() {
    let db = Database::fresh(Engine::Sqlite).unwrap();
    let (cert, key, client_config, http) = tls_files(&db);
    let env = [
        ("CUSTOS_TLS_CERT", cert.as_str()),
        ("CUSTOS_TLS_KEY", key.as_str()),
        ("CUSTOS_HEADER_READ_TIMEOUT", "1"),
        ("CUSTOS_IDLE_TIMEOUT", "3"),
        ("CUSTOS_MAX_CONNECTIONS", "20"),
    ];
    let server = Server::launch(&db, &env, "https", http).await;
    let address = address(&server);

    let half_handshake = {
        let address = address.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut stream = connect(&address);
            // A TLS record header announcing a ClientHello, then a trickle.
            stream.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00]).unwrap();
            wait_closed(&mut stream, &[0x01; 40], start + Duration::from_secs(10))
                .map(|t| t - start)
        })
    };
    let idle = std::thread::spawn(move || {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut stream = rustls::StreamOwned::new(tls, connect(&address));
        request_ok(&mut stream, HEALTHZ);
        let answered = Instant::now();
        wait_closed(&mut stream, b"", answered + Duration::from_secs(10)).map(|t| t - answered)
    });
    let slow = half_handshake
        .join()
        .unwrap()
        .expect("half-done TLS handshake never closed");
    let idle = idle
        .join()
        .unwrap()
        .expect("idle TLS keep-alive connection never closed");
    assert!(
        (0.8..4.0).contains(&secs(slow)),
        "half-done TLS handshake closed after {slow:?}"
    );
    assert!(
        (2.5..6.0).contains(&secs(idle)),
        "idle TLS connection closed after {idle:?} (idle timeout 3 s)"
    );
}
