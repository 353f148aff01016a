//! Collapsing refusals of unauthenticated callers in the audit trail.
//!
//! Every refused token request is audited, but a caller without
//! credentials must not be able to make custos store without bound: a
//! flood of made-up client ids would otherwise write one row each. Per
//! source address and claimed client, the first refusals of a window are
//! recorded in full (one for unknown clients, a few for known ones, whose
//! failed attempts matter more); the rest are only counted, and one
//! summary event per window says how many there were. Per process, bounded:
//! past [`MAX_WINDOWS`] open windows, new keys share one overflow window.

use custos_governance::AuditEvent;
use std::collections::HashMap;
use std::sync::Mutex;

/// Window length, milliseconds.
pub const WINDOW_MS: i64 = 60_000;
/// Open windows at most (each holds one event of bounded size).
const MAX_WINDOWS: usize = 10_000;
/// The key every window past [`MAX_WINDOWS`] shares.
const OVERFLOW: (&str, &str) = ("*", "*");

struct Window {
    start_ms: i64,
    /// Refusals seen in this window, recorded or not.
    seen: u64,
    /// How many of them were recorded in full.
    recorded: u64,
    /// The first refusal, the model for the summary.
    first: AuditEvent,
}

#[derive(Default)]
pub(crate) struct RefusalCollapser {
    windows: Mutex<HashMap<(String, String), Window>>,
}

impl RefusalCollapser {
    /// Counts `event` and says whether to record it in full: true for the
    /// first `in_full` refusals of its window.
    pub fn admit(&self, source: &str, client: &str, in_full: u64, event: &AuditEvent) -> bool {
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        let now = event.time_ms;
        let mut key = (source.to_owned(), client.to_owned());
        if !windows.contains_key(&key) && windows.len() >= MAX_WINDOWS {
            key = (OVERFLOW.0.to_owned(), OVERFLOW.1.to_owned());
        }
        let window = windows.entry(key).or_insert_with(|| Window {
            start_ms: now,
            seen: 0,
            recorded: 0,
            first: event.clone(),
        });
        window.seen += 1;
        if window.recorded < in_full {
            window.recorded += 1;
            true
        } else {
            false
        }
    }

    /// Closes the windows that ended by `now_ms` and returns one summary
    /// event for each that counted refusals it did not record.
    pub fn close_ended(&self, now_ms: i64) -> Vec<AuditEvent> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        let mut summaries = Vec::new();
        windows.retain(|(source, _), window| {
            if window.start_ms + WINDOW_MS > now_ms {
                return true;
            }
            let unrecorded = window.seen - window.recorded;
            if unrecorded > 0 {
                let mut summary = window.first.clone();
                summary.time_ms = now_ms.min(window.start_ms + WINDOW_MS);
                if source == OVERFLOW.0 {
                    summary.client_id = None;
                    summary.source_addr = None;
                }
                summary.reason = Some(format!(
                    "{unrecorded} more refusals like this from this source in the {} s from {} (collapsed; first: {})",
                    WINDOW_MS / 1000,
                    window.start_ms / 1000,
                    window.first.reason.as_deref().unwrap_or("refused"),
                ));
                summaries.push(summary);
            }
            false
        });
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_governance::Outcome;

    fn refusal(at: i64, client: &str) -> AuditEvent {
        let mut event = AuditEvent::new("token.refused", at, Outcome::Failure);
        event.client_id = Some(client.into());
        event.reason = Some("invalid_client: client authentication failed".into());
        event
    }

    #[test]
    fn one_event_in_full_then_one_counted_summary_per_window() {
        let collapser = RefusalCollapser::default();
        let admitted = (0..1000)
            .filter(|i| collapser.admit("1.2.3.4", "", 1, &refusal(1_000 + i, "x")))
            .count();
        assert_eq!(admitted, 1);
        assert!(collapser.close_ended(1_000 + WINDOW_MS - 1).is_empty());
        let summaries = collapser.close_ended(1_000 + WINDOW_MS);
        assert_eq!(summaries.len(), 1);
        assert!(summaries[0]
            .reason
            .as_deref()
            .unwrap()
            .starts_with("999 more refusals"));
        assert!(collapser.close_ended(10 * WINDOW_MS).is_empty());
        assert!(collapser.admit("1.2.3.4", "", 1, &refusal(10 * WINDOW_MS, "x")));
    }

    #[test]
    fn sources_and_clients_have_their_own_windows_and_quota() {
        let collapser = RefusalCollapser::default();
        assert!(collapser.admit("a", "c1", 2, &refusal(0, "c1")));
        assert!(collapser.admit("a", "c1", 2, &refusal(1, "c1")));
        assert!(!collapser.admit("a", "c1", 2, &refusal(2, "c1")));
        assert!(collapser.admit("b", "c1", 2, &refusal(3, "c1")));
        assert!(collapser.admit("a", "c2", 2, &refusal(4, "c2")));
        // A window with nothing left unrecorded closes without a summary.
        assert_eq!(collapser.close_ended(WINDOW_MS + 10).len(), 1);
    }

    #[test]
    fn windows_are_bounded() {
        let collapser = RefusalCollapser::default();
        for i in 0..(MAX_WINDOWS + 5_000) {
            collapser.admit(
                &format!("10.0.{}.{}", i / 256, i % 256),
                "",
                1,
                &refusal(0, "x"),
            );
        }
        assert!(collapser.windows.lock().unwrap().len() <= MAX_WINDOWS + 1);
        let summaries = collapser.close_ended(WINDOW_MS);
        assert_eq!(
            summaries.len(),
            1,
            "only the overflow window counted extra refusals"
        );
        assert_eq!(summaries[0].source_addr, None);
    }
}
