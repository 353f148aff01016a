//! Which policies a request could match, decided before Cedar evaluates
//! them.
//!
//! Cedar evaluates every policy of the set it is given (0.3 to 1 µs each
//! on the development machine, 0.3 µs of it even for a policy whose scope
//! rules it out, as Cedar rebuilds each policy's condition), so
//! [`Index`] hands it only the policies that could match. This is a
//! pre-filter, never a decision: every policy it selects is evaluated by
//! Cedar in full, and a policy it leaves out is one Cedar would have found
//! false *without an error*, so the decision, its determining policies and
//! its errors are the same as Cedar's over the whole set (a property test checks
//! this; a `forbid` that fails still denies, see [`crate::Decision`]).
//! Policies are filed
//!
//! 1. by grant, from the action constraint (there are no action groups,
//!    so `action in [..]` is membership in the list);
//! 2. by the client the principal constraint names, or else the resource
//!    the resource constraint names (the request's entities have no
//!    parents, so `==`, `in` and `is … in` an entity all mean that entity);
//! 3. for the rest, by a *guard*: a test the request must pass, taken from
//!    the policy's conditions in the order Cedar evaluates them (the `&&`
//!    operands of each `when`, left to right, and each `unless` negated):
//!    the first one shaped `<set>.contains("…")` (client or resource
//!    `tags`, context `scopes` or `actors`), `<string attribute> == "…"`,
//!    or a Bool attribute, possibly negated — provided every test before it
//!    cannot fail (no arithmetic, extension function or attribute of an
//!    entity literal). Cedar evaluates the scope, then these tests in order,
//!    and stops at the first false one; none of them can fail on a request
//!    built by this crate (every attribute is present). So when the guard
//!    is false the policy is false, with no error.

use std::collections::HashMap;

use cedar_policy::{EntityUid, Policy, PolicySet};
use serde_json::Value;

use crate::limits;
use crate::request::{Grant, Request};

/// The policies of a compiled set, filed by what a request must have for
/// them to match.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    /// Indexed by `Grant as usize`.
    grants: [Buckets; Grant::ALL.len()],
}

impl Index {
    /// Files `policy` under every grant its action constraint allows. An
    /// error is Cedar refusing a policy (a duplicate id).
    pub(crate) fn add(&mut self, policy: &Policy, actions: &[EntityUid]) -> Result<(), String> {
        let scope = Scope::of(policy);
        for (grant, action) in actions.iter().enumerate() {
            if let Some(buckets) = self.grants.get_mut(grant) {
                if applies_to(policy, action) {
                    buckets.add(policy, &scope)?;
                }
            }
        }
        Ok(())
    }

    /// The sets holding every policy that could match `request`, each once.
    pub(crate) fn select<'a>(&'a self, request: &Request<'_>) -> Vec<&'a PolicySet> {
        let mut out = Vec::with_capacity(4);
        if let Some(buckets) = self.grants.get(request.grant as usize) {
            buckets.select(request, &mut out);
        }
        out
    }
}

/// What a policy's scope and first test say a request must have.
struct Scope {
    client: Option<String>,
    resource: Option<String>,
    guard: Option<Guard>,
}

impl Scope {
    fn of(policy: &Policy) -> Scope {
        use cedar_policy::{PrincipalConstraint as P, ResourceConstraint as R};
        let client = match policy.principal_constraint() {
            P::Eq(uid) | P::In(uid) | P::IsIn(_, uid) => Some(uid.id().unescaped().to_owned()),
            P::Any | P::Is(_) => None,
        };
        let resource = match policy.resource_constraint() {
            R::Eq(uid) | R::In(uid) | R::IsIn(_, uid) => Some(uid.id().unescaped().to_owned()),
            R::Any | R::Is(_) => None,
        };
        Scope {
            client,
            resource,
            guard: Guard::of(policy),
        }
    }
}

/// Whether a policy's action constraint can match `action`.
fn applies_to(policy: &Policy, action: &EntityUid) -> bool {
    use cedar_policy::ActionConstraint as A;
    match policy.action_constraint() {
        A::Any => true,
        A::Eq(uid) => &uid == action,
        A::In(uids) => uids.contains(action),
    }
}

/// The policies that apply to one grant.
#[derive(Debug, Clone, Default)]
struct Buckets {
    /// Policies whose scope names neither a client nor a resource.
    any: Guarded,
    /// Policies whose principal constraint names this client id.
    by_client: HashMap<String, PolicySet>,
    /// Policies whose resource constraint names this resource, and whose
    /// principal constraint names no client.
    by_resource: HashMap<String, PolicySet>,
}

impl Buckets {
    fn add(&mut self, policy: &Policy, scope: &Scope) -> Result<(), String> {
        let set = match (&scope.client, &scope.resource) {
            (Some(client), _) => self.by_client.entry(client.clone()).or_default(),
            (None, Some(resource)) => self.by_resource.entry(resource.clone()).or_default(),
            (None, None) => self.any.set_for(scope.guard.as_ref()),
        };
        set.add(policy.clone()).map_err(|e| e.to_string())
    }

    fn select<'a>(&'a self, request: &Request<'_>, out: &mut Vec<&'a PolicySet>) {
        self.any.select(request, out);
        out.extend(self.by_client.get(request.client.client_id.as_str()));
        out.extend(self.by_resource.get(request.resource.uri.as_str()));
    }
}

/// Policies by guard.
#[derive(Debug, Clone, Default)]
struct Guarded {
    unguarded: Option<PolicySet>,
    /// Indexed by `SetAttr as usize`, then by the string sought.
    contains: [HashMap<String, PolicySet>; SetAttr::ALL.len()],
    /// Indexed by `StrAttr as usize`, then by the string compared with.
    equals: [HashMap<String, PolicySet>; StrAttr::ALL.len()],
    /// Indexed by `BoolAttr as usize`, then by the value required.
    flags: [[Option<PolicySet>; 2]; BoolAttr::ALL.len()],
}

impl Guarded {
    fn set_for(&mut self, guard: Option<&Guard>) -> &mut PolicySet {
        let slot = match guard {
            None => &mut self.unguarded,
            Some(Guard::Contains(attr, value)) => {
                return self.contains[*attr as usize]
                    .entry(value.clone())
                    .or_default()
            }
            Some(Guard::Equals(attr, value)) => {
                return self.equals[*attr as usize]
                    .entry(value.clone())
                    .or_default()
            }
            Some(Guard::Flag(attr, value)) => &mut self.flags[*attr as usize][usize::from(*value)],
        };
        slot.get_or_insert_with(PolicySet::new)
    }

    fn select<'a>(&'a self, request: &Request<'_>, out: &mut Vec<&'a PolicySet>) {
        out.extend(self.unguarded.as_ref());
        for attr in SetAttr::ALL {
            let sets = &self.contains[attr as usize];
            if sets.is_empty() {
                continue;
            }
            let start = out.len();
            for item in attr.of(request) {
                if let Some(set) = sets.get(item.as_str()) {
                    // A request's set may repeat an item; select its
                    // policies once.
                    if !out[start..].iter().any(|s| std::ptr::eq(*s, set)) {
                        out.push(set);
                    }
                }
            }
        }
        for attr in StrAttr::ALL {
            out.extend(self.equals[attr as usize].get(attr.of(request)));
        }
        for attr in BoolAttr::ALL {
            out.extend(self.flags[attr as usize][usize::from(attr.of(request))].as_ref());
        }
    }
}

/// A test a request must pass for a policy to match.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Guard {
    /// `<attr>.contains("<value>")`
    Contains(SetAttr, String),
    /// `<attr> == "<value>"` (either way round)
    Equals(StrAttr, String),
    /// `<attr>` (true) or `!<attr>` (false)
    Flag(BoolAttr, bool),
}

impl Guard {
    /// The guard of a policy: the first of its tests — the operands of the
    /// `&&`s of its `when` clauses and its negated `unless` clauses, in the
    /// order Cedar evaluates them — that has one of the guard's shapes,
    /// provided every test before it cannot fail (see [`cannot_fail`]).
    /// Only for policies of at most 64 operators (see
    /// [`limits::is_small`]). Read from Cedar's JSON form of the policy; anything unexpected there
    /// means no guard.
    fn of(policy: &Policy) -> Option<Guard> {
        // Cedar builds the JSON form recursively; keep to policies small
        // enough for any stack (`Display` of a parsed policy is its text).
        if !limits::is_small(&policy.to_string()) {
            return None;
        }
        let json = policy.to_json().ok()?;
        for condition in json.get("conditions")?.as_array()? {
            let body = condition.get("body")?;
            match condition.get("kind")?.as_str()? {
                "when" => {
                    // The `&&` operands, left to right, without recursion.
                    let mut pending = vec![body];
                    while let Some(test) = pending.pop() {
                        if let Some(and) = test.get("&&") {
                            pending.push(and.get("right")?);
                            pending.push(and.get("left")?);
                            continue;
                        }
                        if let Some(guard) = Guard::from_test(test) {
                            return Some(guard);
                        }
                        if !cannot_fail(test, 0) {
                            return None;
                        }
                    }
                }
                "unless" => {
                    if let Some(attr) = BoolAttr::from_json(body) {
                        return Some(Guard::Flag(attr, false));
                    }
                    if !cannot_fail(body, 0) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
        None
    }

    fn from_test(test: &Value) -> Option<Guard> {
        let (op, args) = single(test)?;
        match op {
            "contains" => {
                let attr = SetAttr::from_json(args.get("left")?)?;
                let value = string_literal(args.get("right")?)?;
                Some(Guard::Contains(attr, value))
            }
            "==" => {
                let (left, right) = (args.get("left")?, args.get("right")?);
                if let (Some(attr), Some(value)) = (StrAttr::from_json(left), string_literal(right))
                {
                    return Some(Guard::Equals(attr, value));
                }
                let attr = StrAttr::from_json(right)?;
                Some(Guard::Equals(attr, string_literal(left)?))
            }
            "!" => Some(Guard::Flag(BoolAttr::from_json(args.get("arg")?)?, false)),
            "." => Some(Guard::Flag(BoolAttr::from_json(test)?, true)),
            _ => None,
        }
    }
}

/// How deep [`cannot_fail`] looks before it answers "may fail".
const MAX_CANNOT_FAIL_DEPTH: usize = 32;

/// Whether evaluating `expr` (Cedar's JSON form) on a request built by
/// this crate can never raise an error, for a policy that validated in
/// strict mode: literals, `principal`, `resource` and `context`, their
/// attributes (all required, so always present), comparisons, `&&`, `||`,
/// `!`, set tests, `like`, `is`, `in`, set and record literals and
/// `if`-`then`-`else` of such. Arithmetic (it may overflow), extension
/// functions and anything else may fail; so may an attribute of an entity
/// literal (it is not in the request's entities).
fn cannot_fail(expr: &Value, depth: usize) -> bool {
    if depth > MAX_CANNOT_FAIL_DEPTH {
        return false;
    }
    let all = |values: &[Option<&Value>]| {
        values
            .iter()
            .all(|v| v.is_some_and(|v| cannot_fail(v, depth + 1)))
    };
    let Some((op, args)) = single(expr) else {
        return false;
    };
    match op {
        "Value" | "Var" => true,
        "." => matches!(
            single_var(args.get("left")),
            Some("principal" | "resource" | "context")
        ),
        "==" | "!=" | "<" | "<=" | ">" | ">=" | "&&" | "||" | "contains" | "containsAll"
        | "containsAny" | "in" => all(&[args.get("left"), args.get("right")]),
        "!" | "isEmpty" => all(&[args.get("arg")]),
        "like" => all(&[args.get("left")]),
        "is" => {
            all(&[args.get("left")]) && args.get("in").is_none_or(|v| cannot_fail(v, depth + 1))
        }
        "if-then-else" => all(&[args.get("if"), args.get("then"), args.get("else")]),
        "Set" => args
            .as_array()
            .is_some_and(|items| items.iter().all(|v| cannot_fail(v, depth + 1))),
        "Record" => args
            .as_object()
            .is_some_and(|fields| fields.values().all(|v| cannot_fail(v, depth + 1))),
        _ => false,
    }
}

/// `{"Var": "<name>"}` → `name`.
fn single_var(value: Option<&Value>) -> Option<&str> {
    let (op, name) = single(value?)?;
    (op == "Var").then(|| name.as_str())?
}

/// An object with exactly one key: `(key, value)`.
fn single(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// `{"Value": "<s>"}` → `s`.
fn string_literal(value: &Value) -> Option<String> {
    let (op, literal) = single(value)?;
    (op == "Value").then(|| literal.as_str().map(str::to_owned))?
}

/// `{".": {"left": {"Var": "<var>"}, "attr": "<attr>"}}` → `(var, attr)`.
fn attribute(value: &Value) -> Option<(&str, &str)> {
    let (op, access) = single(value)?;
    if op != "." {
        return None;
    }
    let (var_op, var) = single(access.get("left")?)?;
    if var_op != "Var" {
        return None;
    }
    Some((var.as_str()?, access.get("attr")?.as_str()?))
}

/// The `Set<String>` attributes a guard may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetAttr {
    ClientTags,
    ResourceTags,
    Scopes,
    Actors,
}

impl SetAttr {
    const ALL: [SetAttr; 4] = [
        SetAttr::ClientTags,
        SetAttr::ResourceTags,
        SetAttr::Scopes,
        SetAttr::Actors,
    ];

    fn from_json(value: &Value) -> Option<SetAttr> {
        match attribute(value)? {
            ("principal", "tags") => Some(SetAttr::ClientTags),
            ("resource", "tags") => Some(SetAttr::ResourceTags),
            ("context", "scopes") => Some(SetAttr::Scopes),
            ("context", "actors") => Some(SetAttr::Actors),
            _ => None,
        }
    }

    fn of<'r>(self, r: &'r Request<'_>) -> &'r [String] {
        match self {
            SetAttr::ClientTags => &r.client.tags,
            SetAttr::ResourceTags => &r.resource.tags,
            SetAttr::Scopes => &r.context.scopes,
            SetAttr::Actors => &r.context.actors,
        }
    }
}

/// The `String` attributes a guard may compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrAttr {
    ClientId,
    AuthMethod,
    AttestedId,
    Owner,
    Uri,
    Subject,
}

impl StrAttr {
    const ALL: [StrAttr; 6] = [
        StrAttr::ClientId,
        StrAttr::AuthMethod,
        StrAttr::AttestedId,
        StrAttr::Owner,
        StrAttr::Uri,
        StrAttr::Subject,
    ];

    fn from_json(value: &Value) -> Option<StrAttr> {
        match attribute(value)? {
            ("principal", "client_id") => Some(StrAttr::ClientId),
            ("principal", "auth_method") => Some(StrAttr::AuthMethod),
            ("principal", "attested_id") => Some(StrAttr::AttestedId),
            ("principal", "owner") => Some(StrAttr::Owner),
            ("resource", "uri") => Some(StrAttr::Uri),
            ("context", "subject") => Some(StrAttr::Subject),
            _ => None,
        }
    }

    fn of<'r>(self, r: &'r Request<'_>) -> &'r str {
        match self {
            StrAttr::ClientId => &r.client.client_id,
            StrAttr::AuthMethod => &r.client.auth_method,
            StrAttr::AttestedId => &r.client.attested_id,
            StrAttr::Owner => &r.client.owner,
            StrAttr::Uri => &r.resource.uri,
            StrAttr::Subject => &r.context.subject,
        }
    }
}

/// The `Bool` attributes a guard may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BoolAttr {
    UsesStaticSecret,
    SenderConstrained,
}

impl BoolAttr {
    const ALL: [BoolAttr; 2] = [BoolAttr::UsesStaticSecret, BoolAttr::SenderConstrained];

    fn from_json(value: &Value) -> Option<BoolAttr> {
        match attribute(value)? {
            ("principal", "uses_static_secret") => Some(BoolAttr::UsesStaticSecret),
            ("context", "sender_constrained") => Some(BoolAttr::SenderConstrained),
            _ => None,
        }
    }

    fn of(self, r: &Request<'_>) -> bool {
        match self {
            BoolAttr::UsesStaticSecret => r.client.uses_static_secret,
            BoolAttr::SenderConstrained => r.context.sender_constrained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(text: &str) -> Option<Guard> {
        Guard::of(&text.parse::<Policy>().expect("parses"))
    }

    #[test]
    fn guards_are_the_first_test_of_the_first_when() {
        assert_eq!(
            guard("forbid(principal, action, resource) when { resource.tags.contains(\"s\") && principal.tags.contains(\"t\") };"),
            Some(Guard::Contains(SetAttr::ResourceTags, "s".to_owned()))
        );
        assert_eq!(
            guard("forbid(principal, action, resource) when { principal.uses_static_secret && resource.tags.contains(\"s\") };"),
            Some(Guard::Flag(BoolAttr::UsesStaticSecret, true))
        );
        assert_eq!(
            guard("permit(principal, action, resource) when { !context.sender_constrained };"),
            Some(Guard::Flag(BoolAttr::SenderConstrained, false))
        );
        assert_eq!(
            guard("permit(principal, action, resource) when { \"o\" == principal.owner } when { false };"),
            Some(Guard::Equals(StrAttr::Owner, "o".to_owned()))
        );
        assert_eq!(
            guard("permit(principal, action, resource) when { context[\"scopes\"].contains(\"a\") && true };"),
            Some(Guard::Contains(SetAttr::Scopes, "a".to_owned()))
        );
    }

    #[test]
    fn guards_may_follow_tests_that_cannot_fail() {
        assert_eq!(
            guard("permit(principal, action, resource) when { true && resource.tags.contains(\"s\") };"),
            Some(Guard::Contains(SetAttr::ResourceTags, "s".to_owned()))
        );
        assert_eq!(
            guard("forbid(principal, action, resource) unless { principal.attested_id like \"spiffe://x/*\" } when { resource.tags.contains(\"s\") };"),
            Some(Guard::Contains(SetAttr::ResourceTags, "s".to_owned()))
        );
        assert_eq!(
            guard("forbid(principal, action, resource) unless { context.sender_constrained };"),
            Some(Guard::Flag(BoolAttr::SenderConstrained, false))
        );
        assert_eq!(
            guard("forbid(principal, action, resource) when { (context.delegation_depth > 1 || principal in Custos::Client::\"a\") && (if principal.tags.isEmpty() then true else [1, 2].contains(context.delegation_depth)) && principal is Custos::Client in Custos::Client::\"b\" && principal.tags.containsAll([\"a\"]) && {a: principal.owner} != {a: \"x\"} && principal.owner like \"x*\" } when { principal.owner == \"o\" };"),
            Some(Guard::Equals(StrAttr::Owner, "o".to_owned()))
        );
    }

    #[test]
    fn no_guard_after_a_test_that_may_fail() {
        for text in [
            "permit(principal, action, resource) when { context.delegation_depth + 1 > 2 && resource.tags.contains(\"s\") };",
            "permit(principal, action, resource) when { -context.delegation_depth < 0 && resource.tags.contains(\"s\") };",
            "permit(principal, action, resource) when { ip(\"10.0.0.1\").isLoopback() && resource.tags.contains(\"s\") };",
            "permit(principal, action, resource) when { Custos::Client::\"a\".owner == \"o\" && resource.tags.contains(\"s\") };",
            "permit(principal, action, resource) unless { context.delegation_depth * 2 > 3 } when { resource.tags.contains(\"s\") };",
        ] {
            assert_eq!(guard(text), None, "{text}");
        }
    }

    #[test]
    fn no_guard_without_a_plain_test() {
        for text in [
            "permit(principal, action, resource);",
            "permit(principal, action, resource) when { resource.tags.contains(\"s\") || false };",
            "permit(principal, action, resource) when { principal.tags.containsAny([\"s\"]) };",
            "permit(principal, action, resource) when { context.delegation_depth > 1 };",
            "permit(principal, action, resource) when { principal.owner == principal.client_id };",
            "permit(principal, action, resource) when { principal.owner != \"o\" };",
            "permit(principal, action, resource) when { principal.attested_id like \"spiffe://*\" };",
            "permit(principal, action, resource) unless { principal.owner == \"o\" };",
            "permit(principal, action, resource) when { !!context.sender_constrained };",
        ] {
            assert_eq!(guard(text), None, "{text}");
        }
    }
}
