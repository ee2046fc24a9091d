//! The bundled runbooks against the bundled lab: each test works on its own copy of
//! `examples/lab` (its `reset` builds the servers inside the copy), so tests share no state.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{Test, repo};

/// Copies `from` into `to`, leaving out the `servers/` a previous `reset` may have made.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != "servers" {
                copy_dir(&src, &dst);
            }
        } else {
            // `copy` keeps the mode: the lab's tools stay executable.
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A fresh copy of the lab, reset to the moment after the incident.
fn lab() -> (Test, PathBuf) {
    let t = Test::new().env("RUNBOOK_SECRET_DNS_TOKEN", "lab-token");
    let lab = t.path().join("lab");
    copy_dir(&repo().join("examples/lab"), &lab);
    let reset = Command::new(lab.join("reset")).output().unwrap();
    assert!(
        reset.status.success(),
        "reset: {}",
        String::from_utf8_lossy(&reset.stderr)
    );
    (t, lab)
}

fn run(t: &Test, lab: &Path, runbook: &str, extra: &[&str]) {
    let runbook = repo().join("runbooks").join(format!("{runbook}.yaml"));
    let inventory = lab.join("inventory.yaml");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "run".as_ref(),
        runbook.as_os_str(),
        "-i".as_ref(),
        inventory.as_os_str(),
        "--state-dir".as_ref(),
        "state".as_ref(),
    ];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    t.run(args).no_panic().expect_code(0);
}

#[test]
fn the_four_runbooks_recover_the_lab() {
    let (t, lab) = lab();
    // clinic-reattach moves the clinics onto the database emr-failover promoted.
    for runbook in [
        "emr-failover",
        "clinic-reattach",
        "qqr-restore",
        "groupware-fileserver-restore",
    ] {
        run(&t, &lab, runbook, &["--yes"]);
    }
    let check = Command::new(lab.join("check")).arg("all").output().unwrap();
    assert!(
        check.status.success(),
        "check:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn a_drill_of_the_failover_runs_and_is_marked_drill() {
    let (t, lab) = lab();
    run(&t, &lab, "emr-failover", &["--yes", "--drill"]);
    let runs = t.path().join("state/runs");
    let dir = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "run_started");
    assert_eq!(first["mode"], "DRILL");
    // The lab's tools log each change with the mode they were run in.
    let events = std::fs::read_to_string(lab.join("servers/hq-nishi-emr-db/events.log")).unwrap();
    assert!(!events.is_empty());
    assert!(
        events.lines().all(|l| l.starts_with("DRILL ")),
        "a drill ran something as REAL:\n{events}"
    );
}
