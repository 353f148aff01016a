//! Mutual TLS through the real server (RFC 8705, issue 7): custos serving
//! HTTPS with CUSTOS_TLS_CERT/KEY/CLIENT_CA, certificates made with rcgen
//! at test time. `tls_client_auth` (§2.1) by SAN URI and subject DN,
//! `self_signed_tls_client_auth` (§2.2), certificate-bound tokens (§3) and
//! `spiffe_x509` (draft-ietf-oauth-spiffe-client-auth §3.2). The TLS layer
//! accepts any client certificate that parses; the service judges it, so a
//! wrong certificate is an OAuth error, never a failed handshake.

mod common;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::*;
use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use reqwest::Method;
use serde_json::{json, Value};

const WORKLOAD: &str = "spiffe://example.org/ns/prod/sa/api";
const SAN_URI: &str = "https://workload.example/api";

/// A certificate authority.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2040, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// An intermediate CA under this one.
    fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2040, 1, 1);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Ca { cert, key }
    }

    fn issue(&self, params: CertificateParams) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Leaf::new(cert, key, "")
    }

    fn der_base64(&self) -> String {
        STANDARD.encode(self.cert.der())
    }
}

/// A client certificate, its key, and the chain above it.
struct Leaf {
    der: Vec<u8>,
    identity_pem: String,
    public_point: Vec<u8>,
}

impl Leaf {
    fn new(cert: Certificate, key: KeyPair, chain_pem: &str) -> Leaf {
        Leaf {
            der: cert.der().to_vec(),
            identity_pem: format!("{}{chain_pem}{}", cert.pem(), key.serialize_pem()),
            public_point: key.public_key_raw().to_vec(),
        }
    }

    /// `x5t#S256` (RFC 8705 §3.1): base64url SHA-256 of the DER.
    fn thumbprint(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der);
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// The public JWK with this certificate in `x5c` (RFC 8705 §2.2).
    fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256",
               "x": URL_SAFE_NO_PAD.encode(&self.public_point[1..33]),
               "y": URL_SAFE_NO_PAD.encode(&self.public_point[33..65]),
               "x5c": [STANDARD.encode(&self.der)]})
    }
}

/// A client certificate's parameters: validity now, digitalSignature,
/// client authentication.
fn client_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = date_time_ymd(2024, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    params
}

fn with_uri(uris: &[&str]) -> CertificateParams {
    let mut params = client_params();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    params
}

fn with_subject(rdns: &[(DnType, &str)]) -> CertificateParams {
    let mut params = client_params();
    for (kind, value) in rdns {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params
}

/// An X.509-SVID (X509-SVID §4, §5): empty subject, one URI SAN, not a CA,
/// digitalSignature, client and server authentication.
fn svid_params(id: &str) -> CertificateParams {
    svid_with_uris(&[id])
}

fn svid_with_uris(uris: &[&str]) -> CertificateParams {
    let mut params = with_uri(uris);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

/// A server on HTTPS asking for client certificates, and what the tests
/// need to talk to it.
struct Mtls {
    server: Server,
    server_root: reqwest::Certificate,
    /// The CA of CUSTOS_TLS_CLIENT_CA.
    client_ca: Ca,
}

impl Mtls {
    /// With `client_ca: false`, HTTPS without client certificates.
    async fn start(db: &Database, client_ca: bool) -> Mtls {
        let server_ca = Ca::new("custos test server CA");
        let server_key = KeyPair::generate().unwrap();
        let server_cert =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap()
                .signed_by(&server_key, &server_ca.cert, &server_ca.key)
                .unwrap();
        let client_ca_authority = Ca::new("custos test client CA");
        let write = |name: &str, text: &str| {
            let path = db.dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let cert = write("server.pem", &server_cert.pem());
        let key = write("server.key", &server_key.serialize_pem());
        let ca = write("client-ca.pem", &client_ca_authority.cert.pem());
        let mut env = vec![
            ("CUSTOS_TLS_CERT", cert.as_str()),
            ("CUSTOS_TLS_KEY", key.as_str()),
        ];
        if client_ca {
            env.push(("CUSTOS_TLS_CLIENT_CA", ca.as_str()));
        }
        let server_root = reqwest::Certificate::from_pem(server_ca.cert.pem().as_bytes()).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(server_root.clone())
            .build()
            .unwrap();
        let server = Server::launch(db, &env, "https", http).await;
        Mtls {
            server,
            server_root,
            client_ca: client_ca_authority,
        }
    }

    /// An HTTPS client presenting `leaf`.
    fn presenting(&self, leaf: &Leaf) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(self.server_root.clone())
            .identity(reqwest::Identity::from_pem(leaf.identity_pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    }

    /// A token request over `http` (presenting its certificate, if any).
    async fn token(
        &self,
        http: &reqwest::Client,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let endpoint = self.server.endpoint("token_endpoint").await;
        let mut request = http.post(endpoint).form(form);
        if let Some((id, secret)) = basic {
            request = request.basic_auth(enc(id), Some(enc(secret)));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// client_credentials for `client_id`, authenticated by the
    /// connection's certificate alone.
    async fn certificate_token(&self, http: &reqwest::Client, client_id: &str) -> (u16, Value) {
        self.token(
            http,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
            ],
        )
        .await
    }

    /// RFC 7662 introspection by a resource server's secret client, over
    /// a connection without a certificate.
    async fn introspect(&self, token: &str) -> Value {
        let (rs, rs_secret) = self.server.secret_client("client_secret_basic", "").await;
        let endpoint = self.server.endpoint("introspection_endpoint").await;
        let (status, _, body) = self
            .server
            .post_form(&endpoint, Some((&rs, &rs_secret)), &[("token", token)])
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

async fn register_ok(server: &Server, metadata: Value) -> String {
    let (status, body) = server.register(metadata).await;
    assert_eq!(status, 201, "{body}");
    body["client_id"].as_str().unwrap().to_owned()
}

fn access_claims(status: u16, body: &Value) -> Value {
    assert_eq!(status, 200, "{body}");
    jwt_parts(body["access_token"].as_str().unwrap()).1
}

#[track_caller]
fn assert_refused(got: (u16, Value), status: u16, error: &str, case: &str) {
    let (got_status, body) = got;
    assert_eq!(
        (got_status, body["error"].as_str()),
        (status, Some(error)),
        "{case}: {body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{case}: a refusal says why: {body}"
    );
}

fn methods(doc: &Value) -> Vec<String> {
    doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

const CERTIFICATE_METHODS: [&str; 3] = [
    "tls_client_auth",
    "self_signed_tls_client_auth",
    "spiffe_x509",
];

async fn discovery_offers_certificate_methods_only_with_a_client_ca(db: Database) {
    let mtls = Mtls::start(&db, true).await;
    let doc = mtls.server.discovery().await;
    let offered = methods(&doc);
    for method in CERTIFICATE_METHODS
        .iter()
        .chain(&["federated_jwt", "spiffe_jwt"])
    {
        assert!(offered.iter().any(|m| m == method), "{method}: {offered:?}");
    }
    assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
    assert!(doc["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("urn:ietf:params:oauth:grant-type:jwt-bearer")));
    drop(mtls);

    let db = Database::fresh(db.engine).unwrap();
    let https_only = Mtls::start(&db, false).await;
    let doc = https_only.server.discovery().await;
    let offered = methods(&doc);
    for method in CERTIFICATE_METHODS {
        assert!(
            !offered.iter().any(|m| m == method),
            "{method} without CUSTOS_TLS_CLIENT_CA: {offered:?}"
        );
    }
    for method in ["federated_jwt", "spiffe_jwt"] {
        assert!(offered.iter().any(|m| m == method), "{method}: {offered:?}");
    }
    assert!(doc
        .get("tls_client_certificate_bound_access_tokens")
        .is_none());
}

async fn rfc8705_2_1_tls_client_auth_by_san_uri_binds_the_token_to_the_certificate(db: Database) {
    let mtls = Mtls::start(&db, true).await;
    let id = register_ok(
        &mtls.server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth",
               "tls_client_auth_san_uri": SAN_URI}),
    )
    .await;
    let leaf = mtls.client_ca.issue(with_uri(&[SAN_URI]));
    let http = mtls.presenting(&leaf);
    let (status, body) = mtls.certificate_token(&http, &id).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["cnf"], json!({"x5t#S256": leaf.thumbprint()}));
    assert_eq!(
        claims["client_auth"],
        json!({"method": "tls_client_auth", "attested_id": SAN_URI})
    );
    assert_eq!(body["token_type"], "Bearer");
    let introspected = mtls
        .introspect(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["cnf"]["x5t#S256"], leaf.thumbprint().as_str());

    // A chain through an intermediate of the client CA.
    let intermediate = mtls.client_ca.intermediate("issuing CA");
    let key = KeyPair::generate().unwrap();
    let cert = with_uri(&[SAN_URI])
        .signed_by(&key, &intermediate.cert, &intermediate.key)
        .unwrap();
    let chained = Leaf::new(cert, key, &intermediate.cert.pem());
    let (status, body) = mtls
        .certificate_token(&mtls.presenting(&chained), &id)
        .await;
    assert_eq!(
        access_claims(status, &body)["cnf"]["x5t#S256"],
        chained.thumbprint().as_str(),
        "the leaf binds, not the intermediate"
    );

    let other_ca = Ca::new("somebody else's CA");
    let foreign = other_ca.issue(with_uri(&[SAN_URI]));
    let got = mtls
        .certificate_token(&mtls.presenting(&foreign), &id)
        .await;
    assert_refused(got, 401, "invalid_client", "a certificate from another CA");
    let wrong_san = mtls
        .client_ca
        .issue(with_uri(&["https://workload.example/web"]));
    let got = mtls
        .certificate_token(&mtls.presenting(&wrong_san), &id)
        .await;
    assert_refused(got, 401, "invalid_client", "another SAN URI");
    let mut expired_params = with_uri(&[SAN_URI]);
    expired_params.not_before = date_time_ymd(2020, 1, 1);
    expired_params.not_after = date_time_ymd(2021, 1, 1);
    let expired = mtls.client_ca.issue(expired_params);
    let got = mtls
        .certificate_token(&mtls.presenting(&expired), &id)
        .await;
    assert_refused(got, 401, "invalid_client", "an expired certificate");
    let got = mtls.certificate_token(&mtls.server.http, &id).await;
    assert_refused(got, 401, "invalid_client", "no certificate");

    let issued = mtls
        .server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(issued.len(), 2, "{issued:?}");
}

async fn rfc8705_2_1_2_tls_client_auth_by_subject_dn_compares_names(db: Database) {
    let mtls = Mtls::start(&db, true).await;
    let exact = register_ok(
        &mtls.server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth",
               "tls_client_auth_subject_dn": "CN=api,O=Acme Corp,C=US"}),
    )
    .await;
    // RFC 4514 strings compare as names: case and spacing aside.
    let relaxed = register_ok(
        &mtls.server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth",
               "tls_client_auth_subject_dn": "cn=API, o=acme corp, c=us"}),
    )
    .await;
    let leaf = mtls.client_ca.issue(with_subject(&[
        (DnType::CountryName, "US"),
        (DnType::OrganizationName, "Acme Corp"),
        (DnType::CommonName, "api"),
    ]));
    let http = mtls.presenting(&leaf);
    let (status, body) = mtls.certificate_token(&http, &exact).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_auth"]["method"], "tls_client_auth");
    assert_eq!(
        claims["client_auth"]["attested_id"], "CN=api,O=Acme Corp,C=US",
        "the certificate's subject"
    );
    assert_eq!(claims["cnf"]["x5t#S256"], leaf.thumbprint().as_str());
    let (status, body) = mtls.certificate_token(&http, &relaxed).await;
    assert_eq!(status, 200, "{body}");

    let web = mtls.client_ca.issue(with_subject(&[
        (DnType::CountryName, "US"),
        (DnType::OrganizationName, "Acme Corp"),
        (DnType::CommonName, "web"),
    ]));
    let got = mtls.certificate_token(&mtls.presenting(&web), &exact).await;
    assert_refused(got, 401, "invalid_client", "another common name");
    let reordered = mtls.client_ca.issue(with_subject(&[
        (DnType::CommonName, "api"),
        (DnType::OrganizationName, "Acme Corp"),
        (DnType::CountryName, "US"),
    ]));
    let got = mtls
        .certificate_token(&mtls.presenting(&reordered), &exact)
        .await;
    assert_refused(got, 401, "invalid_client", "the same RDNs in another order");
    let other_ca = Ca::new("somebody else's CA");
    let foreign = other_ca.issue(with_subject(&[
        (DnType::CountryName, "US"),
        (DnType::OrganizationName, "Acme Corp"),
        (DnType::CommonName, "api"),
    ]));
    let got = mtls
        .certificate_token(&mtls.presenting(&foreign), &exact)
        .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "the right subject from another CA",
    );
    let got = mtls.certificate_token(&mtls.server.http, &exact).await;
    assert_refused(got, 401, "invalid_client", "no certificate");
}

async fn rfc8705_2_2_self_signed_certificate_registered_in_jwks_authenticates(db: Database) {
    let mtls = Mtls::start(&db, true).await;
    let self_signed = |uri: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = with_uri(&[uri]).self_signed(&key).unwrap();
        Leaf::new(cert, key, "")
    };
    let leaf = self_signed(SAN_URI);
    let id = register_ok(
        &mtls.server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "self_signed_tls_client_auth",
               "jwks": {"keys": [leaf.jwk()]}}),
    )
    .await;
    let (status, body) = mtls.certificate_token(&mtls.presenting(&leaf), &id).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["cnf"]["x5t#S256"], leaf.thumbprint().as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "self_signed_tls_client_auth",
               "attested_id": format!("x5t#S256:{}", leaf.thumbprint())})
    );
    let introspected = mtls
        .introspect(body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(introspected["cnf"]["x5t#S256"], leaf.thumbprint().as_str());

    let stranger = self_signed(SAN_URI);
    let got = mtls
        .certificate_token(&mtls.presenting(&stranger), &id)
        .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a self-signed certificate not in the jwks",
    );
    let from_ca = mtls.client_ca.issue(with_uri(&[SAN_URI]));
    let got = mtls
        .certificate_token(&mtls.presenting(&from_ca), &id)
        .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "a CA-issued certificate not in the jwks",
    );
    let got = mtls.certificate_token(&mtls.server.http, &id).await;
    assert_refused(got, 401, "invalid_client", "no certificate");
    // A registration without x5c is refused up front.
    let mut bare = leaf.jwk();
    bare.as_object_mut().unwrap().remove("x5c");
    let (status, body) = mtls
        .server
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "self_signed_tls_client_auth",
                         "jwks": {"keys": [bare]}}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{body}"
    );
}

async fn rfc8705_3_a_secret_client_registered_for_bound_tokens_needs_a_certificate(db: Database) {
    let mtls = Mtls::start(&db, true).await;
    let (status, body) = mtls
        .server
        .register(json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic",
                         "tls_client_certificate_bound_access_tokens": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["tls_client_certificate_bound_access_tokens"], true);
    let id = body["client_id"].as_str().unwrap().to_owned();
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let form = [("grant_type", "client_credentials")];
    let got = mtls
        .token(&mtls.server.http, Some((&id, &secret)), &form)
        .await;
    assert_refused(
        got,
        400,
        "invalid_request",
        "a bound client without a certificate",
    );
    // Any certificate the client holds binds it: the secret authenticates.
    let other_ca = Ca::new("the workload's own CA");
    let leaf = other_ca.issue(with_uri(&[SAN_URI]));
    let (status, body) = mtls
        .token(&mtls.presenting(&leaf), Some((&id, &secret)), &form)
        .await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["cnf"], json!({"x5t#S256": leaf.thumbprint()}));
    assert!(
        claims.get("client_auth").is_none(),
        "a secret attests nothing: {claims}"
    );
    let got = mtls
        .token(&mtls.presenting(&leaf), Some((&id, "wrong")), &form)
        .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "the wrong secret, with a certificate",
    );

    // A secret client that did not ask for binding is bound when it
    // presents a certificate, and not when it does not.
    let (plain, plain_secret) = mtls.server.secret_client("client_secret_basic", "").await;
    let (status, body) = mtls
        .token(
            &mtls.presenting(&leaf),
            Some((&plain, &plain_secret)),
            &form,
        )
        .await;
    assert_eq!(
        access_claims(status, &body)["cnf"]["x5t#S256"],
        leaf.thumbprint().as_str()
    );
    let (status, body) = mtls
        .token(&mtls.server.http, Some((&plain, &plain_secret)), &form)
        .await;
    assert!(access_claims(status, &body).get("cnf").is_none());
}

async fn spiffe_x509_svid_authenticates_the_client_registered_for_its_id(db: Database) {
    let mtls = Mtls::start(&db, true).await;
    let spiffe_ca = Ca::new("example.org SPIFFE CA");
    let (status, body) = mtls
        .server
        .admin(
            Method::POST,
            "/admin/trusted-issuers",
            Some(json!({"kind": "spiffe", "trust_domain": "example.org",
                        "bundle": {"keys": [{"kty": "EC", "use": "x509-svid", "x5c": [spiffe_ca.der_base64()]}],
                                   "spiffe_sequence": 1}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = register_ok(
        &mtls.server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_x509",
               "spiffe_id": "spiffe://example.org/ns/prod/*"}),
    )
    .await;
    let svid = spiffe_ca.issue(svid_params(WORKLOAD));
    let http = mtls.presenting(&svid);
    let (status, body) = mtls.certificate_token(&http, WORKLOAD).await;
    let claims = access_claims(status, &body);
    assert_eq!(claims["client_id"], id.as_str(), "the SPIFFE ID selects");
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(
        claims["client_auth"],
        json!({"method": "spiffe_x509", "attested_id": WORKLOAD})
    );
    assert_eq!(claims["cnf"]["x5t#S256"], svid.thumbprint().as_str());
    let (status, body) = mtls.certificate_token(&http, &id).await;
    assert_eq!(
        access_claims(status, &body)["client_auth"]["attested_id"],
        WORKLOAD,
        "the client's own id works too"
    );
    let issued = mtls
        .server
        .events(&format!("?client_id={id}&type=token.issued"))
        .await;
    assert_eq!(issued.len(), 2, "the audit names the client: {issued:?}");

    // client_id must be the SVID's own SPIFFE ID, not another the
    // registration also covers.
    let got = mtls
        .certificate_token(&http, "spiffe://example.org/ns/prod/sa/web")
        .await;
    assert_refused(got, 401, "invalid_client", "client_id is another SPIFFE ID");
    let other_ca = Ca::new("another SPIFFE CA");
    let foreign = other_ca.issue(svid_params(WORKLOAD));
    let got = mtls
        .certificate_token(&mtls.presenting(&foreign), WORKLOAD)
        .await;
    assert_refused(got, 401, "invalid_client", "an SVID from another CA");
    // The TLS client CA is not the trust domain's authority.
    let tls_ca_svid = mtls.client_ca.issue(svid_params(WORKLOAD));
    let got = mtls
        .certificate_token(&mtls.presenting(&tls_ca_svid), &id)
        .await;
    assert_refused(
        got,
        401,
        "invalid_client",
        "an SVID from CUSTOS_TLS_CLIENT_CA",
    );
    let dev = spiffe_ca.issue(svid_params("spiffe://example.org/ns/dev/sa/api"));
    let got = mtls.certificate_token(&mtls.presenting(&dev), &id).await;
    assert_refused(got, 401, "invalid_client", "an ID outside the pattern");
    let two = spiffe_ca.issue(svid_with_uris(&[WORKLOAD, "spiffe://example.org/x"]));
    let got = mtls.certificate_token(&mtls.presenting(&two), &id).await;
    assert_refused(got, 401, "invalid_client", "two URI SANs");
    let mut ca_params = svid_params(WORKLOAD);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    let ca_leaf = spiffe_ca.issue(ca_params);
    let got = mtls
        .certificate_token(&mtls.presenting(&ca_leaf), &id)
        .await;
    assert_refused(got, 401, "invalid_client", "a CA certificate as the SVID");
    let mut no_signature = svid_params(WORKLOAD);
    no_signature.key_usages = vec![KeyUsagePurpose::KeyAgreement];
    let no_signature = spiffe_ca.issue(no_signature);
    let got = mtls
        .certificate_token(&mtls.presenting(&no_signature), &id)
        .await;
    assert_refused(got, 401, "invalid_client", "without digitalSignature");
    let got = mtls.certificate_token(&mtls.server.http, WORKLOAD).await;
    assert_refused(got, 401, "invalid_client", "no certificate");

    // A trust domain nobody registered.
    let other = register_ok(
        &mtls.server,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "spiffe_x509",
               "spiffe_id": "spiffe://other.org/ns/prod/sa/api"}),
    )
    .await;
    let stray = other_ca.issue(svid_params("spiffe://other.org/ns/prod/sa/api"));
    let got = mtls
        .certificate_token(&mtls.presenting(&stray), &other)
        .await;
    assert_refused(got, 401, "invalid_client", "a trust domain not registered");
}

on_both_engines!(
    discovery_offers_certificate_methods_only_with_a_client_ca,
    rfc8705_2_1_tls_client_auth_by_san_uri_binds_the_token_to_the_certificate,
    rfc8705_2_1_2_tls_client_auth_by_subject_dn_compares_names,
    rfc8705_2_2_self_signed_certificate_registered_in_jwks_authenticates,
    rfc8705_3_a_secret_client_registered_for_bound_tokens_needs_a_certificate,
    spiffe_x509_svid_authenticates_the_client_registered_for_its_id,
);
