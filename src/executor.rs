//! Runs a `Plan`: steps start as soon as their needs are met, within the global and
//! per-step limits; group steps fan out per host; retries, timeouts, approvals, `when`
//! handlers and cancellation. It never prints: everything it does is an `Event` given to
//! the `Sink`, which journals it (durably, before the executor acts on it), folds it into
//! the run state, and passes it to observers (progress display, logs).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::event::{Event, EventKind, Mode, Outcome, RunStatus, StepStatus};
use crate::inventory::Host;
use crate::journal::Journal;
use crate::plan::{Plan, PlannedStep};
use crate::preview::var_text;
use crate::runbook::Only;
use crate::state::RunState;
use crate::template::{Quoting, Redactor, Reference, Template};
use crate::transport::{BoxFuture, Command, Go, Output, Transport};

/// The most of a command's output kept in the journal and offered to templates.
pub const STDOUT_KEPT: usize = 16 * 1024;
pub const STDERR_KEPT: usize = 4 * 1024;

/// Where events go: journal first (durable), then the state, then observers.
pub struct Sink {
    journal: Option<Journal>,
    redactor: Redactor,
    state: Mutex<RunState>,
    observers: Vec<mpsc::UnboundedSender<Event>>,
}

impl Sink {
    #[must_use]
    pub fn new(
        journal: Option<Journal>,
        redactor: Redactor,
        state: RunState,
        observers: Vec<mpsc::UnboundedSender<Event>>,
    ) -> Self {
        Self {
            journal,
            redactor,
            state: Mutex::new(state),
            observers,
        }
    }

    /// Records an event. Returns once it is on disk, or, for an event nothing outside the
    /// tool acts on directly (see `is_durable_at_once`), once it is queued ahead of the next
    /// one that is: the caller may then act on it.
    pub async fn emit(&self, event: Event) -> std::io::Result<()> {
        let event = redact_event(&self.redactor, event);
        if let Some(journal) = &self.journal {
            if is_durable_at_once(&event.kind) {
                journal.append(&event).await?;
            } else {
                journal.append_lazy(&event)?;
            }
        }
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(&event);
        for observer in &self.observers {
            let _ = observer.send(event.clone());
        }
        Ok(())
    }

    /// A copy of the run state as the events so far make it.
    #[must_use]
    pub fn state(&self) -> RunState {
        self.with_state(RunState::clone)
    }

    /// Looks into the run state without copying it: the executor reads a few fields per
    /// step, and a whole copy per step would make a long run quadratic.
    pub fn with_state<R>(&self, look: impl FnOnce(&RunState) -> R) -> R {
        look(&self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
}

/// Whether an event must be on disk before the executor goes on. The others (outcomes,
/// skips, retries, approvals) are acted on only by starting a command, an approval
/// question or the end of the run, whose own event is durable and, being written after
/// them, makes them durable too: one fsync per step instead of three. A power cut in
/// between loses at most an outcome, and the step then reads as in flight, which resume
/// settles safely (verify, idempotent, or the operator).
fn is_durable_at_once(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::StepFinished { .. }
            | EventKind::StepCompleted { .. }
            | EventKind::StepSkipped { .. }
            | EventKind::StepRetrying { .. }
            | EventKind::Approved { .. }
            | EventKind::HostConnected { .. }
    )
}

/// Replaces secret values in every text of an event: whatever a command echoes back,
/// whatever an error says, no secret reaches the journal, the screen or a report.
fn redact_event(redactor: &Redactor, event: Event) -> Event {
    if redactor.is_empty() {
        return event;
    }
    let Ok(mut value) = serde_json::to_value(&event) else {
        return event;
    };
    redact_value(redactor, &mut value);
    serde_json::from_value(value).unwrap_or(event)
}

fn redact_value(redactor: &Redactor, value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let std::borrow::Cow::Owned(redacted) = redactor.redact(s) {
                *s = redacted;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| redact_value(redactor, v)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| redact_value(redactor, v)),
        _ => {}
    }
}

/// Which gates are approved before the run reaches them.
#[derive(Debug, Clone, Default)]
pub enum Approvals {
    #[default]
    None,
    /// `--yes`
    All,
    /// `--approve ID…`
    Steps(BTreeSet<String>),
}

/// What the operator answered at a gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Yes {
        user: String,
        machine: String,
    },
    No {
        user: String,
        machine: String,
    },
    /// Nobody to ask (no terminal): the run pauses at the gate.
    NoOne,
}

/// The person at the keyboard, if any.
pub trait Operator: Send + Sync {
    fn approve<'a>(&'a self, step: &'a str, question: &'a str) -> BoxFuture<'a, Answer>;

    /// `--step`: before a command step starts, the operator sees what will run where and
    /// chooses. Only asked when the run was started with `--step`.
    fn before_step<'a>(&'a self, _step: &'a str, _preview: &'a str) -> BoxFuture<'a, StepChoice> {
        Box::pin(async { StepChoice::Run })
    }
}

/// The operator's choice before a step in `--step` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepChoice {
    Run,
    /// Leave this step out; the steps after it go on as if it had run.
    Skip,
    /// Stop here: the run pauses, resumable.
    Stop,
}

/// No terminal: nobody answers.
pub struct Unattended;

impl Operator for Unattended {
    fn approve<'a>(&'a self, _: &'a str, _: &'a str) -> BoxFuture<'a, Answer> {
        Box::pin(async { Answer::NoOne })
    }
}

/// How a run is carried out.
pub struct RunOptions {
    pub run_id: String,
    pub mode: Mode,
    /// Host commands at once, over all steps.
    pub max_parallel: usize,
    pub approvals: Approvals,
    pub secrets: BTreeMap<String, String>,
    /// `--step`: ask the operator before every command step.
    pub step_by_step: bool,
}

/// Ctrl-C count: 1 = drain (start nothing new), 2 = stop now.
pub type Shutdown = watch::Receiver<u32>;

/// Executes a plan against transports, emitting events into a sink.
pub struct Executor {
    runner: StepRunner,
    shutdown: Shutdown,
}

/// What a step task reports back to the scheduler.
enum StepEnd {
    Completed(StepStatus),
    /// Waiting for an operator: the run pauses.
    Paused,
    /// The journal could not be written: nothing more may be done.
    JournalFailed(String),
    /// Ctrl-C came before every host had its attempts: the step stays unsettled (resume
    /// runs the hosts that did not succeed).
    Interrupted,
}

/// The outcome of `Executor::execute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub status: RunStatus,
    /// Steps that never started because the run failed, paused or was interrupted.
    pub not_run: Vec<String>,
    /// Set when the tool itself failed (journal unwritable): the run stopped at once.
    pub internal_error: Option<String>,
}

impl Executor {
    #[must_use]
    pub fn new(
        plan: Arc<Plan>,
        transport: Arc<dyn Transport>,
        simulator: Arc<dyn Transport>,
        options: RunOptions,
        sink: Arc<Sink>,
        operator: Arc<dyn Operator>,
        shutdown: Shutdown,
    ) -> Self {
        let global_limit = Arc::new(Semaphore::new(options.max_parallel.max(1)));
        let runner = StepRunner {
            plan,
            transport,
            simulator,
            options: Arc::new(options),
            sink,
            operator,
            global_limit,
            shutdown: shutdown.clone(),
        };
        Self { runner, shutdown }
    }

    /// Runs every step that can run, and returns how the run ended. Steps that already
    /// succeeded in the sink's state (a resumed run) are not run again.
    pub async fn execute(mut self) -> Finished {
        let started = Instant::now();
        let plan = Arc::clone(&self.runner.plan);
        let n = plan.steps.len();
        // A step is settled once it has a final status this run can build on.
        let mut status: Vec<Option<StepStatus>> = self.runner.sink.with_state(|state| {
            plan.steps
                .iter()
                .map(|s| {
                    state
                        .status_of(s.id())
                        .filter(|st| *st == StepStatus::Succeeded)
                })
                .collect()
        });
        let mut transparent = vec![false; n];
        let mut dependents = vec![Vec::new(); n];
        let mut waiting = vec![0usize; n];
        for (i, step) in plan.steps.iter().enumerate() {
            for &dep in &step.needs {
                dependents[dep].push(i);
                if status[dep].is_none() {
                    waiting[i] += 1;
                }
            }
        }
        let mut ready: Vec<usize> = (0..n)
            .rev()
            .filter(|&i| status[i].is_none() && waiting[i] == 0)
            .collect();
        let mut tasks: JoinSet<(usize, StepEnd)> = JoinSet::new();
        let (mut failing, mut paused, mut draining, mut forced) = (false, false, false, false);
        let mut internal_error = None;

        loop {
            // A step task may see Ctrl-C (and end) before this loop's `select!` does: look
            // before starting anything.
            if !draining && *self.shutdown.borrow() > 0 {
                draining = true;
                let _ = self
                    .runner
                    .sink
                    .emit(Event::now(
                        None,
                        None,
                        EventKind::Interrupted { forced: false },
                    ))
                    .await;
            }
            while let Some(i) = ready.pop() {
                if paused || draining || internal_error.is_some() {
                    // Held: it stays unsettled, so `not_run` lists it and resume starts it.
                    continue;
                }
                match self.runner.decide(i, &status, &transparent, failing) {
                    Decision::Start => match self.runner.ask_before(i).await {
                        StepChoice::Run => {
                            let executor = self.runner.clone();
                            tasks.spawn(async move { (i, executor.run_step(i).await) });
                        }
                        StepChoice::Skip => {
                            let event = Event::now(
                                Some(plan.steps[i].id()),
                                None,
                                EventKind::StepSkipped {
                                    reason: "skipped by the operator (--step)".into(),
                                },
                            );
                            if let Err(e) = self.runner.sink.emit(event).await {
                                internal_error = Some(format!("cannot write the journal: {e}"));
                                continue;
                            }
                            status[i] = Some(StepStatus::Skipped);
                            transparent[i] = true;
                            release(i, &dependents, &mut waiting, &status, &mut ready);
                        }
                        StepChoice::Stop => {
                            let reason = format!(
                                "stopped by the operator before `{}`; `runbook resume {}` continues",
                                plan.steps[i].id(),
                                self.runner.options.run_id
                            );
                            let event = Event::now(
                                Some(plan.steps[i].id()),
                                None,
                                EventKind::RunPaused { reason },
                            );
                            if let Err(e) = self.runner.sink.emit(event).await {
                                internal_error = Some(format!("cannot write the journal: {e}"));
                            }
                            paused = true;
                        }
                    },
                    Decision::Skip {
                        reason,
                        transparent: passes,
                    } => {
                        let event = Event::now(
                            Some(plan.steps[i].id()),
                            None,
                            EventKind::StepSkipped { reason },
                        );
                        if let Err(e) = self.runner.sink.emit(event).await {
                            internal_error = Some(format!("cannot write the journal: {e}"));
                            continue;
                        }
                        status[i] = Some(StepStatus::Skipped);
                        transparent[i] = passes;
                        release(i, &dependents, &mut waiting, &status, &mut ready);
                    }
                }
            }
            if tasks.is_empty() {
                if !draining && *self.shutdown.borrow() > 0 {
                    continue;
                }
                break;
            }
            tokio::select! {
                joined = tasks.join_next() => {
                    let Some(joined) = joined else { continue };
                    let Ok((i, end)) = joined else {
                        // A step task panicked: count it as a failure, never as success.
                        failing = true;
                        continue;
                    };
                    match end {
                        StepEnd::Completed(step_status) => {
                            status[i] = Some(step_status);
                            failing |= step_status == StepStatus::Failed;
                            release(i, &dependents, &mut waiting, &status, &mut ready);
                        }
                        StepEnd::Paused => paused = true,
                        StepEnd::Interrupted => {}
                        StepEnd::JournalFailed(message) => internal_error = Some(message),
                    }
                }
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        // The signal source is gone: no more signals can come.
                        std::future::pending::<()>().await;
                    }
                    let count = *self.shutdown.borrow_and_update();
                    if count >= 2 {
                        forced = true;
                        tasks.abort_all();
                        while tasks.join_next().await.is_some() {}
                        break;
                    }
                    if count >= 1 && !draining {
                        draining = true;
                        let _ = self.runner.sink.emit(Event::now(None, None, EventKind::Interrupted { forced: false })).await;
                    }
                }
            }
        }

        let unsettled = status.iter().any(Option::is_none);
        // A Ctrl-C that came while the last steps were finishing stopped nothing.
        let run_status = if forced || (draining && unsettled) {
            RunStatus::Interrupted
        } else if internal_error.is_some() || failing {
            RunStatus::Failed
        } else if paused {
            RunStatus::Paused
        } else {
            RunStatus::Succeeded
        };
        if forced {
            let _ = self
                .runner
                .sink
                .emit(Event::now(
                    None,
                    None,
                    EventKind::Interrupted { forced: true },
                ))
                .await;
        }
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let finish = Event::now(
            None,
            None,
            EventKind::RunFinished {
                status: run_status,
                duration_ms,
            },
        );
        if let Err(e) = self.runner.sink.emit(finish).await {
            internal_error.get_or_insert_with(|| format!("cannot write the journal: {e}"));
        }
        let not_run: Vec<String> = (0..n)
            .filter(|&i| status[i].is_none())
            .map(|i| plan.steps[i].id().to_string())
            .collect();
        Finished {
            status: run_status,
            not_run,
            internal_error,
        }
    }
}

enum Decision {
    Start,
    /// `transparent`: dependents treat the step as satisfied (a step left out by `only`).
    Skip {
        reason: String,
        transparent: bool,
    },
}

/// A step settled: its dependents wait for one step less.
fn release(
    i: usize,
    dependents: &[Vec<usize>],
    waiting: &mut [usize],
    status: &[Option<StepStatus>],
    ready: &mut Vec<usize>,
) {
    for &next in dependents[i].iter().rev() {
        waiting[next] -= 1;
        if waiting[next] == 0 && status[next].is_none() {
            ready.push(next);
        }
    }
}

/// A step's rendered command for `host`, with the environment every command gets (so a
/// site script can tell a drill from the real thing).
#[must_use]
pub fn step_command(
    script: String,
    run_id: &str,
    mode: Mode,
    step: &PlannedStep,
    host: &Host,
) -> Command {
    Command {
        script,
        env: vec![
            ("RUNBOOK_RUN_ID".into(), run_id.to_string()),
            ("RUNBOOK_STEP".into(), step.id().to_string()),
            ("RUNBOOK_HOST".into(), host.name.clone()),
            ("RUNBOOK_MODE".into(), mode.env_value().into()),
        ],
        timeout: step.timeout,
    }
}

/// The value of a template reference for a command on `host`.
pub fn resolve_reference(
    plan: &Plan,
    state: &RunState,
    secrets: &BTreeMap<String, String>,
    host: Option<&Host>,
    reference: &Reference,
) -> Option<String> {
    match reference {
        Reference::Var(name) => plan.vars.get(name).cloned(),
        Reference::Secret(name) => secrets.get(name).cloned(),
        Reference::HostName => host.map(|h| h.name.clone()),
        Reference::HostAddress => host.map(|h| h.address.clone()),
        Reference::HostVar(name) => host.and_then(|h| h.vars.get(name)).map(var_text),
        Reference::StepStatus(id) => Some(
            state
                .status_of(id)
                .map_or("pending", StepStatus::as_str)
                .to_string(),
        ),
        Reference::StepStdout(id) | Reference::StepExitCode(id) => {
            let step = state.steps.get(id);
            let hosts = step.map(|s| &s.hosts);
            // The output on this host if the step ran here, else the only host it ran on.
            let result = hosts.and_then(|hosts| {
                host.and_then(|h| hosts.get(&h.name)).or_else(|| {
                    if hosts.len() == 1 {
                        hosts.values().next()
                    } else {
                        None
                    }
                })
            });
            Some(match (reference, result) {
                (Reference::StepStdout(_), Some(r)) => r.stdout.trim().to_string(),
                (Reference::StepExitCode(_), Some(r)) => {
                    r.exit_code.map(|c| c.to_string()).unwrap_or_default()
                }
                _ => String::new(),
            })
        }
    }
}

/// What a step task needs, shared with the scheduler.
#[derive(Clone)]
struct StepRunner {
    plan: Arc<Plan>,
    transport: Arc<dyn Transport>,
    simulator: Arc<dyn Transport>,
    options: Arc<RunOptions>,
    sink: Arc<Sink>,
    operator: Arc<dyn Operator>,
    global_limit: Arc<Semaphore>,
    shutdown: Shutdown,
}

impl StepRunner {
    /// Whether a step whose needs have all settled starts, is skipped, or waits.
    fn decide(
        &self,
        i: usize,
        status: &[Option<StepStatus>],
        transparent: &[bool],
        failing: bool,
    ) -> Decision {
        let step = &self.plan.steps[i];
        let mode = self.options.mode;
        match step.step.only {
            Some(Only::Real) if mode.is_drill() => {
                return Decision::Skip {
                    reason: "real only: not run in a drill".into(),
                    transparent: true,
                };
            }
            Some(Only::Drill) if !mode.is_drill() => {
                return Decision::Skip {
                    reason: "drill only: not run in a real run".into(),
                    transparent: true,
                };
            }
            _ => {}
        }
        let satisfied = |dep: usize| status[dep] == Some(StepStatus::Succeeded) || transparent[dep];
        let Some(when) = &step.when else {
            if let Some(&dep) = step.needs.iter().find(|&&d| !satisfied(d)) {
                let dep_status = status[dep].map_or("unknown", StepStatus::as_str);
                return Decision::Skip {
                    reason: format!("`{}` {dep_status}", self.plan.steps[dep].id()),
                    transparent: false,
                };
            }
            if failing {
                // Settled as skipped, so that handlers further down (`when: … == 'failed'`)
                // get to see the run's end; resume decides it afresh.
                return Decision::Skip {
                    reason: "not started: an earlier step failed".into(),
                    transparent: false,
                };
            }
            return Decision::Start;
        };
        let hosts: Vec<Option<&Host>> = if step.hosts.is_empty() {
            vec![None]
        } else {
            step.hosts.iter().map(|h| Some(&**h)).collect()
        };
        let holds = self.sink.with_state(|state| {
            hosts.iter().any(|host| {
                let resolve = |r: &Reference| {
                    resolve_reference(&self.plan, state, &self.options.secrets, *host, r)
                };
                when.eval(&resolve)
            })
        });
        if holds {
            Decision::Start
        } else {
            Decision::Skip {
                reason: format!(
                    "condition is false: {}",
                    step.step.when.as_ref().map_or("", |w| w.value.as_str())
                ),
                transparent: false,
            }
        }
    }

    fn step(&self, i: usize) -> &PlannedStep {
        &self.plan.steps[i]
    }

    async fn emit(&self, step: &str, host: Option<&str>, kind: EventKind) -> Result<(), String> {
        self.sink
            .emit(Event::now(Some(step), host, kind))
            .await
            .map_err(|e| format!("cannot write the journal: {e}"))
    }

    async fn run_step(&self, i: usize) -> StepEnd {
        let result = if self.step(i).question.is_some() {
            self.approve(i).await
        } else {
            self.run_command_step(i).await
        };
        result.unwrap_or_else(StepEnd::JournalFailed)
    }

    async fn approve(&self, i: usize) -> Result<StepEnd, String> {
        let step = self.step(i);
        let id = step.id();
        let question = step.question.as_ref().map_or_else(String::new, |q| {
            self.sink.with_state(|state| {
                let resolve = |r: &Reference| {
                    resolve_reference(&self.plan, state, &self.options.secrets, None, r)
                };
                q.render(Quoting::Plain, &resolve)
                    .unwrap_or_else(|_| step.step.id.value.clone())
            })
        });
        self.emit(
            id,
            None,
            EventKind::ApprovalRequested {
                question: question.clone(),
            },
        )
        .await?;
        let pre = match (&self.options.approvals, self.options.mode) {
            (_, Mode::DryRun | Mode::Probe) => Some("dry run"),
            (Approvals::All, _) => Some("--yes"),
            (Approvals::Steps(ids), _) if ids.contains(id) => Some("--approve"),
            _ => None,
        };
        let answer = match pre {
            Some(via) => {
                let (user, machine) = (
                    crate::host_info::current_user(),
                    crate::host_info::hostname(),
                );
                self.emit(
                    id,
                    None,
                    EventKind::Approved {
                        user,
                        machine,
                        via: via.into(),
                    },
                )
                .await?;
                return self.complete(i, StepStatus::Succeeded).await;
            }
            None => self.operator.approve(id, &question).await,
        };
        match answer {
            Answer::Yes { user, machine } => {
                self.emit(
                    id,
                    None,
                    EventKind::Approved {
                        user,
                        machine,
                        via: "terminal".into(),
                    },
                )
                .await?;
                self.complete(i, StepStatus::Succeeded).await
            }
            Answer::No { user, machine } => {
                self.emit(id, None, EventKind::Declined { user, machine })
                    .await?;
                let reason = format!(
                    "approval `{id}` was declined; to go on: runbook resume {} --approve {id}",
                    self.options.run_id
                );
                self.emit(id, None, EventKind::RunPaused { reason }).await?;
                Ok(StepEnd::Paused)
            }
            Answer::NoOne => {
                let reason = format!(
                    "waiting for approval `{id}`: runbook resume {} --approve {id}",
                    self.options.run_id
                );
                self.emit(id, None, EventKind::RunPaused { reason }).await?;
                Ok(StepEnd::Paused)
            }
        }
    }

    async fn complete(&self, i: usize, status: StepStatus) -> Result<StepEnd, String> {
        let step = self.step(i);
        let checkpoint = step.step.checkpoint.clone();
        self.emit(
            step.id(),
            None,
            EventKind::StepCompleted { status, checkpoint },
        )
        .await?;
        Ok(StepEnd::Completed(status))
    }

    async fn run_command_step(&self, i: usize) -> Result<StepEnd, String> {
        let step = self.step(i);
        let id = step.id();
        // On resume, hosts that already succeeded are done; only the others run. Of a
        // group step with `when`, only the hosts for which the condition holds run.
        let hosts: Vec<&Arc<Host>> = self.sink.with_state(|state| {
            let done = |host: &Host| {
                state
                    .steps
                    .get(id)
                    .and_then(|s| s.hosts.get(&host.name))
                    .is_some_and(|h| h.outcome == Some(Outcome::Succeeded))
            };
            step.hosts
                .iter()
                .filter(|h| !done(h))
                .filter(|h| {
                    step.when.as_ref().is_none_or(|when| {
                        let resolve = |r: &Reference| {
                            resolve_reference(
                                &self.plan,
                                state,
                                &self.options.secrets,
                                Some(&***h),
                                r,
                            )
                        };
                        when.eval(&resolve)
                    })
                })
                .collect()
        });
        let step_limit = Arc::new(Semaphore::new(
            step.step
                .max_parallel
                .map_or(usize::MAX >> 4, |n| n as usize),
        ));
        let mut failures = 0u32;
        let mut journal_error = None;
        let mut interrupted = false;
        let mut tally = |result: Result<Option<Outcome>, String>| match result {
            Ok(Some(Outcome::Succeeded)) => {}
            Ok(Some(Outcome::Failed)) => failures += 1,
            Ok(None) => interrupted = true,
            Err(e) => journal_error = Some(e),
        };
        if let [host] = hosts.as_slice() {
            // One host (the common case): no task to spawn and join.
            tally(
                self.clone()
                    .run_within_limits(i, Arc::clone(host), step_limit)
                    .await,
            );
        } else {
            let mut runs = JoinSet::new();
            for host in hosts {
                runs.spawn(self.clone().run_within_limits(
                    i,
                    Arc::clone(host),
                    Arc::clone(&step_limit),
                ));
            }
            while let Some(joined) = runs.join_next().await {
                match joined {
                    Ok(result) => tally(result),
                    Err(e) => {
                        // A host task panicked or was aborted: never counted as success.
                        tally(Ok(Some(Outcome::Failed)));
                        tracing::error!(step = id, "host task ended abnormally: {e}");
                    }
                }
            }
        }
        if let Some(e) = journal_error {
            return Err(e);
        }
        if interrupted && failures <= step.step.max_failures {
            return Ok(StepEnd::Interrupted);
        }
        let status = if failures > step.step.max_failures {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        self.complete(i, status).await
    }

    /// One host's part of step `i`, once the step's and the run's limits let it start.
    /// `None`: Ctrl-C came while it waited for its turn, so it was not started.
    async fn run_within_limits(
        self,
        i: usize,
        host: Arc<Host>,
        step_limit: Arc<Semaphore>,
    ) -> Result<Option<Outcome>, String> {
        let Ok(_step_permit) = step_limit.acquire_owned().await else {
            return Err("the step's limit was closed".to_string());
        };
        let Ok(_global_permit) = Arc::clone(&self.global_limit).acquire_owned().await else {
            return Err("the run's limit was closed".to_string());
        };
        if *self.shutdown.borrow() > 0 {
            return Ok(None);
        }
        self.run_on_host(i, &host).await
    }

    /// In `--step` mode, shows the operator what step `i` will run where, and asks.
    async fn ask_before(&self, i: usize) -> StepChoice {
        let step = self.step(i);
        let Some(command) = step.command.as_ref().filter(|_| self.options.step_by_step) else {
            return StepChoice::Run;
        };
        let mut preview = String::new();
        if let Some(name) = &step.step.name {
            preview.push_str(name);
            preview.push('\n');
        }
        for host in &step.hosts {
            let rendered = self
                .render(command, host)
                .unwrap_or_else(|e| format!("<cannot render: {e}>"));
            let shown = self.sink.redactor().redact(&rendered).into_owned();
            let _ = writeln!(preview, "  on {} ({}): {shown}", host.name, host.address);
        }
        self.operator.before_step(step.id(), &preview).await
    }

    fn render(&self, template: &Template, host: &Host) -> Result<String, String> {
        self.sink.with_state(|state| {
            let resolve = |r: &Reference| {
                resolve_reference(&self.plan, state, &self.options.secrets, Some(host), r)
            };
            template
                .render(Quoting::Shell, &resolve)
                .map_err(|missing| format!("`{missing}` has no value"))
        })
    }

    fn command(&self, script: String, step: &PlannedStep, host: &Host) -> Command {
        step_command(script, &self.options.run_id, self.options.mode, step, host)
    }

    /// One host's part of a step: attempts with retry, each journaled before it is sent.
    /// `None`: Ctrl-C came before the attempts were used up.
    async fn run_on_host(&self, i: usize, host: &Host) -> Result<Option<Outcome>, String> {
        let step = self.step(i);
        let id = step.id();
        let mode = self.options.mode;
        let simulated = mode == Mode::DryRun || (mode == Mode::Probe && !step.step.readonly);
        let transport = if simulated {
            &self.simulator
        } else {
            &self.transport
        };
        let mut delay = step.retry.delay;
        let attempts = step.retry.attempts.max(1);
        for attempt in 1..=attempts {
            let script = match step.command.as_ref().map(|t| self.render(t, host)) {
                Some(Ok(script)) => script,
                other => {
                    let error = match other {
                        Some(Err(e)) => e,
                        _ => "the step has no command".into(),
                    };
                    self.emit(
                        id,
                        Some(&host.name),
                        EventKind::StepStarted {
                            attempt,
                            command: String::new(),
                            simulated,
                        },
                    )
                    .await?;
                    self.finish(
                        id,
                        host,
                        attempt,
                        Ending::failed(Output::default(), Some(error)),
                        simulated,
                    )
                    .await?;
                    return Ok(Some(Outcome::Failed));
                }
            };
            let started = Instant::now();
            let command = self.command(script.clone(), step, host);
            // The command is sent only once its start is on disk; the transport may get it
            // ready meanwhile, so it goes first (the journal's fsync may run on this thread).
            // A failed write withdraws the clearance and ends the run.
            let (clearance, go) = Go::pending();
            let journaled = async {
                let event = EventKind::StepStarted {
                    attempt,
                    command: script,
                    simulated,
                };
                self.emit(id, Some(&host.name), event).await?;
                clearance.give();
                Ok::<(), String>(())
            };
            let (result, journaled) =
                tokio::join!(transport.run_after(host, &command, go), journaled);
            journaled?;
            let mut ending = match result {
                Ok(output) if output.succeeded() => Ending::ok(output),
                Ok(output) => Ending::failed(output, None),
                Err(e) => Ending::failed(Output::default(), Some(e.to_string())),
            };
            if ending.outcome == Outcome::Succeeded && mode != Mode::DryRun {
                ending = self.verify(step, host, ending).await;
            }
            ending.duration = started.elapsed();
            let outcome = ending.outcome;
            self.finish(id, host, attempt, ending, simulated).await?;
            if outcome == Outcome::Succeeded {
                return Ok(Some(outcome));
            }
            if attempt < attempts {
                if *self.shutdown.borrow() > 0 {
                    // Ctrl-C: start nothing new, not even a retry; resume will retry.
                    return Ok(None);
                }
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                self.emit(
                    id,
                    Some(&host.name),
                    EventKind::StepRetrying { attempt, delay_ms },
                )
                .await?;
                // Ctrl-C during the wait ends it: the retry is left to `resume`.
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = interrupted(self.shutdown.clone()) => return Ok(None),
                }
                delay = delay
                    .mul_f64(step.retry.backoff)
                    .min(Duration::from_hours(1));
            }
        }
        Ok(Some(Outcome::Failed))
    }

    /// Runs the step's `verify` after a successful command; its failure fails the attempt.
    async fn verify(&self, step: &PlannedStep, host: &Host, ending: Ending) -> Ending {
        let Some(verify) = &step.verify else {
            return ending;
        };
        let script = match self.render(verify, host) {
            Ok(script) => script,
            Err(e) => {
                return Ending {
                    outcome: Outcome::Failed,
                    error: Some(format!("verify: {e}")),
                    ..ending
                };
            }
        };
        let command = self.command(script, step, host);
        match self.transport.run(host, &command).await {
            Ok(output) if output.succeeded() => ending,
            Ok(output) => {
                let how = if output.timed_out {
                    "timed out".to_string()
                } else {
                    output
                        .exit_code
                        .map_or("was killed".into(), |c| format!("exited {c}"))
                };
                Ending {
                    outcome: Outcome::Failed,
                    error: Some(format!("verify failed: it {how}")),
                    ..ending
                }
            }
            Err(e) => Ending {
                outcome: Outcome::Failed,
                error: Some(format!("verify could not run: {e}")),
                ..ending
            },
        }
    }

    async fn finish(
        &self,
        id: &str,
        host: &Host,
        attempt: u32,
        f: Ending,
        simulated: bool,
    ) -> Result<(), String> {
        let duration_ms = u64::try_from(f.duration.as_millis()).unwrap_or(u64::MAX);
        // Redacted before the cut, which could leave part of a secret no longer recognised.
        let kept = |text: &str, max| tail(&self.sink.redactor().redact(text), max);
        self.emit(
            id,
            Some(&host.name),
            EventKind::StepFinished {
                attempt,
                outcome: f.outcome,
                exit_code: f.output.exit_code,
                timed_out: f.output.timed_out,
                error: f.error,
                stdout: kept(&f.output.stdout, STDOUT_KEPT),
                stderr: kept(&f.output.stderr, STDERR_KEPT),
                duration_ms,
                simulated,
            },
        )
        .await
    }
}

/// Resolves once Ctrl-C was pressed (never, if the signal source is gone).
async fn interrupted(mut shutdown: Shutdown) {
    if shutdown.wait_for(|count| *count > 0).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// How an attempt ended, before it is journaled.
struct Ending {
    outcome: Outcome,
    output: Output,
    error: Option<String>,
    duration: Duration,
}

impl Ending {
    fn ok(output: Output) -> Self {
        Self {
            outcome: Outcome::Succeeded,
            output,
            error: None,
            duration: Duration::ZERO,
        }
    }

    fn failed(output: Output, error: Option<String>) -> Self {
        let error = error.or_else(|| output.timed_out.then(|| "timed out".to_string()));
        Self {
            outcome: Outcome::Failed,
            output,
            error,
            duration: Duration::ZERO,
        }
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fmt::Write as _;

    use tokio::time::Instant as VirtualInstant;

    use super::*;
    use crate::inventory::Inventory;
    use crate::source::Source;
    use crate::transport::TransportError;

    /// One command the fake ran: which step and host, from when to when (virtual time).
    #[derive(Debug, Clone)]
    struct Ran {
        step: String,
        host: String,
        start: Duration,
        end: Duration,
    }

    /// A transport that runs nothing: the script says how long to "run" and how to end,
    /// as words `ms=N` (default 100), `exit=N` (default 0) and `fails=N` (the first N
    /// attempts on a host exit 1). It sleeps on tokio's clock, so tests run in virtual time.
    struct Fake {
        base: VirtualInstant,
        ran: Mutex<Vec<Ran>>,
        attempts: Mutex<HashMap<(String, String), u32>>,
    }

    impl Fake {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                base: VirtualInstant::now(),
                ran: Mutex::new(Vec::new()),
                attempts: Mutex::new(HashMap::new()),
            })
        }

        fn ran(&self) -> Vec<Ran> {
            self.ran.lock().unwrap().clone()
        }

        fn ran_steps(&self) -> Vec<String> {
            let mut steps: Vec<String> = self.ran().into_iter().map(|r| r.step).collect();
            steps.dedup();
            steps
        }

        /// The most commands that ran at the same moment (of those matching `step`).
        fn peak(&self, step: Option<&str>) -> usize {
            let ran: Vec<Ran> = self
                .ran()
                .into_iter()
                .filter(|r| step.is_none_or(|s| r.step == s))
                .collect();
            ran.iter()
                .map(|r| {
                    ran.iter()
                        .filter(|o| o.start <= r.start && r.start < o.end)
                        .count()
                })
                .max()
                .unwrap_or(0)
        }
    }

    impl Transport for Fake {
        fn run<'a>(
            &'a self,
            host: &'a Host,
            command: &'a Command,
        ) -> BoxFuture<'a, Result<Output, TransportError>> {
            Box::pin(async move {
                let word = |key: &str, default: u64| {
                    command
                        .script
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
                        .unwrap_or(default)
                };
                let step = command
                    .env
                    .iter()
                    .find(|(k, _)| k == "RUNBOOK_STEP")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let attempt = {
                    let mut attempts = self.attempts.lock().unwrap();
                    let n = attempts
                        .entry((step.clone(), host.name.clone()))
                        .or_default();
                    *n += 1;
                    u64::from(*n)
                };
                let start = self.base.elapsed();
                tokio::time::sleep(Duration::from_millis(word("ms", 100))).await;
                self.ran.lock().unwrap().push(Ran {
                    step,
                    host: host.name.clone(),
                    start,
                    end: self.base.elapsed(),
                });
                let code = if attempt <= word("fails", 0) {
                    1
                } else {
                    word("exit", 0)
                };
                Ok(Output {
                    exit_code: Some(i32::try_from(code).unwrap()),
                    stdout: format!("out-{}\n", host.name),
                    ..Output::default()
                })
            })
        }

        fn connect<'a>(&'a self, _: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
            Box::pin(async { Ok("fake".into()) })
        }
    }

    const INVENTORY: &str = "all:\n  vars: { runbook_transport: local, code: 0 }\n  children:\n    g:\n      hosts:\n        h1: {}\n        h2: { code: 1 }\n        h3: {}\n        h4: {}\n        h5: {}\n        h6: {}\n";

    fn plan(steps: &str) -> Plan {
        let inventory = Inventory::load(&Source::new("/inv.yaml", INVENTORY), None).unwrap();
        let source = Source::new("/rb.yaml", format!("name: t\nsteps:\n{steps}"));
        let (runbook, diags) = crate::runbook::parse(&source);
        let runbook = runbook.unwrap_or_else(|| panic!("{diags:?}"));
        let vars = BTreeMap::new();
        let (plan, diags) = crate::plan::plan(
            runbook,
            &crate::plan::Inputs {
                source: &source,
                inventory: Some(&inventory),
                vars: &vars,
            },
        );
        plan.unwrap_or_else(|| panic!("{diags:?}"))
    }

    /// A run of `steps` against the fake: what it finished with, the final state, the fake.
    struct Run {
        finished: Finished,
        state: RunState,
        events: Vec<Event>,
        fake: Arc<Fake>,
    }

    struct Setup {
        mode: Mode,
        max_parallel: usize,
        approvals: Approvals,
        /// Ctrl-C presses, each after this much virtual time.
        interrupts: Vec<Duration>,
    }

    impl Default for Setup {
        fn default() -> Self {
            Self {
                mode: Mode::Real,
                max_parallel: 16,
                approvals: Approvals::None,
                interrupts: Vec::new(),
            }
        }
    }

    async fn run(steps: &str, setup: Setup) -> Run {
        let fake = Fake::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Arc::new(Sink::new(
            None,
            Redactor::new([]),
            RunState::default(),
            vec![tx],
        ));
        let (shutdown_tx, shutdown_rx) = watch::channel(0u32);
        let executor = Executor::new(
            Arc::new(plan(steps)),
            Arc::clone(&fake) as Arc<dyn Transport>,
            Arc::new(crate::transport::DryRunTransport::default()),
            RunOptions {
                run_id: "r1".into(),
                mode: setup.mode,
                max_parallel: setup.max_parallel,
                approvals: setup.approvals,
                secrets: BTreeMap::new(),
                step_by_step: false,
            },
            Arc::clone(&sink),
            Arc::new(Unattended),
            shutdown_rx,
        );
        let presses = tokio::spawn(async move {
            for after in setup.interrupts {
                tokio::time::sleep(after).await;
                shutdown_tx.send_modify(|n| *n += 1);
            }
            // Keep the sender: a closed channel would mean "no more signals".
            std::future::pending::<()>().await;
        });
        let finished = executor.execute().await;
        presses.abort();
        let state = sink.state();
        drop(sink);
        let mut rx = rx;
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        Run {
            finished,
            state,
            events,
            fake,
        }
    }

    fn status(run: &Run, step: &str) -> Option<StepStatus> {
        run.state.status_of(step)
    }

    #[tokio::test(start_paused = true)]
    async fn implicit_order_runs_steps_one_after_the_other() {
        let run = run(
            "  - { id: a, on: h1, run: x }\n  - { id: b, on: h1, run: x }\n  - { id: c, on: h1, run: x }\n",
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Succeeded);
        assert_eq!(run.fake.ran_steps(), ["a", "b", "c"]);
        assert_eq!(run.fake.peak(None), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn per_step_max_parallel_is_never_exceeded() {
        let run = run(
            "  - { id: a, on: g, max_parallel: 2, run: ms=100 }\n",
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Succeeded);
        assert_eq!(run.fake.ran().len(), 6);
        assert_eq!(run.fake.peak(Some("a")), 2);
        // Three rounds of two: the limit queues hosts, it does not serialise them.
        assert_eq!(
            run.fake.ran().iter().map(|r| r.end).max(),
            Some(Duration::from_millis(300))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn global_max_parallel_caps_all_steps_together() {
        let steps: String = (1..=5).fold(String::new(), |mut steps, i| {
            let _ = writeln!(steps, "  - {{ id: s{i}, on: g, needs: [], run: ms=100 }}");
            steps
        });
        let run = run(
            &steps,
            Setup {
                max_parallel: 4,
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Succeeded);
        assert_eq!(run.fake.ran().len(), 30);
        assert_eq!(run.fake.peak(None), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn independent_steps_overlap() {
        let run = run(
            "  - { id: a, on: h1, needs: [], run: ms=100 }\n  - { id: b, on: h2, needs: [], run: ms=100 }\n",
            Setup::default(),
        )
        .await;
        assert_eq!(run.fake.peak(None), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_wait_with_backoff() {
        let run = run(
            "  - { id: a, on: h1, run: ms=100 fails=2, retry: { attempts: 3, delay: 10s, backoff: 2.0 } }\n",
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Succeeded);
        let starts: Vec<Duration> = run.fake.ran().iter().map(|r| r.start).collect();
        let ms = Duration::from_millis;
        assert_eq!(starts, [ms(0), ms(100 + 10_000), ms(200 + 10_000 + 20_000)]);
        let delays: Vec<u64> = run
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::StepRetrying { delay_ms, .. } => Some(delay_ms),
                _ => None,
            })
            .collect();
        assert_eq!(delays, [10_000, 20_000]);
        assert_eq!(run.state.steps["a"].hosts["h1"].attempts, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_give_up_after_the_last_attempt() {
        let run = run(
            "  - { id: a, on: h1, run: exit=1, retry: { attempts: 2, delay: 1s } }\n  - { id: b, on: h1, run: x }\n",
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Failed);
        assert_eq!(run.fake.ran().len(), 2);
        assert_eq!(status(&run, "a"), Some(StepStatus::Failed));
        assert_eq!(status(&run, "b"), Some(StepStatus::Skipped));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_skips_dependents_and_starts_nothing_new_but_lets_running_steps_finish() {
        let run = run(
            concat!(
                "  - { id: a, on: h1, needs: [], run: ms=100 exit=1 }\n",
                "  - { id: after-a, on: h1, run: x }\n",
                "  - { id: slow, on: h2, needs: [], run: ms=500 }\n",
                "  - { id: after-slow, on: h2, run: x }\n",
            ),
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Failed);
        assert_eq!(status(&run, "a"), Some(StepStatus::Failed));
        assert_eq!(status(&run, "after-a"), Some(StepStatus::Skipped));
        assert_eq!(status(&run, "slow"), Some(StepStatus::Succeeded));
        assert_eq!(status(&run, "after-slow"), Some(StepStatus::Skipped));
        assert_eq!(run.fake.ran_steps(), ["a", "slow"]);
        assert!(
            run.finished.not_run.is_empty(),
            "{:?}",
            run.finished.not_run
        );
    }

    #[tokio::test(start_paused = true)]
    async fn when_handlers_run_on_failure_and_other_branches_are_skipped() {
        let run = run(
            concat!(
                "  - { id: a, on: h1, run: exit=1 }\n",
                "  - { id: on-failure, on: h1, needs: [a], when: \"steps.a.status == 'failed'\", run: x }\n",
                "  - { id: on-success, on: h1, needs: [a], when: \"steps.a.status == 'succeeded'\", run: x }\n",
            ),
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Failed);
        assert_eq!(status(&run, "on-failure"), Some(StepStatus::Succeeded));
        assert_eq!(status(&run, "on-success"), Some(StepStatus::Skipped));
        assert_eq!(run.fake.ran_steps(), ["a", "on-failure"]);
    }

    #[tokio::test(start_paused = true)]
    async fn max_failures_tolerates_that_many_failed_hosts() {
        // h2 exits 1, the five others 0.
        let steps = "  - { id: a, on: g, max_failures: N, run: \"exit={{ raw host.vars.code }}\" }\n  - { id: b, on: h1, run: x }\n";
        let run1 = run(&steps.replace('N', "1"), Setup::default()).await;
        assert_eq!(run1.finished.status, RunStatus::Succeeded);
        assert_eq!(
            run1.state.steps["a"].hosts["h2"].outcome,
            Some(Outcome::Failed)
        );
        assert_eq!(status(&run1, "b"), Some(StepStatus::Succeeded));
        let run0 = run(&steps.replace('N', "0"), Setup::default()).await;
        assert_eq!(run0.finished.status, RunStatus::Failed);
        assert_eq!(status(&run0, "b"), Some(StepStatus::Skipped));
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_starts_no_more_hosts_of_a_group_step() {
        let run = run(
            "  - { id: a, on: g, max_parallel: 2, run: ms=1000 }\n",
            Setup {
                interrupts: vec![Duration::from_millis(500)],
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Interrupted);
        let hosts: Vec<String> = run.fake.ran().into_iter().map(|r| r.host).collect();
        assert_eq!(hosts.len(), 2, "{hosts:?}");
        assert_eq!(status(&run, "a"), None);
        assert_eq!(run.finished.not_run, ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn steps_left_out_by_only_do_not_block_their_dependents() {
        let steps = concat!(
            "  - { id: drill-only, on: h1, only: drill, run: x }\n",
            "  - { id: real-only, on: h1, only: real, run: x }\n",
            "  - { id: last, on: h1, run: x }\n",
        );
        let real = run(steps, Setup::default()).await;
        assert_eq!(real.finished.status, RunStatus::Succeeded);
        assert_eq!(real.fake.ran_steps(), ["real-only", "last"]);
        assert_eq!(status(&real, "drill-only"), Some(StepStatus::Skipped));

        let drill = run(
            steps,
            Setup {
                mode: Mode::Drill,
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(drill.finished.status, RunStatus::Succeeded);
        assert_eq!(drill.fake.ran_steps(), ["drill-only", "last"]);
        assert_eq!(status(&drill, "real-only"), Some(StepStatus::Skipped));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unapproved_gate_pauses_and_held_steps_are_listed_as_not_run() {
        let run = run(
            concat!(
                "  - { id: gate, needs: [], approve: go? }\n",
                "  - { id: after-gate, on: h1, run: x }\n",
                "  - { id: busy, on: h2, needs: [], run: ms=300 }\n",
                "  - { id: after-busy, on: h2, run: x }\n",
            ),
            Setup::default(),
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Paused);
        // `busy` was running when the gate paused the run: it finishes; what it unblocks
        // is held for the resume.
        assert_eq!(run.fake.ran_steps(), ["busy"]);
        assert_eq!(run.finished.not_run, ["gate", "after-gate", "after-busy"]);
        assert!(
            run.state
                .paused
                .as_deref()
                .unwrap()
                .contains("--approve gate")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn approvals_given_ahead_pass_the_gate() {
        let steps = "  - { id: gate, approve: go? }\n  - { id: after, on: h1, run: x }\n";
        for approvals in [
            Approvals::All,
            Approvals::Steps(BTreeSet::from(["gate".to_string()])),
        ] {
            let run = run(
                steps,
                Setup {
                    approvals,
                    ..Setup::default()
                },
            )
            .await;
            assert_eq!(run.finished.status, RunStatus::Succeeded);
            assert_eq!(run.fake.ran_steps(), ["after"]);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_interrupt_lets_running_steps_finish_and_starts_nothing_new() {
        let run = run(
            "  - { id: a, on: h1, run: ms=1000 }\n  - { id: b, on: h1, run: x }\n",
            Setup {
                interrupts: vec![Duration::from_millis(500)],
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Interrupted);
        assert_eq!(status(&run, "a"), Some(StepStatus::Succeeded));
        assert_eq!(run.finished.not_run, ["b"]);
        assert_eq!(run.fake.ran_steps(), ["a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_during_the_last_step_loses_nothing() {
        let run = run(
            "  - { id: a, on: h1, run: ms=1000 }\n",
            Setup {
                interrupts: vec![Duration::from_millis(500)],
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Succeeded);
        assert!(run.finished.not_run.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_cuts_a_retry_wait_short() {
        let started = VirtualInstant::now();
        let run = run(
            "  - { id: a, on: h1, run: exit=1, retry: { attempts: 5, delay: 1h } }\n  - { id: b, on: h1, run: x }\n",
            Setup {
                interrupts: vec![Duration::from_mins(1)],
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(
            run.finished.status,
            RunStatus::Interrupted,
            "{:#?}",
            run.events
        );
        assert_eq!(run.fake.ran().len(), 1);
        assert!(started.elapsed() < Duration::from_mins(2));
        // Neither failed nor done: resume takes up its retries.
        assert_eq!(status(&run, "a"), None);
        assert_eq!(run.finished.not_run, ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn two_interrupts_stop_running_steps_at_once() {
        let started = VirtualInstant::now();
        let run = run(
            "  - { id: a, on: h1, run: ms=600000 }\n  - { id: b, on: h1, run: x }\n",
            Setup {
                interrupts: vec![Duration::from_secs(1), Duration::from_secs(1)],
                ..Setup::default()
            },
        )
        .await;
        assert_eq!(run.finished.status, RunStatus::Interrupted);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(run.fake.ran().is_empty());
        assert!(run.state.steps["a"].hosts["h1"].in_flight);
        assert_eq!(run.finished.not_run, ["a", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn group_output_reaches_later_steps_per_host() {
        let run = run(
            "  - { id: a, on: g, run: x }\n  - { id: b, on: g, run: \"echo {{ steps.a.stdout }}\" }\n",
            Setup::default(),
        )
        .await;
        let started: Vec<(String, String)> = run
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StepStarted { command, .. } if e.step.as_deref() == Some("b") => {
                    Some((e.host.clone()?, command.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(started.len(), 6);
        for (host, command) in started {
            assert_eq!(command, format!("echo out-{host}"));
        }
    }
}
