//! Client certificates at the TLS layer (RFC 8705): any X.509 certificate
//! whose key the client proves reaches the request (self-signed ones
//! included); a client without one is served; a wrong handshake signature
//! or a certificate that is not X.509 cannot connect.

use super::*;

#[tokio::test]
async fn rfc8705_2_2_self_signed_client_certificate_reaches_the_request() {
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = ca.issue("localhost");
    let files = Files::new("self_signed");
    files.write_server(&server, &server);
    files.write_ca(&client_ca);
    let tls = ServerTls::load(&files.tls(true)).unwrap();
    let addr = serve(&tls).await;

    let workload = Leaf::self_signed("workload.example");
    for version in [TLS13, TLS12] {
        let identity = workload.presented(&workload);
        let mut stream = connect(addr, client_config(&ca, Some(identity.clone()), version))
            .await
            .unwrap();
        assert_eq!(
            get(&mut stream).await.unwrap(),
            b64_lines(&[workload.der()]),
            "{version:?}: accepted although it does not chain to CUSTOS_TLS_CLIENT_CA"
        );
        assert_eq!(
            identity.hints.lock().unwrap().as_slice(),
            &[vec![client_ca.subject()]],
            "the CertificateRequest names CUSTOS_TLS_CLIENT_CA"
        );
    }

    // A chain to the CA, intermediates included, reaches it whole.
    let leaf = client_ca.issue("workload.example");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::try_from(leaf.key.serialize_der()).unwrap())
        .unwrap();
    let chain = vec![leaf.cert.der().clone(), client_ca.cert.der().clone()];
    let identity = Arc::new(Presents {
        key: Arc::new(CertifiedKey::new(chain, key)),
        hints: Mutex::new(Vec::new()),
    });
    let mut stream = connect(addr, client_config(&ca, Some(identity), TLS13))
        .await
        .unwrap();
    assert_eq!(
        get(&mut stream).await.unwrap(),
        b64_lines(&[leaf.der(), client_ca.cert.der().to_vec()])
    );
}

#[tokio::test]
async fn a_client_that_presents_no_certificate_is_served() {
    let ca = Ca::new("server CA");
    let server = ca.issue("localhost");
    let files = Files::new("anonymous");
    files.write_server(&server, &server);
    files.write_ca(&Ca::new("client CA"));
    let tls = ServerTls::load(&files.tls(true)).unwrap();
    let addr = serve(&tls).await;
    for version in [TLS13, TLS12] {
        let mut stream = connect(addr, client_config(&ca, None, version))
            .await
            .unwrap();
        assert_eq!(get(&mut stream).await.unwrap(), "", "{version:?}: no chain");
    }
}

#[tokio::test]
async fn without_a_client_ca_no_certificate_is_asked_for() {
    let ca = Ca::new("server CA");
    let server = ca.issue("localhost");
    let files = Files::new("no_client_ca");
    files.write_server(&server, &server);
    let tls = ServerTls::load(&files.tls(false)).unwrap();
    assert!(tls.client_ca_roots().current().is_empty());
    let addr = serve(&tls).await;
    let workload = Leaf::self_signed("workload.example");
    let identity = workload.presented(&workload);
    let mut stream = connect(addr, client_config(&ca, Some(identity.clone()), TLS13))
        .await
        .unwrap();
    assert_eq!(get(&mut stream).await.unwrap(), "");
    assert!(
        identity.hints.lock().unwrap().is_empty(),
        "no CertificateRequest"
    );
}

#[tokio::test]
async fn a_client_whose_certificate_verify_signature_is_wrong_cannot_connect() {
    let ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = ca.issue("localhost");
    let files = Files::new("wrong_signature");
    files.write_server(&server, &server);
    files.write_ca(&client_ca);
    let tls = ServerTls::load(&files.tls(true)).unwrap();
    let addr = serve(&tls).await;

    // A certificate from the CA, and another key: it signs the handshake,
    // so the signature does not verify with the certificate's key.
    let stolen = client_ca.issue("workload.example");
    let other = Leaf::self_signed("thief.example");
    for version in [TLS13, TLS12] {
        let config = client_config(&ca, Some(stolen.presented(&other)), version);
        let outcome = match connect(addr, config).await {
            // In TLS 1.3 the client is done before the server judges it.
            Ok(mut stream) => get(&mut stream).await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = outcome.expect_err("served without proof of the key");
        assert!(
            error.to_string().contains("DecryptError"),
            "{version:?}: {error}"
        );

        // The control: with its own key, the same certificate is served.
        let config = client_config(&ca, Some(stolen.presented(&stolen)), version);
        let mut stream = connect(addr, config).await.unwrap();
        assert_eq!(get(&mut stream).await.unwrap(), b64_lines(&[stolen.der()]));
    }
}

#[tokio::test]
async fn a_client_certificate_that_is_not_x509_cannot_connect() {
    let ca = Ca::new("server CA");
    let server = ca.issue("localhost");
    let files = Files::new("garbage");
    files.write_server(&server, &server);
    files.write_ca(&Ca::new("client CA"));
    let tls = ServerTls::load(&files.tls(true)).unwrap();
    let addr = serve(&tls).await;
    let signer = Leaf::self_signed("workload.example");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::try_from(signer.key.serialize_der()).unwrap())
        .unwrap();
    let identity = Arc::new(Presents {
        key: Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(b"not a certificate".to_vec())],
            key,
        )),
        hints: Mutex::new(Vec::new()),
    });
    let outcome = match connect(addr, client_config(&ca, Some(identity), TLS13)).await {
        Ok(mut stream) => get(&mut stream).await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(outcome.is_err());
}
