use proptest::prelude::*;

use super::*;

fn refused(id: &str, cedar: &str) -> PolicyError {
    match check_record(id, cedar) {
        Ok(summary) => panic!("accepted {cedar:?}: {summary:?}"),
        Err(e) => e,
    }
}

fn ids(summary: &RecordSummary) -> Vec<&str> {
    summary.policies.iter().map(|p| p.id.as_str()).collect()
}

#[test]
fn one_policy_is_named_by_its_record() {
    let summary = check_record("ops.allow", "permit(principal, action, resource);").unwrap();
    assert_eq!(ids(&summary), ["ops.allow"]);
    assert_eq!(summary.policies[0].effect, Effect::Permit);
    assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
}

#[test]
fn several_policies_are_numbered_by_position() {
    let summary = check_record(
        "r",
        "permit(principal, action, resource);\n\
         forbid(principal, action, resource) when { context.delegation_depth > 2 };\n\
         permit(principal == Custos::Client::\"ci\", action, resource);",
    )
    .unwrap();
    assert_eq!(ids(&summary), ["r#0", "r#1", "r#2"]);
    let effects: Vec<Effect> = summary.policies.iter().map(|p| p.effect).collect();
    assert_eq!(effects, [Effect::Permit, Effect::Forbid, Effect::Permit]);
}

#[test]
fn id_annotation_names_the_policy_under_its_record() {
    let summary = check_record(
        "team-a",
        "@id(\"no-sensitive\")\n\
         forbid(principal, action, resource) when { resource.tags.contains(\"sensitive\") };\n\
         permit(principal, action, resource);",
    )
    .unwrap();
    assert_eq!(ids(&summary), ["team-a/no-sensitive", "team-a#1"]);

    let single =
        check_record("one", "@id(\"named\") permit(principal, action, resource);").unwrap();
    assert_eq!(ids(&single), ["one/named"]);
}

#[test]
fn duplicate_id_annotations_in_one_record_are_refused() {
    let e = refused(
        "r",
        "@id(\"x\") permit(principal, action, resource);\n\
         @id(\"x\") forbid(principal, action, resource);",
    );
    assert_eq!(e.kind(), PolicyErrorKind::DuplicateId);
    assert!(e.to_string().contains("`r/x`"), "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn id_annotation_with_an_invalid_name_is_refused() {
    for name in [
        "",
        "has space",
        "slash/inside",
        "hash#inside",
        &"x".repeat(129),
    ] {
        let text = format!("@id({name:?}) permit(principal, action, resource);");
        let e = refused("r", &text);
        assert_eq!(e.kind(), PolicyErrorKind::InvalidName, "{name:?}: {e}");
    }
    let e = refused("r", "@id permit(principal, action, resource);");
    assert_eq!(e.kind(), PolicyErrorKind::InvalidName, "{e}");
}

#[test]
fn record_ids_follow_the_rules() {
    for good in [
        "a",
        "default.permit-registered",
        "team_a:ci-1",
        &"x".repeat(128),
    ] {
        assert!(is_valid_id(good), "{good:?}");
        assert!(check_record(good, "permit(principal, action, resource);").is_ok());
    }
    for bad in [
        "",
        "a b",
        "a/b",
        "a#b",
        "é",
        "a\nb",
        "a\"b",
        &"x".repeat(129),
    ] {
        assert!(!is_valid_id(bad), "{bad:?}");
        let e = refused(bad, "permit(principal, action, resource);");
        assert_eq!(e.kind(), PolicyErrorKind::InvalidId);
        assert_eq!(e.record(), None);
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn an_invalid_id_is_quoted_bounded_in_the_message() {
    let e = refused(&"x y".repeat(1000), "permit(principal, action, resource);");
    assert!(e.to_string().len() < 400, "{e}");
}

#[test]
fn empty_records_are_refused() {
    for text in ["", "   \n\t", "// only a comment\n"] {
        let e = refused("r", text);
        assert_eq!(e.kind(), PolicyErrorKind::Empty, "{text:?}: {e}");
        assert!(e.to_string().contains("holds no policy"), "{e}");
    }
}

#[test]
fn oversized_records_are_refused() {
    let one = "permit(principal, action, resource);\n";
    let text = one.repeat(MAX_RECORD_BYTES / one.len() + 1);
    let e = refused("r", &text);
    assert_eq!(e.kind(), PolicyErrorKind::TooLarge);
}

#[test]
fn templates_are_refused_with_a_clear_message() {
    let e = refused(
        "r",
        "permit(principal, action, resource);\n\
         permit(principal == ?principal, action, resource);",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Template);
    let message = e.to_string();
    assert!(message.contains("template"), "{message}");
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("not supported"), "{message}");
}

#[test]
fn parse_errors_give_cedar_reason_and_position() {
    let e = refused(
        "r",
        "permit(principal, action, resource)\nwhen { principal.owner == };",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Parse);
    let message = e.to_string();
    assert!(
        message.starts_with("policy record `r`: does not parse: "),
        "{message}"
    );
    assert!(message.contains("unexpected token"), "{message}");
    assert!(message.contains("line 2, column"), "{message}");
}

#[test]
fn unknown_attribute_is_a_validation_error_naming_it() {
    let e = refused(
        "r",
        "permit(principal, action, resource) when { principal.nope == \"x\" };",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Validation);
    let message = e.to_string();
    assert!(message.contains("attribute `nope`"), "{message}");
    assert!(message.contains("Custos::Client"), "{message}");
    assert!(message.contains("line 1, column 44"), "{message}");
}

#[test]
fn unknown_context_attribute_is_reported_once() {
    let e = refused(
        "r",
        "forbid(principal, action, resource) when { context.nope };",
    );
    let message = e.to_string();
    assert_eq!(message.matches("attribute `nope`").count(), 1, "{message}");
    assert!(!message.contains("more)"), "{message}");
}

#[test]
fn wrong_type_is_a_validation_error() {
    let e = refused(
        "r",
        "permit(principal, action, resource)\nwhen { principal.uses_static_secret == \"yes\" };",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Validation);
    let message = e.to_string();
    assert!(
        message.contains("Bool and String are not compatible"),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");

    let e = refused(
        "r",
        "forbid(principal, action, resource) when { context.delegation_depth > \"4\" };",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Validation, "{e}");
}

#[test]
fn unknown_action_is_a_validation_error() {
    let e = refused(
        "r",
        "permit(principal, action == Custos::Action::\"password\", resource);",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Validation);
    assert!(
        e.to_string()
            .contains("unrecognized action `Custos::Action::\"password\"`"),
        "{e}"
    );
}

#[test]
fn unknown_entity_type_is_a_validation_error() {
    let e = refused(
        "r",
        "permit(principal == User::\"alice\", action, resource);",
    );
    assert_eq!(e.kind(), PolicyErrorKind::Validation);
    assert!(e.to_string().contains("User"), "{e}");
}

#[test]
fn validation_messages_are_bounded() {
    let text: String = (0..50)
        .map(|i| format!("permit(principal, action, resource) when {{ principal.nope{i} }};\n"))
        .collect();
    let e = refused("r", &text);
    let message = e.to_string();
    assert!(
        message.len() <= crate::MAX_MESSAGE_BYTES,
        "{}",
        message.len()
    );
    assert!(message.contains("(and 47 more)"), "{message}");
}

#[test]
fn every_default_record_checks() {
    for (id, cedar) in crate::DEFAULT_POLICIES {
        let summary = check_record(id, cedar).unwrap();
        assert_eq!(ids(&summary), [*id]);
        assert!(summary.warnings.is_empty(), "{id}: {:?}", summary.warnings);
    }
}

#[test]
fn deeply_nested_text_is_refused_before_cedar_parses_it() {
    for depth in [crate::MAX_NESTING, 1_000, 30_000] {
        let text = format!(
            "permit(principal, action, resource) when {{ {}true{} }};",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let e = refused("r", &text);
        assert_eq!(e.kind(), PolicyErrorKind::TooComplex, "{e}");
        assert!(
            e.to_string()
                .contains("brackets nest deeper than 16 (line 1, column"),
            "{e}"
        );
        let text = format!(
            "permit(principal, action, resource) when {{ {}",
            "[".repeat(depth)
        );
        assert_eq!(refused("r", &text).kind(), PolicyErrorKind::TooComplex);
    }
}

#[test]
fn nesting_within_the_bound_is_parsed_and_validated() {
    let n = crate::MAX_NESTING - 1;
    let text = format!(
        "permit(principal, action, resource) when {{ {}true{} }};",
        "(".repeat(n),
        ")".repeat(n)
    );
    check_record("r", &text).unwrap();
    // Long flat chains within the bounds: parsed, validated.
    let text = format!(
        "permit(principal, action, resource) when {{ {} }};",
        vec!["context.delegation_depth < 5"; crate::MAX_OPERATORS / 3].join(" && ")
    );
    check_record("r", &text).unwrap();
    let text = format!(
        "permit(principal, action, resource) when {{ {}true{} }};",
        "if context.sender_constrained then ".repeat(crate::MAX_IFS),
        " else false".repeat(crate::MAX_IFS)
    );
    check_record("r", &text).unwrap();
}

#[test]
fn line_col_counts_characters_and_clamps() {
    let text = "ab\né€x\n";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 3), (2, 1));
    // After "é€" (2 + 3 bytes): column 3.
    assert_eq!(line_col(text, 8), (2, 3));
    // Inside a character, and past the end: no panic.
    assert_eq!(line_col(text, 4), (2, 1));
    assert_eq!(line_col(text, 1000), (3, 1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn check_record_never_panics_on_arbitrary_strings(id in ".{0,40}", cedar in ".{0,400}") {
        if let Err(e) = check_record(&id, &cedar) {
            prop_assert!(e.to_string().len() <= crate::MAX_MESSAGE_BYTES);
        }
    }

    #[test]
    fn check_record_never_panics_on_policy_like_text(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("permit".to_owned()), Just("forbid".to_owned()), Just("(".to_owned()),
                Just(")".to_owned()), Just("principal".to_owned()), Just("action".to_owned()),
                Just("resource".to_owned()), Just(",".to_owned()), Just(";".to_owned()),
                Just("when".to_owned()), Just("unless".to_owned()), Just("{".to_owned()),
                Just("}".to_owned()), Just("==".to_owned()), Just(".".to_owned()),
                Just("context".to_owned()), Just("tags".to_owned()), Just("contains".to_owned()),
                Just("@id(\"x\")".to_owned()), Just("?principal".to_owned()),
                Just("Custos::Client::\"a\"".to_owned()), Just("\"s\"".to_owned()),
                Just("1".to_owned()), Just("in".to_owned()), Just("is".to_owned()),
                Just("&&".to_owned()), Just("ip(\"1.2.3.4\")".to_owned()),
                Just("delegation_depth".to_owned()), Just("+".to_owned()), Just(">".to_owned()),
                "[a-z]{1,6}",
            ],
            0..40,
        )
    ) {
        let text = parts.join(" ");
        if let Err(e) = check_record("r", &text) {
            prop_assert!(e.to_string().len() <= crate::MAX_MESSAGE_BYTES);
        }
    }
}

#[test]
fn the_readme_examples_check() {
    let readme = include_str!("../../README.md");
    let blocks: Vec<&str> = readme
        .split("```cedar\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 2);
    let defaults = check_record("defaults", blocks[0]).unwrap();
    assert_eq!(defaults.policies.len(), 3);
    let mine = check_record("prod-rules", blocks[1]).unwrap();
    assert_eq!(
        ids(&mine),
        ["prod-rules/prod-exchange", "prod-rules/write-needs-dpop"]
    );
    // The defaults as the README shows them are the shipped text.
    for (_, cedar) in crate::DEFAULT_POLICIES {
        assert!(blocks[0].contains(cedar), "{cedar}");
    }
}
