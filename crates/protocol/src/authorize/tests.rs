use super::*;
use crate::metadata::{validate_registration, RegistrationRules};
use crate::pkce::s256_challenge;
use crate::redirect::validate_redirect_uri;
use proptest::prelude::*;
use serde_json::json;

const ISS: &str = "https://as.example";
const CB: &str = "https://app.example/cb";
/// RFC 7636 Appendix B.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// A SHA-256 thumbprint (RFC 7638 §3.1's example).
const JKT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

fn client() -> ClientMetadata {
    validate_registration(
        &json!({
            "redirect_uris": [CB, "http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "read write",
        }),
        &RegistrationRules::default(),
    )
    .unwrap()
}

fn form(body: &str) -> FormParams {
    FormParams::parse(body.as_bytes()).unwrap()
}

/// A valid request with `extra` appended (or, as `-name`, a parameter removed).
fn body(changes: &[&str]) -> String {
    let mut params: Vec<String> = vec![
        "client_id=c1".into(),
        "response_type=code".into(),
        format!("redirect_uri={}", enc(CB)),
        format!("code_challenge={CHALLENGE}"),
        "code_challenge_method=S256".into(),
        "state=xyz".into(),
    ];
    for change in changes {
        if let Some(name) = change.strip_prefix('-') {
            params.retain(|p| !p.starts_with(&format!("{name}=")));
        } else {
            let name = change.split('=').next().unwrap();
            params.retain(|p| !p.starts_with(&format!("{name}=")));
            params.push((*change).to_owned());
        }
    }
    params.join("&")
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn check(changes: &[&str]) -> Result<AuthorizationRequest, OAuthError> {
    validate(&form(&body(changes)), &client(), CB.to_owned())
}

fn refused(changes: &[&str]) -> OAuthError {
    check(changes).unwrap_err()
}

fn query(uri: &str) -> Vec<(String, String)> {
    Url::parse(uri)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// --- step 1: client and redirect URI (errors on a page) ---

#[test]
fn oauth21_4_1_1_client_id_is_required() {
    let cases: [(&str, Option<ClientAndRedirect>); 4] = [
        (
            "client_id=c1&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
            Some(ClientAndRedirect {
                client_id: "c1".into(),
                redirect_uri: Some(CB.into()),
            }),
        ),
        (
            "client_id=c1",
            Some(ClientAndRedirect {
                client_id: "c1".into(),
                redirect_uri: None,
            }),
        ),
        ("redirect_uri=https%3A%2F%2Fapp.example%2Fcb", None),
        ("client_id=&response_type=code", None),
    ];
    for (body, expected) in cases {
        match (client_and_redirect(&form(body)), expected) {
            (Ok(got), Some(expected)) => assert_eq!(got, expected, "{body}"),
            (Err(e), None) => assert_eq!(e.code, ErrorCode::InvalidRequest, "{body}"),
            (got, _) => panic!("{body}: {got:?}"),
        }
    }
    let long = format!("client_id={}", "c".repeat(MAX_CLIENT_ID_LENGTH + 1));
    assert!(client_and_redirect(&form(&long)).is_err());
}

#[test]
fn rfc6749_4_1_2_1_client_and_redirect_reads_nothing_else() {
    // Whatever else is wrong is for `validate`, whose errors are redirected.
    let got = client_and_redirect(&form("client_id=c1&response_type=token&scope=%22")).unwrap();
    assert_eq!(got.client_id, "c1");
}

#[test]
fn oauth21_4_1_1_redirect_uri_may_be_omitted_only_with_one_registered() {
    let one = vec![CB.to_owned()];
    let two = vec![CB.to_owned(), "https://app.example/other".to_owned()];
    assert_eq!(resolve_redirect_uri(None, &one).unwrap(), CB);
    for registered in [&two[..], &[][..]] {
        let err = resolve_redirect_uri(None, registered).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
    }
    assert_eq!(resolve_redirect_uri(Some(CB), &two).unwrap(), CB);
    assert_eq!(
        resolve_redirect_uri(Some("https://app.example/other"), &two).unwrap(),
        "https://app.example/other"
    );
}

#[test]
fn rfc9700_2_1_redirect_uri_exact_string_match() {
    let registered = vec![CB.to_owned(), "com.example.app:/oauth2redirect".to_owned()];
    let cases: [(&str, bool); 16] = [
        (CB, true),
        ("com.example.app:/oauth2redirect", true),
        ("https://app.example/cb/", false),
        ("https://app.example/c", false),
        ("https://app.example/cb?x=1", false),
        ("https://app.example/cb?", false),
        ("https://app.example/cb#", false),
        ("https://app.example/cb#x", false),
        ("https://APP.example/cb", false),
        ("HTTPS://app.example/cb", false),
        ("https://app.example/CB", false),
        ("https://app.example:443/cb", false),
        ("https://app.example/./cb", false),
        ("https://app.example/%63b", false),
        ("http://app.example/cb", false),
        ("https://app.example.evil/cb", false),
    ];
    for (sent, ok) in cases {
        let got = resolve_redirect_uri(Some(sent), &registered);
        match got {
            Ok(uri) => {
                assert!(ok, "{sent} must be refused");
                assert_eq!(uri, sent);
            }
            Err(e) => {
                assert!(!ok, "{sent} must be accepted");
                assert_eq!(e.code, ErrorCode::InvalidRequest);
            }
        }
    }
    assert!(resolve_redirect_uri(Some(CB), &[]).is_err());
}

#[test]
fn rfc8252_7_3_loopback_port_may_vary() {
    let registered = vec![
        "http://127.0.0.1/cb".to_owned(),
        "http://[::1]:8080/cb?app=1".to_owned(),
        "http://localhost/cb".to_owned(),
    ];
    let cases: [(&str, bool); 20] = [
        ("http://127.0.0.1/cb", true),
        ("http://127.0.0.1:51234/cb", true),
        ("http://127.0.0.1:1/cb", true),
        ("http://127.0.0.1:65535/cb", true),
        ("http://[::1]/cb?app=1", true),
        ("http://[::1]:9/cb?app=1", true),
        ("http://[::1]:8080/cb?app=1", true),
        // Only the port, and only of an IP literal.
        ("http://localhost:3000/cb", false),
        ("http://127.0.0.1:51234/cb/", false),
        ("http://127.0.0.1:51234/other", false),
        ("http://127.0.0.1:51234/cb?x=1", false),
        ("http://127.0.0.2:51234/cb", false),
        ("https://127.0.0.1:51234/cb", false),
        ("http://[::1]:9/cb", false),
        // Spellings the URL parser would normalize into a match.
        ("HTTP://127.0.0.1:51234/cb", false),
        ("http://127.0.0.1:51234/./cb", false),
        ("http://127.0.0.1:51234/c\tb", false),
        ("http://[0:0:0:0:0:0:0:1]:9/cb?app=1", false),
        ("http://127.0.0.1:/cb", false),
        ("http://127.0.0.1:65536/cb", false),
    ];
    for (sent, ok) in cases {
        assert_eq!(
            resolve_redirect_uri(Some(sent), &registered).is_ok(),
            ok,
            "{sent:?}"
        );
    }
    // The URI used is the one sent, port included.
    assert_eq!(
        resolve_redirect_uri(Some("http://127.0.0.1:51234/cb"), &registered).unwrap(),
        "http://127.0.0.1:51234/cb"
    );
}

// --- step 2: the request (errors redirected) ---

#[test]
fn oauth21_4_1_1_valid_request() {
    let request = check(&[
        "scope=read",
        "resource=https%3A%2F%2Fapi.example",
        &format!("dpop_jkt={JKT}"),
    ])
    .unwrap();
    assert_eq!(
        request,
        AuthorizationRequest {
            client_id: "c1".into(),
            redirect_uri: CB.into(),
            scopes: vec!["read".into()],
            state: Some("xyz".into()),
            code_challenge: CHALLENGE.into(),
            resources: vec!["https://api.example".into()],
            dpop_jkt: Some(JKT.into()),
        }
    );
    let minimal = check(&["-state", "-redirect_uri"]).unwrap();
    assert!(minimal.scopes.is_empty() && minimal.resources.is_empty());
    assert_eq!((minimal.state, minimal.dpop_jkt), (None, None));
}

#[test]
fn oauth21_4_1_1_response_type_must_be_code() {
    let cases: [(&str, ErrorCode); 5] = [
        ("-response_type", ErrorCode::InvalidRequest),
        ("response_type=Code", ErrorCode::UnsupportedResponseType),
        ("response_type=none", ErrorCode::UnsupportedResponseType),
        (
            "response_type=code+code",
            ErrorCode::UnsupportedResponseType,
        ),
        ("response_type=code+id", ErrorCode::UnsupportedResponseType),
    ];
    for (change, code) in cases {
        let err = refused(&[change]);
        assert_eq!(err.code, code, "{change}");
    }
    assert!(refused(&["response_type=none"])
        .description
        .contains("supported: code"));
}

#[test]
fn rfc9700_2_1_2_token_response_types_are_refused_saying_why() {
    for response_type in [
        "token",
        "code+token",
        "id_token",
        "code+id_token",
        "id_token+token",
    ] {
        let err = refused(&[&format!("response_type={response_type}")]);
        assert_eq!(
            err.code,
            ErrorCode::UnsupportedResponseType,
            "{response_type}"
        );
        assert!(
            err.description.contains("tokens never go in URLs"),
            "{response_type}: {}",
            err.description
        );
    }
}

#[test]
fn oauth21_4_1_1_response_mode_query_only() {
    assert!(check(&["response_mode=query"]).is_ok());
    for mode in ["fragment", "form_post", "query.jwt", "jwt", "web_message"] {
        let err = refused(&[&format!("response_mode={mode}")]);
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{mode}");
    }
}

#[test]
fn rfc7636_4_3_pkce_s256_required() {
    let cases: [(&[&str], &str); 7] = [
        (&["-code_challenge"], "code_challenge is required"),
        (
            &["-code_challenge_method"],
            "code_challenge_method=S256 is required",
        ),
        (&["code_challenge_method=plain"], "'plain' is not supported"),
        (&["code_challenge_method=s256"], "not supported"),
        (&["code_challenge_method=S512"], "not supported"),
        (&["code_challenge=short"], "43 base64url characters"),
        (
            &["code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw%2BcM"],
            "43 base64url characters",
        ),
    ];
    for (changes, says) in cases {
        let err = refused(changes);
        assert_eq!(err.code, ErrorCode::InvalidRequest, "{changes:?}");
        assert!(
            err.description.contains(says),
            "{changes:?}: {}",
            err.description
        );
    }
    // A plain challenge (the verifier itself) is not an S256 challenge.
    let verifier = "a".repeat(43);
    assert!(check(&[&format!("code_challenge={verifier}")]).is_err());
    assert!(check(&[&format!("code_challenge={}", s256_challenge(&verifier))]).is_ok());
}

#[test]
fn rfc6749_3_3_scopes_must_be_registered_for_the_client() {
    let cases: [(&str, Result<Vec<&str>, ErrorCode>); 6] = [
        ("-scope", Ok(vec![])),
        ("scope=read", Ok(vec!["read"])),
        ("scope=write+read+write", Ok(vec!["write", "read"])),
        ("scope=admin", Err(ErrorCode::InvalidScope)),
        ("scope=read+admin", Err(ErrorCode::InvalidScope)),
        ("scope=%22quoted%22", Err(ErrorCode::InvalidScope)),
    ];
    for (change, expected) in cases {
        let got = check(&[change]).map(|r| r.scopes).map_err(|e| e.code);
        let expected = expected.map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
        assert_eq!(got, expected, "{change}");
    }
}

#[test]
fn rfc6749_4_1_2_1_client_not_registered_for_code_is_unauthorized_client() {
    let m = validate_registration(
        &json!({"grant_types": ["client_credentials"], "scope": "read"}),
        &RegistrationRules::default(),
    )
    .unwrap();
    let err = validate(&form(&body(&[])), &m, CB.to_owned()).unwrap_err();
    assert_eq!(err.code, ErrorCode::UnauthorizedClient);
}

#[test]
fn rfc8707_2_resource_must_be_absolute_without_fragment() {
    let two = check(&["resource=https%3A%2F%2Fa.example&resource=https%3A%2F%2Fb.example"])
        .unwrap()
        .resources;
    assert_eq!(two, vec!["https://a.example", "https://b.example"]);
    for bad in ["resource=%2Fapi", "resource=https%3A%2F%2Fapi.example%23x"] {
        assert_eq!(refused(&[bad]).code, ErrorCode::InvalidTarget, "{bad}");
    }
}

#[test]
fn rfc9449_10_dpop_jkt_must_be_a_sha256_thumbprint() {
    let cases: [(String, bool); 5] = [
        (JKT.to_owned(), true),
        (JKT[..42].to_owned(), false),
        (format!("{JKT}A"), false),
        (JKT.replace('-', "%2B"), false),
        ("not a thumbprint".replace(' ', "+"), false),
    ];
    for (jkt, ok) in cases {
        let got = check(&[&format!("dpop_jkt={jkt}")]);
        match got {
            Ok(r) => {
                assert!(ok, "{jkt}");
                assert_eq!(r.dpop_jkt.as_deref(), Some(JKT));
            }
            Err(e) => {
                assert!(!ok, "{jkt}");
                assert_eq!(e.code, ErrorCode::InvalidRequest);
            }
        }
    }
}

#[test]
fn rfc6749_4_1_1_state_at_most_1024_characters() {
    let at_limit = "é".repeat(MAX_STATE_LENGTH);
    let got = check(&[&format!("state={}", enc(&at_limit))]).unwrap();
    assert_eq!(got.state.as_deref(), Some(at_limit.as_str()));
    let over = "s".repeat(MAX_STATE_LENGTH + 1);
    assert_eq!(
        refused(&[&format!("state={over}")]).code,
        ErrorCode::InvalidRequest
    );
}

#[test]
fn oauth21_4_1_1_client_id_is_required_in_validate_too() {
    assert_eq!(refused(&["-client_id"]).code, ErrorCode::InvalidRequest);
}

// --- responses ---

/// (redirect URI, state, the query expected)
type SuccessCase = (
    &'static str,
    Option<&'static str>,
    Vec<(&'static str, &'static str)>,
);

#[test]
fn rfc6749_4_1_2_success_redirect_carries_code_state_and_iss() {
    let cases: [SuccessCase; 5] = [
        (
            CB,
            Some("xyz"),
            vec![("code", "C"), ("state", "xyz"), ("iss", ISS)],
        ),
        (CB, None, vec![("code", "C"), ("iss", ISS)]),
        (
            "https://app.example/cb?app=1&x=a+b",
            Some("s"),
            vec![
                ("app", "1"),
                ("x", "a b"),
                ("code", "C"),
                ("state", "s"),
                ("iss", ISS),
            ],
        ),
        (
            "http://127.0.0.1:51234/cb",
            Some("s"),
            vec![("code", "C"), ("state", "s"), ("iss", ISS)],
        ),
        (
            "com.example.app:/oauth2redirect",
            None,
            vec![("code", "C"), ("iss", ISS)],
        ),
    ];
    for (uri, state, expected) in cases {
        let out = success_redirect(uri, "C", state, ISS);
        assert_eq!(query(&out), pairs(&expected), "{out}");
        assert!(!out.contains('#'), "{out}");
    }
    let out = success_redirect("http://127.0.0.1:51234/cb", "C", None, ISS);
    assert!(
        out.starts_with("http://127.0.0.1:51234/cb?code=C&iss="),
        "{out}"
    );
}

#[test]
fn rfc6749_4_1_2_state_is_returned_untouched() {
    let state = "a b&c=d#e?f/g%41+\"<'>é\u{1F600}";
    let out = success_redirect(CB, "C", Some(state), ISS);
    assert_eq!(query(&out)[1], ("state".to_owned(), state.to_owned()));
    // Nothing in the state escapes into the URL's structure.
    let url = Url::parse(&out).unwrap();
    assert_eq!(url.fragment(), None);
    assert_eq!(url.path(), "/cb");
}

#[test]
fn rfc9207_2_iss_is_in_every_response() {
    let issuer = "https://as.example/tenant?x";
    for out in [
        success_redirect(CB, "C", Some("s"), issuer),
        error_redirect(CB, &OAuthError::invalid_request("x"), Some("s"), issuer),
        error_redirect(CB, &OAuthError::invalid_request("x"), None, issuer),
    ] {
        let iss: Vec<_> = query(&out)
            .into_iter()
            .filter(|(k, _)| k == "iss")
            .collect();
        assert_eq!(iss, pairs(&[("iss", issuer)]), "{out}");
    }
}

#[test]
fn rfc6749_4_1_2_1_error_redirect() {
    let err = OAuthError::invalid_scope("scope 'admin' is not registered for this client");
    let out = error_redirect("https://app.example/cb?app=1", &err, Some("xyz"), ISS);
    assert_eq!(
        query(&out),
        pairs(&[
            ("app", "1"),
            ("error", "invalid_scope"),
            (
                "error_description",
                "scope 'admin' is not registered for this client"
            ),
            ("state", "xyz"),
            ("iss", ISS),
        ])
    );
    let out = error_redirect(CB, &OAuthError::unauthorized_client(""), None, ISS);
    assert_eq!(
        query(&out),
        pairs(&[("error", "unauthorized_client"), ("iss", ISS)])
    );
    // Every error validate returns goes back under its RFC name.
    let err = refused(&["scope=admin"]);
    let out = error_redirect(CB, &err, Some("xyz"), ISS);
    assert_eq!(
        query(&out)[0],
        ("error".to_owned(), "invalid_scope".to_owned())
    );
}

#[test]
fn rfc6749_5_2_error_description_is_sanitized() {
    let cases: [(&str, &str); 5] = [
        ("plain text: ok!", "plain text: ok!"),
        ("say \"no\"", "say no"),
        ("back\\slash", "backslash"),
        ("tab\tnew\nline\u{7f}", "tabnewline"),
        ("é\u{1F600}x", "x"),
    ];
    for (raw, clean) in cases {
        assert_eq!(sanitize_description(raw), clean, "{raw:?}");
        let out = error_redirect(CB, &OAuthError::invalid_request(raw), None, ISS);
        assert_eq!(
            query(&out)[1],
            ("error_description".to_owned(), clean.to_owned())
        );
    }
    let long = "x".repeat(10_000);
    assert_eq!(
        sanitize_description(&long).len(),
        MAX_REDIRECTED_DESCRIPTION
    );
}

// --- properties ---

/// A registered redirect URI, as the generator built it: the URI, and for a
/// loopback IP literal the parts around its port.
#[derive(Debug, Clone)]
struct Registered {
    uri: String,
    /// `(http://host, rest)` when the port may vary (RFC 8252 §7.3).
    loopback: Option<(String, String)>,
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[a-zA-Z0-9._~-]{1,8}", 0..3),
        prop::option::of("[a-z]{1,4}=[a-zA-Z0-9]{0,4}"),
    )
        .prop_map(|(segments, query)| {
            let mut path = format!("/{}", segments.join("/"));
            if let Some(q) = query {
                path.push('?');
                path.push_str(&q);
            }
            path
        })
}

fn registered_uri() -> impl Strategy<Value = Registered> {
    let port =
        prop::option::of(1u16..=65535).prop_map(|p| p.map(|p| format!(":{p}")).unwrap_or_default());
    prop_oneof![
        ("[a-z0-9]{1,8}(\\.[a-z]{2,5}){1,2}", port.clone(), path()).prop_map(
            |(host, port, path)| {
                Registered {
                    uri: format!("https://{host}{port}{path}"),
                    loopback: None,
                }
            }
        ),
        ("[a-z]{2,5}\\.[a-z]{2,8}\\.[a-z]{2,6}", path()).prop_map(|(scheme, path)| Registered {
            uri: format!("{scheme}:{path}"),
            loopback: None,
        }),
        (port.clone(), path()).prop_map(|(port, path)| Registered {
            uri: format!("http://localhost{port}{path}"),
            loopback: None,
        }),
        (
            prop::sample::select(vec!["127.0.0.1", "127.0.0.53", "[::1]"]),
            port,
            path()
        )
            .prop_map(|(host, port, path)| Registered {
                uri: format!("http://{host}{port}{path}"),
                loopback: Some((format!("http://{host}"), path)),
            }),
    ]
}

#[derive(Debug, Clone)]
enum NearMiss {
    Change(usize, char),
    Add(usize, char),
    Remove(usize),
    FlipCase(usize),
    TrailingSlash,
    ExtraQuery(String),
}

fn near_miss() -> impl Strategy<Value = NearMiss> {
    let chars = prop_oneof![
        prop::char::range('!', '~'),
        prop::sample::select(vec![
            ' ', '\t', '\n', '/', '.', ':', '%', '#', '?', 'é', '\u{0}'
        ]),
    ];
    prop_oneof![
        (any::<usize>(), chars.clone()).prop_map(|(i, c)| NearMiss::Change(i, c)),
        (any::<usize>(), chars).prop_map(|(i, c)| NearMiss::Add(i, c)),
        any::<usize>().prop_map(NearMiss::Remove),
        any::<usize>().prop_map(NearMiss::FlipCase),
        Just(NearMiss::TrailingSlash),
        "[a-z]{1,4}=[a-z0-9]{0,4}".prop_map(NearMiss::ExtraQuery),
    ]
}

fn apply(uri: &str, miss: &NearMiss) -> String {
    let chars: Vec<char> = uri.chars().collect();
    let mut out = chars.clone();
    match miss {
        NearMiss::Change(i, c) => out[i % chars.len()] = *c,
        NearMiss::Add(i, c) => out.insert(i % (chars.len() + 1), *c),
        NearMiss::Remove(i) => {
            out.remove(i % chars.len());
        }
        NearMiss::FlipCase(i) => {
            let letters: Vec<usize> = (0..chars.len())
                .filter(|&j| chars[j].is_ascii_alphabetic())
                .collect();
            let j = letters[i % letters.len()];
            out[j] = if chars[j].is_ascii_lowercase() {
                chars[j].to_ascii_uppercase()
            } else {
                chars[j].to_ascii_lowercase()
            };
        }
        NearMiss::TrailingSlash => out.push('/'),
        NearMiss::ExtraQuery(pair) => {
            out.push(if uri.contains('?') { '&' } else { '?' });
            out.extend(pair.chars());
        }
    }
    out.into_iter().collect()
}

/// The RFC 8252 §7.3 exception, by the generator's parts: `uri` is the
/// registered loopback URI with its port textually absent or another port.
fn only_port_differs(uri: &str, registered: &Registered) -> bool {
    let Some((prefix, rest)) = &registered.loopback else {
        return false;
    };
    let Some(middle) = uri
        .strip_prefix(prefix.as_str())
        .and_then(|tail| tail.strip_suffix(rest.as_str()))
    else {
        return false;
    };
    match middle.strip_prefix(':') {
        None => middle.is_empty(),
        Some(port) => {
            (1..=5).contains(&port.len())
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u32>().is_ok_and(|p| p <= 65535)
        }
    }
}

proptest! {
    #[test]
    fn no_near_miss_of_a_registered_redirect_uri_is_resolved(
        registered in registered_uri(),
        miss in near_miss(),
        others in prop::collection::vec(registered_uri(), 0..3),
    ) {
        prop_assert!(validate_redirect_uri(&registered.uri).is_ok(), "{}", registered.uri);
        let sent = apply(&registered.uri, &miss);
        let mut list: Vec<String> = others.iter().map(|r| r.uri.clone()).collect();
        list.push(registered.uri.clone());
        let near_another = others.iter().any(|o| o.uri == sent || only_port_differs(&sent, o));
        prop_assume!(!near_another);
        let got = resolve_redirect_uri(Some(&sent), &list);
        if sent == registered.uri || only_port_differs(&sent, &registered) {
            prop_assert_eq!(got.unwrap(), sent);
        } else {
            prop_assert!(got.is_err(), "{:?} resolved against {:?}", sent, registered.uri);
        }
    }

    #[test]
    fn rfc8252_7_3_any_port_of_a_registered_loopback_uri_is_resolved(
        host in prop::sample::select(vec!["127.0.0.1", "[::1]"]),
        registered_port in prop::option::of(1u16..=65535),
        port in 1u16..=65535,
        path in path(),
    ) {
        let port_text = |p: Option<u16>| p.map(|p| format!(":{p}")).unwrap_or_default();
        let registered = format!("http://{host}{}{path}", port_text(registered_port));
        let sent = format!("http://{host}:{port}{path}");
        prop_assert_eq!(resolve_redirect_uri(Some(&sent), &[registered]).unwrap(), sent);
    }

    #[test]
    fn redirects_round_trip_their_parameters(
        registered in registered_uri(),
        code in "[A-Za-z0-9_-]{1,64}",
        state in prop::option::of("\\PC{1,64}"),
        description in "\\PC{0,80}",
    ) {
        let own = query(&format!("https://x.example{}", registered.loopback.as_ref().map_or("/", |(_, rest)| rest.as_str())));
        let out = success_redirect(&registered.uri, &code, state.as_deref(), ISS);
        let mut expected = vec![("code".to_owned(), code.clone())];
        expected.extend(state.clone().map(|s| ("state".to_owned(), s)));
        expected.push(("iss".to_owned(), ISS.to_owned()));
        let got = query(&out);
        prop_assert_eq!(&got[got.len() - expected.len()..], &expected[..]);
        if registered.loopback.is_some() {
            prop_assert_eq!(&got[..got.len() - expected.len()], &own[..]);
        }

        let out = error_redirect(&registered.uri, &OAuthError::invalid_request(description), state.as_deref(), ISS);
        let got = query(&out);
        let error_at = got.iter().position(|(k, _)| k == "error").unwrap();
        prop_assert_eq!(&got[error_at].1, "invalid_request");
        for (k, v) in &got[error_at..] {
            if k == "error_description" {
                prop_assert!(v.chars().all(|c| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')));
            }
        }
        prop_assert_eq!(got.last().unwrap(), &("iss".to_owned(), ISS.to_owned()));
    }

    /// The fuzz target's property, on structured input: no request panics,
    /// and whatever passes is a code request with an S256 challenge.
    #[test]
    fn any_authorization_request_is_judged_without_panic(
        params in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "client_id", "redirect_uri", "response_type", "response_mode", "scope",
                    "state", "code_challenge", "code_challenge_method", "resource", "dpop_jkt",
                ]),
                prop_oneof![
                    Just("code".to_owned()),
                    Just("S256".to_owned()),
                    Just(CHALLENGE.to_owned()),
                    Just(CB.to_owned()),
                    "\\PC{0,48}",
                ],
            ),
            0..12,
        ),
    ) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
        let Ok(form) = FormParams::parse(body.as_bytes()) else { return Ok(()); };
        let Ok(first) = client_and_redirect(&form) else { return Ok(()); };
        let client = client();
        let Ok(uri) = resolve_redirect_uri(first.redirect_uri.as_deref(), &client.redirect_uris) else { return Ok(()); };
        match validate(&form, &client, uri.clone()) {
            Ok(request) => {
                prop_assert_eq!(form.get("response_type"), Some("code"));
                prop_assert!(is_valid_challenge(&request.code_challenge));
                let _ = success_redirect(&uri, "C", request.state.as_deref(), ISS);
            }
            Err(e) => {
                let _ = error_redirect(&uri, &e, form.get("state"), ISS);
            }
        }
    }
}
