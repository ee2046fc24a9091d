//! How a rendered command reaches a host: one small trait, three implementations
//! (`local`, `ssh`, `dry_run`). The executor knows only this trait.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::inventory::{Host, TransportKind};

pub mod dry_run;
pub mod local;
pub mod ssh;
mod tail;

pub use dry_run::DryRunTransport;
pub use local::LocalTransport;
pub use ssh::{SshOptions, SshTransport};

/// A command ready to send: rendered, with the environment the tool adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The shell text, run with `sh -c` (local) or as the SSH exec request.
    pub script: String,
    /// `RUNBOOK_RUN_ID`, `RUNBOOK_STEP`, `RUNBOOK_HOST`, `RUNBOOK_MODE`.
    pub env: Vec<(String, String)>,
    /// Kill the command (and what it started) after this long.
    pub timeout: Option<Duration>,
}

/// What came back from a finished command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// `None` when the command was killed (timeout, signal).
    pub exit_code: Option<i32>,
    /// The command's output, at most `OUTPUT_CAP` bytes each (the tail is kept).
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Output {
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}

/// The most output kept per stream: a step that prints gigabytes must not fill the memory
/// or the journal. The tail is kept, since that is where errors are.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// Why a command could not be run at all (as opposed to running and failing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {host} ({address}): {message}")]
    Connect {
        host: String,
        address: String,
        message: String,
    },
    #[error("host key of {host} ({address}) refused: {message}")]
    HostKey {
        host: String,
        address: String,
        message: String,
    },
    #[error("authentication to {host} ({address}) failed: {message}")]
    Auth {
        host: String,
        address: String,
        message: String,
    },
    #[error("connection to {host} ({address}) lost: {message}")]
    Lost {
        host: String,
        address: String,
        message: String,
    },
    #[error("cannot start the command on {host}: {message}")]
    Spawn { host: String, message: String },
    #[error("the command was not sent to {host}: its start could not be journaled")]
    NotCleared { host: String },
}

/// Clearance to send a command, given once its `step_started` is on disk (SPEC §6: the
/// journal has it before the command is sent). Until then a transport may get the command
/// ready (the local one starts its shell, which is most of a short step's cost) but sends
/// nothing; if the clearance is withdrawn, it sends nothing at all.
#[derive(Debug)]
pub struct Go(Option<oneshot::Receiver<()>>);

/// The giving side of a pending [`Go`]; dropping it without `give` withdraws the clearance.
#[derive(Debug)]
pub struct Clearance(oneshot::Sender<()>);

impl Go {
    /// Cleared already: for commands with nothing to journal first (`verify`, probes).
    #[must_use]
    pub fn now() -> Go {
        Go(None)
    }

    /// A clearance to give later, and the `Go` that waits for it.
    #[must_use]
    pub fn pending() -> (Clearance, Go) {
        let (tx, rx) = oneshot::channel();
        (Clearance(tx), Go(Some(rx)))
    }

    /// Waits for the clearance: `true` once given, `false` if it was withdrawn.
    pub async fn given(self) -> bool {
        match self.0 {
            None => true,
            Some(rx) => rx.await.is_ok(),
        }
    }
}

impl Clearance {
    pub fn give(self) {
        // A transport that stopped waiting (it failed to get ready) needs no answer.
        let _ = self.0.send(());
    }
}

/// `command.script` for a shell that runs it with `eval`: preceded, on the same line so the
/// script's own line numbers hold in error messages, by entering the host's workdir (when
/// it has one) and exporting the command's environment. Every value is single-quoted.
pub(crate) fn with_prelude(host: &Host, command: &Command) -> Result<String, TransportError> {
    let mut text = String::new();
    if let Some(dir) = &host.workdir {
        let dir = quote(&dir.to_string_lossy());
        let _ = write!(
            text,
            "cd -- {dir} 2>/dev/null || {{ printf 'runbook: cannot enter the workdir %s \
             (runbook_workdir): no such folder on this host, or no permission\\n' {dir} >&2; \
             exit 1; }}; "
        );
    }
    text.push_str(&exported(host, command)?);
    Ok(text)
}

/// `command.script` preceded by `export NAME=value …; ` on the script's first line (servers
/// rarely accept SetEnv, and a shell exporting them costs no `env` process).
pub(crate) fn exported(host: &Host, command: &Command) -> Result<String, TransportError> {
    let mut text = String::new();
    for (name, value) in &command.env {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(TransportError::Spawn {
                host: host.name.clone(),
                message: format!("invalid environment variable name {name:?}"),
            });
        }
        text.push_str(if text.is_empty() { "export " } else { " " });
        text.push_str(&quote(&format!("{name}={value}")));
    }
    if !text.is_empty() {
        text.push_str("; ");
    }
    text.push_str(&command.script);
    Ok(text)
}

/// Single-quotes `value` for `sh`, always (unlike `template::shell_quote`, which leaves
/// plain words bare): the transports build scripts whose shape must not depend on values.
pub(crate) fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// A marker no command prints by chance: 128 random bits (`RandomState` is seeded from the
/// operating system's randomness).
pub(crate) fn nonce() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    format!(
        "N{:016x}{:016x}",
        RandomState::new().hash_one(1u8),
        RandomState::new().hash_one(2u8)
    )
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs commands on hosts. Implementations keep one connection per host and reuse it.
pub trait Transport: Send + Sync {
    /// Runs `command` on `host` and waits for it (or for its timeout).
    fn run<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
    ) -> BoxFuture<'a, Result<Output, TransportError>>;

    /// Runs `command` on `host` once `go` is given. A transport that can get a command
    /// ready before it may be sent overrides this, so the journal's fsync and the
    /// preparation overlap.
    fn run_after<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
        go: Go,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(async move {
            if !go.given().await {
                return Err(TransportError::NotCleared {
                    host: host.name.clone(),
                });
            }
            self.run(host, command).await
        })
    }

    /// Opens (or checks) the connection to `host` without running anything: probes use it.
    /// Returns a description of the connection (e.g. the host-key fingerprint).
    fn connect<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>>;
}

/// Sends each host's commands through the transport its inventory entry names
/// (`runbook_transport: ssh|local`).
pub struct Router {
    pub local: Arc<dyn Transport>,
    pub ssh: Arc<dyn Transport>,
}

impl Router {
    fn pick(&self, host: &Host) -> &dyn Transport {
        match host.transport {
            TransportKind::Local => self.local.as_ref(),
            TransportKind::Ssh => self.ssh.as_ref(),
        }
    }
}

impl Transport for Router {
    fn run<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        self.pick(host).run(host, command)
    }

    fn run_after<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
        go: Go,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        self.pick(host).run_after(host, command, go)
    }

    fn connect<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
        self.pick(host).connect(host)
    }
}
