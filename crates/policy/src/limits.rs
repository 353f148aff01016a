//! Bounds on how deep a policy may nest, checked on the text before Cedar
//! parses it.
//!
//! Cedar's parser turns its syntax tree into expressions recursively, with
//! no guard on the depth of the stack (its typechecker and evaluator have
//! one): about 35 nested parentheses overflow a 2 MiB thread stack in a
//! debug build, about 150 in a release build, and a stack overflow aborts
//! the process. Long operator chains build deep expressions too. So the
//! text is scanned first — strings and comments skipped — and a record is
//! refused when one policy nests brackets deeper than [`MAX_NESTING`],
//! holds more than [`MAX_IFS`] `if` expressions or more than
//! [`MAX_OPERATORS`] operators. No sensible policy comes near these.

/// The deepest `(`, `[` and `{` may nest (the policy's own `permit(` and
/// `when {` count).
pub const MAX_NESTING: usize = 16;

/// The most `if … then … else` expressions one policy may hold.
pub const MAX_IFS: usize = 32;

/// The most operators (`.`, `&&`, `||`, comparisons, arithmetic, `in`,
/// `has`, `like`, `is`) one policy may hold.
pub const MAX_OPERATORS: usize = 1024;

/// What went over a bound, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TooComplex {
    pub(crate) what: String,
    pub(crate) line: usize,
    pub(crate) column: usize,
}

/// Scans `text` as Cedar tokens and checks the bounds. Text that would not
/// lex (an unterminated string, a stray character) is left to Cedar's
/// parser to refuse with its own message.
pub(crate) fn check(text: &str) -> Result<(), TooComplex> {
    check_with(text, MAX_NESTING, MAX_IFS, MAX_OPERATORS)
}

/// Whether one policy's `text` is small enough to hand to Cedar's
/// recursive conversions that [`check`] does not protect (its JSON form:
/// a chain of a few hundred operators overflows a 2 MiB stack in a debug
/// build). The index looks for guards only in such policies.
pub(crate) fn is_small(text: &str) -> bool {
    check_with(text, MAX_NESTING, 8, 64).is_ok()
}

fn check_with(
    text: &str,
    max_nesting: usize,
    max_ifs: usize,
    max_operators: usize,
) -> Result<(), TooComplex> {
    let mut scan = Scan {
        text,
        chars: text.char_indices().peekable(),
        line: 1,
        line_start: 0,
    };
    let mut depth = 0usize;
    let mut ifs = 0usize;
    let mut operators = 0usize;
    while let Some((at, c)) = scan.next() {
        let over = |scan: &Scan<'_>, what: String| {
            let (line, column) = scan.position(at);
            Err(TooComplex { what, line, column })
        };
        match c {
            '"' => scan.skip_string(),
            '/' if scan.peek() == Some('/') => scan.skip_line(),
            '(' | '[' | '{' => {
                depth += 1;
                if depth > max_nesting {
                    return over(&scan, format!("brackets nest deeper than {max_nesting}"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ';' => {
                depth = 0;
                ifs = 0;
                operators = 0;
            }
            '.' | '+' | '*' | '<' | '>' | '=' | '!' | '&' | '|' | '-' => {
                // `==`, `!=`, `<=`, `>=`, `&&`, `||` count once.
                if matches!(
                    (c, scan.peek()),
                    ('=' | '!' | '<' | '>', Some('=')) | ('&', Some('&')) | ('|', Some('|'))
                ) {
                    scan.next();
                }
                operators += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let word = scan.word(at);
                match word {
                    "if" => {
                        ifs += 1;
                        if ifs > max_ifs {
                            return over(
                                &scan,
                                format!("a policy holds more than {max_ifs} `if` expressions"),
                            );
                        }
                    }
                    "in" | "has" | "like" | "is" => operators += 1,
                    _ => {}
                }
            }
            _ => {}
        }
        if operators > max_operators {
            return over(
                &scan,
                format!("a policy holds more than {max_operators} operators"),
            );
        }
    }
    Ok(())
}

struct Scan<'a> {
    text: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    line: usize,
    line_start: usize,
}

impl Scan<'_> {
    fn next(&mut self) -> Option<(usize, char)> {
        let (at, c) = self.chars.next()?;
        if c == '\n' {
            self.line += 1;
            self.line_start = at + 1;
        }
        Some((at, c))
    }

    fn peek(&mut self) -> Option<char> {
        self.chars.peek().map(|(_, c)| *c)
    }

    fn skip_string(&mut self) {
        while let Some((_, c)) = self.next() {
            match c {
                '\\' => {
                    self.next();
                }
                '"' => return,
                _ => {}
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some((_, c)) = self.next() {
            if c == '\n' {
                return;
            }
        }
    }

    /// The identifier starting at `start` (its first character consumed).
    fn word(&mut self, start: usize) -> &str {
        let mut end = self.text.len();
        while let Some(&(at, c)) = self.chars.peek() {
            if c.is_alphanumeric() || c == '_' {
                self.next();
            } else {
                end = at;
                break;
            }
        }
        self.text.get(start..end).unwrap_or("")
    }

    /// Line and column (in characters) of byte `at` on the current line.
    fn position(&self, at: usize) -> (usize, usize) {
        let column = self
            .text
            .get(self.line_start..at)
            .map_or(1, |s| s.chars().count() + 1);
        (self.line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(body: &str) -> String {
        format!("permit(principal, action, resource) when {{ {body} }};")
    }

    #[test]
    fn ordinary_policies_pass() {
        let text = "// a comment with ((((((((((((((((((((( and if if if\n\
             forbid(principal, action, resource)\n\
             when { principal.uses_static_secret && resource.tags.contains(\"((((((((((((((((((((\") }\n\
             unless { context.scopes.containsAny([\"a\", \"b\"]) || (context.delegation_depth <= 2 && \
             (if context.sender_constrained then true else false)) };";
        assert_eq!(check(text), Ok(()));
    }

    #[test]
    fn nesting_past_the_bound_is_refused_with_its_place() {
        // `permit(` closes before `when {`: depth 1 + the parentheses.
        let ok = policy(&format!(
            "{}true{}",
            "(".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        ));
        assert_eq!(check(&ok), Ok(()));
        let deep = policy(&format!(
            "{}true{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        ));
        let e = check(&deep).unwrap_err();
        assert!(e.what.contains("nest deeper"), "{e:?}");
        assert_eq!((e.line, e.column), (1, 44 + MAX_NESTING - 1));
    }

    #[test]
    fn the_bounds_reset_for_each_policy() {
        let one = policy(&vec!["1 == 1"; MAX_OPERATORS / 2].join(" && "));
        assert!(check(&one).is_ok());
        assert!(check(&format!("{one}\n{one}\n{one}")).is_ok());
    }

    #[test]
    fn too_many_ifs_or_operators_are_refused() {
        let ifs = policy(&format!(
            "{}true{}",
            "if true then ".repeat(MAX_IFS + 1),
            " else false".repeat(MAX_IFS + 1)
        ));
        assert!(check(&ifs).unwrap_err().what.contains("`if`"));
        let ops = policy(&format!(
            "{} == 1",
            vec!["1"; MAX_OPERATORS + 1].join(" + ")
        ));
        assert!(check(&ops).unwrap_err().what.contains("operators"));
        let words = policy(&vec!["principal in resource"; MAX_OPERATORS + 1].join(" "));
        assert!(check(&words).unwrap_err().what.contains("operators"));
    }

    #[test]
    fn unterminated_strings_and_odd_text_are_left_to_cedar() {
        for text in ["\"", "\"\\", "//", "é(", "))))", "\u{0}"] {
            assert_eq!(check(text), Ok(()), "{text:?}");
        }
    }
}
