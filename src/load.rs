//! Reading the operator's files from disk, refusing what cannot be a runbook or inventory
//! (binary, not UTF-8, absurdly large) before any parsing, with a diagnostic naming the file.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::source::{Source, Span};
use crate::yaml::{self, MAX_FILE_BYTES};

/// Reads a text file: at most `MAX_FILE_BYTES` are ever read, so a huge file is refused
/// at once and costs no memory.
pub fn source(path: &Path) -> Result<Source, Diagnostic> {
    let file = fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Diagnostic::file_error(
            "not-found",
            path,
            format!("{} does not exist", path.display()),
        )
        .with_help("check the path"),
        std::io::ErrorKind::PermissionDenied => Diagnostic::file_error(
            "unreadable",
            path,
            format!("cannot read {}: permission denied", path.display()),
        )
        .with_help("check the file's permissions"),
        _ => Diagnostic::file_error(
            "unreadable",
            path,
            format!("cannot read {}: {e}", path.display()),
        )
        .with_help("check the path and the file's permissions"),
    })?;
    let mut bytes = Vec::new();
    let limit = MAX_FILE_BYTES as u64 + 1;
    file.take(limit).read_to_end(&mut bytes).map_err(|e| {
        Diagnostic::file_error(
            "unreadable",
            path,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(Diagnostic::file_error(
            "too-large",
            path,
            format!(
                "{} is larger than {} MiB: not a runbook or inventory",
                path.display(),
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        )
        .with_help("check that the right file was given; split a huge runbook into several"));
    }
    if bytes.contains(&0) {
        return Err(Diagnostic::file_error(
            "binary",
            path,
            format!("{} is a binary file, not YAML", path.display()),
        )
        .with_help("give the path of a YAML text file"));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Source::new(path, text)),
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.split(|&b| b == b'\n').count();
            let col = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            Err(Diagnostic::error(
                "encoding",
                path,
                Span::new(
                    u32::try_from(line).unwrap_or(u32::MAX),
                    u32::try_from(col).unwrap_or(u32::MAX),
                    1,
                ),
                "the file is not valid UTF-8",
            )
            .with_help("save the file as UTF-8"))
        }
    }
}

/// Every `*.yaml` / `*.yml` file of the given files and folders (folders recursively,
/// hidden folders skipped), in a stable order.
pub fn yaml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            collect(path, &mut files).map_err(|e| {
                Diagnostic::file_error(
                    "unreadable",
                    path,
                    format!("cannot list {}: {e}", path.display()),
                )
            })?;
            // Checking nothing and reporting success would let a wrong path pass CI.
            if files.len() == before {
                return Err(Diagnostic::file_error(
                    "no-runbooks",
                    path,
                    format!("{} holds no *.yaml or *.yml file", path.display()),
                )
                .with_help("give the folder of the runbooks, or the files themselves"));
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(Diagnostic::file_error(
                "not-found",
                path,
                format!("{} does not exist", path.display()),
            )
            .with_help("check the path"));
        }
    }
    Ok(files)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if path.is_dir() {
            if !hidden {
                collect(&path, files)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads `--vars-file`: a YAML mapping of names to scalar values.
pub fn vars_file(path: &Path) -> Result<BTreeMap<String, String>, Diagnostic> {
    let source = source(path)?;
    let root = yaml::parse(&source.text).map_err(|e| {
        let d = Diagnostic::error("yaml", path, e.span, e.message);
        match e.help {
            Some(help) => d.with_help(help),
            None => d,
        }
    })?;
    if root.is_null() {
        return Ok(BTreeMap::new());
    }
    let Some(entries) = root.as_map() else {
        return Err(Diagnostic::error(
            "type",
            path,
            root.span,
            "a vars file must be a mapping of names to values",
        )
        .with_help("write one `name: value` per line"));
    };
    let mut vars = BTreeMap::new();
    for (key, value) in entries {
        let text = if value.is_null() {
            Some(String::new())
        } else {
            value.as_scalar()
        };
        let Some(text) = text else {
            return Err(Diagnostic::error(
                "type",
                path,
                value.span,
                format!(
                    "variable `{}` must be a single value, found {}",
                    key.name,
                    value.kind()
                ),
            )
            .with_help("variables are text; quote the value"));
        };
        vars.insert(key.name.clone(), text);
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_runbooks_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let d = yaml_files(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(d.code, "no-runbooks");
    }

    #[test]
    fn a_missing_file_is_named_plainly() {
        let d = source(Path::new("no/such/file.yaml")).unwrap_err();
        assert_eq!(d.code, "not-found");
        assert_eq!(d.message, "no/such/file.yaml does not exist");
    }
}
