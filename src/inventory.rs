//! Ansible's YAML inventory: groups, hosts, variables with Ansible's precedence,
//! and the connection details of each host (with `~/.ssh/config` applied).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
