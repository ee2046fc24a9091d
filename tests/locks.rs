//! Locks (SPEC §6): one process executes a runbook at a time, a dead holder's lock is taken
//! over, an unfinished run blocks a new one unless `--new`, and rehearsals that change
//! nothing (dry runs) are neither locked nor refused.

mod support;

use std::process::Stdio;

use runbook::host_info::hostname;
use support::Test;

const INVENTORY: &str = r"all:
  vars: { runbook_transport: local }
  hosts:
    h1: { runbook_workdir: h1 }
";

fn setup(runbook: &str) -> Test {
    let test = Test::new();
    test.file("inv.yaml", INVENTORY);
    std::fs::create_dir_all(test.path().join("h1")).unwrap();
    test.file("rb.yaml", runbook);
    test
}

const SLOW: &str = r"name: locked
defaults: { timeout: 10s }
steps:
  - id: wait
    on: h1
    run: sleep 1; echo ran >> effects
    rollback: 'true'
";

const FAILING: &str = r"name: locked
defaults: { timeout: 10s }
steps:
  - id: fails
    on: h1
    run: exit 1
    rollback: 'true'
";

fn args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--state-dir", "st", "run", "rb.yaml", "-i", "inv.yaml"];
    all.extend_from_slice(extra);
    all
}

/// A lock file as the tool writes it.
fn write_lock(test: &Test, run_id: &str, pid: u32) {
    let lock = serde_json::json!({
        "run_id": run_id,
        "user": "someone",
        "host": hostname(),
        "pid": pid,
        "started_at": "2026-04-14T09:30:05.123Z",
        "reason": null,
    });
    test.file("st/locks/locked.lock", lock.to_string());
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn of_two_runs_started_together_exactly_one_proceeds_and_the_other_names_the_holder() {
    let test = setup(SLOW);
    let start = |id: &str| {
        test.command(args(&["--new", "--run-id", id]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start("a"), start("b"));
    let pids = [a.id(), b.id()];
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap()).collect();
    let winner = match codes.as_slice() {
        [0, 4] => 0,
        [4, 0] => 1,
        other => panic!("expected one 0 and one 4, got {other:?}: {outs:?}"),
    };
    let loser = String::from_utf8_lossy(&outs[1 - winner].stderr).into_owned();
    let id = ["a", "b"][winner];
    let holder = format!("run {id} (");
    assert!(loser.contains(&holder), "{loser}");
    assert!(loser.contains(&format!("@{}", hostname())), "{loser}");
    assert!(loser.contains(&format!("pid {}", pids[winner])), "{loser}");
    assert_eq!(
        std::fs::read_to_string(test.path().join("h1/effects")).unwrap(),
        "ran\n",
        "only one run executed"
    );
    assert!(
        !test.path().join("st/locks/locked.lock").exists(),
        "lock released"
    );
}

#[test]
fn a_lock_of_a_dead_process_on_this_host_is_taken_over_with_one_warning() {
    let test = setup(&SLOW.replace("sleep 1; ", ""));
    write_lock(&test, "old-run", dead_pid());
    let out = test.run(args(&[]));
    out.expect_code(0);
    assert_eq!(
        out.stderr.matches("stale lock").count(),
        1,
        "the warning once:\n{}",
        out.stderr
    );
    out.stderr_contains("old-run");
    assert!(!test.path().join("st/locks/locked.lock").exists());
}

#[test]
fn a_live_lock_refuses_run_and_resume_but_not_a_dry_run() {
    let test = setup(FAILING);
    test.run(args(&["--run-id", "first"])).expect_code(1);
    // This test process is alive on this host: its lock is held.
    write_lock(&test, "first", std::process::id());
    test.run(["--state-dir", "st", "resume", "first"])
        .expect_code(4)
        .stderr_contains("run first (someone@")
        .stderr_contains(&format!("pid {}", std::process::id()));
    test.run(args(&["--new"]))
        .expect_code(4)
        .stderr_contains("someone@");
    test.run(args(&["--dry-run"])).expect_code(0);
    let status = test.run(["--state-dir", "st", "status", "first"]);
    status.expect_code(0).stdout_contains("running");
}

#[test]
fn an_unfinished_run_refuses_a_new_run_naming_it_unless_new() {
    let test = setup(FAILING);
    test.run(args(&["--run-id", "first"])).expect_code(1);
    test.run(args(&[]))
        .expect_code(4)
        .stderr_contains("run first")
        .stderr_contains("runbook resume first")
        .stderr_contains("--new");
    // A dry run changes nothing: neither refused nor counted as unfinished work.
    test.run(args(&["--dry-run", "--run-id", "rehearsal"]))
        .expect_code(0);
    test.run(args(&["--new", "--run-id", "second"]))
        .expect_code(1);
    assert!(!test.path().join("st/locks/locked.lock").exists());
}
