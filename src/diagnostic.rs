//! Problems found in the operator's files, and the ways to show them.
//!
//! Every reader (YAML, runbook, inventory, plan) reports problems as `Diagnostic`s and keeps
//! going, so that one `validate` shows every problem of every file at once. Rendering is
//! separate: a terminal gets the source line with a caret, CI gets GitHub annotations or SARIF.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::source::{Source, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem, pointing at the text it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable name for the kind of problem (`unknown-field`, `cycle`, …), for tools and tests.
    pub code: &'static str,
    pub file: PathBuf,
    /// `None` when the problem is about the file as a whole (unreadable, binary).
    pub span: Option<Span>,
    pub message: String,
    /// What to do about it: a fix, or "did you mean …".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    #[must_use]
    pub fn error(code: &'static str, file: &Path, span: Span, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            code,
            file: file.to_path_buf(),
            span: Some(span),
            message: message.into(),
            help: None,
        }
    }

    #[must_use]
    pub fn warning(
        code: &'static str,
        file: &Path,
        span: Span,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, file, span, message)
        }
    }

    /// A problem with the whole file rather than a place in it.
    #[must_use]
    pub fn file_error(code: &'static str, file: &Path, message: impl Into<String>) -> Self {
        Self {
            span: None,
            ..Self::error(code, file, Span::default(), message)
        }
    }

    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds "did you mean `x`?" when one of `candidates` is close to `wrong`.
    #[must_use]
    pub fn suggest<'a>(self, wrong: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        match did_you_mean(wrong, candidates) {
            Some(best) => self.with_help(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    #[must_use]
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col`, or just the file.
    #[must_use]
    pub fn location(&self) -> String {
        match self.span {
            Some(span) => format!("{}:{}:{}", self.file.display(), span.line, span.col),
            None => self.file.display().to_string(),
        }
    }
}

/// The closest candidate to a misspelt name, if it is close enough to be a likely typo.
#[must_use]
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wrong, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// How `validate` and friends print diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
    Sarif,
}

/// Renders diagnostics in `format`. `sources` supplies the quoted lines for `human`;
/// `color` adds ANSI colours (only ever on a terminal).
#[must_use]
pub fn render(
    diagnostics: &[Diagnostic],
    sources: &[Source],
    format: Format,
    color: bool,
) -> String {
    match format {
        Format::Human => diagnostics
            .iter()
            .map(|d| render_human(d, sources, color))
            .collect(),
        Format::Json => {
            let mut out = serde_json::to_string_pretty(diagnostics).unwrap_or_default();
            out.push('\n');
            out
        }
        Format::Github => diagnostics.iter().map(render_github).collect(),
        Format::Sarif => {
            let mut out = serde_json::to_string_pretty(&sarif(diagnostics)).unwrap_or_default();
            out.push('\n');
            out
        }
    }
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// ```text
/// error: unknown field `tiemout`
///   --> runbooks/x.yaml:7:5
///    |
///  7 |     tiemout: 30s
///    |     ^^^^^^^
///    = help: did you mean `timeout`?
/// ```
fn render_human(d: &Diagnostic, sources: &[Source], color: bool) -> String {
    let (label, code) = match d.severity {
        Severity::Error => ("error", "1;31"),
        Severity::Warning => ("warning", "1;33"),
    };
    let mut out = format!(
        "{}: {}\n",
        paint(label, code, color),
        paint(&d.message, "1", color)
    );
    let line_text = d.span.and_then(|span| {
        sources
            .iter()
            .find(|s| s.path == d.file)
            .and_then(|s| s.line(span.line))
            .map(|text| (span, text))
    });
    // The gutter is as wide as the line number, so that `-->`, `|` and `=` line up.
    let pad = " ".repeat(line_text.map_or(1, |(span, _)| span.line.to_string().len()));
    let _ = writeln!(out, " {pad}--> {}", d.location());
    if let Some((span, text)) = line_text {
        let number = span.line.to_string();
        let shown: String = text.chars().take(200).collect();
        let indent: String = shown
            .chars()
            .take(span.col.saturating_sub(1) as usize)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let carets = "^".repeat(span.len.max(1) as usize);
        let _ = writeln!(out, " {pad} |");
        let _ = writeln!(out, " {number} | {shown}");
        let _ = writeln!(out, " {pad} | {indent}{}", paint(&carets, code, color));
    }
    if let Some(help) = &d.help {
        let _ = writeln!(out, " {pad} = help: {help}");
    }
    out.push('\n');
    out
}

/// GitHub Actions workflow commands: `::error file=F,line=L,col=C::message`.
fn render_github(d: &Diagnostic) -> String {
    let level = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_property = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        let _ = write!(message, " ({help})");
    }
    let file = escape_property(&d.file.display().to_string());
    match d.span {
        Some(span) => format!(
            "::{level} file={file},line={},col={}::{}\n",
            span.line,
            span.col,
            escape(&message)
        ),
        None => format!("::{level} file={file}::{}\n", escape(&message)),
    }
}

/// A SARIF 2.1.0 log with one run, for code-scanning tools.
fn sarif(diagnostics: &[Diagnostic]) -> serde_json::Value {
    let mut rules: Vec<&str> = diagnostics.iter().map(|d| d.code).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|d| {
            let mut text = d.message.clone();
            if let Some(help) = &d.help {
                let _ = write!(text, " ({help})");
            }
            let mut physical = serde_json::json!({
                "artifactLocation": { "uri": d.file.display().to_string().replace('\\', "/") }
            });
            if let Some(span) = d.span {
                physical["region"] = serde_json::json!({
                    "startLine": span.line.max(1),
                    "startColumn": span.col.max(1),
                    "endColumn": span.col.max(1) + span.len.max(1),
                });
            }
            serde_json::json!({
                "ruleId": d.code,
                "level": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": { "text": text },
                "locations": [{ "physicalLocation": physical }],
            })
        })
        .collect();
    serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "runbook",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules.iter().map(|r| serde_json::json!({ "id": r })).collect::<Vec<_>>(),
            }},
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_rendering_quotes_the_line_with_a_caret_and_help() {
        let source = Source::new("rb.yaml", "name: x\nsteps:\n  - id: a\n    tiemout: 5s\n");
        let d = Diagnostic::error(
            "unknown-field",
            Path::new("rb.yaml"),
            Span::new(4, 5, 7),
            "unknown field `tiemout`",
        )
        .suggest("tiemout", ["timeout", "run"]);
        let out = render(&[d], &[source], Format::Human, false);
        assert_eq!(
            out,
            "error: unknown field `tiemout`\n  --> rb.yaml:4:5\n   |\n 4 |     tiemout: 5s\n   |     ^^^^^^^\n   = help: did you mean `timeout`?\n\n"
        );
    }

    #[test]
    fn the_gutter_widens_with_the_line_number() {
        let text = format!("{}x: 1\n", "\n".repeat(11));
        let source = Source::new("rb.yaml", text);
        let d = Diagnostic::error("type", Path::new("rb.yaml"), Span::new(12, 4, 1), "bad")
            .with_help("fix it");
        let out = render(&[d], &[source], Format::Human, false);
        assert_eq!(
            out,
            "error: bad\n   --> rb.yaml:12:4\n    |\n 12 | x: 1\n    |    ^\n    = help: fix it\n\n"
        );
    }

    #[test]
    fn github_rendering_is_one_workflow_command_per_problem() {
        let d = Diagnostic::error(
            "cycle",
            Path::new("a.yaml"),
            Span::new(3, 7, 1),
            "cycle: a -> b -> a",
        );
        assert_eq!(
            render(&[d], &[], Format::Github, false),
            "::error file=a.yaml,line=3,col=7::cycle: a -> b -> a\n"
        );
    }

    #[test]
    fn sarif_has_version_and_region() {
        let d = Diagnostic::warning("no-timeout", Path::new("a.yaml"), Span::new(2, 3, 4), "m");
        let v: serde_json::Value =
            serde_json::from_str(&render(&[d], &[], Format::Sarif, false)).unwrap();
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(
            v["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            2
        );
    }
}
