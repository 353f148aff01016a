//! Form parameters (`application/x-www-form-urlencoded`) as OAuth reads them.
//!
//! RFC 6749 §3.1 and §3.2: parameters sent without a value are treated as
//! omitted, and request parameters MUST NOT be included more than once. RFC
//! 8707 makes `resource` the exception: it may repeat.

use crate::OAuthError;
use std::collections::BTreeMap;

/// Most distinct parameters a request may carry; a defence against
/// parameter floods, far above anything a real client sends.
pub const MAX_PARAMETERS: usize = 64;

/// Parameter names that may legitimately appear more than once: RFC 8707
/// `resource` and RFC 8693 `audience`.
const MULTI_VALUED: &[&str] = &["resource", "audience"];

/// Parsed form parameters: at most one value per name, except the
/// multi-valued names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormParams {
    values: BTreeMap<String, Vec<String>>,
}

impl FormParams {
    /// Parses a form body. Repeated single-valued parameters are refused with
    /// `invalid_request`; empty values are dropped.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        // Every occurrence counts towards "more than once", empty or not;
        // only then are empty values dropped as omitted.
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (count, (name, value)) in form_urlencoded::parse(body).enumerate() {
            if count >= MAX_PARAMETERS {
                return Err(OAuthError::invalid_request(format!(
                    "too many parameters (at most {MAX_PARAMETERS})"
                )));
            }
            // No store keeps a NUL in text (PostgreSQL refuses it), and no
            // OAuth parameter has one.
            if name.contains('\0') || value.contains('\0') {
                return Err(OAuthError::invalid_request(
                    "parameters must not contain NUL characters",
                ));
            }
            values
                .entry(name.into_owned())
                .or_default()
                .push(value.into_owned());
        }
        for (name, list) in &values {
            if list.len() > 1 && !MULTI_VALUED.contains(&name.as_str()) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{}' is included more than once",
                    printable(name)
                )));
            }
        }
        values.retain(|_, list| {
            list.retain(|value| !value.is_empty());
            !list.is_empty()
        });
        Ok(FormParams { values })
    }

    /// The single value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|list| list.first())
            .map(String::as_str)
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name).ok_or_else(|| {
            OAuthError::invalid_request(format!("missing required parameter '{name}'"))
        })
    }

    /// Every value of a multi-valued parameter, in order.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Every (name, value) pair, by name.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values
            .iter()
            .flat_map(|(name, list)| list.iter().map(move |v| (name.as_str(), v.as_str())))
    }

    /// The parameters as a form body, leaving out `except`; parsing it
    /// gives back the same parameters.
    pub fn encode_except(&self, except: &[&str]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.pairs().filter(|(n, _)| !except.contains(n)) {
            out.append_pair(name, value);
        }
        out.finish()
    }
}

/// A parameter name made safe to echo in an error description.
fn printable(name: &str) -> String {
    crate::error::echo(name, 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    proptest::proptest! {
        /// Encoding then parsing gives back the same parameters.
        #[test]
        fn encode_round_trips(pairs in proptest::collection::btree_map("[a-z_]{1,8}", "\\PC{1,20}", 0..8)) {
            let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
            let form = FormParams::parse(body.as_bytes()).unwrap();
            let again = FormParams::parse(form.encode_except(&[]).as_bytes()).unwrap();
            proptest::prop_assert_eq!(&again, &form);
            let without = FormParams::parse(form.encode_except(&["scope"]).as_bytes()).unwrap();
            proptest::prop_assert!(!without.contains("scope"));
        }
    }

    #[test]
    fn nul_characters_are_refused() {
        for body in ["client_id=a%00b", "a%00=b", "scope=re%00ad"] {
            let err = FormParams::parse(body.as_bytes()).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidRequest, "{body}");
        }
    }

    #[test]
    fn rfc6749_3_2_repeated_parameter_is_refused() {
        let err = FormParams::parse(b"grant_type=client_credentials&scope=a&scope=b").unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        assert!(err.description.contains("scope"));
    }

    #[test]
    fn rfc6749_3_2_repeated_parameter_is_refused_even_when_one_is_empty() {
        assert!(FormParams::parse(b"grant_type=client_credentials&scope=&scope=read").is_err());
        assert!(FormParams::parse(b"scope=read&scope").is_err());
    }

    #[test]
    fn rfc6749_3_1_empty_value_is_treated_as_omitted() {
        let form = FormParams::parse(b"grant_type=client_credentials&scope=").unwrap();
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
    }

    #[test]
    fn rfc8707_resource_may_repeat() {
        let form = FormParams::parse(b"resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb").unwrap();
        assert_eq!(form.all("resource"), ["https://a", "https://b"]);
    }

    #[test]
    fn percent_and_plus_decoding() {
        let form = FormParams::parse(b"scope=read+write&x=%41").unwrap();
        assert_eq!(form.get("scope"), Some("read write"));
        assert_eq!(form.get("x"), Some("A"));
    }

    #[test]
    fn parameter_flood_is_refused() {
        let body: String = (0..100).map(|i| format!("p{i}=v&")).collect();
        assert!(FormParams::parse(body.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = FormParams::parse(&body);
        }
    }
}
