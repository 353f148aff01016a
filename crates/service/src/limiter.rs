//! Brute-force brakes: failed attempts at guessable credentials (the admin
//! token, initial access tokens) are counted per source address in fixed
//! windows; past the limit, further attempts from that address are refused
//! until the window ends. Per process: each replica brakes on its own,
//! which bounds an attacker to `replicas × MAX_FAILURES` guesses a window.
//!
//! Client secrets and registration access tokens are 256-bit random and
//! not worth guessing, so the token endpoint is not braked (a shared NAT
//! address must not lock healthy workloads out).

use std::collections::HashMap;
use std::sync::Mutex;

/// Failed attempts allowed per source and window.
pub const MAX_FAILURES: u32 = 10;
/// Window length, seconds.
pub const WINDOW_SECS: i64 = 60;
/// Sources tracked at most; past this the oldest state is dropped.
const MAX_SOURCES: usize = 100_000;

#[derive(Default)]
pub struct FailureLimiter {
    windows: Mutex<HashMap<String, (i64, u32)>>,
}

impl FailureLimiter {
    /// Seconds until `source` may try again, or `None` if it may now.
    pub fn retry_after(&self, source: &str, now: i64) -> Option<i64> {
        let windows = self.windows.lock().ok()?;
        let (start, failures) = windows.get(source)?;
        let remaining = start + WINDOW_SECS - now;
        (*failures >= MAX_FAILURES && remaining > 0).then_some(remaining)
    }

    /// Counts a failed attempt from `source`.
    pub fn record_failure(&self, source: &str, now: i64) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= MAX_SOURCES && !windows.contains_key(source) {
            windows.retain(|_, (start, _)| *start + WINDOW_SECS > now);
            if windows.len() >= MAX_SOURCES {
                windows.clear();
            }
        }
        let entry = windows.entry(source.to_owned()).or_insert((now, 0));
        if entry.0 + WINDOW_SECS <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brakes_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::default();
        for _ in 0..MAX_FAILURES {
            assert_eq!(limiter.retry_after("1.2.3.4", 100), None);
            limiter.record_failure("1.2.3.4", 100);
        }
        assert_eq!(limiter.retry_after("1.2.3.4", 110), Some(50));
        assert_eq!(
            limiter.retry_after("5.6.7.8", 110),
            None,
            "other sources are not braked"
        );
        assert_eq!(limiter.retry_after("1.2.3.4", 160), None, "a new window");
        limiter.record_failure("1.2.3.4", 160);
        assert_eq!(limiter.retry_after("1.2.3.4", 161), None);
    }
}
