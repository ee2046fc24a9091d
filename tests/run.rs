//! `runbook run` end to end on the local transport: order, parallelism and its limits,
//! failure handling, exit codes, Ctrl-C, retries, timeouts, quoting, secrets, dry runs,
//! drills and outputs flowing between steps. Timing claims are read from the run's journal
//! (or measured by the commands themselves), never from the wall clock of the test.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{Outcome, Test, interrupt, pgrep, process_is_gone, wait_for};

/// Six local hosts in group `g`, all working in `work/` (relative to the inventory).
const INVENTORY: &str = "\
all:
  vars: { runbook_transport: local, runbook_workdir: work }
  children:
    g:
      hosts:
        h1: {}
        h2: {}
        h3: {}
        h4: {}
        h5: {}
        h6: {}
";

/// Counts the commands running at once: increments a counter under `flock`, records the
/// highest value seen, holds for a moment, decrements.
const CONCURRENCY: &str = r#"#!/bin/sh
inc() { n=$(( $(cat cur) + $1 )); echo "$n" > cur; [ "$n" -gt "$(cat max)" ] && echo "$n" > max; true; }
( flock 9; inc 1 ) 9>lock
sleep 0.3
( flock 9; inc -1 ) 9>lock
"#;

fn lab() -> Test {
    let t = Test::new();
    t.file("inventory.yaml", INVENTORY);
    t.file("work/cur", "0\n");
    t.file("work/max", "0\n");
    t.file("work/conc", CONCURRENCY);
    t
}

/// `runbook run runbook.yaml -i inventory.yaml --state-dir state EXTRA…` with `steps`.
fn run(t: &Test, head: &str, steps: &str, extra: &[&str]) -> Outcome {
    t.file("runbook.yaml", format!("name: t\n{head}steps:\n{steps}"));
    let mut args = vec![
        "run",
        "runbook.yaml",
        "-i",
        "inventory.yaml",
        "--state-dir",
        "state",
    ];
    args.extend_from_slice(extra);
    let out = t.run(args);
    out.no_panic();
    out
}

fn read(t: &Test, name: &str) -> String {
    std::fs::read_to_string(t.path().join(name)).unwrap_or_default()
}

fn exists(t: &Test, name: &str) -> bool {
    t.path().join(name).exists()
}

/// The one run folder under `state/runs/`.
fn run_dir(t: &Test) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(t.path().join("state/runs"))
        .expect("state/runs")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.remove(0)
}

fn journal(t: &Test) -> Vec<Value> {
    std::fs::read_to_string(run_dir(t).join("journal.jsonl"))
        .expect("journal")
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect()
}

/// Journal events of `kind` (and of `step`, if given).
fn events<'a>(journal: &'a [Value], kind: &str, step: Option<&str>) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|e| e["event"] == kind && step.is_none_or(|s| e["step"] == s))
        .collect()
}

/// The timestamp of the only event of `kind` for `step` (RFC 3339, same format throughout,
/// so the text orders like the time).
fn at(journal: &[Value], kind: &str, step: &str) -> String {
    let found = events(journal, kind, Some(step));
    assert_eq!(found.len(), 1, "{kind} of {step}: {found:?}");
    found[0]["at"].as_str().unwrap().to_string()
}

/// Milliseconds since midnight (UTC) of an `at`.
fn millis(at: &str) -> i64 {
    let time = &at[11..23];
    let h: i64 = time[0..2].parse().unwrap();
    let m: i64 = time[3..5].parse().unwrap();
    let s: i64 = time[6..8].parse().unwrap();
    let ms: i64 = time[9..12].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1000 + ms
}

fn step_status(journal: &[Value], step: &str) -> String {
    let done: Vec<&Value> = journal
        .iter()
        .filter(|e| {
            e["step"] == step && (e["event"] == "step_completed" || e["event"] == "step_skipped")
        })
        .collect();
    match done.last() {
        Some(e) if e["event"] == "step_skipped" => "skipped".into(),
        Some(e) => e["status"].as_str().unwrap().into(),
        None => "not run".into(),
    }
}

/// Whether a process whose command line contains `marker` is alive (zombies excepted).
fn alive(marker: &str) -> bool {
    pgrep(marker)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|pid| !process_is_gone(pid))
}

/// Waits (bounded) until `marker` is gone; the kill is immediate, teardown is not.
fn gone(marker: &str) -> bool {
    for _ in 0..100 {
        if !alive(marker) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A marker unique to this test process, for `pgrep -f`.
fn marker(tag: u32) -> String {
    format!("{}.{tag}", 300 + std::process::id() % 500)
}

#[test]
fn steps_without_needs_run_in_the_order_written() {
    let t = lab();
    run(
        &t,
        "",
        "  - { id: a, on: h1, run: echo a >> order, readonly: true }\n  - { id: b, on: h2, run: echo b >> order, readonly: true }\n  - { id: c, on: h3, run: echo c >> order, readonly: true }\n",
        &[],
    )
    .expect_code(0);
    assert_eq!(read(&t, "work/order"), "a\nb\nc\n");
    let j = journal(&t);
    assert!(at(&j, "step_finished", "a") <= at(&j, "step_started", "b"));
    assert!(at(&j, "step_finished", "b") <= at(&j, "step_started", "c"));
}

#[test]
fn every_command_finds_its_own_start_already_in_the_journal() {
    // Five steps in a row on one host, so that shells started ahead of their command are
    // used too: each command looks for its own `step_started` line before doing anything.
    let t = lab();
    t.file(
        "work/check",
        r#"grep -q "\"step\":\"$RUNBOOK_STEP\",\"host\":\"$RUNBOOK_HOST\",\"event\":\"step_started\"" \
    "../state/runs/$RUNBOOK_RUN_ID/journal.jsonl" && echo "$RUNBOOK_STEP" >> seen"#,
    );
    let steps = (1..=5).fold(String::new(), |mut steps, i| {
        let _ = writeln!(
            steps,
            "  - {{ id: s{i}, on: h1, run: sh check, readonly: true }}"
        );
        steps
    });
    run(&t, "", &steps, &[]).expect_code(0);
    assert_eq!(read(&t, "work/seen"), "s1\ns2\ns3\ns4\ns5\n");
}

#[test]
fn steps_with_empty_needs_overlap() {
    let t = lab();
    run(
        &t,
        "",
        "  - { id: a, on: h1, needs: [], run: sleep 0.5, readonly: true }\n  - { id: b, on: h2, needs: [], run: sleep 0.5, readonly: true }\n",
        &[],
    )
    .expect_code(0);
    let j = journal(&t);
    assert!(at(&j, "step_started", "b") < at(&j, "step_finished", "a"));
    assert!(at(&j, "step_started", "a") < at(&j, "step_finished", "b"));
}

#[test]
fn per_step_max_parallel_is_never_exceeded() {
    let t = lab();
    run(
        &t,
        "",
        "  - { id: a, on: g, max_parallel: 2, run: sh conc, readonly: true }\n",
        &[],
    )
    .expect_code(0);
    let max: u32 = read(&t, "work/max").trim().parse().unwrap();
    assert!((1..=2).contains(&max), "{max} at once");
    assert_eq!(read(&t, "work/cur").trim(), "0");
}

#[test]
fn global_max_parallel_is_never_exceeded() {
    let t = lab();
    let steps: String = (1..=3).fold(String::new(), |mut steps, i| {
        let _ = writeln!(
            steps,
            "  - {{ id: s{i}, on: g, needs: [], run: sh conc, readonly: true }}"
        );
        steps
    });
    run(&t, "", &steps, &["--max-parallel", "3"]).expect_code(0);
    let max: u32 = read(&t, "work/max").trim().parse().unwrap();
    assert!((2..=3).contains(&max), "{max} at once");
}

#[test]
fn a_failure_skips_dependents_and_runs_its_handler() {
    let t = lab();
    let out = run(
        &t,
        "",
        concat!(
            "  - { id: a, on: h1, run: exit 7, readonly: true }\n",
            "  - { id: b, on: h1, run: touch b-ran, readonly: true }\n",
            "  - { id: handler, on: h1, needs: [a], when: \"steps.a.status == 'failed'\", run: touch handled, readonly: true }\n",
            "  - { id: happy, on: h1, needs: [a], when: \"steps.a.status == 'succeeded'\", run: touch happy, readonly: true }\n",
        ),
        &[],
    );
    out.expect_code(1).stderr_contains("resume");
    assert!(exists(&t, "work/handled"));
    assert!(!exists(&t, "work/b-ran"));
    assert!(!exists(&t, "work/happy"));
    let j = journal(&t);
    assert_eq!(step_status(&j, "a"), "failed");
    assert_eq!(step_status(&j, "b"), "skipped");
    assert_eq!(step_status(&j, "handler"), "succeeded");
    assert_eq!(step_status(&j, "happy"), "skipped");
    assert_eq!(events(&j, "step_finished", Some("a"))[0]["exit_code"], 7);
}

#[test]
fn an_approval_without_yes_and_without_a_terminal_pauses_with_exit_3() {
    let t = lab();
    let out = run(
        &t,
        "",
        "  - { id: gate, approve: Go on? }\n  - { id: after, on: h1, run: touch after, readonly: true }\n",
        &[],
    );
    out.expect_code(3).stderr_contains("--approve gate");
    assert!(!exists(&t, "work/after"));
    let j = journal(&t);
    assert_eq!(events(&j, "run_finished", None)[0]["status"], "paused");

    let t = lab();
    run(
        &t,
        "",
        "  - { id: gate, approve: Go on? }\n  - { id: after, on: h1, run: touch after, readonly: true }\n",
        &["--yes"],
    )
    .expect_code(0);
    assert!(exists(&t, "work/after"));
}

/// Starts `runbook run` in the background and waits until `work/started` exists.
fn start_in_background(t: &Test, steps: &str) -> std::process::Child {
    t.file("runbook.yaml", format!("name: t\nsteps:\n{steps}"));
    let child = t
        .command([
            "run",
            "runbook.yaml",
            "-i",
            "inventory.yaml",
            "--state-dir",
            "state",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the step to start", Duration::from_secs(30), || {
        exists(t, "work/started")
    });
    child
}

#[test]
fn one_ctrl_c_lets_the_running_command_finish_and_starts_nothing_new() {
    let t = lab();
    let child = start_in_background(
        &t,
        "  - { id: a, on: h1, run: touch started && sleep 1 && touch finished, readonly: true }\n  - { id: b, on: h1, run: touch b-ran, readonly: true }\n",
    );
    interrupt(&child);
    Outcome::from(child.wait_with_output().unwrap()).expect_code(130);
    assert!(
        exists(&t, "work/finished"),
        "the running command was not allowed to finish"
    );
    assert!(!exists(&t, "work/b-ran"));
    let j = journal(&t);
    assert_eq!(step_status(&j, "a"), "succeeded");
    assert_eq!(events(&j, "run_finished", None)[0]["status"], "interrupted");
}

#[test]
fn two_ctrl_c_kill_the_running_command() {
    let t = lab();
    let m = marker(2);
    let child = start_in_background(
        &t,
        &format!(
            "  - {{ id: a, on: h1, run: touch started && sleep {m} && touch finished, readonly: true }}\n  - {{ id: b, on: h1, run: touch b-ran, readonly: true }}\n"
        ),
    );
    interrupt(&child);
    let journal_path = run_dir(&t).join("journal.jsonl");
    wait_for(
        "the first interrupt to be journaled",
        Duration::from_secs(30),
        || std::fs::read_to_string(&journal_path).is_ok_and(|j| j.contains("\"interrupted\"")),
    );
    interrupt(&child);
    Outcome::from(child.wait_with_output().unwrap()).expect_code(130);
    assert!(gone(&format!("sleep {m}")), "the command survived");
    assert!(!exists(&t, "work/finished"));
    assert!(!exists(&t, "work/b-ran"));
    let j = journal(&t);
    // Stopped now: the step stays in flight in the journal, its outcome unknown.
    assert!(events(&j, "step_finished", Some("a")).is_empty());
    assert_eq!(events(&j, "step_started", Some("a")).len(), 1);
}

#[test]
fn retries_wait_with_backoff_and_stop_once_it_works() {
    let t = lab();
    run(
        &t,
        "",
        "  - { id: a, on: h1, run: \"echo x >> attempts && [ $(wc -l < attempts) -ge 3 ]\", readonly: true, retry: { attempts: 4, delay: 200ms, backoff: 2.0 } }\n",
        &[],
    )
    .expect_code(0);
    assert_eq!(read(&t, "work/attempts"), "x\nx\nx\n");
    let j = journal(&t);
    let delays: Vec<&Value> = events(&j, "step_retrying", Some("a"))
        .iter()
        .map(|e| &e["delay_ms"])
        .collect();
    assert_eq!(delays, [200, 400]);
    let starts = events(&j, "step_started", Some("a"));
    let ends = events(&j, "step_finished", Some("a"));
    assert_eq!(starts.len(), 3);
    for (n, delay) in [(1, 200), (2, 400)] {
        let gap =
            millis(starts[n]["at"].as_str().unwrap()) - millis(ends[n - 1]["at"].as_str().unwrap());
        assert!(
            gap >= delay,
            "attempt {} started {gap} ms after the previous one",
            n + 1
        );
    }
}

#[test]
fn a_timed_out_command_and_what_it_started_are_killed() {
    let t = lab();
    let m = marker(1);
    let out = run(
        &t,
        "",
        &format!(
            "  - {{ id: a, on: h1, timeout: 500ms, run: sleep {m} & wait, readonly: true }}\n"
        ),
        &[],
    );
    out.expect_code(1);
    assert!(
        gone(&format!("sleep {m}")),
        "sleep {m} survived the timeout"
    );
    let j = journal(&t);
    let finished = events(&j, "step_finished", Some("a"));
    assert_eq!(finished[0]["timed_out"], true);
    assert_eq!(finished[0]["error"], "timed out");
}

#[test]
fn a_var_reaches_the_command_literally() {
    let t = lab();
    t.file("work/Y/keep", "");
    let value = "$(touch X); rm -rf Y";
    run(
        &t,
        "vars: { msg: hello }\n",
        "  - { id: a, on: h1, run: \"echo {{ vars.msg }}\", readonly: true }\n",
        &["--var", &format!("msg={value}")],
    )
    .expect_code(0);
    assert!(!exists(&t, "work/X"));
    assert!(exists(&t, "work/Y/keep"));
    let j = journal(&t);
    assert_eq!(
        events(&j, "step_finished", Some("a"))[0]["stdout"],
        format!("{value}\n")
    );
}

const SECRET: &str = "Zq9-s3cr3t-value-Xw";

/// Every byte the tool wrote: stdout, stderr and every file under the state folder.
fn assert_secret_absent(t: &Test, out: &Outcome) {
    assert!(!out.stdout.contains(SECRET), "stdout: {}", out.stdout);
    assert!(!out.stderr.contains(SECRET), "stderr: {}", out.stderr);
    let mut stack = vec![t.path().join("state")];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(SECRET),
                    "the secret is in {}",
                    path.display()
                );
            }
        }
    }
    assert!(files >= 3, "no state written?");
}

const SECRET_STEPS: &str = concat!(
    "  - { id: use, on: h1, readonly: true, run: \"echo {{ secrets.token }} > seen; echo token={{ secrets.token }}; echo {{ secrets.token }} >&2\" }\n",
    "  - { id: fail, on: h1, readonly: true, run: \"cat missing-{{ secrets.token }}\" }\n",
);

#[test]
fn a_secret_from_the_environment_is_written_nowhere() {
    let t = lab().env("RUNBOOK_SECRET_TOKEN", SECRET);
    let out = run(&t, "secrets: [token]\n", SECRET_STEPS, &["-v"]);
    out.expect_code(1);
    // The command did get the value; the tool wrote it nowhere.
    assert_eq!(read(&t, "work/seen").trim(), SECRET);
    let j = journal(&t);
    assert!(
        events(&j, "step_finished", Some("use"))[0]["stdout"]
            .as_str()
            .unwrap()
            .contains("token=***")
    );
    assert!(
        events(&j, "step_finished", Some("fail"))[0]["stderr"]
            .as_str()
            .unwrap()
            .contains("missing-***")
    );
    assert_secret_absent(&t, &out);
}

/// Runs `SECRET_STEPS` with the secret in `secrets.yaml`, whose mode is `mode`.
fn run_with_secrets_file(t: &Test, mode: u32) -> Outcome {
    use std::os::unix::fs::PermissionsExt as _;
    let file = t.file("secrets.yaml", format!("token: {SECRET}\n"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    run(
        t,
        "secrets: [token]\n",
        SECRET_STEPS,
        &["--secrets-file", "secrets.yaml"],
    )
}

#[test]
fn a_secret_from_a_private_file_is_written_nowhere() {
    let t = lab();
    let out = run_with_secrets_file(&t, 0o600);
    out.expect_code(1);
    assert_eq!(read(&t, "work/seen").trim(), SECRET);
    assert_secret_absent(&t, &out);
}

#[test]
fn a_secret_cut_in_two_by_the_kept_output_tail_leaves_no_part_behind() {
    // The journal keeps the last 16 KiB of stdout. 100 bytes, the secret (19), then 16,374
    // bytes: as printed, the cut falls 10 characters before the secret's end.
    let t = lab().env("RUNBOOK_SECRET_TOKEN", SECRET);
    let steps = "  - { id: long, on: h1, readonly: true, run: \"head -c 100 /dev/zero | tr '\\\\0' p; printf %s {{ secrets.token }}; head -c 16374 /dev/zero | tr '\\\\0' x\" }\n";
    run(&t, "secrets: [token]\n", steps, &[]).expect_code(0);
    let j = journal(&t);
    let stdout = events(&j, "step_finished", Some("long"))[0]["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stdout.len(), 16 * 1024, "the output was not cut");
    let head = &stdout[..20];
    assert!(
        !stdout.contains(&SECRET[SECRET.len() - 10..]),
        "part of the secret kept: {head}"
    );
    assert!(stdout.starts_with("ppppppp***x"), "{head}");
}

#[test]
fn a_very_short_secret_is_masked_everywhere_with_a_warning() {
    let t = lab().env("RUNBOOK_SECRET_TOKEN", "ab");
    let out = run(
        &t,
        "secrets: [token]\n",
        "  - { id: use, on: h1, readonly: true, run: \"echo {{ secrets.token }}; echo table\" }\n",
        &[],
    );
    out.expect_code(0)
        .stderr_contains("secret `token` is only 2 character(s) long");
    let j = journal(&t);
    assert_eq!(
        events(&j, "step_finished", Some("use"))[0]["stdout"],
        "***\nt***le\n"
    );
}

#[test]
fn a_secrets_file_others_can_read_is_refused() {
    let t = lab();
    let out = run_with_secrets_file(&t, 0o644);
    out.expect_code(2).stderr_contains("chmod 600");
    assert!(!out.stderr.contains(SECRET));
    assert!(!exists(&t, "work/seen"));
}

#[test]
fn a_dry_run_executes_nothing_but_writes_the_journal() {
    let t = lab();
    run(
        &t,
        "",
        "  - { id: gate, approve: Go? }\n  - { id: a, on: g, run: touch created, rollback: rm created }\n",
        &["--dry-run"],
    )
    .expect_code(0);
    assert!(!exists(&t, "work/created"));
    let j = journal(&t);
    assert_eq!(events(&j, "run_started", None)[0]["mode"], "DRY-RUN");
    let started = events(&j, "step_started", Some("a"));
    assert_eq!(started.len(), 6);
    assert!(
        started
            .iter()
            .all(|e| e["simulated"] == true && e["command"] == "touch created")
    );
}

#[test]
fn a_drill_runs_drill_only_steps_and_not_real_only_ones() {
    let t = lab();
    run(
        &t,
        "",
        concat!(
            "  - { id: d, on: h1, only: drill, run: echo $RUNBOOK_MODE > drill-ran, readonly: true }\n",
            "  - { id: r, on: h1, only: real, run: touch real-ran, readonly: true }\n",
            "  - { id: last, on: h1, run: touch last-ran, readonly: true }\n",
        ),
        &["--drill"],
    )
    .expect_code(0);
    assert_eq!(read(&t, "work/drill-ran"), "DRILL\n");
    assert!(!exists(&t, "work/real-ran"));
    assert!(exists(&t, "work/last-ran"));
    let j = journal(&t);
    assert_eq!(events(&j, "run_started", None)[0]["mode"], "DRILL");
    assert_eq!(step_status(&j, "r"), "skipped");
}

#[test]
fn step_output_flows_into_later_templates_per_host() {
    let t = lab();
    run(
        &t,
        "",
        concat!(
            "  - { id: one, on: h1, run: echo single, readonly: true }\n",
            "  - { id: each, on: g, run: echo from-$RUNBOOK_HOST, readonly: true }\n",
            "  - { id: use, on: g, run: \"echo {{ steps.each.stdout }} {{ steps.one.stdout }} > got-$RUNBOOK_HOST\", readonly: true }\n",
        ),
        &[],
    )
    .expect_code(0);
    for h in 1..=6 {
        assert_eq!(
            read(&t, &format!("work/got-h{h}")),
            format!("from-h{h} single\n")
        );
    }
}

#[test]
fn max_failures_tolerates_one_failed_host_of_a_group() {
    let t = lab();
    let steps = "  - { id: a, on: g, max_failures: MAXF, run: '[ $RUNBOOK_HOST != h2 ]', readonly: true }\n  - { id: b, on: h1, run: touch b-ran, readonly: true }\n";
    run(&t, "", &steps.replace("MAXF", "1"), &[]).expect_code(0);
    assert!(exists(&t, "work/b-ran"));

    let t = lab();
    run(&t, "", &steps.replace("MAXF", "0"), &[]).expect_code(1);
    assert!(!exists(&t, "work/b-ran"));
}
