//! The report model from a run folder: a fold over the journal that keeps what the run
//! state forgets (each attempt's start and end, approval waits, host keys), the runbook
//! copy for order, names and the RTO, and the previous comparable run.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::{
    ApprovalReport, AttemptReport, CheckpointReport, Comparison, DecisionReport, FileRef,
    HostKeyReport, HostReport, InterruptionReport, JournalReport, Report, ResumeReport, RunbookRef,
    SCHEMA_VERSION, StepComparison, StepReport, Timing,
};
use crate::error::Error;
use crate::event::{Event, EventKind, Mode, Outcome, RunStatus, StepStatus};
use crate::host_info::{now_rfc3339, parse_rfc3339_ms};
use crate::journal::Integrity;
use crate::runbook::{self, Action, Runbook};
use crate::source::Source;
use crate::state::RunState;
use crate::status::{integrity_text, state_word};
use crate::store::{RunDir, Store};

/// Output kept per host in a report: the end, where the errors are.
const TAIL_LINES: usize = 20;
const TAIL_CHARS: usize = 4000;

/// A step duration changes (`slower`/`faster`) when it moves by at least this much and
/// by at least `CHANGE_PERCENT` of its previous duration; less is noise.
const CHANGE_MIN_MS: u64 = 100;
const CHANGE_PERCENT: u64 = 10;

/// Builds the report of a run from its folder (inputs.json, journal.jsonl, copies) and, for
/// the comparison, the previous FINISHED run of the same runbook in the same mode in the
/// same store (by created_at order, before this one).
pub fn build(store: &Store, run: &RunDir) -> Result<Report, Error> {
    let inputs = run.inputs()?;
    // Each summary reads a whole journal and runbook, which for a long runbook is most of
    // the time a run takes to end: the previous run's is made on a second thread meanwhile.
    let (report, before) = std::thread::scope(|threads| {
        let before = threads.spawn(|| previous_run(store, run, &inputs.runbook, inputs.mode));
        (summarize(run), before.join())
    });
    let mut report = report?;
    let before = match before {
        Ok(before) if report.runbook.name == inputs.runbook && report.mode == inputs.mode => before,
        // The journal names another runbook or mode than the inputs (or the thread died).
        _ => previous_run(store, run, &report.runbook.name, report.mode),
    };
    report.comparison = before.map(|before| compare(&before, &report));
    Ok(report)
}

/// The report of one run on its own (no comparison).
fn summarize(run: &RunDir) -> Result<Report, Error> {
    let inputs = run.inputs()?;
    // The runbook is parsed on a second thread while the journal is read and checked.
    let (journal, runbook) = std::thread::scope(|threads| {
        let runbook = threads.spawn(|| read_runbook(&run.runbook_copy()));
        let journal = run.read_journal();
        (journal, runbook.join().ok().flatten())
    });
    let (events, integrity) = journal?;
    let state = RunState::from_events(&events);

    let mut fold = Fold::default();
    for event in &events {
        fold.apply(event);
    }

    let first_at = events.first().map(|e| e.at.clone());
    let last_at = events.last().map(|e| e.at.clone());
    let end_at = state.finished_at.clone().or_else(|| last_at.clone());
    let total_ms = span_ms(first_at.as_deref(), end_at.as_deref()).unwrap_or(0);
    let approvals = fold.approvals(last_at.as_deref());
    let approval_wait_ms = union_ms(
        approvals
            .iter()
            .filter_map(|a| {
                let from = parse_rfc3339_ms(&a.requested_at)?;
                let to = a
                    .answered_at
                    .as_deref()
                    .or(last_at.as_deref())
                    .and_then(parse_rfc3339_ms)?;
                Some((from, to.max(from)))
            })
            .collect(),
    )
    .min(total_ms);
    let rto_ms = runbook
        .as_ref()
        .and_then(|r| r.targets.rto)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    // Only a run that succeeded recovered anything to measure against the RTO.
    let finished = state.finished == Some(RunStatus::Succeeded);
    let timing = Timing {
        started_at: first_at,
        finished_at: state.finished_at.clone(),
        total_ms,
        approval_wait_ms,
        working_ms: total_ms - approval_wait_ms,
        rto_ms,
        rto_met: rto_ms.filter(|_| finished).map(|rto| total_ms <= rto),
    };

    let steps = fold.steps(runbook.as_ref(), &state);
    let start = fold.start.clone().unwrap_or_default();
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        generated_at: now_rfc3339(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        run_id: run.id.clone(),
        mode: start.mode.unwrap_or(inputs.mode),
        state: state_word(&state).to_string(),
        paused_reason: state
            .paused
            .clone()
            .filter(|_| state.finished == Some(RunStatus::Paused)),
        runbook: RunbookRef {
            name: if start.runbook.is_empty() {
                inputs.runbook.clone()
            } else {
                start.runbook
            },
            description: runbook.as_ref().and_then(|r| r.description.clone()),
            path: start
                .file
                .unwrap_or_else(|| inputs.runbook_path.display().to_string()),
            sha256: sha256_of(&run.runbook_copy()),
        },
        inventory: start.inventory.map(|path| FileRef {
            path,
            sha256: sha256_of(&run.inventory_copy()),
        }),
        operator: start.operator,
        machine: start.machine,
        reason: start.reason,
        timing,
        steps,
        approvals,
        checkpoints: fold.checkpoints,
        host_keys: fold.host_keys,
        resumes: fold.resumes,
        decisions: fold.decisions,
        interruptions: fold.interruptions,
        journal: JournalReport {
            path: run.journal().display().to_string(),
            events: events.len(),
            intact: !matches!(integrity, Integrity::Broken { .. }),
            integrity: integrity_text(&integrity),
        },
        comparison: None,
    })
}

fn read_runbook(path: &Path) -> Option<Runbook> {
    let text = fs::read_to_string(path).ok()?;
    runbook::parse(&Source {
        path: path.to_path_buf(),
        text,
    })
    .0
}

fn sha256_of(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    Some(
        Sha256::digest(&bytes)
            .iter()
            .fold(String::with_capacity(64), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            }),
    )
}

/// Milliseconds between two journal timestamps (0 when they run backwards).
fn span_ms(from: Option<&str>, to: Option<&str>) -> Option<u64> {
    let from = parse_rfc3339_ms(from?)?;
    let to = parse_rfc3339_ms(to?)?;
    Some(to.saturating_sub(from))
}

/// Total length covered by intervals: two gates waiting at once count once.
fn union_ms(mut intervals: Vec<(u64, u64)>) -> u64 {
    intervals.sort_unstable();
    let mut total = 0;
    let mut current: Option<(u64, u64)> = None;
    for (from, to) in intervals {
        match current {
            Some((start, end)) if from <= end => current = Some((start, end.max(to))),
            _ => {
                if let Some((start, end)) = current {
                    total += end - start;
                }
                current = Some((from, to));
            }
        }
    }
    total + current.map_or(0, |(start, end)| end - start)
}

/// The last lines of an output, at most `TAIL_CHARS` characters.
fn tail(text: &str) -> String {
    let text = text.trim_end_matches('\n');
    let start = text
        .rmatch_indices('\n')
        .nth(TAIL_LINES - 1)
        .map_or(0, |(i, _)| i + 1);
    let lines = &text[start..];
    let chars = lines.chars().count();
    if chars > TAIL_CHARS {
        lines.chars().skip(chars - TAIL_CHARS).collect()
    } else {
        lines.to_string()
    }
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
    }
}

/// What the first `run_started` said.
#[derive(Debug, Clone, Default)]
struct Start {
    runbook: String,
    file: Option<String>,
    inventory: Option<String>,
    mode: Option<Mode>,
    operator: Option<String>,
    machine: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Default)]
struct StepAcc {
    started_at: Option<String>,
    finished_at: Option<String>,
    /// Hosts in the order they first started.
    hosts: Vec<(String, Vec<AttemptAcc>)>,
    checkpoint: Option<String>,
}

#[derive(Debug)]
struct AttemptAcc {
    report: AttemptReport,
    stdout: String,
    stderr: String,
}

impl AttemptAcc {
    /// An attempt whose outcome is not known yet (`started_at`: `None` when its start is
    /// missing from the journal).
    fn begun(number: u32, started_at: Option<String>, simulated: bool) -> Self {
        AttemptAcc {
            report: AttemptReport {
                number,
                started_at,
                finished_at: None,
                duration_ms: None,
                outcome: None,
                exit_code: None,
                timed_out: false,
                error: None,
                simulated,
                retry_delay_ms: None,
            },
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Fold {
    start: Option<Start>,
    steps: BTreeMap<String, StepAcc>,
    /// Step ids in the order the journal first mentions them.
    seen: Vec<String>,
    approvals: Vec<ApprovalReport>,
    checkpoints: Vec<CheckpointReport>,
    host_keys: Vec<HostKeyReport>,
    resumes: Vec<ResumeReport>,
    decisions: Vec<DecisionReport>,
    interruptions: Vec<InterruptionReport>,
}

impl Fold {
    fn step(&mut self, event: &Event) -> Option<&mut StepAcc> {
        let id = event.step.as_deref()?;
        if !self.steps.contains_key(id) {
            self.seen.push(id.to_string());
        }
        Some(self.steps.entry(id.to_string()).or_default())
    }

    fn attempts(&mut self, event: &Event) -> Option<&mut Vec<AttemptAcc>> {
        let host = event.host.clone().unwrap_or_default();
        let step = self.step(event)?;
        let index = if let Some(index) = step.hosts.iter().position(|(h, _)| *h == host) {
            index
        } else {
            step.hosts.push((host, Vec::new()));
            step.hosts.len() - 1
        };
        Some(&mut step.hosts[index].1)
    }

    fn apply(&mut self, event: &Event) {
        let at = &event.at;
        match &event.kind {
            EventKind::RunStarted {
                runbook,
                file,
                inventory,
                mode,
                operator,
                machine,
                reason,
                ..
            } => {
                self.start.get_or_insert_with(|| Start {
                    runbook: runbook.clone(),
                    file: Some(file.clone()),
                    inventory: inventory.clone(),
                    mode: Some(*mode),
                    operator: Some(operator.clone()),
                    machine: Some(machine.clone()),
                    reason: reason.clone(),
                });
            }
            EventKind::RunResumed {
                operator,
                machine,
                reason,
                forced,
                changed_steps,
            } => self.resumes.push(ResumeReport {
                at: at.clone(),
                operator: operator.clone(),
                machine: machine.clone(),
                reason: reason.clone(),
                forced: *forced,
                changed_steps: changed_steps.clone(),
            }),
            // A rollback continues the same run folder: listed with the resumptions.
            EventKind::RollbackStarted {
                operator,
                machine,
                steps,
            } => self.resumes.push(ResumeReport {
                at: at.clone(),
                operator: operator.clone(),
                machine: machine.clone(),
                reason: Some(format!("rollback of {}", steps.join(", "))),
                forced: false,
                changed_steps: Vec::new(),
            }),
            EventKind::Decision {
                decision,
                user,
                machine,
            } => self.decisions.push(DecisionReport {
                at: at.clone(),
                step: event.step.clone(),
                host: event.host.clone(),
                decision: *decision,
                user: user.clone(),
                machine: machine.clone(),
            }),
            EventKind::StepStarted {
                attempt, simulated, ..
            } => {
                if let Some(step) = self.step(event) {
                    step.started_at.get_or_insert_with(|| at.clone());
                    step.finished_at = None;
                }
                if let Some(attempts) = self.attempts(event) {
                    attempts.push(AttemptAcc::begun(*attempt, Some(at.clone()), *simulated));
                }
            }
            EventKind::StepFinished {
                attempt,
                outcome,
                exit_code,
                timed_out,
                error,
                stdout,
                stderr,
                duration_ms,
                simulated,
            } => {
                let Some(attempts) = self.attempts(event) else {
                    return;
                };
                // The attempt it ends; a finish without a journaled start still counts.
                if attempts
                    .last()
                    .is_none_or(|a| a.report.finished_at.is_some())
                {
                    attempts.push(AttemptAcc::begun(*attempt, None, *simulated));
                }
                if let Some(last) = attempts.last_mut() {
                    let r = &mut last.report;
                    r.finished_at = Some(at.clone());
                    r.duration_ms = Some(*duration_ms);
                    r.outcome = Some(outcome_word(*outcome).to_string());
                    r.exit_code = *exit_code;
                    r.timed_out = *timed_out;
                    r.error.clone_from(error);
                    r.simulated |= *simulated;
                    last.stdout.clone_from(stdout);
                    last.stderr.clone_from(stderr);
                }
            }
            EventKind::StepRetrying { delay_ms, .. } => {
                if let Some(last) = self.attempts(event).and_then(|a| a.last_mut()) {
                    last.report.retry_delay_ms = Some(*delay_ms);
                }
            }
            EventKind::StepCompleted { status, checkpoint } => {
                let id = event.step.clone().unwrap_or_default();
                if let Some(step) = self.step(event) {
                    step.finished_at = Some(at.clone());
                    step.checkpoint.clone_from(checkpoint);
                }
                if let (StepStatus::Succeeded, Some(name)) = (status, checkpoint)
                    && !self.checkpoints.iter().any(|c| c.name == *name)
                {
                    self.checkpoints.push(CheckpointReport {
                        name: name.clone(),
                        step: id,
                        at: at.clone(),
                    });
                }
            }
            EventKind::StepSkipped { .. } => {
                if let Some(step) = self.step(event) {
                    step.finished_at = Some(at.clone());
                }
            }
            EventKind::ApprovalRequested { question } => {
                if let Some(step) = self.step(event) {
                    step.started_at.get_or_insert_with(|| at.clone());
                }
                self.approvals.push(ApprovalReport {
                    step: event.step.clone().unwrap_or_default(),
                    question: question.clone(),
                    requested_at: at.clone(),
                    answered_at: None,
                    outcome: "waiting".into(),
                    user: None,
                    machine: None,
                    via: None,
                    waited_ms: 0,
                });
            }
            EventKind::Approved { user, machine, via } => {
                self.answer(event, "approved", user, machine, Some(via));
            }
            EventKind::Declined { user, machine } => {
                self.answer(event, "declined", user, machine, None);
            }
            EventKind::HostConnected { detail } => self.host_keys.push(HostKeyReport {
                host: event.host.clone().unwrap_or_default(),
                at: at.clone(),
                detail: detail.clone(),
            }),
            EventKind::Interrupted { forced } => self.interruptions.push(InterruptionReport {
                at: at.clone(),
                forced: *forced,
            }),
            EventKind::RunPaused { .. } | EventKind::RunFinished { .. } => {}
        }
    }

    /// Settles the step's open approval request; an answer without a journaled request
    /// (approved ahead with `--approve`) is recorded as asked and answered at once.
    fn answer(
        &mut self,
        event: &Event,
        outcome: &str,
        user: &str,
        machine: &str,
        via: Option<&str>,
    ) {
        let step = event.step.clone().unwrap_or_default();
        let open = self
            .approvals
            .iter()
            .rposition(|a| a.step == step && a.answered_at.is_none());
        let index = open.unwrap_or_else(|| {
            self.approvals.push(ApprovalReport {
                step: step.clone(),
                question: String::new(),
                requested_at: event.at.clone(),
                answered_at: None,
                outcome: String::new(),
                user: None,
                machine: None,
                via: None,
                waited_ms: 0,
            });
            self.approvals.len() - 1
        });
        let approval = &mut self.approvals[index];
        approval.answered_at = Some(event.at.clone());
        approval.outcome = outcome.to_string();
        approval.user = Some(user.to_string());
        approval.machine = Some(machine.to_string());
        approval.via = via.map(str::to_string);
    }

    /// The approvals with their waits (open ones up to the end of the journal).
    fn approvals(&self, last_at: Option<&str>) -> Vec<ApprovalReport> {
        self.approvals
            .iter()
            .map(|a| {
                let mut a = a.clone();
                let until = a.answered_at.as_deref().or(last_at);
                a.waited_ms = span_ms(Some(&a.requested_at), until).unwrap_or(0);
                a
            })
            .collect()
    }

    /// Every step, in runbook order, with what the journal says of it.
    fn steps(&self, runbook: Option<&Runbook>, state: &RunState) -> Vec<StepReport> {
        let mut out = Vec::new();
        let mut listed = Vec::new();
        if let Some(runbook) = runbook {
            for step in &runbook.steps {
                let (kind, on) = match &step.action {
                    Action::Run { on, .. } => ("run", Some(on.value.clone())),
                    Action::Approve { .. } => ("approve", None),
                };
                listed.push(step.id.value.clone());
                out.push(self.step_report(&step.id.value, step.name.clone(), kind, on, state));
            }
        }
        for id in &self.seen {
            if !listed.contains(id) {
                let kind = if self.approvals.iter().any(|a| a.step == *id) {
                    "approve"
                } else {
                    "run"
                };
                out.push(self.step_report(id, None, kind, None, state));
            }
        }
        out
    }

    fn step_report(
        &self,
        id: &str,
        name: Option<String>,
        kind: &str,
        on: Option<String>,
        state: &RunState,
    ) -> StepReport {
        let acc = self.steps.get(id);
        let step_state = state.steps.get(id);
        let hosts: Vec<HostReport> = acc
            .map(|acc| {
                acc.hosts
                    .iter()
                    .filter(|(host, _)| !host.is_empty())
                    .map(|(host, attempts)| host_report(host, attempts))
                    .collect()
            })
            .unwrap_or_default();
        let status = match step_state.and_then(|s| s.status) {
            Some(status) => status.as_str(),
            None if hosts.iter().any(|h| h.status == "in-flight") => "in-flight",
            None if step_state.is_some_and(|s| s.awaiting_approval) => "awaiting-approval",
            None if step_state.is_some() => "in-flight",
            None => "not-run",
        };
        let started_at = acc.and_then(|a| a.started_at.clone());
        let finished_at = acc.and_then(|a| a.finished_at.clone());
        StepReport {
            id: id.to_string(),
            name,
            kind: kind.to_string(),
            on,
            status: status.to_string(),
            skipped_reason: step_state.and_then(|s| s.skipped_reason.clone()),
            checkpoint: acc.and_then(|a| a.checkpoint.clone()),
            duration_ms: span_ms(started_at.as_deref(), finished_at.as_deref()),
            started_at,
            finished_at,
            hosts,
        }
    }
}

fn host_report(host: &str, attempts: &[AttemptAcc]) -> HostReport {
    let last = attempts.last();
    let status = last
        .and_then(|a| a.report.outcome.as_deref())
        .unwrap_or("in-flight");
    let started_at = attempts.iter().find_map(|a| a.report.started_at.clone());
    let finished_at = last.and_then(|a| a.report.finished_at.clone());
    HostReport {
        host: host.to_string(),
        status: status.to_string(),
        duration_ms: span_ms(started_at.as_deref(), finished_at.as_deref())
            .or_else(|| last.and_then(|a| a.report.duration_ms)),
        started_at,
        finished_at,
        exit_code: last.and_then(|a| a.report.exit_code),
        error: last.and_then(|a| a.report.error.clone()),
        stdout_tail: last.map(|a| tail(&a.stdout)).unwrap_or_default(),
        stderr_tail: last.map(|a| tail(&a.stderr)).unwrap_or_default(),
        attempts: attempts.iter().map(|a| a.report.clone()).collect(),
    }
}

/// The previous finished run of the runbook named `name` in `mode`, by creation order.
fn previous_run(store: &Store, run: &RunDir, name: &str, mode: Mode) -> Option<Report> {
    let ids = store.run_ids();
    let position = ids.iter().position(|id| *id == run.id)?;
    ids[..position].iter().rev().find_map(|id| {
        let other = store.open_run(id).ok()?;
        let inputs = other.inputs().ok()?;
        if inputs.runbook != name || inputs.mode != mode {
            return None;
        }
        let before = summarize(&other).ok()?;
        matches!(before.state.as_str(), "succeeded" | "failed").then_some(before)
    })
}

fn compare(before: &Report, after: &Report) -> Comparison {
    let before_steps: HashMap<&str, &StepReport> =
        before.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let steps = after
        .steps
        .iter()
        .map(|step| {
            let previous = before_steps.get(step.id.as_str()).copied();
            let ran = |s: &StepReport| matches!(s.status.as_str(), "succeeded" | "failed");
            let before_ms = previous.filter(|s| ran(s)).and_then(|s| s.duration_ms);
            let after_ms = Some(step).filter(|s| ran(s)).and_then(|s| s.duration_ms);
            let delta_ms = match (before_ms, after_ms) {
                (Some(b), Some(a)) => Some(signed(a) - signed(b)),
                _ => None,
            };
            let change =
                match (before_ms, delta_ms) {
                    (_, None) if after_ms.is_none() => "not-run",
                    (None, _) => "new",
                    (Some(b), Some(d))
                        if d.unsigned_abs() >= CHANGE_MIN_MS.max(b * CHANGE_PERCENT / 100) =>
                    {
                        if d > 0 { "slower" } else { "faster" }
                    }
                    _ => "same",
                };
            let before_status = previous.map(|s| s.status.clone());
            StepComparison {
                id: step.id.clone(),
                before_ms,
                after_ms,
                delta_ms,
                change: change.to_string(),
                new_failure: step.status == "failed" && before_status.as_deref() != Some("failed"),
                before_status,
                after_status: step.status.clone(),
            }
        })
        .collect();
    Comparison {
        previous_run_id: before.run_id.clone(),
        previous_started_at: before.timing.started_at.clone(),
        previous_state: before.state.clone(),
        previous_total_ms: before.timing.total_ms,
        total_delta_ms: signed(after.timing.total_ms) - signed(before.timing.total_ms),
        steps,
    }
}

fn signed(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_waits_count_once() {
        assert_eq!(union_ms(vec![(0, 10), (5, 20), (30, 40)]), 30);
        assert_eq!(union_ms(Vec::new()), 0);
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let text = (1..=30).fold(String::new(), |mut text, i| {
            let _ = writeln!(text, "line {i}");
            text
        });
        let kept = tail(&text);
        assert!(kept.starts_with("line 11\n"), "{kept}");
        assert!(kept.ends_with("line 30"));
        assert_eq!(tail("one\n"), "one");
    }

    fn event(step: &str, host: Option<&str>, at: &str, kind: EventKind) -> Event {
        Event {
            at: at.into(),
            step: Some(step.into()),
            host: host.map(str::to_string),
            kind,
        }
    }

    #[test]
    fn a_retried_host_keeps_each_attempt() {
        let mut fold = Fold::default();
        let started = |n| EventKind::StepStarted {
            attempt: n,
            command: "x".into(),
            simulated: false,
        };
        let finished = |n, outcome, code| EventKind::StepFinished {
            attempt: n,
            outcome,
            exit_code: Some(code),
            timed_out: false,
            error: None,
            stdout: format!("try {n}\n"),
            stderr: String::new(),
            duration_ms: 100,
            simulated: false,
        };
        for e in [
            event("s", Some("h"), "2026-01-01T00:00:00.000Z", started(1)),
            event(
                "s",
                Some("h"),
                "2026-01-01T00:00:00.100Z",
                finished(1, Outcome::Failed, 1),
            ),
            event(
                "s",
                Some("h"),
                "2026-01-01T00:00:00.100Z",
                EventKind::StepRetrying {
                    attempt: 1,
                    delay_ms: 500,
                },
            ),
            event("s", Some("h"), "2026-01-01T00:00:00.600Z", started(2)),
            event(
                "s",
                Some("h"),
                "2026-01-01T00:00:00.700Z",
                finished(2, Outcome::Succeeded, 0),
            ),
        ] {
            fold.apply(&e);
        }
        let host = host_report("h", &fold.steps["s"].hosts[0].1);
        assert_eq!(host.attempts.len(), 2);
        assert_eq!(host.attempts[0].retry_delay_ms, Some(500));
        assert_eq!(host.attempts[0].outcome.as_deref(), Some("failed"));
        assert_eq!(host.status, "succeeded");
        assert_eq!(host.duration_ms, Some(700));
        assert_eq!(host.stdout_tail, "try 2");
    }

    #[test]
    fn an_approval_wait_runs_from_request_to_answer() {
        let mut fold = Fold::default();
        fold.apply(&event(
            "gate",
            None,
            "2026-01-01T00:00:00.000Z",
            EventKind::ApprovalRequested {
                question: "go?".into(),
            },
        ));
        fold.apply(&event(
            "gate",
            None,
            "2026-01-01T00:02:00.000Z",
            EventKind::Approved {
                user: "kim".into(),
                machine: "ops1".into(),
                via: "terminal".into(),
            },
        ));
        let approvals = fold.approvals(None);
        assert_eq!(approvals[0].waited_ms, 120_000);
        assert_eq!(approvals[0].outcome, "approved");
        assert_eq!(approvals[0].user.as_deref(), Some("kim"));
    }
}
