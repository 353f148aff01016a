//! Reading `CUSTOS_DATABASE_URL`: which engine, which URL to hand to sqlx,
//! and how to talk about it in messages without leaking the password.

use std::path::Path;

use crate::{Engine, StoreError, StoreResult};

/// Where the store lives, as understood from the configured URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub engine: Engine,
    /// The URL to give the sqlx `Any` driver.
    pub url: String,
    /// A password-free description for messages: the SQLite path or
    /// `host[:port]/database`.
    pub display: String,
}

/// Parses the configured database URL.
///
/// Only the scheme is inspected for PostgreSQL; the driver validates the
/// rest. For SQLite, `mode=rwc` is added unless a `mode` is given, and the
/// file's directory must exist. In-memory SQLite is refused: the `Any`
/// driver would give every pooled connection its own empty database.
pub(crate) fn parse(url: &str) -> StoreResult<Target> {
    let url = url.trim();
    let Some((scheme, _)) = url.split_once(':') else {
        return Err(StoreError::Config(
            "CUSTOS_DATABASE_URL must start with sqlite:// or postgres:// (no scheme found)".into(),
        ));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "sqlite" => parse_sqlite(url),
        "postgres" | "postgresql" => Ok(Target {
            engine: Engine::Postgres,
            url: url.to_owned(),
            display: postgres_display(url),
        }),
        other => Err(StoreError::Config(format!(
            "CUSTOS_DATABASE_URL has unsupported scheme {:?}; use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            truncate(other, 32)
        ))),
    }
}

fn parse_sqlite(url: &str) -> StoreResult<Target> {
    // `sqlite:` is five characters; accept any case of the scheme.
    let rest = &url["sqlite:".len()..];
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, params) = match rest.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (rest, None),
    };
    let params: Vec<&str> = params
        .map(|p| p.split('&').filter(|kv| !kv.is_empty()).collect())
        .unwrap_or_default();
    let memory = path.is_empty()
        || path == ":memory:"
        || params
            .iter()
            .any(|kv| kv.eq_ignore_ascii_case("mode=memory"));
    if memory {
        return Err(StoreError::Config(
            "CUSTOS_DATABASE_URL names an in-memory SQLite database, which is not supported; use sqlite://PATH (a temporary file is fine)".into(),
        ));
    }
    let decoded = percent_decode(path);
    let file = Path::new(&decoded);
    if let Some(dir) = file.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(StoreError::Config(format!(
                "CUSTOS_DATABASE_URL: the directory {} for the SQLite database does not exist; create it first",
                dir.display()
            )));
        }
    }
    let mut params: Vec<String> = params.into_iter().map(str::to_owned).collect();
    if !params
        .iter()
        .any(|kv| kv.to_ascii_lowercase().starts_with("mode="))
    {
        params.push("mode=rwc".into());
    }
    Ok(Target {
        engine: Engine::Sqlite,
        url: format!("sqlite://{path}?{}", params.join("&")),
        display: decoded,
    })
}

/// `host[:port]/database` of a PostgreSQL URL, without user or password.
fn postgres_display(url: &str) -> String {
    let rest = url.split_once("://").map_or("", |(_, rest)| rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    if host_and_db.is_empty() {
        "(default host)".into()
    } else {
        host_and_db.to_owned()
    }
}

/// The password part of a `scheme://user:password@host/…` URL, if any.
fn password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// `url` with its password (if any) replaced by `***`: fit for logs and
/// error messages. The one redaction of database URLs in custos.
pub fn redact_url(url: &str) -> String {
    redact(url, url)
}

/// `text` with every occurrence of the password of `url` (raw and
/// percent-decoded) replaced by `***`.
pub(crate) fn redact(text: &str, url: &str) -> String {
    let Some(raw) = password(url) else {
        return text.to_owned();
    };
    let mut out = text.replace(raw, "***");
    let decoded = percent_decode(raw);
    if !decoded.is_empty() && decoded != raw {
        out = out.replace(&decoded, "***");
    }
    out
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms() {
        let dir = std::env::temp_dir();
        let abs = dir.join("custos-x.db");
        let t = parse(&format!("sqlite://{}", abs.display())).unwrap();
        assert_eq!(t.engine, Engine::Sqlite);
        assert_eq!(t.url, format!("sqlite://{}?mode=rwc", abs.display()));
        let t = parse(&format!("sqlite:{}?mode=ro", abs.display())).unwrap();
        assert_eq!(t.url, format!("sqlite://{}?mode=ro", abs.display()));
        let t = parse("sqlite:custos.db").unwrap();
        assert_eq!(t.url, "sqlite://custos.db?mode=rwc");
        assert_eq!(t.display, "custos.db");
        assert!(matches!(
            parse("sqlite::memory:"),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            parse("sqlite:///definitely/not/here/custos.db"),
            Err(StoreError::Config(m)) if m.contains("/definitely/not/here")
        ));
    }

    #[test]
    fn schemes() {
        assert_eq!(parse("postgresql://h/db").unwrap().engine, Engine::Postgres);
        let err = parse("mysql://u:pw@h/db").unwrap_err().to_string();
        assert!(err.contains("CUSTOS_DATABASE_URL") && err.contains("mysql"));
        assert!(!err.contains("pw"));
        assert!(parse("custos.db").is_err());
    }

    #[test]
    fn redaction() {
        let url = "postgres://custos:s%40cret@db.example:5432/custos?sslmode=require";
        assert_eq!(password(url), Some("s%40cret"));
        assert_eq!(
            redact_url(url),
            "postgres://custos:***@db.example:5432/custos?sslmode=require"
        );
        assert_eq!(redact("bad s@cret here", url), "bad *** here");
        assert_eq!(postgres_display(url), "db.example:5432/custos");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(percent_decode("a%2Fb%zz%"), "a/b%zz%");
    }
}
