//! What a plan would do, shown before anything runs: `plan` (waves with every command
//! rendered for every host, secrets as `***`) and `graph` (Mermaid or Graphviz).

use std::fmt::Write as _;

use serde_json::json;

use crate::duration;
use crate::inventory::Host;
use crate::plan::{Plan, PlannedStep};
use crate::template::{Quoting, Reference, Template};

/// A host variable as the text a template inserts: strings as they are, anything else as JSON.
#[must_use]
pub fn var_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Renders a template as `plan` shows it: real values for vars and hosts, `***` for
/// secrets, and a placeholder for outputs of steps that have not run.
#[must_use]
pub fn render_preview(plan: &Plan, template: &Template, host: Option<&Host>) -> String {
    let resolve = |reference: &Reference| -> Option<String> {
        match reference {
            Reference::Var(name) => plan.vars.get(name).cloned(),
            Reference::HostName => {
                Some(host.map_or_else(|| "<host.name>".into(), |h| h.name.clone()))
            }
            Reference::HostAddress => {
                Some(host.map_or_else(|| "<host.address>".into(), |h| h.address.clone()))
            }
            Reference::HostVar(name) => Some(
                host.and_then(|h| h.vars.get(name))
                    .map_or_else(|| format!("<host.vars.{name}>"), var_text),
            ),
            Reference::Secret(_) => Some("***".into()),
            Reference::StepStdout(id) => Some(format!("<stdout of {id}>")),
            Reference::StepExitCode(id) => Some(format!("<exit code of {id}>")),
            Reference::StepStatus(id) => Some(format!("<status of {id}>")),
        }
    };
    template
        .render(Quoting::Shell, &resolve)
        .unwrap_or_else(|missing| format!("<cannot render: {missing} is undefined>"))
}

fn hosts_or_target(step: &PlannedStep) -> Vec<Option<&Host>> {
    if step.hosts.is_empty() {
        vec![None]
    } else {
        step.hosts.iter().map(|h| Some(&**h)).collect()
    }
}

fn target(step: &PlannedStep) -> Option<&str> {
    match &step.step.action {
        crate::runbook::Action::Run { on, .. } => Some(on.value.as_str()),
        crate::runbook::Action::Approve { .. } => None,
    }
}

/// A step id as a Mermaid node id: `-` is not allowed there, and a few words (`end`…)
/// are flowchart keywords that would break the chart.
fn mermaid_id(id: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "style",
        "class",
        "classdef",
        "click",
        "linkstyle",
        "direction",
        "default",
    ];
    let id = id.replace('-', "_");
    if KEYWORDS.contains(&id.as_str()) {
        format!("{id}_step")
    } else {
        id
    }
}

/// The human `plan` output.
#[must_use]
pub fn plan_human(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan of `{}` ({})",
        plan.runbook.name.value,
        plan.path.display()
    );
    if !plan.vars.is_empty() {
        let vars: Vec<String> = plan.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "vars: {}", vars.join(", "));
    }
    if let Some(rto) = plan.runbook.targets.rto {
        let _ = writeln!(out, "target: recover within {}", duration::format(rto));
    }
    for (n, wave) in plan.waves.iter().enumerate() {
        let _ = writeln!(out, "\nwave {}:", n + 1);
        for &index in wave {
            let step = &plan.steps[index];
            let mut title = format!("  {}", step.id());
            if let Some(name) = &step.step.name {
                let _ = write!(title, " — {name}");
            }
            let _ = writeln!(out, "{title}");
            let mut facts = Vec::new();
            if !step.needs.is_empty() {
                let needs: Vec<&str> = step.needs.iter().map(|&i| plan.steps[i].id()).collect();
                facts.push(format!("after {}", needs.join(", ")));
            }
            if let Some(when) = &step.step.when {
                facts.push(format!("when {}", when.value));
            }
            if let Some(only) = step.step.only {
                facts.push(format!(
                    "only in {} runs",
                    if only == crate::runbook::Only::Drill {
                        "drill"
                    } else {
                        "real"
                    }
                ));
            }
            if let Some(timeout) = step.timeout {
                facts.push(format!("timeout {}", duration::format(timeout)));
            }
            if step.retry.attempts > 1 {
                facts.push(format!("{} attempts", step.retry.attempts));
            }
            if step.step.readonly {
                facts.push("read-only".into());
            }
            if let Some(checkpoint) = &step.step.checkpoint {
                facts.push(format!("checkpoint `{checkpoint}`"));
            }
            if !facts.is_empty() {
                let _ = writeln!(out, "    ({})", facts.join("; "));
            }
            if let Some(question) = &step.question {
                let _ = writeln!(out, "    approval: {}", render_question(plan, question));
                continue;
            }
            for host in hosts_or_target(step) {
                let place = match host {
                    Some(h) => format!("{} ({})", h.name, h.address),
                    None => target(step).unwrap_or_default().to_string(),
                };
                if let Some(command) = &step.command {
                    let _ = writeln!(
                        out,
                        "    on {place}: {}",
                        render_preview(plan, command, host)
                    );
                }
                if let Some(verify) = &step.verify {
                    let _ = writeln!(out, "      verify: {}", render_preview(plan, verify, host));
                }
                // What `runbook rollback` would run is part of what the operator signs up for.
                if let Some(rollback) = &step.rollback {
                    let _ = writeln!(
                        out,
                        "      rollback: {}",
                        render_preview(plan, rollback, host)
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "\n{} steps in {} waves.",
        plan.steps.len(),
        plan.waves.len()
    );
    if !plan.has_inventory {
        let _ = writeln!(
            out,
            "No inventory given: hosts are shown by their `on:` target. Add `-i INVENTORY` to expand groups."
        );
    }
    out
}

fn render_question(plan: &Plan, question: &Template) -> String {
    let resolve = |reference: &Reference| match reference {
        Reference::Var(name) => plan.vars.get(name).cloned(),
        Reference::Secret(_) => Some("***".into()),
        other => Some(format!("<{other}>")),
    };
    question
        .render(Quoting::Plain, &resolve)
        .unwrap_or_default()
}

/// The JSON `plan` output.
#[must_use]
pub fn plan_json(plan: &Plan) -> serde_json::Value {
    let step_json = |step: &PlannedStep| {
        let hosts: Vec<serde_json::Value> = hosts_or_target(step)
            .into_iter()
            .filter(|_| step.command.is_some())
            .map(|host| {
                json!({
                    "host": host.map(|h| h.name.as_str()).or(target(step)),
                    "address": host.map(|h| h.address.as_str()),
                    "command": step.command.as_ref().map(|t| render_preview(plan, t, host)),
                    "verify": step.verify.as_ref().map(|t| render_preview(plan, t, host)),
                    "rollback": step.rollback.as_ref().map(|t| render_preview(plan, t, host)),
                })
            })
            .collect();
        json!({
            "id": step.id(),
            "name": step.step.name,
            "kind": if step.question.is_some() { "approve" } else { "run" },
            "on": target(step),
            "needs": step.needs.iter().map(|&i| plan.steps[i].id()).collect::<Vec<_>>(),
            "when": step.step.when.as_ref().map(|w| w.value.as_str()),
            "only": step.step.only,
            "timeout_ms": step.timeout.map(|t| t.as_millis()),
            "attempts": step.retry.attempts,
            "readonly": step.step.readonly,
            "idempotent": step.step.idempotent,
            "checkpoint": step.step.checkpoint,
            "question": step.question.as_ref().map(|q| render_question(plan, q)),
            "hosts": hosts,
        })
    };
    json!({
        "runbook": plan.runbook.name.value,
        "file": plan.path.display().to_string(),
        "vars": plan.vars,
        "targets": {
            "rto_ms": plan.runbook.targets.rto.map(|d| d.as_millis()),
            "rpo_ms": plan.runbook.targets.rpo.map(|d| d.as_millis()),
        },
        "waves": plan.waves.iter().map(|wave| wave.iter().map(|&i| step_json(&plan.steps[i])).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

/// Graph formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

/// The step graph: one node per step (approvals drawn differently), one edge per dependency;
/// edges into a step with `when` are dotted, since it may run whatever they ended in.
#[must_use]
pub fn graph(plan: &Plan, format: GraphFormat) -> String {
    let mut out = String::new();
    let node_id = mermaid_id;
    let label = |step: &PlannedStep| {
        let mut label = step.id().to_string();
        if let Some(on) = target(step) {
            let _ = write!(label, " @ {on}");
        }
        label.replace('"', "'")
    };
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart TD\n");
            for step in &plan.steps {
                let id = node_id(step.id());
                if step.question.is_some() {
                    let _ = writeln!(out, "    {id}{{\"{}\"}}", label(step));
                } else {
                    let _ = writeln!(out, "    {id}[\"{}\"]", label(step));
                }
            }
            for step in &plan.steps {
                let arrow = if step.when.is_some() { "-.->" } else { "-->" };
                for &dep in &step.needs {
                    let _ = writeln!(
                        out,
                        "    {} {arrow} {}",
                        node_id(plan.steps[dep].id()),
                        node_id(step.id())
                    );
                }
            }
        }
        GraphFormat::Dot => {
            let _ = writeln!(out, "digraph \"{}\" {{", plan.runbook.name.value);
            out.push_str("    rankdir=TB;\n    node [shape=box];\n");
            for step in &plan.steps {
                let shape = if step.question.is_some() {
                    " shape=diamond"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "    \"{}\" [label=\"{}\"{shape}];",
                    step.id(),
                    label(step)
                );
            }
            for step in &plan.steps {
                let style = if step.when.is_some() {
                    " [style=dashed]"
                } else {
                    ""
                };
                for &dep in &step.needs {
                    let _ = writeln!(
                        out,
                        "    \"{}\" -> \"{}\"{style};",
                        plan.steps[dep].id(),
                        step.id()
                    );
                }
            }
            out.push_str("}\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mermaid_ids_avoid_dashes_and_keywords() {
        assert_eq!(mermaid_id("promote-db"), "promote_db");
        assert_eq!(mermaid_id("end"), "end_step");
    }
}
