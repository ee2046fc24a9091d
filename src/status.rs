//! `status` and `runs`: what the journal says about runs, for people and for tools.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::json;

use crate::duration;
use crate::error::Error;
use crate::journal::Integrity;
use crate::state::RunState;
use crate::store::{RunDir, Store};

/// A journal's integrity in words.
#[must_use]
pub fn integrity_text(integrity: &Integrity) -> String {
    match integrity {
        Integrity::Intact => "intact".into(),
        Integrity::TornTail { line } => {
            format!("intact (a torn last line {line} from an interrupted write was ignored)")
        }
        Integrity::Broken { line, reason } => format!("DAMAGED at line {line}: {reason}"),
    }
}

/// A journal's integrity for tools: `state` is `intact`, `torn-tail` or `damaged`.
#[must_use]
pub fn integrity_json(integrity: &Integrity) -> serde_json::Value {
    match integrity {
        Integrity::Intact => json!({ "state": "intact" }),
        Integrity::TornTail { line } => json!({ "state": "torn-tail", "line": line }),
        Integrity::Broken { line, reason } => {
            json!({ "state": "damaged", "line": line, "reason": reason })
        }
    }
}

/// The run's overall state in one word.
#[must_use]
pub fn state_word(state: &RunState) -> &'static str {
    use crate::event::RunStatus;
    match state.finished {
        Some(RunStatus::Succeeded) => "succeeded",
        Some(RunStatus::Failed) => "failed",
        Some(RunStatus::Paused) => "paused",
        Some(RunStatus::Interrupted) => "interrupted",
        // No end written: still running, or the process died (kill -9, power cut).
        None => "unfinished",
    }
}

/// Like [`state_word`], but a run whose lock a live process holds is `running` (a run, a
/// resume or a rollback of it), whatever its journal said last: "unfinished" then means
/// the process died (kill -9, power cut).
#[must_use]
pub fn live_state_word(run: &RunDir, runbook: &str, state: &RunState) -> &'static str {
    if is_running(run, runbook) {
        "running"
    } else {
        state_word(state)
    }
}

/// Whether a live process holds the runbook's lock for this run.
fn is_running(run: &RunDir, runbook: &str) -> bool {
    // runs/RUN_ID/ -> locks/
    let Some(root) = run.dir.parent().and_then(std::path::Path::parent) else {
        return false;
    };
    matches!(
        crate::lock::read_lock(&root.join("locks"), runbook),
        Ok(Some(holder)) if holder.run_id == run.id && !crate::lock::is_stale(&holder)
    )
}

/// The run's step ids in the order of its runbook (from the run's copy), then any others
/// the journal names (rollback steps, steps since removed) in the order they appeared.
fn step_order(run: &RunDir, state: &RunState, events_order: &[String]) -> Vec<String> {
    let mut sources = Vec::new();
    let mut order: Vec<String> = crate::resume::load_copies(run, &mut sources)
        .map(|plan| plan.steps.iter().map(|s| s.id().to_string()).collect())
        .unwrap_or_default();
    for id in events_order.iter().chain(state.steps.keys()) {
        if !order.contains(id) {
            order.push(id.clone());
        }
    }
    order
}

/// A step's state: its end, or `IN-FLIGHT` (a command's outcome is not journaled yet),
/// `in progress` (some hosts done), `pending`.
fn step_word(step: &crate::state::StepState) -> &'static str {
    match step.status {
        Some(status) => status.as_str(),
        None if step.hosts.values().any(|h| h.in_flight) => "IN-FLIGHT",
        None if step.awaiting_approval => "awaiting approval",
        None if !step.hosts.is_empty() => "in progress",
        None => "pending",
    }
}

/// `runbook status RUN_ID`.
pub fn status(run: &RunDir, json: bool) -> Result<String, Error> {
    let inputs = run.inputs()?;
    let (events, integrity) = run.read_journal()?;
    let state = RunState::from_events(&events);
    let seen: Vec<String> = events.iter().filter_map(|e| e.step.clone()).collect();
    let order = step_order(run, &state, &seen);
    let empty = crate::state::StepState::default();
    let steps: Vec<(&String, &crate::state::StepState)> = order
        .iter()
        .map(|id| (id, state.steps.get(id).unwrap_or(&empty)))
        .collect();
    let word = live_state_word(run, &inputs.runbook, &state);
    if json {
        let value = json!({
            "run_id": run.id,
            "runbook": inputs.runbook,
            "mode": inputs.mode,
            "state": word,
            "started_at": state.started_at.as_deref().unwrap_or(&inputs.created_at),
            "finished_at": state.finished_at,
            "duration_ms": duration_ms(&state),
            "operator": state.operator,
            "reason": state.reason,
            "paused": state.paused,
            "checkpoints": state.checkpoints,
            "journal": {
                "path": run.journal().display().to_string(),
                "integrity": integrity_json(&integrity),
            },
            "steps": steps.iter().map(|(id, step)| json!({
                "id": id,
                "status": step_word(step).to_lowercase(),
                "skipped_reason": step.skipped_reason,
                "approved_by": step.approved_by,
                "hosts": step.hosts.iter().filter(|(h, _)| !h.is_empty()).map(|(name, h)| json!({
                    "host": name,
                    "state": if h.in_flight { "in-flight".to_string() } else { h.outcome.map_or("pending".to_string(), |o| format!("{o:?}").to_lowercase()) },
                    "attempts": h.attempts,
                    "exit_code": h.exit_code,
                    "duration_ms": h.duration_ms,
                    "error": h.error,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        return Ok(text);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} of {} — {} — {}",
        run.id,
        inputs.runbook,
        inputs.mode.label(),
        word
    );
    if word == "unfinished" {
        let _ = writeln!(
            out,
            "no end recorded and no process holds its lock: it was killed or the machine stopped; `runbook resume {}` continues it",
            run.id
        );
    }
    if let Some(operator) = &state.operator {
        let _ = writeln!(
            out,
            "operator: {operator}{}",
            state
                .reason
                .as_deref()
                .map(|r| format!(" — reason: {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(paused) = &state.paused
        && state.finished == Some(crate::event::RunStatus::Paused)
    {
        let _ = writeln!(out, "paused: {paused}");
    }
    if !state.checkpoints.is_empty() {
        let _ = writeln!(out, "checkpoints reached: {}", state.checkpoints.join(", "));
    }
    let _ = writeln!(
        out,
        "journal: {} ({})",
        run.journal().display(),
        integrity_text(&integrity)
    );
    let _ = writeln!(out);
    for (id, step) in &steps {
        let word = step_word(step);
        let extra = step
            .skipped_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let approved = step
            .approved_by
            .as_deref()
            .map(|a| format!(" (approved by {a})"))
            .unwrap_or_default();
        let _ = writeln!(out, "  {id:<28} {word}{extra}{approved}");
        for (host, h) in step.hosts.iter().filter(|(h, _)| !h.is_empty()) {
            let state = if h.in_flight {
                "in-flight".to_string()
            } else {
                h.outcome
                    .map_or("pending".into(), |o| format!("{o:?}").to_lowercase())
            };
            let took = duration::format(Duration::from_millis(h.duration_ms));
            let code = h
                .exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            let error = h
                .error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "      {host:<24} {state}, {} attempt(s), {took}{code}{error}",
                h.attempts
            );
        }
    }
    Ok(out)
}

/// `runbook runs`.
#[must_use]
pub fn runs(store: &Store, json: bool) -> String {
    let mut rows = Vec::new();
    for id in store.run_ids() {
        let Ok(run) = store.open_run(&id) else {
            continue;
        };
        let Ok(inputs) = run.inputs() else { continue };
        let (state, integrity) = run
            .state()
            .unwrap_or((RunState::default(), Integrity::Intact));
        let word = live_state_word(&run, &inputs.runbook, &state);
        rows.push((id, inputs, state, integrity, word));
    }
    if json {
        let value: Vec<_> = rows
            .iter()
            .map(|(id, inputs, state, integrity, word)| {
                json!({
                    "run_id": id,
                    "runbook": inputs.runbook,
                    "mode": inputs.mode,
                    "state": word,
                    "started_at": state.started_at.as_deref().unwrap_or(&inputs.created_at),
                    "finished_at": state.finished_at,
                    "duration_ms": duration_ms(state),
                    "operator": state.operator,
                    "reason": state.reason,
                    "journal": integrity_json(integrity),
                })
            })
            .collect();
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        return text;
    }
    if rows.is_empty() {
        return format!("no runs in {}\n", store.runs_dir().display());
    }
    let mut out = format!(
        "{:<40} {:<28} {:<8} {:<12} {:<20} {:>8}  {}\n",
        "RUN", "RUNBOOK", "MODE", "STATE", "STARTED", "TOOK", "OPERATOR"
    );
    for (id, inputs, state, integrity, word) in &rows {
        let started = state.started_at.as_deref().unwrap_or(&inputs.created_at);
        let took = duration_ms(state).map_or_else(
            || "-".into(),
            |ms| duration::format(Duration::from_millis(ms)),
        );
        let _ = writeln!(
            out,
            "{:<40} {:<28} {:<8} {:<12} {:<20} {:>8}  {}{}",
            id,
            inputs.runbook,
            inputs.mode.label(),
            word,
            started.get(..19).unwrap_or(started),
            took,
            state.operator.as_deref().unwrap_or("-"),
            if matches!(integrity, Integrity::Broken { .. }) {
                "  (journal DAMAGED: `runbook status` shows where)"
            } else {
                ""
            }
        );
    }
    out
}

/// Wall time from the first start to the last end, from the journal's timestamps.
fn duration_ms(state: &RunState) -> Option<u64> {
    let start = crate::host_info::parse_rfc3339_ms(state.started_at.as_deref()?)?;
    let end = crate::host_info::parse_rfc3339_ms(state.finished_at.as_deref()?)?;
    end.checked_sub(start)
}
