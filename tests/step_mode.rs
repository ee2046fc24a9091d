//! `--step` and terminal approvals, driven through a real pseudo-terminal (`script`), the
//! way an operator at a keyboard meets them.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use support::Test;

const INVENTORY: &str =
    "all:\n  hosts:\n    h1: { runbook_transport: local, runbook_workdir: h1 }\n";

const RUNBOOK: &str = "name: stepper
defaults: { timeout: 10s }
steps:
  - { id: first, on: h1, run: 'echo first >> log', readonly: true }
  - { id: gate, approve: 'Go on?' }
  - { id: second, on: h1, run: 'echo second >> log', readonly: true }
  - { id: third, on: h1, run: 'echo third >> log', readonly: true }
  - { id: fourth, on: h1, run: 'echo fourth >> log', readonly: true }
";

/// Runs `runbook ARGS` on a pseudo-terminal, typing `answers` one line at a time.
fn on_a_terminal(test: &Test, args: &str, answers: &[&str]) -> (i32, String) {
    let command = format!("{} --state-dir st {args}", support::binary());
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(test.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs the tool on a pseudo-terminal");
    let mut stdin = child.stdin.take().unwrap();
    for answer in answers {
        // Each answer after the question it answers, as a person would type it.
        std::thread::sleep(std::time::Duration::from_millis(700));
        writeln!(stdin, "{answer}").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(700));
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn step_mode_runs_skips_and_stops_as_the_operator_answers() {
    let test = Test::new();
    test.file("inv.yaml", INVENTORY);
    test.file("rb.yaml", RUNBOOK);
    std::fs::create_dir_all(test.path().join("h1")).unwrap();
    // run `first`, approve the gate at the terminal, skip `second`, stop before `third`.
    let (code, screen) = on_a_terminal(
        &test,
        "run rb.yaml -i inv.yaml --step --run-id s1",
        &["r", "yes", "s", "t"],
    );
    assert_eq!(code, 3, "{screen}");
    assert!(screen.contains("on h1 (h1): echo first >> log"), "{screen}");
    assert!(
        screen.contains("stopped by the operator before `third`"),
        "{screen}"
    );
    let log = std::fs::read_to_string(test.path().join("h1/log")).unwrap();
    assert_eq!(log, "first\n");
    let journal = std::fs::read_to_string(test.path().join("st/runs/s1/journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"via\":\"terminal\""),
        "the approval came from the terminal: {journal}"
    );
    assert!(
        journal.contains("skipped by the operator (--step)"),
        "{journal}"
    );
}

#[test]
fn step_mode_without_a_terminal_is_refused() {
    let test = Test::new();
    test.file("inv.yaml", INVENTORY);
    test.file("rb.yaml", RUNBOOK);
    test.run(["run", "rb.yaml", "-i", "inv.yaml", "--step"])
        .expect_code(2)
        .stderr_contains("--step asks before every step: it needs a terminal");
}
