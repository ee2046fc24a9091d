//! `rollback RUN_ID`: undo a run by running the `rollback` commands of its succeeded steps
//! in reverse order of completion, on the hosts where they succeeded. The rollback is
//! itself a plan executed by the same engine into the same journal (its steps are named
//! `rollback:ID`), so it is checkpointed and resumable like any run: running `rollback`
//! again continues it.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use crate::error::Error;
use crate::event::{EventKind, Outcome, StepStatus};
use crate::journal::{Integrity, JournalWriter};
use crate::plan::{Plan, PlannedStep};
use crate::session::{Opening, Session, lock_for};
use crate::source::Source;
use crate::state::RunState;
use crate::status::integrity_text;
use crate::store::Store;
use crate::transport::Transport;

/// The prefix of rollback steps in the journal (`:` cannot appear in a step id).
pub const PREFIX: &str = "rollback:";

/// What `runbook rollback` was asked.
pub struct RollbackRequest {
    pub store: Store,
    pub run_id: String,
    pub yes: bool,
    pub secrets_file: Option<std::path::PathBuf>,
    pub transport: Arc<dyn Transport>,
    pub color: bool,
}

/// The run's succeeded steps, in the order they completed.
fn completion_order(events: &[crate::event::Event]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for event in events {
        if let (
            EventKind::StepCompleted {
                status: StepStatus::Succeeded,
                ..
            },
            Some(step),
        ) = (&event.kind, &event.step)
            && !step.starts_with(PREFIX)
        {
            order.retain(|s| s != step);
            order.push(step.clone());
        }
    }
    order
}

/// A plan that undoes `plan`'s succeeded steps, newest first, one after the other.
fn rollback_plan(plan: &Plan, state: &RunState, order: &[String]) -> Plan {
    let mut steps: Vec<PlannedStep> = Vec::new();
    for id in order.iter().rev() {
        let Some(original) = plan.index_of(id).map(|i| &plan.steps[i]) else {
            continue;
        };
        let Some(undo) = &original.rollback else {
            continue;
        };
        let done_on = |host: &str| {
            state
                .steps
                .get(id)
                .and_then(|s| s.hosts.get(host))
                .is_some_and(|h| h.outcome == Some(Outcome::Succeeded))
        };
        let mut step = original.clone();
        step.step.id.value = format!("{PREFIX}{id}");
        step.step.when = None;
        step.step.only = None;
        step.step.checkpoint = None;
        step.step.max_failures = 0;
        step.hosts.retain(|h| done_on(&h.name));
        step.command = Some(undo.clone());
        step.verify = None;
        step.rollback = None;
        step.when = None;
        step.needs = steps.len().checked_sub(1).into_iter().collect();
        steps.push(step);
    }
    let waves = (0..steps.len()).map(|i| vec![i]).collect();
    Plan {
        steps,
        waves,
        ..plan.clone()
    }
}

/// `runbook rollback RUN_ID`.
pub fn rollback(request: RollbackRequest, sources: &mut Vec<Source>) -> Result<(), Error> {
    let RollbackRequest {
        store,
        run_id,
        yes,
        secrets_file,
        transport,
        color,
    } = request;
    let run = store.open_run(&run_id)?;
    let inputs = run.inputs()?;
    let (events, integrity) = run.read_journal()?;
    if let Integrity::Broken { .. } = integrity {
        return Err(Error::Usage(format!(
            "the journal of run {run_id} is {}: a rollback from a damaged journal could undo the wrong steps; check `runbook status {run_id}`",
            integrity_text(&integrity)
        )));
    }
    let state = RunState::from_events(&events);
    // Undo what ran: the run's own copies, not today's version of the files.
    let plan = crate::resume::load_copies(&run, sources)?;
    let order = completion_order(&events);
    let undo = rollback_plan(&plan, &state, &order);
    let pending: Vec<String> = undo
        .steps
        .iter()
        .filter(|s| state.status_of(s.id()) != Some(StepStatus::Succeeded))
        .map(|s| s.id().trim_start_matches(PREFIX).to_string())
        .collect();
    if pending.is_empty() {
        println!(
            "run {run_id}: nothing to roll back (no succeeded step with a `rollback`, or all are rolled back)"
        );
        return Ok(());
    }
    if !yes {
        confirm(&run_id, &pending)?;
    }
    let secrets = crate::secrets::for_plan(&plan, secrets_file.as_deref(), inputs.mode)?;
    let _lock = lock_for(
        inputs.mode,
        &store,
        &inputs.runbook,
        &run_id,
        inputs.reason.as_deref(),
    )?;
    let journal = JournalWriter::open_append(&run.journal()).map_err(|e| {
        Error::Internal(format!(
            "cannot open the journal {}: {e}",
            run.journal().display()
        ))
    })?;
    let session = Session {
        store,
        run,
        mode: inputs.mode,
        max_parallel: inputs.max_parallel,
        approvals: crate::executor::Approvals::All,
        secrets,
        reason: inputs.reason,
        transport,
        color,
        step_by_step: false,
    };
    session.execute(undo, state, Opening::Rollback { steps: pending }, journal)
}

/// On a terminal, asks for `yes`; without one, `--yes` is required.
fn confirm(run_id: &str, steps: &[String]) -> Result<(), Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "rollback of run {run_id} would undo: {}. Confirm with `runbook rollback {run_id} --yes`",
            steps.join(", ")
        )));
    }
    eprint!(
        "Roll back run {run_id}, undoing (in this order): {}?\nType `yes` to go on: ",
        steps.join(", ")
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(Error::Usage(
            "rollback not confirmed: nothing was done".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    fn completed(step: &str) -> Event {
        Event {
            at: "2026-01-01T00:00:00.000Z".into(),
            step: Some(step.into()),
            host: None,
            kind: EventKind::StepCompleted {
                status: StepStatus::Succeeded,
                checkpoint: None,
            },
        }
    }

    #[test]
    fn completion_order_ignores_rollback_steps_and_keeps_the_last_completion() {
        let events = [
            completed("a"),
            completed("b"),
            completed("rollback:b"),
            completed("a"),
        ];
        assert_eq!(completion_order(&events), ["b", "a"]);
    }
}
