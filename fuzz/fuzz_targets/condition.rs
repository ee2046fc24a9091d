//! Any text: `Condition::parse` returns an error rather than panicking or overflowing the
//! stack, and a parsed condition evaluates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::condition::Condition;

fuzz_target!(|text: &str| {
    if let Ok(condition) = Condition::parse(text) {
        let _ = condition.references();
        let _ = condition.eval(&|r| Some(r.to_string()));
        let _ = condition.eval(&|_| None);
    }
});
