//! What the operator watches while a run goes on, drawn from the executor's events.
//!
//! On a terminal: one live line per running step and host (indicatif) with its elapsed
//! time, and an overall line with steps done and the elapsed time against the RTO target.
//! Without a terminal (CI, a pipe, a log file): one plain timestamped line per event.

use std::collections::HashMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::duration;
use crate::event::{Decision, Event, EventKind, Outcome, RunStatus, StepStatus};

/// How to draw.
pub struct Display {
    pub live: bool,
    pub color: bool,
    pub total_steps: usize,
    pub rto: Option<Duration>,
    /// Shared with the terminal operator, so that prompts suspend the live lines.
    pub multi: MultiProgress,
}

impl Display {
    /// A display for this process: live lines when stderr is a terminal.
    #[must_use]
    pub fn new(live: bool, color: bool, total_steps: usize, rto: Option<Duration>) -> Self {
        let multi = MultiProgress::with_draw_target(if live {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            live,
            color,
            total_steps,
            rto,
            multi,
        }
    }

    /// Consumes events until the channel closes.
    pub async fn run(self, mut events: mpsc::UnboundedReceiver<Event>) {
        let started = Instant::now();
        let mut overall = None;
        if self.live {
            let bar = self.multi.add(ProgressBar::new(self.total_steps as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} steps  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix("run");
            bar.enable_steady_tick(Duration::from_millis(200));
            overall = Some(bar);
        }
        let mut lines: HashMap<(String, String), ProgressBar> = HashMap::new();
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                _ = ticker.tick() => {
                    if let Some(bar) = &overall {
                        bar.set_message(self.clock(started.elapsed()));
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            if let Some(bar) = &overall
                && matches!(
                    event.kind,
                    EventKind::StepCompleted { .. } | EventKind::StepSkipped { .. }
                )
            {
                bar.inc(1);
            }
            if self.live {
                self.live_event(&event, &mut lines);
            } else {
                let line = plain_line(&event);
                if !line.is_empty() {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}  {line}", short_time(&event.at));
                }
            }
        }
        if let Some(bar) = overall {
            bar.finish_and_clear();
        }
        for (_, bar) in lines {
            bar.finish_and_clear();
        }
    }

    fn clock(&self, elapsed: Duration) -> String {
        let shown = duration::format(Duration::from_secs(elapsed.as_secs()));
        match self.rto {
            Some(rto) => format!("elapsed {shown} of RTO {}", duration::format(rto)),
            None => format!("elapsed {shown}"),
        }
    }

    fn live_event(&self, event: &Event, lines: &mut HashMap<(String, String), ProgressBar>) {
        let key = (
            event.step.clone().unwrap_or_default(),
            event.host.clone().unwrap_or_default(),
        );
        match &event.kind {
            EventKind::StepStarted { .. } => {
                let bar = lines.entry(key.clone()).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {elapsed:>4} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(label(&key.0, &key.1));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                bar.set_message(String::new());
            }
            EventKind::StepFinished { .. } | EventKind::StepRetrying { .. } => {
                if let Some(bar) = lines.get(&key) {
                    bar.set_message(plain_line(event));
                }
                if matches!(event.kind, EventKind::StepFinished { .. })
                    && let Some(bar) = lines.remove(&key)
                {
                    bar.finish_and_clear();
                    let _ = self.multi.println(self.paint(&plain_line(event), event));
                }
            }
            _ => {
                let line = plain_line(event);
                if !line.is_empty() {
                    let _ = self.multi.println(self.paint(&line, event));
                }
            }
        }
    }

    fn paint(&self, line: &str, event: &Event) -> String {
        if !self.color {
            return line.to_string();
        }
        let code = match &event.kind {
            EventKind::StepFinished {
                outcome: Outcome::Failed,
                ..
            }
            | EventKind::StepCompleted {
                status: StepStatus::Failed,
                ..
            }
            | EventKind::RunFinished {
                status: RunStatus::Failed,
                ..
            } => "31",
            EventKind::StepFinished {
                outcome: Outcome::Succeeded,
                ..
            }
            | EventKind::StepCompleted {
                status: StepStatus::Succeeded,
                ..
            }
            | EventKind::RunFinished {
                status: RunStatus::Succeeded,
                ..
            } => "32",
            EventKind::RunPaused { .. }
            | EventKind::ApprovalRequested { .. }
            | EventKind::StepSkipped { .. } => "33",
            _ => return line.to_string(),
        };
        format!("\x1b[{code}m{line}\x1b[0m")
    }
}

fn label(step: &str, host: &str) -> String {
    if host.is_empty() {
        step.to_string()
    } else {
        format!("{step} @ {host}")
    }
}

/// `2026-12-04T15:51:02.123Z` → `15:51:02`.
fn short_time(at: &str) -> &str {
    at.get(11..19).unwrap_or(at)
}

/// One line saying what an event means, or nothing for events not worth a line.
#[must_use]
pub fn plain_line(event: &Event) -> String {
    let who = label(
        event.step.as_deref().unwrap_or_default(),
        event.host.as_deref().unwrap_or_default(),
    );
    match &event.kind {
        EventKind::RunStarted { run_id, runbook, mode, operator, .. } => {
            format!("{} run {run_id} of {runbook} started by {operator}", mode.label())
        }
        EventKind::RunResumed { operator, changed_steps, .. } => {
            let changed = if changed_steps.is_empty() { String::new() } else { format!(" (changed steps: {})", changed_steps.join(", ")) };
            format!("resumed by {operator}{changed}")
        }
        EventKind::RollbackStarted { operator, steps, .. } => {
            format!("rollback by {operator} of: {}", steps.join(", "))
        }
        EventKind::Decision { decision, user, .. } => {
            let how = match decision {
                Decision::VerifiedDone => "its verify passes: done",
                Decision::VerifiedNotDone => "its verify fails: run again",
                Decision::Idempotent => "idempotent: run again",
                Decision::Rerun => "run again (operator's --rerun)",
                Decision::MarkDone => "done (operator's --mark-done)",
            };
            format!("{who}: outcome was unknown; {how}, decided by {user}")
        }
        EventKind::StepStarted { attempt, simulated, .. } => {
            let attempt = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
            let how = if *simulated { " [would run]" } else { "" };
            format!("{who}: started{attempt}{how}")
        }
        EventKind::StepFinished { outcome, exit_code, error, duration_ms, stderr, .. } => {
            let took = duration::format(Duration::from_millis(*duration_ms));
            match outcome {
                Outcome::Succeeded => match error {
                    // Settled on resume without running (verify passed, marked done).
                    Some(why) => format!("{who}: {why}"),
                    None => format!("{who}: ok in {took}"),
                },
                Outcome::Failed => {
                    let why = error.clone().unwrap_or_else(|| exit_code.map_or("killed".into(), |c| format!("exit {c}")));
                    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).map(|l| format!(": {}", l.trim())).unwrap_or_default();
                    format!("{who}: FAILED after {took} ({why}){last}")
                }
            }
        }
        EventKind::StepRetrying { delay_ms, .. } => {
            format!("{who}: retrying in {}", duration::format(Duration::from_millis(*delay_ms)))
        }
        EventKind::StepCompleted { status, checkpoint } => {
            let checkpoint = checkpoint
                .as_ref()
                .filter(|_| *status == StepStatus::Succeeded)
                .map(|c| format!(" — checkpoint `{c}` reached"))
                .unwrap_or_default();
            format!("{who}: {}{checkpoint}", status.as_str())
        }
        EventKind::StepSkipped { reason } => format!("{who}: skipped ({reason})"),
        EventKind::ApprovalRequested { question } => format!("{who}: approval needed: {question}"),
        EventKind::Approved { user, machine, via } => format!("{who}: approved by {user}@{machine} ({via})"),
        EventKind::Declined { user, machine } => format!("{who}: declined by {user}@{machine}"),
        EventKind::RunPaused { reason } => format!("paused: {reason}"),
        EventKind::HostConnected { detail } => format!("{who}: connected ({detail})"),
        EventKind::Interrupted { forced: false } => {
            "interrupted: starting nothing new, letting running commands finish (Ctrl-C again to stop them now)".into()
        }
        EventKind::Interrupted { forced: true } => "stopped now: running steps stay in flight in the journal".into(),
        EventKind::RunFinished { status, duration_ms } => {
            format!("run {status:?} after {}", duration::format(Duration::from_millis(*duration_ms))).to_lowercase()
        }
    }
}
