//! What happens during a run, as data. The executor emits events and never prints; the
//! journal, the progress display, the logs and the reports all consume the same events,
//! and the run's state is a fold over them (`state.rs`).

use serde::{Deserialize, Serialize};

/// One thing that happened, when, to which step and host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 UTC with milliseconds.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The kind of a run: real, a rehearsal, or a dry run that changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    #[serde(rename = "REAL")]
    Real,
    #[serde(rename = "DRILL")]
    Drill,
    /// Nothing is sent, no connection opened.
    #[serde(rename = "DRY-RUN")]
    DryRun,
    /// Connections opened and read-only steps and verifies run; nothing changed.
    #[serde(rename = "PROBE")]
    Probe,
}

impl Mode {
    /// The `RUNBOOK_MODE` a command sees.
    #[must_use]
    pub fn env_value(self) -> &'static str {
        match self {
            Mode::Real | Mode::DryRun => "REAL",
            Mode::Drill => "DRILL",
            Mode::Probe => "PROBE",
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Mode::Real => "REAL",
            Mode::Drill => "DRILL",
            Mode::DryRun => "DRY-RUN",
            Mode::Probe => "PROBE",
        }
    }

    /// Whether `only: drill` steps take part (and `only: real` do not).
    #[must_use]
    pub fn is_drill(self) -> bool {
        self == Mode::Drill
    }
}

/// How one host's attempt at a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
}

/// The state of a step as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Succeeded,
    Failed,
    Paused,
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted {
        run_id: String,
        runbook: String,
        file: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inventory: Option<String>,
        mode: Mode,
        operator: String,
        machine: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// `resume` continues the run (possibly in another process, by another operator).
    RunResumed {
        operator: String,
        machine: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `--force` was given: a damaged journal or a changed succeeded step was accepted.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        forced: bool,
        /// Steps whose definition changed since the run started (not yet succeeded ones).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changed_steps: Vec<String>,
    },
    /// `rollback` starts undoing the run's succeeded steps (in reverse order of completion).
    RollbackStarted {
        operator: String,
        machine: String,
        steps: Vec<String>,
    },
    /// What was decided about a step whose outcome was unknown (in flight when the run died).
    Decision {
        decision: Decision,
        user: String,
        machine: String,
    },
    /// Written (and on disk) before the command is sent.
    StepStarted {
        attempt: u32,
        /// The rendered command, secrets redacted.
        command: String,
        /// `true` when nothing is sent (dry run, or a changing step in a probe).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        simulated: bool,
    },
    /// One host's attempt ended.
    StepFinished {
        attempt: u32,
        outcome: Outcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        timed_out: bool,
        /// Why it failed when the command itself did not say (connection, verify…).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        stdout: String,
        stderr: String,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        simulated: bool,
    },
    /// A failed attempt will be tried again after `delay_ms`.
    StepRetrying {
        attempt: u32,
        delay_ms: u64,
    },
    /// The step as a whole ended (all its hosts, `max_failures` applied).
    StepCompleted {
        status: StepStatus,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<String>,
    },
    StepSkipped {
        reason: String,
    },
    ApprovalRequested {
        question: String,
    },
    Approved {
        user: String,
        machine: String,
        via: String,
    },
    Declined {
        user: String,
        machine: String,
    },
    /// The run stops here until an operator acts (`resume --approve`, `--rerun`, …).
    RunPaused {
        reason: String,
    },
    HostConnected {
        detail: String,
    },
    Interrupted {
        forced: bool,
    },
    RunFinished {
        status: RunStatus,
        duration_ms: u64,
    },
}

/// How an in-flight step's unknown outcome was settled on resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Its `verify` passed: the effect holds.
    VerifiedDone,
    /// Its `verify` failed: treated as failed, retried.
    VerifiedNotDone,
    /// `idempotent: true`: run again.
    Idempotent,
    /// The operator chose `--rerun`.
    Rerun,
    /// The operator chose `--mark-done` (after checking the effect by hand).
    MarkDone,
}

impl Event {
    #[must_use]
    pub fn now(step: Option<&str>, host: Option<&str>, kind: EventKind) -> Self {
        Self {
            at: crate::host_info::now_rfc3339(),
            step: step.map(str::to_string),
            host: host.map(str::to_string),
            kind,
        }
    }
}
