//! Rereading the TLS files and swapping in what changed (the rules are in
//! the parent module's documentation).

use super::{load_client_ca, load_identity, server_config, ClientCa, ClientCaRoots};
use crate::config::Tls;
use axum_server::tls_rustls::RustlsConfig;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What one reading of a file showed: its content's SHA-256, or why it
/// could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Seen {
    Content([u8; 32]),
    Unreadable(io::ErrorKind),
}

/// A file read once: its bytes, and what they hash to (so what is loaded
/// is exactly what was compared).
pub(super) struct FileRead {
    pub(super) bytes: io::Result<Vec<u8>>,
    pub(super) seen: Seen,
}

impl FileRead {
    pub(super) fn of(path: &Path) -> FileRead {
        let bytes = std::fs::read(path);
        let seen = match &bytes {
            Ok(bytes) => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(digest.as_ref());
                Seen::Content(sha256)
            }
            Err(e) => Seen::Unreadable(e.kind()),
        };
        FileRead { bytes, seen }
    }
}

/// The two things reloaded, each as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// CUSTOS_TLS_CERT and CUSTOS_TLS_KEY, together.
    Identity,
    /// CUSTOS_TLS_CLIENT_CA.
    ClientCa,
}

/// One part's files: what was loaded, and what became of a change.
#[derive(Clone, Debug)]
struct Tracked {
    loaded: Vec<Seen>,
    /// Failed once; tried again at the next check.
    pending: Option<Vec<Seen>>,
    /// Failed twice and warned about; not tried again until it changes.
    refused: Option<Vec<Seen>>,
}

impl Tracked {
    fn new(loaded: Vec<Seen>) -> Self {
        Tracked {
            loaded,
            pending: None,
            refused: None,
        }
    }

    /// Whether `now` differs from what is loaded and was not refused.
    fn worth_trying(&mut self, now: &[Seen]) -> bool {
        if now == self.loaded.as_slice() {
            // Put back as it was: nothing to do, nothing to warn about.
            self.pending = None;
            self.refused = None;
            return false;
        }
        self.refused.as_deref() != Some(now)
    }

    fn loaded(&mut self, now: Vec<Seen>) {
        *self = Tracked::new(now);
    }

    fn refuse(&mut self, now: Vec<Seen>) {
        self.pending = None;
        self.refused = Some(now);
    }

    /// Records a failure to load `now`; true when it is to be warned about
    /// (the same content failed at the previous check too: not a rotation
    /// caught halfway).
    fn failed(&mut self, now: Vec<Seen>) -> bool {
        if self.pending.as_ref() == Some(&now) {
            self.refuse(now);
            true
        } else {
            self.pending = Some(now);
            false
        }
    }
}

/// What a check did, to be logged.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Event {
    Reloaded(Part),
    /// A change that does not load yet, tried again at the next check.
    Waiting(Part, String),
    /// A change that does not load; the previous one stays.
    Refused(Part, String),
}

impl Event {
    fn log(&self, files: &Tls, roots: &ClientCaRoots) {
        match self {
            Event::Reloaded(Part::Identity) => tracing::info!(
                cert = %files.cert.display(),
                "reloaded CUSTOS_TLS_CERT and CUSTOS_TLS_KEY; new connections use the new certificate"
            ),
            Event::Reloaded(Part::ClientCa) => tracing::info!(
                certificates = roots.current().len(),
                "reloaded CUSTOS_TLS_CLIENT_CA"
            ),
            Event::Waiting(part, why) => tracing::debug!(
                reason = %why,
                "a changed TLS file does not load yet ({}); trying again at the next check",
                part.name()
            ),
            Event::Refused(part, why) => tracing::warn!(
                reason = %why,
                "changed TLS files do not load; keeping the previous {} until they change again",
                part.name()
            ),
        }
    }
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Identity => "certificate and key",
            Part::ClientCa => "client CA",
        }
    }
}

/// Everything a check needs, owned by the reload task.
#[derive(Clone)]
pub(super) struct Watcher {
    files: Tls,
    provider: Arc<CryptoProvider>,
    identity: Arc<CertifiedKey>,
    identity_seen: Tracked,
    client_ca: Option<(ClientCa, Tracked)>,
    config: RustlsConfig,
    roots: ClientCaRoots,
}

impl Watcher {
    pub(super) fn new(
        files: Tls,
        provider: Arc<CryptoProvider>,
        identity: (Arc<CertifiedKey>, Vec<Seen>),
        client_ca: Option<(ClientCa, Seen)>,
        config: RustlsConfig,
        roots: ClientCaRoots,
    ) -> Self {
        Watcher {
            files,
            provider,
            identity: identity.0,
            identity_seen: Tracked::new(identity.1),
            client_ca: client_ca.map(|(ca, seen)| (ca, Tracked::new(vec![seen]))),
            config,
            roots,
        }
    }

    /// Reads the files once and swaps in what changed and loads.
    pub(super) fn check(&mut self) -> Vec<Event> {
        let mut events = Vec::new();

        let cert = FileRead::of(&self.files.cert);
        let key = FileRead::of(&self.files.key);
        let seen = vec![cert.seen.clone(), key.seen.clone()];
        let mut identity = None;
        if self.identity_seen.worth_trying(&seen) {
            match load_identity(&self.files, &cert.bytes, &key.bytes, &self.provider) {
                Ok(loaded) => identity = Some((loaded, seen)),
                Err(why) => {
                    events.push(failure(&mut self.identity_seen, seen, Part::Identity, why))
                }
            }
        }
        drop(key); // its bytes are not kept

        let mut client_ca = None;
        if let (Some(path), Some((_, tracked))) = (&self.files.client_ca, &mut self.client_ca) {
            let read = FileRead::of(path);
            let seen = vec![read.seen.clone()];
            if tracked.worth_trying(&seen) {
                match load_client_ca(path, &read.bytes) {
                    Ok(loaded) => client_ca = Some((loaded, seen)),
                    Err(why) => events.push(failure(tracked, seen, Part::ClientCa, why)),
                }
            }
        }

        if identity.is_none() && client_ca.is_none() {
            return events;
        }
        let new_identity = identity.as_ref().map_or(&self.identity, |(i, _)| i);
        let new_ca = match &client_ca {
            Some((ca, _)) => Some(ca),
            None => self.client_ca.as_ref().map(|(ca, _)| ca),
        };
        let previous = self.config.get_inner();
        let config = match server_config(&self.provider, new_identity, new_ca, Some(&previous)) {
            Ok(config) => config,
            Err(why) => {
                // Not expected once both parts loaded; keep what serves.
                if let Some((_, seen)) = identity {
                    self.identity_seen.refuse(seen);
                    events.push(Event::Refused(Part::Identity, why.clone()));
                }
                if let (Some((_, seen)), Some((_, tracked))) = (client_ca, &mut self.client_ca) {
                    tracked.refuse(seen);
                    events.push(Event::Refused(Part::ClientCa, why));
                }
                return events;
            }
        };
        self.config.reload_from_config(Arc::new(config));
        if let Some((loaded, seen)) = identity {
            self.identity = loaded;
            self.identity_seen.loaded(seen);
            events.push(Event::Reloaded(Part::Identity));
        }
        if let (Some((loaded, seen)), Some((ca, tracked))) = (client_ca, &mut self.client_ca) {
            self.roots.replace(loaded.ders.clone());
            *ca = loaded;
            tracked.loaded(seen);
            events.push(Event::Reloaded(Part::ClientCa));
        }
        events
    }
}

fn failure(tracked: &mut Tracked, seen: Vec<Seen>, part: Part, why: String) -> Event {
    if tracked.failed(seen) {
        Event::Refused(part, why)
    } else {
        Event::Waiting(part, why)
    }
}

/// Checks every `every` until aborted. The files are read off the async
/// workers; what a check did is logged here.
pub(super) async fn run(mut watcher: Watcher, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and the files were just loaded.
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let checked = tokio::task::spawn_blocking(move || {
            let events = watcher.check();
            (watcher, events)
        })
        .await;
        let events;
        (watcher, events) = match checked {
            Ok(checked) => checked,
            Err(e) => {
                tracing::error!(error = %e, "TLS file reloading stopped");
                return;
            }
        };
        for event in &events {
            event.log(&watcher.files, &watcher.roots);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(byte: u8) -> Vec<Seen> {
        vec![Seen::Content([byte; 32])]
    }

    #[test]
    fn a_change_that_fails_twice_is_refused_until_it_changes() {
        let mut tracked = Tracked::new(seen(0));
        assert!(!tracked.worth_trying(&seen(0)), "unchanged");
        assert!(tracked.worth_trying(&seen(1)));
        assert!(
            !tracked.failed(seen(1)),
            "first failure: maybe half-written"
        );
        assert!(tracked.worth_trying(&seen(1)), "tried again");
        assert!(tracked.failed(seen(1)), "second failure: warned");
        assert!(
            !tracked.worth_trying(&seen(1)),
            "not tried (nor warned) again"
        );
        assert!(tracked.worth_trying(&seen(2)), "a new change is tried");
        assert!(!tracked.failed(seen(2)));
        assert!(tracked.worth_trying(&seen(3)));
        assert!(
            !tracked.failed(seen(3)),
            "a file still being written is not warned about"
        );
        tracked.loaded(seen(3));
        assert!(!tracked.worth_trying(&seen(3)));
    }

    #[test]
    fn putting_the_loaded_files_back_forgets_the_refusal() {
        let mut tracked = Tracked::new(seen(0));
        tracked.failed(seen(1));
        tracked.failed(seen(1));
        assert!(!tracked.worth_trying(&seen(0)));
        assert!(tracked.worth_trying(&seen(1)), "refusal forgotten");
    }
}
