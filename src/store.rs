//! The state folder: one folder per run (`runs/RUN_ID/`) holding its journal, copies of
//! the runbook and inventory it started with, its resolved inputs and its reports; and
//! `locks/`. `resume`, `status`, `rollback` and `report` need nothing but a run id.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::event::{Event, Mode};
use crate::journal::{self, Integrity};
use crate::state::RunState;

/// What a run started with, minus secret values: enough to resume it anywhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inputs {
    pub run_id: String,
    pub runbook: String,
    /// Absolute path of the runbook the run started from.
    pub runbook_path: PathBuf,
    pub inventory_path: Option<PathBuf>,
    /// Overrides from `--var` / `--vars-file` (runbook defaults are in the runbook copy).
    pub vars: std::collections::BTreeMap<String, String>,
    /// Names of the secrets the runbook declares; values are never stored.
    pub secrets: Vec<String>,
    pub mode: Mode,
    pub max_parallel: usize,
    pub reason: Option<String>,
    pub created_at: String,
    pub tool_version: String,
}

/// The files of one run.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub id: String,
    pub dir: PathBuf,
}

impl RunDir {
    #[must_use]
    pub fn journal(&self) -> PathBuf {
        self.dir.join("journal.jsonl")
    }
    #[must_use]
    pub fn runbook_copy(&self) -> PathBuf {
        self.dir.join("runbook.yaml")
    }
    #[must_use]
    pub fn inventory_copy(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }
    #[must_use]
    pub fn inputs_path(&self) -> PathBuf {
        self.dir.join("inputs.json")
    }
    #[must_use]
    pub fn log(&self) -> PathBuf {
        self.dir.join("log.jsonl")
    }

    /// Reads `inputs.json`.
    pub fn inputs(&self) -> Result<Inputs, Error> {
        let text = fs::read_to_string(self.inputs_path()).map_err(|e| {
            Error::Usage(format!(
                "run {}: cannot read {}: {e}",
                self.id,
                self.inputs_path().display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Usage(format!(
                "run {}: {} is damaged: {e}",
                self.id,
                self.inputs_path().display()
            ))
        })
    }

    /// Reads the journal: its events and its integrity.
    pub fn read_journal(&self) -> Result<(Vec<Event>, Integrity), Error> {
        let read = journal::read(&self.journal()).map_err(|e| {
            Error::Usage(format!(
                "run {}: cannot read its journal {}: {e}",
                self.id,
                self.journal().display()
            ))
        })?;
        let mut integrity = read.integrity;
        let mut events = Vec::with_capacity(read.events.len());
        for (index, value) in read.events.into_iter().enumerate() {
            match serde_json::from_value::<Event>(value) {
                Ok(event) => events.push(event),
                Err(e) => {
                    if integrity == Integrity::Intact
                        || matches!(integrity, Integrity::TornTail { .. })
                    {
                        integrity = Integrity::Broken {
                            line: index + 1,
                            reason: format!("not an event of this tool: {e}"),
                        };
                    }
                }
            }
        }
        Ok((events, integrity))
    }

    /// The run's state as its journal tells it.
    pub fn state(&self) -> Result<(RunState, Integrity), Error> {
        let (events, integrity) = self.read_journal()?;
        Ok((RunState::from_events(&events), integrity))
    }
}

/// The state folder.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    #[must_use]
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    #[must_use]
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    #[must_use]
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    /// Creates the folder of a new run: `--run-id`, or `NAME-YYYYMMDD-HHMMSS` with a
    /// suffix when taken. Creating the folder is what claims the id (atomic).
    pub fn create_run(&self, runbook: &str, requested: Option<&str>) -> Result<RunDir, Error> {
        let runs = self.runs_dir();
        fs::create_dir_all(&runs).map_err(|e| {
            Error::Internal(format!(
                "cannot create the state folder {}: {e}",
                runs.display()
            ))
        })?;
        if let Some(id) = requested {
            let valid = !id.is_empty()
                && !id.starts_with('.')
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(Error::Usage(format!(
                    "--run-id {id}: use letters, digits, `-`, `_` and `.` only"
                )));
            }
            let dir = runs.join(id);
            return match fs::create_dir(&dir) {
                Ok(()) => Ok(RunDir {
                    id: id.to_string(),
                    dir,
                }),
                // A folder with neither inputs nor journal is a run killed before it began:
                // nothing ran, so the id is free again.
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists
                        && !dir.join("inputs.json").exists()
                        && !dir.join("journal.jsonl").exists() =>
                {
                    Ok(RunDir {
                        id: id.to_string(),
                        dir,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::Usage(format!(
                    "run id {id} is taken: to continue it, `runbook resume {id}`; for a new run, choose another --run-id"
                ))),
                Err(e) => Err(Error::Internal(format!(
                    "cannot create {}: {e}",
                    dir.display()
                ))),
            };
        }
        let stamp = crate::host_info::now_rfc3339();
        // 2026-12-04T15:51:02.123Z -> 20261204-155102
        let digits: String = stamp.chars().filter(char::is_ascii_digit).collect();
        let base = format!(
            "{runbook}-{}-{}",
            &digits[..8.min(digits.len())],
            &digits[8.min(digits.len())..14.min(digits.len())]
        );
        for n in 1..1000 {
            let id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            let dir = runs.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(RunDir { id, dir }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(Error::Internal(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )));
                }
            }
        }
        Err(Error::Internal(format!(
            "cannot find a free run id for {base}"
        )))
    }

    /// An existing run, or a clear error naming the runs there are.
    pub fn open_run(&self, id: &str) -> Result<RunDir, Error> {
        let dir = self.runs_dir().join(id);
        if !id.is_empty() && !id.contains('/') && dir.join("inputs.json").is_file() {
            return Ok(RunDir {
                id: id.to_string(),
                dir,
            });
        }
        let known = self.run_ids();
        let hint = crate::diagnostic::did_you_mean(id, known.iter().map(String::as_str))
            .map_or_else(
                || "`runbook runs` lists the runs".to_string(),
                |best| format!("did you mean {best}?"),
            );
        Err(Error::Usage(format!(
            "no run {id} in {}: {hint}",
            self.runs_dir().display()
        )))
    }

    /// Every run id, oldest first (ids sort by time).
    #[must_use]
    pub fn run_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.runs_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().join("inputs.json").is_file())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_by_cached_key(|id| {
            let created = self
                .open_run(id)
                .and_then(|r| r.inputs())
                .map(|i| i.created_at)
                .unwrap_or_default();
            (created, id.clone())
        });
        ids
    }

    /// The newest run, for `status` without an id.
    pub fn latest(&self) -> Result<RunDir, Error> {
        let id = self
            .run_ids()
            .pop()
            .ok_or_else(|| Error::Usage(format!("no runs yet in {}", self.runs_dir().display())))?;
        self.open_run(&id)
    }
}

/// Writes a file and fsyncs it: copies of inputs must survive the same power cut the
/// journal does. Written aside and renamed over, so that a process killed meanwhile leaves
/// the old file or the new one, never part of one (resume rewrites the copies).
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".partial");
    let aside = PathBuf::from(aside);
    let mut file = fs::File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&aside, path)?;
    crate::journal::sync_parent_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_write_replaces_the_whole_file_and_leaves_nothing_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runbook.yaml");
        write_durably(&path, b"first version, rather long\n").unwrap();
        // What a write killed half-way would have left aside is simply replaced.
        fs::write(dir.path().join("runbook.yaml.partial"), b"torn").unwrap();
        write_durably(&path, b"second\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second\n");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["runbook.yaml"]);
    }
}
