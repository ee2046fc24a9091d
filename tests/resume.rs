//! Checkpoints and resume as an operator meets them (SPEC §6): damaged journals, approvals,
//! decisions on in-flight steps, runbooks fixed between attempts, group steps retried on
//! their failed hosts only, rollback, and what `status` and `runs` report.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::Test;

const INVENTORY: &str = r"all:
  vars: { runbook_transport: local }
  children:
    web:
      hosts:
        h1: { runbook_workdir: h1 }
        h2: { runbook_workdir: h2 }
        h3: { runbook_workdir: h3 }
";

/// A folder with the inventory, host folders and `rb.yaml`.
fn setup(runbook: &str) -> Test {
    let test = Test::new();
    test.file("inv.yaml", INVENTORY);
    for host in ["h1", "h2", "h3"] {
        std::fs::create_dir_all(test.path().join(host)).unwrap();
    }
    test.file("rb.yaml", runbook);
    test
}

fn run(test: &Test, id: &str, extra: &[&str]) -> support::Outcome {
    let mut args = vec![
        "--state-dir",
        "st",
        "run",
        "rb.yaml",
        "-i",
        "inv.yaml",
        "--run-id",
        id,
    ];
    args.extend_from_slice(extra);
    test.run(args)
}

fn rb(test: &Test, args: &[&str]) -> support::Outcome {
    let mut all = vec!["--state-dir", "st"];
    all.extend_from_slice(args);
    test.run(all)
}

fn journal(test: &Test, id: &str) -> Vec<Value> {
    std::fs::read_to_string(test.path().join(format!("st/runs/{id}/journal.jsonl")))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn events<'a>(journal: &'a [Value], kind: &str) -> Vec<&'a Value> {
    journal.iter().filter(|e| e["event"] == kind).collect()
}

fn lines(test: &Test, file: &str) -> Vec<String> {
    std::fs::read_to_string(test.path().join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn status_json(test: &Test, id: &str) -> Value {
    let out = rb(test, &["status", id, "--format", "json"]);
    out.expect_code(0);
    serde_json::from_str(&out.stdout).unwrap()
}

/// An approval gate, then a step on h2 that appends to `effects`.
const GATED: &str = r"name: gated
defaults: { timeout: 10s }
steps:
  - id: gate
    approve: Go?
  - id: after
    on: h2
    run: echo after >> effects
    rollback: 'true'
";

const FAILING: &str = r"name: fixme
defaults: { timeout: 10s }
steps:
  - id: first
    on: h1
    run: echo first >> effects
    rollback: 'true'
  - id: broken
    on: h1
    run: exit 1
    rollback: 'true'
";

#[test]
fn a_torn_last_line_is_reported_and_ignored_and_resume_continues() {
    let test = setup(FAILING);
    run(&test, "r", &[]).expect_code(1);
    let path = test.path().join("st/runs/r/journal.jsonl");
    let mut bytes = std::fs::read_to_string(&path).unwrap();
    bytes.push_str(r#"{"at":"2026-01-01T00:00:00.000Z","step":"bro"#);
    std::fs::write(&path, bytes).unwrap();
    rb(&test, &["status", "r"])
        .expect_code(0)
        .stdout_contains("torn last line");
    assert_eq!(
        status_json(&test, "r")["journal"]["integrity"]["state"],
        "torn-tail"
    );
    test.file(
        "rb.yaml",
        FAILING.replace("exit 1", "echo fixed >> effects"),
    );
    rb(&test, &["resume", "r"]).expect_code(0);
    assert_eq!(lines(&test, "h1/effects"), ["first", "fixed"]);
    assert_eq!(
        status_json(&test, "r")["journal"]["integrity"]["state"],
        "intact"
    );
}

#[test]
fn a_tampered_line_is_damaged_and_resume_refuses_it_unless_forced() {
    let test = setup(FAILING);
    run(&test, "r", &[]).expect_code(1);
    let path = test.path().join("st/runs/r/journal.jsonl");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut l: Vec<String> = original.lines().map(str::to_string).collect();
    assert!(l[2].contains("\"exit_code\":0"), "{}", l[2]);
    l[2] = l[2].replace("\"exit_code\":0", "\"exit_code\":7");
    std::fs::write(&path, l.join("\n") + "\n").unwrap();

    let out = rb(&test, &["status", "r"]);
    out.expect_code(0).stdout_contains("DAMAGED at line 3");
    let integrity = &status_json(&test, "r")["journal"]["integrity"];
    assert_eq!(integrity["state"], "damaged");
    assert_eq!(integrity["line"], 3);
    rb(&test, &["runs"])
        .expect_code(0)
        .stdout_contains("DAMAGED");

    test.file("rb.yaml", FAILING.replace("exit 1", "true"));
    rb(&test, &["resume", "r"])
        .expect_code(2)
        .stderr_contains("DAMAGED at line 3")
        .stderr_contains("--force");
    assert!(events(&journal(&test, "r"), "run_resumed").is_empty());
    rb(&test, &["resume", "r", "--force"]).expect_code(0);
    let resumed = events(&journal(&test, "r"), "run_resumed")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["forced"], true);
}

#[test]
fn a_paused_approval_continues_with_approve_and_records_who() {
    let test = setup(GATED);
    run(&test, "r", &[])
        .expect_code(3)
        .stderr_contains("resume r --approve gate");
    assert_eq!(status_json(&test, "r")["state"], "paused");
    rb(&test, &["resume", "r"]).expect_code(3);
    rb(&test, &["resume", "r", "--approve", "nope"]).expect_code(2);
    rb(&test, &["resume", "r", "--approve", "gate"]).expect_code(0);
    assert_eq!(lines(&test, "h2/effects"), ["after"]);
    let j = journal(&test, "r");
    let approved = events(&j, "approved");
    assert_eq!(approved.len(), 1);
    assert!(!approved[0]["user"].as_str().unwrap().is_empty());
    assert!(!approved[0]["machine"].as_str().unwrap().is_empty());
}

/// Starts the tool, waits until `step` is journaled as started for the `nth` time, then kills the tool and the
/// step's command (a power cut): the step is in flight and did nothing.
fn kill_in_flight(test: &Test, args: &[&str], id: &str, step: &str, nth: usize) {
    let mut all = vec!["--state-dir", "st"];
    all.extend_from_slice(args);
    let mut child = test
        .command(all)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let path = test.path().join(format!("st/runs/{id}/journal.jsonl"));
    loop {
        let started = std::fs::read_to_string(&path).is_ok_and(|t| {
            t.lines()
                .filter(|l| {
                    l.contains("step_started") && l.contains(&format!("\"step\":\"{step}\""))
                })
                .count()
                >= nth
        });
        if started {
            break;
        }
        assert!(Instant::now() < deadline, "{step} never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    kill_commands_under(test.path());
}

/// Kills processes working in a folder under `dir` (the step commands a killed tool left).
fn kill_commands_under(dir: &Path) {
    let root = dir.canonicalize().unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd"))
            .is_ok_and(|c| c.starts_with(&root) && c != root)
        {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
    }
}

#[test]
fn rerun_and_mark_done_settle_in_flight_steps_and_are_journaled_with_who_decided() {
    let test = setup(
        r"name: slow
defaults: { timeout: 60s }
steps:
  - id: slow
    on: h1
    run: sleep 30; echo slow >> effects
    rollback: 'true'
  - id: after
    on: h1
    run: echo after >> effects
    rollback: 'true'
",
    );
    kill_in_flight(
        &test,
        &["run", "rb.yaml", "-i", "inv.yaml", "--run-id", "r"],
        "r",
        "slow",
        1,
    );
    rb(&test, &["status", "r"])
        .stdout_contains("unfinished")
        .stdout_contains("IN-FLIGHT");
    rb(&test, &["resume", "r"])
        .expect_code(3)
        .stderr_contains("--mark-done slow")
        .stderr_contains("--rerun slow");
    rb(&test, &["resume", "r", "--rerun", "nosuch"])
        .expect_code(2)
        .stderr_contains("not a step");
    // Rerun it, and lose it in flight again.
    kill_in_flight(&test, &["resume", "r", "--rerun", "slow"], "r", "slow", 2);
    let j = journal(&test, "r");
    let decisions = events(&j, "decision");
    assert_eq!(decisions.len(), 1, "{decisions:?}");
    assert_eq!(decisions[0]["decision"], "rerun");
    assert_eq!(decisions[0]["step"], "slow");
    assert!(!decisions[0]["user"].as_str().unwrap().is_empty());
    assert_eq!(events(&j, "step_started").len(), 2);
    // The operator checked: it took effect this time.
    rb(&test, &["resume", "r", "--mark-done", "slow"]).expect_code(0);
    let j = journal(&test, "r");
    let decisions = events(&j, "decision");
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[1]["decision"], "mark_done");
    assert!(!decisions[1]["machine"].as_str().unwrap().is_empty());
    assert_eq!(
        lines(&test, "h1/effects"),
        ["after"],
        "slow is not run again"
    );
}

#[test]
fn a_fixed_failing_step_is_picked_up_on_resume_and_journaled_as_changed() {
    let test = setup(FAILING);
    run(&test, "r", &[])
        .expect_code(1)
        .stderr_contains("runbook resume r");
    assert_eq!(status_json(&test, "r")["state"], "failed");
    test.file(
        "rb.yaml",
        FAILING.replace("exit 1", "echo fixed >> effects"),
    );
    rb(&test, &["resume", "r"]).expect_code(0);
    assert_eq!(lines(&test, "h1/effects"), ["first", "fixed"]);
    let j = journal(&test, "r");
    let resumed = events(&j, "run_resumed");
    assert_eq!(resumed[0]["changed_steps"], serde_json::json!(["broken"]));
    rb(&test, &["resume", "r"])
        .expect_code(0)
        .stdout_contains("nothing to resume");
}

#[test]
fn a_change_to_a_succeeded_step_is_refused_naming_it_unless_forced() {
    let test = setup(FAILING);
    run(&test, "r", &[]).expect_code(1);
    test.file(
        "rb.yaml",
        FAILING
            .replace("echo first", "echo FIRST")
            .replace("exit 1", "true"),
    );
    rb(&test, &["resume", "r"])
        .expect_code(2)
        .stderr_contains("already succeeded: first");
    rb(&test, &["resume", "r", "--force"]).expect_code(0);
    assert_eq!(
        lines(&test, "h1/effects"),
        ["first"],
        "first is not run again"
    );
    let j = journal(&test, "r");
    let resumed = events(&j, "run_resumed");
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0]["forced"], true);
    assert_eq!(
        resumed[0]["changed_steps"],
        serde_json::json!(["broken", "first"])
    );
}

#[test]
fn resume_uses_the_runs_copy_when_the_runbook_was_deleted() {
    let test = setup(GATED);
    run(&test, "r", &[]).expect_code(3);
    std::fs::remove_file(test.path().join("rb.yaml")).unwrap();
    std::fs::remove_file(test.path().join("inv.yaml")).unwrap();
    rb(&test, &["resume", "r", "--yes"]).expect_code(0);
    // The inventory copy keeps `runbook_workdir` relative to the original's folder.
    assert_eq!(lines(&test, "h2/effects"), ["after"]);
}

#[test]
fn a_group_step_is_retried_only_on_the_hosts_that_failed() {
    let test = setup(
        r"name: group
defaults: { timeout: 10s }
steps:
  - id: spread
    on: web
    run: echo ran >> effects; test ! -f fail
    rollback: 'true'
",
    );
    test.file("h2/fail", "");
    run(&test, "r", &[]).expect_code(1);
    let status = status_json(&test, "r");
    let hosts = &status["steps"][0]["hosts"];
    assert_eq!(hosts[1]["host"], "h2");
    assert_eq!(hosts[1]["state"], "failed");
    assert_eq!(hosts[0]["state"], "succeeded");
    std::fs::remove_file(test.path().join("h2/fail")).unwrap();
    rb(&test, &["resume", "r"]).expect_code(0);
    assert_eq!(lines(&test, "h1/effects").len(), 1);
    assert_eq!(lines(&test, "h2/effects").len(), 2);
    assert_eq!(lines(&test, "h3/effects").len(), 1);
    let status = status_json(&test, "r");
    assert_eq!(status["steps"][0]["hosts"][1]["attempts"], 2);
    assert_eq!(status["steps"][0]["hosts"][0]["attempts"], 1);
}

#[test]
fn rollback_undoes_succeeded_hosts_in_reverse_completion_order_once() {
    let log = "undo.log";
    let runbook = format!(
        r"name: undo
defaults: {{ timeout: 10s }}
steps:
  - id: slow
    needs: []
    on: h1
    run: sleep 0.5
    rollback: echo undo-slow-$RUNBOOK_HOST >> ../{log}
  - id: quick
    needs: []
    on: h1
    run: 'true'
    rollback: echo undo-quick-$RUNBOOK_HOST >> ../{log}
  - id: spread
    needs: [slow, quick]
    on: web
    max_failures: 1
    run: test ! -f fail
    rollback: echo undo-spread-$RUNBOOK_HOST >> ../{log}
  - id: last
    on: h3
    run: 'false'
    rollback: echo undo-last >> ../{log}
"
    );
    let test = setup(&runbook);
    test.file("h2/fail", "");
    run(&test, "r", &[]).expect_code(1);
    rb(&test, &["rollback", "r"])
        .expect_code(2)
        .stderr_contains("--yes");
    assert!(lines(&test, log).is_empty(), "nothing done without --yes");
    rb(&test, &["rollback", "r", "--yes"]).expect_code(0);
    let undone = lines(&test, log);
    let spread: Vec<_> = undone
        .iter()
        .filter(|l| l.starts_with("undo-spread"))
        .collect();
    assert_eq!(
        spread.len(),
        2,
        "only the hosts where spread succeeded: {undone:?}"
    );
    assert!(!undone.contains(&"undo-spread-h2".to_string()));
    assert!(!undone.contains(&"undo-last".to_string()), "last failed");
    assert_eq!(undone.len(), 4, "{undone:?}");
    assert_eq!(
        &undone[2..],
        ["undo-slow-h1", "undo-quick-h1"],
        "reverse completion order"
    );
    rb(&test, &["rollback", "r", "--yes"])
        .expect_code(0)
        .stdout_contains("nothing to roll back");
    assert_eq!(lines(&test, log).len(), 4, "a second rollback is a no-op");
}

#[test]
fn status_and_runs_json_describe_the_run() {
    let test = setup(
        r"name: described
defaults: { timeout: 10s }
steps:
  - id: one
    on: web
    run: echo one >> effects
    rollback: 'true'
    checkpoint: all-done
",
    );
    run(&test, "first", &["--reason", "drill of the week"]).expect_code(0);
    std::thread::sleep(Duration::from_millis(20));
    run(&test, "second", &[]).expect_code(0);
    let status = status_json(&test, "first");
    assert_eq!(status["run_id"], "first");
    assert_eq!(status["runbook"], "described");
    assert_eq!(status["mode"], "REAL");
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["reason"], "drill of the week");
    assert!(status["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(status["duration_ms"].is_u64());
    assert!(!status["operator"].as_str().unwrap().is_empty());
    assert_eq!(status["checkpoints"], serde_json::json!(["all-done"]));
    assert_eq!(status["journal"]["integrity"]["state"], "intact");
    let step = &status["steps"][0];
    assert_eq!(step["id"], "one");
    assert_eq!(step["status"], "succeeded");
    assert_eq!(step["hosts"].as_array().unwrap().len(), 3);
    assert_eq!(step["hosts"][0]["attempts"], 1);
    assert_eq!(step["hosts"][0]["exit_code"], 0);

    let out = rb(&test, &["runs", "--format", "json"]);
    out.expect_code(0);
    let runs: Value = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["first", "second"]);
    for key in [
        "runbook",
        "mode",
        "state",
        "started_at",
        "duration_ms",
        "operator",
        "journal",
    ] {
        assert!(!runs[0][key].is_null(), "runs lacks {key}: {}", runs[0]);
    }

    // Without an id: the latest run.
    rb(&test, &["status"])
        .expect_code(0)
        .stdout_contains("run second of described");
    rb(&test, &["status", "secnod"])
        .expect_code(2)
        .stderr_contains("did you mean second");
    rb(&test, &["resume", "secnod"]).expect_code(2);
}

#[test]
fn a_run_id_whose_run_died_before_it_began_is_free_again() {
    let test = setup(
        "name: t\ndefaults: { timeout: 10s }\nsteps:\n  - { id: a, on: h1, run: 'echo a >> log', readonly: true }\n",
    );
    // What a run killed between claiming its folder and writing anything leaves behind.
    std::fs::create_dir_all(test.path().join("st/runs/early")).unwrap();
    run(&test, "early", &[]).expect_code(0);
    // A run that did begin keeps its id.
    run(&test, "early", &[])
        .expect_code(2)
        .stderr_contains("run id early is taken");
}
