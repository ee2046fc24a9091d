//! Crash safety (SPEC §6): a run killed with SIGKILL at a random moment, then resumed the
//! way an operator would, ends with every step's effect present exactly once on every host.
//!
//! Each step appends its id to `effects` in its host's folder. After a kill, a command may
//! have written its effect without `step_finished` reaching the journal: that is the
//! in-flight case. `verify` steps and `idempotent` steps settle it by themselves; for plain
//! steps `resume` exits 3 and the operator (this test) looks at the effect file and answers
//! `--mark-done` (present) or `--rerun` (absent). Resumes are killed at random too.
//!
//! `CRASH_ITERATIONS` (default 30) and `CRASH_SEED` (default: from the clock) tune it;
//! `scripts/bench-crash` runs hundreds of iterations. A failure prints the seed to replay.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::Test;

const HOSTS: [&str; 3] = ["h1", "h2", "h3"];

/// Every kind of step: single-host plain, an approval, an idempotent group step, a group
/// step with `verify`, a plain (non-idempotent) group step, and a plain single-host step.
const RUNBOOK: &str = r"name: crashy
defaults: { timeout: 10s }
steps:
  - id: prep
    on: h1
    run: sleep 0.01; echo prep >> effects
    rollback: 'true'
  - id: gate
    approve: go on?
  - id: fan
    on: web
    idempotent: true
    run: sleep 0.01; grep -qx fan effects || echo fan >> effects
    rollback: 'true'
  - id: check
    on: web
    run: sleep 0.01; echo check >> effects
    verify: grep -qx check effects
    rollback: 'true'
  - id: plain
    on: web
    run: sleep 0.02; echo plain >> effects
    rollback: 'true'
  - id: final
    on: h3
    run: sleep 0.01; echo final >> effects
    rollback: 'true'
";

const INVENTORY: &str = r"all:
  vars: { runbook_transport: local }
  children:
    web:
      hosts:
        h1: { runbook_workdir: h1 }
        h2: { runbook_workdir: h2 }
        h3: { runbook_workdir: h3 }
";

/// What each host's `effects` must hold at the end, in this order.
fn expected(host: &str) -> &'static str {
    match host {
        "h1" => "prep\nfan\ncheck\nplain\n",
        "h2" => "fan\ncheck\nplain\n",
        _ => "fan\ncheck\nplain\nfinal\n",
    }
}

/// splitmix64: a seeded RNG without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// How one process ended: its exit code, or killed by us.
#[derive(Debug, PartialEq)]
enum End {
    Code(i32),
    Killed,
}

/// Runs the child to its end, or kills it (SIGKILL) after `kill_after` if given.
fn finish(mut child: Child, kill_after: Option<Duration>) -> End {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return End::Code(status.code().unwrap_or(-1));
        }
        if kill_after.is_some_and(|after| start.elapsed() >= after) {
            child.kill().unwrap();
            child.wait().unwrap();
            return End::Killed;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The step commands still running in a host folder under `dir`.
fn orphans(dir: &Path) -> Vec<i32> {
    let root = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            (cwd.starts_with(&root) && cwd != root).then_some(pid)
        })
        .collect()
}

/// A killed `runbook` leaves its step commands running (they are in process groups of their
/// own, as on a remote server). The operator checks the hosts once those are over: wait
/// until no process works in a host folder.
fn wait_for_orphans(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !orphans(dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "step commands still running after 10 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A power cut takes the step commands down with the tool: their effect may be missing.
fn kill_orphans(dir: &Path) {
    for pid in orphans(dir) {
        // Gone already is fine.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

/// The (step, host) pairs `status` reports in flight.
fn in_flight(test: &Test, run_id: &str) -> Vec<(String, String)> {
    let out = test.run(["--state-dir", "st", "status", run_id, "--format", "json"]);
    assert_eq!(out.code, 0, "status: {}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut pairs = Vec::new();
    for step in status["steps"].as_array().unwrap() {
        for host in step["hosts"].as_array().unwrap() {
            if host["state"] == "in-flight" {
                pairs.push((
                    step["id"].as_str().unwrap().to_string(),
                    host["host"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    pairs
}

/// The run this iteration created, once it has a run folder `status` can read.
fn run_id(test: &Test) -> Option<String> {
    let out = test.run(["--state-dir", "st", "runs", "--format", "json"]);
    assert_eq!(out.code, 0, "runs: {}", out.stderr);
    let runs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert!(runs.len() <= 1, "one run only: {runs:?}");
    runs.first()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
}

fn effects(test: &Test, host: &str) -> String {
    std::fs::read_to_string(test.path().join(host).join("effects")).unwrap_or_default()
}

/// Half the kills take the running step commands down too.
fn power_cut(rng: &mut Rng, test: &Test, log: &mut Vec<String>) {
    if rng.below(2) == 0 {
        kill_orphans(test.path());
        log.push("power cut: step commands killed too".into());
    }
}

fn check_effects(test: &Test) {
    for host in HOSTS {
        assert_eq!(effects(test, host), expected(host), "effects on {host}");
    }
}

/// What the iterations went through, to show the kills landed everywhere.
#[derive(Debug, Default)]
struct Stats {
    kills: usize,
    /// Killed before the run folder was complete: the run was started again.
    restarts: usize,
    /// `resume` exited 3 on an in-flight plain step.
    pauses: usize,
    mark_done: usize,
    rerun: usize,
}

/// One crash-and-recover story.
fn iteration(rng: &mut Rng, log: &mut Vec<String>, stats: &mut Stats) {
    let test = Test::new();
    test.file("rb.yaml", RUNBOOK);
    test.file("inv.yaml", INVENTORY);
    for host in HOSTS {
        std::fs::create_dir_all(test.path().join(host)).unwrap();
    }
    let spawn = |args: &[String]| {
        test.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The whole run takes ~150-250 ms on a quiet machine; kill anywhere in it.
    let first = Duration::from_millis(rng.below(260));
    let run_args: Vec<String> = [
        "--state-dir",
        "st",
        "run",
        "rb.yaml",
        "-i",
        "inv.yaml",
        "--yes",
    ]
    .map(String::from)
    .to_vec();
    log.push(format!("run, kill after {first:?}"));
    match finish(spawn(&run_args), Some(first)) {
        End::Killed => {
            stats.kills += 1;
            power_cut(rng, &test, log);
        }
        End::Code(0) => {}
        End::Code(code) => panic!("run exited {code}"),
    }
    let mut choices: Vec<String> = Vec::new();
    for round in 0..40 {
        wait_for_orphans(test.path());
        let Some(id) = run_id(&test) else {
            // Killed before the run folder was complete: nothing ran; start again.
            log.push("no run recorded: run again".into());
            stats.restarts += 1;
            let end = finish(spawn(&run_args), None);
            assert_eq!(end, End::Code(0), "the second run");
            check_effects(&test);
            return;
        };
        let mut args: Vec<String> = ["--state-dir", "st", "resume", &id, "--yes"]
            .map(String::from)
            .to_vec();
        args.append(&mut choices);
        // Kill some resumes too, fewer as rounds go so that the story ends.
        let kill = (round < 6 && rng.below(3) == 0).then(|| Duration::from_millis(rng.below(200)));
        log.push(format!("{}, kill after {kill:?}", args[3..].join(" ")));
        let child = spawn(&args);
        match finish(child, kill) {
            End::Killed => {
                stats.kills += 1;
                power_cut(rng, &test, log);
            }
            End::Code(0) => {
                check_effects(&test);
                return;
            }
            End::Code(3) => {
                stats.pauses += 1;
                wait_for_orphans(test.path());
                // The operator's check: is the step's line on that host?
                for (step, host) in in_flight(&test, &id) {
                    let done = effects(&test, &host).lines().any(|l| l == step);
                    let choice = if step == "prep" || step == "final" {
                        step.clone()
                    } else {
                        format!("{step}@{host}")
                    };
                    choices.push(if done {
                        stats.mark_done += 1;
                        format!("--mark-done={choice}")
                    } else {
                        stats.rerun += 1;
                        format!("--rerun={choice}")
                    });
                }
                log.push(format!("paused; decisions {choices:?}"));
                assert!(!choices.is_empty(), "paused with nothing in flight");
            }
            End::Code(code) => {
                let out = test.run(["--state-dir", "st", "status", &id]);
                panic!("resume exited {code}; status:\n{}", out.stdout);
            }
        }
    }
    panic!("the run did not end after 40 resumes");
}

#[test]
fn runs_killed_at_random_moments_resume_to_every_effect_exactly_once() {
    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::from(now.subsec_nanos()) ^ now.as_secs()
        });
    let started = Instant::now();
    let mut stats = Stats::default();
    for i in 0..iterations {
        let iteration_seed = seed.wrapping_add(i as u64);
        let mut rng = Rng(iteration_seed);
        let mut log = Vec::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            iteration(&mut rng, &mut log, &mut stats);
        }));
        if let Err(panic) = result {
            eprintln!(
                "crash iteration {i} failed: replay with CRASH_SEED={iteration_seed} CRASH_ITERATIONS=1\nsteps:\n  {}",
                log.join("\n  ")
            );
            std::panic::resume_unwind(panic);
        }
    }
    eprintln!(
        "{iterations} iterations (seed {seed}) in {:.1?}: {stats:?}",
        started.elapsed()
    );
}
