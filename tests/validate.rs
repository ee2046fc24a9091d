//! `runbook validate` over bad input, as an operator meets it: exit code 2 and the whole
//! rendered message (file:line:col, the source line, a caret, help), compared in full so
//! that a message that gets worse fails a test. Fixtures: tests/fixtures/bad/.

mod support;

use std::io::Write as _;
use std::time::{Duration, Instant};

use support::{Outcome, Test, repo};

/// Three database hosts (one without `role`) and one operations host.
const INVENTORY: &str = "\
all:
  children:
    db:
      hosts:
        db1: { ansible_host: 10.0.0.1, role: primary }
        db2: { ansible_host: 10.0.0.2, role: replica }
        db3: { ansible_host: 10.0.0.3 }
    ops:
      hosts:
        ops1: { ansible_host: 10.0.0.9 }
";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/bad").join(name)).unwrap()
}

/// A test folder holding `files` (from the fixtures) and `inventory.yaml`.
fn folder(files: &[&str]) -> Test {
    let test = Test::new();
    for name in files {
        test.file(name, fixture(name));
    }
    test.file("inventory.yaml", INVENTORY);
    test
}

/// `runbook validate ARGS FIXTURE`, run in a folder holding the fixture under its own
/// (relative) name, as messages show paths the way they were given.
fn reject(name: &str, args: &[&str]) -> Outcome {
    let test = folder(&[name]);
    let mut command = vec!["validate"];
    command.extend_from_slice(args);
    command.push(name);
    test.run(command)
}

#[track_caller]
fn expect(outcome: &Outcome, stderr: &str) {
    outcome.expect_code(2);
    assert_eq!(outcome.stderr, stderr, "\n--- got\n{}", outcome.stderr);
    assert_eq!(outcome.stdout, "");
}

#[test]
fn malformed_yaml_points_at_the_syntax_error() {
    expect(
        &reject("malformed.yaml", &[]),
        r"error: unclosed bracket '['
  --> malformed.yaml:5:10
   |
 5 |     run: [unclosed
   |          ^
   = help: fix the YAML syntax at this place; the rest of the file is checked once it parses

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn unknown_field_suggests_the_known_one() {
    expect(
        &reject("unknown-field.yaml", &[]),
        r"error: unknown field `tiemout` in a step
  --> unknown-field.yaml:8:5
   |
 8 |     tiemout: 5s
   |     ^^^^^^^
   = help: did you mean `timeout`?

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn duplicate_step_id_names_the_first() {
    expect(
        &reject("duplicate-id.yaml", &[]),
        r"error: duplicate step id `gate`
  --> duplicate-id.yaml:6:9
   |
 6 |   - id: gate
   |         ^^^^
   = help: the first step with this id is at line 4; give each step its own id

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn unknown_needs_suggests_the_closest_step() {
    expect(
        &reject("unknown-needs.yaml", &[]),
        r"error: step `repoint` needs `promot`, which is not a step of this runbook
  --> unknown-needs.yaml:7:13
   |
 7 |     needs: [promot]
   |             ^^^^^^
   = help: did you mean `promote`?

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn a_cycle_shows_its_whole_path() {
    expect(
        &reject("cycle.yaml", &[]),
        r"error: the steps form a cycle: a -> c -> b -> a
  --> cycle.yaml:5:13
   |
 5 |     needs: [c]
   |             ^
   = help: `a -> c` means `a` needs `c`; remove one of these `needs` so that the steps can run in some order

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn unknown_host_or_group_suggests_an_inventory_name() {
    expect(
        &reject("unknown-host.yaml", &["-i", "inventory.yaml"]),
        r"error: step `check` runs on `dbs`, which is neither a host nor a group of inventory.yaml
  --> unknown-host.yaml:5:9
   |
 5 |     on: dbs
   |         ^^^
   = help: did you mean `db`?

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn bad_duration_says_how_to_write_one() {
    expect(
        &reject("bad-duration.yaml", &[]),
        r"error: bad `timeout`: `5 minutes` is not a duration
  --> bad-duration.yaml:7:14
   |
 7 |     timeout: 5 minutes
   |              ^^^^^^^^^
   = help: write a number and a unit (ms, s, m, h), e.g. `30s`, `5m` or `1h30m`

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn undefined_variable_points_into_the_command() {
    expect(
        &reject("undefined-variable.yaml", &[]),
        r"error: undefined variable `vars.stie`
  --> undefined-variable.yaml:7:18
   |
 7 |     run: ping {{ vars.stie }}
   |                  ^^^^^^^^^
   = help: did you mean `vars.site`?

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn unknown_step_in_a_template_suggests_the_closest() {
    expect(
        &reject("unknown-step-reference.yaml", &[]),
        r"error: `steps.promot.stdout` refers to no step: there is no step `promot`
   --> unknown-step-reference.yaml:10:21
    |
 10 |     run: repoint {{ steps.promot.stdout }}
    |                     ^^^^^^^^^^^^^^^^^^^
    = help: did you mean `promote`?

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn approve_with_run_points_at_approve() {
    expect(
        &reject("approve-with-run.yaml", &[]),
        r"error: step `promote` has both `run` and `approve`
  --> approve-with-run.yaml:7:5
   |
 7 |     approve: Promote?
   |     ^^^^^^^
   = help: a step is either a command (`run`) or an operator gate (`approve`): split it in two steps

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn bad_when_expression_points_at_the_operator() {
    expect(
        &reject("bad-when.yaml", &[]),
        r"error: bad condition: `===` is not an operator here
   --> bad-when.yaml:12:32
    |
 12 |     when: steps.promote.status === 'failed'
    |                                ^^^
    = help: use `==`

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn duplicate_yaml_key_is_named() {
    expect(
        &reject("duplicate-key.yaml", &[]),
        r"error: duplicate key `run`
  --> duplicate-key.yaml:7:5
   |
 7 |     run: hostname
   |     ^^^
   = help: `run` is already set above in the same mapping: keep one of them

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn empty_file_says_what_a_runbook_needs() {
    expect(
        &reject("empty.yaml", &[]),
        r"error: the runbook is empty
  --> empty.yaml:1:1
   = help: a runbook needs at least `name:` and `steps:`

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn binary_file_is_refused_as_a_whole() {
    expect(
        &reject("binary.yaml", &[]),
        r"error: binary.yaml is a binary file, not YAML
  --> binary.yaml
   = help: give the path of a YAML text file

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn output_of_a_step_that_is_not_an_ancestor_is_refused() {
    expect(
        &reject("not-an-ancestor.yaml", &[]),
        r"error: step `notify` uses `steps.lag.stdout`, but `lag` does not always finish before it
   --> not-an-ancestor.yaml:11:20
    |
 11 |     run: notify {{ steps.lag.stdout }}
    |                    ^^^^^^^^^^^^^^^^
    = help: add `lag` to the `needs` of `notify`

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn output_of_a_multi_host_step_is_ambiguous_elsewhere() {
    expect(
        &reject("ambiguous-output.yaml", &["-i", "inventory.yaml"]),
        r"error: `steps.role.stdout` is ambiguous: `role` ran on 3 hosts
   --> ambiguous-output.yaml:10:20
    |
 10 |     run: notify {{ steps.role.stdout }}
    |                    ^^^^^^^^^^^^^^^^^
    = help: a step sees the output of `role` on its own host only; run `notify` on the same hosts, or make `role` run on one host

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn missing_host_variable_names_the_hosts() {
    expect(
        &reject("missing-host-var.yaml", &["-i", "inventory.yaml"]),
        r"error: host variable `role` is not set on db3
  --> missing-host-var.yaml:6:34
   |
 6 |     run: emr-ctl check --role {{ host.vars.role }}
   |                                  ^^^^^^^^^^^^^^
   = help: set `role` for these hosts (or a group of theirs) in the inventory

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn undeclared_secret_is_refused() {
    expect(
        &reject("undeclared-secret.yaml", &[]),
        r"error: secret `api_key` is not declared
  --> undeclared-secret.yaml:7:31
   |
 7 |     run: dns-ctl set --key {{ secrets.api_key }}
   |                               ^^^^^^^^^^^^^^^
   = help: add `api_key` to the runbook's `secrets:` list

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
}

#[test]
fn two_errors_in_one_file_are_both_reported() {
    expect(
        &reject("two-errors.yaml", &[]),
        r"error: unknown field `tiemout` in a step
  --> two-errors.yaml:7:5
   |
 7 |     tiemout: 5s
   |     ^^^^^^^
   = help: did you mean `timeout`?

error: bad `timeout`: `5x` is not a duration
   --> two-errors.yaml:12:14
    |
 12 |     timeout: 5x
    |              ^^
    = help: write a number and a unit (ms, s, m, h), e.g. `30s`, `5m` or `1h30m`

0 of 1 runbook valid (2 errors, 0 warnings)
",
    );
}

#[test]
fn errors_across_two_files_are_all_reported() {
    let test = folder(&["two-errors.yaml", "undeclared-secret.yaml"]);
    let outcome = test.run(["validate", "two-errors.yaml", "undeclared-secret.yaml"]);
    outcome.expect_code(2);
    let locations: Vec<&str> = outcome
        .stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--> "))
        .collect();
    assert_eq!(
        locations,
        [
            "two-errors.yaml:7:5",
            "two-errors.yaml:12:14",
            "undeclared-secret.yaml:7:31"
        ]
    );
    assert!(
        outcome
            .stderr
            .ends_with("0 of 2 runbooks valid (3 errors, 0 warnings)\n"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn a_huge_file_is_refused_at_once_without_reading_it() {
    let test = Test::new();
    // Written in pieces: a child started by this process inherits its peak memory (the
    // kernel counts the pre-exec image), so the test process itself must stay small.
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(test.path().join("huge.yaml")).unwrap());
    let line = b"# padding padding padding padding padding padding padding padding\n";
    for _ in 0..50 * 1024 * 1024 / line.len() {
        file.write_all(line).unwrap();
    }
    drop(file);
    let started = Instant::now();
    let outcome = test.run(["validate", "huge.yaml"]);
    let took = started.elapsed();
    expect(
        &outcome,
        "\
error: huge.yaml is larger than 4 MiB: not a runbook or inventory
  --> huge.yaml
   = help: check that the right file was given; split a huge runbook into several

0 of 1 runbook valid (1 error, 0 warnings)
",
    );
    assert!(took < Duration::from_secs(2), "took {took:?}");
    // The largest child this test process has waited for: every other test's runs are
    // small too, so this bounds the run above. Reading 50 MB would exceed it.
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let peak_kib = usage.max_rss();
    assert!(peak_kib < 40 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn every_bad_fixture_is_refused_in_every_format_without_a_panic() {
    let names: Vec<String> = std::fs::read_dir(repo().join("tests/fixtures/bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "warnings.yaml")
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let test = folder(&refs);
    for name in &refs {
        for format in ["human", "json", "github", "sarif"] {
            let outcome = test.run(["validate", "-i", "inventory.yaml", "--format", format, name]);
            outcome.expect_code(2).no_panic();
            assert!(
                !outcome.stderr.contains("Error {"),
                "{name}: {}",
                outcome.stderr
            );
            if format == "json" || format == "sarif" {
                let _: serde_json::Value = serde_json::from_str(&outcome.stdout)
                    .unwrap_or_else(|e| panic!("{name} {format}: {e}\n{}", outcome.stdout));
            }
        }
    }
}

#[test]
fn json_format_lists_every_diagnostic_with_its_span() {
    let test = folder(&["two-errors.yaml"]);
    let outcome = test.run(["validate", "--format", "json", "two-errors.yaml"]);
    outcome.expect_code(2);
    let diagnostics: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(
        diagnostics,
        serde_json::json!([
            {
                "severity": "error",
                "code": "unknown-field",
                "file": "two-errors.yaml",
                "span": { "line": 7, "col": 5, "len": 7 },
                "message": "unknown field `tiemout` in a step",
                "help": "did you mean `timeout`?"
            },
            {
                "severity": "error",
                "code": "duration",
                "file": "two-errors.yaml",
                "span": { "line": 12, "col": 14, "len": 2 },
                "message": "bad `timeout`: `5x` is not a duration",
                "help": "write a number and a unit (ms, s, m, h), e.g. `30s`, `5m` or `1h30m`"
            }
        ])
    );
}

#[test]
fn github_format_prints_workflow_commands() {
    let test = folder(&["two-errors.yaml", "binary.yaml"]);
    let outcome = test.run([
        "validate",
        "--format",
        "github",
        "two-errors.yaml",
        "binary.yaml",
    ]);
    outcome.expect_code(2);
    assert_eq!(
        outcome.stdout,
        "\
::error file=two-errors.yaml,line=7,col=5::unknown field `tiemout` in a step (did you mean `timeout`?)
::error file=two-errors.yaml,line=12,col=14::bad `timeout`: `5x` is not a duration (write a number and a unit (ms, s, m, h), e.g. `30s`, `5m` or `1h30m`)
::error file=binary.yaml::binary.yaml is a binary file, not YAML (give the path of a YAML text file)
"
    );
}

#[test]
fn sarif_format_is_sarif_2_1_0_with_regions() {
    let test = folder(&["two-errors.yaml", "warnings.yaml"]);
    let outcome = test.run([
        "validate",
        "--format",
        "sarif",
        "two-errors.yaml",
        "warnings.yaml",
    ]);
    outcome.expect_code(2);
    let log: serde_json::Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(log["runs"][0]["tool"]["driver"]["name"], "runbook");
    let results = log["runs"][0]["results"].as_array().unwrap();
    let summary: Vec<(String, String, String, u64, u64, u64)> = results
        .iter()
        .map(|r| {
            let location = &r["locations"][0]["physicalLocation"];
            let region = &location["region"];
            (
                r["ruleId"].as_str().unwrap().to_string(),
                r["level"].as_str().unwrap().to_string(),
                location["artifactLocation"]["uri"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                region["startLine"].as_u64().unwrap(),
                region["startColumn"].as_u64().unwrap(),
                region["endColumn"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |rule: &str, level: &str, file: &str, line, col, end| {
        (rule.into(), level.into(), file.into(), line, col, end)
    };
    assert_eq!(
        summary,
        [
            row("unknown-field", "error", "two-errors.yaml", 7, 5, 12),
            row("duration", "error", "two-errors.yaml", 12, 14, 16),
            row("no-timeout", "warning", "warnings.yaml", 3, 9, 16),
            row("no-rollback", "warning", "warnings.yaml", 3, 9, 16),
        ]
    );
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    for result in results {
        assert!(rules.iter().any(|r| r["id"] == result["ruleId"]));
    }
}

#[test]
fn warnings_pass_but_strict_makes_them_errors() {
    let test = folder(&["warnings.yaml"]);
    let relaxed = test.run(["validate", "warnings.yaml"]);
    relaxed.expect_code(0);
    assert_eq!(
        relaxed.stderr,
        "\
warning: step `restart` has no timeout: a hung command would stall the recovery
  --> warnings.yaml:3:9
   |
 3 |   - id: restart
   |         ^^^^^^^
   = help: add `timeout: 5m` to the step, or `defaults: { timeout: 5m }` to the runbook

warning: step `restart` changes something but has no `rollback`
  --> warnings.yaml:3:9
   |
 3 |   - id: restart
   |         ^^^^^^^
   = help: add `rollback: COMMAND`, or `readonly: true` if the step changes nothing

1 of 1 runbook valid (0 errors, 2 warnings)
"
    );
    let strict = test.run(["validate", "--strict", "warnings.yaml"]);
    strict.expect_code(2);
    assert!(
        strict
            .stderr
            .starts_with("error: step `restart` has no timeout")
    );
    assert!(
        strict
            .stderr
            .ends_with("0 of 1 runbook valid (2 errors, 0 warnings)\n"),
        "{}",
        strict.stderr
    );
}

#[test]
fn every_bundled_runbook_is_valid_against_both_inventories() {
    let runbooks = repo().join("runbooks");
    let count = std::fs::read_dir(&runbooks)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert!(count >= 4);
    for inventory in [
        "examples/inventories/saitama.yaml",
        "examples/lab/inventory.yaml",
    ] {
        let outcome = Test::new().run([
            "validate".as_ref(),
            "--strict".as_ref(),
            "-i".as_ref(),
            repo().join(inventory).as_os_str(),
            runbooks.as_os_str(),
        ]);
        outcome.expect_code(0);
        assert_eq!(
            outcome.stderr,
            format!("{count} of {count} runbooks valid (0 errors, 0 warnings)\n"),
            "{inventory}"
        );
    }
}

#[test]
fn a_missing_file_and_an_empty_folder_are_refused() {
    let test = Test::new();
    std::fs::create_dir(test.path().join("empty")).unwrap();
    expect(
        &test.run(["validate", "missing.yaml"]),
        "\
error: missing.yaml does not exist
  --> missing.yaml
   = help: check the path

1 error, 0 warnings
",
    );
    expect(
        &test.run(["validate", "empty"]),
        "\
error: empty holds no *.yaml or *.yml file
  --> empty
   = help: give the folder of the runbooks, or the files themselves

1 error, 0 warnings
",
    );
}
