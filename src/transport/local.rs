//! The `local` transport: runs each command in a fresh `sh` on this machine, in the host's
//! `runbook_workdir`. It is how the lab and the tests run without servers, so it keeps the
//! same promises as SSH: a timeout kills everything the command started, output is capped,
//! and secrets never reach the command through the environment.
//!
//! Starting `sh` is most of what a short step costs, so the shell is started before the
//! command may be sent and then waits for it on its stdin (see `SHELL`): its start-up
//! overlaps the journal's fsync, and, for a host that ran a command before, the previous
//! command too, since such a host keeps one started shell in reserve (started on a thread
//! of the blocking pool, as spawning blocks the caller until `sh` is executing). Each
//! command still gets a shell and a process group of its own.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;

use super::tail::Tail;
use super::{BoxFuture, Command, Go, Output, Transport, TransportError, nonce, with_prelude};
use crate::inventory::Host;

/// Variables with this prefix hold secrets for templates; a command never inherits them.
const SECRET_ENV_PREFIX: &[u8] = b"RUNBOOK_SECRET_";

/// Reads a script from stdin (a line with a nonce, the script's lines, the nonce again),
/// then runs it with `eval` and nothing on stdin. At end of file before the whole script
/// came (clearance withdrawn, this process gone) it runs nothing. No positional parameters
/// and no variable of its own are left for the script to see, as under `sh -c`.
const SHELL: &str = r#"IFS= read -r n || exit 125
c=
while IFS= read -r l; do [ "$l" = "$n" ] && break; c="$c$l
"; done
[ "$l" = "$n" ] || exit 125
exec </dev/null
unset n l
eval "unset c; $c""#;

/// Runs commands on this machine.
#[derive(Debug, Default)]
pub struct LocalTransport {
    /// Per host that ran a command: a started shell kept for its next command, if any.
    spares: Arc<Mutex<HashMap<String, Option<Child>>>>,
}

impl Transport for LocalTransport {
    fn run<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(self.run_command(host, command, Go::now()))
    }

    fn run_after<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
        go: Go,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(self.run_command(host, command, go))
    }

    fn connect<'a>(&'a self, _host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
        Box::pin(async { Ok("local".to_owned()) })
    }
}

impl LocalTransport {
    async fn run_command(
        &self,
        host: &Host,
        command: &Command,
        go: Go,
    ) -> Result<Output, TransportError> {
        let script = with_prelude(host, command)?;
        let (mut child, reused) = match self.take_spare(host) {
            Some(spare) => (spare, true),
            None => (start_shell(&host.name)?, false),
        };
        self.keep_spare(host);
        let pid = child.id().ok_or_else(|| {
            spawn_error(&host.name, "the shell exited before it could be watched")
        })?;
        // The child leads its own process group, so the group id is its pid.
        let mut group = GroupGuard(Some(Pid::from_raw(pid.cast_signed())));
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(&host.name, "the shell's pipes are missing"));
        };
        if !go.given().await {
            // Dropping stdin ends the shell before it runs anything; the guard does the rest.
            return Err(TransportError::NotCleared {
                host: host.name.clone(),
            });
        }
        let nonce = nonce();
        stdin
            .write_all(format!("{nonce}\n{script}\n{nonce}\n").as_bytes())
            .await
            .map_err(|e| {
                let which = if reused { "kept" } else { "started" };
                spawn_error(
                    &host.name,
                    &format!("the {which} shell did not take the command: {e}"),
                )
            })?;
        drop(stdin);

        let (mut out, mut err) = (Tail::default(), Tail::default());
        let deadline = async {
            match command.timeout {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        let finished = {
            // Both pipes are drained while waiting, so a chatty command never blocks on a full
            // pipe.
            let work = async {
                tokio::join!(pump(stdout, &mut out), pump(stderr, &mut err), child.wait())
            };
            tokio::select! {
                ((), (), status) = work => Some(status),
                () = deadline => None,
            }
        };
        let Some(status) = finished else {
            group.kill();
            // Reap the shell; its group is dead, so this returns at once.
            let _ = child.wait().await;
            return Ok(Output {
                exit_code: None,
                stdout: out.into_string(),
                stderr: err.into_string(),
                timed_out: true,
            });
        };
        let status =
            status.map_err(|e| spawn_error(&host.name, &format!("cannot wait for `sh`: {e}")))?;
        group.disarm();
        Ok(Output {
            exit_code: status.code(),
            stdout: out.into_string(),
            stderr: err.into_string(),
            timed_out: false,
        })
    }

    /// The shell kept for `host`, if one is there and still waiting.
    fn take_spare(&self, host: &Host) -> Option<Child> {
        let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
        let mut spare = spares.get_mut(&host.name)?.take()?;
        // One that ended meanwhile (killed from outside) is of no use.
        matches!(spare.try_wait(), Ok(None)).then_some(spare)
    }

    /// From the second command on a host, starts the shell for its next one on a thread of
    /// the blocking pool, so that neither its start nor the spawn itself delays this one.
    fn keep_spare(&self, host: &Host) {
        {
            let mut spares = self.spares.lock().unwrap_or_else(PoisonError::into_inner);
            match spares.get(&host.name) {
                None => {
                    spares.insert(host.name.clone(), None);
                    return;
                }
                Some(Some(_)) => return,
                Some(None) => {}
            }
        }
        let (spares, name) = (Arc::clone(&self.spares), host.name.clone());
        tokio::task::spawn_blocking(move || {
            // If it cannot start now, the next command starts its own and says why.
            let Ok(child) = start_shell(&name) else {
                return;
            };
            let mut spares = spares.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot @ None) = spares.get_mut(&name) {
                *slot = Some(child);
            }
        });
    }
}

/// `sh` running `SHELL`, in a process group of its own, without secrets in its environment.
fn start_shell(host: &str) -> Result<Child, TransportError> {
    // An absolute path: a PATH search costs a failed execve per directory.
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.args(["-c", SHELL, "sh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(SECRET_ENV_PREFIX) {
            cmd.env_remove(name);
        }
    }
    cmd.spawn()
        .map_err(|e| spawn_error(host, &format!("cannot start `sh`: {e}")))
}

/// Streams `pipe` into `tail` until end of file (or a read error, which ends the output too).
async fn pump(mut pipe: impl AsyncRead + Unpin, tail: &mut Tail) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = pipe.read(&mut buf).await {
        tail.push(&buf[..n]);
    }
}

/// Kills the command's whole process group when dropped while armed: a timed-out or
/// abandoned command must not leave a `sleep` (or worse) behind.
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(group) = self.0.take() {
            // ESRCH (already gone) is the outcome we want anyway.
            let _ = killpg(group, Signal::SIGKILL);
        }
    }

    /// The command finished on its own: its pid may be reused, so never signal it.
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_error(host: &str, message: &str) -> TransportError {
    TransportError::Spawn {
        host: host.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::inventory::TransportKind;
    use crate::transport::OUTPUT_CAP;

    fn host(workdir: Option<PathBuf>) -> Host {
        Host {
            name: "lab".into(),
            address: "localhost".into(),
            port: 22,
            user: None,
            identity_files: vec![],
            transport: TransportKind::Local,
            workdir,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
            vars: BTreeMap::new(),
        }
    }

    fn command(script: &str, timeout: Option<Duration>) -> Command {
        Command {
            script: script.into(),
            env: vec![("RUNBOOK_STEP".into(), "s1".into())],
            timeout,
        }
    }

    async fn run_local(script: &str, timeout: Option<Duration>) -> Output {
        LocalTransport::default()
            .run(&host(None), &command(script, timeout))
            .await
            .unwrap()
    }

    /// A process is gone when /proc has no entry for it, or only a zombie nobody reaped.
    fn process_is_gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn exit_code_stdout_and_stderr_come_back_separately() {
        let out = run_local("echo out; echo err >&2; exit 3", None).await;
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
    }

    #[tokio::test]
    async fn command_env_is_added() {
        let out = run_local("echo \"$RUNBOOK_STEP\"", None).await;
        assert_eq!(out.stdout, "s1\n");
    }

    #[tokio::test]
    async fn runs_in_the_workdir() {
        let dir = tempfile::tempdir().unwrap();
        let out = LocalTransport::default()
            .run(&host(Some(dir.path().to_path_buf())), &command("pwd", None))
            .await
            .unwrap();
        assert_eq!(
            out.stdout.trim(),
            dir.path().canonicalize().unwrap().to_str().unwrap()
        );
    }

    #[tokio::test]
    async fn a_missing_workdir_fails_the_command_and_names_the_folder() {
        let out = LocalTransport::default()
            .run(
                &host(Some("/nonexistent/runbook-dir".into())),
                &command("echo ran", None),
            )
            .await
            .unwrap();
        assert_eq!(out.exit_code, Some(1));
        assert_eq!(out.stdout, "");
        assert!(
            out.stderr
                .contains("cannot enter the workdir /nonexistent/runbook-dir"),
            "{}",
            out.stderr
        );
    }

    #[tokio::test]
    async fn exit_by_signal_has_no_exit_code() {
        let out = run_local("kill -KILL $$", None).await;
        assert_eq!(out.exit_code, None);
        assert!(!out.timed_out);
    }

    #[tokio::test]
    async fn timeout_kills_the_command_and_what_it_started() {
        let started = Instant::now();
        let out = run_local(
            "sleep 300 & echo $!; sleep 300",
            Some(Duration::from_millis(300)),
        )
        .await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(out.timed_out);
        assert_eq!(out.exit_code, None);
        assert!(!out.succeeded());
        let background = out.stdout.trim();
        assert!(!background.is_empty());
        // The kill is immediate, but give the kernel a moment to tear the process down.
        for _ in 0..50 {
            if process_is_gone(background) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("background sleep {background} survived the timeout");
    }

    /// `PID PGRP` of the command's shell, then what it finds of the previous command.
    const WHO_AM_I: &str = r#"read -r s </proc/$$/stat; set -- ${s##*") "}
echo "$$ $3"; echo "${x-none} ${y-none}"; x=1; export y=2"#;

    #[tokio::test]
    async fn commands_on_one_host_each_get_a_fresh_shell_in_a_group_of_its_own() {
        let transport = LocalTransport::default();
        let mut pids = Vec::new();
        // The third and later commands run on shells started ahead of them.
        for _ in 0..4 {
            let out = run_on(&transport, WHO_AM_I).await;
            let lines: Vec<&str> = out.stdout.lines().collect();
            let ids: Vec<&str> = lines[0].split(' ').collect();
            assert_eq!(ids[0], ids[1], "the shell leads its own process group");
            assert_eq!(
                lines[1], "none none",
                "state leaked from a previous command"
            );
            pids.push(ids[0].to_owned());
        }
        pids.dedup();
        assert_eq!(pids.len(), 4, "{pids:?}");
    }

    #[tokio::test]
    async fn the_script_sees_no_arguments_and_none_of_the_shells_own_variables() {
        let out = run_local(r#"echo "$#|${n-u}|${l-u}|${c-u}|$0""#, None).await;
        assert_eq!(out.stdout, "0|u|u|u|sh\n");
    }

    #[tokio::test]
    async fn a_command_reads_nothing_from_stdin() {
        let out = run_local("cat; echo end", None).await;
        assert_eq!(out.stdout, "end\n");
    }

    #[tokio::test]
    async fn a_withdrawn_clearance_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let (clearance, go) = Go::pending();
        drop(clearance);
        let script = format!("touch {}", marker.display());
        let err = LocalTransport::default()
            .run_after(&host(None), &command(&script, None), go)
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::NotCleared { .. }), "{err:?}");
        // The shell was started; give it time to have done what it should not have.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_command_waits_for_its_clearance() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let (clearance, go) = Go::pending();
        let script = format!("touch {}", marker.display());
        let transport = LocalTransport::default();
        let (lab, cmd) = (host(None), command(&script, None));
        let running = transport.run_after(&lab, &cmd, go);
        let check = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let before = marker.exists();
            clearance.give();
            before
        };
        let (out, ran_before) = tokio::join!(running, check);
        assert!(!ran_before, "the command ran before it was cleared");
        assert_eq!(out.unwrap().exit_code, Some(0));
        assert!(marker.exists());
    }

    #[tokio::test]
    async fn a_kept_shell_killed_from_outside_is_replaced() {
        let transport = LocalTransport::default();
        for _ in 0..2 {
            run_on(&transport, "true").await;
        }
        // The kept shell is started on another thread; it is there within moments.
        let mut spare = None;
        for _ in 0..200 {
            spare = transport.take_spare(&host(None));
            if spare.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut spare = spare.expect("a kept shell");
        spare.kill().await.unwrap();
        transport
            .spares
            .lock()
            .unwrap()
            .insert("lab".into(), Some(spare));
        let out = run_on(&transport, "echo fine").await;
        assert_eq!(out.stdout, "fine\n");
    }

    async fn run_on(transport: &LocalTransport, script: &str) -> Output {
        transport
            .run(&host(None), &command(script, None))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn big_output_on_both_streams_keeps_the_tails_without_deadlock() {
        let script = "head -c 300000 /dev/zero | tr '\\0' e >&2 & \
                      head -c 500000 /dev/zero | tr '\\0' o; wait; echo END";
        let out = run_local(script, Some(Duration::from_secs(20))).await;
        assert_eq!(out.exit_code, Some(0));
        assert_eq!(out.stdout.len(), OUTPUT_CAP);
        assert!(out.stdout.ends_with("oooEND\n"));
        assert_eq!(out.stderr.len(), OUTPUT_CAP);
        assert!(out.stderr.bytes().all(|b| b == b'e'));
    }

    /// Run by `secrets_never_reach_the_command` in a child test process that has a secret in
    /// its environment (the test itself cannot set one: `set_var` is unsafe).
    #[tokio::test]
    async fn child_prints_the_secret_env_it_sees() {
        if std::env::var_os("RUNBOOK_TEST_CHILD").is_none() {
            return;
        }
        let out = run_local("env | grep -c '^RUNBOOK_SECRET_' || true", None).await;
        assert_eq!(out.stdout.trim(), "0", "secrets leaked: {out:?}");
    }

    #[test]
    fn secrets_never_reach_the_command() {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "transport::local::tests::child_prints_the_secret_env_it_sees",
            ])
            .env("RUNBOOK_TEST_CHILD", "1")
            .env("RUNBOOK_SECRET_DB_PASSWORD", "hunter2")
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&child.stdout);
        assert!(child.status.success(), "{report}");
        assert!(
            report.contains("1 passed"),
            "the child test did not run: {report}"
        );
    }
}
