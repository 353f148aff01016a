//! The compiled policy set and its decisions.

use std::collections::{HashMap, HashSet};

use cedar_policy::{AuthorizationError, Authorizer};
use serde::{Deserialize, Serialize};

use crate::error::{truncate, PolicyError, PolicyErrorKind};
use crate::index::Index;
use crate::record::{compile_record, AsRecord, Effect, PolicySummary, RecordSummary};
use crate::request::{self, Request};
use crate::schema;

/// At most this many evaluation errors are reported per decision.
pub const MAX_DECISION_ERRORS: usize = 8;

/// How long one reported evaluation error may be, in bytes.
const MAX_DECISION_ERROR_BYTES: usize = 256;

/// Every record's policies, compiled.
///
/// A decision evaluates only the policies that could match the request
/// (see the `index` module: by grant, by the client or resource a scope
/// names, and by the first test of a `when` clause); the answer is the
/// same as Cedar's over the whole set.
#[derive(Debug, Clone)]
pub struct PolicySet {
    index: Index,
    effects: HashMap<String, Effect>,
    records: Vec<RecordSummary>,
    authorizer: Authorizer,
}

/// The answer to one [`Request`].
///
/// Cedar's semantics: denied unless some `permit` matches and no `forbid`
/// does. On top of them, a `forbid` whose evaluation fails denies (fails
/// closed) rather than being skipped, so no evaluation error can allow a
/// request; a `permit` whose evaluation fails is skipped, as in Cedar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// The ids of the policies that decided, sorted: the permits that
    /// matched when allowed; the forbids that matched (or failed) when
    /// denied. Empty when denied because no permit matched.
    pub determining: Vec<String>,
    /// Evaluation errors (at most [`MAX_DECISION_ERRORS`], each bounded),
    /// each naming its policy.
    pub errors: Vec<String>,
}

impl Decision {
    /// A short phrase saying why: "allowed by policy x", "denied by policy
    /// a, b" or "no policy permits this request".
    pub fn reason(&self) -> String {
        match (self.allowed, self.determining.is_empty()) {
            (true, _) => format!("allowed by policy {}", self.determining.join(", ")),
            (false, false) => format!("denied by policy {}", self.determining.join(", ")),
            (false, true) => "no policy permits this request".to_owned(),
        }
    }

    fn refused(error: String) -> Decision {
        Decision {
            allowed: false,
            determining: Vec::new(),
            errors: vec![truncate(error, MAX_DECISION_ERROR_BYTES)],
        }
    }
}

impl PolicySet {
    /// An empty set: it denies everything.
    pub fn empty() -> Self {
        PolicySet {
            index: Index::default(),
            effects: HashMap::new(),
            records: Vec::new(),
            authorizer: Authorizer::new(),
        }
    }

    /// Checks every record as [`crate::check_record`] does and builds one
    /// set from all of them. The error names the record at fault; two
    /// records with the same id are refused.
    pub fn compile<R: AsRecord>(records: impl IntoIterator<Item = R>) -> Result<Self, PolicyError> {
        let schema = schema::compiled()
            .map_err(|e| PolicyError::new(PolicyErrorKind::Internal, None, e.to_owned()))?;
        let mut out = PolicySet::empty();
        let mut seen = HashSet::new();
        for record in records {
            let id = record.record_id();
            let compiled = compile_record(id, record.record_cedar())?;
            if !seen.insert(id.to_owned()) {
                return Err(PolicyError::new(
                    PolicyErrorKind::DuplicateRecord,
                    Some(id),
                    "another record has the same id".to_owned(),
                ));
            }
            for policy in &compiled.policies {
                // Ids are unique: within a record by `compile_record`, and
                // across records because record ids are unique and hold
                // neither `#` nor `/`.
                out.index.add(policy, &schema.actions).map_err(|e| {
                    PolicyError::new(
                        PolicyErrorKind::Internal,
                        Some(id),
                        format!("Cedar refused a policy: {e}"),
                    )
                })?;
            }
            for PolicySummary { id, effect } in &compiled.summary.policies {
                out.effects.insert(id.clone(), *effect);
            }
            out.records.push(compiled.summary);
        }
        Ok(out)
    }

    /// The records compiled, in order, with their policies' ids.
    pub fn records(&self) -> &[RecordSummary] {
        &self.records
    }

    /// How many policies the set holds.
    pub fn len(&self) -> usize {
        self.effects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.effects.is_empty()
    }

    /// Decides `request`. Never panics; anything that goes wrong denies.
    pub fn decide(&self, request: &Request<'_>) -> Decision {
        let compiled = match schema::compiled() {
            Ok(compiled) => compiled,
            Err(e) => return Decision::refused(e.to_owned()),
        };
        let (cedar_request, entities) = match request::to_cedar(compiled, request) {
            Ok(built) => built,
            Err(e) => return Decision::refused(e),
        };
        // Cedar's answer over the whole set, from its answers over the
        // subsets that may match: an `Allow` names the permits that matched
        // (and says no forbid did), a `Deny` names the forbids that matched
        // (none when no permit did either).
        let mut permits: Vec<String> = Vec::new();
        let mut forbids: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        for set in self.index.select(request) {
            let response = self
                .authorizer
                .is_authorized(&cedar_request, set, &entities);
            let diagnostics = response.diagnostics();
            let reasons = diagnostics.reason().map(ToString::to_string);
            match response.decision() {
                cedar_policy::Decision::Allow => permits.extend(reasons),
                cedar_policy::Decision::Deny => forbids.extend(reasons),
            }
            for error in diagnostics.errors() {
                let AuthorizationError::PolicyEvaluationError(error) = error;
                if errors.len() < MAX_DECISION_ERRORS {
                    errors.push(truncate(error.to_string(), MAX_DECISION_ERROR_BYTES));
                }
                // A forbid that failed denies (fail closed); so does a
                // policy we do not know, which cannot happen.
                let id = error.policy_id().to_string();
                if self.effects.get(&id).copied().unwrap_or(Effect::Forbid) == Effect::Forbid {
                    forbids.push(id);
                }
            }
        }

        let allowed = forbids.is_empty() && !permits.is_empty();
        let mut determining = if allowed { permits } else { forbids };
        determining.sort_unstable();
        determining.dedup();
        Decision {
            allowed,
            determining,
            errors,
        }
    }
}

impl Default for PolicySet {
    fn default() -> Self {
        PolicySet::empty()
    }
}

#[cfg(test)]
mod tests;
