use super::*;
use axum_server::accept::DefaultAcceptor;
use axum_server::tls_rustls::RustlsAcceptor;
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName as Dn, DnType, IsCa, KeyPair};
use rustls::client::ResolvesClientCert;
use rustls::SignatureScheme;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

mod client_certificates;

/// Short, so that tests move time by the interval, not by sleeping.
const TICK: Duration = Duration::from_millis(20);
const DEADLINE: Duration = Duration::from_secs(10);

struct Pki {
    dir: std::path::PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    client: rcgen::Certificate,
    client_key: KeyPair,
}

fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("custos_tls_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["workload.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    Pki {
        dir,
        ca,
        ca_key,
        client,
        client_key,
    }
}

/// Accepts one connection through the acceptor under test while a
/// client (with `identity`, if any) connects; returns the chain the
/// request extension carried.
async fn chain_seen(pki: &Pki, identity: bool) -> Option<Vec<Vec<u8>>> {
    let config = ServerTls::load(&Tls {
        cert: pki.dir.join("server.pem"),
        key: pki.dir.join("server.key"),
        client_ca: Some(pki.dir.join("ca.pem")),
    })
    .unwrap()
    .rustls_config();
    let acceptor = WithPeerCertificates(RustlsAcceptor::new(config).acceptor(DefaultAcceptor));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let client_config = if identity {
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(pki.client_key.serialize_der()).unwrap();
        builder
            .with_client_auth_cert(vec![pki.client.der().clone()], key)
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let client = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        // Hold the connection until the server has looked at it.
        let mut byte = [0u8; 1];
        let _ = tokio::io::AsyncReadExt::read(&mut tls, &mut byte).await;
    });

    let (tcp, _) = listener.accept().await.unwrap();
    let probe = tower::service_fn(|request: axum::http::Request<()>| async move {
        Ok::<_, std::convert::Infallible>(axum::http::Response::new(
            request
                .extensions()
                .get::<PeerCertificates>()
                .map(|p| p.0.clone()),
        ))
    });
    let (stream, service) = acceptor.accept(tcp, probe).await.unwrap();
    let seen =
        ServiceExt::<axum::http::Request<()>>::oneshot(service, axum::http::Request::new(()))
            .await
            .unwrap()
            .into_body();
    drop(stream);
    client.await.unwrap();
    let _ = &pki.ca_key;
    seen
}

#[tokio::test]
async fn rfc8705_the_client_certificate_chain_reaches_every_request() {
    let pki = pki();
    let chain = chain_seen(&pki, true).await.expect("an extension");
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0], pki.client.der().to_vec(), "the leaf, DER");
    let none = chain_seen(&pki, false).await.expect("an extension");
    assert!(none.is_empty(), "no certificate, no chain");
}

// ---- A server over real sockets, files that change, real handshakes ----

/// A certificate authority, and what it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = Dn::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    fn issue(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        Leaf { cert, key }
    }

    fn subject(&self) -> Vec<u8> {
        let mut store = rustls::RootCertStore::empty();
        store.add(self.cert.der().clone()).unwrap();
        store.subjects()[0].as_ref().to_vec()
    }
}

struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn self_signed(name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Leaf { cert, key }
    }

    fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// Presents this certificate, signing the handshake with `signer`'s
    /// key (its own, unless testing a client that cannot).
    fn presented(&self, signer: &Leaf) -> Arc<Presents> {
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::try_from(signer.key.serialize_der()).unwrap())
            .unwrap();
        Arc::new(Presents {
            key: Arc::new(CertifiedKey::new(vec![self.cert.der().clone()], key)),
            hints: Mutex::new(Vec::new()),
        })
    }
}

/// A client identity that records the CA names each server asked for.
#[derive(Debug)]
struct Presents {
    key: Arc<CertifiedKey>,
    hints: Mutex<Vec<Vec<Vec<u8>>>>,
}

impl ResolvesClientCert for Presents {
    fn resolve(&self, hints: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.hints
            .lock()
            .unwrap()
            .push(hints.iter().map(|h| h.to_vec()).collect());
        Some(self.key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The TLS files of one test, in a directory of its own.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(test: &str) -> Files {
        let dir = std::env::temp_dir().join(format!("custos_tls_{}_{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn tls(&self, client_ca: bool) -> Tls {
        Tls {
            cert: self.dir.join("server.pem"),
            key: self.dir.join("server.key"),
            client_ca: client_ca.then(|| self.dir.join("ca.pem")),
        }
    }

    fn write_server(&self, cert: &Leaf, key: &Leaf) {
        std::fs::write(self.dir.join("server.pem"), cert.cert.pem()).unwrap();
        std::fs::write(self.dir.join("server.key"), key.key.serialize_pem()).unwrap();
    }

    fn write_ca(&self, ca: &Ca) {
        std::fs::write(self.dir.join("ca.pem"), ca.cert.pem()).unwrap();
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Serves, through the acceptor `custos serve` uses, a page listing the
/// client certificate chain the request carried (base64 DER, one a line).
async fn serve(tls: &ServerTls) -> SocketAddr {
    async fn chain(axum::Extension(chain): axum::Extension<PeerCertificates>) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        chain
            .0
            .iter()
            .map(|der| b64.encode(der))
            .collect::<Vec<_>>()
            .join("\n")
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(chain));
    let server =
        axum_server::from_tcp_rustls(listener, tls.rustls_config()).map(WithPeerCertificates);
    tokio::spawn(server.serve(app.into_make_service()));
    addr
}

fn b64_lines(chain: &[Vec<u8>]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    chain
        .iter()
        .map(|der| b64.encode(der))
        .collect::<Vec<_>>()
        .join("\n")
}

type Client = tokio_rustls::client::TlsStream<TcpStream>;

fn client_config(
    trust: &Ca,
    identity: Option<Arc<Presents>>,
    version: &'static rustls::SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some(identity) => builder.with_client_cert_resolver(identity),
        None => builder.with_no_client_auth(),
    })
}

async fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> io::Result<Client> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(
        DEADLINE,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "handshake"))?
}

/// The server certificate this connection was handshaken with.
fn server_cert(stream: &Client) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One HTTP/1.1 request on a kept-alive connection; the body.
async fn get(stream: &mut Client) -> io::Result<String> {
    let exchange = async {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .expect("a content-length")
                .trim()
                .parse()
                .unwrap();
            let body = end + 4;
            if buf.len() >= body + length {
                return Ok(String::from_utf8(buf[body..body + length].to_vec()).unwrap());
            }
        }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no response"))?
}

/// Polls `probe` every tick until it holds, failing after the deadline.
async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !probe().await {
        assert!(start.elapsed() < DEADLINE, "never: {what}");
        tokio::time::sleep(TICK).await;
    }
}

/// Collects what this module logs on this thread while alive (the reload
/// task's logging runs on the test's single-threaded runtime). One global
/// subscriber writes into the capturing thread's buffer: a per-test scoped
/// subscriber can miss events whose callsite another test's thread
/// registered at the same moment.
struct Logs(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

struct ThreadLogs;

impl io::Write for ThreadLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(logs) = &*captured.borrow() {
                logs.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> Logs {
        static SUBSCRIBER: std::sync::Once = std::sync::Once::new();
        SUBSCRIBER.call_once(|| {
            tracing::subscriber::set_global_default(
                tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new(
                        "custos::serve::tls=debug",
                    ))
                    .with_writer(|| ThreadLogs)
                    .with_ansi(false)
                    .finish(),
            )
            .expect("no other global subscriber in the tests");
        });
        let logs = Arc::new(Mutex::new(Vec::new()));
        CAPTURED.with(|captured| *captured.borrow_mut() = Some(logs.clone()));
        Logs(logs)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Drop for Logs {
    fn drop(&mut self) {
        CAPTURED.with(|captured| *captured.borrow_mut() = None);
    }
}

const TLS13: &rustls::SupportedProtocolVersion = &rustls::version::TLS13;
const TLS12: &rustls::SupportedProtocolVersion = &rustls::version::TLS12;

#[tokio::test]
async fn tls_certificate_files_reload_without_dropping_connections() {
    let ca = Ca::new("server CA");
    let (a, b) = (ca.issue("localhost"), ca.issue("localhost"));
    let files = Files::new("reload");
    files.write_server(&a, &a);
    let tls = ServerTls::load(&files.tls(false)).unwrap();
    let watching = tls.watch(TICK);
    let addr = serve(&tls).await;

    let mut old = connect(addr, client_config(&ca, None, TLS13))
        .await
        .unwrap();
    assert_eq!(server_cert(&old), a.der());
    get(&mut old).await.unwrap();

    files.write_server(&b, &b);
    eventually(
        "a new connection is handshaken with certificate B",
        || async {
            let new = connect(addr, client_config(&ca, None, TLS13))
                .await
                .unwrap();
            server_cert(&new) == b.der()
        },
    )
    .await;

    get(&mut old)
        .await
        .expect("the connection opened before the reload still serves");
    assert_eq!(server_cert(&old), a.der());
    let mut new = connect(addr, client_config(&ca, None, TLS12))
        .await
        .unwrap();
    assert_eq!(server_cert(&new), b.der(), "TLS 1.2 too");
    get(&mut new).await.unwrap();
    watching.abort();
}

#[tokio::test]
async fn a_replacement_key_that_does_not_match_keeps_the_previous_certificate_and_is_logged() {
    let logs = Logs::capture();
    let ca = Ca::new("server CA");
    let (a, b) = (ca.issue("localhost"), ca.issue("localhost"));
    let files = Files::new("broken");
    files.write_server(&a, &a);
    let tls = ServerTls::load(&files.tls(false)).unwrap();
    let watching = tls.watch(TICK);
    let addr = serve(&tls).await;

    // B's certificate with A's key: a half-done rotation that stays so.
    files.write_server(&b, &a);
    eventually("the broken pair is warned about", || async {
        logs.text().contains("WARN")
    })
    .await;
    let text = logs.text();
    assert!(
        text.contains("CUSTOS_TLS_KEY: does not match CUSTOS_TLS_CERT"),
        "{text}"
    );
    assert!(
        !text.contains("BEGIN") && !text.contains(&a.key.serialize_pem()[40..80]),
        "no file content in the logs: {text}"
    );
    let mut stream = connect(addr, client_config(&ca, None, TLS13))
        .await
        .unwrap();
    assert_eq!(server_cert(&stream), a.der(), "A still serves");
    get(&mut stream).await.unwrap();
    // Warned once, not at every check.
    for _ in 0..5 {
        tokio::time::sleep(TICK).await;
    }
    assert_eq!(logs.text().matches("WARN").count(), 1, "{}", logs.text());

    // The rotation completes: B serves.
    files.write_server(&b, &b);
    eventually("B serves once its key is written", || async {
        let new = connect(addr, client_config(&ca, None, TLS13))
            .await
            .unwrap();
        server_cert(&new) == b.der()
    })
    .await;
    // Logged once the check is done (just after the swap).
    eventually("the reload is logged", || async {
        logs.text().contains("reloaded CUSTOS_TLS_CERT")
    })
    .await;
    watching.abort();
}

#[tokio::test]
async fn unreadable_files_keep_the_previous_certificate() {
    let ca = Ca::new("server CA");
    let a = ca.issue("localhost");
    let files = Files::new("unreadable");
    files.write_server(&a, &a);
    let tls = ServerTls::load(&files.tls(false)).unwrap();
    let mut watcher = tls.watcher.clone();
    std::fs::remove_file(files.dir.join("server.key")).unwrap();
    assert!(matches!(
        watcher.check().as_slice(),
        [reload::Event::Waiting(reload::Part::Identity, why)] if why.contains("CUSTOS_TLS_KEY")
    ));
    assert!(matches!(
        watcher.check().as_slice(),
        [reload::Event::Refused(reload::Part::Identity, _)]
    ));
    assert!(watcher.check().is_empty(), "refused once");
    files.write_server(&a, &a);
    assert!(
        watcher.check().is_empty(),
        "the same files back: nothing to reload"
    );
    let addr = serve(&tls).await;
    let stream = connect(addr, client_config(&ca, None, TLS13))
        .await
        .unwrap();
    assert_eq!(server_cert(&stream), a.der());
}

#[tokio::test]
async fn the_client_ca_reloads_for_hints_and_for_the_application() {
    let ca = Ca::new("server CA");
    let server = ca.issue("localhost");
    let (first, second) = (Ca::new("client CA 1"), Ca::new("client CA 2"));
    let files = Files::new("client_ca");
    files.write_server(&server, &server);
    files.write_ca(&first);
    let tls = ServerTls::load(&files.tls(true)).unwrap();
    let roots = tls.client_ca_roots();
    assert_eq!(*roots.current(), vec![first.cert.der().to_vec()]);
    let watching = tls.watch(TICK);
    let addr = serve(&tls).await;

    // A broken bundle does not hold back a certificate rotation.
    std::fs::write(files.dir.join("ca.pem"), "").unwrap();
    let rotated = ca.issue("localhost");
    files.write_server(&rotated, &rotated);
    eventually("the certificate rotates", || async {
        let stream = connect(addr, client_config(&ca, None, TLS13))
            .await
            .unwrap();
        server_cert(&stream) == rotated.der()
    })
    .await;
    assert_eq!(*roots.current(), vec![first.cert.der().to_vec()]);

    files.write_ca(&second);
    eventually("the roots follow the file", || async {
        *roots.current() == vec![second.cert.der().to_vec()]
    })
    .await;
    let workload = Leaf::self_signed("workload.example");
    let identity = workload.presented(&workload);
    let mut stream = connect(addr, client_config(&ca, Some(identity.clone()), TLS13))
        .await
        .unwrap();
    assert_eq!(
        get(&mut stream).await.unwrap(),
        b64_lines(&[workload.der()])
    );
    assert_eq!(
        identity.hints.lock().unwrap().as_slice(),
        &[vec![second.subject()]],
        "new handshakes name the new CA"
    );
    assert_eq!(server_cert(&stream), rotated.der());
    watching.abort();
}

#[test]
fn startup_refuses_files_that_do_not_load_naming_the_setting() {
    let ca = Ca::new("server CA");
    let (a, b) = (ca.issue("localhost"), ca.issue("localhost"));
    let files = Files::new("startup");
    files.write_server(&a, &b);
    let error = ServerTls::load(&files.tls(false)).err().unwrap();
    assert!(
        error.starts_with("CUSTOS_TLS_KEY: does not match"),
        "{error}"
    );
    files.write_server(&a, &a);
    std::fs::write(files.dir.join("ca.pem"), "").unwrap();
    let error = ServerTls::load(&files.tls(true)).err().unwrap();
    assert!(
        error.starts_with("CUSTOS_TLS_CLIENT_CA: no certificate"),
        "{error}"
    );
    std::fs::write(files.dir.join("server.pem"), "").unwrap();
    let error = ServerTls::load(&files.tls(true)).err().unwrap();
    assert!(
        error.starts_with("CUSTOS_TLS_CERT: no certificate"),
        "{error}"
    );
}

#[test]
fn the_verifier_accepts_any_x509_chain_of_at_most_ten() {
    use rustls::server::danger::ClientCertVerifier;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let verifier = verifier::AnyClientCertificate::new(Vec::new(), &provider);
    assert!(verifier.offer_client_auth());
    assert!(!verifier.client_auth_mandatory());
    let now = rustls::pki_types::UnixTime::now();
    let leaf = Leaf::self_signed("workload.example");
    let der = leaf.cert.der().clone();
    assert!(verifier.verify_client_cert(&der, &[], now).is_ok());
    let nine = vec![der.clone(); verifier::MAX_CHAIN - 1];
    assert!(verifier.verify_client_cert(&der, &nine, now).is_ok());
    let ten = vec![der.clone(); verifier::MAX_CHAIN];
    assert!(verifier.verify_client_cert(&der, &ten, now).is_err());
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    assert!(verifier.verify_client_cert(&garbage, &[], now).is_err());
    assert!(
        verifier.verify_client_cert(&der, &[garbage], now).is_err(),
        "intermediates must parse too"
    );
    assert!(!verifier.supported_verify_schemes().is_empty());
}
