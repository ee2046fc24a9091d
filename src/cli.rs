//! The command line: clap types, and the calls into the library they stand for.
//! This is the only module that prints errors or decides exit codes.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};

use crate::diagnostic::{self, Diagnostic, Format};
use crate::error::{Error, Result};
use crate::event::Mode;
use crate::executor::Approvals;
use crate::inventory::Inventory;
use crate::plan::PlannedStep;
use crate::plan::{self, Plan};
use crate::preview::{self, GraphFormat};
use crate::source::Source;
use crate::store::Store;
use crate::transport::{LocalTransport, Router, SshOptions, SshTransport, Transport};
use crate::{load, runbook, schema, session};
use std::sync::Arc;

/// Disaster-recovery runbooks: checked, rehearsed, resumable.
#[derive(Debug, Parser)]
#[command(name = "runbook", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

/// Options every command takes, before or after its name.
#[derive(Debug, clap::Args)]
struct Global {
    /// Where runs are kept [default: .runbook/ in the current folder]
    #[arg(long, global = true, env = "RUNBOOK_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// More log output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log line format on stderr
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// No colours (also: the NO_COLOR environment variable)
    #[arg(long, global = true)]
    no_color: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HumanOrJson {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check runbooks (files or folders): every problem at once, with file, line and column
    Validate {
        /// Runbook files, or folders to search for *.yaml / *.yml
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Also check hosts and groups against this inventory
        #[arg(short, long, value_name = "INVENTORY")]
        inventory: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors
        #[arg(long)]
        strict: bool,
    },
    /// Show what a run would do, offline: waves of steps with every command rendered
    Plan {
        /// The runbook (YAML)
        runbook: PathBuf,
        /// Expand groups into hosts and check them against this inventory
        #[arg(short, long, value_name = "INVENTORY")]
        inventory: Option<PathBuf>,
        #[command(flatten)]
        vars: VarArgs,
        #[arg(long, value_enum, default_value_t = HumanOrJson::Human)]
        format: HumanOrJson,
    },
    /// Execute a runbook against an inventory (journaled, resumable)
    Run(RunArgs),
    /// Continue a run where its journal says it stopped (secrets are never stored: give them again)
    Resume {
        /// The run to continue (`runbook runs` lists them)
        run_id: String,
        /// Approve this gate (repeatable)
        #[arg(long, value_name = "STEP")]
        approve: Vec<String>,
        /// Approve every gate
        #[arg(long)]
        yes: bool,
        /// A step that was running when the run stopped: run it again
        #[arg(long, value_name = "STEP[@HOST]")]
        rerun: Vec<String>,
        /// A step that was running when the run stopped: it took effect, count it as done
        #[arg(long, value_name = "STEP[@HOST]")]
        mark_done: Vec<String>,
        #[arg(long, value_name = "FILE")]
        secrets_file: Option<PathBuf>,
        /// Continue despite a damaged journal or a change to a step that already succeeded (journaled)
        #[arg(long)]
        force: bool,
        /// Record unknown SSH host keys (changed keys are always refused)
        #[arg(long)]
        accept_new_host_keys: bool,
    },
    /// Undo a run: the `rollback` commands of its succeeded steps, newest first
    Rollback {
        /// The run to undo
        run_id: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
        #[arg(long, value_name = "FILE")]
        secrets_file: Option<PathBuf>,
    },
    /// Write a run's report (also written into the run folder when a run ends)
    Report {
        /// The run to report on
        run_id: String,
        #[arg(long, value_enum, default_value_t = crate::report::ReportFormat::Md)]
        format: crate::report::ReportFormat,
        /// Write to this file instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Show a run's state per step and host, and its journal's integrity (default: the latest run)
    Status {
        /// The run (default: the latest)
        run_id: Option<String>,
        #[arg(long, value_enum, default_value_t = HumanOrJson::Human)]
        format: HumanOrJson,
    },
    /// List every run in the state folder
    Runs {
        #[arg(long, value_enum, default_value_t = HumanOrJson::Human)]
        format: HumanOrJson,
    },
    /// Draw the step graph
    Graph {
        /// The runbook (YAML)
        runbook: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
    },
    /// Show what an inventory resolves to (same JSON as `ansible-inventory --list`)
    Inventory {
        #[arg(short, long, value_name = "INVENTORY", required = true)]
        inventory: PathBuf,
        /// One host's variables after precedence (as `ansible-inventory --host`)
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        #[arg(long, value_enum, default_value_t = HumanOrJson::Human)]
        format: HumanOrJson,
    },
    /// Print the JSON Schema of the runbook format, for editors
    Schema,
    /// Print shell completions
    Completions { shell: clap_complete::Shell },
}

/// `runbook run`.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The runbook (YAML)
    runbook: PathBuf,
    /// The hosts and groups (Ansible YAML inventory)
    #[arg(short, long, value_name = "INVENTORY", required = true)]
    inventory: PathBuf,
    #[command(flatten)]
    vars: VarArgs,
    /// Secret values as `name: value` lines (the file must be mode 0600)
    #[arg(long, value_name = "FILE")]
    secrets_file: Option<PathBuf>,
    /// Run the whole engine but send no command and open no connection
    #[arg(long, conflicts_with = "drill")]
    dry_run: bool,
    /// With --dry-run: connect to every host and run read-only steps and verifies for real
    #[arg(long, requires = "dry_run")]
    probe: bool,
    /// A rehearsal on drill targets: `only: drill` steps run, `only: real` ones do not
    #[arg(long)]
    drill: bool,
    /// Approve every gate
    #[arg(long, conflicts_with = "approve")]
    yes: bool,
    /// Approve this gate ahead (repeatable)
    #[arg(long, value_name = "STEP")]
    approve: Vec<String>,
    /// Before each step, show its commands and hosts and ask: run, skip or stop (a terminal only)
    #[arg(long, conflicts_with_all = ["yes", "approve"])]
    step: bool,
    /// Why this run happens (journaled, shown in reports and in the lock)
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
    /// Host commands at once over all steps
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    max_parallel: u16,
    /// Name the run instead of NAME-YYYYMMDD-HHMMSS
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
    /// Start even if an earlier run of this runbook is unfinished
    #[arg(long)]
    new: bool,
    /// Record unknown SSH host keys (changed keys are always refused)
    #[arg(long)]
    accept_new_host_keys: bool,
}

/// `--var K=V` and `--vars-file F`.
#[derive(Debug, clap::Args)]
struct VarArgs {
    /// Set a variable (overrides the runbook's default and --vars-file)
    #[arg(long = "var", value_name = "K=V")]
    var: Vec<String>,
    /// Variables from a YAML file of `name: value` lines
    #[arg(long, value_name = "FILE")]
    vars_file: Option<PathBuf>,
}

/// Runs the command line and returns the process exit code.
#[must_use]
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let color = color_enabled(&cli.global);
    let verbosity = if cli.global.quiet {
        -1
    } else {
        i8::try_from(cli.global.verbose).unwrap_or(i8::MAX)
    };
    crate::logging::init(verbosity, cli.global.log_format == LogFormat::Json, color);
    let mut sources = Vec::new();
    match run(cli, &mut sources) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report_error(&error, &sources, color);
            ExitCode::from(error.exit_code())
        }
    }
}

fn color_enabled(global: &Global) -> bool {
    !global.no_color
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stderr().is_terminal()
}

fn report_error(error: &Error, sources: &[Source], color: bool) {
    let mut stderr = std::io::stderr().lock();
    match error {
        Error::Invalid(diagnostics) if diagnostics.is_empty() => {}
        Error::Invalid(diagnostics) => {
            let _ = stderr.write_all(
                diagnostic::render(diagnostics, sources, Format::Human, color).as_bytes(),
            );
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let _ = writeln!(stderr, "{}", summary(errors, diagnostics.len() - errors));
        }
        other => {
            let _ = writeln!(stderr, "error: {other}");
        }
    }
}

fn summary(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn run(cli: Cli, sources: &mut Vec<Source>) -> Result<()> {
    let color = color_enabled(&cli.global);
    match cli.command {
        Command::Validate {
            paths,
            inventory,
            format,
            strict,
        } => validate(&paths, inventory.as_deref(), format, strict, color, sources),
        Command::Plan {
            runbook,
            inventory,
            vars,
            format,
        } => {
            let inventory = inventory
                .as_deref()
                .map(|p| load_inventory(p, sources))
                .transpose()?;
            let vars = collect_vars(&vars)?;
            let (plan, warnings) = load_plan(&runbook, inventory.as_ref(), &vars, sources)?;
            print_warnings(&warnings, sources, color);
            let text = match format {
                HumanOrJson::Human => preview::plan_human(&plan),
                HumanOrJson::Json => pretty(&preview::plan_json(&plan)),
            };
            print(&text)
        }
        Command::Run(args) => run_command(args, &cli.global, color, sources),
        Command::Resume {
            run_id,
            approve,
            yes,
            rerun,
            mark_done,
            secrets_file,
            force,
            accept_new_host_keys,
        } => crate::resume::resume(
            crate::resume::ResumeRequest {
                store: store(&cli.global),
                run_id,
                yes,
                approve,
                rerun,
                mark_done,
                secrets_file,
                force,
                transport: transports(accept_new_host_keys),
                color,
            },
            sources,
        ),
        Command::Rollback {
            run_id,
            yes,
            secrets_file,
        } => crate::rollback::rollback(
            crate::rollback::RollbackRequest {
                store: store(&cli.global),
                run_id,
                yes,
                secrets_file,
                transport: transports(false),
                color,
            },
            sources,
        ),
        Command::Report {
            run_id,
            format,
            output,
        } => {
            let store = store(&cli.global);
            let run = store.open_run(&run_id)?;
            let text = crate::report::render(&crate::report::build(&store, &run)?, format);
            match output {
                // Written in place: FILE may be a pipe or /dev/stdout.
                Some(path) => std::fs::write(&path, text.as_bytes())
                    .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display()))),
                None => print(&text),
            }
        }
        Command::Status { run_id, format } => {
            let store = store(&cli.global);
            let run = match run_id {
                Some(id) => store.open_run(&id)?,
                None => store.latest()?,
            };
            let text = crate::status::status(&run, format == HumanOrJson::Json)?;
            print(&text)
        }
        Command::Runs { format } => print(&crate::status::runs(
            &store(&cli.global),
            format == HumanOrJson::Json,
        )),
        Command::Graph { runbook, format } => {
            let (plan, _) = load_plan(&runbook, None, &BTreeMap::new(), sources)?;
            print(&preview::graph(&plan, format))
        }
        Command::Inventory {
            inventory,
            host,
            format,
        } => {
            let inventory = load_inventory(&inventory, sources)?;
            let text = match (format, host) {
                (HumanOrJson::Json, None) => pretty(&inventory.to_ansible_json()),
                (HumanOrJson::Json, Some(name)) => pretty(
                    &inventory
                        .host_json(&name)
                        .ok_or_else(|| unknown_host(&inventory, &name))?,
                ),
                (HumanOrJson::Human, host) => inventory
                    .render_human(host.as_deref())
                    .map_err(Error::Usage)?,
            };
            print(&text)
        }
        Command::Schema => print(&pretty(&schema::runbook_schema())),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "runbook", &mut out);
            print(&String::from_utf8_lossy(&out))
        }
    }
}

fn store(global: &Global) -> Store {
    Store::new(
        global
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".runbook")),
    )
}

fn run_command(
    args: RunArgs,
    global: &Global,
    color: bool,
    sources: &mut Vec<Source>,
) -> Result<()> {
    let inventory_source = load::source(&args.inventory).map_err(|d| Error::Invalid(vec![d]))?;
    let inventory = load_inventory(&args.inventory, sources)?;
    let vars = collect_vars(&args.vars)?;
    let (plan, warnings) = load_plan(&args.runbook, Some(&inventory), &vars, sources)?;
    print_warnings(&warnings, sources, color);
    let runbook_source = sources
        .iter()
        .rev()
        .find(|s| s.path == args.runbook)
        .cloned()
        .ok_or_else(|| Error::Internal("the runbook's text went missing".into()))?;
    for id in &args.approve {
        check_gate(&plan, id)?;
    }
    let mode = match (args.dry_run, args.probe, args.drill) {
        (true, true, _) => Mode::Probe,
        (true, false, _) => Mode::DryRun,
        (false, _, true) => Mode::Drill,
        _ => Mode::Real,
    };
    let approvals = if args.yes {
        Approvals::All
    } else {
        Approvals::Steps(args.approve.into_iter().collect())
    };
    if args.step && !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "--step asks before every step: it needs a terminal".into(),
        ));
    }
    let store = store(global);
    session::start(session::RunRequest {
        store,
        plan,
        runbook_source,
        inventory_source,
        vars,
        secrets_file: args.secrets_file,
        mode,
        approvals,
        reason: args.reason,
        max_parallel: usize::from(args.max_parallel),
        run_id: args.run_id,
        new: args.new,
        transport: transports(args.accept_new_host_keys),
        color,
        step_by_step: args.step,
    })
}

/// `--approve ID` must name an approval gate of the runbook.
fn check_gate(plan: &Plan, id: &str) -> Result<()> {
    if plan
        .steps
        .iter()
        .any(|s| s.id() == id && s.question.is_some())
    {
        return Ok(());
    }
    let gates = plan
        .steps
        .iter()
        .filter(|s| s.question.is_some())
        .map(PlannedStep::id);
    let hint = diagnostic::did_you_mean(id, gates.clone()).map_or_else(
        || format!("the gates are: {}", gates.collect::<Vec<_>>().join(", ")),
        |best| format!("did you mean `{best}`?"),
    );
    Err(Error::Usage(format!(
        "--approve {id}: {} has no approval step `{id}`; {hint}",
        plan.path.display()
    )))
}

/// The transports of a real run: each host's inventory entry picks one.
fn transports(accept_new_host_keys: bool) -> Arc<dyn Transport> {
    Arc::new(Router {
        local: Arc::new(LocalTransport::default()),
        ssh: Arc::new(SshTransport::new(SshOptions {
            accept_new_host_keys,
            ..SshOptions::default()
        })),
    })
}

fn unknown_host(inventory: &Inventory, name: &str) -> Error {
    let hint = diagnostic::did_you_mean(name, inventory.names())
        .map(|best| format!(" Did you mean `{best}`?"))
        .unwrap_or_default();
    Error::Usage(format!(
        "{name} is not a host of {}.{hint}",
        inventory.path().display()
    ))
}

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Internal(format!("cannot write the output: {e}")))
        }
        _ => Ok(()),
    }
}

fn print_warnings(warnings: &[Diagnostic], sources: &[Source], color: bool) {
    if !warnings.is_empty() {
        eprint!(
            "{}",
            diagnostic::render(warnings, sources, Format::Human, color)
        );
    }
}

fn load_inventory(path: &Path, sources: &mut Vec<Source>) -> Result<Inventory> {
    let source = load::source(path).map_err(|d| Error::Invalid(vec![d]))?;
    let ssh_config = std::env::var_os("HOME").map(|home| Path::new(&home).join(".ssh/config"));
    let result = Inventory::load(&source, ssh_config.as_deref().filter(|p| p.exists()));
    sources.push(source);
    result.map_err(Error::Invalid)
}

/// `--vars-file` first, then every `--var` (later wins).
fn collect_vars(args: &VarArgs) -> Result<BTreeMap<String, String>> {
    let mut vars = match &args.vars_file {
        Some(path) => load::vars_file(path).map_err(|d| Error::Invalid(vec![d]))?,
        None => BTreeMap::new(),
    };
    for pair in &args.var {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(Error::Usage(format!(
                "--var {pair}: write --var NAME=VALUE"
            )));
        };
        if !runbook::is_variable_name(name) {
            return Err(Error::Usage(format!(
                "--var {pair}: `{name}` is not a variable name (letters, digits and `_`)"
            )));
        }
        vars.insert(name.to_string(), value.to_string());
    }
    Ok(vars)
}

/// Reads, parses and plans one runbook; errors carry every diagnostic, warnings come back.
fn load_plan(
    path: &Path,
    inventory: Option<&Inventory>,
    vars: &BTreeMap<String, String>,
    sources: &mut Vec<Source>,
) -> Result<(Plan, Vec<Diagnostic>)> {
    let (plan, diagnostics) = check_runbook(path, inventory, vars, sources);
    match plan {
        Some(plan) => Ok((plan, diagnostics)),
        None => Err(Error::Invalid(diagnostics)),
    }
}

fn check_runbook(
    path: &Path,
    inventory: Option<&Inventory>,
    vars: &BTreeMap<String, String>,
    sources: &mut Vec<Source>,
) -> (Option<Plan>, Vec<Diagnostic>) {
    let source = match load::source(path) {
        Ok(source) => source,
        Err(d) => return (None, vec![d]),
    };
    let (runbook, mut diagnostics) = runbook::parse(&source);
    let plan = runbook.and_then(|runbook| {
        let (plan, more) = plan::plan(
            runbook,
            &plan::Inputs {
                source: &source,
                inventory,
                vars,
            },
        );
        diagnostics.extend(more);
        plan
    });
    sources.push(source);
    (plan, diagnostics)
}

fn validate(
    paths: &[PathBuf],
    inventory: Option<&Path>,
    format: Format,
    strict: bool,
    color: bool,
    sources: &mut Vec<Source>,
) -> Result<()> {
    let mut diagnostics = Vec::new();
    let inventory = match inventory.map(|p| load_inventory(p, sources)).transpose() {
        Ok(inventory) => inventory,
        Err(Error::Invalid(found)) => {
            diagnostics.extend(found);
            None
        }
        Err(other) => return Err(other),
    };
    let files = load::yaml_files(paths).map_err(|d| Error::Invalid(vec![d]))?;
    let mut valid = 0;
    for file in &files {
        let (plan, found) = check_runbook(file, inventory.as_ref(), &BTreeMap::new(), sources);
        valid += usize::from(plan.is_some() && (found.is_empty() || !strict));
        diagnostics.extend(found);
    }
    if strict {
        for d in &mut diagnostics {
            d.severity = diagnostic::Severity::Error;
        }
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    match format {
        Format::Human => {
            eprint!(
                "{}",
                diagnostic::render(&diagnostics, sources, Format::Human, color)
            );
            eprintln!(
                "{} of {} runbook{} valid ({})",
                valid,
                files.len(),
                if files.len() == 1 { "" } else { "s" },
                summary(errors, diagnostics.len() - errors)
            );
        }
        other => print(&diagnostic::render(&diagnostics, sources, other, false))?,
    }
    if errors > 0 {
        // Already printed in full above: the error carries nothing more to show.
        return Err(Error::Invalid(Vec::new()));
    }
    Ok(())
}
