//! Why a policy record was refused, in words fit for an HTTP 400
//! `error_description`.

/// What kind of problem a [`PolicyError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The record id is empty, too long or has a character outside
    /// `[A-Za-z0-9._:-]`.
    InvalidId,
    /// Two records share an id (when compiling a set).
    DuplicateRecord,
    /// The record holds no policy.
    Empty,
    /// The record's text is larger than [`crate::MAX_RECORD_BYTES`].
    TooLarge,
    /// A policy nests too deeply or holds too many operators (see
    /// [`crate::MAX_NESTING`]); Cedar's parser would overflow the stack.
    TooComplex,
    /// Cedar could not parse the text.
    Parse,
    /// The text holds a template (`?principal` or `?resource`).
    Template,
    /// An `@id("…")` annotation names the policy with an invalid name.
    InvalidName,
    /// Two policies of the record end up with the same id.
    DuplicateId,
    /// The policies do not validate against [`crate::SCHEMA`] (strict mode).
    Validation,
    /// A bug: the built-in schema did not parse, or Cedar refused what it
    /// had accepted. Never the operator's fault.
    Internal,
}

/// A refused policy record. `Display` is the bounded, human-readable
/// message (at most [`MAX_MESSAGE_BYTES`]), naming the record when its id
/// is valid and giving Cedar's reason with its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    kind: PolicyErrorKind,
    record: Option<String>,
    message: String,
}

/// The longest message a [`PolicyError`] carries, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

impl PolicyError {
    pub(crate) fn new(kind: PolicyErrorKind, record: Option<&str>, message: String) -> Self {
        let message = match record {
            Some(id) => format!("policy record `{id}`: {message}"),
            None => message,
        };
        PolicyError {
            kind,
            record: record.map(str::to_owned),
            message: truncate(message, MAX_MESSAGE_BYTES),
        }
    }

    pub fn kind(&self) -> PolicyErrorKind {
        self.kind
    }

    /// The id of the record at fault, when it was a valid id.
    pub fn record(&self) -> Option<&str> {
        self.record.as_deref()
    }

    /// The message (the same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut
/// with `…`.
pub(crate) fn truncate(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let ellipsis = '…';
    let mut end = max.saturating_sub(ellipsis.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push(ellipsis);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_keeps_char_boundaries_and_bound() {
        let s = "é".repeat(600);
        let t = truncate(s, 101);
        assert!(t.len() <= 101);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short".to_owned(), 10), "short");
    }

    #[test]
    fn message_is_bounded_and_names_the_record() {
        let e = PolicyError::new(PolicyErrorKind::Parse, Some("r1"), "x".repeat(5000));
        assert!(e.to_string().len() <= MAX_MESSAGE_BYTES);
        assert!(e.to_string().starts_with("policy record `r1`: "));
        assert_eq!(e.record(), Some("r1"));
        assert_eq!(e.kind(), PolicyErrorKind::Parse);
    }
}
