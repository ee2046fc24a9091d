//! `resume RUN_ID`: continue a run exactly where its journal says it stopped.
//!
//! Succeeded steps (and succeeded hosts of group steps) never run again. A command that was
//! in flight when the run died has an unknown outcome: its `verify` decides, else
//! `idempotent: true` allows running it again, else the operator must choose (`--rerun` or
//! `--mark-done`) and the run pauses until they do. The runbook and inventory are re-read
//! from their original paths: fixing a step that has not succeeded yet is allowed (and
//! journaled); changing one that already succeeded is refused unless `--force`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::event::{Decision, Event, EventKind, Mode, Outcome, RunStatus, StepStatus};
use crate::executor::{Approvals, resolve_reference, step_command};
use crate::host_info;
use crate::inventory::{Host, Inventory};
use crate::journal::{Integrity, JournalWriter};
use crate::plan::{self, Plan};
use crate::session::{Opening, Session, lock_for};
use crate::source::Source;
use crate::state::RunState;
use crate::status::integrity_text;
use crate::store::{RunDir, Store, write_durably};
use crate::template::{Quoting, Reference};
use crate::transport::Transport;
use crate::{load, runbook, yaml};

/// What `runbook resume` was asked.
pub struct ResumeRequest {
    pub store: Store,
    pub run_id: String,
    pub yes: bool,
    pub approve: Vec<String>,
    pub rerun: Vec<String>,
    pub mark_done: Vec<String>,
    pub secrets_file: Option<std::path::PathBuf>,
    pub force: bool,
    pub transport: Arc<dyn Transport>,
    pub color: bool,
}

/// The runbook and inventory a resumed run continues with.
pub struct Loaded {
    pub plan: Plan,
    pub runbook: Source,
    pub inventory: Source,
    pub inventory_model: Inventory,
}

/// The run's plan from its own copies of the runbook and inventory: what actually ran.
pub fn load_copies(run: &RunDir, sources: &mut Vec<Source>) -> Result<Plan, Error> {
    load_inputs(run, sources, false).map(|loaded| loaded.plan)
}

/// Reads the run's runbook and inventory: with `originals`, from their original paths if
/// they still exist, else (and always without) the run's copies. `sources` receives what
/// was read, for error rendering.
pub fn load_inputs(
    run: &RunDir,
    sources: &mut Vec<Source>,
    originals: bool,
) -> Result<Loaded, Error> {
    let inputs = run.inputs()?;
    let read = |original: Option<&Path>, copy: std::path::PathBuf| match original {
        Some(path) if originals && path.is_file() => load::source(path),
        _ => read_copy(&copy, original),
    };
    let inventory_source = read(inputs.inventory_path.as_deref(), run.inventory_copy())
        .map_err(|d| Error::Invalid(vec![d]))?;
    let inventory = Inventory::load(&inventory_source, ssh_config().as_deref());
    sources.push(inventory_source.clone());
    let inventory = inventory.map_err(Error::Invalid)?;
    let runbook_source = read(Some(&inputs.runbook_path), run.runbook_copy())
        .map_err(|d| Error::Invalid(vec![d]))?;
    sources.push(runbook_source.clone());
    let (parsed, mut diagnostics) = runbook::parse(&runbook_source);
    let planned = parsed.and_then(|parsed| {
        let inputs_for_plan = plan::Inputs {
            source: &runbook_source,
            inventory: Some(&inventory),
            vars: &inputs.vars,
        };
        let (plan, more) = plan::plan(parsed, &inputs_for_plan);
        diagnostics.extend(more);
        plan
    });
    let Some(plan) = planned else {
        return Err(Error::Invalid(diagnostics));
    };
    Ok(Loaded {
        plan,
        runbook: runbook_source,
        inventory: inventory_source,
        inventory_model: inventory,
    })
}

/// Reads a run's copy of a file under the name of its original: relative paths in an
/// inventory (`runbook_workdir`, key files) are relative to where the original lives, not
/// to the run folder, so the copy must resolve them the same way.
fn read_copy(
    copy: &Path,
    original: Option<&Path>,
) -> Result<Source, crate::diagnostic::Diagnostic> {
    let text = load::source(copy)?.text;
    Ok(Source::new(original.unwrap_or(copy), text))
}

fn ssh_config() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".ssh/config"))
        .filter(|p| p.exists())
}

/// Which steps differ between two versions of a runbook (and its hosts between two
/// inventories). A change to `vars` or `defaults` counts as a change to every step.
pub fn changed_steps(
    old: &Source,
    new: &Source,
    old_inventory: Option<&Inventory>,
    new_plan: &Plan,
) -> BTreeSet<String> {
    let steps_of = |source: &Source| -> (BTreeMap<String, serde_json::Value>, serde_json::Value) {
        let Ok(root) = yaml::parse(&source.text) else {
            return (BTreeMap::new(), serde_json::Value::Null);
        };
        let shared = serde_json::json!({
            "vars": root.get("vars").map(yaml::Node::to_json),
            "defaults": root.get("defaults").map(yaml::Node::to_json),
        });
        let steps = root
            .get("steps")
            .and_then(yaml::Node::as_seq)
            .unwrap_or_default()
            .iter()
            .filter_map(|step| Some((step.get("id")?.as_scalar()?, step.to_json())))
            .collect();
        (steps, shared)
    };
    let (old_steps, old_shared) = steps_of(old);
    let (new_steps, new_shared) = steps_of(new);
    let mut changed = BTreeSet::new();
    let all: BTreeSet<&String> = old_steps.keys().chain(new_steps.keys()).collect();
    for id in all {
        if old_shared != new_shared || old_steps.get(id) != new_steps.get(id) {
            changed.insert(id.clone());
        }
    }
    if let Some(old_inventory) = old_inventory {
        for step in &new_plan.steps {
            let crate::runbook::Action::Run { on, .. } = &step.step.action else {
                continue;
            };
            let before: Vec<&Host> = old_inventory.resolve(&on.value).unwrap_or_default();
            let after: Vec<&Host> = step.hosts.iter().map(|h| &**h).collect();
            if before != after {
                changed.insert(step.id().to_string());
            }
        }
    }
    changed
}

/// `runbook resume RUN_ID`.
pub fn resume(request: ResumeRequest, sources: &mut Vec<Source>) -> Result<(), Error> {
    let ResumeRequest {
        store,
        run_id,
        yes,
        approve,
        rerun,
        mark_done,
        secrets_file,
        force,
        transport,
        color,
    } = request;
    let run = store.open_run(&run_id)?;
    let inputs = run.inputs()?;
    // Killed between writing its inputs and its journal: the run never started a step.
    if !run.journal().exists() {
        JournalWriter::create(&run.journal()).map_err(|e| {
            Error::Internal(format!(
                "cannot create the journal {}: {e}",
                run.journal().display()
            ))
        })?;
    }
    let (events, integrity) = run.read_journal()?;
    let never_started = !events
        .iter()
        .any(|e| matches!(e.kind, EventKind::RunStarted { .. }));
    if let Integrity::Broken { .. } = integrity
        && !force
    {
        return Err(Error::Usage(format!(
            "the journal of run {run_id} is {}: it may have been edited or damaged. Check it (`runbook status {run_id}`); to continue anyway, `runbook resume {run_id} --force` (journaled)",
            integrity_text(&integrity)
        )));
    }
    let state = RunState::from_events(&events);
    if state.finished == Some(RunStatus::Succeeded) {
        println!("run {run_id} already succeeded: nothing to resume");
        return Ok(());
    }
    let loaded = load_inputs(&run, sources, true)?;
    let plan = loaded.plan;
    for id in &approve {
        if !plan
            .steps
            .iter()
            .any(|s| s.id() == id && s.question.is_some())
        {
            return Err(Error::Usage(format!(
                "--approve {id}: the runbook has no approval step `{id}`"
            )));
        }
    }
    for choice in rerun.iter().chain(&mark_done) {
        check_choice(&plan, choice)?;
    }
    if let Some(both) = rerun.iter().find(|c| mark_done.contains(c)) {
        return Err(Error::Usage(format!(
            "`{both}` is given to both --rerun and --mark-done: choose one"
        )));
    }

    // Changes since the run started: allowed on steps not yet succeeded, refused otherwise.
    let old_runbook = load::source(&run.runbook_copy()).map_err(|d| Error::Invalid(vec![d]))?;
    let old_inventory = read_copy(&run.inventory_copy(), inputs.inventory_path.as_deref())
        .ok()
        .and_then(|source| Inventory::load(&source, ssh_config().as_deref()).ok());
    let changed = changed_steps(&old_runbook, &loaded.runbook, old_inventory.as_ref(), &plan);
    let succeeded: BTreeSet<&str> = state
        .steps
        .iter()
        .filter(|(_, s)| {
            s.status == Some(StepStatus::Succeeded)
                || s.hosts
                    .values()
                    .any(|h| h.outcome == Some(Outcome::Succeeded))
        })
        .map(|(id, _)| id.as_str())
        .collect();
    let refused: Vec<&str> = changed
        .iter()
        .map(String::as_str)
        .filter(|id| succeeded.contains(id))
        .collect();
    if !refused.is_empty() && !force {
        return Err(Error::Usage(format!(
            "{} changed since run {run_id} started, in step(s) that already succeeded: {}. Undo the change, or accept it with `runbook resume {run_id} --force` (journaled)",
            loaded.runbook.path.display(),
            refused.join(", ")
        )));
    }

    let secrets = crate::secrets::for_plan(&plan, secrets_file.as_deref(), inputs.mode)?;
    let _lock = lock_for(
        inputs.mode,
        &store,
        &inputs.runbook,
        &run_id,
        inputs.reason.as_deref(),
    )?;

    // Settle every command whose outcome is unknown, or pause for the operator.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the runtime: {e}")))?;
    let in_flight: Vec<(String, String)> = state
        .steps
        .iter()
        .flat_map(|(id, s)| {
            s.hosts
                .iter()
                .filter(|(_, h)| h.in_flight)
                .map(move |(host, _)| (id.clone(), host.clone()))
        })
        .collect();
    let (user, machine) = (host_info::current_user(), host_info::hostname());
    let mut decisions = Vec::new();
    let mut undecided = BTreeSet::new();
    for (id, host_name) in &in_flight {
        let Some(step) = plan.index_of(id).map(|i| &plan.steps[i]) else {
            // The step was removed from the runbook: nothing to continue.
            continue;
        };
        let host = step.hosts.iter().find(|h| &h.name == host_name);
        let decision = if chosen(&mark_done, id, host_name) {
            Some((
                Decision::MarkDone,
                Outcome::Succeeded,
                "marked done by the operator".to_string(),
            ))
        } else if chosen(&rerun, id, host_name) {
            Some((
                Decision::Rerun,
                Outcome::Failed,
                "outcome unknown: run again on the operator's decision".to_string(),
            ))
        } else if let (Some(verify), Some(host)) = (&step.verify, host) {
            let passed = runtime.block_on(run_verify(
                &plan,
                &state,
                &secrets,
                &run_id,
                inputs.mode,
                step,
                verify,
                host,
                &*transport,
            ));
            Some(match passed {
                Ok(()) => (
                    Decision::VerifiedDone,
                    Outcome::Succeeded,
                    "outcome unknown; its verify passes: done".to_string(),
                ),
                Err(why) => (
                    Decision::VerifiedNotDone,
                    Outcome::Failed,
                    format!("outcome unknown; its verify fails ({why}): run again"),
                ),
            })
        } else if step.step.idempotent {
            Some((
                Decision::Idempotent,
                Outcome::Failed,
                "outcome unknown; idempotent: run again".to_string(),
            ))
        } else {
            None
        };
        let Some((decision, outcome, error)) = decision else {
            undecided.insert((id.clone(), host_name.clone(), step.hosts.len() > 1));
            continue;
        };
        let host_ref = (!host_name.is_empty()).then_some(host_name.as_str());
        decisions.push(Event::now(
            Some(id),
            host_ref,
            EventKind::Decision {
                decision,
                user: user.clone(),
                machine: machine.clone(),
            },
        ));
        decisions.push(Event::now(
            Some(id),
            host_ref,
            EventKind::StepFinished {
                attempt: state.steps[id].hosts[host_name].attempts,
                outcome,
                exit_code: None,
                timed_out: false,
                error: Some(error),
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 0,
                simulated: false,
            },
        ));
    }
    let changed_steps: Vec<String> = changed.into_iter().collect();
    let mut journal = JournalWriter::open_append(&run.journal()).map_err(|e| {
        Error::Internal(format!(
            "cannot open the journal {}: {e}",
            run.journal().display()
        ))
    })?;
    if !undecided.is_empty() {
        // A group step names its hosts: each may have got further than the others.
        let ids: Vec<String> = undecided
            .iter()
            .map(|(id, host, group)| {
                if *group {
                    format!("{id}@{host}")
                } else {
                    id.clone()
                }
            })
            .collect();
        let reason = format!(
            "{} {} running when the run stopped; without `verify` and not idempotent, whether it took effect is unknown. Check on the host, then `runbook resume {run_id} --mark-done {}` (it took effect) or `--rerun {}` (run it again); on a group step, STEP@HOST decides for one host",
            ids.join(", "),
            if ids.len() == 1 { "was" } else { "were" },
            ids[0],
            ids[0],
        );
        let events = [
            Event::now(
                None,
                None,
                EventKind::RunResumed {
                    operator: user.clone(),
                    machine: machine.clone(),
                    reason: None,
                    forced: force,
                    changed_steps,
                },
            ),
            Event::now(
                None,
                None,
                EventKind::RunPaused {
                    reason: reason.clone(),
                },
            ),
            Event::now(
                None,
                None,
                EventKind::RunFinished {
                    status: RunStatus::Paused,
                    duration_ms: 0,
                },
            ),
        ];
        for event in decisions.iter().chain(&events) {
            journal.append(event).map_err(|e| {
                Error::Internal(format!(
                    "cannot write the journal {}: {e}",
                    run.journal().display()
                ))
            })?;
        }
        return Err(Error::Paused(reason));
    }
    drop(runtime);

    // The copies now describe what the run continues with.
    if !changed_steps.is_empty() {
        let write = |path: std::path::PathBuf, bytes: &[u8]| {
            write_durably(&path, bytes)
                .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))
        };
        write(run.runbook_copy(), loaded.runbook.text.as_bytes())?;
        write(run.inventory_copy(), loaded.inventory.text.as_bytes())?;
    }
    let approvals = if yes {
        Approvals::All
    } else {
        Approvals::Steps(approve.into_iter().collect())
    };
    let session = Session {
        store,
        run,
        mode: inputs.mode,
        max_parallel: inputs.max_parallel,
        approvals,
        secrets,
        reason: inputs.reason,
        transport,
        color,
        step_by_step: false,
    };
    let opening = if never_started {
        Opening::Started {
            runbook_file: inputs.runbook_path.display().to_string(),
            inventory: inputs
                .inventory_path
                .as_ref()
                .map(|p| p.display().to_string()),
        }
    } else {
        Opening::Resumed {
            forced: force,
            changed_steps,
            decisions,
        }
    };
    session.execute(plan, state, opening, journal)
}

/// Whether `--rerun`/`--mark-done` chose this step on this host: `STEP` covers every
/// host of the step, `STEP@HOST` one host.
fn chosen(choices: &[String], step: &str, host: &str) -> bool {
    choices
        .iter()
        .any(|c| c == step || c.split_once('@') == Some((step, host)))
}

/// A `--rerun`/`--mark-done` value must name a step (and, with `@HOST`, one of its hosts).
fn check_choice(plan: &Plan, choice: &str) -> Result<(), Error> {
    let (id, host) = match choice.split_once('@') {
        Some((id, host)) => (id, Some(host)),
        None => (choice, None),
    };
    let Some(step) = plan.index_of(id).map(|i| &plan.steps[i]) else {
        let hint = crate::diagnostic::did_you_mean(
            id,
            plan.steps.iter().map(crate::plan::PlannedStep::id),
        )
        .map(|best| format!("; did you mean `{best}`?"))
        .unwrap_or_default();
        return Err(Error::Usage(format!(
            "`{id}` is not a step of {}{hint}",
            plan.runbook.name.value
        )));
    };
    if let Some(host) = host
        && !step.hosts.iter().any(|h| h.name == host)
    {
        let names: Vec<&str> = step.hosts.iter().map(|h| h.name.as_str()).collect();
        return Err(Error::Usage(format!(
            "`{choice}`: step `{id}` does not run on `{host}`; its hosts: {}",
            names.join(", ")
        )));
    }
    Ok(())
}

/// Runs a step's `verify` on one host, with the values the run had; `Err` says why it
/// does not pass.
#[allow(clippy::too_many_arguments)]
async fn run_verify(
    plan: &Plan,
    state: &RunState,
    secrets: &BTreeMap<String, String>,
    run_id: &str,
    mode: Mode,
    step: &crate::plan::PlannedStep,
    verify: &crate::template::Template,
    host: &Host,
    transport: &dyn Transport,
) -> Result<(), String> {
    let resolve = |r: &Reference| resolve_reference(plan, state, secrets, Some(host), r);
    let script = verify
        .render(Quoting::Shell, &resolve)
        .map_err(|missing| format!("`{missing}` has no value"))?;
    let command = step_command(script, run_id, mode, step, host);
    match transport.run(host, &command).await {
        Ok(output) if output.succeeded() => Ok(()),
        Ok(output) => Err(output
            .exit_code
            .map_or_else(|| "killed or timed out".into(), |c| format!("exit {c}"))),
        Err(e) => Err(e.to_string()),
    }
}
