//! The host half of `run --dry-run --probe`: connect and authenticate to every host of a
//! plan up front (host keys checked, nothing run), and the report that lists each host —
//! reachable, host-key fingerprint, authentication, and how its checks went.
//!
//! It exists apart from the executor because a probe must say something about every host,
//! including those no read-only step touches and those whose connection fails: a probe is
//! how an operator learns, before the disaster, that a site's key changed or a login broke.

use std::fmt::Write as _;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::Semaphore;

use crate::event::{Event, EventKind, Outcome};
use crate::inventory::{Host, TransportKind};
use crate::plan::Plan;
use crate::state::RunState;
use crate::transport::{Transport, TransportError};

/// What connecting to one host showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCheck {
    /// The inventory name.
    pub host: String,
    /// `address:port` for SSH hosts, `local` (and its workdir) for local ones.
    pub endpoint: String,
    /// The transport's description of the connection (for SSH: `TYPE SHA256:…` of the host
    /// key), or why there is none.
    pub result: Result<String, TransportError>,
}

impl HostCheck {
    /// A TCP connection (and, over SSH, a handshake) was made.
    #[must_use]
    pub fn reachable(&self) -> bool {
        matches!(
            self.result,
            Ok(_) | Err(TransportError::HostKey { .. } | TransportError::Auth { .. })
        )
    }

    /// Connected, host key trusted, logged in: steps can run there.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }

    /// `TYPE SHA256:…` of the host key the server presented, when it got that far (also for
    /// a refused key: the operator compares it with what the host's administrator says).
    #[must_use]
    pub fn fingerprint(&self) -> Option<String> {
        match &self.result {
            Ok(detail)
            | Err(TransportError::HostKey {
                message: detail, ..
            }) => key_fingerprint(detail),
            Err(TransportError::Auth { .. } | _) => None,
        }
    }

    /// The `host_connected` event that journals a successful connection (and the host key
    /// it used, for the report); `None` when there was no connection.
    #[must_use]
    pub fn event(&self) -> Option<Event> {
        let detail = self.result.as_ref().ok()?;
        Some(Event::now(
            None,
            Some(&self.host),
            EventKind::HostConnected {
                detail: detail.clone(),
            },
        ))
    }
}

/// Connects to every distinct host of `plan`, at most `limit` at once, and reports on each
/// in the order the plan first names them. Nothing is run on the hosts; the connections
/// stay open in `transport` for the steps that follow.
pub async fn connect_all(plan: &Plan, transport: &dyn Transport, limit: usize) -> Vec<HostCheck> {
    let gate = Semaphore::new(limit.max(1));
    let checks = plan_hosts(plan).into_iter().map(|host| {
        let gate = &gate;
        async move {
            // The semaphore lives as long as this function and is never closed.
            let _permit = gate.acquire().await.ok();
            HostCheck {
                host: host.name.clone(),
                endpoint: endpoint(host),
                result: transport.connect(host).await,
            }
        }
    });
    join_all(checks.collect()).await
}

/// Every host the plan's steps run on, once, in the order they first appear.
fn plan_hosts(plan: &Plan) -> Vec<&Host> {
    let mut hosts: Vec<&Host> = Vec::new();
    for host in plan.steps.iter().flat_map(|step| &step.hosts) {
        if !hosts.iter().any(|known| known.name == host.name) {
            hosts.push(host);
        }
    }
    hosts
}

fn endpoint(host: &Host) -> String {
    match (host.transport, &host.workdir) {
        (TransportKind::Ssh, _) => format!("{}:{}", host.address, host.port),
        (TransportKind::Local, None) => "local".into(),
        (TransportKind::Local, Some(dir)) => format!("local, in {}", dir.display()),
    }
}

/// Awaits every future, polling them together, and returns their outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// `TYPE SHA256:…` out of a connection description or a host-key error message.
fn key_fingerprint(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| w.starts_with("SHA256:"))?;
    let hash = words[at].trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '=');
    Some(match at.checked_sub(1).map(|i| words[i]) {
        Some(key_type) if key_type.starts_with("ssh-") || key_type.starts_with("ecdsa-") => {
            format!("{key_type} {hash}")
        }
        _ => hash.to_owned(),
    })
}

/// One host's checks: its read-only steps and the `verify` of its other steps, which are
/// what a probe runs for real.
#[derive(Debug, Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
    not_run: usize,
}

fn checks_of(plan: &Plan, state: &RunState, host: &str) -> Checks {
    let mut checks = Checks::default();
    let probed = plan
        .steps
        .iter()
        .filter(|step| step.step.readonly || step.verify.is_some())
        .filter(|step| step.hosts.iter().any(|h| h.name == host));
    for step in probed {
        let result = state
            .steps
            .get(step.id())
            .and_then(|s| s.hosts.get(host))
            .filter(|h| !h.in_flight);
        match result.and_then(|h| h.outcome.map(|outcome| (outcome, h))) {
            Some((Outcome::Succeeded, _)) => checks.passed += 1,
            Some((Outcome::Failed, h)) => {
                let why = h.error.clone().or_else(|| {
                    let tail = h.stderr.trim().lines().last().unwrap_or_default();
                    let code = h
                        .exit_code
                        .map_or_else(|| "no exit code".into(), |c| format!("exit {c}"));
                    Some(if tail.is_empty() {
                        code
                    } else {
                        format!("{code}: {tail}")
                    })
                });
                checks
                    .failed
                    .push(format!("{}: {}", step.id(), why.unwrap_or_default()));
            }
            None => checks.not_run += 1,
        }
    }
    checks
}

/// The probe report: one block per host — whether it was reachable, the host key it
/// presented, whether login worked, and its checks — then a one-line verdict.
#[must_use]
pub fn render_probe_summary(plan: &Plan, checks: &[HostCheck], state: &RunState) -> String {
    let width = checks.iter().map(|c| c.host.len()).max().unwrap_or(0);
    let mut out = String::from("Probe report\n");
    let mut hosts_ok = 0;
    let mut failed_checks = 0;
    for check in checks {
        let host_checks = checks_of(plan, state, &check.host);
        failed_checks += host_checks.failed.len();
        let connection = match &check.result {
            Ok(_) if check.endpoint.starts_with("local") => "local, no connection needed".into(),
            Ok(_) => format!(
                "reachable, host key {}, auth ok",
                check.fingerprint().unwrap_or_else(|| "?".into())
            ),
            Err(TransportError::HostKey { .. }) => format!(
                "reachable, HOST KEY REFUSED ({})",
                check.fingerprint().unwrap_or_else(|| "no key".into())
            ),
            Err(TransportError::Auth { .. }) => "reachable, AUTHENTICATION FAILED".into(),
            Err(TransportError::Spawn { .. } | TransportError::NotCleared { .. }) => {
                "NOT CHECKED".into()
            }
            Err(TransportError::Connect { .. } | TransportError::Lost { .. }) => {
                "UNREACHABLE".into()
            }
        };
        if check.ok() && host_checks.failed.is_empty() {
            hosts_ok += 1;
        }
        let mut counts = vec![format!("{} passed", host_checks.passed)];
        if !host_checks.failed.is_empty() {
            counts.push(format!("{} FAILED", host_checks.failed.len()));
        }
        if host_checks.not_run > 0 {
            counts.push(format!("{} not run", host_checks.not_run));
        }
        let _ = writeln!(
            out,
            "  {:<width$}  {}  {connection}; checks: {}",
            check.host,
            check.endpoint,
            counts.join(", ")
        );
        if let Err(e) = &check.result {
            let _ = writeln!(out, "  {:<width$}    {e}", "");
        }
        for failure in &host_checks.failed {
            let _ = writeln!(out, "  {:<width$}    check failed: {failure}", "");
        }
    }
    let _ = writeln!(
        out,
        "{hosts_ok} of {} hosts ready; {failed_checks} check{} failed",
        checks.len(),
        if failed_checks == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::event::StepStatus;
    use crate::state::{HostState, StepState};
    use crate::transport::{BoxFuture, Command, Output};

    fn host(name: &str, port: u16) -> Host {
        Host {
            name: name.into(),
            address: "10.0.0.1".into(),
            port,
            user: None,
            identity_files: vec![],
            transport: TransportKind::Ssh,
            workdir: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(1),
            vars: BTreeMap::new(),
        }
    }

    fn plan(yaml: &str, hosts: &[(&str, &[Host])]) -> Plan {
        let source = crate::source::Source::new("probe.yaml", yaml);
        let (runbook, _) = crate::runbook::parse(&source);
        let inputs = crate::plan::Inputs {
            source: &source,
            inventory: None,
            vars: &BTreeMap::new(),
        };
        let (plan, diagnostics) = crate::plan::plan(runbook.unwrap(), &inputs);
        let mut plan = plan.unwrap_or_else(|| panic!("{diagnostics:?}"));
        for (id, on) in hosts {
            let i = plan.index_of(id).unwrap();
            plan.steps[i].hosts = on.iter().cloned().map(std::sync::Arc::new).collect();
        }
        plan
    }

    /// Answers `connect` by the host's port: 1 refuses the key, 2 the login, 3 is down;
    /// counts how many connections are open at once.
    #[derive(Default)]
    struct Fake {
        open: AtomicUsize,
        most: AtomicUsize,
    }

    impl Transport for Fake {
        fn run<'a>(
            &'a self,
            _host: &'a Host,
            _command: &'a Command,
        ) -> BoxFuture<'a, Result<Output, TransportError>> {
            Box::pin(async { Ok(Output::default()) })
        }

        fn connect<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
            Box::pin(async move {
                let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.open.fetch_sub(1, Ordering::SeqCst);
                let (name, address) = (host.name.clone(), format!("10.0.0.1:{}", host.port));
                match host.port {
                    1 => Err(TransportError::HostKey {
                        host: name,
                        address,
                        message: "unknown host key ssh-ed25519 SHA256:abc+/1 (x is not in y)"
                            .into(),
                    }),
                    2 => Err(TransportError::Auth {
                        host: name,
                        address,
                        message: "no key was accepted".into(),
                    }),
                    3 => Err(TransportError::Connect {
                        host: name,
                        address,
                        message: "refused".into(),
                    }),
                    _ => Ok("ssh-ed25519 SHA256:good".into()),
                }
            })
        }
    }

    const RUNBOOK: &str = "name: p\nsteps:\n  - id: look\n    on: a\n    run: 'true'\n    readonly: true\n    timeout: 1m\n  - id: change\n    on: a\n    run: 'true'\n    verify: 'true'\n    rollback: 'true'\n    timeout: 1m\n";

    #[tokio::test]
    async fn every_distinct_host_is_checked_once_within_the_limit() {
        let many: Vec<Host> = (0..12).map(|i| host(&format!("h{i:02}"), 22)).collect();
        let plan = plan(RUNBOOK, &[("look", &many), ("change", &many[..3])]);
        let fake = Fake::default();
        let checks = connect_all(&plan, &fake, 4).await;
        assert_eq!(checks.len(), 12);
        assert_eq!(checks[0].host, "h00");
        assert_eq!(checks[11].host, "h11");
        assert!(checks.iter().all(HostCheck::ok));
        let most = fake.most.load(Ordering::SeqCst);
        assert!((2..=4).contains(&most), "{most} at once");
    }

    #[tokio::test]
    async fn each_failure_kind_says_how_far_the_connection_got() {
        let hosts = [
            host("good", 22),
            host("key", 1),
            host("auth", 2),
            host("down", 3),
        ];
        let plan = plan(RUNBOOK, &[("look", &hosts)]);
        let checks = connect_all(&plan, &Fake::default(), 8).await;
        let by = |name: &str| checks.iter().find(|c| c.host == name).unwrap();
        assert!(by("good").ok() && by("good").reachable());
        assert_eq!(
            by("good").fingerprint().as_deref(),
            Some("ssh-ed25519 SHA256:good")
        );
        assert!(by("good").event().is_some());
        assert!(!by("key").ok() && by("key").reachable());
        assert_eq!(
            by("key").fingerprint().as_deref(),
            Some("ssh-ed25519 SHA256:abc+/1")
        );
        assert!(by("key").event().is_none());
        assert!(by("auth").reachable() && by("auth").fingerprint().is_none());
        assert!(!by("down").reachable());
    }

    #[tokio::test]
    async fn the_summary_lists_each_host_with_its_key_login_and_checks() {
        let hosts = [host("db", 22), host("gw", 3)];
        let plan = plan(RUNBOOK, &[("look", &hosts), ("change", &hosts[..1])]);
        let checks = connect_all(&plan, &Fake::default(), 8).await;
        let mut state = RunState::default();
        let finished = |outcome, exit_code, stderr: &str, error: Option<&str>| HostState {
            outcome: Some(outcome),
            exit_code,
            stderr: stderr.into(),
            error: error.map(str::to_owned),
            ..HostState::default()
        };
        let mut look = StepState {
            status: Some(StepStatus::Failed),
            ..StepState::default()
        };
        look.hosts
            .insert("db".into(), finished(Outcome::Succeeded, Some(0), "", None));
        look.hosts.insert(
            "gw".into(),
            finished(Outcome::Failed, None, "", Some("cannot connect to gw")),
        );
        state.steps.insert("look".into(), look);
        let mut change = StepState::default();
        change.hosts.insert(
            "db".into(),
            finished(Outcome::Failed, Some(1), "not primary\n", None),
        );
        state.steps.insert("change".into(), change);

        let text = render_probe_summary(&plan, &checks, &state);
        assert!(
            text.contains("db  10.0.0.1:22  reachable, host key ssh-ed25519 SHA256:good, auth ok; checks: 1 passed, 1 FAILED"),
            "{text}"
        );
        assert!(
            text.contains("check failed: change: exit 1: not primary"),
            "{text}"
        );
        assert!(
            text.contains("gw  10.0.0.1:3  UNREACHABLE; checks: 0 passed, 1 FAILED"),
            "{text}"
        );
        assert!(
            text.contains("cannot connect to gw (10.0.0.1:3): refused"),
            "{text}"
        );
        assert!(
            text.ends_with("0 of 2 hosts ready; 2 checks failed\n"),
            "{text}"
        );
    }

    #[test]
    fn fingerprints_are_found_in_descriptions_and_messages() {
        assert_eq!(
            key_fingerprint("ssh-rsa SHA256:Ab+/c").as_deref(),
            Some("ssh-rsa SHA256:Ab+/c")
        );
        assert_eq!(
            key_fingerprint("the host key SHA256:xyz, marked").as_deref(),
            Some("SHA256:xyz")
        );
        assert_eq!(key_fingerprint("local"), None);
    }
}
