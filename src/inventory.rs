//! Ansible's YAML inventory: groups, hosts, variables with Ansible's precedence,
//! and the connection details of each host (with `~/.ssh/config` applied).
//!
//! Operators keep one inventory for Ansible and for this tool, so the reading follows
//! ansible-core (`plugins/inventory/yaml.py`, `inventory/data.py`, `inventory/group.py`):
//! the same group tree, the same `ungrouped`, the same merge order of variables, and a
//! `--list` JSON that compares equal to `ansible-inventory`'s. Where Ansible only warns
//! (an unknown key, a section of the wrong shape) this reader refuses with a diagnostic:
//! a typo in an inventory must not silently drop hosts from a recovery.

mod ssh_config;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value as Json;

pub use ssh_config::{HostSettings, SshConfig};

use crate::diagnostic::Diagnostic;
use crate::source::{Source, Span};
use crate::yaml::{self, Key, Node, Value};

/// How commands reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Ssh,
    Local,
}

/// One host with everything needed to reach it, after variable precedence.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Host {
    /// The inventory name (`hq-emr-db-secondary`).
    pub name: String,
    /// Where to connect: `ansible_host`, else ssh_config's HostName, else the name.
    pub address: String,
    /// `ansible_port`, else ssh_config's Port, else 22.
    pub port: u16,
    /// `ansible_user`, else ssh_config's User; `None`: the local user.
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file`, else ssh_config's IdentityFile (absolute paths).
    pub identity_files: Vec<PathBuf>,
    /// `runbook_transport`, default `ssh`.
    pub transport: TransportKind,
    /// `runbook_workdir`: where local commands run (absolute path).
    pub workdir: Option<PathBuf>,
    /// `runbook_known_hosts`: an extra known_hosts file (absolute path).
    pub known_hosts: Option<PathBuf>,
    /// `runbook_connect_timeout`: connect + handshake + auth limit (default 10 s).
    pub connect_timeout: Duration,
    /// Every variable of the host after precedence (all < parent < child < host).
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// The keys a group may have.
const GROUP_KEYS: [&str; 3] = ["hosts", "vars", "children"];
const ALL: usize = 0;
const UNGROUPED: usize = 1;
/// `runbook_connect_timeout` when none is given.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A variable's value and where it was set, so that a bad value is shown in place.
#[derive(Debug, Clone)]
struct Var {
    value: Json,
    span: Span,
}

type Vars = BTreeMap<String, Var>;

#[derive(Debug, Clone)]
struct Group {
    name: String,
    vars: Vars,
    /// `ansible_group_priority` (default 1): among groups of one depth, higher wins.
    priority: i64,
    children: Vec<usize>,
    parents: Vec<usize>,
    /// Hosts listed directly in the group, in the order first met.
    hosts: Vec<usize>,
    /// The longest path from `all` (Ansible's `group.depth`).
    depth: usize,
}

/// A host as read, before precedence and connection details.
#[derive(Debug, Clone)]
struct RawHost {
    name: String,
    vars: Vars,
    /// Where it was first defined.
    span: Span,
    /// The groups that list it directly.
    groups: Vec<usize>,
}

/// A read inventory: the group tree and every host, resolved.
#[derive(Debug, Clone)]
pub struct Inventory {
    path: PathBuf,
    /// In Ansible's order: `all`, `ungrouped`, then as met in the file.
    groups: Vec<Group>,
    /// In file order (first definition), with the same indices as `host_groups`.
    hosts: Vec<Host>,
    /// The groups that list each host directly.
    host_groups: Vec<Vec<usize>>,
}

impl Inventory {
    /// Reads an inventory; every problem at once, as Diagnostics with line/col.
    /// `ssh_config`: the OpenSSH client config to apply (`None` = none).
    pub fn load(source: &Source, ssh_config: Option<&Path>) -> Result<Inventory, Vec<Diagnostic>> {
        let file = source.path();
        let root = yaml::parse_with(&source.text, yaml::Scalars::Yaml11).map_err(|e| {
            vec![
                Diagnostic::error("yaml", file, e.span, yaml_message(&e.message))
                    .with_help("fix the YAML syntax at this place"),
            ]
        })?;
        let mut builder = Builder::new(file);
        builder.read_root(&root);
        builder.reconcile();
        let ssh = match ssh_config {
            Some(path) => SshConfig::load(path),
            None => Ok(SshConfig::default()),
        };
        let ssh = ssh.unwrap_or_else(|mut problems| {
            builder.problems.append(&mut problems);
            SshConfig::default()
        });
        let base = std::path::absolute(
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .unwrap_or_else(|_| PathBuf::from("."));
        let hosts: Vec<Host> = (0..builder.hosts.len())
            .filter_map(|i| builder.resolve_host(i, &ssh, &base))
            .collect();
        if !builder.problems.is_empty() {
            return Err(builder.problems);
        }
        Ok(Inventory {
            path: file.to_path_buf(),
            host_groups: builder.hosts.iter().map(|h| h.groups.clone()).collect(),
            groups: builder.groups,
            hosts,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All hosts, in file order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// A host or group name -> its hosts. A group gives the hosts of it and of its
    /// children at any depth, each once: its own first, then breadth-first by child order.
    /// `None` if the name is neither.
    pub fn resolve(&self, target: &str) -> Option<Vec<&Host>> {
        if let Some(host) = self.host(target) {
            return Some(vec![host]);
        }
        let group = self.group_index(target)?;
        Some(
            self.hosts_of(group)
                .into_iter()
                .map(|h| &self.hosts[h])
                .collect(),
        )
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    pub fn is_group(&self, name: &str) -> bool {
        self.group_index(name).is_some()
    }

    /// All host and group names (for "did you mean").
    pub fn names(&self) -> Vec<&str> {
        self.groups
            .iter()
            .map(|g| g.name.as_str())
            .chain(self.hosts.iter().map(|h| h.name.as_str()))
            .collect()
    }

    /// Exactly the structure `ansible-inventory -i F --list` prints, so it compares equal as JSON.
    pub fn to_ansible_json(&self) -> Json {
        let mut out = serde_json::Map::new();
        let mut seen = HashSet::new();
        self.format_group(ALL, &mut seen, &mut out);
        let hostvars: serde_json::Map<String, Json> = self
            .hosts
            .iter()
            .filter(|h| !h.vars.is_empty())
            .map(|h| (h.name.clone(), vars_json(h)))
            .collect();
        out.insert(
            "_meta".into(),
            serde_json::json!({ "hostvars": hostvars, "profile": "inventory_legacy" }),
        );
        Json::Object(out)
    }

    /// `ansible-inventory -i F --host NAME`: that host's vars after precedence.
    pub fn host_json(&self, name: &str) -> Option<Json> {
        self.host(name).map(vars_json)
    }

    /// Human-readable listing: the group tree with hosts, and with `host` given, that
    /// host's resolved connection and vars.
    pub fn render_human(&self, host: Option<&str>) -> Result<String, String> {
        let mut out = String::new();
        match host {
            None => {
                let _ = writeln!(out, "inventory {}", self.path.display());
                self.render_group(ALL, 0, &mut out);
            }
            Some(name) => {
                let Some(index) = self.hosts.iter().position(|h| h.name == name) else {
                    let mut message = format!("no host `{name}` in {}", self.path.display());
                    let hosts = self.hosts.iter().map(|h| h.name.as_str());
                    if let Some(best) = crate::diagnostic::did_you_mean(name, hosts) {
                        let _ = write!(message, "; did you mean `{best}`?");
                    }
                    return Err(message);
                };
                self.render_host(index, &mut out);
            }
        }
        Ok(out)
    }

    fn group_index(&self, name: &str) -> Option<usize> {
        self.groups.iter().position(|g| g.name == name)
    }

    /// Host indices of a group and its descendants, deduplicated, in a stable order.
    fn hosts_of(&self, group: usize) -> Vec<usize> {
        let mut queue = std::collections::VecDeque::from([group]);
        let mut seen_groups = HashSet::from([group]);
        let mut seen_hosts = HashSet::new();
        let mut out = Vec::new();
        while let Some(g) = queue.pop_front() {
            for &h in &self.groups[g].hosts {
                if seen_hosts.insert(h) {
                    out.push(h);
                }
            }
            for &c in &self.groups[g].children {
                if seen_groups.insert(c) {
                    queue.push_back(c);
                }
            }
        }
        out
    }

    /// `InventoryCLI.json_inventory.format_group`, step for step.
    fn format_group(
        &self,
        g: usize,
        seen: &mut HashSet<usize>,
        out: &mut serde_json::Map<String, Json>,
    ) {
        let group = &self.groups[g];
        let mut entry = serde_json::Map::new();
        if g != ALL && !group.hosts.is_empty() {
            let hosts = group
                .hosts
                .iter()
                .map(|&h| Json::from(self.hosts[h].name.clone()));
            entry.insert("hosts".into(), Json::Array(hosts.collect()));
        }
        if !group.children.is_empty() {
            let children = group
                .children
                .iter()
                .map(|&c| Json::from(self.groups[c].name.clone()));
            entry.insert("children".into(), Json::Array(children.collect()));
        }
        for &c in &group.children {
            if seen.insert(c) {
                self.format_group(c, seen, out);
            }
        }
        if !entry.is_empty() {
            out.insert(group.name.clone(), Json::Object(entry));
        }
    }

    fn render_group(&self, g: usize, depth: usize, out: &mut String) {
        let group = &self.groups[g];
        let indent = "  ".repeat(depth);
        let _ = writeln!(out, "{indent}@{}", group.name);
        for &c in &group.children {
            self.render_group(c, depth + 1, out);
        }
        if g != ALL {
            for &h in &group.hosts {
                let host = &self.hosts[h];
                let _ = writeln!(out, "{indent}  {}  ({})", host.name, connection(host));
            }
        }
    }

    fn render_host(&self, index: usize, out: &mut String) {
        let host = &self.hosts[index];
        let show = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or_else(|| "-".to_string(), |p| p.display().to_string())
        };
        let groups: Vec<&str> = self.host_groups[index]
            .iter()
            .map(|&g| self.groups[g].name.as_str())
            .collect();
        let keys: Vec<String> = host
            .identity_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(out, "host {}", host.name);
        let _ = writeln!(out, "  address:         {}", host.address);
        let _ = writeln!(out, "  port:            {}", host.port);
        let _ = writeln!(
            out,
            "  user:            {}",
            host.user.as_deref().unwrap_or("-")
        );
        let _ = writeln!(out, "  transport:       {}", transport_name(host.transport));
        let _ = writeln!(out, "  workdir:         {}", show(&host.workdir));
        let _ = writeln!(
            out,
            "  identity files:  {}",
            if keys.is_empty() {
                "-".to_string()
            } else {
                keys.join(", ")
            }
        );
        let _ = writeln!(out, "  known_hosts:     {}", show(&host.known_hosts));
        let _ = writeln!(
            out,
            "  connect timeout: {}",
            humantime(host.connect_timeout)
        );
        let _ = writeln!(out, "  groups:          {}", groups.join(", "));
        let _ = writeln!(out, "vars:");
        if host.vars.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for (name, value) in &host.vars {
            let _ = writeln!(out, "  {name}: {value}");
        }
    }
}

/// The parser's message without its own `error: line L column C:` prefix (the
/// diagnostic shows both already).
fn yaml_message(message: &str) -> String {
    let rest = message.strip_prefix("error: ").unwrap_or(message);
    let rest = match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((position, tail)) if position.contains("column") => tail,
        _ => rest,
    };
    rest.to_string()
}

fn vars_json(host: &Host) -> Json {
    Json::Object(
        host.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Ssh => "ssh",
        TransportKind::Local => "local",
    }
}

/// `local`, or `user@address:port` as ssh would be told.
fn connection(host: &Host) -> String {
    match host.transport {
        TransportKind::Local => "local".to_string(),
        TransportKind::Ssh => {
            let user = host
                .user
                .as_ref()
                .map(|u| format!("{u}@"))
                .unwrap_or_default();
            format!("ssh {user}{}:{}", host.address, host.port)
        }
    }
}

fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", d.as_secs())
    } else {
        format!("{ms}ms")
    }
}

/// Reads the YAML tree into groups and hosts, collecting every problem.
struct Builder<'a> {
    file: &'a Path,
    groups: Vec<Group>,
    group_names: HashMap<String, usize>,
    hosts: Vec<RawHost>,
    host_names: HashMap<String, usize>,
    problems: Vec<Diagnostic>,
}

impl<'a> Builder<'a> {
    fn new(file: &'a Path) -> Self {
        let mut builder = Builder {
            file,
            groups: Vec::new(),
            group_names: HashMap::new(),
            hosts: Vec::new(),
            host_names: HashMap::new(),
            problems: Vec::new(),
        };
        builder.add_group("all");
        builder.add_group("ungrouped");
        builder.groups[ALL].children.push(UNGROUPED);
        builder.groups[UNGROUPED].parents.push(ALL);
        builder
    }

    fn error(
        &mut self,
        code: &'static str,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.problems
            .push(Diagnostic::error(code, self.file, span, message).with_help(help));
    }

    fn read_root(&mut self, root: &Node) {
        let example = "an inventory is a mapping of groups, e.g. `all: { hosts: { web1: { ansible_host: 10.0.0.1 } } }`";
        let entries = match &root.value {
            Value::Map(entries) if !entries.is_empty() => entries,
            Value::Null | Value::Map(_) => {
                self.problems.push(
                    Diagnostic::file_error("inventory-empty", self.file, "the inventory is empty")
                        .with_help(example),
                );
                return;
            }
            _ => {
                let message = format!("an inventory is a mapping of groups, found {}", root.kind());
                self.error("inventory-structure", root.span, message, example);
                return;
            }
        };
        for (key, node) in entries {
            if GROUP_KEYS.contains(&key.name.as_str()) {
                let message = format!(
                    "`{}` at the top level: top-level keys are group names",
                    key.name
                );
                let help = format!(
                    "put it under a group: `all:` then `  {}:` indented below it",
                    key.name
                );
                self.error("inventory-structure", key.span, message, help);
            } else if key.name == "plugin" {
                self.error(
                    "inventory-structure",
                    key.span,
                    "this is an inventory plugin configuration, not a YAML inventory",
                    "give a YAML inventory (groups with `hosts`, `vars`, `children`)",
                );
            } else {
                self.group(key, node);
            }
        }
    }

    fn add_group(&mut self, name: &str) -> usize {
        if let Some(&g) = self.group_names.get(name) {
            return g;
        }
        self.groups.push(Group {
            name: name.to_string(),
            vars: Vars::new(),
            priority: 1,
            children: Vec::new(),
            parents: Vec::new(),
            hosts: Vec::new(),
            depth: 0,
        });
        self.group_names
            .insert(name.to_string(), self.groups.len() - 1);
        self.groups.len() - 1
    }

    /// `_parse_group`: a group's sections in the order written.
    fn group(&mut self, key: &Key, node: &Node) -> usize {
        let g = self.add_group(&key.name);
        match &node.value {
            Value::Null => {}
            Value::Map(sections) => {
                for (section, value) in sections {
                    self.section(g, section, value);
                }
            }
            _ => {
                let message = format!(
                    "group `{}` must be a mapping of `hosts`, `vars` and `children`, found {}",
                    key.name,
                    node.kind()
                );
                self.error(
                    "inventory-structure",
                    node.span,
                    message,
                    "e.g. `web: { hosts: { web1: } }`, or nothing after the colon",
                );
            }
        }
        g
    }

    fn section(&mut self, g: usize, section: &Key, value: &Node) {
        let group_name = self.groups[g].name.clone();
        if !GROUP_KEYS.contains(&section.name.as_str()) {
            let d = Diagnostic::error(
                "unknown-field",
                self.file,
                section.span,
                format!("unknown key `{}` in group `{group_name}`", section.name),
            );
            let d = if crate::diagnostic::did_you_mean(&section.name, GROUP_KEYS).is_some() {
                d.suggest(&section.name, GROUP_KEYS)
            } else {
                d.with_help("a group has only `hosts`, `vars` and `children`")
            };
            self.problems.push(d);
            return;
        }
        // Ansible accepts a bare string as a one-entry mapping (`hosts: web1`).
        let entries: Cow<[(Key, Node)]> = match &value.value {
            Value::Null => return,
            Value::Map(entries) => Cow::Borrowed(entries),
            Value::Str(name) => Cow::Owned(vec![(
                Key {
                    name: name.clone(),
                    span: value.span,
                },
                Node {
                    value: Value::Null,
                    span: value.span,
                },
            )]),
            _ => {
                let message = format!(
                    "`{}` of group `{group_name}` must be a mapping, found {}",
                    section.name,
                    value.kind()
                );
                let help = match section.name.as_str() {
                    "hosts" => {
                        "list hosts as keys, each with its vars or nothing: `web1:` on one line, `web2: { ansible_port: 2222 }` on the next"
                    }
                    "children" => "list child groups as keys, one per line: `web:`, `db:`",
                    _ => {
                        "write vars as `name: value` pairs, one per line, e.g. `ansible_user: root`"
                    }
                };
                self.error("inventory-structure", value.span, message, help);
                return;
            }
        };
        for (key, node) in entries.iter() {
            match section.name.as_str() {
                "vars" => self.group_var(g, key, node),
                "children" => {
                    let child = self.group(key, node);
                    self.add_child(g, child, key.span);
                }
                _ => self.host_entry(g, key, node),
            }
        }
    }

    fn group_var(&mut self, g: usize, key: &Key, node: &Node) {
        if key.name == "ansible_group_priority" {
            // Ansible keeps the priority apart from the vars (`int(value)`).
            let priority = match &node.value {
                Value::Int(i) => Some(*i),
                Value::Str(s) => s.trim().parse().ok(),
                _ => None,
            };
            match priority {
                Some(p) => self.groups[g].priority = p,
                None => self.error(
                    "bad-priority",
                    node.span,
                    format!(
                        "`ansible_group_priority` must be a whole number, found {}",
                        node.kind()
                    ),
                    "e.g. `ansible_group_priority: 10` (higher wins among groups of one depth)",
                ),
            }
            return;
        }
        let var = Var {
            value: node.to_json(),
            span: node.span,
        };
        self.groups[g].vars.insert(key.name.clone(), var);
    }

    /// `Group.add_child_group`: refuses cycles, ignores repeats.
    fn add_child(&mut self, parent: usize, child: usize, span: Span) {
        if child == ALL {
            let message = format!(
                "`all` cannot be a child of group `{}`",
                self.groups[parent].name
            );
            self.error(
                "inventory-structure",
                span,
                message,
                "every group is already below `all`",
            );
            return;
        }
        if self.groups[parent].children.contains(&child) {
            return;
        }
        if let Some(path) = self.path_down(child, parent) {
            let mut names: Vec<&str> = vec![self.groups[parent].name.as_str()];
            names.extend(path.iter().map(|&g| self.groups[g].name.as_str()));
            let message = format!("group cycle: {}", names.join(" -> "));
            self.error(
                "cycle",
                span,
                message,
                "a group cannot be its own ancestor: remove one of these `children` entries",
            );
            return;
        }
        self.groups[parent].children.push(child);
        self.groups[child].parents.push(parent);
    }

    /// The groups from `from` down to `to` through children, if `to` is below (or is) `from`.
    /// Breadth-first with a visited set: shared children must not make the search exponential.
    fn path_down(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let mut came_from: HashMap<usize, usize> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([from]);
        while let Some(g) = queue.pop_front() {
            if g == to {
                let mut path = vec![g];
                while let Some(&prev) = came_from.get(path.last().unwrap_or(&from)) {
                    path.push(prev);
                }
                path.reverse();
                return Some(path);
            }
            for &c in &self.groups[g].children {
                if c != from && !came_from.contains_key(&c) {
                    came_from.insert(c, g);
                    queue.push_back(c);
                }
            }
        }
        None
    }

    /// One key under `hosts`: a name or a range pattern, maybe with `:port`, and its vars.
    fn host_entry(&mut self, g: usize, key: &Key, node: &Node) {
        let (names, port) = match expand_host_pattern(&key.name) {
            Ok(expanded) => expanded,
            Err((code, message, help)) => {
                self.error(code, key.span, message, help);
                return;
            }
        };
        let vars: &[(Key, Node)] = match &node.value {
            Value::Null => &[],
            Value::Map(entries) => entries,
            _ => {
                let message = format!(
                    "the vars of host `{}` must be a mapping, found {}",
                    key.name,
                    node.kind()
                );
                self.error(
                    "inventory-structure",
                    node.span,
                    message,
                    format!(
                        "e.g. `{}: {{ ansible_host: 10.0.0.1 }}`, or nothing after the colon",
                        key.name
                    ),
                );
                return;
            }
        };
        for name in names {
            let h = self.add_host(name, key.span, port);
            if !self.hosts[h].groups.contains(&g) {
                self.hosts[h].groups.push(g);
            }
            if !self.groups[g].hosts.contains(&h) {
                self.groups[g].hosts.push(h);
            }
            for (var, value) in vars {
                let v = Var {
                    value: value.to_json(),
                    span: value.span,
                };
                self.hosts[h].vars.insert(var.name.clone(), v);
            }
        }
    }

    /// The host named `name`, created on first sight. Like Ansible's `Host(name, port)`,
    /// a pattern's `:port` counts only where the host is created.
    fn add_host(&mut self, name: String, span: Span, port: Option<u16>) -> usize {
        if let Some(&h) = self.host_names.get(&name) {
            return h;
        }
        let mut vars = Vars::new();
        if let Some(port) = port {
            let value = Json::from(port);
            vars.insert("ansible_port".into(), Var { value, span });
        }
        self.hosts.push(RawHost {
            name: name.clone(),
            vars,
            span,
            groups: Vec::new(),
        });
        self.host_names.insert(name, self.hosts.len() - 1);
        self.hosts.len() - 1
    }

    /// `InventoryData.reconcile_inventory`: top groups go under `all`, hosts with no
    /// group but `all` go to `ungrouped`; then depths.
    fn reconcile(&mut self) {
        for g in 0..self.groups.len() {
            if g != ALL && self.groups[g].parents.is_empty() {
                self.groups[ALL].children.push(g);
                self.groups[g].parents.push(ALL);
            }
        }
        for h in 0..self.hosts.len() {
            let groups = &self.hosts[h].groups;
            let in_ungrouped = groups.contains(&UNGROUPED);
            let elsewhere = groups.iter().any(|&g| g != ALL && g != UNGROUPED);
            if in_ungrouped && elsewhere {
                self.groups[UNGROUPED].hosts.retain(|&x| x != h);
                self.hosts[h].groups.retain(|&g| g != UNGROUPED);
            } else if !in_ungrouped && !elsewhere {
                self.groups[UNGROUPED].hosts.push(h);
                self.hosts[h].groups.push(UNGROUPED);
            }
        }
        let mut depths: Vec<Option<usize>> = vec![None; self.groups.len()];
        for g in 0..self.groups.len() {
            let d = self.depth(g, &mut depths);
            self.groups[g].depth = d;
        }
    }

    /// The longest path from a top group (the DAG has no cycles: `add_child` refuses them).
    fn depth(&self, g: usize, memo: &mut Vec<Option<usize>>) -> usize {
        if let Some(d) = memo[g] {
            return d;
        }
        let d = self.groups[g]
            .parents
            .clone()
            .into_iter()
            .map(|p| self.depth(p, memo) + 1)
            .max()
            .unwrap_or(0);
        memo[g] = Some(d);
        d
    }

    /// A host's vars after precedence: its groups and their ancestors sorted by
    /// (depth, priority, name) and merged in that order, then the host's own.
    fn merged_vars(&self, h: usize) -> Vars {
        let mut groups: Vec<usize> = Vec::new();
        let mut stack = self.hosts[h].groups.clone();
        while let Some(g) = stack.pop() {
            if !groups.contains(&g) {
                groups.push(g);
                stack.extend(&self.groups[g].parents);
            }
        }
        groups.sort_by(|&a, &b| {
            let key = |g: usize| {
                (
                    self.groups[g].depth,
                    self.groups[g].priority,
                    &self.groups[g].name,
                )
            };
            key(a).cmp(&key(b))
        });
        let mut vars = Vars::new();
        for g in groups {
            vars.extend(
                self.groups[g]
                    .vars
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        vars.extend(
            self.hosts[h]
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        vars
    }

    /// The host with its connection details, or `None` after recording its problems.
    fn resolve_host(&mut self, h: usize, ssh: &SshConfig, base: &Path) -> Option<Host> {
        let vars = self.merged_vars(h);
        let name = self.hosts[h].name.clone();
        let before = self.problems.len();
        let text = |b: &mut Self, key: &str| -> Option<String> {
            let var = vars.get(key)?;
            match &var.value {
                Json::String(s) => Some(s.clone()),
                Json::Number(n) => Some(n.to_string()),
                other => {
                    let message = format!(
                        "`{key}` of host `{name}` must be text, found {}",
                        json_kind(other)
                    );
                    b.error("bad-var", var.span, message, format!("e.g. `{key}: value`"));
                    None
                }
            }
        };
        let ansible_host = text(self, "ansible_host");
        let user = text(self, "ansible_user");
        let key_file = text(self, "ansible_ssh_private_key_file")
            .or_else(|| text(self, "ansible_private_key_file"));
        let workdir = text(self, "runbook_workdir");
        let known_hosts = text(self, "runbook_known_hosts");
        let transport_text = text(self, "runbook_transport");
        // ssh is given `ansible_host` (or the name) and looks that up in its config.
        let settings = ssh.query(ansible_host.as_deref().unwrap_or(&name));

        let port = match vars.get("ansible_port") {
            None => settings.port.unwrap_or(22),
            Some(var) => port_of(&var.value).unwrap_or_else(|| {
                let message = format!(
                    "`ansible_port` of host `{name}` is not a port number: {}",
                    var.value
                );
                self.error(
                    "bad-port",
                    var.span,
                    message,
                    "use a number from 1 to 65535",
                );
                22
            }),
        };
        let transport = match transport_text.as_deref() {
            None | Some("ssh") => TransportKind::Ssh,
            Some("local") => TransportKind::Local,
            Some(other) => {
                let span = vars
                    .get("runbook_transport")
                    .map_or(self.hosts[h].span, |v| v.span);
                let d = Diagnostic::error(
                    "bad-transport",
                    self.file,
                    span,
                    format!("unknown `runbook_transport` `{other}` for host `{name}`"),
                );
                let d = match crate::diagnostic::did_you_mean(other, ["ssh", "local"]) {
                    Some(best) => d.with_help(format!("did you mean `{best}`? (`ssh` or `local`)")),
                    None => d.with_help("use `ssh` (the default) or `local`"),
                };
                self.problems.push(d);
                TransportKind::Ssh
            }
        };
        let connect_timeout = match vars.get("runbook_connect_timeout") {
            None => DEFAULT_CONNECT_TIMEOUT,
            Some(var) => parse_duration(&var.value).unwrap_or_else(|| {
                let message = format!(
                    "`runbook_connect_timeout` of host `{name}` is not a duration: {}",
                    var.value
                );
                self.error(
                    "bad-duration",
                    var.span,
                    message,
                    "e.g. `10s`, `500ms`, `1m`",
                );
                DEFAULT_CONNECT_TIMEOUT
            }),
        };
        if self.problems.len() > before {
            return None;
        }
        let identity_files = match key_file {
            Some(path) => vec![inventory_path(base, &path)],
            None => settings.identity_files,
        };
        Some(Host {
            address: ansible_host
                .or(settings.hostname)
                .unwrap_or_else(|| name.clone()),
            port,
            user: user.or(settings.user),
            identity_files,
            transport,
            workdir: workdir.map(|p| inventory_path(base, &p)),
            known_hosts: known_hosts.map(|p| inventory_path(base, &p)),
            connect_timeout,
            vars: vars.into_iter().map(|(k, v)| (k, v.value)).collect(),
            name,
        })
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "nothing",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}

fn port_of(value: &Json) -> Option<u16> {
    let port = match value {
        Json::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }?;
    (port != 0).then_some(port)
}

/// `10s`, `500ms`, `1m`, `1h`, or a bare number of seconds; zero is refused.
fn parse_duration(value: &Json) -> Option<Duration> {
    let text = match value {
        Json::Number(n) => return n.as_u64().filter(|&s| s > 0).map(Duration::from_secs),
        Json::String(s) => s.trim(),
        _ => return None,
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}

/// A path written in the inventory: `~/` is `$HOME`, relative is from the inventory's folder.
fn inventory_path(base: &Path, path: &str) -> PathBuf {
    let expanded = ssh_config::expand_home(path);
    if expanded.is_absolute() {
        expanded
    } else {
        base.join(expanded)
    }
}

type PatternError = (&'static str, String, String);

/// `_expand_hostpattern`: splits a `:port` off and expands `[a:b(:step)]` ranges.
fn expand_host_pattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), PatternError> {
    let (name, port) = split_port(pattern)?;
    let names = if name.contains('[') {
        expand_ranges(name)?
    } else {
        vec![name.to_string()]
    };
    Ok((names, port))
}

/// `host:22` has a port; `[::1]`-less IPv6 addresses (several colons) do not.
fn split_port(pattern: &str) -> Result<(&str, Option<u16>), PatternError> {
    let mut depth = 0i32;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    let [colon] = colons[..] else {
        return Ok((pattern, None));
    };
    let (name, digits) = (&pattern[..colon], &pattern[colon + 1..]);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Ok((pattern, None));
    }
    match digits.parse::<u16>() {
        Ok(port) if port > 0 => Ok((name, Some(port))),
        _ => Err((
            "bad-port",
            format!("`{digits}` in `{pattern}` is not a port number"),
            "use a number from 1 to 65535".to_string(),
        )),
    }
}

/// `expand_hostname_range`: the first `[beg:end(:step)]`, then the rest recursively.
fn expand_ranges(pattern: &str) -> Result<Vec<String>, PatternError> {
    let bad = |why: String| {
        (
            "bad-range",
            format!("bad host range in `{pattern}`: {why}"),
            "write a range as `[01:08]`, `[a:c]` or `[1:10:2]` (begin:end:step)".to_string(),
        )
    };
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let Some(len) = pattern[open..].find(']') else {
        return Err(bad("`[` without `]`".into()));
    };
    let (head, range, tail) = (
        &pattern[..open],
        &pattern[open + 1..open + len],
        &pattern[open + len + 1..],
    );
    let bounds: Vec<&str> = range.split(':').collect();
    let (beg, end, step) = match bounds[..] {
        [b, e] => (b, e, "1"),
        [b, e, s] => (b, e, s),
        _ => return Err(bad("a range is begin:end or begin:end:step".into())),
    };
    let beg = if beg.is_empty() { "0" } else { beg };
    if end.is_empty() {
        return Err(bad("the range has no end".into()));
    }
    let step: usize = match step.parse() {
        Ok(s) if s > 0 => s,
        _ => return Err(bad(format!("the step `{step}` is not a positive number"))),
    };
    let letter = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    let items: Vec<String> = if let (Some(b), Some(e)) = (letter(beg), letter(end)) {
        // Ansible's order of letters: a-z then A-Z.
        let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
        let (i, j) = (
            letters.iter().position(|&c| c == b).unwrap_or(0),
            letters.iter().position(|&c| c == e).unwrap_or(0),
        );
        if i > j {
            return Err(bad(format!("`{beg}` comes after `{end}`")));
        }
        letters[i..=j]
            .iter()
            .step_by(step)
            .map(char::to_string)
            .collect()
    } else {
        let (Ok(b), Ok(e)) = (beg.parse::<u64>(), end.parse::<u64>()) else {
            return Err(bad(format!(
                "`{beg}:{end}` are neither two numbers nor two letters"
            )));
        };
        if b > e {
            return Err(bad(format!("`{beg}` is greater than `{end}`")));
        }
        // A leading zero keeps the width (`01:08`), and then both ends must be as wide.
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(bad(format!("`{beg}` and `{end}` must have the same width")));
            }
            beg.len()
        } else {
            0
        };
        if (e - b) / step as u64 > 100_000 {
            return Err(bad("more than 100000 hosts".into()));
        }
        (b..=e)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect()
    };
    let mut out = Vec::new();
    for item in items {
        out.extend(expand_ranges(&format!("{head}{item}{tail}"))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Inventory {
        Inventory::load(&Source::new("/inv/hosts.yaml", text), None)
            .unwrap_or_else(|d| panic!("{d:#?}"))
    }

    fn problems(text: &str) -> Vec<Diagnostic> {
        Inventory::load(&Source::new("/inv/hosts.yaml", text), None).unwrap_err()
    }

    fn names(hosts: &[&Host]) -> Vec<String> {
        hosts.iter().map(|h| h.name.clone()).collect()
    }

    #[test]
    fn nested_children_resolve_to_every_host_below_once() {
        let inv = load(
            "all:\n  children:\n    a:\n      hosts: { a1: }\n      children:\n        b:\n          hosts: { b1: , a1: }\n          children:\n            c:\n              hosts: { c1: }\n",
        );
        assert_eq!(names(&inv.resolve("a").unwrap()), ["a1", "b1", "c1"]);
        assert_eq!(names(&inv.resolve("all").unwrap()), ["a1", "b1", "c1"]);
        assert_eq!(names(&inv.resolve("c1").unwrap()), ["c1"]);
        assert!(inv.resolve("nope").is_none());
        assert!(inv.is_group("b") && !inv.is_group("b1"));
    }

    #[test]
    fn groups_without_hosts_exist_and_resolve_to_nothing() {
        let inv = load("all:\n  children:\n    empty:\n    web:\n      hosts: { w1: }\n");
        assert!(inv.is_group("empty"));
        assert!(inv.resolve("empty").unwrap().is_empty());
        assert!(inv.names().contains(&"empty"));
    }

    #[test]
    fn hosts_directly_under_all_are_ungrouped() {
        let inv = load("all:\n  hosts: { loose: }\n  children:\n    g:\n      hosts: { h: }\n");
        assert_eq!(names(&inv.resolve("ungrouped").unwrap()), ["loose"]);
        let json = inv.to_ansible_json();
        assert_eq!(json["ungrouped"]["hosts"], serde_json::json!(["loose"]));
        assert_eq!(
            json["all"]["children"],
            serde_json::json!(["ungrouped", "g"])
        );
        assert!(json["all"].get("hosts").is_none());
    }

    #[test]
    fn a_host_defined_twice_merges_its_vars_later_keys_winning() {
        let inv = load(
            "all:\n  children:\n    a:\n      hosts:\n        h: { p: 1, q: 1 }\n    b:\n      hosts:\n        h: { q: 2 }\n",
        );
        let host = inv.host("h").unwrap();
        assert_eq!(host.vars["p"], 1);
        assert_eq!(host.vars["q"], 2);
        assert_eq!(names(&inv.resolve("a").unwrap()), ["h"]);
        assert_eq!(names(&inv.resolve("b").unwrap()), ["h"]);
    }

    #[test]
    fn precedence_is_all_then_parent_then_child_then_host() {
        let inv = load(
            "all:\n  vars: { a: all, b: all, c: all, d: all }\n  children:\n    parent:\n      vars: { b: parent, c: parent, d: parent }\n      children:\n        child:\n          vars: { c: child, d: child }\n          hosts:\n            h: { d: host }\n",
        );
        let vars = &inv.host("h").unwrap().vars;
        assert_eq!(
            [&vars["a"], &vars["b"], &vars["c"], &vars["d"]],
            ["all", "parent", "child", "host"]
        );
    }

    #[test]
    fn same_depth_groups_merge_in_name_order() {
        let inv = load(
            "zeta:\n  vars: { v: zeta }\n  hosts: { h: }\nalpha:\n  vars: { v: alpha }\n  hosts: { h: }\n",
        );
        assert_eq!(inv.host("h").unwrap().vars["v"], "zeta");
    }

    #[test]
    fn group_priority_beats_name_order_and_is_not_a_var() {
        let inv = load(
            "alpha:\n  vars: { v: alpha, ansible_group_priority: 3 }\n  hosts: { h: }\nzeta:\n  vars: { v: zeta }\n  hosts: { h: }\n",
        );
        let vars = &inv.host("h").unwrap().vars;
        assert_eq!(vars["v"], "alpha");
        assert!(!vars.contains_key("ansible_group_priority"));
    }

    #[test]
    fn vars_keep_any_yaml_shape_and_mappings_replace() {
        let inv = load(
            "all:\n  vars:\n    m: { a: 1, b: 2 }\n    l: [1, two, { three: 3 }]\n  hosts:\n    h: { m: { c: 3 } }\n",
        );
        let vars = &inv.host("h").unwrap().vars;
        assert_eq!(vars["m"], serde_json::json!({ "c": 3 }));
        assert_eq!(vars["l"], serde_json::json!([1, "two", { "three": 3 }]));
    }

    #[test]
    fn numeric_ranges_keep_zero_padding() {
        assert_eq!(
            expand_ranges("clinic[01:03]").unwrap(),
            ["clinic01", "clinic02", "clinic03"]
        );
        assert_eq!(expand_ranges("n[8:10]").unwrap(), ["n8", "n9", "n10"]);
    }

    #[test]
    fn letter_ranges_steps_and_several_ranges_expand() {
        assert_eq!(expand_ranges("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand_ranges("x[1:10:4]").unwrap(), ["x1", "x5", "x9"]);
        assert_eq!(
            expand_ranges("r[1:2]u[a:b]").unwrap(),
            ["r1ua", "r1ub", "r2ua", "r2ub"]
        );
    }

    #[test]
    fn a_port_in_the_pattern_becomes_ansible_port() {
        let inv = load("all:\n  hosts:\n    gw[1:2]:2222:\n    plain:\n");
        assert_eq!(inv.host("gw2").unwrap().port, 2222);
        assert_eq!(inv.host("gw2").unwrap().vars["ansible_port"], 2222);
        assert_eq!(inv.host("plain").unwrap().port, 22);
    }

    #[test]
    fn bad_ranges_are_errors_at_the_host_key() {
        for bad in ["w[01:3]", "w[3:1]", "w[1:x]", "w[1:3", "w[1:3:0]", "w[1]"] {
            let d = problems(&format!("all:\n  hosts:\n    {bad}:\n"));
            assert_eq!(d[0].code, "bad-range", "{bad}");
            assert_eq!(d[0].span.map(|s| (s.line, s.col)), Some((3, 5)), "{bad}");
        }
    }

    #[test]
    fn bad_ports_are_errors_with_their_place() {
        let d = problems("all:\n  hosts:\n    h:\n      ansible_port: ssh\n");
        assert_eq!(d[0].code, "bad-port");
        assert_eq!(d[0].span.map(|s| (s.line, s.col)), Some((4, 21)));
        assert_eq!(
            problems("all:\n  hosts:\n    h:\n      ansible_port: 70000\n")[0].code,
            "bad-port"
        );
        assert_eq!(
            problems("all:\n  hosts:\n    h:99999:\n")[0].code,
            "bad-port"
        );
    }

    #[test]
    fn connection_fields_come_from_vars() {
        let inv = load(
            "all:\n  vars: { ansible_user: root }\n  hosts:\n    db:\n      ansible_host: 10.0.0.5\n      ansible_port: \"2200\"\n      ansible_ssh_private_key_file: keys/db\n      runbook_known_hosts: ~/kh\n      runbook_connect_timeout: 500ms\n    lab:\n      runbook_transport: local\n      runbook_workdir: lab\n",
        );
        let db = inv.host("db").unwrap();
        assert_eq!((db.address.as_str(), db.port), ("10.0.0.5", 2200));
        assert_eq!(db.user.as_deref(), Some("root"));
        assert_eq!(db.identity_files, [PathBuf::from("/inv/keys/db")]);
        let home = std::env::var("HOME").unwrap();
        assert_eq!(db.known_hosts, Some(PathBuf::from(home).join("kh")));
        assert_eq!(db.connect_timeout, Duration::from_millis(500));
        assert_eq!(db.transport, TransportKind::Ssh);
        let lab = inv.host("lab").unwrap();
        assert_eq!((lab.address.as_str(), lab.port), ("lab", 22));
        assert_eq!(lab.transport, TransportKind::Local);
        assert_eq!(lab.workdir, Some(PathBuf::from("/inv/lab")));
        assert_eq!(lab.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
    }

    #[test]
    fn durations_take_units() {
        let d = |s: &str| parse_duration(&Json::from(s));
        assert_eq!(d("10s"), Some(Duration::from_secs(10)));
        assert_eq!(d("1m"), Some(Duration::from_mins(1)));
        assert_eq!(d("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration(&Json::from(3)), Some(Duration::from_secs(3)));
        assert_eq!(d("0s"), None);
        assert_eq!(d("ten"), None);
        let e = problems("all:\n  hosts:\n    h: { runbook_connect_timeout: 5x }\n");
        assert_eq!(e[0].code, "bad-duration");
    }

    #[test]
    fn unknown_transport_is_an_error_at_its_value() {
        let d = problems("all:\n  vars:\n    runbook_transport: lcoal\n  hosts:\n    h:\n");
        assert_eq!(d[0].code, "bad-transport");
        assert_eq!(d[0].span.map(|s| (s.line, s.col)), Some((3, 24)));
        assert_eq!(
            d[0].help.as_deref(),
            Some("did you mean `local`? (`ssh` or `local`)")
        );
    }

    #[test]
    fn ssh_config_fills_what_the_inventory_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "Host db*\n  HostName %h.lan\n  Port 2022\n  User alice\n  IdentityFile /k/db\nHost explicit\n  HostName ignored\n  User bob\n",
        )
        .unwrap();
        let source = Source::new(
            "/inv/hosts.yaml",
            "all:\n  hosts:\n    db1:\n    db2: { ansible_port: 22, ansible_user: root }\n    other:\n    explicit: { ansible_host: 10.0.0.9 }\n",
        );
        let inv = Inventory::load(&source, Some(&config)).unwrap();
        let db1 = inv.host("db1").unwrap();
        assert_eq!((db1.address.as_str(), db1.port), ("db1.lan", 2022));
        assert_eq!(db1.user.as_deref(), Some("alice"));
        assert_eq!(db1.identity_files, [PathBuf::from("/k/db")]);
        let db2 = inv.host("db2").unwrap();
        assert_eq!((db2.port, db2.user.as_deref()), (22, Some("root")));
        assert_eq!(inv.host("other").unwrap().address, "other");
        // ssh looks up the address it is given, as with Ansible.
        let explicit = inv.host("explicit").unwrap();
        assert_eq!(
            (explicit.address.as_str(), explicit.user.as_deref()),
            ("10.0.0.9", None)
        );
    }

    #[test]
    fn empty_file_is_a_clear_error() {
        for text in ["", "# nothing\n", "{}\n"] {
            let d = problems(text);
            assert_eq!(d[0].code, "inventory-empty");
            assert!(d[0].help.as_deref().unwrap().contains("all:"));
        }
    }

    #[test]
    fn a_non_mapping_file_is_an_error() {
        assert_eq!(problems("- a\n- b\n")[0].code, "inventory-structure");
        assert_eq!(problems("all: [a, b]\n")[0].code, "inventory-structure");
    }

    #[test]
    fn a_typo_in_a_group_key_suggests_the_right_one() {
        let d = problems("all:\n  chidlren:\n    web:\n");
        assert_eq!(d[0].code, "unknown-field");
        assert_eq!(d[0].span.map(|s| (s.line, s.col)), Some((2, 3)));
        assert_eq!(d[0].help.as_deref(), Some("did you mean `children`?"));
    }

    #[test]
    fn hosts_as_a_list_is_an_error_that_shows_the_mapping_form() {
        let d = problems("all:\n  hosts:\n    - web1\n    - web2\n");
        assert_eq!(d[0].code, "inventory-structure");
        assert_eq!(d[0].span.map(|s| s.line), Some(3));
        assert!(d[0].help.as_deref().unwrap().contains("web1:"));
    }

    #[test]
    fn section_keys_at_the_top_level_are_an_error() {
        let d = problems("hosts:\n  web1:\n");
        assert_eq!(d[0].code, "inventory-structure");
        assert!(d[0].help.as_deref().unwrap().contains("all:"));
    }

    #[test]
    fn a_bare_string_section_is_one_entry() {
        let inv = load("web:\n  hosts: web1\n");
        assert_eq!(names(&inv.resolve("web").unwrap()), ["web1"]);
    }

    #[test]
    fn a_group_that_is_its_own_ancestor_is_a_cycle() {
        let d = problems("a:\n  children:\n    b:\n      children:\n        a:\n");
        assert_eq!(d[0].code, "cycle");
        assert_eq!(d[0].message, "group cycle: a -> b -> a");
        assert_eq!(problems("a:\n  children:\n    a:\n")[0].code, "cycle");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let d = problems(
            "all:\n  hosts:\n    h1: { ansible_port: x }\n    h2: { runbook_transport: ftp }\n    w[1:\n  chidlren:\n",
        );
        let codes: Vec<&str> = d.iter().map(|d| d.code).collect();
        assert_eq!(codes.len(), 4, "{codes:?}");
        for code in ["bad-port", "bad-transport", "bad-range", "unknown-field"] {
            assert!(codes.contains(&code), "{code} missing from {codes:?}");
        }
    }

    #[test]
    fn yaml_syntax_errors_have_a_place() {
        let d = problems("all:\n  hosts: [\n");
        assert_eq!(d[0].code, "yaml");
        assert!(d[0].span.is_some());
    }

    #[test]
    fn host_json_and_list_json_omit_hosts_without_vars() {
        let inv = load("g:\n  hosts:\n    bare:\n    rich: { a: 1 }\n");
        assert_eq!(inv.host_json("bare"), Some(serde_json::json!({})));
        let json = inv.to_ansible_json();
        assert!(json["_meta"]["hostvars"].get("bare").is_none());
        assert_eq!(
            json["_meta"]["hostvars"]["rich"],
            serde_json::json!({ "a": 1 })
        );
        assert!(inv.host_json("nope").is_none());
    }

    #[test]
    fn human_listing_shows_the_tree_and_a_hosts_connection() {
        let inv = load(
            "all:\n  children:\n    web:\n      hosts:\n        w1: { ansible_host: 10.0.0.1, ansible_user: ops }\n    lab:\n      hosts:\n        l1: { runbook_transport: local }\n",
        );
        let tree = inv.render_human(None).unwrap();
        assert!(tree.contains("@all\n  @ungrouped\n  @web\n    w1  (ssh ops@10.0.0.1:22)\n  @lab\n    l1  (local)\n"), "{tree}");
        let host = inv.render_human(Some("w1")).unwrap();
        assert!(host.contains("address:         10.0.0.1"), "{host}");
        assert!(host.contains("groups:          web"), "{host}");
        assert!(host.contains("ansible_user: \"ops\""), "{host}");
        assert_eq!(
            inv.render_human(Some("w11")).unwrap_err(),
            "no host `w11` in /inv/hosts.yaml; did you mean `w1`?"
        );
    }
}
