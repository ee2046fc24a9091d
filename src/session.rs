//! One execution of a plan in this process, new or resumed: the run folder, the lock,
//! the journal, the signals, the display, the executor, and the exit status at the end.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::error::Error;
use crate::event::{Event, EventKind, Mode, RunStatus};
use crate::executor::{
    Answer, Approvals, Executor, Operator, RunOptions, Sink, StepChoice, Unattended,
};
use crate::host_info;
use crate::inventory::TransportKind;
use crate::journal::{Journal, JournalWriter};
use crate::lock::{self, Acquired, LockError, LockGuard, LockInfo};
use crate::plan::Plan;
use crate::probe;
use crate::progress::Display;
use crate::state::RunState;
use crate::store::{RunDir, Store};
use crate::template::Redactor;
use crate::transport::{BoxFuture, DryRunTransport, Transport};

/// Everything an execution needs besides the plan.
pub struct Session {
    pub store: Store,
    pub run: RunDir,
    pub mode: Mode,
    pub max_parallel: usize,
    pub approvals: Approvals,
    pub secrets: BTreeMap<String, String>,
    pub reason: Option<String>,
    pub transport: Arc<dyn Transport>,
    pub color: bool,
    /// `--step`: ask before every command step.
    pub step_by_step: bool,
}

/// The event that opens this execution: `run_started` or `run_resumed`.
pub enum Opening {
    Started {
        runbook_file: String,
        inventory: Option<String>,
    },
    Resumed {
        forced: bool,
        changed_steps: Vec<String>,
        decisions: Vec<Event>,
    },
    /// `rollback` of the listed steps (ids of the original steps).
    Rollback { steps: Vec<String> },
}

/// The lock of a run that changes things (real runs and drills); rehearsals that change
/// nothing (dry runs, probes) take none, so they never stand in an operator's way.
pub fn lock_for(
    mode: Mode,
    store: &Store,
    runbook: &str,
    run_id: &str,
    reason: Option<&str>,
) -> Result<Option<LockGuard>, Error> {
    if matches!(mode, Mode::Real | Mode::Drill) {
        take_lock(store, runbook, run_id, reason).map(Some)
    } else {
        Ok(None)
    }
}

/// Takes the runbook's lock, or says who holds it (exit 4).
pub fn take_lock(
    store: &Store,
    runbook: &str,
    run_id: &str,
    reason: Option<&str>,
) -> Result<LockGuard, Error> {
    let info = LockInfo {
        run_id: run_id.to_string(),
        user: host_info::current_user(),
        host: host_info::hostname(),
        pid: std::process::id(),
        started_at: host_info::now_rfc3339(),
        reason: reason.map(str::to_string),
    };
    match lock::acquire(&store.locks_dir(), runbook, info) {
        Ok(Acquired::Fresh(guard)) => Ok(guard),
        Ok(Acquired::TookOverStale { guard, previous }) => {
            tracing::info!(
                "took over a stale lock of run {} (pid {} on {} is gone)",
                previous.run_id,
                previous.pid,
                previous.host
            );
            eprintln!(
                "warning: took over the stale lock of run {} ({}@{}, pid {} no longer exists)",
                previous.run_id, previous.user, previous.host, previous.pid
            );
            Ok(guard)
        }
        Err(LockError::Held(holder)) => Err(Error::Locked(format!(
            "{runbook} is being executed by run {} ({}@{}, pid {}, since {}{}); wait for it to finish, or if that process is gone on another machine, remove {}",
            holder.run_id,
            holder.user,
            holder.host,
            holder.pid,
            holder.started_at,
            holder
                .reason
                .as_deref()
                .map(|r| format!(", reason: {r}"))
                .unwrap_or_default(),
            store.locks_dir().join(format!("{runbook}.lock")).display()
        ))),
        Err(LockError::Io(e)) => Err(Error::Internal(format!(
            "cannot take the lock in {}: {e}",
            store.locks_dir().display()
        ))),
    }
}

impl Session {
    /// Executes `plan` from `state` (empty for a new run) and maps the end to an exit status.
    pub fn execute(
        self,
        plan: Plan,
        state: RunState,
        opening: Opening,
        journal: JournalWriter,
    ) -> Result<(), Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
        runtime.block_on(self.execute_async(plan, state, opening, journal))
    }

    async fn execute_async(
        self,
        plan: Plan,
        state: RunState,
        opening: Opening,
        mut journal: JournalWriter,
    ) -> Result<(), Error> {
        if let Err(e) = crate::logging::log_to(&self.run.log()) {
            tracing::warn!(
                "cannot write the run's log {}: {e}",
                self.run.log().display()
            );
        }
        // For scripts/bench-local only, to measure what the per-event fsync costs. Never
        // for real runs: after a power cut the journal could lack steps that ran.
        if std::env::var_os("RUNBOOK_UNSAFE_NO_FSYNC").is_some_and(|v| v == "1") {
            journal.set_sync(false);
        }
        let journal = Journal::share(journal);
        let live = std::io::stderr().is_terminal();
        let display = Display::new(live, self.color, plan.steps.len(), plan.runbook.targets.rto);
        let operator: Arc<dyn Operator> =
            if std::io::stdin().is_terminal() && self.mode != Mode::DryRun {
                Arc::new(TerminalOperator {
                    multi: display.multi.clone(),
                    ask: tokio::sync::Mutex::new(()),
                })
            } else {
                Arc::new(Unattended)
            };
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let display_task = tokio::spawn(display.run(events_rx));
        let log_task = tokio::spawn(log_events(log_rx));
        let redactor = Redactor::new(self.secrets.values().cloned());
        let sink = Arc::new(Sink::new(
            Some(journal),
            redactor,
            state,
            vec![events_tx, log_tx],
        ));

        let (user, machine) = (host_info::current_user(), host_info::hostname());
        let first = match opening {
            Opening::Started {
                runbook_file,
                inventory,
            } => vec![Event::now(
                None,
                None,
                EventKind::RunStarted {
                    run_id: self.run.id.clone(),
                    runbook: plan.runbook.name.value.clone(),
                    file: runbook_file,
                    inventory,
                    mode: self.mode,
                    operator: user.clone(),
                    machine: machine.clone(),
                    reason: self.reason.clone(),
                },
            )],
            Opening::Resumed {
                forced,
                changed_steps,
                decisions,
            } => {
                let mut events = vec![Event::now(
                    None,
                    None,
                    EventKind::RunResumed {
                        operator: user.clone(),
                        machine: machine.clone(),
                        reason: self.reason.clone(),
                        forced,
                        changed_steps,
                    },
                )];
                events.extend(decisions);
                events
            }
            Opening::Rollback { steps } => vec![Event::now(
                None,
                None,
                EventKind::RollbackStarted {
                    operator: user.clone(),
                    machine: machine.clone(),
                    steps,
                },
            )],
        };
        for event in first {
            sink.emit(event).await.map_err(|e| {
                Error::Internal(format!(
                    "cannot write the journal {}: {e}",
                    self.run.journal().display()
                ))
            })?;
        }

        let plan = Arc::new(plan);
        // A probe proves every host first; a real run or drill opens its SSH connections in
        // parallel from the start (handshakes overlap) and journals each host key it trusted.
        let mut probe_checks = None;
        let mut connecting = None;
        match self.mode {
            Mode::Probe => {
                let checks =
                    probe::connect_all(&plan, self.transport.as_ref(), self.max_parallel).await;
                for event in checks.iter().filter_map(probe::HostCheck::event) {
                    sink.emit(event)
                        .await
                        .map_err(|e| Error::Internal(format!("cannot write the journal: {e}")))?;
                }
                probe_checks = Some(checks);
            }
            Mode::Real | Mode::Drill
                if plan
                    .steps
                    .iter()
                    .flat_map(|s| &s.hosts)
                    .any(|h| h.transport == TransportKind::Ssh) =>
            {
                let (plan, transport, sink, limit) = (
                    Arc::clone(&plan),
                    Arc::clone(&self.transport),
                    Arc::clone(&sink),
                    self.max_parallel,
                );
                connecting = Some(tokio::spawn(async move {
                    for check in probe::connect_all(&plan, transport.as_ref(), limit).await {
                        let is_ssh = plan
                            .steps
                            .iter()
                            .flat_map(|s| &s.hosts)
                            .any(|h| h.name == check.host && h.transport == TransportKind::Ssh);
                        if let (true, Some(event)) = (is_ssh, check.event()) {
                            let _ = sink.emit(event).await;
                        }
                    }
                }));
            }
            _ => {}
        }

        let (shutdown_tx, shutdown_rx) = watch::channel(0u32);
        let signals = tokio::spawn(forward_signals(shutdown_tx));
        let executor = Executor::new(
            Arc::clone(&plan),
            Arc::clone(&self.transport),
            Arc::new(DryRunTransport::default()),
            RunOptions {
                run_id: self.run.id.clone(),
                mode: self.mode,
                max_parallel: self.max_parallel,
                approvals: self.approvals,
                secrets: self.secrets,
                step_by_step: self.step_by_step,
            },
            Arc::clone(&sink),
            operator,
            shutdown_rx,
        );
        let finished = executor.execute().await;
        signals.abort();
        if let Some(connecting) = connecting {
            // Every connection was needed by some step; their keys belong in the journal.
            let _ = connecting.await;
        }
        let final_state = sink.state();
        drop(sink);
        let _ = display_task.await;
        let _ = log_task.await;

        let id = &self.run.id;
        // The report is evidence of the run, whatever its end: written for every ending.
        let reports = crate::report::write_all(&self.store, &self.run);
        let journal_path = self.run.journal();
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(
            stdout,
            "\nrun {id}: {} — journal {}",
            status_word(finished.status),
            journal_path.display()
        );
        if !finished.not_run.is_empty() && finished.status != RunStatus::Succeeded {
            let _ = writeln!(stdout, "not run: {}", finished.not_run.join(", "));
        }
        match reports {
            Ok(()) => {
                let _ = writeln!(
                    stdout,
                    "report: {}",
                    self.run.dir.join("report.html").display()
                );
            }
            Err(e) => {
                let _ = writeln!(
                    stdout,
                    "the report could not be written ({e}); `runbook report {id}` tries again"
                );
            }
        }
        if let Some(checks) = &probe_checks {
            let _ = write!(
                stdout,
                "\n{}",
                probe::render_probe_summary(&plan, checks, &final_state)
            );
        }
        drop(stdout);
        if let Some(error) = finished.internal_error {
            return Err(Error::Internal(format!(
                "{error}; the run stopped. Free the disk or fix the state folder, then `runbook resume {id}`"
            )));
        }
        let unready = probe_checks.iter().flatten().filter(|c| !c.ok()).count();
        match finished.status {
            RunStatus::Succeeded if unready > 0 => Err(Error::RunFailed(format!(
                "probe of run {id}: {unready} host(s) not ready (see above); fix them before the real run"
            ))),
            RunStatus::Succeeded => Ok(()),
            RunStatus::Failed => {
                let failed: Vec<&str> = final_state
                    .steps
                    .iter()
                    .filter(|(_, s)| s.status == Some(crate::event::StepStatus::Failed))
                    .map(|(id, _)| id.as_str())
                    .collect();
                Err(Error::RunFailed(format!(
                    "run {id} failed at {}; fix the cause, then `runbook resume {id}` (succeeded steps are not run again)",
                    if failed.is_empty() {
                        "a step".to_string()
                    } else {
                        failed.join(", ")
                    }
                )))
            }
            RunStatus::Paused => Err(Error::Paused(final_state.paused.unwrap_or_else(|| {
                format!("run {id} is paused; `runbook status {id}` shows why")
            }))),
            RunStatus::Interrupted => Err(Error::Interrupted(format!(
                "run {id} interrupted; `runbook resume {id}` continues it"
            ))),
        }
    }
}

fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "FAILED",
        RunStatus::Paused => "paused",
        RunStatus::Interrupted => "interrupted",
    }
}

/// Ctrl-C and SIGTERM each add one to the count the executor watches.
async fn forward_signals(tx: watch::Sender<u32>) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    loop {
        #[cfg(unix)]
        let got = match term.as_mut() {
            Some(term) => tokio::select! {
                r = tokio::signal::ctrl_c() => r.is_ok(),
                r = term.recv() => r.is_some(),
            },
            None => tokio::signal::ctrl_c().await.is_ok(),
        };
        #[cfg(not(unix))]
        let got = tokio::signal::ctrl_c().await.is_ok();
        if !got {
            return;
        }
        tx.send_modify(|count| *count += 1);
    }
}

/// Mirrors events into `tracing`, so that `-v` on stderr and the run's `log.jsonl` see them.
async fn log_events(mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        let line = crate::progress::plain_line(&event);
        tracing::info!(
            step = event.step.as_deref(),
            host = event.host.as_deref(),
            "{line}"
        );
    }
}

/// Asks the operator on the terminal; one question at a time.
struct TerminalOperator {
    multi: indicatif::MultiProgress,
    /// Two gates reached together are asked one after the other.
    ask: tokio::sync::Mutex<()>,
}

impl Operator for TerminalOperator {
    fn approve<'a>(&'a self, step: &'a str, question: &'a str) -> BoxFuture<'a, Answer> {
        Box::pin(async move {
            let _turn = self.ask.lock().await;
            let multi = self.multi.clone();
            let (step, question) = (step.to_string(), question.to_string());
            let answer = tokio::task::spawn_blocking(move || {
                multi.suspend(|| {
                    eprintln!("\n== approval `{step}` ==\n{question}\nType `yes` to approve, anything else to stop here (resumable): ");
                    let _ = std::io::stderr().flush();
                    let mut line = String::new();
                    let read = std::io::stdin().lock().read_line(&mut line);
                    read.ok().filter(|n| *n > 0).map(|_| line.trim().to_string())
                })
            });
            let (user, machine) = (host_info::current_user(), host_info::hostname());
            match answer.await {
                Ok(Some(text)) if text == "yes" => Answer::Yes { user, machine },
                Ok(Some(_)) => Answer::No { user, machine },
                _ => Answer::NoOne,
            }
        })
    }

    fn before_step<'a>(&'a self, step: &'a str, preview: &'a str) -> BoxFuture<'a, StepChoice> {
        Box::pin(async move {
            let _turn = self.ask.lock().await;
            let multi = self.multi.clone();
            let (step, preview) = (step.to_string(), preview.to_string());
            let answer = tokio::task::spawn_blocking(move || {
                multi.suspend(|| {
                    loop {
                        eprint!("\n== next: `{step}` ==\n{preview}[r]un, [s]kip or s[t]op? ");
                        let _ = std::io::stderr().flush();
                        let mut line = String::new();
                        match std::io::stdin().lock().read_line(&mut line) {
                            Ok(0) | Err(_) => return StepChoice::Stop,
                            Ok(_) => {}
                        }
                        match line.trim() {
                            "r" | "run" => return StepChoice::Run,
                            "s" | "skip" => return StepChoice::Skip,
                            "t" | "stop" => return StepChoice::Stop,
                            _ => eprintln!("answer run, skip or stop"),
                        }
                    }
                })
            });
            answer.await.unwrap_or(StepChoice::Stop)
        })
    }
}

/// What `runbook run` was asked to do, after its files were read and planned.
pub struct RunRequest {
    pub store: Store,
    pub plan: Plan,
    /// The runbook and inventory as read, copied into the run folder.
    pub runbook_source: crate::source::Source,
    pub inventory_source: crate::source::Source,
    /// `--var` / `--vars-file` overrides.
    pub vars: BTreeMap<String, String>,
    pub secrets_file: Option<std::path::PathBuf>,
    pub mode: Mode,
    pub approvals: Approvals,
    pub reason: Option<String>,
    pub max_parallel: usize,
    pub run_id: Option<String>,
    /// Start even though an earlier run of this runbook is unfinished.
    pub new: bool,
    pub transport: Arc<dyn Transport>,
    pub color: bool,
    pub step_by_step: bool,
}

/// `runbook run`: a new run folder, the lock, the journal, and the execution.
pub fn start(request: RunRequest) -> Result<(), Error> {
    let RunRequest {
        store,
        plan,
        runbook_source,
        inventory_source,
        vars,
        secrets_file,
        mode,
        approvals,
        reason,
        max_parallel,
        run_id,
        new,
        transport,
        color,
        step_by_step,
    } = request;
    let secrets = crate::secrets::for_plan(&plan, secrets_file.as_deref(), mode)?;
    let runbook = plan.runbook.name.value.clone();
    // Rehearsals that change nothing do not count as unfinished work either.
    if matches!(mode, Mode::Real | Mode::Drill) && !new {
        refuse_if_unfinished(&store, &runbook, mode)?;
    }
    let run = store.create_run(&runbook, run_id.as_deref())?;
    let _lock = lock_for(mode, &store, &runbook, &run.id, reason.as_deref())?;
    let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let inputs = crate::store::Inputs {
        run_id: run.id.clone(),
        runbook: runbook.clone(),
        runbook_path: absolute(&runbook_source.path),
        inventory_path: Some(absolute(&inventory_source.path)),
        vars,
        secrets: secrets.keys().cloned().collect(),
        mode,
        max_parallel,
        reason: reason.clone(),
        created_at: host_info::now_rfc3339(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let write = |path: std::path::PathBuf, bytes: &[u8]| {
        crate::store::write_durably(&path, bytes)
            .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))
    };
    write(run.runbook_copy(), runbook_source.text.as_bytes())?;
    write(run.inventory_copy(), inventory_source.text.as_bytes())?;
    write(
        run.inputs_path(),
        serde_json::to_string_pretty(&inputs)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let journal = JournalWriter::create(&run.journal()).map_err(|e| {
        Error::Internal(format!(
            "cannot create the journal {}: {e}",
            run.journal().display()
        ))
    })?;
    let opening = Opening::Started {
        runbook_file: inputs.runbook_path.display().to_string(),
        inventory: inputs
            .inventory_path
            .as_ref()
            .map(|p| p.display().to_string()),
    };
    let session = Session {
        store,
        run,
        mode,
        max_parallel,
        approvals,
        secrets,
        reason,
        transport,
        color,
        step_by_step,
    };
    session.execute(plan, RunState::default(), opening, journal)
}

/// A new real run (or drill) while an earlier one of the same runbook is unfinished
/// would make two half-done failovers: refuse, naming the run to resume.
fn refuse_if_unfinished(store: &Store, runbook: &str, mode: Mode) -> Result<(), Error> {
    for id in store.run_ids().into_iter().rev() {
        let Ok(run) = store.open_run(&id) else {
            continue;
        };
        let Ok(inputs) = run.inputs() else { continue };
        if inputs.runbook != runbook || inputs.mode != mode {
            continue;
        }
        let Ok((state, _)) = run.state() else {
            continue;
        };
        if state.finished != Some(RunStatus::Succeeded) {
            let how = match state.finished {
                Some(RunStatus::Failed) => "failed",
                Some(RunStatus::Paused) => "paused",
                _ => "interrupted",
            };
            return Err(Error::Locked(format!(
                "run {id} of {runbook} is unfinished ({how}); continue it with `runbook resume {id}`, or start another anyway with `--new`"
            )));
        }
    }
    Ok(())
}
