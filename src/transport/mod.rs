//! How a rendered command reaches a host: one small trait, three implementations
//! (`local`, `ssh`, `dry_run`). The executor knows only this trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

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

    fn connect<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
        self.pick(host).connect(host)
    }
}
