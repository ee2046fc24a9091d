//! `report.md`: the report as Markdown, readable as plain text in a terminal or a ticket
//! and rendered by any forge. Every value from the journal is escaped, so step output
//! cannot break a table or inject markup.

use std::fmt::Write as _;

use super::{Report, clock, delta, mode_banner, printable, took};

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run report: {}\n", esc(&r.runbook.name));
    let _ = writeln!(
        out,
        "> **{}**: {}\n",
        r.mode.label(),
        esc(mode_banner(r.mode)
            .split_once(": ")
            .map_or("", |(_, rest)| rest))
    );
    let _ = writeln!(out, "**Result: {}**", r.state.to_uppercase());
    if let Some(reason) = &r.paused_reason {
        let _ = writeln!(out, " (paused: {})", esc(reason));
    }
    out.push('\n');

    summary(&mut out, r);
    steps(&mut out, r);
    skipped(&mut out, r);
    approvals(&mut out, r);
    events(&mut out, r);
    comparison(&mut out, r);
    outputs(&mut out, r);

    let _ = writeln!(
        out,
        "---\nGenerated {} by runbook {} (report schema {}).",
        esc(&r.generated_at),
        esc(&r.tool_version),
        r.schema_version
    );
    out
}

fn summary(out: &mut String, r: &Report) {
    let t = &r.timing;
    let _ = writeln!(out, "| | |\n|---|---|");
    let mut row = |key: &str, value: String| {
        let _ = writeln!(out, "| {key} | {value} |");
    };
    row("Run", code(&r.run_id));
    row("Mode", format!("**{}**", r.mode.label()));
    row(
        "Runbook",
        format!(
            "{} · {} · sha256 {}",
            esc(&r.runbook.name),
            code(&r.runbook.path),
            r.runbook.sha256.as_deref().map_or("unknown".into(), code)
        ),
    );
    if let Some(inventory) = &r.inventory {
        row(
            "Inventory",
            format!(
                "{} · sha256 {}",
                code(&inventory.path),
                inventory.sha256.as_deref().map_or("unknown".into(), code)
            ),
        );
    }
    row("Operator", esc(&r.operator_label()));
    row("Reason", r.reason.as_deref().map_or("-".into(), esc));
    row("Started", t.started_at.as_deref().map_or("-".into(), esc));
    row("Finished", t.finished_at.as_deref().map_or("-".into(), esc));
    row("Total time", rto_text(r));
    row("Waiting for approvals", took(t.approval_wait_ms));
    row("Working time", took(t.working_ms));
    row(
        "Checkpoints reached",
        if r.checkpoints.is_empty() {
            "none".into()
        } else {
            r.checkpoints
                .iter()
                .map(|c| esc(&c.name))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    row(
        "Journal",
        format!(
            "{} · {} events · {}",
            code(&r.journal.path),
            r.journal.events,
            if r.journal.intact {
                esc(&r.journal.integrity)
            } else {
                format!("**{}**", esc(&r.journal.integrity))
            }
        ),
    );
    out.push('\n');
}

/// Total time against the RTO target, in words.
pub(super) fn rto_text(r: &Report) -> String {
    let t = &r.timing;
    let total = took(t.total_ms);
    match (t.rto_ms, t.rto_met) {
        (Some(rto), Some(true)) => format!("{total}, within the RTO of {}", took(rto)),
        (Some(rto), Some(false)) => format!(
            "{total}, **RTO of {} exceeded by {}**",
            took(rto),
            took(t.total_ms - rto)
        ),
        (Some(rto), None) => format!(
            "{total}; not a completed recovery, so not measured against the RTO of {}",
            took(rto)
        ),
        (None, _) => format!("{total} (no RTO target in the runbook)"),
    }
}

fn steps(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Steps\n");
    let _ = writeln!(
        out,
        "| Step | Host | Status | Start | End | Duration | Attempts | Exit |\n|---|---|---|---|---|---|---|---|"
    );
    for step in &r.steps {
        let span = |at: &Option<String>| at.as_deref().map_or("-".into(), |a| esc(clock(a)));
        let duration = |ms: Option<u64>| ms.map_or("-".into(), took);
        if step.hosts.is_empty() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | | |",
                code(&step.id),
                if step.kind == "approve" {
                    "(approval)"
                } else {
                    ""
                },
                status(&step.status),
                span(&step.started_at),
                span(&step.finished_at),
                duration(step.duration_ms),
            );
        }
        for host in &step.hosts {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                code(&step.id),
                esc(&host.host),
                status(&host.status),
                span(&host.started_at),
                span(&host.finished_at),
                duration(host.duration_ms),
                host.attempts.len(),
                host.exit_code.map_or("-".into(), |c| c.to_string()),
            );
        }
    }
    let _ = writeln!(out, "\nTimes are UTC.\n");
}

fn status(word: &str) -> String {
    if word == "failed" {
        "**FAILED**".into()
    } else {
        esc(word)
    }
}

fn skipped(out: &mut String, r: &Report) {
    let skipped: Vec<_> = r.steps.iter().filter(|s| s.status == "skipped").collect();
    if skipped.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Skipped steps\n\n| Step | Reason |\n|---|---|");
    for step in skipped {
        let _ = writeln!(
            out,
            "| {} | {} |",
            code(&step.id),
            step.skipped_reason.as_deref().map_or("-".into(), esc)
        );
    }
    out.push('\n');
}

fn approvals(out: &mut String, r: &Report) {
    if r.approvals.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Approvals\n\n| Step | Outcome | By | Via | Requested | Answered | Waited |\n|---|---|---|---|---|---|---|"
    );
    for a in &r.approvals {
        let by = match (&a.user, &a.machine) {
            (Some(u), Some(m)) => esc(&format!("{u}@{m}")),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            code(&a.step),
            esc(&a.outcome),
            by,
            a.via.as_deref().map_or("-".into(), esc),
            esc(clock(&a.requested_at)),
            a.answered_at
                .as_deref()
                .map_or("-".into(), |t| esc(clock(t))),
            took(a.waited_ms),
        );
    }
    out.push('\n');
}

/// Checkpoints, host keys, resumes, decisions and interruptions: short lists.
fn events(out: &mut String, r: &Report) {
    if !r.checkpoints.is_empty() {
        let _ = writeln!(out, "## Checkpoints reached\n");
        for c in &r.checkpoints {
            let _ = writeln!(
                out,
                "- {} at {} (step {})",
                esc(&c.name),
                esc(clock(&c.at)),
                code(&c.step)
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Host keys\n");
    if r.host_keys.is_empty() {
        let _ = writeln!(
            out,
            "No SSH connection was opened (local or simulated hosts)."
        );
    }
    for k in &r.host_keys {
        let _ = writeln!(out, "- {}: {}", esc(&k.host), esc(&k.detail));
    }
    out.push('\n');
    if !r.resumes.is_empty() || !r.decisions.is_empty() || !r.interruptions.is_empty() {
        let _ = writeln!(out, "## Interruptions and resumes\n");
        for i in &r.interruptions {
            let how = if i.forced {
                "stopped at once"
            } else {
                "interrupted"
            };
            let _ = writeln!(out, "- {}: {how}", esc(&i.at));
        }
        for s in &r.resumes {
            let _ = writeln!(
                out,
                "- {}: resumed by {}{}{}{}",
                esc(&s.at),
                esc(&format!("{}@{}", s.operator, s.machine)),
                s.reason
                    .as_deref()
                    .map(|x| format!(" ({})", esc(x)))
                    .unwrap_or_default(),
                if s.forced { " **with --force**" } else { "" },
                if s.changed_steps.is_empty() {
                    String::new()
                } else {
                    format!("; changed steps: {}", esc(&s.changed_steps.join(", ")))
                }
            );
        }
        for d in &r.decisions {
            let _ = writeln!(
                out,
                "- {}: {} {} decided {} by {}",
                esc(&d.at),
                d.step.as_deref().map_or(String::new(), code),
                d.host.as_deref().map_or(String::new(), esc),
                esc(&format!("{:?}", d.decision)),
                esc(&format!("{}@{}", d.user, d.machine)),
            );
        }
        out.push('\n');
    }
}

fn comparison(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Compared with the previous run\n");
    let Some(c) = &r.comparison else {
        let _ = writeln!(
            out,
            "No earlier finished {} run of this runbook to compare with.\n",
            r.mode.label()
        );
        return;
    };
    let _ = writeln!(
        out,
        "Previous {} run {} ({}, {}): total {}, now {} ({}).\n",
        r.mode.label(),
        code(&c.previous_run_id),
        c.previous_started_at.as_deref().map_or("-".into(), esc),
        esc(&c.previous_state),
        took(c.previous_total_ms),
        took(r.timing.total_ms),
        delta(c.total_delta_ms)
    );
    let _ = writeln!(out, "| Step | Before | After | Change |\n|---|---|---|---|");
    for s in &c.steps {
        let change = match (s.change.as_str(), s.delta_ms) {
            ("slower" | "faster", Some(d)) => format!("{} by {}", s.change, delta(d)),
            _ => esc(&s.change),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {}{} |",
            code(&s.id),
            s.before_ms.map_or("-".into(), took),
            s.after_ms.map_or("-".into(), took),
            change,
            if s.new_failure {
                " · **NEW FAILURE**"
            } else {
                ""
            }
        );
    }
    out.push('\n');
}

fn outputs(out: &mut String, r: &Report) {
    let hosts = r.hosts_with_output();
    if hosts.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Output (last lines)\n");
    for (step, host) in hosts {
        let _ = writeln!(out, "### {} on {}\n", esc(&step.id), esc(&host.host));
        if let Some(error) = &host.error {
            let _ = writeln!(out, "Error: {}\n", esc(error));
        }
        for (label, text) in [("stdout", &host.stdout_tail), ("stderr", &host.stderr_tail)] {
            if !text.is_empty() {
                let _ = writeln!(out, "{label}:\n\n{}\n", fenced(text));
            }
        }
    }
}

/// Text for a Markdown table cell or line: one line, markup characters escaped.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in printable(text).chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Inline code that holds any text: the fence is longer than any backtick run inside.
/// A `|` cannot be escaped inside code in a table, so it is written as an entity-free
/// look-alike (`¦`) there.
fn code(text: &str) -> String {
    let text = printable(text)
        .replace(['\n', '\r', '\t'], " ")
        .replace('|', "¦");
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A fenced block that holds any text.
fn fenced(text: &str) -> String {
    let text = printable(text);
    let fence = "`".repeat(longest_backtick_run(&text).max(2) + 1);
    format!("{fence}text\n{text}\n{fence}")
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_a_table_or_inject_markup() {
        assert_eq!(esc("a|b\n<script>"), "a\\|b \\<script\\>");
    }

    #[test]
    fn code_spans_outlast_backticks_inside() {
        assert_eq!(code("a``b"), "```a``b```");
        assert_eq!(code("x|y"), "`x¦y`");
    }

    #[test]
    fn fences_outlast_fences_inside() {
        assert!(fenced("```\nrm -rf\n```").starts_with("````text\n"));
    }
}
