//! Reports of real runs: the binary runs a runbook on local hosts in a temporary folder,
//! then the library builds and renders the report of that run (SPEC §7).

mod support;

use runbook::report::{self, ReportFormat};
use runbook::store::{RunDir, Store};
use serde_json::Value;
use support::Test;

const INVENTORY: &str = "\
all:
  vars:
    runbook_transport: local
  children:
    web:
      hosts:
        w1: { runbook_workdir: w1 }
        w2: { runbook_workdir: w2 }
        w3: { runbook_workdir: w3 }
    ops:
      hosts:
        ctl: { runbook_workdir: ctl }
";

/// A gate, a retry, a failure handled by `when`, a group step, a skipped step, a
/// checkpoint, and output that tries to inject markup.
const RUNBOOK: &str = r#"
name: report-demo
description: Exercise every part of a report.
targets: { rto: 10m }
vars:
  nap: "0"
defaults: { timeout: 30s }
steps:
  - id: check
    on: ctl
    run: echo "checked <b>bold</b> & 'quoted' | piped"
    readonly: true
  - id: gate
    approve: "Go ahead?"
  - id: flaky
    on: ctl
    # Fails the first time, succeeds the second.
    run: if [ -f tried ]; then echo second; else touch tried; echo first >&2; exit 7; fi
    retry: { attempts: 2, delay: 100ms }
    idempotent: true
  - id: fanout
    on: web
    run: sleep {{ vars.nap }}; echo "on $RUNBOOK_HOST"
    checkpoint: fanned-out
    idempotent: true
  - id: broken
    on: ctl
    run: echo "about to fail"; exit 3
    idempotent: true
  - id: handle
    needs: [broken]
    when: steps.broken.status == 'failed'
    on: ctl
    run: echo handled
    idempotent: true
  - id: never
    needs: [handle]
    when: steps.fanout.status == 'failed'
    on: ctl
    run: echo never
    idempotent: true
"#;

struct Lab {
    test: Test,
}

impl Lab {
    fn new() -> Self {
        let test = Test::new();
        test.file("inventory.yaml", INVENTORY);
        test.file("demo.yaml", RUNBOOK);
        for host in ["w1", "w2", "w3", "ctl"] {
            std::fs::create_dir_all(test.path().join(host)).unwrap();
        }
        Self { test }
    }

    fn store(&self) -> Store {
        Store::new(self.test.path().join("state"))
    }

    /// Runs the demo as a drill; returns the run (the newest one).
    fn drill(&self, nap: &str) -> RunDir {
        let state = self.test.path().join("state");
        let out = self.test.run([
            "--state-dir".as_ref(),
            state.as_os_str(),
            "run".as_ref(),
            "demo.yaml".as_ref(),
            "-i".as_ref(),
            "inventory.yaml".as_ref(),
            "--drill".as_ref(),
            "--yes".as_ref(),
            "--new".as_ref(),
            "--reason".as_ref(),
            "report test".as_ref(),
            "--var".as_ref(),
            format!("nap={nap}").as_ref(),
        ]);
        out.no_panic();
        // `broken` fails: handled, but the run as a whole failed.
        assert!(
            out.code == 1 || out.code == 0,
            "exit {}\n{}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
        std::fs::remove_file(self.test.path().join("ctl/tried")).ok();
        self.store().latest().unwrap()
    }

    fn report(&self, run: &RunDir) -> (report::Report, Value) {
        let report = report::build(&self.store(), run).unwrap();
        let json: Value =
            serde_json::from_str(&report::render(&report, ReportFormat::Json)).unwrap();
        (report, json)
    }
}

fn step<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {json:#}"))
}

#[test]
fn json_report_tells_the_whole_run() {
    let lab = Lab::new();
    let run = lab.drill("0");
    let (_, json) = lab.report(&run);

    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["mode"], "DRILL");
    assert_eq!(json["runbook"]["name"], "report-demo");
    assert_eq!(json["runbook"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(json["inventory"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(json["reason"], "report test");
    assert_eq!(json["journal"]["intact"], true);
    assert_eq!(json["timing"]["rto_ms"], 600_000);
    let timing = &json["timing"];
    assert_eq!(
        timing["working_ms"].as_u64().unwrap() + timing["approval_wait_ms"].as_u64().unwrap(),
        timing["total_ms"].as_u64().unwrap()
    );

    // Steps in runbook order.
    let ids: Vec<_> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "check", "gate", "flaky", "fanout", "broken", "handle", "never"
        ]
    );

    // The gate.
    let approval = &json["approvals"][0];
    assert_eq!(approval["step"], "gate");
    assert_eq!(approval["outcome"], "approved");
    assert_eq!(approval["via"], "--yes");
    assert_eq!(approval["question"], "Go ahead?");
    assert!(approval["user"].is_string());
    assert_eq!(step(&json, "gate")["kind"], "approve");

    // The retry: two attempts, the first failed with its exit code and a retry delay.
    let flaky = &step(&json, "flaky")["hosts"][0];
    assert_eq!(flaky["status"], "succeeded");
    let attempts = flaky["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"], "failed");
    assert_eq!(attempts[0]["exit_code"], 7);
    assert_eq!(attempts[0]["retry_delay_ms"], 100);
    assert_eq!(attempts[1]["outcome"], "succeeded");
    assert_eq!(flaky["stdout_tail"], "second");

    // The failure and its handler.
    let broken = step(&json, "broken");
    assert_eq!(broken["status"], "failed");
    assert_eq!(broken["hosts"][0]["exit_code"], 3);
    assert_eq!(broken["hosts"][0]["stdout_tail"], "about to fail");
    assert_eq!(step(&json, "handle")["status"], "succeeded");

    // The group step: one entry per host, each with its own output.
    let fanout = step(&json, "fanout");
    assert_eq!(fanout["status"], "succeeded");
    let hosts: Vec<_> = fanout["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    let mut sorted = hosts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["w1", "w2", "w3"]);
    for h in fanout["hosts"].as_array().unwrap() {
        assert_eq!(
            h["stdout_tail"],
            format!("on {}", h["host"].as_str().unwrap())
        );
        assert!(h["started_at"].is_string() && h["finished_at"].is_string());
    }
    assert_eq!(json["checkpoints"][0]["name"], "fanned-out");

    // The skipped step and why.
    let never = step(&json, "never");
    assert_eq!(never["status"], "skipped");
    assert!(
        never["skipped_reason"]
            .as_str()
            .unwrap()
            .contains("condition is false"),
        "{never}"
    );

    // `broken` failed, so the run failed, and the report says so.
    assert_eq!(json["state"], "failed");
    assert!(json["comparison"].is_null());
}

#[test]
fn markdown_report_has_a_banner_and_a_table_row_per_host() {
    let lab = Lab::new();
    let run = lab.drill("0");
    let (report, _) = lab.report(&run);
    let md = report::render(&report, ReportFormat::Md);

    assert!(md.starts_with("# Run report: report-demo\n"), "{md}");
    assert!(md.contains("> **DRILL**:"), "{md}");
    assert!(md.contains("**Result: FAILED**"), "{md}");
    assert!(
        md.contains("| Step | Host | Status | Start | End | Duration | Attempts | Exit |"),
        "{md}"
    );
    for host in ["w1", "w2", "w3"] {
        assert!(
            md.lines()
                .any(|l| l.starts_with("| `fanout` | ")
                    && l.contains(&format!(" {host} | succeeded |"))),
            "{md}"
        );
    }
    let broken = md
        .lines()
        .find(|l| l.starts_with("| `broken` | ctl |"))
        .unwrap();
    assert!(
        broken.contains("**FAILED**") && broken.ends_with("| 1 | 3 |"),
        "{broken}"
    );
    let flaky = md.lines().find(|l| l.starts_with("| `flaky` |")).unwrap();
    assert!(flaky.ends_with("| 2 | 0 |"), "{flaky}");
    assert!(md.contains("| `never` | condition is false"), "{md}");
    // Output cannot break out of its table cell or inject markup.
    assert!(
        md.contains("checked <b>bold</b> & 'quoted' | piped"),
        "{md}"
    );
}

/// Checks that a document is well-formed XML (HTML written as XHTML-compatible markup).
fn assert_well_formed(html: &str) {
    let mut reader = quick_xml::Reader::from_str(html);
    let mut stack: Vec<String> = Vec::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) => {
                stack.push(e.name().as_ref().to_string());
            }
            Ok(quick_xml::events::Event::End(e)) => {
                let name = e.name().as_ref().to_string();
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.as_str()),
                    "mismatched </{name}> at byte {}",
                    reader.buffer_position()
                );
            }
            // Every entity must resolve without a DTD: XML's own or numeric ones only.
            Ok(quick_xml::events::Event::GeneralRef(r)) => {
                let name = r.xml10_content().into_owned();
                assert!(
                    r.is_char_ref() && r.resolve_char_ref().unwrap().is_some()
                        || ["amp", "lt", "gt", "quot", "apos"].contains(&name.as_str()),
                    "entity &{name};"
                );
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("not well-formed at byte {}: {e}", reader.buffer_position()),
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn html_report_is_well_formed_self_contained_and_has_the_timeline() {
    let lab = Lab::new();
    let run = lab.drill("0");
    let (report, _) = lab.report(&run);
    let html = report::render(&report, ReportFormat::Html);

    assert_well_formed(&html);
    assert!(
        !html.to_lowercase().contains("http"),
        "an external reference"
    );
    assert!(!html.contains("<script"), "scripts are not needed");
    assert!(!html.contains("<b>bold</b>"), "step output must be escaped");
    assert!(html.contains("checked &lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;"));
    assert!(html.contains("<style>") && html.contains("@media print"));
    assert!(html.contains("class=\"banner mode-drill\""));

    let svg_start = html.find("<svg class=\"chart\"").expect("a timeline");
    let svg = &html[svg_start..svg_start + html[svg_start..].find("</svg>").unwrap()];
    for id in [
        "check", "gate", "flaky", "fanout", "broken", "handle", "never",
    ] {
        assert!(
            svg.contains(&format!("<tspan class=\"sid\">{id}</tspan>")),
            "timeline lacks {id}"
        );
    }
    // One bar per attempt: the flaky step's failed try is drawn apart from its success.
    assert!(svg.contains("class=\"retried\"><title>flaky on ctl, attempt 1: failed"));
    assert!(svg.contains("class=\"failed\"><title>broken on ctl"));
    assert!(svg.contains("class=\"wait\"><title>gate: approved"));
    assert_eq!(svg.matches("<title>fanout on w").count(), 3);
    assert!(svg.contains("class=\"skip\""));
    assert!(svg.contains("RTO 10m"));
}

#[test]
fn a_second_drill_is_compared_with_the_first() {
    let lab = Lab::new();
    lab.drill("0");
    let second = lab.drill("1");
    let (report, json) = lab.report(&second);

    let comparison = &json["comparison"];
    assert!(comparison.is_object(), "{json:#}");
    let fanout = comparison["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "fanout")
        .unwrap();
    assert_eq!(fanout["change"], "slower", "{fanout}");
    assert!(fanout["delta_ms"].as_i64().unwrap() >= 800, "{fanout}");
    assert!(comparison["total_delta_ms"].as_i64().unwrap() >= 800);
    // `broken` failed both times: not a new failure.
    let broken = comparison["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "broken")
        .unwrap();
    assert_eq!(broken["new_failure"], false);

    let md = report::render(&report, ReportFormat::Md);
    assert!(
        md.lines()
            .any(|l| l.starts_with("| `fanout` |") && l.contains("slower by +")),
        "{md}"
    );
    let html = report::render(&report, ReportFormat::Html);
    assert!(html.contains("slower by"));
}

#[test]
fn write_all_puts_three_reports_in_the_run_folder() {
    let lab = Lab::new();
    let run = lab.drill("0");
    report::write_all(&lab.store(), &run).unwrap();
    for name in ["report.md", "report.json", "report.html"] {
        assert!(run.dir.join(name).is_file(), "{name}");
    }
}

#[test]
fn a_paused_run_says_so_and_its_secrets_stay_out() {
    let test = Test::new().env("RUNBOOK_SECRET_TOKEN", "s3cr3t-value");
    test.file("inventory.yaml", INVENTORY);
    test.file(
        "gated.yaml",
        "name: gated\nsecrets: [token]\ntargets: { rto: 5m }\ndefaults: { timeout: 10s }\nsteps:\n\
         \x20 - id: login\n    on: ctl\n    run: echo \"token is {{ secrets.token }}\"\n    readonly: true\n\
         \x20 - id: gate\n    approve: \"Proceed?\"\n\
         \x20 - id: after\n    on: ctl\n    run: echo done\n    readonly: true\n",
    );
    std::fs::create_dir_all(test.path().join("ctl")).unwrap();
    let state = test.path().join("state");
    // No terminal and no --yes: the run pauses at the gate (exit 3).
    test.run([
        "--state-dir".as_ref(),
        state.as_os_str(),
        "run".as_ref(),
        "gated.yaml".as_ref(),
        "-i".as_ref(),
        "inventory.yaml".as_ref(),
    ])
    .expect_code(3);
    let store = Store::new(state);
    let run = store.latest().unwrap();
    let report = report::build(&store, &run).unwrap();

    assert_eq!(report.state, "paused");
    assert!(report.paused_reason.is_some());
    assert_eq!(report.timing.rto_met, None);
    assert_eq!(report.approvals[0].outcome, "waiting");
    let statuses: Vec<_> = report.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["succeeded", "awaiting-approval", "not-run"]);
    for format in [ReportFormat::Md, ReportFormat::Json, ReportFormat::Html] {
        let rendered = report::render(&report, format);
        assert!(
            !rendered.contains("s3cr3t-value"),
            "{format:?} leaks the secret"
        );
        assert!(rendered.contains("token is ***"), "{format:?}");
    }
    let md = report::render(&report, ReportFormat::Md);
    assert!(md.contains("**Result: PAUSED**"), "{md}");
    assert!(md.contains("> **REAL**:"), "{md}");
}
