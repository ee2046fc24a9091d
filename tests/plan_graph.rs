//! The offline views of a runbook: `plan` (human and JSON), `graph`, `schema`,
//! `completions` and `inventory`, driven through the binary on the bundled runbooks and
//! the lab inventory.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use support::{Outcome, Test, repo};

fn path(relative: &str) -> PathBuf {
    repo().join(relative)
}

fn runbooks() -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(path("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    all.sort();
    assert!(all.len() >= 4);
    all
}

fn lab() -> PathBuf {
    path("examples/lab/inventory.yaml")
}

/// `runbook plan RUNBOOK -i LAB ARGS…`, which must succeed.
fn plan(test: &Test, runbook: &str, args: &[&str]) -> Outcome {
    let mut command = vec![
        "plan".into(),
        path(runbook).into_os_string(),
        "-i".into(),
        lab().into_os_string(),
    ];
    command.extend(args.iter().map(Into::into));
    let outcome = test.run(command);
    outcome.expect_code(0).no_panic();
    outcome
}

fn plan_json(test: &Test, runbook: &str, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    serde_json::from_str(&plan(test, runbook, &args).stdout).unwrap()
}

/// The steps of a plan's JSON, wave after wave.
fn steps(plan: &Value) -> impl Iterator<Item = &Value> {
    plan["waves"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|wave| wave.as_array().unwrap())
}

/// Every (needed step, step) pair of a plan's JSON.
fn edges(plan: &Value) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for step in steps(plan) {
        for need in step["needs"].as_array().unwrap() {
            edges.insert((
                need.as_str().unwrap().to_string(),
                step["id"].as_str().unwrap().to_string(),
            ));
        }
    }
    edges
}

#[test]
fn human_plan_shows_waves_and_a_command_per_host() {
    let outcome = plan(&Test::new(), "runbooks/clinic-reattach.yaml", &[]);
    let out = &outcome.stdout;
    assert!(out.starts_with("Plan of `clinic-reattach`"), "{out}");
    assert!(out.contains("\nwave 1:\n  reach-new-server"), "{out}");
    assert!(out.contains("\nwave 2:\n  approve-reattach"), "{out}");
    // A group expands into its hosts, each with its own rendered command.
    for (host, address) in [
        ("oi-kyodo-gw", "192.0.2.101"),
        ("tokorozawa-gw", "192.0.2.102"),
    ] {
        assert!(
            out.contains(&format!(
                "    on {host} ({address}): ../../bin/clinic-ctl reach --server emr.nishi.saitama-coop.example\n"
            )),
            "{out}"
        );
    }
    assert!(!out.contains("{{"), "an unrendered template:\n{out}");
    let waves = out.matches("\nwave ").count();
    assert!(
        out.contains(&format!(" steps in {waves} waves.\n")),
        "{out}"
    );
}

#[test]
fn json_plan_orders_every_step_after_what_it_needs() {
    let test = Test::new();
    for runbook in runbooks() {
        let name = runbook
            .strip_prefix(repo())
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let plan = plan_json(&test, &name, &[]);
        let mut wave_of = std::collections::HashMap::new();
        for (n, wave) in plan["waves"].as_array().unwrap().iter().enumerate() {
            for step in wave.as_array().unwrap() {
                wave_of.insert(step["id"].as_str().unwrap().to_string(), n);
                if step["kind"] == "run" {
                    let hosts = step["hosts"].as_array().unwrap();
                    assert!(!hosts.is_empty(), "{name}: {step}");
                    for host in hosts {
                        let command = host["command"].as_str().unwrap();
                        assert!(!command.contains("{{"), "{name}: {command}");
                        assert!(host["address"].is_string(), "{name}: {host}");
                    }
                }
            }
        }
        for (need, step) in edges(&plan) {
            assert!(wave_of[&need] < wave_of[&step], "{name}: {need} -> {step}");
        }
    }
}

#[test]
fn secrets_are_shown_as_stars_in_both_formats() {
    let test = Test::new().env("RUNBOOK_SECRET_DNS_TOKEN", "hunter2-secret");
    let human = plan(&test, "runbooks/emr-failover.yaml", &[]);
    assert!(
        human.stdout.contains("--ttl 60 --key '***'\n"),
        "{}",
        human.stdout
    );
    let json = plan_json(&test, "runbooks/emr-failover.yaml", &[]);
    let rendered = json.to_string();
    assert!(rendered.contains("--key '***'"), "{rendered}");
    for out in [&human.stdout, &human.stderr, &rendered] {
        assert!(!out.contains("hunter2"), "the secret leaked:\n{out}");
    }
}

#[test]
fn a_hostile_var_value_is_single_quoted() {
    let test = Test::new();
    let var = "primary=$(touch X); rm -rf Y";
    let human = plan(&test, "runbooks/emr-failover.yaml", &["--var", var]);
    assert!(
        human
            .stdout
            .contains("emr-ctl ping --target '$(touch X); rm -rf Y' --expect down\n"),
        "{}",
        human.stdout
    );
    let json = plan_json(&test, "runbooks/emr-failover.yaml", &["--var", var]);
    let first = &json["waves"][0][0]["hosts"][0]["command"];
    assert_eq!(
        first,
        "../../bin/emr-ctl ping --target '$(touch X); rm -rf Y' --expect down"
    );
    assert!(!test.path().join("X").exists(), "plan ran something");
}

#[test]
fn graphs_hold_every_step_and_every_edge() {
    let test = Test::new();
    for runbook in runbooks() {
        let plan: Value = serde_json::from_str(
            &test
                .run([
                    "plan".as_ref(),
                    runbook.as_os_str(),
                    "--format".as_ref(),
                    "json".as_ref(),
                ])
                .expect_code(0)
                .stdout,
        )
        .unwrap();
        let ids: Vec<String> = steps(&plan)
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        let edges = edges(&plan);
        assert!(!edges.is_empty());

        let graph = |format: &str| {
            let outcome = test.run([
                "graph".as_ref(),
                runbook.as_os_str(),
                "--format".as_ref(),
                format.as_ref(),
            ]);
            outcome.expect_code(0);
            outcome.stdout
        };
        let mermaid = graph("mermaid");
        assert!(mermaid.starts_with("flowchart"), "{mermaid}");
        let node = |id: &str| id.replace('-', "_");
        for id in &ids {
            assert!(
                mermaid.contains(&format!("    {}[", node(id)))
                    || mermaid.contains(&format!("    {}{{", node(id))),
                "{id}:\n{mermaid}"
            );
        }
        // A step with `when` is drawn with a dashed arrow: it runs whatever its needs did.
        for (from, to) in &edges {
            let (from, to) = (node(from), node(to));
            assert!(
                mermaid.contains(&format!("    {from} --> {to}\n"))
                    || mermaid.contains(&format!("    {from} -.-> {to}\n")),
                "{from} -> {to}:\n{mermaid}"
            );
        }
        let mermaid_edges = mermaid.matches(" --> ").count() + mermaid.matches(" -.-> ").count();
        assert_eq!(mermaid_edges, edges.len(), "{mermaid}");

        let dot = graph("dot");
        assert!(dot.starts_with("digraph"), "{dot}");
        assert!(dot.trim_end().ends_with('}'), "{dot}");
        for id in &ids {
            assert!(
                dot.contains(&format!("    \"{id}\" [label=")),
                "{id}:\n{dot}"
            );
        }
        for (from, to) in &edges {
            assert!(
                dot.contains(&format!("    \"{from}\" -> \"{to}\";\n"))
                    || dot.contains(&format!("    \"{from}\" -> \"{to}\" [style=dashed];\n")),
                "{dot}"
            );
        }
        assert_eq!(dot.matches(" -> ").count(), edges.len(), "{dot}");
    }
}

#[test]
fn schema_is_draft_07_json_and_matches_the_bundled_file() {
    let outcome = Test::new().run(["schema"]);
    outcome.expect_code(0);
    let schema: Value = serde_json::from_str(&outcome.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert!(schema["properties"]["steps"].is_object(), "{schema}");
    let bundled: Value =
        serde_json::from_str(&std::fs::read_to_string(path("schema/runbook.schema.json")).unwrap())
            .unwrap();
    assert_eq!(schema, bundled, "schema/runbook.schema.json is out of date");
}

#[test]
fn completions_print_a_bash_script() {
    let outcome = Test::new().run(["completions", "bash"]);
    outcome.expect_code(0);
    assert!(outcome.stdout.contains("_runbook()"), "{}", outcome.stdout);
    assert!(
        outcome.stdout.contains("complete -F _runbook"),
        "{}",
        outcome.stdout
    );
    assert!(outcome.stdout.contains("validate"));
}

#[test]
fn inventory_json_has_groups_and_meta_hostvars() {
    let outcome = Test::new().run([
        "inventory".as_ref(),
        "-i".as_ref(),
        lab().as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    outcome.expect_code(0);
    let inventory: Value = serde_json::from_str(&outcome.stdout).unwrap();
    let hostvars = inventory["_meta"]["hostvars"].as_object().unwrap();
    assert_eq!(hostvars["oi-kyodo-gw"]["ansible_host"], "192.0.2.101");
    // Group variables reach every host (all < group < host).
    assert_eq!(hostvars["oi-kyodo-gw"]["dns_server"], "hq-dns");
    assert_eq!(hostvars.len(), 21, "{hostvars:?}");
    let clinics = inventory["nishi-clinics"]["hosts"].as_array().unwrap();
    assert_eq!(clinics, &["oi-kyodo-gw", "tokorozawa-gw"]);
    assert!(
        inventory["clinics"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "nishi-clinics")
    );
}
