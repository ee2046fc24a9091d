//! `{{ … }}` templates, the shell quoting of the values put into them, and the redaction of
//! secret values from everything the tool writes.
//!
//! A template is parsed once, when the runbook is read, so that `validate` sees every
//! reference and can point at it; it is rendered many times (once per host). A value put
//! into a `run` command is shell-quoted, so that no variable can inject shell syntax.
//! The reference paths (`vars.site`, `steps.ID.stdout`, …) are shared with `when`
//! conditions (`crate::condition`).

use std::borrow::Cow;
use std::fmt;

use crate::diagnostic::did_you_mean;

/// What a `{{ … }}` or a condition operand refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// `vars.NAME`
    Var(String),
    /// `host.name`
    HostName,
    /// `host.address`
    HostAddress,
    /// `host.vars.NAME`
    HostVar(String),
    /// `steps.ID.stdout` (trimmed when rendered or compared)
    StepStdout(String),
    /// `steps.ID.exit_code`
    StepExitCode(String),
    /// `steps.ID.status`: conditions only, a template using it is an error.
    StepStatus(String),
    /// `secrets.NAME`
    Secret(String),
}

const ROOTS: [&str; 4] = ["vars", "host", "steps", "secrets"];
const HOST_FIELDS: [&str; 3] = ["name", "address", "vars"];
const STEP_FIELDS: [&str; 3] = ["stdout", "exit_code", "status"];

impl Reference {
    /// The step this reference reads from, if any.
    pub fn step_id(&self) -> Option<&str> {
        match self {
            Self::StepStdout(id) | Self::StepExitCode(id) | Self::StepStatus(id) => Some(id),
            _ => None,
        }
    }

    /// Parses a path such as `vars.site` or `steps.promote.stdout`.
    pub fn parse(path: &str) -> Result<Reference, String> {
        parse_path(path).map_err(|e| match e.help {
            Some(help) => format!("{} ({help})", e.message),
            None => e.message,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Var(name) => write!(f, "vars.{name}"),
            Self::HostName => f.write_str("host.name"),
            Self::HostAddress => f.write_str("host.address"),
            Self::HostVar(name) => write!(f, "host.vars.{name}"),
            Self::StepStdout(id) => write!(f, "steps.{id}.stdout"),
            Self::StepExitCode(id) => write!(f, "steps.{id}.exit_code"),
            Self::StepStatus(id) => write!(f, "steps.{id}.status"),
            Self::Secret(name) => write!(f, "secrets.{name}"),
        }
    }
}

/// A problem inside a template or condition text: char offset into that text, length in chars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    pub offset: u32,
    pub len: u32,
    pub message: String,
    pub help: Option<String>,
}

impl TextError {
    pub(crate) fn new(offset: u32, len: u32, message: impl Into<String>) -> Self {
        Self {
            offset,
            len,
            message: message.into(),
            help: None,
        }
    }

    #[must_use]
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The same error in a larger text where this one starts at `by`.
    #[must_use]
    pub(crate) fn shifted(mut self, by: u32) -> Self {
        self.offset = self.offset.saturating_add(by);
        self
    }
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TextError {}

/// A char index or count as stored in spans (texts beyond 4 G chars saturate).
pub(crate) fn pos(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `vars` and `secrets` names, and `host.vars` names.
pub(crate) fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_step_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The characters a reference path is written with; a path ends at the first other one.
pub(crate) fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Whether `path` starts with one of the reference roots or a likely misspelling of one:
/// anything else is not meant as a reference at all.
pub(crate) fn looks_like_reference(path: &str) -> bool {
    let root = path.split('.').next().unwrap_or_default();
    ROOTS.contains(&root) || did_you_mean(root, ROOTS).is_some()
}

/// Parses a reference path; errors point into `path` (char offsets).
pub(crate) fn parse_path(path: &str) -> Result<Reference, TextError> {
    // Each dot-separated part with its char offset.
    let mut parts: Vec<(u32, &str)> = Vec::new();
    let mut offset = 0;
    for part in path.split('.') {
        parts.push((pos(offset), part));
        offset += part.chars().count() + 1;
    }
    let part_error = |index: usize, message: String| {
        let (at, text) = parts[index];
        TextError::new(at, pos(text.chars().count()).max(1), message)
    };
    // Everything from part `index` on is one part too many.
    let trailing = |index: usize, reference: Reference| match parts.get(index) {
        None => Ok(reference),
        Some(&(at, _)) => {
            let at = at.saturating_sub(1);
            let extra: String = path.chars().skip(at as usize).collect();
            Err(TextError::new(
                at,
                pos(extra.chars().count()),
                format!("unexpected `{extra}` after `{reference}`"),
            ))
        }
    };
    let name_at = |index: usize, what: &str, wrap: fn(String) -> Reference, usage: &str| {
        let Some(&(_, name)) = parts.get(index) else {
            return Err(TextError::new(
                0,
                pos(path.chars().count()),
                format!("`{path}` needs a {what} name"),
            )
            .with_help(format!("write `{usage}`")));
        };
        if !is_name(name) {
            return Err(part_error(index, format!("invalid {what} name `{name}`"))
                .with_help("names are letters, digits and `_`, not starting with a digit"));
        }
        trailing(index + 1, wrap(name.to_string()))
    };

    match parts[0].1 {
        "vars" => name_at(1, "variable", Reference::Var, "vars.NAME"),
        "secrets" => name_at(1, "secret", Reference::Secret, "secrets.NAME"),
        "host" => match parts.get(1).map(|p| p.1) {
            None => Err(TextError::new(0, 4, "`host` needs a field")
                .with_help("use `host.name`, `host.address` or `host.vars.NAME`")),
            Some("name") => trailing(2, Reference::HostName),
            Some("address") => trailing(2, Reference::HostAddress),
            Some("vars") => name_at(2, "variable", Reference::HostVar, "host.vars.NAME"),
            Some(field) => {
                let error = part_error(1, format!("unknown field `{field}` of `host`"));
                Err(match did_you_mean(field, HOST_FIELDS) {
                    Some(best) => error.with_help(format!("did you mean `host.{best}`?")),
                    None => error.with_help("use `host.name`, `host.address` or `host.vars.NAME`"),
                })
            }
        },
        "steps" => {
            let Some(&(_, id)) = parts.get(1) else {
                return Err(
                    TextError::new(0, 5, "`steps` needs a step id and a field").with_help(
                        "write `steps.ID.stdout`, `steps.ID.exit_code` or `steps.ID.status`",
                    ),
                );
            };
            if !is_step_id(id) {
                return Err(part_error(1, format!("invalid step id `{id}`"))
                    .with_help("step ids are lower-case letters, digits and `-`"));
            }
            let id = id.to_string();
            match parts.get(2).map(|p| p.1) {
                None => Err(TextError::new(
                    0,
                    pos(path.chars().count()),
                    format!("`{path}` needs a field"),
                )
                .with_help(format!(
                    "write `{path}.stdout`, `{path}.exit_code` or `{path}.status`"
                ))),
                Some("stdout") => trailing(3, Reference::StepStdout(id)),
                Some("exit_code") => trailing(3, Reference::StepExitCode(id)),
                Some("status") => trailing(3, Reference::StepStatus(id)),
                Some(field) => {
                    let error = part_error(2, format!("unknown field `{field}` of a step"));
                    Err(match did_you_mean(field, STEP_FIELDS) {
                        Some(best) => error.with_help(format!("did you mean `{best}`?")),
                        None => error.with_help("a step has `stdout`, `exit_code` and `status`"),
                    })
                }
            }
        }
        root => {
            let error = part_error(0, format!("unknown reference `{path}`"));
            Err(match did_you_mean(root, ROOTS) {
                Some(best) => {
                    let rest = &path[root.len()..];
                    error.with_help(format!("did you mean `{best}{rest}`?"))
                }
                None => error
                    .with_help("references start with `vars.`, `host.`, `steps.` or `secrets.`"),
            })
        }
    }
}

/// How `render` inserts values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// Into a shell command: each value becomes one literal shell word (unless `raw`).
    Shell,
    /// Into plain text (messages, names): values as they are.
    Plain,
}

/// A parsed template: literal text and the references between it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    /// `offset`/`len` locate the reference path (`vars.site`) in the text, in chars.
    Value {
        reference: Reference,
        raw: bool,
        offset: u32,
        len: u32,
    },
}

/// What one `{{ … }}` stands for.
enum Placeholder {
    /// `{{ '{{' }}`: a quoted string, for writing braces literally.
    Text(String),
    Value {
        reference: Reference,
        raw: bool,
        offset: u32,
        len: u32,
    },
}

impl Template {
    /// Parses `text`, reporting every problem in it.
    pub fn parse(text: &str) -> Result<Template, Vec<TextError>> {
        let chars: Vec<char> = text.chars().collect();
        let mut segments = Vec::new();
        let mut errors = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '{' || chars.get(i + 1) != Some(&'{') {
                literal.push(chars[i]);
                i += 1;
                continue;
            }
            let (placeholder, end) = parse_placeholder(&chars, i);
            i = end;
            match placeholder {
                Ok(Placeholder::Text(text)) => literal.push_str(&text),
                Ok(Placeholder::Value {
                    reference,
                    raw,
                    offset,
                    len,
                }) => {
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Value {
                        reference,
                        raw,
                        offset,
                        len,
                    });
                }
                Err(error) => errors.push(error),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        if errors.is_empty() {
            Ok(Template { segments })
        } else {
            Err(errors)
        }
    }

    /// Every reference with the char offset and length of its path in the text.
    pub fn references(&self) -> impl Iterator<Item = (&Reference, u32, u32)> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Value {
                reference,
                offset,
                len,
                ..
            } => Some((reference, *offset, *len)),
            Segment::Text(_) => None,
        })
    }

    /// True when the template has no reference: it renders to its own text.
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|segment| matches!(segment, Segment::Text(_)))
    }

    /// Renders; `resolve` gives a reference's value (`None`: undefined, returned as the error).
    ///
    /// With `Quoting::Shell`, each value is shell-quoted unless it was written `{{ raw … }}`.
    pub fn render(
        &self,
        quoting: Quoting,
        resolve: &dyn Fn(&Reference) -> Option<String>,
    ) -> Result<String, Reference> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Value { reference, raw, .. } => {
                    let value = resolve(reference).ok_or_else(|| reference.clone())?;
                    let value = match reference {
                        Reference::StepStdout(_) => value.trim(),
                        _ => value.as_str(),
                    };
                    if quoting == Quoting::Shell && !raw {
                        out.push_str(&shell_quote(value));
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Parses the `{{ … }}` starting at `start`; returns where scanning goes on.
fn parse_placeholder(chars: &[char], start: usize) -> (Result<Placeholder, TextError>, usize) {
    let skip_ws = |mut i: usize| {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        i
    };
    let closing_from = |i: usize| {
        (i..chars.len().saturating_sub(1)).find(|&k| chars[k] == '}' && chars[k + 1] == '}')
    };
    let error = |from: usize, to: usize, message: &str| {
        TextError::new(pos(from), pos(to - from).max(1), message)
    };
    let text = |from: usize, to: usize| chars[from..to].iter().collect::<String>();

    let first = skip_ws(start + 2);
    // A quoted string: the way to write `{{` or `}}` literally.
    if let Some(&quote) = chars.get(first).filter(|c| matches!(c, '\'' | '"')) {
        let Some(close) = (first + 1..chars.len()).find(|&k| chars[k] == quote) else {
            let e = error(first, chars.len(), "unclosed string in `{{ }}`");
            return (Err(e), chars.len());
        };
        let after = skip_ws(close + 1);
        if chars.get(after) == Some(&'}') && chars.get(after + 1) == Some(&'}') {
            return (Ok(Placeholder::Text(text(first + 1, close))), after + 2);
        }
        let end = closing_from(after).map_or(chars.len(), |k| k + 2);
        let e = error(after, after + 1, "expected `}}` after the string");
        return (Err(e), end);
    }

    let Some(close) = closing_from(start + 2) else {
        let e = error(start, start + 2, "unclosed `{{`").with_help("close it with `}}`");
        return (Err(e), chars.len());
    };
    let end = close + 2;
    if first >= close {
        let e = error(start, end, "empty `{{ }}`")
            .with_help("write a reference such as `{{ vars.NAME }}`");
        return (Err(e), end);
    }

    let path_run = |from: usize| {
        let mut to = from;
        while to < close && is_path_char(chars[to]) {
            to += 1;
        }
        to
    };
    let mut path_start = first;
    let mut path_end = path_run(first);
    let mut raw = false;
    if text(path_start, path_end) == "raw" && (path_end == close || chars[path_end].is_whitespace())
    {
        let raw_at = path_start;
        raw = true;
        path_start = skip_ws(path_end);
        path_end = path_run(path_start);
        if path_start == path_end {
            let e = error(raw_at, raw_at + 3, "expected a reference after `raw`")
                .with_help("write `{{ raw vars.NAME }}`");
            return (Err(e), end);
        }
    }
    let trimmed_end = (first..close)
        .rev()
        .find(|&k| !chars[k].is_whitespace())
        .map_or(close, |k| k + 1);
    let path = text(path_start, path_end);
    if path.is_empty() || !looks_like_reference(&path) {
        let shown = text(path_start, trimmed_end);
        let e = error(path_start, trimmed_end, &format!("`{shown}` is not a reference"))
            .with_help("a `{{ }}` holds `vars.`, `host.`, `steps.` or `secrets.` reference; to write `{{` literally, use `{{ '{{' }}`");
        return (Err(e), end);
    }
    let reference = match parse_path(&path) {
        Ok(reference) => reference,
        Err(e) => return (Err(e.shifted(pos(path_start))), end),
    };
    if let Reference::StepStatus(id) = &reference {
        let e = error(
            path_start,
            path_end,
            &format!("`{reference}` can only be used in `when` conditions"),
        )
        .with_help(format!(
            "in a template use `steps.{id}.stdout` or `steps.{id}.exit_code`"
        ));
        return (Err(e), end);
    }
    let rest = skip_ws(path_end);
    if rest < close {
        let extra = text(rest, trimmed_end);
        let e = error(
            rest,
            trimmed_end,
            &format!("unexpected `{extra}` after the reference"),
        );
        let e = if extra.starts_with('|') {
            e.with_help(
                "filters are not supported: compute the value in the command or a step instead",
            )
        } else {
            e.with_help("a `{{ }}` holds a single reference")
        };
        return (Err(e), end);
    }
    let placeholder = Placeholder::Value {
        reference,
        raw,
        offset: pos(path_start),
        len: pos(path_end - path_start),
    };
    (Ok(placeholder), end)
}

/// Whether a character needs no quoting in a POSIX shell word.
fn is_shell_safe(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '@' | '%' | '+' | '=' | ':' | ',' | '.' | '/' | '-')
}

/// `value` as one literal POSIX shell word: as is when it is made of safe characters only,
/// otherwise single-quoted (a `'` becomes `'\''`); empty becomes `''`.
///
/// A NUL byte cannot be passed in a command line at all; it is kept and will make the
/// command fail rather than be cut short silently.
pub fn shell_quote(value: &str) -> Cow<'_, str> {
    if value.is_empty() {
        Cow::Borrowed("''")
    } else if value.chars().all(is_shell_safe) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("'{}'", value.replace('\'', r"'\''")))
    }
}

/// Replaces every secret value by `***` in any text the tool writes.
///
/// Redact before escaping (JSON) or cutting (output tails): an escaped or cut secret is no
/// longer found.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Secret values and their shell-quoted spellings, longest first, no empty ones.
    needles: Vec<String>,
}

impl Redactor {
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut needles = Vec::new();
        for value in values.into_iter().filter(|v| !v.is_empty()) {
            // A rendered command holds a secret with a quote as `it'\''s`, not `it's`.
            if value.contains('\'') {
                needles.push(value.replace('\'', r"'\''"));
            }
            needles.push(value);
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every occurrence of a secret replaced by `***`. Overlapping or adjacent
    /// occurrences (of one secret or of several) become a single `***`, so that no part of
    /// any secret shows.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for needle in &self.needles {
            let mut from = 0;
            while let Some(found) = text[from..].find(needle.as_str()) {
                let start = from + found;
                ranges.push((start, start + needle.len()));
                // One char on, not past the match: occurrences may overlap (`aa` in `aaa`).
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if ranges.is_empty() {
            return Cow::Borrowed(text);
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in merged {
            out.push_str(&text[copied..start]);
            out.push_str("***");
            copied = end;
        }
        out.push_str(&text[copied..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(reference: &Reference) -> Option<String> {
        match reference {
            Reference::Var(name) if name == "site" => Some("saitama-nishi".into()),
            Reference::Var(name) if name == "evil" => Some("$(touch X); rm -rf Y".into()),
            Reference::Var(name) if name == "quote" => Some("it's".into()),
            Reference::Var(name) if name == "empty" => Some(String::new()),
            Reference::StepStdout(id) if id == "promote" => Some("  10.0.0.21\n".into()),
            Reference::HostName => Some("db-1".into()),
            _ => None,
        }
    }

    fn render(text: &str, quoting: Quoting) -> Result<String, Reference> {
        Template::parse(text).unwrap().render(quoting, &vars)
    }

    /// The single error of `text`: (offset, len, message, help).
    fn error(text: &str) -> TextError {
        let errors = Template::parse(text).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn references_parse_and_print_back() {
        for path in [
            "vars.site",
            "host.name",
            "host.address",
            "host.vars.rack_id",
            "steps.promote.stdout",
            "steps.db-1.exit_code",
            "steps.a.status",
            "secrets.dt_password",
        ] {
            assert_eq!(Reference::parse(path).unwrap().to_string(), path);
        }
        assert_eq!(
            Reference::parse("steps.a.stdout").unwrap().step_id(),
            Some("a")
        );
        assert_eq!(Reference::parse("vars.a").unwrap().step_id(), None);
    }

    #[test]
    fn reference_errors_name_the_fix() {
        assert_eq!(
            Reference::parse("var.site").unwrap_err(),
            "unknown reference `var.site` (did you mean `vars.site`?)"
        );
        assert!(Reference::parse("steps.A.stdout").is_err());
        assert!(Reference::parse("vars.my-site").is_err());
        assert!(Reference::parse("vars.a.b").is_err());
        assert!(Reference::parse("").is_err());
    }

    #[test]
    fn text_without_braces_is_literal() {
        let t = Template::parse("echo } { }} ${HOME} {x}").unwrap();
        assert!(t.is_literal());
        assert_eq!(
            t.render(Quoting::Shell, &|_| None).unwrap(),
            "echo } { }} ${HOME} {x}"
        );
    }

    #[test]
    fn references_are_listed_with_the_position_of_their_path() {
        let t = Template::parse("a {{ vars.site }} é{{raw host.name}}").unwrap();
        let refs: Vec<_> = t.references().map(|(r, o, l)| (r.clone(), o, l)).collect();
        assert_eq!(
            refs,
            [
                (Reference::Var("site".into()), 5, 9),
                (Reference::HostName, 25, 9)
            ]
        );
        assert!(!t.is_literal());
    }

    #[test]
    fn shell_rendering_makes_a_hostile_value_one_literal_word() {
        assert_eq!(
            render("echo {{ vars.evil }}", Quoting::Shell).unwrap(),
            "echo '$(touch X); rm -rf Y'"
        );
        assert_eq!(
            render("echo {{vars.quote}}", Quoting::Shell).unwrap(),
            r"echo 'it'\''s'"
        );
        assert_eq!(
            render("x {{ vars.empty }} y", Quoting::Shell).unwrap(),
            "x '' y"
        );
        assert_eq!(
            render("--site {{ vars.site }}", Quoting::Shell).unwrap(),
            "--site saitama-nishi"
        );
    }

    #[test]
    fn raw_inserts_the_value_as_is() {
        assert_eq!(
            render("echo {{ raw vars.evil }}", Quoting::Shell).unwrap(),
            "echo $(touch X); rm -rf Y"
        );
        assert_eq!(
            render("{{raw vars.quote}}", Quoting::Shell).unwrap(),
            "it's"
        );
    }

    #[test]
    fn plain_rendering_does_not_quote() {
        assert_eq!(
            render("failover of {{ vars.evil }}", Quoting::Plain).unwrap(),
            "failover of $(touch X); rm -rf Y"
        );
    }

    #[test]
    fn step_stdout_is_trimmed() {
        assert_eq!(
            render("--server {{ steps.promote.stdout }}", Quoting::Shell).unwrap(),
            "--server 10.0.0.21"
        );
    }

    #[test]
    fn an_undefined_reference_is_the_render_error() {
        assert_eq!(
            render("{{ vars.site }} {{ vars.nope }}", Quoting::Shell),
            Err(Reference::Var("nope".into()))
        );
    }

    #[test]
    fn a_quoted_string_writes_braces_literally() {
        assert_eq!(
            render(
                "docker inspect -f '{{ '{{' }}.State{{ \"}}\" }}'",
                Quoting::Shell
            )
            .unwrap(),
            "docker inspect -f '{{.State}}'"
        );
    }

    #[test]
    fn unclosed_braces_point_at_the_opening() {
        let e = error("echo {{ vars.site");
        assert_eq!(
            (e.offset, e.len, e.message.as_str()),
            (5, 2, "unclosed `{{`")
        );
    }

    #[test]
    fn empty_braces_are_an_error() {
        let e = error("a {{  }} b");
        assert_eq!(
            (e.offset, e.len, e.message.as_str()),
            (2, 6, "empty `{{ }}`")
        );
    }

    #[test]
    fn unknown_root_suggests_the_right_one() {
        let e = error("x {{ var.site }}");
        assert_eq!((e.offset, e.len), (5, 3));
        assert_eq!(e.message, "unknown reference `var.site`");
        assert_eq!(e.help.as_deref(), Some("did you mean `vars.site`?"));
    }

    #[test]
    fn a_foreign_template_language_gets_the_escape_hint() {
        let e = error("docker ps -f '{{.Names}}'");
        assert_eq!((e.offset, e.len), (16, 6));
        assert!(e.help.unwrap().contains("{{ '{{' }}"));
    }

    #[test]
    fn step_without_field_is_an_error() {
        let e = error("{{ steps.a }}");
        assert_eq!((e.offset, e.len), (3, 7));
        assert_eq!(e.message, "`steps.a` needs a field");
    }

    #[test]
    fn misspelt_step_field_suggests_stdout() {
        let e = error("{{ steps.a.stdot }}");
        assert_eq!((e.offset, e.len), (11, 5));
        assert_eq!(e.help.as_deref(), Some("did you mean `stdout`?"));
    }

    #[test]
    fn host_vars_needs_a_name() {
        let e = error("{{ host.vars }}");
        assert_eq!((e.offset, e.len), (3, 9));
        assert_eq!(e.message, "`host.vars` needs a variable name");
    }

    #[test]
    fn bad_names_are_errors() {
        let e = error("{{ vars.my-site }}");
        assert_eq!((e.offset, e.len), (8, 7));
        let e = error("{{ steps.Promote.stdout }}");
        assert_eq!((e.offset, e.len), (9, 7));
        let e = error("{{ vars.a.b }}");
        assert_eq!(
            (e.offset, e.len, e.message.as_str()),
            (9, 2, "unexpected `.b` after `vars.a`")
        );
    }

    #[test]
    fn step_status_is_for_conditions_only() {
        let e = error("{{ steps.a.status }}");
        assert_eq!((e.offset, e.len), (3, 14));
        assert!(e.message.contains("`when`"));
    }

    #[test]
    fn filters_are_not_supported() {
        let e = error("{{ vars.a | upper }}");
        assert_eq!((e.offset, e.len), (10, 7));
        assert!(e.help.unwrap().starts_with("filters are not supported"));
        let e = error("{{ vars.a vars.b }}");
        assert_eq!((e.offset, e.len), (10, 6));
    }

    #[test]
    fn raw_needs_a_reference() {
        let e = error("{{ raw }}");
        assert_eq!((e.offset, e.len), (3, 3));
        assert_eq!(e.message, "expected a reference after `raw`");
    }

    #[test]
    fn every_error_of_a_text_is_reported() {
        let errors =
            Template::parse("{{ var.a }} {{ }} {{ vars.ok }} {{ steps.b }} {{").unwrap_err();
        let offsets: Vec<u32> = errors.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, [3, 12, 35, 46]);
    }

    #[test]
    fn shell_quote_leaves_safe_words_alone() {
        assert!(matches!(
            shell_quote("a-b_c/d.e:f,g@h%i+j=k"),
            Cow::Borrowed(_)
        ));
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("~"), "'~'");
        assert_eq!(shell_quote("'"), r"''\'''");
    }

    #[test]
    fn redactor_hides_every_secret() {
        let r = Redactor::new(["hunter2".to_string(), String::new()]);
        assert_eq!(r.redact("pw=hunter2; again hunter2"), "pw=***; again ***");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
        assert!(Redactor::new([String::new()]).is_empty());
    }

    #[test]
    fn redactor_hides_overlapping_secrets_whole() {
        let r = Redactor::new(["abc".to_string(), "bcd".to_string()]);
        assert_eq!(r.redact("xabcdx"), "x***x");
        let r = Redactor::new(["aa".to_string()]);
        assert_eq!(r.redact("aaa b aa"), "*** b ***");
        let r = Redactor::new(["secret".to_string(), "secretive".to_string()]);
        assert_eq!(r.redact("secretive secret"), "*** ***");
    }

    #[test]
    fn redactor_hides_a_secret_inside_a_rendered_command() {
        let r = Redactor::new(["it's".to_string()]);
        let rendered = Template::parse("login {{ secrets.pw }}")
            .unwrap()
            .render(Quoting::Shell, &|_| Some("it's".into()))
            .unwrap();
        assert_eq!(r.redact(&rendered), "login '***'");
    }

    #[test]
    fn redactor_handles_multibyte_text() {
        let r = Redactor::new(["秘密".to_string()]);
        assert_eq!(r.redact("é秘密秘密é"), "é***é");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// What `sh` prints for `printf %s WORD`.
        fn through_sh(word: &str) -> String {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {word}"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{word}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        }

        proptest! {
            #[test]
            fn parsing_any_text_never_panics(text in "\\PC*|[{} a-z.|'\"]*") {
                if let Ok(template) = Template::parse(&text) {
                    let _ = template.render(Quoting::Shell, &|r| Some(r.to_string()));
                }
            }

            #[test]
            fn redacting_any_text_never_panics(text in "\\PC*", secret in "\\PC{0,4}") {
                // The mask itself is made of `*`: a "secret" with a `*` can meet the mask's
                // characters and reappear; a real secret is never that.
                prop_assume!(!secret.contains('*'));
                let redacted = Redactor::new([secret.clone()]).redact(&text).into_owned();
                prop_assert!(secret.is_empty() || !redacted.contains(&secret));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(24))]

            #[test]
            fn a_quoted_value_reaches_the_shell_unchanged(
                value in "[^\\x00]{0,12}|[-a-z $`'\"\\\\;|&<>(){}*?!~#=\n\t]{0,16}"
            ) {
                prop_assert_eq!(through_sh(&shell_quote(&value)), value.clone());
                let rendered = Template::parse("{{ vars.x }}")
                    .unwrap()
                    .render(Quoting::Shell, &|_| Some(value.clone()))
                    .unwrap();
                prop_assert_eq!(through_sh(&rendered), value);
            }
        }
    }
}
