//! The state of a run as a pure fold over its events: the executor keeps its own state by
//! applying the events it emits, and `resume`/`status` rebuild the very same state from
//! the journal. There is no second source of truth to drift.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::event::{Event, EventKind, Mode, Outcome, RunStatus, StepStatus};

/// Everything known about a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunState {
    pub run_id: String,
    pub runbook: String,
    pub mode: Option<Mode>,
    pub started_at: Option<String>,
    pub operator: Option<String>,
    pub reason: Option<String>,
    pub steps: BTreeMap<String, StepState>,
    /// The last way the run ended, if it did (a resumed run may end again).
    pub finished: Option<RunStatus>,
    pub finished_at: Option<String>,
    /// Why the run is paused, while it is.
    pub paused: Option<String>,
    pub checkpoints: Vec<String>,
}

/// What is known about one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepState {
    /// `None` until the step completes (or while it is running).
    pub status: Option<StepStatus>,
    pub hosts: BTreeMap<String, HostState>,
    pub skipped_reason: Option<String>,
    pub approved_by: Option<String>,
    /// An approval was asked and not yet answered.
    pub awaiting_approval: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// One host's part of a step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostState {
    /// `true` between `step_started` and `step_finished`: if the run died now, the command's
    /// outcome is unknown.
    pub in_flight: bool,
    pub outcome: Option<Outcome>,
    pub attempts: u32,
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: u64,
}

/// The key of a step's host entry for steps that run on no host (approvals).
pub const NO_HOST: &str = "";

impl RunState {
    /// Folds one event into the state.
    pub fn apply(&mut self, event: &Event) {
        let step_id = event.step.as_deref().unwrap_or_default();
        match &event.kind {
            EventKind::RunStarted {
                run_id,
                runbook,
                mode,
                operator,
                reason,
                ..
            } => {
                self.run_id.clone_from(run_id);
                self.runbook.clone_from(runbook);
                self.mode = Some(*mode);
                self.started_at.get_or_insert_with(|| event.at.clone());
                self.operator = Some(operator.clone());
                self.reason.clone_from(reason);
                self.finished = None;
                self.paused = None;
            }
            EventKind::RunResumed { .. } | EventKind::RollbackStarted { .. } => {
                self.finished = None;
                self.paused = None;
            }
            EventKind::StepStarted { .. } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                step.started_at.get_or_insert_with(|| event.at.clone());
                step.status = None;
                let host = step.hosts.entry(host_key(event)).or_default();
                host.in_flight = true;
                host.attempts += 1;
                host.outcome = None;
                host.started_at = Some(event.at.clone());
            }
            EventKind::StepFinished {
                outcome,
                exit_code,
                error,
                stdout,
                stderr,
                duration_ms,
                ..
            } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                let host = step.hosts.entry(host_key(event)).or_default();
                host.in_flight = false;
                host.outcome = Some(*outcome);
                host.exit_code = *exit_code;
                host.stdout.clone_from(stdout);
                host.stderr.clone_from(stderr);
                host.error.clone_from(error);
                host.finished_at = Some(event.at.clone());
                host.duration_ms = *duration_ms;
            }
            EventKind::StepRetrying { .. }
            | EventKind::HostConnected { .. }
            | EventKind::Interrupted { .. }
            | EventKind::Decision { .. } => {}
            EventKind::StepCompleted { status, checkpoint } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                step.status = Some(*status);
                step.finished_at = Some(event.at.clone());
                if let (StepStatus::Succeeded, Some(name)) = (status, checkpoint)
                    && !self.checkpoints.contains(name)
                {
                    self.checkpoints.push(name.clone());
                }
            }
            EventKind::StepSkipped { reason } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                step.status = Some(StepStatus::Skipped);
                step.skipped_reason = Some(reason.clone());
                step.finished_at = Some(event.at.clone());
            }
            EventKind::ApprovalRequested { .. } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                step.awaiting_approval = true;
                step.started_at.get_or_insert_with(|| event.at.clone());
            }
            EventKind::Approved { user, machine, .. } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                step.awaiting_approval = false;
                step.approved_by = Some(format!("{user}@{machine}"));
            }
            EventKind::Declined { .. } => {
                let step = self.steps.entry(step_id.to_string()).or_default();
                step.awaiting_approval = true;
            }
            EventKind::RunPaused { reason } => self.paused = Some(reason.clone()),
            EventKind::RunFinished { status, .. } => {
                self.finished = Some(*status);
                self.finished_at = Some(event.at.clone());
            }
        }
    }

    /// Rebuilds a state from events (the journal of a run).
    #[must_use]
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    #[must_use]
    pub fn status_of(&self, step: &str) -> Option<StepStatus> {
        self.steps.get(step).and_then(|s| s.status)
    }
}

fn host_key(event: &Event) -> String {
    event.host.clone().unwrap_or_else(|| NO_HOST.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: &str, host: &str, kind: EventKind) -> Event {
        Event {
            at: "2026-01-01T00:00:00.000Z".into(),
            step: Some(step.into()),
            host: Some(host.into()),
            kind,
        }
    }

    #[test]
    fn a_started_step_without_finish_is_in_flight() {
        let state = RunState::from_events(&[event(
            "promote",
            "db",
            EventKind::StepStarted {
                attempt: 1,
                command: "x".into(),
                simulated: false,
            },
        )]);
        assert!(state.steps["promote"].hosts["db"].in_flight);
        assert_eq!(state.status_of("promote"), None);
    }

    #[test]
    fn a_succeeded_step_with_a_checkpoint_records_it() {
        let state = RunState::from_events(&[
            event(
                "promote",
                "db",
                EventKind::StepStarted {
                    attempt: 1,
                    command: "x".into(),
                    simulated: false,
                },
            ),
            event(
                "promote",
                "db",
                EventKind::StepFinished {
                    attempt: 1,
                    outcome: Outcome::Succeeded,
                    exit_code: Some(0),
                    timed_out: false,
                    error: None,
                    stdout: "ok".into(),
                    stderr: String::new(),
                    duration_ms: 5,
                    simulated: false,
                },
            ),
            event(
                "promote",
                "db",
                EventKind::StepCompleted {
                    status: StepStatus::Succeeded,
                    checkpoint: Some("promoted".into()),
                },
            ),
        ]);
        let host = &state.steps["promote"].hosts["db"];
        assert!(!host.in_flight);
        assert_eq!(host.stdout, "ok");
        assert_eq!(state.checkpoints, ["promoted"]);
    }
}
