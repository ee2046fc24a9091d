//! Any text: `Template::parse` returns errors rather than panicking, and a parsed template
//! renders, quoted or not, and redacts, without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runbook::template::{Quoting, Redactor, Template};

fuzz_target!(|text: &str| {
    match Template::parse(text) {
        Ok(template) => {
            let resolve = |r: &runbook::template::Reference| Some(format!("{r} '$x'"));
            for quoting in [Quoting::Shell, Quoting::Plain] {
                let _ = template.render(quoting, &resolve);
            }
            let _ = template.references().count();
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
    let _ = Redactor::new([text.chars().take(3).collect::<String>()]).redact(text);
});
