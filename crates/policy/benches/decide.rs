//! One decision with 0, 10 and 100 policies loaded, and how the request's
//! entities are built (directly from restricted expressions, as the crate
//! does, against Cedar's schema-directed JSON parsing).
//!
//! `cargo bench -p custos-policy --bench decide -- --warm-up-time 1 --measurement-time 3`
//!
//! `decide_unguarded/100` is the same set with every `when` clause's first
//! test hidden from the index (see `src/index.rs`).
//!
//! Criterion reports means; before each group's measurements the bench also
//! times 10,000 single decisions with `Instant` and prints p50, p99 and the
//! maximum to stderr.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, Entities, EntityUid};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use custos_policy::{
    ClientFacts, ContextFacts, Grant, PolicyRecord, PolicySet, Request, ResourceFacts,
    DEFAULT_POLICIES,
};

/// `n` realistic policies: the defaults, then a mix of forbids on tags,
/// permits naming specific clients with scope conditions, delegation-depth
/// limits per owner and attestation patterns, 2 to 3 policies a record.
fn policies(n: usize) -> Vec<PolicyRecord> {
    let mut records: Vec<PolicyRecord> = DEFAULT_POLICIES
        .iter()
        .take(n)
        .map(|(id, cedar)| PolicyRecord::new(*id, *cedar))
        .collect();
    let mut count = records.len();
    let mut i = 0;
    while count < n {
        let templates = [
            format!(
                "@id(\"no-untrusted\")\nforbid(principal, action, resource)\n\
                 when {{ resource.tags.contains(\"tier-{i}\") && principal.tags.contains(\"untrusted\") }};\n\
                 @id(\"secret-free\")\nforbid(principal, action, resource)\n\
                 when {{ resource.tags.contains(\"pci-{i}\") && principal.auth_method like \"client_secret_*\" }};"
            ),
            format!(
                "permit(principal == Custos::Client::\"client-{i}\", action == Custos::Action::\"client_credentials\", resource)\n\
                 when {{ context.scopes.contains(\"scope-{i}\") && context.sender_constrained }};\n\
                 permit(principal, action == Custos::Action::\"token_exchange\", resource == Custos::Resource::\"https://api-{i}.example.com\")\n\
                 when {{ context.actors.contains(\"orchestrator-{i}\") && context.delegation_depth <= 2 }};"
            ),
            format!(
                "forbid(principal, action == Custos::Action::\"token_exchange\", resource)\n\
                 when {{ principal.owner == \"team-{i}\" && context.delegation_depth > {} }};\n\
                 forbid(principal, action, resource)\n\
                 unless {{ principal.attested_id like \"spiffe://example.org/ns/team-{i}/*\" }}\n\
                 when {{ resource.tags.contains(\"team-{i}-only\") }};\n\
                 permit(principal, action, resource)\n\
                 when {{ principal.tags.contains(\"team-{i}\") && context.scopes.containsAny([\"read-{i}\", \"write-{i}\"]) }};",
                i % 4
            ),
        ];
        for (k, text) in templates.into_iter().enumerate() {
            let record = PolicyRecord::new(format!("ops.{i}.{k}"), text);
            let held = custos_policy::check_record(&record.id, &record.cedar)
                .expect("bench policies validate")
                .policies
                .len();
            if count + held > n {
                // Fill the rest with one-policy records.
                while count < n {
                    records.push(PolicyRecord::new(
                        format!("ops.fill.{count}"),
                        format!(
                            "forbid(principal, action, resource) when {{ context.scopes.contains(\"admin-{count}\") && !context.sender_constrained }};"
                        ),
                    ));
                    count += 1;
                }
                break;
            }
            records.push(record);
            count += held;
        }
        i += 1;
    }
    records
}

fn facts() -> (ClientFacts, ResourceFacts, ContextFacts) {
    (
        ClientFacts {
            client_id: "billing-job".to_owned(),
            auth_method: "private_key_jwt".to_owned(),
            uses_static_secret: false,
            attested_id: "spiffe://example.org/ns/billing/sa/job".to_owned(),
            owner: "team-billing".to_owned(),
            tags: vec!["prod".to_owned(), "team-7".to_owned()],
        },
        ResourceFacts {
            uri: "https://api.example.com/ledger".to_owned(),
            tags: vec!["sensitive".to_owned(), "tier-3".to_owned()],
        },
        ContextFacts {
            scopes: vec!["ledger.read".to_owned(), "read-7".to_owned()],
            sender_constrained: true,
            delegation_depth: 1,
            actors: vec!["orchestrator".to_owned()],
            subject: "billing-job".to_owned(),
        },
    )
}

/// Times `runs` calls one by one and prints p50, p99 and the maximum.
fn percentiles(label: &str, runs: usize, mut f: impl FnMut()) {
    for _ in 0..1_000 {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    eprintln!(
        "{label}: {runs} runs: p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        at(0.50),
        at(0.99),
        times[times.len() - 1]
    );
}

fn decide(c: &mut Criterion) {
    let (client, resource, context) = facts();
    let mut group = c.benchmark_group("decide");
    for n in [0, 10, 100] {
        let set = PolicySet::compile(policies(n)).expect("bench policies compile");
        assert_eq!(set.len(), n);
        let request = Request::new(&client, Grant::ClientCredentials, &resource, &context);
        let decision = set.decide(&request);
        assert!(decision.errors.is_empty(), "{decision:?}");
        eprintln!("decide/{n}: {}", decision.reason());
        percentiles(&format!("decide/{n}"), 10_000, || {
            black_box(set.decide(black_box(&request)));
        });
        group.bench_with_input(BenchmarkId::from_parameter(n), &request, |b, request| {
            b.iter(|| set.decide(black_box(request)))
        });
    }
    group.finish();

    // The same 100 policies with every `when` guard hidden behind a test
    // that could fail (arithmetic may overflow), which the index cannot
    // look past: what a set written without the advice in the README
    // costs.
    let mut group = c.benchmark_group("decide_unguarded");
    let hidden: Vec<PolicyRecord> = policies(100)
        .into_iter()
        .map(|r| {
            let cedar = r
                .cedar
                .replace("when {", "when { context.delegation_depth + 0 >= 0 &&");
            PolicyRecord::new(r.id, cedar)
        })
        .collect();
    let set = PolicySet::compile(hidden).expect("bench policies compile");
    let request = Request::new(&client, Grant::ClientCredentials, &resource, &context);
    assert!(set.decide(&request).errors.is_empty());
    percentiles("decide_unguarded/100", 10_000, || {
        black_box(set.decide(black_box(&request)));
    });
    group.bench_with_input(BenchmarkId::from_parameter(100), &request, |b, request| {
        b.iter(|| set.decide(black_box(request)))
    });
    group.finish();
}

/// What building the request through JSON and the schema would cost: the
/// same entities and context, parsed the way `Entities::from_json_value`
/// does, then one authorization against an empty set.
fn json_request(
    client: &ClientFacts,
    resource: &ResourceFacts,
    context: &ContextFacts,
) -> (cedar_policy::Request, Entities) {
    let schema = custos_policy::schema().expect("schema");
    let principal = EntityUid::from_json(serde_json::json!({
        "type": "Custos::Client", "id": client.client_id
    }))
    .expect("uid");
    let resource_uid = EntityUid::from_json(serde_json::json!({
        "type": "Custos::Resource", "id": resource.uri
    }))
    .expect("uid");
    let action: EntityUid = r#"Custos::Action::"client_credentials""#
        .parse()
        .expect("action uid");
    let entities = Entities::from_json_value(
        serde_json::json!([
            {
                "uid": { "type": "Custos::Client", "id": client.client_id },
                "attrs": {
                    "client_id": client.client_id,
                    "auth_method": client.auth_method,
                    "uses_static_secret": client.uses_static_secret,
                    "attested_id": client.attested_id,
                    "owner": client.owner,
                    "tags": client.tags,
                },
                "parents": []
            },
            {
                "uid": { "type": "Custos::Resource", "id": resource.uri },
                "attrs": { "uri": resource.uri, "tags": resource.tags },
                "parents": []
            }
        ]),
        Some(schema),
    )
    .expect("entities");
    let context = Context::from_json_value(
        serde_json::json!({
            "scopes": context.scopes,
            "sender_constrained": context.sender_constrained,
            "delegation_depth": context.delegation_depth,
            "actors": context.actors,
            "subject": context.subject,
        }),
        Some((schema, &action)),
    )
    .expect("context");
    let request =
        cedar_policy::Request::new(principal, action, resource_uid, context, Some(schema))
            .expect("request");
    (request, entities)
}

fn build_request(c: &mut Criterion) {
    let (client, resource, context) = facts();
    let empty = PolicySet::empty();
    let cedar_empty = cedar_policy::PolicySet::new();
    let authorizer = Authorizer::new();
    let mut group = c.benchmark_group("request_then_empty_set");
    let request = Request::new(&client, Grant::ClientCredentials, &resource, &context);
    group.bench_function("direct (the crate's decide)", |b| {
        b.iter(|| empty.decide(black_box(&request)))
    });
    group.bench_function("json with schema", |b| {
        b.iter(|| {
            let (request, entities) = json_request(&client, &resource, &context);
            authorizer.is_authorized(&request, &cedar_empty, &entities)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = decide, build_request
}
criterion_main!(benches);
