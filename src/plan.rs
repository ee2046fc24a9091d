//! Runbook + inventory + variables → `Plan`: the only thing the executor accepts.
//!
//! Planning is where every cross-reference is checked, all problems at once: `needs` that
//! name no step, cycles (with the whole path), hosts and groups missing from the inventory,
//! templates and conditions that refer to undefined variables, undeclared secrets, steps
//! whose output cannot exist yet, or host variables some target host lacks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::condition::Condition;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::inventory::{Host, Inventory};
use crate::runbook::{Action, Retry, Runbook, Spanned, Step};
use crate::source::{Source, Span};
use crate::template::{Reference, Template, TextError};

/// A checked runbook, ready to execute: steps in file order with their resolved
/// dependencies, target hosts and parsed templates, and the waves they would start in.
#[derive(Debug, Clone)]
pub struct Plan {
    pub runbook: Runbook,
    pub path: PathBuf,
    /// Runbook defaults overridden by `--vars-file` and `--var`.
    pub vars: BTreeMap<String, String>,
    pub steps: Vec<PlannedStep>,
    /// Steps grouped by the earliest moment they could start: wave N needs only waves < N.
    pub waves: Vec<Vec<usize>>,
    /// Whether hosts were resolved against an inventory.
    pub has_inventory: bool,
}

/// One step, resolved.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub step: Step,
    /// Indices (into `Plan::steps`) of the steps this one waits for.
    pub needs: Vec<usize>,
    /// The hosts the command runs on (empty for approvals, or without an inventory).
    /// Shared: a host targeted by thousands of steps is held once.
    pub hosts: Vec<Arc<Host>>,
    pub command: Option<Template>,
    pub verify: Option<Template>,
    pub rollback: Option<Template>,
    /// The question of an approval gate.
    pub question: Option<Template>,
    pub when: Option<Condition>,
    pub timeout: Option<Duration>,
    pub retry: Retry,
}

impl PlannedStep {
    #[must_use]
    pub fn id(&self) -> &str {
        &self.step.id.value
    }
}

impl Plan {
    /// The index of the step with this id.
    #[must_use]
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id() == id)
    }
}

/// What planning needs besides the runbook.
pub struct Inputs<'a> {
    pub source: &'a Source,
    pub inventory: Option<&'a Inventory>,
    /// Overrides from `--vars-file` and `--var`, already merged (later wins).
    pub vars: &'a BTreeMap<String, String>,
}

/// Checks a parsed runbook against the inventory and variables.
#[must_use]
pub fn plan(runbook: Runbook, inputs: &Inputs) -> (Option<Plan>, Vec<Diagnostic>) {
    let mut planner = Planner {
        source: inputs.source,
        lines: inputs.source.text.lines().collect(),
        diagnostics: Vec::new(),
    };
    let ids: HashMap<&str, usize> = runbook
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.value.as_str(), i))
        .collect();
    let needs = planner.dependencies(&runbook, &ids);
    let Some(order) = planner.topological_order(&runbook, &needs) else {
        return (None, planner.diagnostics);
    };
    let mut position = vec![0; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let graph = Graph {
        needs: &needs,
        position: &position,
    };

    let mut vars: BTreeMap<String, String> = runbook
        .vars
        .iter()
        .map(|(k, v)| (k.value.clone(), v.clone()))
        .collect();
    vars.extend(inputs.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    let secrets: Vec<&str> = runbook.secrets.iter().map(|s| s.value.as_str()).collect();

    // Borrowed from the inventory while checking; each planned step clones its own once.
    let hosts: Vec<Vec<&Host>> = runbook
        .steps
        .iter()
        .map(|step| planner.hosts(step, inputs.inventory))
        .collect();

    let shared: HashMap<&str, Arc<Host>> = inputs
        .inventory
        .map(|inventory| {
            inventory
                .hosts()
                .iter()
                .map(|h| (h.name.as_str(), Arc::new(h.clone())))
                .collect()
        })
        .unwrap_or_default();
    let scope = Scope {
        shared: &shared,
        runbook: &runbook,
        ids: &ids,
        graph: &graph,
        vars: &vars,
        secrets: &secrets,
        hosts: &hosts,
        has_inventory: inputs.inventory.is_some(),
    };
    let mut steps = Vec::with_capacity(runbook.steps.len());
    for (index, step) in runbook.steps.iter().enumerate() {
        steps.push(planner.step(&scope, index, step, &needs[index]));
    }
    planner.warnings(&runbook);

    let has_errors = planner.diagnostics.iter().any(Diagnostic::is_error);
    if has_errors {
        return (None, planner.diagnostics);
    }
    let waves = waves(&order, &needs);
    let plan = Plan {
        path: inputs.source.path.clone(),
        vars,
        steps,
        waves,
        has_inventory: inputs.inventory.is_some(),
        runbook,
    };
    (Some(plan), planner.diagnostics)
}

/// The dependency graph, and each step's position in a topological order (for pruning).
struct Graph<'a> {
    needs: &'a [Vec<usize>],
    position: &'a [usize],
}

impl Graph<'_> {
    /// Whether `ancestor` always finishes before `step` starts.
    fn is_ancestor(&self, ancestor: usize, step: usize) -> bool {
        let limit = self.position[ancestor];
        let mut stack = vec![step];
        // A set, not a flag per step: the pruned walk visits few steps, and clearing a
        // whole-runbook array for each reference made big runbooks quadratic.
        let mut seen = HashSet::new();
        while let Some(current) = stack.pop() {
            for &dep in &self.needs[current] {
                if dep == ancestor {
                    return true;
                }
                // Nothing before the ancestor in topological order can lead to it.
                if self.position[dep] > limit && seen.insert(dep) {
                    stack.push(dep);
                }
            }
        }
        false
    }
}

/// What a template or condition of a step may refer to.
struct Scope<'a> {
    runbook: &'a Runbook,
    ids: &'a HashMap<&'a str, usize>,
    graph: &'a Graph<'a>,
    vars: &'a BTreeMap<String, String>,
    secrets: &'a [&'a str],
    hosts: &'a [Vec<&'a Host>],
    /// One shared copy of every host of the inventory.
    shared: &'a HashMap<&'a str, Arc<Host>>,
    has_inventory: bool,
}

struct Planner<'a> {
    source: &'a Source,
    /// The source's lines, indexed once: looking a line up by scanning the text for every
    /// template reference made big runbooks quadratic.
    lines: Vec<&'a str>,
    diagnostics: Vec<Diagnostic>,
}

impl Planner<'_> {
    fn file(&self) -> &Path {
        &self.source.path
    }

    fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Each step's dependencies: its `needs`, or the step written above it.
    fn dependencies(&mut self, runbook: &Runbook, ids: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
        let all_ids: Vec<&str> = runbook.steps.iter().map(|s| s.id.value.as_str()).collect();
        runbook
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| match &step.needs {
                None => i.checked_sub(1).into_iter().collect(),
                Some(needs) => {
                    let mut deps = Vec::with_capacity(needs.len());
                    for need in needs {
                        match ids.get(need.value.as_str()) {
                            Some(&dep) if !deps.contains(&dep) => deps.push(dep),
                            Some(_) => {}
                            None => {
                                let d = Diagnostic::error(
                                    "unknown-step",
                                    self.file(),
                                    need.span,
                                    format!(
                                        "step `{}` needs `{}`, which is not a step of this runbook",
                                        step.id.value, need.value
                                    ),
                                );
                                let d = match did_you_mean(&need.value, all_ids.iter().copied()) {
                                    Some(best) => d.with_help(format!("did you mean `{best}`?")),
                                    None => {
                                        d.with_help("`needs` lists ids of steps in this runbook")
                                    }
                                };
                                self.push(d);
                            }
                        }
                    }
                    deps
                }
            })
            .collect()
    }

    /// Kahn's algorithm; on a cycle, reports the whole cycle path and returns `None`.
    fn topological_order(&mut self, runbook: &Runbook, needs: &[Vec<usize>]) -> Option<Vec<usize>> {
        let n = needs.len();
        let mut dependents = vec![Vec::new(); n];
        let mut missing = vec![0usize; n];
        for (step, deps) in needs.iter().enumerate() {
            missing[step] = deps.len();
            for &dep in deps {
                dependents[dep].push(step);
            }
        }
        let mut ready: Vec<usize> = (0..n).rev().filter(|&s| missing[s] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(step) = ready.pop() {
            order.push(step);
            for &next in &dependents[step] {
                missing[next] -= 1;
                if missing[next] == 0 {
                    ready.push(next);
                }
            }
        }
        if order.len() == n {
            return Some(order);
        }
        let cycle = find_cycle(needs, &missing);
        let names: Vec<&str> = cycle
            .iter()
            .map(|&i| runbook.steps[i].id.value.as_str())
            .collect();
        let first = &runbook.steps[cycle[0]];
        let span = first
            .needs
            .as_ref()
            .and_then(|needs| needs.iter().find(|n| n.value == names[1]).map(|n| n.span))
            .unwrap_or(first.id.span);
        self.push(
            Diagnostic::error(
                "cycle",
                self.file(),
                span,
                format!("the steps form a cycle: {}", names.join(" -> ")),
            )
            .with_help(format!(
                "`{} -> {}` means `{}` needs `{}`; remove one of these `needs` so that the steps can run in some order",
                names[0], names[1], names[0], names[1]
            )),
        );
        None
    }

    fn hosts<'i>(&mut self, step: &Step, inventory: Option<&'i Inventory>) -> Vec<&'i Host> {
        let (Action::Run { on, .. }, Some(inventory)) = (&step.action, inventory) else {
            return Vec::new();
        };
        if let Some(hosts) = inventory.resolve(&on.value) {
            return hosts;
        }
        let d = Diagnostic::error(
            "unknown-target",
            self.file(),
            on.span,
            format!(
                "step `{}` runs on `{}`, which is neither a host nor a group of {}",
                step.id.value,
                on.value,
                inventory.path().display()
            ),
        );
        let d = match did_you_mean(&on.value, inventory.names()) {
            Some(best) => d.with_help(format!("did you mean `{best}`?")),
            None => d.with_help("add it to the inventory, or name an existing host or group"),
        };
        self.push(d);
        Vec::new()
    }

    fn step(&mut self, scope: &Scope, index: usize, step: &Step, needs: &[usize]) -> PlannedStep {
        let (mut command, mut verify, mut rollback, mut question) = (None, None, None, None);
        match &step.action {
            Action::Run {
                run,
                rollback: undo,
                verify: check,
                ..
            } => {
                command = self.template(scope, index, run);
                verify = check.as_ref().and_then(|t| self.template(scope, index, t));
                rollback = undo.as_ref().and_then(|t| self.template(scope, index, t));
            }
            Action::Approve { message } => question = self.template(scope, index, message),
        }
        let when = step
            .when
            .as_ref()
            .and_then(|w| self.condition(scope, index, w));
        let defaults = scope.runbook.defaults;
        PlannedStep {
            step: step.clone(),
            needs: needs.to_vec(),
            hosts: scope.hosts[index]
                .iter()
                .map(|h| {
                    scope
                        .shared
                        .get(h.name.as_str())
                        .map_or_else(|| Arc::new((*h).clone()), Arc::clone)
                })
                .collect(),
            command,
            verify,
            rollback,
            question,
            when,
            timeout: step.timeout.or(defaults.timeout),
            retry: step.retry.or(defaults.retry).unwrap_or_default(),
        }
    }

    fn template(
        &mut self,
        scope: &Scope,
        index: usize,
        text: &Spanned<String>,
    ) -> Option<Template> {
        match Template::parse(&text.value) {
            Ok(template) => {
                for (reference, offset, len) in template.references() {
                    let span = self.text_span(text, offset, len);
                    self.check_reference(scope, index, reference, span, false);
                }
                Some(template)
            }
            Err(errors) => {
                for e in errors {
                    self.text_error(text, &e, "template");
                }
                None
            }
        }
    }

    fn condition(
        &mut self,
        scope: &Scope,
        index: usize,
        text: &Spanned<String>,
    ) -> Option<Condition> {
        match Condition::parse(&text.value) {
            Ok(condition) => {
                for (reference, offset, len) in condition.references() {
                    let span = self.text_span(text, offset, len);
                    self.check_reference(scope, index, reference, span, true);
                }
                Some(condition)
            }
            Err(e) => {
                self.text_error(text, &e, "condition");
                None
            }
        }
    }

    fn text_error(&mut self, text: &Spanned<String>, e: &TextError, what: &str) {
        let span = self.text_span(text, e.offset, e.len);
        let d = Diagnostic::error(
            if what == "condition" {
                "condition"
            } else {
                "template"
            },
            self.file(),
            span,
            format!("bad {what}: {}", e.message),
        );
        let d = match &e.help {
            Some(help) => d.with_help(help.clone()),
            None => d,
        };
        self.push(d);
    }

    /// Where character `offset` of a scalar's text stands in the file.
    fn text_span(&self, text: &Spanned<String>, offset: u32, len: u32) -> Span {
        let node = text.span;
        let before: String = text.value.chars().take(offset as usize).collect();
        let newlines = before.matches('\n').count();
        let column_in_line = before.rsplit('\n').next().unwrap_or("").chars().count();
        let line = |n: u32| {
            n.checked_sub(1)
                .and_then(|i| self.lines.get(i as usize))
                .copied()
        };
        let line_text = line(node.line).unwrap_or("");
        let first = line_text.chars().nth(node.col.saturating_sub(1) as usize);
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match first {
            // A block scalar: its text starts on the next line, at that line's indentation.
            Some('|' | '>') => {
                let line_number = node.line + 1 + to_u32(newlines);
                let indent =
                    line(line_number).map_or(0, |l| l.chars().take_while(|c| *c == ' ').count());
                Span::new(line_number, to_u32(indent + column_in_line + 1), len)
            }
            Some('"' | '\'') if newlines == 0 => node.shifted(1 + offset, len),
            _ if newlines == 0 => node.shifted(offset, len),
            _ => Span::new(node.line, node.col, len),
        }
    }

    #[allow(clippy::too_many_lines)]
    fn check_reference(
        &mut self,
        scope: &Scope,
        index: usize,
        reference: &Reference,
        span: Span,
        in_condition: bool,
    ) {
        let step = &scope.runbook.steps[index];
        let file = self.file().to_path_buf();
        match reference {
            Reference::Var(name) => {
                if !scope.vars.contains_key(name) {
                    let d = Diagnostic::error(
                        "undefined-variable",
                        &file,
                        span,
                        format!("undefined variable `vars.{name}`"),
                    );
                    let d = match did_you_mean(name, scope.vars.keys().map(String::as_str)) {
                        Some(best) => d.with_help(format!("did you mean `vars.{best}`?")),
                        None => d.with_help(format!(
                            "declare it under `vars:` with a default, or pass `--var {name}=VALUE`"
                        )),
                    };
                    self.push(d);
                }
            }
            Reference::Secret(name) => {
                if !scope.secrets.contains(&name.as_str()) {
                    let d = Diagnostic::error(
                        "undeclared-secret",
                        &file,
                        span,
                        format!("secret `{name}` is not declared"),
                    );
                    let d = match did_you_mean(name, scope.secrets.iter().copied()) {
                        Some(best) => d.with_help(format!("did you mean `secrets.{best}`?")),
                        None => {
                            d.with_help(format!("add `{name}` to the runbook's `secrets:` list"))
                        }
                    };
                    self.push(d);
                }
            }
            Reference::HostName | Reference::HostAddress | Reference::HostVar(_)
                if step.is_approval() =>
            {
                self.push(
                    Diagnostic::error(
                        "no-host",
                        &file,
                        span,
                        format!("`{reference}` has no value in the approval `{}`: an approval runs on no host", step.id.value),
                    )
                    .with_help("name the host in the question's text, or use `vars.…`"),
                );
            }
            Reference::HostName | Reference::HostAddress => {}
            Reference::HostVar(name) => {
                let missing: Vec<&str> = scope.hosts[index]
                    .iter()
                    .filter(|h| !h.vars.contains_key(name))
                    .map(|h| h.name.as_str())
                    .collect();
                if !missing.is_empty() {
                    let shown = if missing.len() > 5 {
                        format!("{} and {} more", missing[..5].join(", "), missing.len() - 5)
                    } else {
                        missing.join(", ")
                    };
                    self.push(
                        Diagnostic::error(
                            "undefined-host-variable",
                            &file,
                            span,
                            format!("host variable `{name}` is not set on {shown}"),
                        )
                        .with_help(format!(
                            "set `{name}` for these hosts (or a group of theirs) in the inventory"
                        )),
                    );
                }
            }
            Reference::StepStdout(id) | Reference::StepExitCode(id) | Reference::StepStatus(id) => {
                if matches!(reference, Reference::StepStatus(_)) && !in_condition {
                    // The template parser rejects this already; nothing more to say.
                    return;
                }
                let Some(&target) = scope.ids.get(id.as_str()) else {
                    let ids = scope.runbook.steps.iter().map(|s| s.id.value.as_str());
                    let d = Diagnostic::error(
                        "unknown-step",
                        &file,
                        span,
                        format!("`{reference}` refers to no step: there is no step `{id}`"),
                    );
                    let d = match did_you_mean(id, ids) {
                        Some(best) => d.with_help(format!("did you mean `{best}`?")),
                        None => d.with_help("refer to the id of an earlier step"),
                    };
                    self.push(d);
                    return;
                };
                if target == index {
                    self.push(
                        Diagnostic::error(
                            "not-an-ancestor",
                            &file,
                            span,
                            format!("step `{id}` uses its own result `{reference}`"),
                        )
                        .with_help("a step cannot see its own output: use it in a later step that needs this one"),
                    );
                    return;
                }
                if !scope.graph.is_ancestor(target, index) {
                    self.push(
                        Diagnostic::error(
                            "not-an-ancestor",
                            &file,
                            span,
                            format!(
                                "step `{}` uses `{reference}`, but `{id}` does not always finish before it",
                                step.id.value
                            ),
                        )
                        .with_help(format!("add `{id}` to the `needs` of `{}`", step.id.value)),
                    );
                    return;
                }
                if matches!(reference, Reference::StepStatus(_)) || !scope.has_inventory {
                    return;
                }
                let source_hosts = &scope.hosts[target];
                if source_hosts.len() > 1 {
                    let own = &scope.hosts[index];
                    let all_inside = !own.is_empty()
                        && own
                            .iter()
                            .all(|h| source_hosts.iter().any(|s| s.name == h.name));
                    if !all_inside {
                        self.push(
                            Diagnostic::error(
                                "ambiguous-output",
                                &file,
                                span,
                                format!("`{reference}` is ambiguous: `{id}` ran on {} hosts", source_hosts.len()),
                            )
                            .with_help(format!(
                                "a step sees the output of `{id}` on its own host only; run `{}` on the same hosts, or make `{id}` run on one host",
                                step.id.value
                            )),
                        );
                    }
                }
            }
        }
    }

    /// The warnings of SPEC §2: no timeout anywhere; a command that is neither read-only
    /// nor undoable.
    fn warnings(&mut self, runbook: &Runbook) {
        for step in &runbook.steps {
            let Action::Run { rollback, .. } = &step.action else {
                continue;
            };
            if step.timeout.is_none() && runbook.defaults.timeout.is_none() {
                self.push(
                    Diagnostic::warning(
                        "no-timeout",
                        self.file(),
                        step.id.span,
                        format!("step `{}` has no timeout: a hung command would stall the recovery", step.id.value),
                    )
                    .with_help("add `timeout: 5m` to the step, or `defaults: { timeout: 5m }` to the runbook"),
                );
            }
            if !step.readonly && rollback.is_none() {
                self.push(
                    Diagnostic::warning(
                        "no-rollback",
                        self.file(),
                        step.id.span,
                        format!(
                            "step `{}` changes something but has no `rollback`",
                            step.id.value
                        ),
                    )
                    .with_help(
                        "add `rollback: COMMAND`, or `readonly: true` if the step changes nothing",
                    ),
                );
            }
        }
    }
}

/// A cycle among the steps Kahn's algorithm could not order (`missing[s] > 0`).
fn find_cycle(needs: &[Vec<usize>], missing: &[usize]) -> Vec<usize> {
    // Walk dependencies from a stuck step; every stuck step has a stuck dependency,
    // so the walk must revisit a step: the path from that step on is the cycle.
    let start = missing.iter().position(|&m| m > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut seen_at = HashMap::from([(start, 0)]);
    let mut current = start;
    loop {
        let Some(&next) = needs[current].iter().find(|&&d| missing[d] > 0) else {
            return path;
        };
        if let Some(&at) = seen_at.get(&next) {
            // Written in the direction of `needs`: a needs b needs c needs a.
            let mut cycle = path[at..].to_vec();
            cycle.push(next);
            return cycle;
        }
        seen_at.insert(next, path.len());
        path.push(next);
        current = next;
    }
}

/// Groups steps by their earliest start: one more than the latest wave they need.
fn waves(order: &[usize], needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut wave_of = vec![0usize; needs.len()];
    let mut waves: Vec<Vec<usize>> = Vec::new();
    for &step in order {
        let wave = needs[step]
            .iter()
            .map(|&d| wave_of[d] + 1)
            .max()
            .unwrap_or(0);
        wave_of[step] = wave;
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(step);
    }
    for wave in &mut waves {
        wave.sort_unstable();
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_text(text: &str, vars: &[(&str, &str)]) -> (Option<Plan>, Vec<Diagnostic>) {
        let source = Source::new("rb.yaml", text);
        let (runbook, mut diags) = crate::runbook::parse(&source);
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        let Some(runbook) = runbook else {
            return (None, diags);
        };
        let (plan, more) = plan(
            runbook,
            &Inputs {
                source: &source,
                inventory: None,
                vars: &vars,
            },
        );
        diags.extend(more);
        (plan, diags)
    }

    fn errors(diags: &[Diagnostic]) -> Vec<&Diagnostic> {
        diags.iter().filter(|d| d.is_error()).collect()
    }

    const HEAD: &str = "name: t\ndefaults: { timeout: 1m }\nsteps:\n";

    #[test]
    fn implicit_order_chains_steps_and_empty_needs_start_at_once() {
        let text = format!(
            "{HEAD}  - {{ id: a, on: h, run: x, readonly: true }}\n  - {{ id: b, on: h, run: x, readonly: true }}\n  - {{ id: c, on: h, run: x, readonly: true, needs: [] }}\n"
        );
        let (plan, diags) = plan_text(&text, &[]);
        assert!(errors(&diags).is_empty(), "{diags:?}");
        let plan = plan.unwrap();
        assert_eq!(plan.steps[1].needs, vec![0]);
        assert_eq!(plan.waves, vec![vec![0, 2], vec![1]]);
    }

    #[test]
    fn a_cycle_is_reported_with_its_whole_path() {
        let text = format!(
            "{HEAD}  - {{ id: a, on: h, run: x, readonly: true, needs: [c] }}\n  - {{ id: b, on: h, run: x, readonly: true, needs: [a] }}\n  - {{ id: c, on: h, run: x, readonly: true, needs: [b] }}\n"
        );
        let (_, diags) = plan_text(&text, &[]);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].message, "the steps form a cycle: a -> c -> b -> a");
    }

    #[test]
    fn unknown_needs_suggests_the_closest_id() {
        let text = format!(
            "{HEAD}  - {{ id: promote, on: h, run: x, readonly: true }}\n  - {{ id: b, on: h, run: x, readonly: true, needs: [promot] }}\n"
        );
        let (_, diags) = plan_text(&text, &[]);
        assert_eq!(diags[0].code, "unknown-step");
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `promote`?"));
    }

    #[test]
    fn output_of_a_step_that_is_not_an_ancestor_is_refused() {
        let text = format!(
            "{HEAD}  - {{ id: a, on: h, run: x, readonly: true, needs: [] }}\n  - {{ id: b, on: h, run: 'echo {{{{ steps.a.stdout }}}}', readonly: true, needs: [] }}\n"
        );
        let (_, diags) = plan_text(&text, &[]);
        assert_eq!(errors(&diags)[0].code, "not-an-ancestor");
    }

    #[test]
    fn undefined_variable_points_into_the_command() {
        let text = format!(
            "{HEAD}  - id: a\n    on: h\n    readonly: true\n    run: echo {{{{ vars.stie }}}}\n"
        );
        let (_, diags) = plan_text(&text, &[("site", "x")]);
        let d = errors(&diags)[0];
        assert_eq!(d.code, "undefined-variable");
        assert_eq!(d.span, Some(Span::new(7, 18, 9)));
        assert_eq!(d.help.as_deref(), Some("did you mean `vars.site`?"));
    }

    #[test]
    fn steps_without_timeout_or_rollback_are_warned_about() {
        let (plan, diags) = plan_text("name: t\nsteps:\n  - { id: a, on: h, run: x }\n", &[]);
        assert!(plan.is_some());
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["no-timeout", "no-rollback"]);
    }
}
