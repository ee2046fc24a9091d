//! `tracing` set-up: human or JSON lines on stderr at the level `-v`/`-q` choose, and,
//! once a run folder exists, every event at info level as JSON in `runs/RUN_ID/log.jsonl`.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// The run's log file, opened when the run folder is known.
static RUN_LOG: Mutex<Option<File>> = Mutex::new(None);

/// Installs the subscriber. `verbosity`: -1 quiet, 0 warnings, 1 info, 2+ debug.
pub fn init(verbosity: i8, json: bool, color: bool) {
    let level = match verbosity {
        ..0 => "error",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let stderr_filter = EnvFilter::try_from_env("RUNBOOK_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("runbook={level}")));
    let stderr_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(io::stderr)
            .with_filter(stderr_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(io::stderr)
            .with_ansi(color)
            .with_target(false)
            .with_filter(stderr_filter)
            .boxed()
    };
    let file_layer = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(RunLog)
        .with_filter(EnvFilter::new("runbook=info"));
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
}

/// From now on, log lines also go to `path` (appending: a resumed run adds to its log).
pub fn log_to(path: &Path) -> io::Result<()> {
    let file = File::options().create(true).append(true).open(path)?;
    *RUN_LOG.lock().unwrap_or_else(PoisonError::into_inner) = Some(file);
    Ok(())
}

#[derive(Clone, Copy)]
struct RunLog;

impl io::Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match RUN_LOG
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(file) => file.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match RUN_LOG
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl MakeWriter<'_> for RunLog {
    type Writer = RunLog;
    fn make_writer(&self) -> RunLog {
        RunLog
    }
}
