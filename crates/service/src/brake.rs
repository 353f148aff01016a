//! Brute-force brakes: failed attempts at guessable credentials (the admin
//! token, initial access tokens, registration access tokens) are counted
//! per source address in fixed windows; past the limit, further attempts
//! from that address are refused until the window ends, and the refusal
//! says when that is. Per process: each replica brakes on its own, which
//! bounds an attacker to `replicas × MAX_FAILURES` guesses a window.
//!
//! Client secrets are 256-bit random and not worth guessing, so the token
//! endpoint is not braked (a shared NAT address must not lock healthy
//! workloads out).
//!
//! The windows live in a moka cache: bounded in entries, and an entry goes
//! by itself once its window is long over.

use moka::ops::compute::Op;
use std::time::Duration;

/// Failed attempts allowed per source and window.
pub const MAX_FAILURES: u32 = 10;
/// Window length, seconds.
pub const WINDOW_SECS: i64 = 60;
/// Sources tracked at most.
const MAX_SOURCES: u64 = 100_000;

/// A window: when it started (seconds) and the failures counted in it.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    failures: u32,
}

pub struct Brake {
    windows: moka::sync::Cache<String, Window>,
}

impl Default for Brake {
    fn default() -> Self {
        Brake {
            windows: moka::sync::Cache::builder()
                .max_capacity(MAX_SOURCES)
                .time_to_live(Duration::from_secs(2 * WINDOW_SECS as u64))
                .build(),
        }
    }
}

impl Brake {
    /// Seconds until `source` may try again, or `None` if it may now.
    pub fn retry_after(&self, source: &str, now: i64) -> Option<u64> {
        let window = self.windows.get(source)?;
        let remaining = window.start + WINDOW_SECS - now;
        (window.failures >= MAX_FAILURES && remaining > 0).then_some(remaining as u64)
    }

    /// Counts an attempt from `source` before it is checked, atomically:
    /// `Some(seconds)` (and nothing counted) when `source` is braked, else
    /// the attempt counts now — so concurrent attempts, or one whose caller
    /// goes away mid-check, cannot slip past the limit. Call
    /// [`Brake::forget`] when the attempt succeeds.
    pub fn attempt(&self, source: &str, now: i64) -> Option<u64> {
        let mut refused = None;
        self.windows
            .entry_by_ref(source)
            .and_compute_with(|existing| {
                let current = existing.map(|e| e.into_value());
                match current {
                    Some(w) if w.start + WINDOW_SECS > now && w.failures >= MAX_FAILURES => {
                        refused = Some((w.start + WINDOW_SECS - now) as u64);
                        Op::Nop
                    }
                    Some(w) if w.start + WINDOW_SECS > now => Op::Put(Window {
                        start: w.start,
                        failures: w.failures + 1,
                    }),
                    _ => Op::Put(Window {
                        start: now,
                        failures: 1,
                    }),
                }
            });
        refused
    }

    /// Takes back one attempt counted by [`Brake::attempt`] (it succeeded:
    /// a busy address's good attempts do not brake it).
    pub fn credit(&self, source: &str) {
        self.windows
            .entry_by_ref(source)
            .and_compute_with(|existing| match existing.map(|e| e.into_value()) {
                Some(w) => Op::Put(Window {
                    start: w.start,
                    failures: w.failures.saturating_sub(1),
                }),
                None => Op::Nop,
            });
    }

    /// Forgets `source`'s attempts (it succeeded).
    pub fn forget(&self, source: &str) {
        self.windows.invalidate(source);
    }

    /// Counts a failed attempt from `source` at `now` (seconds).
    pub fn record_failure(&self, source: &str, now: i64) {
        self.windows
            .entry_by_ref(source)
            .and_compute_with(|existing| {
                let window = match existing.map(|e| e.into_value()) {
                    Some(w) if w.start + WINDOW_SECS > now => Window {
                        start: w.start,
                        failures: w.failures.saturating_add(1),
                    },
                    _ => Window {
                        start: now,
                        failures: 1,
                    },
                };
                Op::Put(window)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_before_they_are_checked() {
        let brake = Brake::default();
        for _ in 0..MAX_FAILURES {
            assert_eq!(brake.attempt("a", 100), None);
        }
        assert_eq!(brake.attempt("a", 110), Some(50), "the eleventh is refused");
        assert_eq!(brake.attempt("a", 160), None, "a new window");
        brake.forget("a");
        for _ in 0..MAX_FAILURES {
            assert_eq!(brake.attempt("a", 161), None);
        }
    }

    #[test]
    fn brakes_after_the_limit_until_the_window_ends() {
        let brake = Brake::default();
        for _ in 0..MAX_FAILURES {
            assert_eq!(brake.retry_after("1.2.3.4", 100), None);
            brake.record_failure("1.2.3.4", 100);
        }
        assert_eq!(brake.retry_after("1.2.3.4", 110), Some(50));
        assert_eq!(
            brake.retry_after("5.6.7.8", 110),
            None,
            "other sources are not braked"
        );
        assert_eq!(brake.retry_after("1.2.3.4", 160), None, "a new window");
        brake.record_failure("1.2.3.4", 160);
        assert_eq!(brake.retry_after("1.2.3.4", 161), None);
    }
}
