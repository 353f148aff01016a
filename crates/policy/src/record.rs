//! Policy records: what an operator stores, checked before it is stored.
//!
//! A record is `{ id, cedar }`: an id and Cedar policy-set text holding one
//! or more `permit`/`forbid` policies. Each policy gets the id decisions
//! report:
//!
//! - `<record id>` when the record holds one policy;
//! - `<record id>#<n>` when it holds several (`n` is the policy's 0-based
//!   position in the text);
//! - `<record id>/<name>` for a policy annotated `@id("<name>")`, whatever
//!   the number of policies.

use std::collections::HashSet;
use std::str::FromStr;

use cedar_policy::{PolicyId, ValidationMode};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};

use crate::error::{truncate, PolicyError, PolicyErrorKind};
use crate::{limits, schema};

/// The longest record id (and `@id` name), in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// The largest Cedar text one record may hold, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// How many of Cedar's errors a message quotes (the rest are counted).
const MAX_QUOTED_ERRORS: usize = 3;

/// How long one quoted error may be, in bytes.
const MAX_ONE_ERROR_BYTES: usize = 280;

/// A stored policy record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub id: String,
    pub cedar: String,
}

impl PolicyRecord {
    pub fn new(id: impl Into<String>, cedar: impl Into<String>) -> Self {
        PolicyRecord {
            id: id.into(),
            cedar: cedar.into(),
        }
    }
}

/// Anything that reads as a policy record: `(id, cedar)` pairs of strings,
/// [`PolicyRecord`], and references to either.
pub trait AsRecord {
    fn record_id(&self) -> &str;
    fn record_cedar(&self) -> &str;
}

impl<A: AsRef<str>, B: AsRef<str>> AsRecord for (A, B) {
    fn record_id(&self) -> &str {
        self.0.as_ref()
    }
    fn record_cedar(&self) -> &str {
        self.1.as_ref()
    }
}

impl AsRecord for PolicyRecord {
    fn record_id(&self) -> &str {
        &self.id
    }
    fn record_cedar(&self) -> &str {
        &self.cedar
    }
}

impl<T: AsRecord + ?Sized> AsRecord for &T {
    fn record_id(&self) -> &str {
        (**self).record_id()
    }
    fn record_cedar(&self) -> &str {
        (**self).record_cedar()
    }
}

/// A policy's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Permit,
    Forbid,
}

/// One policy of an accepted record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// The id decisions report for this policy.
    pub id: String,
    pub effect: Effect,
}

/// What an accepted record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordSummary {
    pub id: String,
    /// In the order of the text.
    pub policies: Vec<PolicySummary>,
    /// Cedar's validation warnings (the record is accepted regardless),
    /// bounded like error messages.
    pub warnings: Vec<String>,
}

/// Whether `id` may name a record: 1 to 128 bytes of `[A-Za-z0-9._:-]`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Parses `cedar` and validates it against [`crate::SCHEMA`] in strict
/// mode, as the record `id`. The error's message says why, with Cedar's
/// reason and its line and column, bounded for an `error_description`.
pub fn check_record(id: &str, cedar: &str) -> Result<RecordSummary, PolicyError> {
    compile_record(id, cedar).map(|compiled| compiled.summary)
}

/// A checked record: its summary and its policies under their final ids.
pub(crate) struct CompiledRecord {
    pub(crate) summary: RecordSummary,
    pub(crate) policies: Vec<cedar_policy::Policy>,
}

pub(crate) fn compile_record(id: &str, cedar: &str) -> Result<CompiledRecord, PolicyError> {
    if !is_valid_id(id) {
        return Err(PolicyError::new(
            PolicyErrorKind::InvalidId,
            None,
            format!(
                "a policy record id must be 1 to {MAX_ID_BYTES} bytes of letters, digits, \
                 `.`, `_`, `:` and `-` (got {})",
                quoted(id)
            ),
        ));
    }
    let fail = |kind, message: String| PolicyError::new(kind, Some(id), message);
    if cedar.len() > MAX_RECORD_BYTES {
        return Err(fail(
            PolicyErrorKind::TooLarge,
            format!(
                "the text is {} bytes; a record holds at most {MAX_RECORD_BYTES}",
                cedar.len()
            ),
        ));
    }
    limits::check(cedar).map_err(|e| {
        fail(
            PolicyErrorKind::TooComplex,
            format!("{} (line {}, column {})", e.what, e.line, e.column),
        )
    })?;
    let compiled = schema::compiled().map_err(|e| fail(PolicyErrorKind::Internal, e.to_owned()))?;

    let parsed = cedar_policy::PolicySet::from_str(cedar).map_err(|errors| {
        let described: Vec<String> = errors.iter().map(|e| describe(e, cedar)).collect();
        fail(
            PolicyErrorKind::Parse,
            join_errors("does not parse", described),
        )
    })?;

    // Cedar names the policies of a parsed text `policy0`, `policy1`, … in
    // the order of the text, templates included (documented on
    // `PolicySet::from_str`).
    let mut entries: Vec<(usize, Entry<'_>)> = Vec::new();
    for policy in parsed.policies() {
        let n = position(policy.id()).ok_or_else(|| {
            fail(
                PolicyErrorKind::Internal,
                format!("Cedar named a policy `{}`", policy.id()),
            )
        })?;
        entries.push((n, Entry::Policy(policy)));
    }
    for template in parsed.templates() {
        let n = position(template.id()).ok_or_else(|| {
            fail(
                PolicyErrorKind::Internal,
                format!("Cedar named a template `{}`", template.id()),
            )
        })?;
        entries.push((n, Entry::Template(template.to_string())));
    }
    entries.sort_by_key(|(n, _)| *n);
    if entries.is_empty() {
        return Err(fail(
            PolicyErrorKind::Empty,
            "holds no policy (write at least one `permit` or `forbid`)".to_owned(),
        ));
    }

    let lines = policy_lines(cedar, &entries);
    let count = entries.len();
    let mut policies = Vec::with_capacity(count);
    let mut summaries: Vec<PolicySummary> = Vec::with_capacity(count);
    for ((n, entry), line) in entries.iter().zip(&lines) {
        let at = match line {
            Some(line) => format!("the policy at line {line} (#{n})"),
            None => format!("policy #{n}"),
        };
        let policy = match entry {
            Entry::Template(_) => {
                return Err(fail(
                    PolicyErrorKind::Template,
                    format!(
                        "{at} is a template (it uses `?principal` or `?resource`); templates \
                         are not supported: name the entity in the policy instead"
                    ),
                ))
            }
            Entry::Policy(policy) => *policy,
        };
        let policy_id = match policy.annotation("id") {
            Some(name) if is_valid_id(name) => format!("{id}/{name}"),
            Some(name) => {
                return Err(fail(
                    PolicyErrorKind::InvalidName,
                    format!(
                        "{at} has @id({}); a name must be 1 to {MAX_ID_BYTES} bytes of \
                         letters, digits, `.`, `_`, `:` and `-`",
                        quoted(name)
                    ),
                ))
            }
            None if count == 1 => id.to_owned(),
            None => format!("{id}#{n}"),
        };
        if summaries.iter().any(|s| s.id == policy_id) {
            return Err(fail(
                PolicyErrorKind::DuplicateId,
                format!("{at} has the id `{policy_id}` of an earlier policy; give it another @id"),
            ));
        }
        let effect = match policy.effect() {
            cedar_policy::Effect::Permit => Effect::Permit,
            cedar_policy::Effect::Forbid => Effect::Forbid,
        };
        policies.push(policy.new_id(PolicyId::new(&policy_id)));
        summaries.push(PolicySummary {
            id: policy_id,
            effect,
        });
    }

    let mut set = cedar_policy::PolicySet::new();
    for policy in &policies {
        set.add(policy.clone()).map_err(|e| {
            fail(
                PolicyErrorKind::Internal,
                format!("Cedar refused a policy: {e}"),
            )
        })?;
    }
    let result = compiled.validator.validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        // The validator checks a policy once per action it may apply to,
        // so one mistake is often reported once per grant: keep the first
        // report of each place in the text.
        let mut places = HashSet::new();
        let described: Vec<String> = result
            .validation_errors()
            .filter(|e| places.insert((e.policy_id().to_string(), first_offset(*e))))
            .map(|e| describe(e, cedar))
            .collect();
        return Err(fail(
            PolicyErrorKind::Validation,
            join_errors("does not validate against the custos schema", described),
        ));
    }
    let warnings = result
        .validation_warnings()
        .take(MAX_QUOTED_ERRORS)
        .map(|w| describe(w, cedar))
        .collect();
    Ok(CompiledRecord {
        summary: RecordSummary {
            id: id.to_owned(),
            policies: summaries,
            warnings,
        },
        policies,
    })
}

enum Entry<'a> {
    Policy(&'a cedar_policy::Policy),
    /// The template's text (its position is all we report).
    Template(String),
}

impl Entry<'_> {
    fn text(&self) -> String {
        match self {
            Entry::Policy(p) => p.to_string(),
            Entry::Template(t) => t.clone(),
        }
    }
}

/// `policy<n>` → `n`.
fn position(id: &PolicyId) -> Option<usize> {
    AsRef::<str>::as_ref(id)
        .strip_prefix("policy")?
        .parse()
        .ok()
}

/// The line each policy starts on, found by looking for its text (Cedar
/// displays a parsed policy as the exact text it was parsed from) after the
/// previous one. `None` where the text is not found.
fn policy_lines(cedar: &str, entries: &[(usize, Entry<'_>)]) -> Vec<Option<usize>> {
    let mut cursor = 0;
    entries
        .iter()
        .map(|(_, entry)| {
            let text = entry.text();
            let found = cedar.get(cursor..)?.find(text.as_str())? + cursor;
            cursor = found + text.len();
            Some(line_col(cedar, found).0)
        })
        .collect()
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Where a diagnostic points, as a byte offset.
fn first_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
}

/// One Cedar diagnostic as text: its message, where it points (when it
/// points into `text`), and its help.
fn describe(diagnostic: &dyn Diagnostic, text: &str) -> String {
    let mut out = diagnostic.to_string();
    if let Some(offset) = first_offset(diagnostic) {
        if offset <= text.len() {
            let (line, column) = line_col(text, offset);
            out.push_str(&format!(" (line {line}, column {column})"));
        }
    }
    if let Some(help) = diagnostic.help() {
        out.push_str(&format!("; help: {help}"));
    }
    truncate(out, MAX_ONE_ERROR_BYTES)
}

fn join_errors(what: &str, described: Vec<String>) -> String {
    let total = described.len();
    let mut out = format!("{what}: ");
    out.push_str(
        &described
            .into_iter()
            .take(MAX_QUOTED_ERRORS)
            .collect::<Vec<_>>()
            .join("; "),
    );
    if total > MAX_QUOTED_ERRORS {
        out.push_str(&format!(" (and {} more)", total - MAX_QUOTED_ERRORS));
    }
    out
}

/// `s` quoted and escaped for a message, cut to 64 characters.
fn quoted(s: &str) -> String {
    let cut: String = s.chars().take(64).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    format!("{cut:?}{more}")
}

#[cfg(test)]
mod tests;
