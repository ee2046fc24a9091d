//! The inventory reader agrees with real ansible-core: for every fixture, our
//! `to_ansible_json()` equals `ansible-inventory --list`, and `host_json()` equals
//! `ansible-inventory --host` for a few hosts.
//!
//! ansible-core is installed once into `target/ansible-venv` and reused. Without it (no
//! network, no python3) the test is skipped with a message, except under `CI=true`, where
//! a missing Ansible is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use runbook::inventory::Inventory;
use runbook::source::Source;
use serde_json::Value;

/// `target/ansible-venv/bin/ansible-inventory`, installing ansible-core when missing.
fn ansible_inventory() -> Result<PathBuf, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let venv = target.join("ansible-venv");
    let bin = venv.join("bin").join("ansible-inventory");
    if bin.exists() {
        return Ok(bin);
    }
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    };
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "ansible-core",
    ]))?;
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} missing after install", bin.display()))
    }
}

fn ansible_json(bin: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin)
        .args(args)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_INVENTORY_ENABLED", "yaml")
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ansible-inventory {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventories");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> Inventory {
    let source = Source::new(path, std::fs::read_to_string(path).unwrap());
    Inventory::load(&source, None).unwrap_or_else(|d| panic!("{}: {d:#?}", path.display()))
}

/// Older ansible-core prints no `_meta.profile`; compare what that version prints.
fn normalise(mut ours: Value, theirs: &Value) -> Value {
    if theirs["_meta"].get("profile").is_none()
        && let Some(meta) = ours.get_mut("_meta").and_then(Value::as_object_mut)
    {
        meta.remove("profile");
    }
    ours
}

/// What to compare for one fixture: `--list`, then `--host` for its first hosts.
fn check(bin: &Path, path: &Path) -> Vec<String> {
    let inventory = load(path);
    let file = path.to_str().unwrap();
    let mut failures = Vec::new();
    let theirs = ansible_json(bin, &["-i", file, "--list"]);
    let ours = normalise(inventory.to_ansible_json(), &theirs);
    if ours != theirs {
        failures.push(format!(
            "{file} --list differs\nours:   {}\nansible: {}",
            serde_json::to_string_pretty(&ours).unwrap(),
            serde_json::to_string_pretty(&theirs).unwrap()
        ));
    }
    let names: Vec<String> = inventory.hosts().iter().map(|h| h.name.clone()).collect();
    for name in names.iter().take(2).chain(names.last()) {
        let theirs = ansible_json(bin, &["-i", file, "--host", name]);
        let ours = inventory.host_json(name).unwrap();
        if ours != theirs {
            failures.push(format!(
                "{file} --host {name} differs\nours:    {ours}\nansible: {theirs}"
            ));
        }
    }
    failures
}

#[test]
fn inventory_json_agrees_with_ansible_inventory() {
    let bin = match ansible_inventory() {
        Ok(bin) => bin,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("ansible-core is needed under CI: {why}")
        }
        Err(why) => {
            eprintln!("skipped: ansible-core is not available ({why})");
            return;
        }
    };
    let files = fixtures();
    assert!(files.len() >= 6, "fixtures missing: {files:?}");
    // Each ansible-inventory start costs about a second: two at a time.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let halves = files.split_at(files.len() / 2);
        let first = scope.spawn(|| {
            halves
                .0
                .iter()
                .flat_map(|f| check(&bin, f))
                .collect::<Vec<_>>()
        });
        let mut failures: Vec<String> = halves.1.iter().flat_map(|f| check(&bin, f)).collect();
        failures.extend(first.join().unwrap());
        failures
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
