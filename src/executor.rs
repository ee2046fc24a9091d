//! Runs a `Plan`: steps start as soon as their needs are met, within the global and
//! per-step limits; group steps fan out per host; retries, timeouts, approvals, `when`
//! handlers and cancellation. It never prints: everything it does is an `Event` given to
//! the `Sink`, which journals it (durably, before the executor acts on it), folds it into
//! the run state, and passes it to observers (progress display, logs).

use std::collections::{BTreeMap, BTreeSet};
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
use crate::transport::{BoxFuture, Command, Output, Transport};

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

    /// Records an event. Returns only once it is on disk: the caller may then act on it.
    pub async fn emit(&self, event: Event) -> std::io::Result<()> {
        let event = redact_event(&self.redactor, event);
        if let Some(journal) = &self.journal {
            journal.append(&event).await?;
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
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    #[must_use]
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }
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
        let initial = self.runner.sink.state();
        // A step is settled once it has a final status this run can build on.
        let mut status: Vec<Option<StepStatus>> = plan
            .steps
            .iter()
            .map(|s| {
                initial
                    .status_of(s.id())
                    .filter(|st| *st == StepStatus::Succeeded)
            })
            .collect();
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
        let mut held: Vec<usize> = Vec::new();
        let mut tasks: JoinSet<(usize, StepEnd)> = JoinSet::new();
        let (mut failing, mut paused, mut draining, mut forced) = (false, false, false, false);
        let mut internal_error = None;

        loop {
            while let Some(i) = ready.pop() {
                if paused || draining || internal_error.is_some() {
                    held.push(i);
                    continue;
                }
                match self.runner.decide(i, &status, &transparent, failing) {
                    Decision::Start => {
                        let executor = self.runner.clone();
                        tasks.spawn(async move { (i, executor.run_step(i).await) });
                    }
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
                            held.push(i);
                            continue;
                        }
                        status[i] = Some(StepStatus::Skipped);
                        transparent[i] = passes;
                        release(i, &dependents, &mut waiting, &status, &mut ready);
                    }
                }
            }
            if tasks.is_empty() {
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
                        StepEnd::Paused => {
                            paused = true;
                            held.push(i);
                        }
                        StepEnd::JournalFailed(message) => {
                            internal_error = Some(message);
                            held.push(i);
                        }
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

        let run_status = if forced || draining {
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
        let mut not_run: Vec<String> = (0..n)
            .filter(|&i| status[i].is_none())
            .map(|i| plan.steps[i].id().to_string())
            .collect();
        not_run.sort_by_key(|id| plan.index_of(id));
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

/// The value of a template reference for a command on `host`.
fn resolve_reference(
    plan: &Plan,
    state: &RunState,
    options: &RunOptions,
    host: Option<&Host>,
    reference: &Reference,
) -> Option<String> {
    match reference {
        Reference::Var(name) => plan.vars.get(name).cloned(),
        Reference::Secret(name) => options.secrets.get(name).cloned(),
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
        let state = self.sink.state();
        let hosts: Vec<Option<&Host>> = if step.hosts.is_empty() {
            vec![None]
        } else {
            step.hosts.iter().map(Some).collect()
        };
        let holds = hosts.iter().any(|host| {
            let resolve =
                |r: &Reference| resolve_reference(&self.plan, &state, &self.options, *host, r);
            when.eval(&resolve)
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
        let state = self.sink.state();
        let question = step.question.as_ref().map_or_else(String::new, |q| {
            let resolve =
                |r: &Reference| resolve_reference(&self.plan, &state, &self.options, None, r);
            q.render(Quoting::Plain, &resolve)
                .unwrap_or_else(|_| step.step.id.value.clone())
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
                return self.complete(id, StepStatus::Succeeded).await;
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
                self.complete(id, StepStatus::Succeeded).await
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

    async fn complete(&self, id: &str, status: StepStatus) -> Result<StepEnd, String> {
        let checkpoint = self
            .plan
            .steps
            .iter()
            .find(|s| s.id() == id)
            .and_then(|s| s.step.checkpoint.clone());
        self.emit(id, None, EventKind::StepCompleted { status, checkpoint })
            .await?;
        Ok(StepEnd::Completed(status))
    }

    async fn run_command_step(&self, i: usize) -> Result<StepEnd, String> {
        let step = self.step(i);
        let id = step.id();
        let state = self.sink.state();
        // On resume, hosts that already succeeded are done; only the others run.
        let done_hosts: BTreeSet<&str> = state
            .steps
            .get(id)
            .map(|s| {
                s.hosts
                    .iter()
                    .filter(|(_, h)| h.outcome == Some(Outcome::Succeeded))
                    .map(|(name, _)| name.as_str())
                    .collect()
            })
            .unwrap_or_default();
        let hosts: Vec<&Host> = step
            .hosts
            .iter()
            .filter(|h| !done_hosts.contains(h.name.as_str()))
            .filter(|h| {
                step.when.as_ref().is_none_or(|when| {
                    let resolve = |r: &Reference| {
                        resolve_reference(&self.plan, &state, &self.options, Some(h), r)
                    };
                    when.eval(&resolve)
                })
            })
            .collect();
        let step_limit = Arc::new(Semaphore::new(
            step.step
                .max_parallel
                .map_or(usize::MAX >> 4, |n| n as usize),
        ));
        let mut runs = JoinSet::new();
        for host in hosts {
            let host = host.clone();
            let runner = self.clone();
            let step_limit = Arc::clone(&step_limit);
            runs.spawn(async move {
                let Ok(_step_permit) = step_limit.acquire_owned().await else {
                    return Err("the step's limit was closed".to_string());
                };
                let Ok(_global_permit) = Arc::clone(&runner.global_limit).acquire_owned().await
                else {
                    return Err("the run's limit was closed".to_string());
                };
                runner.run_on_host(i, &host).await
            });
        }
        let mut failures = 0u32;
        let mut journal_error = None;
        while let Some(joined) = runs.join_next().await {
            match joined {
                Ok(Ok(Outcome::Succeeded)) => {}
                Ok(Ok(Outcome::Failed)) => failures += 1,
                Ok(Err(e)) => journal_error = Some(e),
                Err(e) => {
                    // A host task panicked or was aborted: never counted as success.
                    failures += 1;
                    tracing::error!(step = id, "host task ended abnormally: {e}");
                }
            }
        }
        if let Some(e) = journal_error {
            return Err(e);
        }
        let status = if failures > step.step.max_failures {
            StepStatus::Failed
        } else {
            StepStatus::Succeeded
        };
        self.complete(id, status).await
    }

    fn render(&self, template: &Template, host: &Host) -> Result<String, String> {
        let state = self.sink.state();
        let resolve =
            |r: &Reference| resolve_reference(&self.plan, &state, &self.options, Some(host), r);
        template
            .render(Quoting::Shell, &resolve)
            .map_err(|missing| format!("`{missing}` has no value"))
    }

    fn command(&self, script: String, step: &PlannedStep, host: &Host) -> Command {
        Command {
            script,
            env: vec![
                ("RUNBOOK_RUN_ID".into(), self.options.run_id.clone()),
                ("RUNBOOK_STEP".into(), step.id().to_string()),
                ("RUNBOOK_HOST".into(), host.name.clone()),
                ("RUNBOOK_MODE".into(), self.options.mode.env_value().into()),
            ],
            timeout: step.timeout,
        }
    }

    /// One host's part of a step: attempts with retry, each journaled before it is sent.
    async fn run_on_host(&self, i: usize, host: &Host) -> Result<Outcome, String> {
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
                    return Ok(Outcome::Failed);
                }
            };
            self.emit(
                id,
                Some(&host.name),
                EventKind::StepStarted {
                    attempt,
                    command: script.clone(),
                    simulated,
                },
            )
            .await?;
            let started = Instant::now();
            let command = self.command(script, step, host);
            let result = transport.run(host, &command).await;
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
                return Ok(outcome);
            }
            if attempt < attempts {
                if *self.shutdown.borrow() > 0 {
                    // Ctrl-C: start nothing new, not even a retry; resume will retry.
                    break;
                }
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                self.emit(
                    id,
                    Some(&host.name),
                    EventKind::StepRetrying { attempt, delay_ms },
                )
                .await?;
                tokio::time::sleep(delay).await;
                delay = delay
                    .mul_f64(step.retry.backoff)
                    .min(Duration::from_hours(1));
            }
        }
        Ok(Outcome::Failed)
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
        self.emit(
            id,
            Some(&host.name),
            EventKind::StepFinished {
                attempt,
                outcome: f.outcome,
                exit_code: f.output.exit_code,
                timed_out: f.output.timed_out,
                error: f.error,
                stdout: tail(&f.output.stdout, STDOUT_KEPT),
                stderr: tail(&f.output.stderr, STDERR_KEPT),
                duration_ms,
                simulated,
            },
        )
        .await
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
