//! The files `custos serve` keeps beside the database: the key encryption
//! key file, and the SQLite database made private.

use crate::config::KekSource;
use custos_service::crypto::MasterKey;
use std::path::Path;

pub(super) fn check_sqlite_dir(path: &str) -> Result<(), String> {
    let parent = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty());
    match parent {
        Some(dir) if !dir.is_dir() => Err(format!(
            "CUSTOS_DATABASE_URL: directory {} does not exist",
            dir.display()
        )),
        _ => Ok(()),
    }
}

/// Something about the key file worth telling the operator, said only
/// once the server has started (a failed start prints one line).
pub(super) enum KekNote {
    Created(std::path::PathBuf),
    ReadableByOthers(std::path::PathBuf),
}

impl KekNote {
    pub(super) fn log(&self) {
        match self {
            KekNote::Created(path) => tracing::info!(
                path = %path.display(),
                "created a key encryption key file; back it up with the database"
            ),
            KekNote::ReadableByOthers(path) => tracing::warn!(
                path = %path.display(),
                "the key file is readable by others; chmod 600 it"
            ),
        }
    }
}

/// The key encryption key: given, or read from (first start: created in)
/// a 0600 file beside the SQLite database.
pub(super) fn load_kek(source: &KekSource) -> Result<(String, Option<KekNote>), String> {
    let path = match source {
        KekSource::Value(value) => return Ok((value.clone(), None)),
        KekSource::File(path) => path,
    };
    let setting = "CUSTOS_KEY_ENCRYPTION_KEY";
    if path.exists() {
        #[cfg(unix)]
        let note = {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path)
                .is_ok_and(|meta| meta.permissions().mode() & 0o077 != 0)
                .then(|| KekNote::ReadableByOthers(path.clone()))
        };
        #[cfg(not(unix))]
        let note = None;
        return std::fs::read_to_string(path)
            .map(|s| (s.trim().to_owned(), note))
            .map_err(|e| format!("{setting}: cannot read key file {}: {e}", path.display()));
    }
    let secret = MasterKey::generate_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .map_err(|e| format!("{setting}: cannot create key file {}: {e}", path.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{setting}: cannot write key file {}: {e}", path.display()))?;
    Ok((secret, Some(KekNote::Created(path.clone()))))
}

/// Something about the database files worth telling the operator, said
/// once the server has started.
pub(super) enum DbNote {
    Narrowed(Vec<std::path::PathBuf>),
    CannotNarrow(std::path::PathBuf, String),
}

impl DbNote {
    pub(super) fn log(&self) {
        match self {
            DbNote::Narrowed(paths) => {
                for path in paths {
                    tracing::warn!(
                        path = %path.display(),
                        "the database file was readable by group or others; changed its mode to 0600"
                    );
                }
            }
            DbNote::CannotNarrow(path, error) => tracing::warn!(
                path = %path.display(),
                error = %error,
                "the database file is readable by group or others and its mode could not be changed; chmod 600 it"
            ),
        }
    }
}

/// The SQLite database holds secret and password hashes, so its file is
/// made private before the store opens it: created with mode 0600 when
/// missing (SQLite gives the -wal and -shm files the database file's mode),
/// narrowed to 0600 (with its -wal and -shm files) when group or others
/// may read it.
#[cfg(unix)]
pub(super) fn private_sqlite_file(path: &Path, may_create: bool) -> Result<Option<DbNote>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(narrow_sqlite_files(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !may_create {
                return Ok(None);
            }
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(_) => Ok(None),
                // Another replica was quicker.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(narrow_sqlite_files(path))
                }
                Err(e) => Err(format!(
                    "CUSTOS_DATABASE_URL: cannot create {}: {e}",
                    path.display()
                )),
            }
        }
        Err(e) => Err(format!(
            "CUSTOS_DATABASE_URL: cannot read {}: {e}",
            path.display()
        )),
    }
}

#[cfg(not(unix))]
pub(super) fn private_sqlite_file(
    _path: &Path,
    _may_create: bool,
) -> Result<Option<DbNote>, String> {
    Ok(None)
}

#[cfg(unix)]
pub(super) fn narrow_sqlite_files(path: &Path) -> Option<DbNote> {
    use std::os::unix::fs::PermissionsExt;
    let mut narrowed = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 == 0 {
            continue;
        }
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => narrowed.push(file),
            Err(e) => return Some(DbNote::CannotNarrow(file, e.to_string())),
        }
    }
    (!narrowed.is_empty()).then_some(DbNote::Narrowed(narrowed))
}
