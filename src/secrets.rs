//! Secret values: from `RUNBOOK_SECRET_<NAME>` or a `--secrets-file` that only its owner
//! can read. Values live in memory only; every text the tool writes is redacted.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::load;

/// Below this many characters a secret's value is likely to occur by chance in output,
/// where masking it garbles what the operator reads.
const SHORT_SECRET: usize = 4;

/// The value of every declared secret. `required`: a missing value is an error (a run
/// that sends commands); otherwise it stands as `***` (a dry run sends nothing).
pub fn resolve(
    names: &[String],
    file: Option<&Path>,
    required: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let from_file = match file {
        Some(path) => read_file(path)?,
        None => BTreeMap::new(),
    };
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for name in names {
        let env = format!("RUNBOOK_SECRET_{}", name.to_uppercase());
        let value = std::env::var(&env)
            .ok()
            .or_else(|| from_file.get(name).cloned());
        match value {
            Some(value) => {
                let length = value.chars().count();
                if length < SHORT_SECRET {
                    tracing::warn!(
                        "secret `{name}` is only {length} character(s) long: every occurrence of \
                         it in output, logs and reports is masked as ***, which may garble them"
                    );
                }
                values.insert(name.clone(), value);
            }
            None if required => missing.push(env),
            None => {
                values.insert(name.clone(), "***".to_string());
            }
        }
    }
    if missing.is_empty() {
        Ok(values)
    } else {
        Err(Error::Usage(format!(
            "missing secret value(s): set {} in the environment, or give --secrets-file FILE (mode 0600) with `name: value` lines",
            missing.join(", ")
        )))
    }
}

/// The secrets a plan declares, for a run in `mode`: a dry run sends nothing, so it may go
/// without their values.
pub fn for_plan(
    plan: &crate::plan::Plan,
    file: Option<&Path>,
    mode: crate::event::Mode,
) -> Result<BTreeMap<String, String>, Error> {
    let names: Vec<String> = plan
        .runbook
        .secrets
        .iter()
        .map(|s| s.value.clone())
        .collect();
    resolve(&names, file, mode != crate::event::Mode::DryRun)
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::Usage(format!("--secrets-file {}: {e}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(Error::Usage(format!(
                "--secrets-file {} can be read by others (mode {mode:o}); run `chmod 600 {}` first",
                path.display(),
                path.display()
            )));
        }
    }
    // The file's own values must never reach an error message: report only the place.
    load::vars_file(path)
        .map_err(|d| Error::Usage(format!("--secrets-file {}: {}", d.location(), d.message)))
}
