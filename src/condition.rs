//! `when` conditions: parsed once when the runbook is read (so `validate` can check every
//! reference in them), evaluated each time the engine decides whether a step runs.
//!
//! Grammar, loosest first: `||`, `&&`, `!`, then one `==`/`!=` comparison between two
//! operands, then parentheses and operands. `!` applies to a whole comparison:
//! `!steps.a.stdout == 'x'` means `!(steps.a.stdout == 'x')`. Operands are references
//! (shared with templates), quoted strings, integers and `true`/`false`; every value is
//! text, compared as numbers when both sides are integers. Nesting is limited, so that
//! hostile input can not overflow the stack.

use crate::template::{Reference, TextError, is_path_char, parse_path, pos};

/// How deep parentheses and `!` may nest.
const MAX_DEPTH: usize = 64;

/// What `steps.ID.status` can be when a condition is evaluated.
const STATUSES: [&str; 3] = ["succeeded", "failed", "skipped"];

/// A parsed `when` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    /// `a || b || …`, flat so that long chains do not nest.
    Any(Vec<Expr>),
    /// `a && b && …`
    All(Vec<Expr>),
    Not(Box<Expr>),
    Compare {
        left: Box<Expr>,
        equal: bool,
        right: Box<Expr>,
    },
    /// `offset`/`len`: where the operand is in the text, in chars.
    Ref {
        reference: Reference,
        offset: u32,
        len: u32,
    },
    Literal {
        text: String,
        offset: u32,
        len: u32,
    },
}

impl Condition {
    /// Parses `text`; the error is the first problem in it.
    pub fn parse(text: &str) -> Result<Condition, TextError> {
        let chars: Vec<char> = text.chars().collect();
        let tokens = tokenize(&chars)?;
        if tokens.is_empty() {
            return Err(
                TextError::new(0, pos(chars.len()).max(1), "empty condition")
                    .with_help("write a condition such as `steps.ID.status == 'failed'`"),
            );
        }
        let mut parser = Parser {
            chars: &chars,
            tokens,
            next: 0,
            depth: 0,
        };
        let expr = parser.or()?;
        if let Some(token) = parser.peek() {
            let shown = parser.text_of(token);
            let error = token.error(format!("unexpected `{shown}`"));
            return Err(match token.kind {
                Kind::RParen => TextError {
                    message: "unmatched `)`".into(),
                    ..error
                },
                Kind::Eq | Kind::Ne => {
                    error.with_help("comparisons can not be chained: join them with `&&`")
                }
                _ => error.with_help("join conditions with `&&` or `||`"),
            });
        }
        Ok(Condition { expr })
    }

    /// Every reference with its char offset and length in the text.
    pub fn references(&self) -> Vec<(&Reference, u32, u32)> {
        let mut found = Vec::new();
        self.expr.references(&mut found);
        found
    }

    /// Evaluates; `resolve` gives each reference's value as text (`None`: undefined, which
    /// compares as "").
    pub fn eval(&self, resolve: &dyn Fn(&Reference) -> Option<String>) -> bool {
        self.expr.truthy(resolve)
    }
}

impl Expr {
    fn references<'a>(&'a self, found: &mut Vec<(&'a Reference, u32, u32)>) {
        match self {
            Self::Any(items) | Self::All(items) => {
                for item in items {
                    item.references(found);
                }
            }
            Self::Not(inner) => inner.references(found),
            Self::Compare { left, right, .. } => {
                left.references(found);
                right.references(found);
            }
            Self::Ref {
                reference,
                offset,
                len,
            } => found.push((reference, *offset, *len)),
            Self::Literal { .. } => {}
        }
    }

    /// The expression's value as text: a condition's is `true` or `false`.
    fn value(&self, resolve: &dyn Fn(&Reference) -> Option<String>) -> String {
        match self {
            Self::Ref { reference, .. } => {
                let value = resolve(reference).unwrap_or_default();
                match reference {
                    Reference::StepStdout(_) => value.trim().to_string(),
                    _ => value,
                }
            }
            Self::Literal { text, .. } => text.clone(),
            _ => self.truthy(resolve).to_string(),
        }
    }

    fn truthy(&self, resolve: &dyn Fn(&Reference) -> Option<String>) -> bool {
        match self {
            Self::Any(items) => items.iter().any(|item| item.truthy(resolve)),
            Self::All(items) => items.iter().all(|item| item.truthy(resolve)),
            Self::Not(inner) => !inner.truthy(resolve),
            Self::Compare { left, equal, right } => {
                same(&left.value(resolve), &right.value(resolve)) == *equal
            }
            Self::Ref { .. } | Self::Literal { .. } => {
                let value = self.value(resolve);
                !value.is_empty() && value != "false" && value != "0"
            }
        }
    }
}

/// Equal as integers when both are integers (`0` and ` 0`), else as text.
fn same(left: &str, right: &str) -> bool {
    match (left.trim().parse::<i64>(), right.trim().parse::<i64>()) {
        (Ok(l), Ok(r)) => l == r,
        _ => left == right,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    LParen,
    RParen,
    Not,
    And,
    Or,
    Eq,
    Ne,
    Str(String),
    Word(String),
}

#[derive(Debug)]
struct Token {
    kind: Kind,
    /// Char offset and length in the text.
    offset: usize,
    len: usize,
}

impl Token {
    fn error(&self, message: impl Into<String>) -> TextError {
        TextError::new(pos(self.offset), pos(self.len).max(1), message)
    }
}

fn tokenize(chars: &[char]) -> Result<Vec<Token>, TextError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let start = i;
        let error = |len: usize, message: &str| TextError::new(pos(start), pos(len), message);
        let kind = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('(', _) => Kind::LParen,
            (')', _) => Kind::RParen,
            // `===` / `!==` from other languages: one clear message, at the whole operator.
            ('=' | '!', Some('=')) if chars.get(i + 2) == Some(&'=') => {
                let op: String = chars[i..i + 3].iter().collect();
                let fix = if c == '=' { "==" } else { "!=" };
                return Err(error(3, &format!("`{op}` is not an operator here"))
                    .with_help(format!("use `{fix}`")));
            }
            ('=', Some('=')) => Kind::Eq,
            ('!', Some('=')) => Kind::Ne,
            ('!', _) => Kind::Not,
            ('&', Some('&')) => Kind::And,
            ('|', Some('|')) => Kind::Or,
            ('=', _) => return Err(error(1, "`=` is not a comparison").with_help("use `==`")),
            ('&', _) => return Err(error(1, "unexpected `&`").with_help("use `&&`")),
            ('|', _) => return Err(error(1, "unexpected `|`").with_help("use `||`")),
            ('\'' | '"', _) => {
                let (text, end) = string(chars, i).ok_or_else(|| {
                    error(chars.len() - i, "unclosed string")
                        .with_help(format!("close it with `{c}`"))
                })?;
                i = end;
                tokens.push(Token {
                    kind: Kind::Str(text),
                    offset: start,
                    len: end - start,
                });
                continue;
            }
            (c, _) if is_path_char(c) => {
                while i < chars.len() && is_path_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let help = match word.as_str() {
                    "and" => Some("use `&&`"),
                    "or" => Some("use `||`"),
                    "not" => Some("use `!`"),
                    _ => None,
                };
                if let Some(help) = help {
                    let message = format!("`{word}` is not an operator here");
                    return Err(error(i - start, &message).with_help(help));
                }
                tokens.push(Token {
                    kind: Kind::Word(word),
                    offset: start,
                    len: i - start,
                });
                continue;
            }
            (c, _) => {
                return Err(error(1, &format!("unexpected `{c}`"))
                    .with_help("a condition is made of references, quoted strings, numbers, `==`, `!=`, `&&`, `||`, `!` and parentheses"));
            }
        };
        let len = if matches!(kind, Kind::Ne | Kind::Eq | Kind::And | Kind::Or) {
            2
        } else {
            1
        };
        i += len;
        tokens.push(Token {
            kind,
            offset: start,
            len,
        });
    }
    Ok(tokens)
}

/// The string starting with the quote at `start`, unescaped, and the index after it.
/// `\` escapes the quote and itself; before anything else it is kept as written.
fn string(chars: &[char], start: usize) -> Option<(String, usize)> {
    let quote = chars[start];
    let mut text = String::new();
    let mut i = start + 1;
    loop {
        match (*chars.get(i)?, chars.get(i + 1).copied()) {
            (c, _) if c == quote => return Some((text, i + 1)),
            ('\\', Some(e)) if e == quote || e == '\\' => {
                text.push(e);
                i += 2;
            }
            (c, _) => {
                text.push(c);
                i += 1;
            }
        }
    }
}

struct Parser<'t> {
    chars: &'t [char],
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn eat(&mut self, kind: &Kind) -> bool {
        let found = self.peek().is_some_and(|t| t.kind == *kind);
        if found {
            self.next += 1;
        }
        found
    }

    fn text_of(&self, token: &Token) -> String {
        self.chars[token.offset..token.offset + token.len]
            .iter()
            .collect()
    }

    /// Where the text ends, for "expected … here" at the end.
    fn end_error(&self, message: &str) -> TextError {
        TextError::new(pos(self.chars.len()), 1, message)
    }

    /// One level deeper into `(` or `!`, refused past `MAX_DEPTH`.
    fn enter(&mut self, at: usize) -> Result<(), TextError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.tokens[at].error(format!(
                "condition nested too deeply (more than {MAX_DEPTH} levels)"
            )));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, TextError> {
        let mut items = vec![self.and()?];
        while self.eat(&Kind::Or) {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Any(items)
        })
    }

    fn and(&mut self) -> Result<Expr, TextError> {
        let mut items = vec![self.not()?];
        while self.eat(&Kind::And) {
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::All(items)
        })
    }

    fn not(&mut self) -> Result<Expr, TextError> {
        if self.peek().is_some_and(|t| t.kind == Kind::Not) {
            self.enter(self.next)?;
            self.next += 1;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, TextError> {
        let left = self.operand()?;
        let equal = if self.eat(&Kind::Eq) {
            true
        } else if self.eat(&Kind::Ne) {
            false
        } else {
            return Ok(left);
        };
        let right = self.operand()?;
        check_status(&left, &right)?;
        check_status(&right, &left)?;
        Ok(Expr::Compare {
            left: Box::new(left),
            equal,
            right: Box::new(right),
        })
    }

    fn operand(&mut self) -> Result<Expr, TextError> {
        let Some(token) = self.tokens.get(self.next) else {
            return Err(self
                .end_error("the condition ends where a value was expected")
                .with_help("a value is a reference, a quoted string or a number"));
        };
        let (offset, len) = (pos(token.offset), pos(token.len));
        match &token.kind {
            Kind::LParen => {
                let open = self.next;
                self.enter(open)?;
                self.next += 1;
                let inner = self.or()?;
                self.depth -= 1;
                if self.eat(&Kind::RParen) {
                    return Ok(inner);
                }
                Err(match self.peek() {
                    None => self.tokens[open]
                        .error("unclosed `(`")
                        .with_help("close it with `)`"),
                    Some(token) => {
                        token.error(format!("expected `)`, found `{}`", self.text_of(token)))
                    }
                })
            }
            Kind::Str(text) => {
                let text = text.clone();
                self.next += 1;
                Ok(Expr::Literal { text, offset, len })
            }
            Kind::Word(word) => {
                let expr = word_operand(word, offset, len)?;
                self.next += 1;
                Ok(expr)
            }
            _ => Err(token
                .error(format!("unexpected `{}`", self.text_of(token)))
                .with_help("expected a value: a reference, a quoted string or a number")),
        }
    }
}

/// A bare word: `true`/`false`, an integer, or a reference.
fn word_operand(word: &str, offset: u32, len: u32) -> Result<Expr, TextError> {
    let digits = word.strip_prefix('-').unwrap_or(word);
    let is_integer = !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit());
    if is_integer || word == "true" || word == "false" {
        return Ok(Expr::Literal {
            text: word.to_string(),
            offset,
            len,
        });
    }
    let is_root = matches!(word, "vars" | "host" | "steps" | "secrets");
    if !word.contains('.') && !is_root {
        return Err(
            TextError::new(offset, len, format!("unknown word `{word}`"))
                .with_help(format!("to compare with text, quote it: `'{word}'`")),
        );
    }
    match parse_path(word) {
        Ok(reference) => Ok(Expr::Ref {
            reference,
            offset,
            len,
        }),
        Err(error) => Err(error.shifted(offset)),
    }
}

/// `steps.ID.status == 'faild'` can never hold: an error, not a silent `false`.
fn check_status(side: &Expr, other: &Expr) -> Result<(), TextError> {
    let (
        Expr::Ref {
            reference: reference @ Reference::StepStatus(_),
            ..
        },
        Expr::Literal { text, offset, len },
    ) = (side, other)
    else {
        return Ok(());
    };
    if STATUSES.contains(&text.as_str()) {
        return Ok(());
    }
    let error = TextError::new(*offset, *len, format!("`{reference}` is never `{text}`"));
    Err(match crate::diagnostic::did_you_mean(text, STATUSES) {
        Some(best) => error.with_help(format!("did you mean `{best}`?")),
        None => error.with_help("a step's status is `succeeded`, `failed` or `skipped`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triple_equals_is_refused_with_the_operator_to_use() {
        let e = Condition::parse("steps.a.status === 'failed'").unwrap_err();
        assert_eq!((e.offset, e.len), (15, 3));
        assert_eq!(e.message, "`===` is not an operator here");
        assert_eq!(e.help.as_deref(), Some("use `==`"));
        let e = Condition::parse("vars.x !== '1'").unwrap_err();
        assert_eq!(e.help.as_deref(), Some("use `!=`"));
    }

    fn state(reference: &Reference) -> Option<String> {
        match reference {
            Reference::StepStatus(id) if id == "promote" => Some("failed".into()),
            Reference::StepStatus(id) if id == "ping" => Some("succeeded".into()),
            Reference::StepExitCode(id) if id == "promote" => Some("0".into()),
            Reference::StepExitCode(id) if id == "ping" => Some("2".into()),
            Reference::StepStdout(id) if id == "role" => Some("primary\n".into()),
            Reference::Var(name) if name == "site" => Some("saitama-nishi".into()),
            Reference::Var(name) if name == "yes" => Some("yes".into()),
            Reference::Var(name) if name == "off" => Some("false".into()),
            Reference::Var(name) if name == "zero" => Some("0".into()),
            Reference::Var(name) if name == "blank" => Some(String::new()),
            Reference::HostName => Some("db-1".into()),
            _ => None,
        }
    }

    fn eval(text: &str) -> bool {
        Condition::parse(text).unwrap().eval(&state)
    }

    fn error(text: &str) -> TextError {
        Condition::parse(text).unwrap_err()
    }

    fn at(e: &TextError) -> (u32, u32) {
        (e.offset, e.len)
    }

    #[test]
    fn compares_step_status_with_a_string() {
        assert!(eval("steps.promote.status == 'failed'"));
        assert!(!eval("steps.promote.status != \"failed\""));
        assert!(eval("steps.ping.status == 'succeeded'"));
    }

    #[test]
    fn numbers_compare_numerically_and_text_as_text() {
        assert!(eval("steps.promote.exit_code == 0"));
        assert!(eval("steps.promote.exit_code == '00'"));
        assert!(eval("steps.ping.exit_code != 0"));
        assert!(eval(
            "steps.ping.exit_code == -0 || steps.ping.exit_code == 2"
        ));
        assert!(!eval("vars.site == 0"));
        assert!(!eval("'1.0' == 1"));
    }

    #[test]
    fn stdout_is_trimmed_before_comparing() {
        assert!(eval("steps.role.stdout == 'primary'"));
    }

    #[test]
    fn undefined_compares_as_empty() {
        assert!(eval("vars.nope == ''"));
        assert!(!eval("vars.nope"));
    }

    #[test]
    fn bare_operands_are_truthy_unless_empty_false_or_zero() {
        assert!(eval("vars.yes"));
        assert!(!eval("vars.off"));
        assert!(!eval("vars.zero"));
        assert!(!eval("vars.blank"));
        assert!(eval("true") && !eval("false") && eval("'x'") && !eval("''"));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // a || b && c  is  a || (b && c)
        assert!(eval("true || false && false"));
        assert!(!eval("(true || false) && false"));
        assert!(eval("false && false || true"));
    }

    #[test]
    fn not_applies_to_the_whole_comparison() {
        assert!(eval("!steps.promote.status == 'succeeded'"));
        assert!(eval("!!true"));
        assert!(eval("!(vars.yes && vars.off)"));
    }

    #[test]
    fn parenthesised_conditions_compare_as_true_or_false() {
        assert!(eval("(vars.site == 'saitama-nishi') == true"));
    }

    #[test]
    fn escapes_in_strings() {
        assert!(Condition::parse(r"vars.a == 'it\'s'").is_ok());
        let c = Condition::parse(r#"host.name != "a\"b\\""#).unwrap();
        assert!(c.eval(&state));
        let c = Condition::parse(r#"vars.x == "a\"b\\c""#).unwrap();
        assert!(c.eval(&|_| Some(r#"a"b\c"#.into())));
    }

    #[test]
    fn references_are_listed_with_positions() {
        let c = Condition::parse("steps.a.status == 'failed' && (vars.x || !host.vars.y)").unwrap();
        let refs: Vec<_> = c
            .references()
            .into_iter()
            .map(|(r, o, l)| (r.to_string(), o, l))
            .collect();
        assert_eq!(
            refs,
            [
                ("steps.a.status".to_string(), 0, 14),
                ("vars.x".to_string(), 31, 6),
                ("host.vars.y".to_string(), 42, 11),
            ]
        );
    }

    #[test]
    fn single_equals_suggests_double() {
        let e = error("vars.a = 'x'");
        assert_eq!(at(&e), (7, 1));
        assert_eq!(e.help.as_deref(), Some("use `==`"));
    }

    #[test]
    fn words_and_or_suggest_symbols() {
        let e = error("vars.a and vars.b");
        assert_eq!(at(&e), (7, 3));
        assert_eq!(e.help.as_deref(), Some("use `&&`"));
        let e = error("vars.a or vars.b");
        assert_eq!(e.help.as_deref(), Some("use `||`"));
        assert_eq!(error("vars.a & vars.b").help.as_deref(), Some("use `&&`"));
        assert_eq!(error("vars.a | vars.b").help.as_deref(), Some("use `||`"));
    }

    #[test]
    fn unclosed_paren_points_at_it() {
        let e = error("vars.a && (vars.b || vars.c");
        assert_eq!((at(&e), e.message.as_str()), ((10, 1), "unclosed `(`"));
        let e = error("(vars.a vars.b)");
        assert_eq!(at(&e), (8, 6));
    }

    #[test]
    fn unclosed_string_points_at_its_quote() {
        let e = error("vars.a == 'abc");
        assert_eq!((at(&e), e.message.as_str()), ((10, 4), "unclosed string"));
    }

    #[test]
    fn trailing_input_is_an_error() {
        let e = error("vars.a == 'x' vars.b");
        assert_eq!(at(&e), (14, 6));
        let e = error("vars.a)");
        assert_eq!((at(&e), e.message.as_str()), ((6, 1), "unmatched `)`"));
        let e = error("vars.a == 1 == 1");
        assert!(e.help.unwrap().contains("chained"));
    }

    #[test]
    fn empty_condition_is_an_error() {
        assert_eq!(error("").message, "empty condition");
        assert_eq!(error("   ").message, "empty condition");
    }

    #[test]
    fn unexpected_tokens_are_errors() {
        assert_eq!(at(&error("vars.a == ")), (10, 1));
        assert_eq!(at(&error("&& vars.a")), (0, 2));
        assert_eq!(at(&error("vars.a == $x")), (10, 1));
        let e = error("vars.a == failed");
        assert_eq!(at(&e), (10, 6));
        assert_eq!(
            e.help.as_deref(),
            Some("to compare with text, quote it: `'failed'`")
        );
    }

    #[test]
    fn bad_references_point_inside_the_condition() {
        let e = error("vars.x == 1 || var.site == 'a'");
        assert_eq!(at(&e), (15, 3));
        assert_eq!(e.help.as_deref(), Some("did you mean `vars.site`?"));
        let e = error("steps.a.stauts == 'failed'");
        assert_eq!(at(&e), (8, 6));
        assert_eq!(e.help.as_deref(), Some("did you mean `status`?"));
    }

    #[test]
    fn a_status_that_can_never_be_is_an_error() {
        let e = error("steps.a.status == 'faild'");
        assert_eq!(at(&e), (18, 7));
        assert_eq!(e.help.as_deref(), Some("did you mean `failed`?"));
        assert!(Condition::parse("'skipped' != steps.a.status").is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}true{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(error(&deep).message.contains("nested too deeply"));
        assert!(
            error(&"!".repeat(10_000))
                .message
                .contains("nested too deeply")
        );
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(eval(&ok));
    }

    #[test]
    fn long_flat_chains_are_fine() {
        let long = vec!["vars.yes"; 50_000].join(" && ");
        assert!(eval(&long));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parsing_any_text_never_panics(
                text in "\\PC*|[-() !=&|'\"a-z.0-9\\\\]*"
            ) {
                if let Ok(condition) = Condition::parse(&text) {
                    let _ = condition.references();
                    let _ = condition.eval(&|r| Some(r.to_string()));
                }
            }
        }
    }
}
