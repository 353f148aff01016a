use super::*;

#[test]
fn defaults_are_the_embedded_server() {
    let s = Settings::check(RawSettings::default()).unwrap();
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.issuer, "http://127.0.0.1:8080");
    assert_eq!(s.database_url, "sqlite://custos.db");
    assert!(matches!(s.kek, KekSource::File(ref p) if p.to_str() == Some("custos.db.kek")));
}

#[test]
fn errors_name_the_setting() {
    let cases: Vec<(RawSettings, &str)> = vec![
        (
            RawSettings {
                listen: Some("nope".into()),
                ..Default::default()
            },
            "CUSTOS_LISTEN",
        ),
        (
            RawSettings {
                issuer: Some("ftp://x".into()),
                ..Default::default()
            },
            "CUSTOS_ISSUER",
        ),
        (
            RawSettings {
                database_url: Some("postgres://u:p@h/db".into()),
                ..Default::default()
            },
            "CUSTOS_KEY_ENCRYPTION_KEY",
        ),
        (
            RawSettings {
                database_url: Some("mysql://h/db".into()),
                ..Default::default()
            },
            "CUSTOS_DATABASE_URL",
        ),
        (
            RawSettings {
                log: Some("[[[".into()),
                ..Default::default()
            },
            "CUSTOS_LOG",
        ),
        (
            RawSettings {
                tls_cert: Some("c.pem".into()),
                ..Default::default()
            },
            "CUSTOS_TLS_KEY",
        ),
        (
            RawSettings {
                key_encryption_key: Some("short".into()),
                ..Default::default()
            },
            "CUSTOS_KEY_ENCRYPTION_KEY",
        ),
        (
            RawSettings {
                signing_alg: Some("HS256".into()),
                ..Default::default()
            },
            "CUSTOS_SIGNING_ALG",
        ),
        (
            RawSettings {
                trusted_proxies: Some("10.0.0.0/8, lb.example".into()),
                ..Default::default()
            },
            "CUSTOS_TRUSTED_PROXIES",
        ),
        (
            RawSettings {
                log_format: Some("logfmt".into()),
                ..Default::default()
            },
            "CUSTOS_LOG_FORMAT",
        ),
        (
            RawSettings {
                header_read_timeout: Some(0),
                ..Default::default()
            },
            "CUSTOS_HEADER_READ_TIMEOUT",
        ),
        (
            RawSettings {
                idle_timeout: Some(86_400),
                ..Default::default()
            },
            "CUSTOS_IDLE_TIMEOUT",
        ),
        (
            RawSettings {
                max_connections: Some(0),
                ..Default::default()
            },
            "CUSTOS_MAX_CONNECTIONS",
        ),
    ];
    for (raw, setting) in cases {
        let err = Settings::check(raw).unwrap_err();
        assert!(err.starts_with(setting), "{err}");
        assert!(!err.contains('\n'));
        assert!(!err.contains(":p@"), "password leaked: {err}");
    }
}

#[test]
fn connection_limits_and_log_format() {
    let s = Settings::check(RawSettings::default()).unwrap();
    assert_eq!(
        s.connections,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    );
    assert_eq!(s.log_format, LogFormat::Text);
    let parsed: RawSettings = toml::from_str(
        "header_read_timeout = 5\nidle_timeout = 60\nmax_connections = 100\nlog_format = \"json\"",
    )
    .unwrap();
    let s = Settings::check(parsed).unwrap();
    assert_eq!(s.connections.header_read_timeout, Duration::from_secs(5));
    assert_eq!(s.connections.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.connections.max_connections, 100);
    assert_eq!(s.log_format, LogFormat::Json);
}

#[test]
fn allow_private_urls_and_its_alias() {
    let on = |urls: Option<bool>, jwks: Option<bool>| {
        Settings::check(RawSettings {
            allow_private_urls: urls,
            allow_private_jwks_uri: jwks,
            ..Default::default()
        })
        .unwrap()
        .allow_private_urls
    };
    assert!(!on(None, None));
    assert!(on(Some(true), None));
    assert!(on(None, Some(true)));
    assert!(on(Some(false), Some(true)), "either one turns it on");
    assert!(!on(Some(false), Some(false)));
    let parsed: RawSettings = toml::from_str("allow_private_urls = true").unwrap();
    assert!(Settings::check(parsed).unwrap().allow_private_urls);
}

#[test]
fn the_default_issuer_follows_the_listen_address() {
    let s = Settings::check(RawSettings {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    assert!(s.issuer_from_listen);
    let bound: SocketAddr = "127.0.0.1:4321".parse().unwrap();
    assert_eq!(default_issuer(false, bound), "http://127.0.0.1:4321");
    assert_eq!(default_issuer(true, bound), "https://127.0.0.1:4321");
    let s = Settings::check(RawSettings {
        issuer: Some("https://as.example/".into()),
        ..Default::default()
    })
    .unwrap();
    assert!(!s.issuer_from_listen);
    assert_eq!(s.issuer, "https://as.example");
}

#[test]
fn sqlite_file_is_the_path_sqlite_opens() {
    let file = |url: &str| sqlite_file(url).map(|(p, create)| (p.display().to_string(), create));
    assert_eq!(file("sqlite://custos.db"), Some(("custos.db".into(), true)));
    assert_eq!(
        file("sqlite:///var/lib/custos/my%20db.sqlite?mode=rwc"),
        Some(("/var/lib/custos/my db.sqlite".into(), true))
    );
    assert_eq!(file("sqlite://x.db?mode=rw"), Some(("x.db".into(), false)));
    assert_eq!(file("sqlite::memory:"), None);
    assert_eq!(file("sqlite://x.db?mode=memory"), None);
    assert_eq!(file("postgres://h/db"), None);
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("a%zzb%41"), "a%zzbA");
}

#[test]
fn flags_and_env_win_over_the_file() {
    let flags = RawSettings {
        listen: Some("127.0.0.1:1".into()),
        ..Default::default()
    };
    let file = RawSettings {
        listen: Some("127.0.0.1:2".into()),
        issuer: Some("https://as.example".into()),
        ..Default::default()
    };
    let merged = flags.or(file);
    assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:1"));
    assert_eq!(merged.issuer.as_deref(), Some("https://as.example"));
}

#[test]
fn toml_file_uses_lower_case_names() {
    let parsed: RawSettings =
        toml::from_str("listen = \"127.0.0.1:9\"\ndatabase_url = \"sqlite://x.db\"").unwrap();
    assert_eq!(parsed.listen.as_deref(), Some("127.0.0.1:9"));
    assert!(toml::from_str::<RawSettings>("lsten = 1").is_err());
}

#[test]
fn client_id_metadata_documents_on_by_default_with_host_lists() {
    let s = Settings::check(RawSettings::default()).unwrap();
    assert_eq!(
        s.client_id_metadata_documents,
        Some(custos_protocol::cimd::HostRules::default())
    );
    let s = Settings::check(RawSettings {
        cimd_allowed_hosts: Some(" *.corp.example , tools.example ".into()),
        cimd_denied_hosts: Some("evil.example".into()),
        ..RawSettings::default()
    })
    .unwrap();
    let rules = s.client_id_metadata_documents.unwrap();
    assert!(rules.permits("mcp.corp.example") && !rules.permits("evil.example"));
    let off = Settings::check(RawSettings {
        client_id_metadata_documents: Some(false),
        ..RawSettings::default()
    })
    .unwrap();
    assert_eq!(off.client_id_metadata_documents, None);
    let error = Settings::check(RawSettings {
        cimd_denied_hosts: Some("https://evil.example".into()),
        ..RawSettings::default()
    })
    .unwrap_err();
    assert!(
        error.starts_with("CUSTOS_CIMD_ALLOWED_HOSTS / CUSTOS_CIMD_DENIED_HOSTS"),
        "{error}"
    );
}
