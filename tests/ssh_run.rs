//! Runs over SSH end to end: the `runbook` binary, an inventory of SSH hosts, and a real
//! OpenSSH server on 127.0.0.x. HOME is the test's folder, so `~/.ssh/known_hosts` is the
//! test's own and nothing of the machine's SSH setup takes part.

#[path = "support/sshd.rs"]
mod sshd;
mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sshd::{Fleet, Sshd};
use support::{Outcome, Test, interrupt, pgrep, process_is_gone, unique_marker, wait_for};

/// One SSH host of a test inventory.
struct Entry<'a> {
    name: &'a str,
    address: &'a str,
    port: u16,
    /// The client key; the server's authorized one unless a test says otherwise.
    key: PathBuf,
    /// Extra `key: value` pairs of the entry.
    extra: &'a str,
}

impl<'a> Entry<'a> {
    fn new(sshd: &Sshd, name: &'a str) -> Self {
        Entry {
            name,
            address: "127.0.0.1",
            port: sshd.port,
            key: sshd.client_key.clone(),
            extra: "",
        }
    }
}

/// An inventory of SSH hosts, all in group `fleet`, logging in as the server's user and
/// trusting the keys in `known_hosts` (next to the inventory) if the test writes that file.
fn inventory(test: &Test, user: &str, entries: &[Entry]) -> PathBuf {
    let mut yaml = format!(
        "all:\n  vars:\n    ansible_user: {user}\n    runbook_known_hosts: known_hosts\n  children:\n    fleet:\n      hosts:\n"
    );
    for e in entries {
        let _ = writeln!(
            yaml,
            "        {}: {{ ansible_host: {}, ansible_port: {}, ansible_ssh_private_key_file: {}{}{} }}",
            e.name,
            e.address,
            e.port,
            e.key.display(),
            if e.extra.is_empty() { "" } else { ", " },
            e.extra
        );
    }
    test.file("inventory.yaml", yaml)
}

/// Trusts the server's ed25519 key at each address (in the inventory's known_hosts).
fn trust(test: &Test, sshd: &Sshd, addresses: &[&str]) {
    let lines: String = addresses
        .iter()
        .map(|a| sshd.known_hosts_line(a, "host_ed25519"))
        .collect();
    test.file("known_hosts", lines);
}

/// `runbook ARGS` in the test folder, without any ssh-agent of the machine.
fn runbook<I, S>(test: &Test, args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Outcome::from(
        test.command(args)
            .env_remove("SSH_AUTH_SOCK")
            .output()
            .unwrap(),
    )
}

/// Everything the run printed.
fn printed(out: &Outcome) -> String {
    format!("{}\n{}", out.stdout, out.stderr)
}

#[track_caller]
fn assert_printed(out: &Outcome, text: &str) {
    let all = printed(out);
    assert!(all.contains(text), "output lacks {text:?}\n{all}");
}

/// A one-step runbook on `on`.
fn one_step(test: &Test, on: &str, run: &str) -> PathBuf {
    test.file(
        "rb.yaml",
        format!(
            "name: t\nsteps:\n  - id: work\n    on: {on}\n    run: {}\n    readonly: true\n    timeout: 1m\n",
            yaml_quote(run)
        ),
    )
}

/// `run RUNBOOK -i INVENTORY EXTRA…`.
fn run_args<'a>(
    rb: &'a std::path::Path,
    inv: &'a std::path::Path,
    extra: &[&'a str],
) -> Vec<&'a std::ffi::OsStr> {
    let mut args = vec![
        "run".as_ref(),
        rb.as_os_str(),
        "-i".as_ref(),
        inv.as_os_str(),
    ];
    args.extend(extra.iter().map(|&a| std::ffi::OsStr::new(a)));
    args
}

fn yaml_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[test]
fn an_unknown_host_key_is_refused_with_its_fingerprint_and_nothing_runs() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let flag = test.path().join("ran");
    let rb = one_step(&test, "db", &format!("touch {}", flag.display()));
    let out = runbook(&test, run_args(&rb, &inv, &[]));
    out.expect_code(1);
    assert_printed(&out, &sshd.fingerprint("host_ed25519"));
    assert_printed(
        &out,
        &format!(
            "host key of db (127.0.0.1:{}) refused: unknown host key",
            sshd.port
        ),
    );
    assert_printed(&out, "--accept-new-host-keys");
    assert!(!flag.exists(), "the step ran despite the unknown key");
    assert_eq!(sshd.accepted_logins(), 0, "{}", sshd.log_text());
}

#[test]
fn accept_new_host_keys_records_the_key_and_runs() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let flag = test.path().join("ran");
    let rb = one_step(&test, "db", &format!("touch {}", flag.display()));
    let args = |extra: &[&str]| {
        let mut args = vec!["run".to_owned(), rb.display().to_string(), "-i".into()];
        args.push(inv.display().to_string());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    runbook(&test, args(&["--accept-new-host-keys"])).expect_code(0);
    assert!(flag.exists());
    let known = std::fs::read_to_string(test.path().join(".ssh/known_hosts")).unwrap();
    let recorded = [sshd.public_key("host_ed25519"), sshd.public_key("host_rsa")]
        .iter()
        .any(|key| known == format!("[127.0.0.1]:{} {key}\n", sshd.port));
    assert!(recorded, "{known}");
    // Trusted from now on, without the flag.
    std::fs::remove_file(&flag).unwrap();
    runbook(&test, args(&[])).expect_code(0);
    assert!(flag.exists());
}

#[test]
fn a_changed_host_key_is_refused_even_with_accept_new() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    sshd::keygen(&test.path().join("old_host_key"), "ed25519");
    let old = std::fs::read_to_string(test.path().join("old_host_key.pub")).unwrap();
    let old: Vec<&str> = old.split_whitespace().take(2).collect();
    test.file(
        ".ssh/known_hosts",
        format!("[127.0.0.1]:{} {}\n", sshd.port, old.join(" ")),
    );
    let flag = test.path().join("ran");
    let rb = one_step(&test, "db", &format!("touch {}", flag.display()));
    let out = runbook(&test, run_args(&rb, &inv, &["--accept-new-host-keys"]));
    out.expect_code(1);
    assert_printed(&out, "REMOTE HOST IDENTIFICATION HAS CHANGED");
    assert_printed(&out, &sshd.fingerprint("host_ed25519"));
    assert_printed(&out, "ssh-keygen -R");
    assert!(!flag.exists());
    assert_eq!(sshd.accepted_logins(), 0);
}

#[test]
fn a_known_hosts_pattern_trusts_the_hosts_it_names_and_no_other() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    let key = sshd.public_key("host_ed25519");
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let rb = one_step(&test, "db", "true");
    let args = run_args(&rb, &inv, &["--new"]);
    // The way a fleet of cloned appliances is often trusted: one line for a whole range.
    test.file("known_hosts", format!("[127.0.0.*]:{} {key}\n", sshd.port));
    runbook(&test, &args).expect_code(0);
    // Excluded by `!`: the same line no longer names this host, so its key is unknown.
    test.file(
        "known_hosts",
        format!("[127.0.0.*]:{p},![127.0.0.1]:{p} {key}\n", p = sshd.port),
    );
    let out = runbook(&test, &args);
    out.expect_code(1);
    assert_printed(&out, "unknown host key ssh-ed25519");
}

#[test]
fn ten_steps_on_one_host_log_in_once() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let log = test.path().join("steps.log");
    let mut yaml = String::from("name: ten\nsteps:\n");
    for i in 1..=10 {
        let _ = write!(
            yaml,
            "  - id: s{i}\n    on: db\n    run: echo {i} >> {}\n    readonly: true\n    timeout: 1m\n",
            log.display()
        );
    }
    let rb = test.file("ten.yaml", yaml);
    runbook(&test, run_args(&rb, &inv, &[])).expect_code(0);
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 10, "{lines}");
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log_text());
}

#[test]
fn a_timed_out_command_is_gone_from_the_server() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let marker = unique_marker();
    let pid_file = test.path().join("sleep.pid");
    let rb = test.file(
        "rb.yaml",
        format!(
            "name: t\nsteps:\n  - id: hang\n    on: db\n    run: 'sleep 300 & echo $! > {}; wait # {marker}'\n    readonly: true\n    timeout: 1s\n",
            pid_file.display()
        ),
    );
    let started = Instant::now();
    let out = runbook(&test, run_args(&rb, &inv, &[]));
    out.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(10));
    let sleep = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_owned();
    wait_for(
        "the timed-out command to stop",
        Duration::from_secs(5),
        || pgrep(&marker).is_empty() && process_is_gone(&sleep),
    );
}

#[test]
fn two_ctrl_c_stop_a_command_on_the_server_at_once() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let marker = unique_marker();
    let d = test.path().display().to_string();
    // `warm` first, so that `hang` is the connection's second command and runs on its agent.
    let rb = test.file(
        "rb.yaml",
        format!(
            "name: t\ndefaults: {{ timeout: 5m }}\nsteps:\n\
             \x20 - {{ id: warm, on: db, run: 'true', readonly: true }}\n\
             \x20 - {{ id: hang, on: db, readonly: true, run: 'sleep 300 & echo $! > {d}/sleep.pid; touch {d}/started; wait # {marker}' }}\n\
             \x20 - {{ id: after, on: db, run: 'touch {d}/after', readonly: true }}\n"
        ),
    );
    let child = test
        .command(run_args(
            &rb,
            &inv,
            &["--run-id", "ctrl-c", "--state-dir", "state"],
        ))
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the step to start", Duration::from_secs(10), || {
        test.path().join("started").exists()
    });
    interrupt(&child);
    let journal = test.path().join("state/runs/ctrl-c/journal.jsonl");
    wait_for(
        "the first interrupt to be journaled",
        Duration::from_secs(10),
        || std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"interrupted\"")),
    );
    let second = Instant::now();
    interrupt(&child);
    Outcome::from(child.wait_with_output().unwrap()).expect_code(130);
    assert!(second.elapsed() < Duration::from_secs(10));
    let sleep = std::fs::read_to_string(test.path().join("sleep.pid"))
        .unwrap()
        .trim()
        .to_owned();
    wait_for(
        "the command to stop on the server",
        Duration::from_secs(5),
        || pgrep(&marker).is_empty() && process_is_gone(&sleep),
    );
    assert!(!test.path().join("after").exists());
    let journal = std::fs::read_to_string(&journal).unwrap();
    let hang = |event: &str| {
        journal
            .lines()
            .filter(|l| {
                l.contains(&format!("\"event\":\"{event}\"")) && l.contains("\"step\":\"hang\"")
            })
            .count()
    };
    // Stopped now: the step stays in flight in the journal, its outcome unknown.
    assert_eq!((hang("step_started"), hang("step_finished")), (1, 0));
}

#[test]
fn a_closed_port_fails_the_step_at_once_naming_the_host() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    let port = sshd::free_port();
    let inv = inventory(
        &test,
        &sshd.user,
        &[Entry {
            port,
            ..Entry::new(&sshd, "gw")
        }],
    );
    let rb = one_step(&test, "gw", "true");
    let started = Instant::now();
    let out = runbook(&test, run_args(&rb, &inv, &[]));
    out.expect_code(1);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_printed(&out, &format!("cannot connect to gw (127.0.0.1:{port})"));
    assert_printed(&out, "is sshd running there, on this port?");
}

/// An `ssh-agent` of the test's own, on a socket in `dir`; killed when dropped.
struct Agent {
    process: std::process::Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &std::path::Path) -> Agent {
        let socket = dir.join("agent.sock");
        let process = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client)");
        wait_for("ssh-agent's socket", Duration::from_secs(5), || {
            socket.exists()
        });
        Agent { process, socket }
    }

    fn add(&self, key: &std::path::Path) {
        let added = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .output()
            .unwrap();
        assert!(added.status.success(), "{added:?}");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn a_key_held_by_ssh_agent_logs_in_when_the_inventory_names_no_key() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    // No key file anywhere: not in the inventory, none in the test's ~/.ssh.
    let inv = test.file(
        "inventory.yaml",
        format!(
            "all:\n  vars: {{ ansible_user: {}, runbook_known_hosts: known_hosts }}\n  hosts:\n    db: {{ ansible_host: 127.0.0.1, ansible_port: {} }}\n",
            sshd.user, sshd.port
        ),
    );
    let flag = test.path().join("ran");
    let rb = one_step(&test, "db", &format!("touch {}", flag.display()));
    let args = run_args(&rb, &inv, &["--new"]);
    // Without the agent, there is nothing to log in with.
    let out = runbook(&test, &args);
    out.expect_code(1);
    assert_printed(&out, "authentication to db");
    let agent = Agent::start(test.path());
    agent.add(&sshd.client_key);
    Outcome::from(
        test.command(&args)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .output()
            .unwrap(),
    )
    .expect_code(0);
    assert!(flag.exists());
}

#[test]
fn a_host_that_never_answers_fails_within_the_connect_timeout() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    // Accepts TCP connections (the kernel does) but never speaks SSH.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let inv = inventory(
        &test,
        &sshd.user,
        &[Entry {
            port,
            extra: "runbook_connect_timeout: 1s",
            ..Entry::new(&sshd, "gw")
        }],
    );
    let rb = one_step(&test, "gw", "true");
    let started = Instant::now();
    let out = runbook(&test, run_args(&rb, &inv, &[]));
    out.expect_code(1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_printed(&out, &format!("cannot connect to gw (127.0.0.1:{port})"));
    assert_printed(&out, "within 1s");
}

#[test]
fn a_wrong_client_key_is_an_authentication_error_naming_the_host() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let wrong = test.path().join("wrong_key");
    sshd::keygen(&wrong, "ed25519");
    let inv = inventory(
        &test,
        &sshd.user,
        &[Entry {
            key: wrong.clone(),
            ..Entry::new(&sshd, "db")
        }],
    );
    let rb = one_step(&test, "db", "true");
    let out = runbook(&test, run_args(&rb, &inv, &[]));
    out.expect_code(1);
    assert_printed(
        &out,
        &format!("authentication to db (127.0.0.1:{}) failed", sshd.port),
    );
    assert_printed(
        &out,
        &format!("{}: not accepted by the server", wrong.display()),
    );
    assert_printed(&out, "authorized_keys");
}

/// A run whose second step is cut by killing sshd: `(test, sshd, inventory, runbook,
/// run id)` once the run has exited 1.
fn run_cut_by_a_dead_sshd() -> Option<(Test, Sshd, PathBuf, PathBuf)> {
    let mut sshd = Sshd::start()?;
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let d = test.path().display().to_string();
    let marker = unique_marker();
    // `long` hangs on its first attempt only; `first` must never run twice.
    let rb = test.file(
        "rb.yaml",
        format!(
            "name: cut\ndefaults: {{ timeout: 1m }}\nsteps:\n\
             \x20 - id: first\n    on: db\n    run: echo once >> {d}/first.log\n    readonly: true\n\
             \x20 - id: long\n    on: db\n    idempotent: true\n    rollback: 'true'\n    run: '[ -e {d}/started ] || {{ touch {d}/started; sleep 60; }}; touch {d}/finished # {marker}'\n\
             \x20 - id: last\n    on: db\n    run: touch {d}/last\n    readonly: true\n"
        ),
    );
    let child = test
        .command(run_args(&rb, &inv, &["--run-id", "cut-1"]))
        .env_remove("SSH_AUTH_SOCK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the long step to start", Duration::from_secs(10), || {
        test.path().join("started").exists()
    });
    sshd.kill_all();
    let killed = Instant::now();
    let out = Outcome::from(child.wait_with_output().unwrap());
    out.expect_code(1);
    assert!(killed.elapsed() < Duration::from_secs(10));
    assert_printed(&out, &format!("db (127.0.0.1:{})", sshd.port));
    assert!(!test.path().join("finished").exists());
    wait_for("the cut command to stop", Duration::from_secs(5), || {
        pgrep(&marker).is_empty()
    });
    Some((test, sshd, inv, rb))
}

#[test]
fn sshd_killed_during_a_step_fails_the_step() {
    let _ = run_cut_by_a_dead_sshd();
}

#[test]

fn after_sshd_comes_back_resume_finishes_the_run() {
    let Some((test, mut sshd, _inv, _rb)) = run_cut_by_a_dead_sshd() else {
        return;
    };
    sshd.restart();
    runbook(&test, ["resume", "cut-1"]).expect_code(0);
    let d = test.path();
    assert!(d.join("finished").exists() && d.join("last").exists());
    let first = std::fs::read_to_string(d.join("first.log")).unwrap();
    assert_eq!(first, "once\n", "a succeeded step ran again");
}

#[test]
fn a_dry_run_opens_no_connection() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let flag = test.path().join("ran");
    let rb = one_step(&test, "db", &format!("touch {}", flag.display()));
    // The helper's own readiness check is a connection too.
    let before = sshd.connections();
    runbook(&test, run_args(&rb, &inv, &["--dry-run"])).expect_code(0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(sshd.connections(), before, "{}", sshd.log_text());
    assert!(!flag.exists());
}

#[test]
fn a_probe_runs_read_only_steps_over_ssh_and_changes_nothing() {
    let Some(sshd) = Sshd::start() else { return };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let inv = inventory(&test, &sshd.user, &[Entry::new(&sshd, "db")]);
    let d = test.path().display().to_string();
    let rb = test.file(
        "rb.yaml",
        format!(
            "name: p\ndefaults: {{ timeout: 1m }}\nsteps:\n\
             \x20 - id: look\n    on: db\n    run: 'echo \"$RUNBOOK_MODE\" > {d}/looked'\n    readonly: true\n\
             \x20 - id: change\n    on: db\n    run: touch {d}/changed\n    rollback: 'true'\n"
        ),
    );
    runbook(&test, run_args(&rb, &inv, &["--dry-run", "--probe"])).expect_code(0);
    let looked = std::fs::read_to_string(test.path().join("looked")).unwrap();
    assert_eq!(looked, "PROBE\n");
    assert!(!test.path().join("changed").exists());
    assert_eq!(sshd.accepted_logins(), 1);
}

#[test]
fn twenty_hosts_fan_out_never_more_than_max_parallel_at_once() {
    let addresses: Vec<String> = (2..=21).map(|i| format!("127.0.0.{i}")).collect();
    let listen: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let Some(fleet) = Fleet::start(&listen) else {
        return;
    };
    let test = Test::new();
    test.file("known_hosts", fleet.known_hosts());
    let names: Vec<String> = (2..=21).map(|i| format!("site{i:02}")).collect();
    let entries: Vec<Entry> = names
        .iter()
        .zip(&listen)
        .map(|(name, address)| Entry {
            name,
            address,
            port: fleet.server(address).port,
            key: fleet.client_key().to_path_buf(),
            extra: "",
        })
        .collect();
    let inv = inventory(&test, fleet.user(), &entries);
    let log = test.path().join("fan.log");
    let rb = test.file(
        "fan.yaml",
        format!(
            "name: fan\nsteps:\n  - id: all-sites\n    on: fleet\n    max_parallel: 5\n    readonly: true\n    timeout: 1m\n    \
             run: echo \"+ $RUNBOOK_HOST\" >> {log}; sleep 0.3; echo \"- $RUNBOOK_HOST\" >> {log}\n",
            log = log.display()
        ),
    );
    runbook(&test, run_args(&rb, &inv, &[])).expect_code(0);
    let journal = std::fs::read_to_string(&log).unwrap();
    let (mut running, mut most, mut started) = (0i32, 0, Vec::new());
    for line in journal.lines() {
        match line.split_once(' ') {
            Some(("+", host)) => {
                running += 1;
                started.push(host.to_owned());
            }
            Some(("-", _)) => running -= 1,
            _ => panic!("bad line {line:?}"),
        }
        most = most.max(running);
    }
    started.sort();
    assert_eq!(started, names);
    assert!(most <= 5, "{most} at once:\n{journal}");
    assert!(most >= 2, "never ran in parallel:\n{journal}");
    assert_eq!(fleet.accepted_logins(), 20);
    // Each host was reached on its own address.
    for address in &listen {
        let server = fleet.server(address);
        assert!(
            server
                .log_text()
                .contains(&format!("on {address} port {}", server.port)),
            "{address}"
        );
    }
}

/// The bundled lab, copied, with every host turned into an SSH host with an address of
/// its own (127.0.0.2, .3, …) served by the fleet; the workdirs stay (the servers are this
/// machine). `reset` then builds the lab with those addresses, so DNS and the tools agree
/// with the inventory. Returns the copy's folder and inventory.
fn lab_over_ssh(test: &Test) -> Option<(PathBuf, PathBuf, Fleet)> {
    let lab = test.path().join("lab");
    let status = Command::new("cp")
        .arg("-R")
        .arg(support::repo().join("examples/lab"))
        .arg(&lab)
        .status()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(lab.join("servers"));
    let original = std::fs::read_to_string(lab.join("inventory.yaml")).unwrap();
    let hosts = original.matches("ansible_host: ").count();
    let addresses: Vec<String> = (2..2 + hosts).map(|i| format!("127.0.0.{i}")).collect();
    let listen: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let fleet = Fleet::start(&listen)?;
    let mut yaml = String::new();
    let mut next = addresses.iter();
    for line in original.lines() {
        let line = line.replace("runbook_transport: local", "runbook_transport: ssh");
        let line = match line.split_once("ansible_host: ") {
            Some((head, tail)) => {
                let address = next.next().unwrap();
                let rest = tail.split_once(',').map_or("", |(_, rest)| rest);
                let port = fleet.server(address).port;
                format!("{head}ansible_host: {address}, ansible_port: {port},{rest}")
            }
            None => line,
        };
        yaml.push_str(&line);
        yaml.push('\n');
        if line.trim() == "vars:" && !yaml.contains("ansible_user") {
            let _ = write!(
                yaml,
                "    ansible_user: {}\n    ansible_ssh_private_key_file: {}\n    runbook_known_hosts: known_hosts\n",
                fleet.user(),
                fleet.client_key().display()
            );
        }
    }
    assert!(!yaml.contains("runbook_transport: local"));
    let inventory = lab.join("inventory.yaml");
    std::fs::write(&inventory, yaml).unwrap();
    std::fs::write(lab.join("known_hosts"), fleet.known_hosts()).unwrap();
    let reset = Command::new(lab.join("reset")).output().unwrap();
    assert!(reset.status.success(), "{reset:?}");
    let address = std::fs::read_to_string(lab.join("servers/hq-ops/address")).unwrap();
    assert!(address.starts_with("127.0.0."), "{address}");
    Some((lab, inventory, fleet))
}

#[test]
fn the_bundled_runbooks_recover_an_sshd_backed_lab() {
    let test = Test::new().env("RUNBOOK_SECRET_DNS_TOKEN", "lab-token");
    let Some((lab, inventory, fleet)) = lab_over_ssh(&test) else {
        return;
    };
    let check = |scenarios: &[&str]| {
        Command::new(lab.join("check"))
            .args(scenarios)
            .output()
            .unwrap()
    };
    assert!(
        !check(&["failover"]).status.success(),
        "the lab starts broken"
    );
    for name in [
        "emr-failover",
        "clinic-reattach",
        "qqr-restore",
        "groupware-fileserver-restore",
    ] {
        let runbook_file = support::repo().join(format!("runbooks/{name}.yaml"));
        let out = runbook(&test, run_args(&runbook_file, &inventory, &["--yes"]));
        out.expect_code(0);
    }
    let checked = check(&["all"]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    // The commands really went over SSH: one login per host the runbooks touched.
    assert!(fleet.accepted_logins() >= 10, "{}", fleet.log_text());
}

/// `--dry-run --probe`'s host checks, at library level: every host of the plan connected to
/// once, with what went wrong where it did, and the connections kept for the steps.
#[tokio::test]
async fn a_probe_connects_to_every_host_and_reports_each() {
    use runbook::transport::{SshOptions, SshTransport, Transport as _};
    let Some(sshd) = Sshd::start_on(&["127.0.0.1", "127.0.0.2"]) else {
        return;
    };
    let test = Test::new();
    trust(&test, &sshd, &["127.0.0.1"]);
    let wrong = test.path().join("wrong_key");
    sshd::keygen(&wrong, "ed25519");
    let down = sshd::free_port();
    let inv = inventory(
        &test,
        &sshd.user,
        &[
            Entry::new(&sshd, "db"),
            Entry {
                address: "127.0.0.2",
                ..Entry::new(&sshd, "new-site")
            },
            Entry {
                key: wrong,
                ..Entry::new(&sshd, "bad-login")
            },
            Entry {
                port: down,
                ..Entry::new(&sshd, "dark")
            },
        ],
    );
    let rb = test.file(
        "probe.yaml",
        "name: p\nsteps:\n  - id: look\n    on: fleet\n    run: 'true'\n    readonly: true\n    timeout: 1m\n  - id: again\n    on: db\n    run: 'true'\n    readonly: true\n    timeout: 1m\n",
    );
    let inventory_source =
        runbook::source::Source::new(inv.clone(), std::fs::read_to_string(&inv).unwrap());
    let inventory = runbook::inventory::Inventory::load(&inventory_source, None).unwrap();
    let source = runbook::source::Source::new(rb.clone(), std::fs::read_to_string(&rb).unwrap());
    let (parsed, _) = runbook::runbook::parse(&source);
    let (plan, diagnostics) = runbook::plan::plan(
        parsed.unwrap(),
        &runbook::plan::Inputs {
            source: &source,
            inventory: Some(&inventory),
            vars: &std::collections::BTreeMap::new(),
        },
    );
    let plan = plan.unwrap_or_else(|| panic!("{diagnostics:?}"));
    let transport = SshTransport::new(SshOptions {
        accept_new_host_keys: false,
        user_known_hosts: test.path().join(".ssh/known_hosts"),
        default_identities: vec![],
    });

    let checks = runbook::probe::connect_all(&plan, &transport, 2).await;
    let names: Vec<&str> = checks.iter().map(|c| c.host.as_str()).collect();
    assert_eq!(names, ["db", "new-site", "bad-login", "dark"]);
    let fingerprint = sshd.fingerprint("host_ed25519");
    let [db, new_site, bad_login, dark] = &checks[..] else {
        unreachable!()
    };
    assert!(db.ok(), "{db:?}");
    assert_eq!(db.fingerprint(), Some(format!("ssh-ed25519 {fingerprint}")));
    assert!(db.event().is_some());
    assert!(new_site.reachable() && !new_site.ok());
    assert!(new_site.fingerprint().unwrap().contains("SHA256:"));
    assert!(bad_login.reachable() && !bad_login.ok());
    assert!(!dark.reachable());

    let summary =
        runbook::probe::render_probe_summary(&plan, &checks, &runbook::state::RunState::default());
    let line = |host: &str| {
        summary
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no line for {host}:\n{summary}"))
            .to_owned()
    };
    let port = sshd.port;
    assert!(
        line("db").contains(&format!(
            "127.0.0.1:{port}  reachable, host key ssh-ed25519 {fingerprint}, auth ok"
        )),
        "{summary}"
    );
    assert!(
        line("new-site").contains(&format!("127.0.0.2:{port}  reachable, HOST KEY REFUSED")),
        "{summary}"
    );
    assert!(
        line("bad-login").contains("AUTHENTICATION FAILED"),
        "{summary}"
    );
    assert!(
        line("dark").contains(&format!("127.0.0.1:{down}  UNREACHABLE")),
        "{summary}"
    );
    assert!(summary.contains("unknown host key"), "{summary}");
    assert!(
        summary.ends_with("1 of 4 hosts ready; 0 checks failed\n"),
        "{summary}"
    );

    // The probe's connection is the one the steps then use.
    let command = runbook::transport::Command {
        script: "true".into(),
        env: vec![],
        timeout: Some(Duration::from_secs(10)),
    };
    let db_host = inventory.host("db").unwrap();
    assert!(transport.run(db_host, &command).await.unwrap().succeeded());
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log_text());
}
