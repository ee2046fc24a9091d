//! The runbook file format (SPEC §2): typed, with a span on everything an error may point at.
//!
//! Reading walks the spanned YAML tree by hand instead of deriving serde types: an operator
//! wants every problem of the file at once (unknown fields with "did you mean", bad
//! durations, duplicate ids…), not the first one serde stumbles on.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::diagnostic::Diagnostic;
use crate::duration;
use crate::source::{Source, Span};
use crate::yaml::{self, Key, Node, Value};

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Self { value, span }
    }
}

/// A parsed runbook. Only syntax and shape are checked here; references between steps,
/// hosts and variables are checked by the planner.
#[derive(Debug, Clone, PartialEq)]
pub struct Runbook {
    pub name: Spanned<String>,
    pub description: Option<String>,
    pub targets: Targets,
    /// Default values of variables, in file order; `--var` and `--vars-file` override them.
    pub vars: Vec<(Spanned<String>, String)>,
    /// Names of secrets; their values come from the environment or `--secrets-file`.
    pub secrets: Vec<Spanned<String>>,
    pub defaults: Defaults,
    pub steps: Vec<Step>,
}

/// What the report measures the run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Targets {
    pub rto: Option<Duration>,
    pub rpo: Option<Duration>,
}

/// Settings every step inherits unless it sets its own.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Defaults {
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
}

/// How often and how patiently a failed command is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    /// Total tries, the first included (1 = no retry).
    pub attempts: u32,
    pub delay: Duration,
    /// Each further delay is the previous one times this.
    pub backoff: f64,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 1,
            delay: Duration::ZERO,
            backoff: 1.0,
        }
    }
}

/// In which kind of run a step takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Only {
    Drill,
    Real,
}

/// One step of a runbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: Spanned<String>,
    /// Where the step's mapping starts (its `- ` item).
    pub span: Span,
    pub name: Option<String>,
    pub action: Action,
    /// `None`: after the step written above. `Some([])`: at once.
    pub needs: Option<Vec<Spanned<String>>>,
    pub when: Option<Spanned<String>>,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub readonly: bool,
    pub idempotent: bool,
    pub checkpoint: Option<String>,
    pub max_parallel: Option<u32>,
    pub max_failures: u32,
    pub only: Option<Only>,
}

/// What a step does: a command on hosts, or a gate for the operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run {
        /// A host or group of the inventory.
        on: Spanned<String>,
        run: Spanned<String>,
        rollback: Option<Spanned<String>>,
        verify: Option<Spanned<String>>,
    },
    Approve {
        message: Spanned<String>,
    },
}

impl Step {
    #[must_use]
    pub fn is_approval(&self) -> bool {
        matches!(self.action, Action::Approve { .. })
    }
}

const TOP_FIELDS: &[&str] = &[
    "name",
    "description",
    "targets",
    "vars",
    "secrets",
    "defaults",
    "steps",
];
const STEP_FIELDS: &[&str] = &[
    "id",
    "name",
    "on",
    "run",
    "approve",
    "rollback",
    "verify",
    "needs",
    "when",
    "timeout",
    "retry",
    "readonly",
    "idempotent",
    "checkpoint",
    "max_parallel",
    "max_failures",
    "only",
];

/// Is `s` a valid runbook name or step id: `[a-z0-9-]+`.
#[must_use]
pub fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Reads a runbook. Returns it when it has no errors, and every diagnostic found either way.
#[must_use]
pub fn parse(source: &Source) -> (Option<Runbook>, Vec<Diagnostic>) {
    let mut reader = Reader {
        file: &source.path,
        diagnostics: Vec::new(),
    };
    let root = match yaml::parse(&source.text) {
        Ok(node) => node,
        Err(e) => {
            let help = e.help.unwrap_or_else(|| {
                "fix the YAML syntax at this place; the rest of the file is checked once it parses"
                    .into()
            });
            let d = Diagnostic::error("yaml", &source.path, e.span, e.message).with_help(help);
            return (None, vec![d]);
        }
    };
    let runbook = reader.runbook(&root);
    let has_errors = reader.diagnostics.iter().any(Diagnostic::is_error);
    (runbook.filter(|_| !has_errors), reader.diagnostics)
}

struct Reader<'a> {
    file: &'a Path,
    diagnostics: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(code, self.file, span, message).with_help(help));
    }

    /// The entries of a mapping node; reports an error and returns `None` otherwise.
    fn map<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(Key, Node)]> {
        if let Some(map) = node.as_map() {
            return Some(map);
        }
        self.error(
            "type",
            node.span,
            format!("{what} must be a mapping, found {}", node.kind()),
            format!("write {what} as `key: value` lines"),
        );
        None
    }

    fn unknown_field(&mut self, key: &Key, known: &[&str], context: &str) {
        let d = Diagnostic::error(
            "unknown-field",
            self.file,
            key.span,
            format!("unknown field `{}` in {context}", key.name),
        );
        let d = match crate::diagnostic::did_you_mean(&key.name, known.iter().copied()) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help(format!("the fields of {context} are: {}", known.join(", "))),
        };
        self.diagnostics.push(d);
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match &node.value {
            Value::Str(s) => Some(Spanned::new(s.clone(), node.span)),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                node.as_scalar().map(|s| Spanned::new(s, node.span))
            }
            _ => {
                self.error(
                    "type",
                    node.span,
                    format!("{what} must be a string, found {}", node.kind()),
                    "quote the value if it is meant as text",
                );
                None
            }
        }
    }

    fn identifier(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        let s = self.string(node, what)?;
        if !is_identifier(&s.value) {
            self.error(
                "identifier",
                s.span,
                format!("{what} `{}` is not valid", s.value),
                "use only lower-case letters, digits and `-` (e.g. `promote-secondary`)",
            );
        }
        Some(s)
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        if let Value::Bool(b) = node.value {
            return Some(b);
        }
        self.error(
            "type",
            node.span,
            format!("{what} must be `true` or `false`, found {}", node.kind()),
            "write `true` or `false`",
        );
        None
    }

    fn count(&mut self, node: &Node, what: &str, min: i64) -> Option<u32> {
        if let Value::Int(n) = node.value
            && n >= min
            && let Ok(n) = u32::try_from(n)
        {
            return Some(n);
        }
        self.error(
            "type",
            node.span,
            format!("{what} must be a whole number of at least {min}"),
            format!("e.g. `{what}: {}`", min.max(1)),
        );
        None
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = self.string(node, what)?;
        match duration::parse(&text.value) {
            Ok(d) => Some(d),
            Err(message) => {
                // The parser's advice ("write a number and a unit…") reads best as the help.
                let (problem, advice) = message.split_once(": ").unwrap_or((
                    message.as_str(),
                    "units: ms, s, m, h, e.g. `30s` or `1h30m`",
                ));
                self.error(
                    "duration",
                    node.span,
                    format!("bad {what}: {problem}"),
                    advice,
                );
                None
            }
        }
    }

    fn runbook(&mut self, root: &Node) -> Option<Runbook> {
        if root.is_null() {
            self.error(
                "empty",
                root.span,
                "the runbook is empty",
                "a runbook needs at least `name:` and `steps:`",
            );
            return None;
        }
        let entries = self.map(root, "a runbook")?;
        let mut name = None;
        let mut description = None;
        let mut targets = Targets::default();
        let mut vars = Vec::new();
        let mut secrets = Vec::new();
        let mut defaults = Defaults::default();
        let mut steps = None;
        for (key, value) in entries {
            match key.name.as_str() {
                "name" => name = self.identifier(value, "the runbook name"),
                "description" => description = self.string(value, "`description`").map(|s| s.value),
                "targets" => targets = self.targets(value),
                "vars" => vars = self.vars(value),
                "secrets" => secrets = self.secrets(value),
                "defaults" => defaults = self.defaults(value),
                "steps" => steps = self.steps(value),
                _ => self.unknown_field(key, TOP_FIELDS, "a runbook"),
            }
        }
        if name.is_none() && !entries.iter().any(|(k, _)| k.name == "name") {
            self.error(
                "missing-field",
                root.span,
                "the runbook has no `name`",
                "add `name: my-runbook` (lower-case letters, digits and `-`)",
            );
        }
        if steps.is_none() && !entries.iter().any(|(k, _)| k.name == "steps") {
            self.error(
                "missing-field",
                root.span,
                "the runbook has no `steps`",
                "add a `steps:` list",
            );
        }
        Some(Runbook {
            name: name?,
            description,
            targets,
            vars,
            secrets,
            defaults,
            steps: steps?,
        })
    }

    fn targets(&mut self, node: &Node) -> Targets {
        let mut targets = Targets::default();
        for (key, value) in self.map(node, "`targets`").unwrap_or_default() {
            match key.name.as_str() {
                "rto" => targets.rto = self.duration(value, "`rto`"),
                "rpo" => targets.rpo = self.duration(value, "`rpo`"),
                _ => self.unknown_field(key, &["rto", "rpo"], "`targets`"),
            }
        }
        targets
    }

    fn vars(&mut self, node: &Node) -> Vec<(Spanned<String>, String)> {
        let mut vars = Vec::new();
        for (key, value) in self.map(node, "`vars`").unwrap_or_default() {
            if !is_variable_name(&key.name) {
                self.error(
                    "identifier",
                    key.span,
                    format!("variable name `{}` is not valid", key.name),
                    "use letters, digits and `_`, starting with a letter or `_`",
                );
            }
            let text = if value.is_null() {
                Some(String::new())
            } else {
                self.string(value, &format!("variable `{}`", key.name))
                    .map(|s| s.value)
            };
            if let Some(text) = text {
                vars.push((Spanned::new(key.name.clone(), key.span), text));
            }
        }
        vars
    }

    fn secrets(&mut self, node: &Node) -> Vec<Spanned<String>> {
        let Some(items) = node.as_seq() else {
            self.error(
                "type",
                node.span,
                format!("`secrets` must be a list of names, found {}", node.kind()),
                "write `secrets: [dns_token]`: names only, never values",
            );
            return Vec::new();
        };
        let mut secrets = Vec::new();
        for item in items {
            if let Some(name) = self.string(item, "a secret name") {
                if is_variable_name(&name.value) {
                    secrets.push(name);
                } else {
                    self.error(
                        "identifier",
                        name.span,
                        format!("secret name `{}` is not valid", name.value),
                        "use letters, digits and `_`; the value comes from RUNBOOK_SECRET_<NAME>",
                    );
                }
            }
        }
        secrets
    }

    fn defaults(&mut self, node: &Node) -> Defaults {
        let mut defaults = Defaults::default();
        for (key, value) in self.map(node, "`defaults`").unwrap_or_default() {
            match key.name.as_str() {
                "timeout" => defaults.timeout = self.duration(value, "`timeout`"),
                "retry" => defaults.retry = self.retry(value),
                _ => self.unknown_field(key, &["timeout", "retry"], "`defaults`"),
            }
        }
        defaults
    }

    fn retry(&mut self, node: &Node) -> Option<Retry> {
        let mut retry = Retry::default();
        for (key, value) in self.map(node, "`retry`")? {
            match key.name.as_str() {
                "attempts" => retry.attempts = self.count(value, "attempts", 1)?,
                "delay" => retry.delay = self.duration(value, "`delay`")?,
                "backoff" => {
                    let factor = match value.value {
                        Value::Float(f) => Some(f),
                        #[allow(clippy::cast_precision_loss)]
                        Value::Int(i) => Some(i as f64),
                        _ => None,
                    };
                    match factor {
                        Some(f) if (1.0..=10.0).contains(&f) => retry.backoff = f,
                        _ => self.error(
                            "type",
                            value.span,
                            "`backoff` must be a number from 1.0 to 10.0",
                            "e.g. `backoff: 2.0` doubles the delay after each try",
                        ),
                    }
                }
                _ => self.unknown_field(key, &["attempts", "delay", "backoff"], "`retry`"),
            }
        }
        Some(retry)
    }

    fn steps(&mut self, node: &Node) -> Option<Vec<Step>> {
        let Some(items) = node.as_seq() else {
            self.error(
                "type",
                node.span,
                format!("`steps` must be a list, found {}", node.kind()),
                "write each step as a `- id: …` item",
            );
            return None;
        };
        if items.is_empty() {
            self.error(
                "empty",
                node.span,
                "the runbook has no steps",
                "add at least one step",
            );
        }
        let mut steps = Vec::with_capacity(items.len());
        let mut seen: HashMap<String, Span> = HashMap::with_capacity(items.len());
        for item in items {
            if let Some(step) = self.step(item) {
                if let Some(first) = seen.get(&step.id.value) {
                    self.error(
                        "duplicate-id",
                        step.id.span,
                        format!("duplicate step id `{}`", step.id.value),
                        format!(
                            "the first step with this id is at line {}; give each step its own id",
                            first.line
                        ),
                    );
                } else {
                    seen.insert(step.id.value.clone(), step.id.span);
                }
                steps.push(step);
            }
        }
        Some(steps)
    }

    fn step(&mut self, node: &Node) -> Option<Step> {
        let entries = self.map(node, "a step")?;
        let errors_before = self.diagnostics.len();
        let mut id = None;
        let mut name = None;
        let (mut on, mut run, mut approve, mut rollback, mut verify) =
            (None, None, None, None, None);
        let mut needs = None;
        let mut when = None;
        let mut timeout = None;
        let mut retry = None;
        let (mut readonly, mut idempotent) = (false, false);
        let mut checkpoint = None;
        let mut max_parallel = None;
        let mut max_failures = 0;
        let mut only = None;
        for (key, value) in entries {
            match key.name.as_str() {
                "id" => id = self.identifier(value, "the step id"),
                "name" => name = self.string(value, "`name`").map(|s| s.value),
                "on" => on = self.string(value, "`on`"),
                "run" => run = self.string(value, "`run`"),
                "approve" => approve = self.string(value, "`approve`"),
                "rollback" => rollback = self.string(value, "`rollback`"),
                "verify" => verify = self.string(value, "`verify`"),
                "needs" => needs = self.needs(value),
                "when" => when = self.string(value, "`when`"),
                "timeout" => timeout = self.duration(value, "`timeout`"),
                "retry" => retry = self.retry(value),
                "readonly" => readonly = self.bool(value, "`readonly`").unwrap_or(false),
                "idempotent" => idempotent = self.bool(value, "`idempotent`").unwrap_or(false),
                "checkpoint" => checkpoint = self.string(value, "`checkpoint`").map(|s| s.value),
                "max_parallel" => max_parallel = self.count(value, "max_parallel", 1),
                "max_failures" => max_failures = self.count(value, "max_failures", 0).unwrap_or(0),
                "only" => only = self.only(value),
                _ => self.unknown_field(key, STEP_FIELDS, "a step"),
            }
        }
        let Some(id) = id else {
            if !entries.iter().any(|(k, _)| k.name == "id") {
                self.error(
                    "missing-field",
                    node.span,
                    "this step has no `id`",
                    "add `id: some-name` (lower-case letters, digits and `-`)",
                );
            }
            return None;
        };
        let action = match (run, approve) {
            (Some(run), None) => {
                let Some(on) = on else {
                    self.error(
                        "missing-field",
                        id.span,
                        format!("step `{}` has `run` but no `on`", id.value),
                        "add `on: HOST-OR-GROUP` naming where the command runs",
                    );
                    return None;
                };
                Action::Run {
                    on,
                    run,
                    rollback,
                    verify,
                }
            }
            (None, Some(message)) => {
                for (field, present) in [
                    ("on", on.is_some()),
                    ("rollback", rollback.is_some()),
                    ("verify", verify.is_some()),
                ] {
                    if present {
                        let span = field_span(entries, field).unwrap_or(id.span);
                        self.error(
                            "approve-with-run",
                            span,
                            format!(
                                "step `{}` is an `approve` gate and cannot have `{field}`",
                                id.value
                            ),
                            "an approval runs nothing; put commands in a step of their own",
                        );
                    }
                }
                Action::Approve { message }
            }
            (Some(_), Some(_)) => {
                let span = field_span(entries, "approve").unwrap_or(id.span);
                self.error(
                    "approve-with-run",
                    span,
                    format!("step `{}` has both `run` and `approve`", id.value),
                    "a step is either a command (`run`) or an operator gate (`approve`): split it in two steps",
                );
                return None;
            }
            (None, None) => {
                self.error(
                    "missing-field",
                    id.span,
                    format!("step `{}` has neither `run` nor `approve`", id.value),
                    "add `run: COMMAND` with `on: HOST-OR-GROUP`, or `approve: QUESTION`",
                );
                return None;
            }
        };
        if self.diagnostics[errors_before..]
            .iter()
            .any(Diagnostic::is_error)
        {
            return None;
        }
        Some(Step {
            id,
            span: node.span,
            name,
            action,
            needs,
            when,
            timeout,
            retry,
            readonly,
            idempotent,
            checkpoint,
            max_parallel,
            max_failures,
            only,
        })
    }

    fn needs(&mut self, node: &Node) -> Option<Vec<Spanned<String>>> {
        if let Some(items) = node.as_seq() {
            return Some(
                items
                    .iter()
                    .filter_map(|item| self.identifier(item, "a step id in `needs`"))
                    .collect(),
            );
        }
        // `needs: promote` is a common slip for `needs: [promote]`: accept it.
        self.identifier(node, "`needs`").map(|id| vec![id])
    }

    fn only(&mut self, node: &Node) -> Option<Only> {
        match node.as_scalar().as_deref() {
            Some("drill") => Some(Only::Drill),
            Some("real") => Some(Only::Real),
            _ => {
                self.error(
                    "type",
                    node.span,
                    "`only` must be `drill` or `real`",
                    "`only: drill` runs in drills only; `only: real` never runs in a drill",
                );
                None
            }
        }
    }
}

fn field_span(entries: &[(Key, Node)], field: &str) -> Option<Span> {
    entries
        .iter()
        .find(|(k, _)| k.name == field)
        .map(|(k, _)| k.span)
}

/// Variable and secret names: `[A-Za-z_][A-Za-z0-9_]*`.
#[must_use]
pub fn is_variable_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Option<Runbook>, Vec<Diagnostic>) {
        parse(&Source::new("rb.yaml", text))
    }

    #[test]
    fn a_full_step_is_read_with_its_fields() {
        let (rb, diags) = parse_text(
            "name: emr-failover\ntargets: { rto: 30m }\nvars: { site: nishi }\nsecrets: [token]\n\
             defaults: { timeout: 5m }\nsteps:\n  - id: promote\n    on: db\n    run: emr-ctl promote\n\
             \x20   rollback: emr-ctl demote\n    retry: { attempts: 3, delay: 10s, backoff: 2.0 }\n\
             \x20 - id: gate\n    approve: Go?\n    needs: []\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let rb = rb.unwrap();
        assert_eq!(rb.targets.rto, Some(Duration::from_mins(30)));
        assert_eq!(rb.steps.len(), 2);
        assert_eq!(rb.steps[0].retry.unwrap().attempts, 3);
        assert_eq!(rb.steps[1].needs, Some(vec![]));
        assert!(rb.steps[1].is_approval());
    }

    #[test]
    fn every_problem_of_a_file_is_reported() {
        let (rb, diags) = parse_text(
            "name: x\nsteps:\n  - id: a\n    on: h\n    run: x\n    tiemout: 5s\n  - id: a\n    on: h\n    run: y\n    timeout: 5 minutes\n",
        );
        assert!(rb.is_none());
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["unknown-field", "duration"]);
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `timeout`?"));
    }

    #[test]
    fn duplicate_ids_point_at_the_second_and_name_the_first() {
        let (_, diags) =
            parse_text("name: x\nsteps:\n  - id: a\n    approve: ok\n  - id: a\n    approve: ok\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].code, "duplicate-id");
        assert_eq!(diags[0].span.unwrap().line, 5);
        assert!(diags[0].help.as_deref().unwrap().contains("line 3"));
    }

    #[test]
    fn approve_with_run_is_an_error() {
        let (_, diags) =
            parse_text("name: x\nsteps:\n  - id: a\n    on: h\n    run: x\n    approve: ok\n");
        assert_eq!(diags[0].code, "approve-with-run");
        assert_eq!(diags[0].span.unwrap().line, 6);
    }

    #[test]
    fn an_empty_file_says_what_a_runbook_needs() {
        let (_, diags) = parse_text("");
        assert_eq!(diags[0].code, "empty");
    }
}
