//! Errors that end a command, and the one place they map to exit codes (SPEC §1).

use crate::diagnostic::Diagnostic;

/// How a command ended other than in success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Problems in the operator's files, already collected as diagnostics.
    #[error("{} problem(s) found", .0.len())]
    Invalid(Vec<Diagnostic>),
    /// A usage mistake or unusable input: the message says what to do.
    #[error("{0}")]
    Usage(String),
    /// A step failed and the run stopped; it is checkpointed and resumable.
    #[error("{0}")]
    RunFailed(String),
    /// Waiting for an approval or an operator decision.
    #[error("{0}")]
    Paused(String),
    /// Another process holds the run's lock, or an earlier run is unfinished.
    #[error("{0}")]
    Locked(String),
    /// Ctrl-C or SIGTERM: checkpointed, resumable.
    #[error("{0}")]
    Interrupted(String),
    /// The tool itself could not do its work (disk full, state folder unwritable…).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The exit code of SPEC §1 for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::RunFailed(_) | Error::Internal(_) => 1,
            Error::Invalid(_) | Error::Usage(_) => 2,
            Error::Paused(_) => 3,
            Error::Locked(_) => 4,
            Error::Interrupted(_) => 130,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
