//! A real OpenSSH server for the tests: `sshd` on 127.0.0.1, on a free port, with generated
//! host keys (ed25519 and RSA) and a generated client key; stopped on drop.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The client key in authorized_keys.
    pub client_key: PathBuf,
    /// `LogLevel VERBOSE` output.
    pub log: PathBuf,
    pub user: String,
    /// The addresses it listens on (all on `port`).
    pub addresses: Vec<String>,
    config: PathBuf,
    child: Child,
}

impl Sshd {
    /// Starts sshd, or returns `None` (after saying why) when it cannot exist here.
    /// Under `CI=true` a missing sshd is a failure, not a skip.
    pub fn start() -> Option<Sshd> {
        Self::start_on(&["127.0.0.1"])
    }

    /// Starts one sshd listening on each of `addresses` (loopback ones, e.g. 127.0.0.2):
    /// many "hosts" for the price of one server.
    pub fn start_on(addresses: &[&str]) -> Option<Sshd> {
        if !ensure_sshd() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "sshd is missing and could not be installed (CI=true)"
            );
            eprintln!("SKIPPED: {SSHD} is missing (install openssh-server)");
            return None;
        }
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "ed25519");
        keygen(&d.join("host_rsa"), "rsa");
        keygen(&d.join("client"), "ed25519");
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let log = d.join("sshd.log");
        let config = d.join("sshd_config");
        let listen = addresses.iter().fold(String::new(), |mut out, a| {
            let _ = writeln!(out, "ListenAddress {a}");
            out
        });
        std::fs::write(
            &config,
            format!(
                "Port {port}\n{listen}HostKey {d}/host_ed25519\nHostKey {d}/host_rsa\n\
                 AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nUsePAM no\n\
                 StrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nSetEnv SHLVL=1\nLogLevel VERBOSE\n\
                 MaxStartups 100\nMaxSessions 64\n",
                d = d.display()
            ),
        )
        .unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_owned();
        let child = spawn(&config, &log);
        let mut sshd = Sshd {
            client_key: d.join("client"),
            dir,
            port,
            log,
            user,
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            config,
            child,
        };
        sshd.wait_listening();
        Some(sshd)
    }

    /// Starts the server again after `kill_all`: same port, keys and log.
    pub fn restart(&mut self) {
        self.kill_all();
        self.child = spawn(&self.config, &self.log);
        self.wait_listening();
    }

    /// Waits until every address accepts connections, and until sshd has logged those
    /// probes, so that `connections()` counts only what the test does afterwards.
    fn wait_listening(&mut self) {
        let started = Instant::now();
        let before = self.connections();
        for address in self.addresses.clone() {
            while TcpStream::connect((address.as_str(), self.port)).is_err() {
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("sshd exited with {status}: {}", self.log_text());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "sshd did not start: {}",
                    self.log_text()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        while self.connections() < before + self.addresses.len() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not log the readiness probes: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many logins the server accepted so far (one per SSH connection).
    pub fn accepted_logins(&self) -> usize {
        self.log_text().matches("Accepted publickey").count()
    }

    /// How many TCP connections reached the server so far (accepted or not).
    pub fn connections(&self) -> usize {
        self.log_text().matches("Connection from").count()
    }

    /// A known_hosts line trusting host key `key` (e.g. `host_ed25519`) at `address`.
    pub fn known_hosts_line(&self, address: &str, key: &str) -> String {
        format!("[{address}]:{} {}\n", self.port, self.public_key(key))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `ssh-ed25519 AAAA…` part of a generated public key.
    pub fn public_key(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.path(&format!("{name}.pub"))).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// `SHA256:…` of a generated public key, as ssh-keygen computes it.
    pub fn fingerprint(&self, name: &str) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.path(&format!("{name}.pub")))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the per-connection sshd processes (the listener stays): connections break.
    pub fn kill_connections(&self) {
        for pid in descendants(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Kills the listener and every connection.
    pub fn kill_all(&mut self) {
        let children = descendants(self.child.id());
        let _ = self.child.kill();
        for pid in children {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn spawn(config: &Path, log: &Path) -> Child {
    Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(config)
        .arg("-E")
        .arg(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// A port nothing listens on (free a moment ago).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn keygen(path: &Path, kind: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "runbook-test", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Every process below `root`, found through /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = vec![root];
    let mut found = Vec::new();
    while let Some(parent) = parents.pop() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let parent_of_child = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1));
            if parent_of_child == Some(&parent.to_string()) {
                found.push(child);
                parents.push(child);
            }
        }
    }
    found
}

fn ensure_sshd() -> bool {
    if Path::new(SSHD).exists() {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return false;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "openssh-server"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get")
            .arg("update")
            .stdout(Stdio::null())
            .status();
        install();
    }
    Path::new(SSHD).exists()
}

/// One sshd can listen on at most 16 addresses (OpenSSH's MAX_LISTEN_SOCKS); a fleet is as
/// many servers as `addresses` need, all accepting the first server's client key.
pub struct Fleet {
    pub servers: Vec<Sshd>,
}

impl Fleet {
    pub fn start(addresses: &[&str]) -> Option<Fleet> {
        let mut servers: Vec<Sshd> = Vec::new();
        for chunk in addresses.chunks(16) {
            let server = Sshd::start_on(chunk)?;
            if let Some(first) = servers.first() {
                std::fs::copy(first.path("client.pub"), server.path("authorized_keys")).unwrap();
            }
            servers.push(server);
        }
        Some(Fleet { servers })
    }

    pub fn client_key(&self) -> &Path {
        &self.servers[0].client_key
    }

    pub fn user(&self) -> &str {
        &self.servers[0].user
    }

    /// The server listening on `address`.
    pub fn server(&self, address: &str) -> &Sshd {
        self.servers
            .iter()
            .find(|s| s.addresses.iter().any(|a| a == address))
            .unwrap()
    }

    /// known_hosts lines trusting every address's ed25519 host key.
    pub fn known_hosts(&self) -> String {
        self.servers
            .iter()
            .flat_map(|s| {
                s.addresses
                    .iter()
                    .map(move |a| s.known_hosts_line(a, "host_ed25519"))
            })
            .collect()
    }

    pub fn accepted_logins(&self) -> usize {
        self.servers.iter().map(Sshd::accepted_logins).sum()
    }

    pub fn log_text(&self) -> String {
        self.servers.iter().map(Sshd::log_text).collect()
    }
}
