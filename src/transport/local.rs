//! The `local` transport: runs a step on this machine with `sh -c`, in the host's
//! `runbook_workdir`. It is how the lab and the tests run without servers, so it keeps the
//! same promises as SSH: a timeout kills everything the command started, output is capped,
//! and secrets never reach the command through the environment.

use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::tail::Tail;
use super::{BoxFuture, Command, Output, Transport, TransportError};
use crate::inventory::Host;

/// Variables with this prefix hold secrets for templates; a command never inherits them.
const SECRET_ENV_PREFIX: &[u8] = b"RUNBOOK_SECRET_";

/// Runs commands on this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalTransport;

impl Transport for LocalTransport {
    fn run<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(run(host, command))
    }

    fn connect<'a>(&'a self, _host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
        Box::pin(async { Ok("local".to_owned()) })
    }
}

async fn run(host: &Host, command: &Command) -> Result<Output, TransportError> {
    let mut child = shell(host, command)
        .spawn()
        .map_err(|e| spawn_error(host, &format!("cannot start `sh`: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| spawn_error(host, "the shell exited before it could be watched"))?;
    // The child leads its own process group, so the group id is its pid.
    let mut group = GroupGuard(Some(Pid::from_raw(pid.cast_signed())));
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(spawn_error(host, "the shell's output pipes are missing"));
    };

    let (mut out, mut err) = (Tail::default(), Tail::default());
    let deadline = async {
        match command.timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let finished = {
        // Both pipes are drained while waiting, so a chatty command never blocks on a full pipe.
        let work =
            async { tokio::join!(pump(stdout, &mut out), pump(stderr, &mut err), child.wait()) };
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
    let status = status.map_err(|e| spawn_error(host, &format!("cannot wait for `sh`: {e}")))?;
    group.disarm();
    Ok(Output {
        exit_code: status.code(),
        stdout: out.into_string(),
        stderr: err.into_string(),
        timed_out: false,
    })
}

/// `sh -c SCRIPT` in the workdir, in a process group of its own, without secrets in its
/// environment and with nothing on stdin (a step is never interactive).
fn shell(host: &Host, command: &Command) -> tokio::process::Command {
    // An absolute path: a PATH search costs a failed execve per directory, per step.
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&command.script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(dir) = &host.workdir {
        cmd.current_dir(dir);
    }
    for (name, _) in std::env::vars_os() {
        if name.as_encoded_bytes().starts_with(SECRET_ENV_PREFIX) {
            cmd.env_remove(name);
        }
    }
    cmd.envs(command.env.iter().map(|(k, v)| (k, v)));
    cmd
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

fn spawn_error(host: &Host, message: &str) -> TransportError {
    TransportError::Spawn {
        host: host.name.clone(),
        message: match &host.workdir {
            Some(dir) => format!("{message} (workdir {})", dir.display()),
            None => message.to_owned(),
        },
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
        LocalTransport
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
        let out = LocalTransport
            .run(&host(Some(dir.path().to_path_buf())), &command("pwd", None))
            .await
            .unwrap();
        assert_eq!(
            out.stdout.trim(),
            dir.path().canonicalize().unwrap().to_str().unwrap()
        );
    }

    #[tokio::test]
    async fn a_missing_workdir_is_a_spawn_error_naming_it() {
        let err = LocalTransport
            .run(
                &host(Some("/nonexistent/runbook-dir".into())),
                &command("true", None),
            )
            .await
            .unwrap_err();
        assert!(matches!(&err, TransportError::Spawn { .. }), "{err:?}");
        assert!(
            err.to_string().contains("/nonexistent/runbook-dir"),
            "{err}"
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
