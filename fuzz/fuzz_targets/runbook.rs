//! Any text as a runbook: reading and planning it (without and with a small inventory)
//! report diagnostics rather than panicking, and the diagnostics render.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use runbook::diagnostic::{self, Format};
use runbook::inventory::Inventory;
use runbook::plan::{self, Inputs};
use runbook::source::Source;

/// Names the seeds (the bundled runbooks) use, so that planning reaches host checks.
const INVENTORY: &str = "\
all:
  vars: { dr_bin: /opt/dr/bin, dns_server: hq-dns }
  children:
    hq:
      hosts:
        hq-ops: { ansible_host: 10.0.0.1 }
        hq-nishi-emr-db: { ansible_host: 10.0.0.2 }
    nishi-clinics:
      hosts:
        oi-kyodo-gw: { ansible_host: 10.0.1.1 }
        tokorozawa-gw: { ansible_host: 10.0.1.2, role: gw }
";

fn inventory() -> Option<&'static Inventory> {
    static INV: OnceLock<Option<Inventory>> = OnceLock::new();
    INV.get_or_init(|| Inventory::load(&Source::new("inventory.yaml", INVENTORY), None).ok())
        .as_ref()
}

fuzz_target!(|text: &str| {
    let source = Source::new("fuzz.yaml", text);
    let (runbook, mut diagnostics) = runbook::runbook::parse(&source);
    if let Some(runbook) = runbook {
        let vars = BTreeMap::new();
        for inventory in [None, inventory()] {
            let inputs = Inputs { source: &source, inventory, vars: &vars };
            let (_, more) = plan::plan(runbook.clone(), &inputs);
            diagnostics.extend(more);
        }
    }
    for format in [Format::Human, Format::Sarif] {
        let _ = diagnostic::render(&diagnostics, std::slice::from_ref(&source), format, false);
    }
});
