//! Writes report.md, report.json and report.html of a run until the `report` command is
//! wired: `cargo run --example write_report -- STATE_DIR RUN_ID`.

use std::path::PathBuf;
use std::process::ExitCode;

use runbook::store::Store;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [state_dir, run_id] = args.as_slice() else {
        eprintln!("usage: write_report STATE_DIR RUN_ID");
        return ExitCode::from(2);
    };
    let store = Store::new(PathBuf::from(state_dir));
    let result = store
        .open_run(run_id)
        .and_then(|run| runbook::report::write_all(&store, &run).map(|()| run));
    match result {
        Ok(run) => {
            println!("{}", run.dir.join("report.html").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
