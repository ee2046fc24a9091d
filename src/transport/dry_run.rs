//! The `dry-run` transport: sends nothing, opens no connection, and remembers what it
//! would have run, so a rehearsal goes through the very same engine as a real run.

use std::sync::{Mutex, PoisonError};

use super::{BoxFuture, Command, Output, Transport, TransportError};
use crate::inventory::Host;

/// Answers every command with success and empty output.
#[derive(Debug, Default)]
pub struct DryRunTransport {
    sent: Mutex<Vec<(String, String)>>,
}

impl DryRunTransport {
    /// `(host, script)` of every command that would have run, in order.
    #[must_use]
    pub fn would_have_run(&self) -> Vec<(String, String)> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Transport for DryRunTransport {
    fn run<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((host.name.clone(), command.script.clone()));
        Box::pin(async {
            Ok(Output {
                exit_code: Some(0),
                ..Output::default()
            })
        })
    }

    fn connect<'a>(&'a self, _host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
        Box::pin(async { Ok("dry run: no connection".to_string()) })
    }
}
