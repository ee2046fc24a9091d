//! Reports of a run (SPEC §7): what happened, when, by whom, against which target, and
//! how it compares with the last time — as Markdown to read, JSON for tools and one
//! self-contained HTML file (with a timeline) to file as evidence of a drill.
//!
//! Everything comes from the run's folder: the journal (already redacted, hash-chained),
//! `inputs.json` and the copies of the runbook and inventory the run started with. The
//! model is built once ([`build`], in `build.rs`) and each format only renders it, so the
//! three files can never disagree.

mod build;
mod html;
mod md;

use std::fs;

use serde::Serialize;

use crate::error::Error;
use crate::event::Mode;
use crate::store::{RunDir, Store};

pub use build::build;

/// The version of the JSON layout (docs/report-schema.md); raised on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a report says about one run. Serialized as `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub generated_at: String,
    pub tool_version: String,
    pub run_id: String,
    pub mode: Mode,
    /// `succeeded`, `failed`, `paused`, `interrupted` or `unfinished`.
    pub state: String,
    /// Why the run waits, when it is paused.
    pub paused_reason: Option<String>,
    pub runbook: RunbookRef,
    pub inventory: Option<FileRef>,
    pub operator: Option<String>,
    pub machine: Option<String>,
    pub reason: Option<String>,
    pub timing: Timing,
    /// In runbook order; steps the journal knows but the runbook copy does not come last.
    pub steps: Vec<StepReport>,
    pub approvals: Vec<ApprovalReport>,
    pub checkpoints: Vec<CheckpointReport>,
    pub host_keys: Vec<HostKeyReport>,
    pub resumes: Vec<ResumeReport>,
    pub decisions: Vec<DecisionReport>,
    pub interruptions: Vec<InterruptionReport>,
    pub journal: JournalReport,
    /// Against the previous finished run of the same runbook in the same mode.
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunbookRef {
    pub name: String,
    pub description: Option<String>,
    /// Where the run read it from (as journaled).
    pub path: String,
    /// SHA-256 (hex) of the copy kept in the run folder: the runbook that actually ran.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRef {
    pub path: String,
    pub sha256: Option<String>,
}

/// Wall time of the run, split into waiting for approvals and working.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From the first event to `finished_at` (or the last event of an unfinished run).
    pub total_ms: u64,
    /// Time during which at least one approval gate was waiting for an answer.
    pub approval_wait_ms: u64,
    /// `total_ms - approval_wait_ms`.
    pub working_ms: u64,
    /// The runbook's `targets.rto`.
    pub rto_ms: Option<u64>,
    /// `total_ms <= rto_ms` for a run that succeeded; `null` without a target or when the
    /// run did not succeed (nothing was recovered to measure).
    pub rto_met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub name: Option<String>,
    /// `run` or `approve`.
    pub kind: String,
    /// The host or group of `on`, for `run` steps.
    pub on: Option<String>,
    /// `succeeded`, `failed`, `skipped`, `in-flight`, `awaiting-approval` or `not-run`.
    pub status: String,
    pub skipped_reason: Option<String>,
    pub checkpoint: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub hosts: Vec<HostReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    /// `succeeded`, `failed` or `in-flight`.
    pub status: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// From the first attempt's start to the last one's end (retry delays included).
    pub duration_ms: Option<u64>,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The last lines of the last attempt's output (redacted by the journal).
    pub stdout_tail: String,
    pub stderr_tail: String,
    pub attempts: Vec<AttemptReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    pub number: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    /// `succeeded`, `failed`, or `null` while in flight (outcome unknown).
    pub outcome: Option<String>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub error: Option<String>,
    /// Nothing was sent (dry run, or a changing step in a probe).
    pub simulated: bool,
    /// A retry was scheduled after this attempt, this long after it.
    pub retry_delay_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalReport {
    pub step: String,
    pub question: String,
    pub requested_at: String,
    pub answered_at: Option<String>,
    /// `approved`, `declined` or `waiting`.
    pub outcome: String,
    pub user: Option<String>,
    pub machine: Option<String>,
    pub via: Option<String>,
    /// From the request to the answer (or to the end of the journal while waiting).
    pub waited_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointReport {
    pub name: String,
    pub step: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostKeyReport {
    pub host: String,
    pub at: String,
    /// As the transport described the connection: the key type and SHA-256 fingerprint.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResumeReport {
    pub at: String,
    pub operator: String,
    pub machine: String,
    pub reason: Option<String>,
    pub forced: bool,
    pub changed_steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecisionReport {
    pub at: String,
    pub step: Option<String>,
    pub host: Option<String>,
    pub decision: crate::event::Decision,
    pub user: String,
    pub machine: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterruptionReport {
    pub at: String,
    pub forced: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct JournalReport {
    pub path: String,
    pub events: usize,
    /// Nothing removed, changed or reordered (a torn last line from a power cut is fine).
    pub intact: bool,
    /// In words, e.g. `intact` or `DAMAGED at line 7: …`.
    pub integrity: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub previous_run_id: String,
    pub previous_started_at: Option<String>,
    pub previous_state: String,
    pub previous_total_ms: u64,
    pub total_delta_ms: i64,
    pub steps: Vec<StepComparison>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepComparison {
    pub id: String,
    pub before_ms: Option<u64>,
    pub after_ms: Option<u64>,
    /// `after - before` when both ran.
    pub delta_ms: Option<i64>,
    /// `slower`, `faster`, `same`, `new` (did not run before) or `not-run` (not now).
    pub change: String,
    pub before_status: Option<String>,
    pub after_status: String,
    /// Failed now, did not fail before.
    pub new_failure: bool,
}

/// The formats a report is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Md,
    Json,
    Html,
}

impl Report {
    /// Who ran it: `user@machine`, the user alone, or `unknown`.
    #[must_use]
    pub fn operator_label(&self) -> String {
        match (&self.operator, &self.machine) {
            (Some(user), Some(machine)) => format!("{user}@{machine}"),
            (Some(user), None) => user.clone(),
            _ => "unknown".into(),
        }
    }

    /// Every step and host with output or an error to show, in step order.
    #[must_use]
    pub fn hosts_with_output(&self) -> Vec<(&StepReport, &HostReport)> {
        self.steps
            .iter()
            .flat_map(|s| s.hosts.iter().map(move |h| (s, h)))
            .filter(|(_, h)| {
                !h.stdout_tail.is_empty() || !h.stderr_tail.is_empty() || h.error.is_some()
            })
            .collect()
    }
}

impl ReportFormat {
    #[must_use]
    pub fn file_name(self) -> &'static str {
        match self {
            ReportFormat::Md => "report.md",
            ReportFormat::Json => "report.json",
            ReportFormat::Html => "report.html",
        }
    }
}

/// The report as text in one format.
#[must_use]
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Md => md::render(report),
        ReportFormat::Json => {
            let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
            text.push('\n');
            text
        }
        ReportFormat::Html => html::render(report),
    }
}

/// Writes report.md, report.json and report.html into the run folder.
pub fn write_all(store: &Store, run: &RunDir) -> Result<(), Error> {
    let report = build(store, run)?;
    // The three are independent; for a long run, rendering them side by side ends it sooner.
    std::thread::scope(|threads| {
        let writes: Vec<_> = [ReportFormat::Md, ReportFormat::Json, ReportFormat::Html]
            .into_iter()
            .map(|format| {
                let report = &report;
                threads.spawn(move || {
                    let path = run.dir.join(format.file_name());
                    fs::write(&path, render(report, format)).map_err(|e| {
                        Error::Internal(format!("cannot write the report {}: {e}", path.display()))
                    })
                })
            })
            .collect();
        writes.into_iter().try_for_each(|write| {
            write
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("rendering a report failed".into())))
        })
    })
}

/// The words shown with the mode wherever the report is read: a drill must never pass
/// for the real thing, nor a dry run for a recovery.
#[must_use]
pub fn mode_banner(mode: Mode) -> &'static str {
    match mode {
        Mode::Real => "REAL RUN: commands were executed on the inventory's hosts",
        Mode::Drill => "DRILL: a rehearsal on drill targets, not a real recovery",
        Mode::DryRun => "DRY RUN: nothing was executed and no connection was opened",
        Mode::Probe => "PROBE: connections and read-only steps only, nothing was changed",
    }
}

/// `HH:MM:SS.mmm` of a journal timestamp, or the text itself when it has another shape.
fn clock(at: &str) -> &str {
    at.get(11..23).unwrap_or(at)
}

/// A duration for people.
fn took(ms: u64) -> String {
    crate::duration::format(std::time::Duration::from_millis(ms))
}

/// A signed change for people: `+1.2s`, `-300ms`.
fn delta(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    format!("{sign}{}", took(ms.unsigned_abs()))
}

/// Text with control characters (terminal escapes in command output) made visible and
/// harmless: they would corrupt a terminal, and XML/HTML forbid most of them.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_in_output_are_neutralized() {
        assert_eq!(
            printable("a\u{1b}[31mb\r\nc\td"),
            "a\u{FFFD}[31mb\u{FFFD}\nc\td"
        );
    }

    #[test]
    fn deltas_carry_their_sign() {
        assert_eq!(delta(1500), "+1.5s");
        assert_eq!(delta(-300), "-300ms");
        assert_eq!(delta(0), "+0ms");
    }

    #[test]
    fn clock_shows_the_time_of_day() {
        assert_eq!(clock("2026-12-04T16:02:24.242Z"), "16:02:24.242");
        assert_eq!(clock("garbage"), "garbage");
    }
}
