//! Property: however a bundled runbook is damaged (lines deleted, doubled, swapped,
//! characters changed, the file cut short, bytes or keys inserted), reading and planning
//! it never panics, and every diagnostic points inside the file and renders.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use proptest::prelude::*;
use runbook::diagnostic::{self, Format};
use runbook::inventory::Inventory;
use runbook::source::Source;
use runbook::{plan, runbook as reader};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn runbooks() -> &'static [String] {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    TEXTS.get_or_init(|| {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(repo().join("runbooks"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    })
}

fn lab() -> &'static Inventory {
    static LAB: OnceLock<Inventory> = OnceLock::new();
    LAB.get_or_init(|| {
        let path = repo().join("examples/lab/inventory.yaml");
        let source = Source::new(&path, std::fs::read_to_string(&path).unwrap());
        Inventory::load(&source, None).unwrap()
    })
}

/// One way of damaging a text. Positions are fractions of the text, so that a strategy
/// does not depend on the text it is applied to.
#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(f64),
    DuplicateLine(f64),
    SwapLines(f64, f64),
    ChangeChar(f64, char),
    Truncate(f64),
    InsertBytes(f64, Vec<u8>),
    InsertLine(f64, String),
}

/// Characters that mean something to YAML, templates or conditions, and some that do not.
const CHARS: &[char] = &[
    ':', '-', '{', '}', '[', ']', '"', '\'', '\t', ' ', '\n', '#', '&', '*', '!', '|', '>', '%',
    '@', '`', ',', '?', '=', '(', ')', '\\', 'a', 'z', '0', '9', '.', 'é', '日', '\u{feff}',
];

/// Lines worth inserting: known and unknown keys, list items, templates, anchors.
const LINES: &[&str] = &[
    "  - id: extra",
    "    needs: [promote, nowhere]",
    "    needs: []",
    "    when: steps.promote.status == 'failed' ||",
    "    run: echo {{ steps.extra.stdout }} {{ host.vars.nope }}",
    "    approve: sure?",
    "    on: nowhere",
    "    timeout: forever",
    "    retry: { attempts: 0, backoff: 99 }",
    "    tiemout: 5s",
    "name: renamed",
    "steps:",
    "steps: 3",
    "vars: [1, 2]",
    "secrets: {a: b}",
    "  - &a { id: x }",
    "  - *a",
    "    run: '{{ raw vars.site }} {{ secrets.nope }} {{'",
    "---",
    "\t- id: tab",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = 0.0..1.0f64;
    prop_oneof![
        at.clone().prop_map(Mutation::DeleteLine),
        at.clone().prop_map(Mutation::DuplicateLine),
        (at.clone(), at.clone()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (at.clone(), prop::sample::select(CHARS)).prop_map(|(a, c)| Mutation::ChangeChar(a, c)),
        at.clone().prop_map(Mutation::Truncate),
        (at.clone(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(a, b)| Mutation::InsertBytes(a, b)),
        (at, prop::sample::select(LINES)).prop_map(|(a, l)| Mutation::InsertLine(a, l.into())),
    ]
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
fn index(fraction: f64, len: usize) -> usize {
    ((fraction * len as f64) as usize).min(len.saturating_sub(1))
}

/// The nearest char boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let n = lines.len().max(1);
    match mutation {
        Mutation::DeleteLine(at) if !lines.is_empty() => {
            lines.remove(index(*at, n));
        }
        Mutation::DuplicateLine(at) if !lines.is_empty() => {
            let i = index(*at, n);
            lines.insert(i, lines[i].clone());
        }
        Mutation::SwapLines(a, b) if !lines.is_empty() => lines.swap(index(*a, n), index(*b, n)),
        Mutation::InsertLine(at, line) => {
            lines.insert(index(*at, n + 1).min(lines.len()), line.clone());
        }
        Mutation::ChangeChar(at, c) => {
            let i = boundary(text, index(*at, text.len().max(1)));
            let mut out = text.to_string();
            if let Some(old) = out[i..].chars().next() {
                out.replace_range(i..i + old.len_utf8(), &c.to_string());
            }
            return out;
        }
        Mutation::Truncate(at) => {
            return text[..boundary(text, index(*at, text.len() + 1))].to_string();
        }
        Mutation::InsertBytes(at, bytes) => {
            let i = boundary(text, index(*at, text.len() + 1));
            return format!(
                "{}{}{}",
                &text[..i],
                String::from_utf8_lossy(bytes),
                &text[i..]
            );
        }
        _ => {}
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Parse and plan `text` (without and with the lab inventory), checking each diagnostic.
fn check(text: &str) {
    let source = Source::new("mutated.yaml", text);
    let line_count = u32::try_from(text.lines().count()).unwrap() + 1;
    let (runbook, mut diagnostics) = reader::parse(&source);
    if let Some(runbook) = runbook {
        let vars = BTreeMap::new();
        for inventory in [None, Some(lab())] {
            let inputs = plan::Inputs {
                source: &source,
                inventory,
                vars: &vars,
            };
            let (_, more) = plan::plan(runbook.clone(), &inputs);
            diagnostics.extend(more);
        }
    }
    for d in &diagnostics {
        if let Some(span) = d.span {
            assert!(
                span.line >= 1 && span.line <= line_count,
                "{d:?} in\n{text}"
            );
            assert!(span.col >= 1, "{d:?} in\n{text}");
        }
        assert!(!d.message.is_empty());
    }
    for format in [Format::Human, Format::Json, Format::Github, Format::Sarif] {
        let _ = diagnostic::render(&diagnostics, std::slice::from_ref(&source), format, false);
    }
}

#[test]
fn the_bundled_runbooks_plan_cleanly() {
    for text in runbooks() {
        let source = Source::new("rb.yaml", text.as_str());
        let (runbook, diagnostics) = reader::parse(&source);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let inputs = plan::Inputs {
            source: &source,
            inventory: Some(lab()),
            vars: &BTreeMap::new(),
        };
        let (plan, diagnostics) = plan::plan(runbook.unwrap(), &inputs);
        assert!(plan.is_some() && diagnostics.is_empty(), "{diagnostics:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn damaged_runbooks_never_panic(
        which in 0usize..16,
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let texts = runbooks();
        let mut text = texts[which % texts.len()].clone();
        for m in &mutations {
            text = apply(&text, m);
        }
        check(&text);
    }
}
