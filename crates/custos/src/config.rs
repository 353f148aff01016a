//! Settings for `custos serve`: flags, then environment, then the `--config`
//! TOML file (same names in lower case without the prefix), checked once
//! here. Every error names the setting at fault, in one line.

use clap::Args;
use custos_http::TrustedProxies;
use custos_service::keyring::SigningAlg;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What the operator may set. Flags and environment come through clap;
/// missing values are then taken from the TOML file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Address to bind.
    #[arg(long, env = "CUSTOS_LISTEN")]
    pub listen: Option<String>,
    /// The `iss` of everything issued (default http://<listen>).
    #[arg(long, env = "CUSTOS_ISSUER")]
    pub issuer: Option<String>,
    /// sqlite://PATH (created if missing) or postgres://…
    #[arg(long, env = "CUSTOS_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Bearer token for /admin/*; unset = admin API off.
    #[arg(long, env = "CUSTOS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Key that encrypts signing keys at rest (at least 32 characters).
    #[arg(long, env = "CUSTOS_KEY_ENCRYPTION_KEY", hide_env_values = true)]
    pub key_encryption_key: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, env = "CUSTOS_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "CUSTOS_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM bundle: request client certificates (optional for clients).
    #[arg(long, env = "CUSTOS_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Log filter (tracing EnvFilter syntax).
    #[arg(long, env = "CUSTOS_LOG")]
    pub log: Option<String>,
    /// ES256 (default), EdDSA or RS256.
    #[arg(long, env = "CUSTOS_SIGNING_ALG")]
    pub signing_alg: Option<String>,
    /// Seconds between publishing a new signing key and signing with it.
    #[arg(long, env = "CUSTOS_KEY_ACTIVATION_DELAY")]
    pub key_activation_delay: Option<i64>,
    /// Seconds a rotated-out client secret keeps working.
    #[arg(long, env = "CUSTOS_SECRET_ROTATION_GRACE")]
    pub secret_rotation_grace: Option<i64>,
    /// Seconds between reloads of signing keys made by other replicas.
    #[arg(long, env = "CUSTOS_KEY_REFRESH_INTERVAL")]
    pub key_refresh_interval: Option<u64>,
    /// Most pooled database connections.
    #[arg(long, env = "CUSTOS_DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,
    /// Comma-separated addresses / CIDR networks of reverse proxies whose
    /// X-Forwarded-For is believed.
    #[arg(long, env = "CUSTOS_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Seconds a client read from the database may be reused (0: off).
    #[arg(long, env = "CUSTOS_CLIENT_CACHE_TTL")]
    pub client_cache_ttl: Option<u64>,
    /// Days audit events are kept before they are pruned (0: forever).
    #[arg(long, env = "CUSTOS_AUDIT_RETENTION_DAYS")]
    pub audit_retention_days: Option<u32>,
    /// Every authorization request must be pushed first (RFC 9126).
    #[arg(long, env = "CUSTOS_REQUIRE_PAR", num_args = 0..=1, default_missing_value = "true")]
    pub require_par: Option<bool>,
    /// DPoP proofs must carry a server nonce (RFC 9449 section 8).
    #[arg(long, env = "CUSTOS_DPOP_NONCE", num_args = 0..=1, default_missing_value = "true")]
    pub dpop_nonce: Option<bool>,
    /// INSECURE, development only: every URL custos fetches may point at
    /// loopback and private addresses (and use plain http on loopback).
    #[arg(long, env = "CUSTOS_ALLOW_PRIVATE_URLS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_urls: Option<bool>,
    /// Alias of --allow-private-urls (either one on turns it on).
    #[arg(long, env = "CUSTOS_ALLOW_PRIVATE_JWKS_URI", num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_jwks_uri: Option<bool>,
    /// Log format on stderr: text (colour only on a terminal) or json (one
    /// object per line).
    #[arg(long, env = "CUSTOS_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Seconds a connection has to deliver a complete request head, counted
    /// from the connection's first byte (or from accept, for its first
    /// request; the TLS handshake and any wait for a connection slot count).
    #[arg(long, env = "CUSTOS_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a keep-alive connection may sit idle between requests.
    #[arg(long, env = "CUSTOS_IDLE_TIMEOUT")]
    pub idle_timeout: Option<u64>,
    /// Most client connections open at once; more wait for a slot (at most
    /// the header read timeout).
    #[arg(long, env = "CUSTOS_MAX_CONNECTIONS")]
    pub max_connections: Option<u32>,
    /// A Cedar policy file, or a directory of `*.cedar` files, loaded at
    /// start after the default set (each file one record, named by its
    /// file name without `.cedar`).
    #[arg(long, env = "CUSTOS_POLICIES")]
    pub policies: Option<PathBuf>,
    /// Longest delegation (`act`) chain token exchange issues (default 4).
    #[arg(long, env = "CUSTOS_MAX_DELEGATION_DEPTH")]
    pub max_delegation_depth: Option<u32>,
    /// Keep the default policy `default.permit-registered` (true); false:
    /// only the operator's `permit` policies allow anything.
    #[arg(long, env = "CUSTOS_POLICY_DEFAULT_PERMIT", num_args = 0..=1, default_missing_value = "true")]
    pub policy_default_permit: Option<bool>,
    /// Resolve `https://` client ids by their Client ID Metadata Document
    /// (true; how MCP clients arrive).
    #[arg(long, env = "CUSTOS_CLIENT_ID_METADATA_DOCUMENTS", num_args = 0..=1, default_missing_value = "true")]
    pub client_id_metadata_documents: Option<bool>,
    /// Hosts whose client ID metadata documents are accepted (comma
    /// separated; `*.example.com` for every host below); empty: any host
    /// not denied. Listed hosts may also use client credentials and token
    /// exchange.
    #[arg(long, env = "CUSTOS_CIMD_ALLOWED_HOSTS")]
    pub cimd_allowed_hosts: Option<String>,
    /// Hosts whose client ID metadata documents are refused (comma
    /// separated, as above); wins over the allow-list.
    #[arg(long, env = "CUSTOS_CIMD_DENIED_HOSTS")]
    pub cimd_denied_hosts: Option<String>,
}

impl RawSettings {
    /// Fills every unset value from `file`.
    pub fn or(self, file: RawSettings) -> RawSettings {
        RawSettings {
            listen: self.listen.or(file.listen),
            issuer: self.issuer.or(file.issuer),
            database_url: self.database_url.or(file.database_url),
            admin_token: self.admin_token.or(file.admin_token),
            key_encryption_key: self.key_encryption_key.or(file.key_encryption_key),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_client_ca: self.tls_client_ca.or(file.tls_client_ca),
            log: self.log.or(file.log),
            signing_alg: self.signing_alg.or(file.signing_alg),
            key_activation_delay: self.key_activation_delay.or(file.key_activation_delay),
            secret_rotation_grace: self.secret_rotation_grace.or(file.secret_rotation_grace),
            key_refresh_interval: self.key_refresh_interval.or(file.key_refresh_interval),
            database_max_connections: self
                .database_max_connections
                .or(file.database_max_connections),
            allow_private_urls: self.allow_private_urls.or(file.allow_private_urls),
            allow_private_jwks_uri: self.allow_private_jwks_uri.or(file.allow_private_jwks_uri),
            log_format: self.log_format.or(file.log_format),
            header_read_timeout: self.header_read_timeout.or(file.header_read_timeout),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            max_connections: self.max_connections.or(file.max_connections),
            client_cache_ttl: self.client_cache_ttl.or(file.client_cache_ttl),
            audit_retention_days: self.audit_retention_days.or(file.audit_retention_days),
            dpop_nonce: self.dpop_nonce.or(file.dpop_nonce),
            require_par: self.require_par.or(file.require_par),
            trusted_proxies: self.trusted_proxies.or(file.trusted_proxies),
            policies: self.policies.or(file.policies),
            max_delegation_depth: self.max_delegation_depth.or(file.max_delegation_depth),
            policy_default_permit: self.policy_default_permit.or(file.policy_default_permit),
            client_id_metadata_documents: self
                .client_id_metadata_documents
                .or(file.client_id_metadata_documents),
            cimd_allowed_hosts: self.cimd_allowed_hosts.or(file.cimd_allowed_hosts),
            cimd_denied_hosts: self.cimd_denied_hosts.or(file.cimd_denied_hosts),
        }
    }
}

impl RawSettings {
    /// An empty value (`CUSTOS_ADMIN_TOKEN=`) means unset.
    fn without_empty_values(self) -> RawSettings {
        let text = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let path = |v: Option<PathBuf>| v.filter(|p| !p.as_os_str().is_empty());
        RawSettings {
            listen: text(self.listen),
            issuer: text(self.issuer),
            database_url: text(self.database_url),
            admin_token: text(self.admin_token),
            key_encryption_key: text(self.key_encryption_key),
            tls_cert: path(self.tls_cert),
            tls_key: path(self.tls_key),
            tls_client_ca: path(self.tls_client_ca),
            policies: path(self.policies),
            log: text(self.log),
            signing_alg: text(self.signing_alg),
            trusted_proxies: text(self.trusted_proxies),
            log_format: text(self.log_format),
            cimd_allowed_hosts: text(self.cimd_allowed_hosts),
            cimd_denied_hosts: text(self.cimd_denied_hosts),
            ..self
        }
    }
}

/// Reads the `--config` file.
pub fn read_config_file(path: &std::path::Path) -> Result<RawSettings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {}: cannot read: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        format!(
            "--config {}: {}",
            path.display(),
            e.to_string().lines().collect::<Vec<_>>().join(" ")
        )
    })
}

#[derive(Debug, Clone)]
pub enum KekSource {
    Value(String),
    /// A key file beside the SQLite database, created if missing.
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable; ANSI colour only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Limits on client connections (slow or idle clients, too many at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// The issuer; when `issuer_from_listen`, it is derived from the listen
    /// address, and `serve` derives it again from the bound address (the
    /// port may be 0).
    pub issuer: String,
    pub issuer_from_listen: bool,
    pub database_url: String,
    pub admin_token: Option<String>,
    pub kek: KekSource,
    pub tls: Option<Tls>,
    pub log: String,
    pub log_format: LogFormat,
    pub signing_alg: SigningAlg,
    pub key_activation_delay: i64,
    pub secret_rotation_grace: i64,
    pub key_refresh_interval: u64,
    pub database_max_connections: u32,
    /// CUSTOS_ALLOW_PRIVATE_URLS (or its alias CUSTOS_ALLOW_PRIVATE_JWKS_URI).
    pub allow_private_urls: bool,
    pub client_cache_ttl: u64,
    pub audit_retention_days: u32,
    pub dpop_nonce: bool,
    pub require_par: bool,
    pub trusted_proxies: TrustedProxies,
    pub connections: ConnectionLimits,
    /// CUSTOS_POLICIES, read: `(record id, Cedar text)`.
    pub policy_files: Vec<(String, String)>,
    pub max_delegation_depth: u32,
    pub policy_default_permit: bool,
    /// Client ID Metadata Documents: `None` when off, else the host lists.
    pub client_id_metadata_documents: Option<custos_protocol::cimd::HostRules>,
}

impl Settings {
    pub fn check(raw: RawSettings) -> Result<Settings, String> {
        let raw = raw.without_empty_values();
        let listen_text = raw.listen.unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            format!("CUSTOS_LISTEN: '{listen_text}' is not an address like 127.0.0.1:8080")
        })?;

        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(Tls {
                cert,
                key,
                client_ca: raw.tls_client_ca,
            }),
            (None, None) => {
                if raw.tls_client_ca.is_some() {
                    return Err("CUSTOS_TLS_CLIENT_CA: needs CUSTOS_TLS_CERT and CUSTOS_TLS_KEY (client certificates need HTTPS)".into());
                }
                None
            }
            (Some(_), None) => {
                return Err("CUSTOS_TLS_KEY: must be set with CUSTOS_TLS_CERT".into())
            }
            (None, Some(_)) => {
                return Err("CUSTOS_TLS_CERT: must be set with CUSTOS_TLS_KEY".into())
            }
        };

        let issuer_from_listen = raw.issuer.is_none();
        let issuer = match raw.issuer {
            Some(issuer) => check_issuer(&issuer)?,
            None => default_issuer(tls.is_some(), listen),
        };

        let database_url = raw
            .database_url
            .unwrap_or_else(|| "sqlite://custos.db".into());
        let kek = match (raw.key_encryption_key, sqlite_path(&database_url)) {
            (Some(value), _) => {
                if value.trim().len() < custos_service::crypto::MIN_KEK_LENGTH {
                    return Err(format!(
                        "CUSTOS_KEY_ENCRYPTION_KEY: must be at least {} characters (e.g. `openssl rand -base64 32`)",
                        custos_service::crypto::MIN_KEK_LENGTH
                    ));
                }
                KekSource::Value(value)
            }
            (None, Some(path)) => KekSource::File(PathBuf::from(format!("{path}.kek"))),
            (None, None) if is_postgres(&database_url) => {
                return Err("CUSTOS_KEY_ENCRYPTION_KEY: required when CUSTOS_DATABASE_URL is PostgreSQL (replicas must share it)".into())
            }
            (None, None) => {
                return Err(format!(
                    "CUSTOS_DATABASE_URL: '{}' is neither sqlite://PATH nor postgres://…",
                    custos_store::redact_url(&database_url)
                ))
            }
        };

        if let Some(token) = &raw.admin_token {
            if token.len() < 16 {
                return Err("CUSTOS_ADMIN_TOKEN: must be at least 16 characters".into());
            }
        }

        let log = raw.log.unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log).map_err(|e| format!("CUSTOS_LOG: {e}"))?;
        let log_format = match raw.log_format.as_deref().map(str::trim) {
            None => LogFormat::Text,
            Some(text) if text.eq_ignore_ascii_case("text") => LogFormat::Text,
            Some(text) if text.eq_ignore_ascii_case("json") => LogFormat::Json,
            Some(text) => {
                return Err(format!(
                    "CUSTOS_LOG_FORMAT: '{text}' is not one of text, json"
                ))
            }
        };

        let signing_alg = match raw.signing_alg {
            Some(text) => SigningAlg::parse(&text).ok_or_else(|| {
                format!("CUSTOS_SIGNING_ALG: '{text}' is not one of ES256, EdDSA, RS256")
            })?,
            None => SigningAlg::Es256,
        };
        let key_activation_delay = raw.key_activation_delay.unwrap_or(90);
        if !(0..=86_400).contains(&key_activation_delay) {
            return Err("CUSTOS_KEY_ACTIVATION_DELAY: must be between 0 and 86400 seconds".into());
        }
        let secret_rotation_grace = raw.secret_rotation_grace.unwrap_or(86_400);
        if !(0..=30 * 86_400).contains(&secret_rotation_grace) {
            return Err(
                "CUSTOS_SECRET_ROTATION_GRACE: must be between 0 and 2592000 seconds".into(),
            );
        }
        let key_refresh_interval = raw.key_refresh_interval.unwrap_or(10);
        if !(1..=3600).contains(&key_refresh_interval) {
            return Err("CUSTOS_KEY_REFRESH_INTERVAL: must be between 1 and 3600 seconds".into());
        }
        let database_max_connections = raw.database_max_connections.unwrap_or(16);
        if !(1..=1000).contains(&database_max_connections) {
            return Err("CUSTOS_DATABASE_MAX_CONNECTIONS: must be between 1 and 1000".into());
        }

        let host_list = |value: Option<&str>| -> Vec<String> {
            value
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let client_id_metadata_documents = if raw.client_id_metadata_documents.unwrap_or(true) {
            let allowed = host_list(raw.cimd_allowed_hosts.as_deref());
            let denied = host_list(raw.cimd_denied_hosts.as_deref());
            Some(
                custos_protocol::cimd::HostRules::new(allowed, denied).map_err(|e| {
                    format!("CUSTOS_CIMD_ALLOWED_HOSTS / CUSTOS_CIMD_DENIED_HOSTS: {e}")
                })?,
            )
        } else {
            None
        };
        let trusted_proxies = TrustedProxies::parse(raw.trusted_proxies.as_deref().unwrap_or(""))
            .map_err(|e| format!("CUSTOS_TRUSTED_PROXIES: {e}"))?;
        let client_cache_ttl = raw.client_cache_ttl.unwrap_or(2);
        if client_cache_ttl > 300 {
            return Err("CUSTOS_CLIENT_CACHE_TTL: must be between 0 and 300 seconds".into());
        }
        let audit_retention_days = raw.audit_retention_days.unwrap_or(90);
        if audit_retention_days > 36_500 {
            return Err(
                "CUSTOS_AUDIT_RETENTION_DAYS: must be between 0 (keep forever) and 36500 days"
                    .into(),
            );
        }

        let header_read_timeout = raw.header_read_timeout.unwrap_or(10);
        if !(1..=300).contains(&header_read_timeout) {
            return Err("CUSTOS_HEADER_READ_TIMEOUT: must be between 1 and 300 seconds".into());
        }
        let idle_timeout = raw.idle_timeout.unwrap_or(30);
        if !(1..=3600).contains(&idle_timeout) {
            return Err("CUSTOS_IDLE_TIMEOUT: must be between 1 and 3600 seconds".into());
        }
        let max_connections = raw.max_connections.unwrap_or(10_000);
        if !(1..=1_000_000).contains(&max_connections) {
            return Err("CUSTOS_MAX_CONNECTIONS: must be between 1 and 1000000".into());
        }
        let max_delegation_depth = raw
            .max_delegation_depth
            .unwrap_or(custos_policy::DEFAULT_MAX_DELEGATION_DEPTH);
        if !(1..=16).contains(&max_delegation_depth) {
            return Err("CUSTOS_MAX_DELEGATION_DEPTH: must be between 1 and 16".into());
        }
        let policy_files = match &raw.policies {
            Some(path) => read_policy_files(path)?,
            None => Vec::new(),
        };

        Ok(Settings {
            listen,
            issuer,
            issuer_from_listen,
            database_url,
            admin_token: raw.admin_token,
            kek,
            tls,
            log,
            log_format,
            signing_alg,
            key_activation_delay,
            secret_rotation_grace,
            key_refresh_interval,
            database_max_connections,
            allow_private_urls: raw.allow_private_urls.unwrap_or(false)
                || raw.allow_private_jwks_uri.unwrap_or(false),
            client_cache_ttl,
            audit_retention_days,
            dpop_nonce: raw.dpop_nonce.unwrap_or(false),
            require_par: raw.require_par.unwrap_or(false),
            trusted_proxies,
            connections: ConnectionLimits {
                header_read_timeout: Duration::from_secs(header_read_timeout),
                idle_timeout: Duration::from_secs(idle_timeout),
                max_connections: max_connections as usize,
            },
            policy_files,
            max_delegation_depth,
            policy_default_permit: raw.policy_default_permit.unwrap_or(true),
            client_id_metadata_documents,
        })
    }
}

/// Most policy files CUSTOS_POLICIES may name.
const MAX_POLICY_FILES: usize = 1000;

/// CUSTOS_POLICIES: one `.cedar` file, or every `*.cedar` file of a
/// directory (sorted by name); each is a record named by its file stem and
/// checked against the schema here, so a bad one stops the start.
fn read_policy_files(path: &std::path::Path) -> Result<Vec<(String, String)>, String> {
    let fail = |what: String| format!("CUSTOS_POLICIES: {what}");
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "cedar") && p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    if files.len() > MAX_POLICY_FILES {
        return Err(fail(format!("more than {MAX_POLICY_FILES} policy files")));
    }
    let mut records = Vec::with_capacity(files.len());
    for file in files {
        let id = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let size = std::fs::metadata(&file)
            .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?
            .len();
        if size > custos_policy::MAX_RECORD_BYTES as u64 {
            return Err(fail(format!(
                "{} is larger than {} bytes",
                file.display(),
                custos_policy::MAX_RECORD_BYTES
            )));
        }
        let cedar = std::fs::read_to_string(&file)
            .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
        custos_policy::check_record(&id, &cedar)
            .map_err(|e| fail(format!("{}: {}", file.display(), e.message())))?;
        records.push((id, cedar));
    }
    Ok(records)
}

/// The issuer when none is set: the scheme and the (bound) listen address.
pub fn default_issuer(tls: bool, listen: SocketAddr) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{listen}")
}

fn check_issuer(issuer: &str) -> Result<String, String> {
    let bad = |why: &str| format!("CUSTOS_ISSUER: '{issuer}' {why}");
    let url = reqwest::Url::parse(issuer).map_err(|_| bad("is not an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(bad("must be an https (or http) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment (RFC 8414 §2)"));
    }
    if url.host().is_none() {
        return Err(bad("must name a host"));
    }
    Ok(issuer.trim_end_matches('/').to_owned())
}

/// The file path of a SQLite URL.
pub fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then_some(path)
}

/// The SQLite database file of a URL as SQLite opens it (percent-decoded),
/// and whether it is created when missing (no `mode`, or `mode=rwc`).
/// `None` for other engines and in-memory databases.
pub fn sqlite_file(url: &str) -> Option<(PathBuf, bool)> {
    let path = sqlite_path(url)?;
    let params: Vec<&str> = url
        .split_once('?')
        .map(|(_, query)| query.split('&').collect())
        .unwrap_or_default();
    let mode = params.iter().find_map(|kv| {
        kv.split_once('=')
            .filter(|(k, _)| k.eq_ignore_ascii_case("mode"))
            .map(|(_, v)| v.to_ascii_lowercase())
    });
    if path.is_empty() || path == ":memory:" || mode.as_deref() == Some("memory") {
        return None;
    }
    let may_create = matches!(mode.as_deref(), None | Some("rwc"));
    Some((PathBuf::from(percent_decode(path)), may_create))
}

/// `%XX` escapes decoded (as the store and sqlx read the path); anything
/// malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
mod tests;
