//! Authorization details in words, for the consent page (RFC 9396 §3: the
//! AS shows the resource owner what it is asked to authorize).

use super::{
    entry_type, string_array, AuthorizationDetails, COMMON_ARRAY_FIELDS, IDENTIFIER, LOCATIONS,
    TYPE,
};
use serde_json::Value;

/// Longest line [`describe`] returns, in characters (the last one `…` when
/// cut).
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// One line of plain text per entry (the page template escapes it), e.g.
/// `payment_initiation at https://bank.example/: actions initiate, status;
/// instructedAmount {"amount":"123.50","currency":"EUR"}`: the type, where,
/// the common fields, then every other field as compact JSON (strings as
/// they are). Control characters are dropped; lines longer than
/// [`MAX_DESCRIPTION_CHARS`] are cut and end in `…`.
pub fn describe(details: &AuthorizationDetails) -> Vec<String> {
    details
        .entries()
        .iter()
        .map(|e| bounded(&describe_entry(e)))
        .collect()
}

/// Whether every entry can be shown whole: a person must never consent to
/// what was cut from the page (the token would carry it all).
pub fn fits_on_consent_page(details: &AuthorizationDetails) -> bool {
    details.entries().iter().all(|entry| {
        describe_entry(entry)
            .chars()
            .filter(|c| !c.is_control() && !is_invisible_format(*c))
            .count()
            <= MAX_DESCRIPTION_CHARS
    })
}

fn describe_entry(entry: &Value) -> String {
    let mut line = entry_type(entry).unwrap_or("?").to_owned();
    let locations: Vec<&str> = string_array(entry, LOCATIONS).collect();
    if !locations.is_empty() {
        line.push_str(" at ");
        line.push_str(&locations.join(", "));
    }
    let mut parts: Vec<String> = Vec::new();
    for field in COMMON_ARRAY_FIELDS.iter().filter(|f| **f != LOCATIONS) {
        if let Some(value) = entry.get(*field) {
            let text = match value.as_array() {
                Some(items) if items.iter().all(Value::is_string) => {
                    string_array(entry, field).collect::<Vec<_>>().join(", ")
                }
                _ => plain(value),
            };
            parts.push(format!("{field} {text}"));
        }
    }
    if let Some(identifier) = entry.get(IDENTIFIER) {
        parts.push(format!("{IDENTIFIER} {}", plain(identifier)));
    }
    if let Some(fields) = entry.as_object() {
        for (field, value) in fields {
            let common = field == TYPE
                || field == IDENTIFIER
                || COMMON_ARRAY_FIELDS.contains(&field.as_str());
            if !common {
                parts.push(format!("{field} {}", plain(value)));
            }
        }
    }
    if !parts.is_empty() {
        line.push_str(": ");
        line.push_str(&parts.join("; "));
    }
    line
}

/// A string as it is, anything else as compact JSON.
fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Invisible formatting characters (Unicode category Cf) that can reorder
/// or hide what a person reads: bidi embeddings, overrides and isolates,
/// zero-width characters, the soft hyphen, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

fn bounded(line: &str) -> String {
    let clean: Vec<char> = line
        .chars()
        .filter(|c| !c.is_control() && !is_invisible_format(*c))
        .collect();
    if clean.len() <= MAX_DESCRIPTION_CHARS {
        return clean.into_iter().collect();
    }
    let mut cut: String = clean[..MAX_DESCRIPTION_CHARS - 1].iter().collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rar::tests::{parse, registry};
    use serde_json::json;

    #[test]
    fn rfc9396_describes_the_payment_example() {
        let details = parse(
            r#"[{"type":"payment_initiation","actions":["initiate","status"],"instructedAmount":{"currency":"EUR","amount":"123.50"}}]"#,
            &registry(),
        )
        .unwrap();
        let lines = describe(&details);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert!(
            line.starts_with("payment_initiation at https://bank.example/: actions initiate, status; instructedAmount {"),
            "{line}"
        );
        assert!(
            line.contains(r#""currency":"EUR""#) && line.contains(r#""amount":"123.50""#),
            "{line}"
        );
    }

    #[test]
    fn common_fields_come_first_and_strings_are_plain() {
        let details = parse(
            r#"[{"type":"account_information","privileges":["owner"],"identifier":"acct-1","datatypes":["balances","transactions"],"note":"monthly"}]"#,
            &registry(),
        )
        .unwrap();
        assert_eq!(
            describe(&details),
            vec!["account_information at https://bank.example/: datatypes balances, transactions; privileges owner; identifier acct-1; note monthly"]
        );
        let bare = parse(r#"[{"type":"file_access"}]"#, &registry()).unwrap();
        assert_eq!(
            describe(&bare),
            vec!["file_access at https://files.example/"]
        );
    }

    /// Nothing cut from the page may be consented to.
    #[test]
    fn rfc9396_3_what_cannot_be_shown_whole_does_not_fit() {
        let short = parse(
            r#"[{"type":"account_information","note":"x"}]"#,
            &registry(),
        )
        .unwrap();
        assert!(fits_on_consent_page(&short));
        let long = format!(
            r#"[{{"type":"account_information","note":"{}"}}]"#,
            "a".repeat(MAX_DESCRIPTION_CHARS)
        );
        let long = parse(&long, &registry()).unwrap();
        assert!(!fits_on_consent_page(&long));
    }

    #[test]
    fn lines_are_bounded_and_plain() {
        let long = format!(
            r#"[{{"type":"account_information","note":"a\u0007\u202eb\n{}"}}]"#,
            "é".repeat(1000)
        );
        let details = parse(&long, &registry()).unwrap();
        let line = &describe(&details)[0];
        assert_eq!(line.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(line.ends_with('…'));
        assert!(!line.chars().any(char::is_control));
        assert!(!line.chars().any(is_invisible_format));
        assert!(line.contains("note ab"));
    }

    #[test]
    fn one_line_per_entry() {
        let details = parse(
            &json!([{"type": "file_access", "actions": ["read"]}, {"type": "account_information"}])
                .to_string(),
            &registry(),
        )
        .unwrap();
        assert_eq!(
            describe(&details),
            vec![
                "file_access at https://files.example/: actions read",
                "account_information at https://bank.example/"
            ]
        );
    }
}
