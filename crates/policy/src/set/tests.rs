use super::*;
use crate::{
    default_records, ClientFacts, ContextFacts, Grant, PolicyRecord, ResourceFacts,
    DEFAULT_MAX_DELEGATION_DEPTH, DEFAULT_POLICIES,
};

fn client() -> ClientFacts {
    ClientFacts {
        client_id: "billing-job".to_owned(),
        auth_method: "private_key_jwt".to_owned(),
        uses_static_secret: false,
        attested_id: "spiffe://example.org/billing".to_owned(),
        owner: "team-billing".to_owned(),
        tags: vec!["prod".to_owned()],
    }
}

fn secret_client() -> ClientFacts {
    ClientFacts {
        auth_method: "client_secret_basic".to_owned(),
        uses_static_secret: true,
        attested_id: String::new(),
        ..client()
    }
}

fn resource(tags: &[&str]) -> ResourceFacts {
    ResourceFacts {
        uri: "https://api.example.com/ledger".to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn context(depth: i64) -> ContextFacts {
    ContextFacts {
        scopes: vec!["ledger.read".to_owned()],
        sender_constrained: true,
        delegation_depth: depth,
        actors: Vec::new(),
        subject: "billing-job".to_owned(),
    }
}

fn decide(
    set: &PolicySet,
    client: &ClientFacts,
    resource: &ResourceFacts,
    context: &ContextFacts,
) -> Decision {
    set.decide(&Request::new(
        client,
        Grant::ClientCredentials,
        resource,
        context,
    ))
}

fn set(records: &[(&str, &str)]) -> PolicySet {
    PolicySet::compile(records).unwrap()
}

#[test]
fn a_matching_permit_allows_and_is_named() {
    let set = set(&[(
        "allow-billing",
        "permit(principal == Custos::Client::\"billing-job\", action, resource);",
    )]);
    let decision = decide(&set, &client(), &resource(&[]), &context(0));
    assert!(decision.allowed);
    assert_eq!(decision.determining, ["allow-billing"]);
    assert!(decision.errors.is_empty());
    assert_eq!(decision.reason(), "allowed by policy allow-billing");
}

#[test]
fn every_matching_permit_is_reported_sorted() {
    let set = set(&[
        ("z", "permit(principal, action, resource);"),
        (
            "a",
            "permit(principal, action == Custos::Action::\"client_credentials\", resource);",
        ),
        (
            "m",
            "permit(principal, action == Custos::Action::\"token_exchange\", resource);",
        ),
    ]);
    let decision = decide(&set, &client(), &resource(&[]), &context(0));
    assert!(decision.allowed);
    assert_eq!(decision.determining, ["a", "z"]);
    assert_eq!(decision.reason(), "allowed by policy a, z");
}

#[test]
fn forbid_beats_permit_and_the_deny_names_the_forbid() {
    let set = set(&[
        ("allow", "permit(principal, action, resource);"),
        (
            "prod-only",
            "@id(\"no-prod\") forbid(principal, action, resource) when { principal.tags.contains(\"prod\") };\n\
             forbid(principal, action, resource) when { context.scopes.contains(\"ledger.read\") };",
        ),
    ]);
    let decision = decide(&set, &client(), &resource(&[]), &context(0));
    assert!(!decision.allowed);
    assert_eq!(decision.determining, ["prod-only#1", "prod-only/no-prod"]);
    assert_eq!(
        decision.reason(),
        "denied by policy prod-only#1, prod-only/no-prod"
    );
}

#[test]
fn an_empty_set_denies_with_no_determining_policy() {
    let set = PolicySet::compile(Vec::<PolicyRecord>::new()).unwrap();
    assert!(set.is_empty());
    let decision = decide(&set, &client(), &resource(&[]), &context(0));
    assert!(!decision.allowed);
    assert!(decision.determining.is_empty());
    assert_eq!(decision.reason(), "no policy permits this request");
    assert_eq!(
        decide(&PolicySet::empty(), &client(), &resource(&[]), &context(0)),
        decision
    );
}

#[test]
fn only_non_matching_permits_deny_with_no_determining_policy() {
    let set = set(&[
        ("other-client", "permit(principal == Custos::Client::\"someone-else\", action, resource);"),
        ("other-grant", "permit(principal, action == Custos::Action::\"jwt_bearer\", resource);"),
        ("write-scope", "permit(principal, action, resource) when { context.scopes.contains(\"ledger.write\") };"),
        // A forbid that does not match does not name itself either.
        ("never", "forbid(principal, action, resource) when { context.delegation_depth > 100 };"),
    ]);
    let decision = decide(&set, &client(), &resource(&[]), &context(0));
    assert!(!decision.allowed);
    assert!(decision.determining.is_empty(), "{decision:?}");
    assert_eq!(decision.reason(), "no policy permits this request");
}

#[test]
fn actions_follow_the_grant() {
    let set = set(&[(
        "exchange-only",
        "permit(principal, action == Custos::Action::\"token_exchange\", resource);",
    )]);
    let (c, r, x) = (client(), resource(&[]), context(1));
    for grant in Grant::ALL {
        let decision = set.decide(&Request::new(&c, grant, &r, &x));
        assert_eq!(decision.allowed, grant == Grant::TokenExchange, "{grant}");
    }
}

#[test]
fn every_attribute_reaches_the_policies() {
    let set = set(&[(
        "all",
        "permit(principal, action, resource) when {\n\
           principal.client_id == \"billing-job\" && principal.auth_method == \"private_key_jwt\" &&\n\
           !principal.uses_static_secret && principal.attested_id like \"spiffe://example.org/*\" &&\n\
           principal.owner == \"team-billing\" && principal.tags.contains(\"prod\") &&\n\
           resource.uri == \"https://api.example.com/ledger\" && resource.tags.isEmpty() &&\n\
           resource == Custos::Resource::\"https://api.example.com/ledger\" &&\n\
           context.scopes.contains(\"ledger.read\") && context.sender_constrained &&\n\
           context.delegation_depth == 2 && context.actors.contains(\"orchestrator\") &&\n\
           context.subject == \"alice\"\n\
         };",
    )]);
    let mut x = context(2);
    x.actors = vec!["orchestrator".to_owned(), "planner".to_owned()];
    x.subject = "alice".to_owned();
    let decision = decide(&set, &client(), &resource(&[]), &x);
    assert!(decision.allowed, "{decision:?}");
    x.subject = "bob".to_owned();
    assert!(!decide(&set, &client(), &resource(&[]), &x).allowed);
}

#[test]
fn default_static_secret_client_is_refused_a_sensitive_resource() {
    let set = PolicySet::compile(DEFAULT_POLICIES).unwrap();
    let decision = decide(
        &set,
        &secret_client(),
        &resource(&["sensitive"]),
        &context(0),
    );
    assert!(!decision.allowed);
    assert_eq!(
        decision.determining,
        ["default.static-secret-not-sensitive"]
    );
    assert_eq!(
        decision.reason(),
        "denied by policy default.static-secret-not-sensitive"
    );
}

#[test]
fn default_static_secret_client_may_reach_other_resources() {
    let set = PolicySet::compile(DEFAULT_POLICIES).unwrap();
    let decision = decide(
        &set,
        &secret_client(),
        &resource(&["internal"]),
        &context(0),
    );
    assert!(decision.allowed);
    assert_eq!(decision.determining, ["default.permit-registered"]);
}

#[test]
fn default_private_key_jwt_client_may_reach_a_sensitive_resource() {
    let set = PolicySet::compile(DEFAULT_POLICIES).unwrap();
    let decision = decide(&set, &client(), &resource(&["sensitive"]), &context(0));
    assert!(decision.allowed, "{decision:?}");
    assert_eq!(
        decision.reason(),
        "allowed by policy default.permit-registered"
    );
}

#[test]
fn default_delegation_depth_over_four_is_refused() {
    let set = PolicySet::compile(DEFAULT_POLICIES).unwrap();
    let decision = decide(&set, &client(), &resource(&[]), &context(5));
    assert!(!decision.allowed);
    assert_eq!(decision.determining, ["default.max-delegation-depth"]);
}

#[test]
fn default_delegation_depth_of_four_is_allowed() {
    let set = PolicySet::compile(DEFAULT_POLICIES).unwrap();
    assert!(decide(&set, &client(), &resource(&[]), &context(4)).allowed);
    assert!(decide(&set, &client(), &resource(&[]), &context(0)).allowed);
}

#[test]
fn default_records_take_the_depth_and_match_the_constant_at_four() {
    let at_default = default_records(DEFAULT_MAX_DELEGATION_DEPTH);
    let constant: Vec<PolicyRecord> = DEFAULT_POLICIES
        .iter()
        .map(|(id, c)| PolicyRecord::new(*id, *c))
        .collect();
    assert_eq!(at_default, constant);

    let set = PolicySet::compile(default_records(1)).unwrap();
    assert!(decide(&set, &client(), &resource(&[]), &context(1)).allowed);
    assert!(!decide(&set, &client(), &resource(&[]), &context(2)).allowed);
    let set = PolicySet::compile(default_records(0).iter()).unwrap();
    assert!(!decide(&set, &client(), &resource(&[]), &context(1)).allowed);
    assert!(PolicySet::compile(default_records(u32::MAX)).is_ok());
}

#[test]
fn compile_names_the_record_at_fault() {
    let e = PolicySet::compile([
        ("fine", "permit(principal, action, resource);"),
        (
            "broken",
            "forbid(principal, action, resource) when { principal.nope };",
        ),
    ])
    .unwrap_err();
    assert_eq!(e.record(), Some("broken"));
    assert!(e.to_string().starts_with("policy record `broken`: "), "{e}");
}

#[test]
fn compile_refuses_two_records_with_one_id() {
    let e = PolicySet::compile([
        ("same", "permit(principal, action, resource);"),
        ("same", "forbid(principal, action, resource);"),
    ])
    .unwrap_err();
    assert_eq!(e.kind(), PolicyErrorKind::DuplicateRecord);
    assert_eq!(e.record(), Some("same"));
}

#[test]
fn compile_reports_records_and_policy_ids() {
    let set = PolicySet::compile([
        PolicyRecord::new("a", "permit(principal, action, resource);"),
        PolicyRecord::new("b", "forbid(principal, action, resource) when { false };\n@id(\"x\") forbid(principal, action, resource) when { false };"),
    ])
    .unwrap();
    assert_eq!(set.len(), 3);
    let ids: Vec<&str> = set
        .records()
        .iter()
        .flat_map(|r| r.policies.iter().map(|p| p.id.as_str()))
        .collect();
    assert_eq!(ids, ["a", "b#0", "b/x"]);
}

#[test]
fn an_erroring_permit_allows_nothing() {
    // Overflow is an evaluation error Cedar's validator cannot rule out.
    let set = set(&[(
        "overflow",
        "permit(principal, action, resource) when { context.delegation_depth * 9223372036854775807 > 0 };",
    )]);
    let decision = decide(&set, &client(), &resource(&[]), &context(2));
    assert!(!decision.allowed);
    assert!(decision.determining.is_empty());
    assert_eq!(decision.errors.len(), 1);
    assert!(
        decision.errors[0].contains("overflow"),
        "{:?}",
        decision.errors
    );
}

#[test]
fn an_erroring_forbid_denies() {
    let set = set(&[
        ("allow", "permit(principal, action, resource);"),
        (
            "overflow",
            "forbid(principal, action, resource) when { context.delegation_depth * 9223372036854775807 > 0 };",
        ),
    ]);
    let decision = decide(&set, &client(), &resource(&[]), &context(2));
    assert!(
        !decision.allowed,
        "a forbid that fails must not let the permit through"
    );
    assert_eq!(decision.determining, ["overflow"]);
    assert_eq!(decision.errors.len(), 1);
    // Without the error the forbid does not match, and the permit allows.
    assert!(decide(&set, &client(), &resource(&[]), &context(0)).allowed);
}

#[test]
fn evaluation_errors_are_bounded() {
    let records: Vec<PolicyRecord> = (0..20)
        .map(|i| {
            PolicyRecord::new(
                format!("p{i}"),
                "permit(principal, action, resource) when { context.delegation_depth * 9223372036854775807 > 0 };",
            )
        })
        .collect();
    let set = PolicySet::compile(&records).unwrap();
    let decision = decide(&set, &client(), &resource(&[]), &context(2));
    assert!(!decision.allowed);
    assert_eq!(decision.errors.len(), MAX_DECISION_ERRORS);
}

#[test]
fn odd_facts_do_not_panic() {
    let set = PolicySet::compile(DEFAULT_POLICIES).unwrap();
    let weird = "\u{0}\"\\::\u{202e}é\n".repeat(100);
    let c = ClientFacts {
        client_id: weird.clone(),
        auth_method: weird.clone(),
        uses_static_secret: true,
        attested_id: weird.clone(),
        owner: String::new(),
        tags: vec![weird.clone(), weird.clone(), String::new()],
    };
    let r = ResourceFacts {
        uri: weird.clone(),
        tags: vec![weird.clone(); 3],
    };
    let x = ContextFacts {
        scopes: vec![weird.clone(); 3],
        sender_constrained: false,
        delegation_depth: i64::MIN,
        actors: vec![weird.clone(); 2],
        subject: weird,
    };
    for grant in Grant::ALL {
        assert!(set.decide(&Request::new(&c, grant, &r, &x)).allowed);
    }
    let x = ContextFacts {
        delegation_depth: i64::MAX,
        ..x
    };
    assert!(
        !set.decide(&Request::new(&c, Grant::TokenExchange, &r, &x))
            .allowed
    );
}

/// Policies of every shape the index sorts: scopes naming clients and
/// resources in each form, action lists, each kind of guard, guards that
/// do not qualify, and policies that fail to evaluate.
const INDEXED: &[(&str, &str)] = &[
    ("p-eq", "permit(principal == Custos::Client::\"a\", action, resource);"),
    ("p-in", "permit(principal in Custos::Client::\"b\", action == Custos::Action::\"token_exchange\", resource);"),
    ("p-is", "permit(principal is Custos::Client, action in [Custos::Action::\"jwt_bearer\", Custos::Action::\"refresh_token\"], resource) when { principal.owner == \"o\" };"),
    ("p-is-in", "permit(principal is Custos::Client in Custos::Client::\"c\", action, resource is Custos::Resource in Custos::Resource::\"https://r2\");"),
    ("r-eq", "permit(principal, action == Custos::Action::\"client_credentials\", resource == Custos::Resource::\"https://r1\");"),
    ("r-in", "forbid(principal, action, resource in Custos::Resource::\"https://r3\") when { context.scopes.contains(\"w\") };"),
    ("both", "forbid(principal == Custos::Client::\"a\", action, resource == Custos::Resource::\"https://r2\");"),
    ("g-ctags", "forbid(principal, action, resource) when { principal.tags.contains(\"blocked\") };"),
    ("g-rtags", "permit(principal, action, resource) when { resource.tags.contains(\"open\") && context.scopes.contains(\"r\") };"),
    ("g-scopes", "permit(principal, action == Custos::Action::\"client_credentials\", resource) when { context.scopes.contains(\"w\") };"),
    ("g-actors", "forbid(principal, action, resource) when { context.actors.contains(\"a\") } when { context.delegation_depth > 1 };"),
    ("g-eq", "permit(principal, action, resource) when { \"p\" == principal.owner && principal.auth_method == \"none\" };"),
    ("g-eq2", "permit(principal, action, resource) when { resource.uri == \"https://r3\" };"),
    ("g-eq3", "forbid(principal, action, resource) when { context.subject == \"b\" && !context.sender_constrained };"),
    ("g-flag", "forbid(principal, action, resource) when { principal.uses_static_secret && resource.tags.contains(\"sensitive\") };"),
    ("g-notflag", "permit(principal, action, resource) when { !context.sender_constrained };"),
    ("no-guard", "permit(principal, action, resource) unless { principal.tags.contains(\"blocked\") } when { principal.tags.contains(\"x\") };"),
    ("no-guard2", "forbid(principal, action, resource) when { context.delegation_depth > 2 || principal.tags.contains(\"open\") };"),
    ("g-error", "forbid(principal, action, resource) when { resource.tags.contains(\"boom\") && context.delegation_depth * 9223372036854775807 > 0 };"),
    ("error-permit", "permit(principal, action, resource) when { context.scopes.contains(\"boom\") && context.delegation_depth + 9223372036854775807 > 0 };"),
    ("g-after-safe", "forbid(principal, action, resource) unless { principal.attested_id like \"spiffe://*\" } when { context.actors.contains(\"b\") && principal.owner != \"z\" };"),
    ("g-unless", "permit(principal, action == Custos::Action::\"token_exchange\", resource) unless { context.sender_constrained };"),
    ("g-after-unsafe", "forbid(principal, action, resource) when { context.delegation_depth * 9223372036854775807 > 0 && resource.tags.contains(\"sensitive\") };"),
    ("wrong-type", "permit(principal, action, resource) when { principal == Custos::Client::\"https://r1\" };"),
];

/// Cedar over the whole set, without the index: what `decide` must agree
/// with (allowed, determining, and the errors).
fn reference(
    flat: &cedar_policy::PolicySet,
    request: &Request<'_>,
) -> (bool, Vec<String>, Vec<String>) {
    let compiled = schema::compiled().unwrap();
    let (cedar_request, entities) = request::to_cedar(compiled, request).unwrap();
    let response = Authorizer::new().is_authorized(&cedar_request, flat, &entities);
    let diagnostics = response.diagnostics();
    let mut reasons: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    let mut errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
    let mut allowed = response.decision() == cedar_policy::Decision::Allow;
    // The one difference on purpose: a forbid that fails denies.
    let failed_forbids: Vec<String> = diagnostics
        .errors()
        .map(|e| {
            let AuthorizationError::PolicyEvaluationError(e) = e;
            e.policy_id().to_string()
        })
        .filter(|id| {
            flat.policy(&cedar_policy::PolicyId::new(id))
                .map(|p| p.effect())
                == Some(cedar_policy::Effect::Forbid)
        })
        .collect();
    if !failed_forbids.is_empty() {
        if allowed {
            reasons.clear();
        }
        allowed = false;
        reasons.extend(failed_forbids);
    }
    reasons.sort();
    reasons.dedup();
    errors.sort();
    (allowed, reasons, errors)
}

fn flat(records: &[(&str, &str)]) -> cedar_policy::PolicySet {
    let mut flat = cedar_policy::PolicySet::new();
    for (id, cedar) in records {
        for policy in compile_record(id, cedar).unwrap().policies {
            flat.add(policy).unwrap();
        }
    }
    flat
}

fn pick(from: &[&str], mask: u8) -> Vec<String> {
    from.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, s)| (*s).to_owned())
        .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    #[test]
    fn the_index_agrees_with_cedar_over_the_whole_set(
        client_id in proptest::sample::select(vec!["a", "b", "c", "d", "https://r1"]),
        owner in proptest::sample::select(vec!["o", "p", ""]),
        auth_method in proptest::sample::select(vec!["none", "private_key_jwt"]),
        uses_static_secret: bool,
        client_tags: u8,
        uri in proptest::sample::select(vec!["https://r1", "https://r2", "https://r3", "a"]),
        resource_tags: u8,
        scopes: u8,
        actors: u8,
        sender_constrained: bool,
        delegation_depth in 0i64..4,
        subject in proptest::sample::select(vec!["a", "b"]),
        grant in proptest::sample::select(Grant::ALL.to_vec()),
    ) {
        use std::sync::LazyLock;
        static SETS: LazyLock<(PolicySet, cedar_policy::PolicySet)> =
            LazyLock::new(|| (PolicySet::compile(INDEXED).unwrap(), flat(INDEXED)));
        let c = ClientFacts {
            client_id: client_id.to_owned(),
            auth_method: auth_method.to_owned(),
            uses_static_secret,
            attested_id: String::new(),
            owner: owner.to_owned(),
            tags: pick(&["blocked", "x", "open", "x"], client_tags),
        };
        let r = ResourceFacts {
            uri: uri.to_owned(),
            tags: pick(&["open", "sensitive", "boom", "open", "boom"], resource_tags),
        };
        let x = ContextFacts {
            scopes: pick(&["r", "w", "boom", "w"], scopes),
            sender_constrained,
            delegation_depth,
            actors: pick(&["a", "b", "a"], actors),
            subject: subject.to_owned(),
        };
        let request = Request::new(&c, grant, &r, &x);
        let decision = SETS.0.decide(&request);
        let mut errors = decision.errors.clone();
        errors.sort();
        proptest::prop_assert_eq!(
            (decision.allowed, decision.determining, errors),
            reference(&SETS.1, &request)
        );
    }
}

#[test]
fn policies_at_the_complexity_bounds_compile_and_decide() {
    let n = crate::MAX_NESTING - 1;
    let records = [
        // About MAX_OPERATORS operators in one `&&` chain.
        PolicyRecord::new(
            "chain",
            format!(
                "permit(principal, action, resource) when {{ {} }};",
                vec!["principal.owner != \"x\""; crate::MAX_OPERATORS / 3].join(" && ")
            ),
        ),
        PolicyRecord::new(
            "or-chain",
            format!(
                "forbid(principal, action, resource) when {{ {} }};",
                vec!["context.scopes.contains(\"nope\")"; crate::MAX_OPERATORS / 3].join(" || ")
            ),
        ),
        PolicyRecord::new(
            "nested",
            format!(
                "permit(principal, action, resource) when {{ {}principal.uses_static_secret{} }};",
                "(".repeat(n),
                ")".repeat(n)
            ),
        ),
        PolicyRecord::new(
            "ifs",
            format!(
                "permit(principal, action, resource) when {{ {}true{} }};",
                "if context.sender_constrained then ".repeat(crate::MAX_IFS),
                " else false".repeat(crate::MAX_IFS)
            ),
        ),
    ];
    let set = PolicySet::compile(&records).unwrap();
    let decision = decide(&set, &client(), &resource(&[]), &context(0));
    if decision.errors.is_empty() {
        assert!(decision.allowed);
        assert_eq!(decision.determining, ["chain", "ifs"]);
    } else {
        // Unoptimised, Cedar's evaluator needs tens of KiB of stack per
        // `&&` or `||` it descends, and refuses (an error, not a crash)
        // chains longer than about 35 on a 2 MiB stack; optimised builds
        // evaluate these chains. Either way the failing forbid denies.
        if !cfg!(debug_assertions) {
            panic!("an optimised build failed: {:?}", decision.errors);
        }
        assert!(decision
            .errors
            .iter()
            .all(|e| e.contains("recursion limit")));
        assert!(!decision.allowed);
        assert!(decision.determining.contains(&"or-chain".to_owned()));
    }
}
