//! The SSH transport against a real OpenSSH server on 127.0.0.1.

#[path = "support/sshd.rs"]
mod sshd;
mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runbook::inventory::{Host, TransportKind};
use runbook::transport::{
    Command, LocalTransport, SshOptions, SshTransport, Transport, TransportError,
};
use sshd::Sshd;
use support::{pgrep, process_is_gone, unique_marker};

fn host(sshd: &Sshd) -> Host {
    Host {
        name: "db-test".into(),
        address: "127.0.0.1".into(),
        port: sshd.port,
        user: Some(sshd.user.clone()),
        identity_files: vec![sshd.client_key.clone()],
        transport: TransportKind::Ssh,
        workdir: None,
        known_hosts: None,
        connect_timeout: Duration::from_secs(5),
        vars: BTreeMap::new(),
    }
}

/// Options that never look at the real HOME: known_hosts and default keys live in the test dir.
fn options(sshd: &Sshd, accept_new: bool) -> SshOptions {
    SshOptions {
        accept_new_host_keys: accept_new,
        user_known_hosts: sshd.path("home/.ssh/known_hosts"),
        default_identities: vec![],
    }
}

/// A known_hosts entry for the test server.
fn trust(sshd: &Sshd, key: &str) {
    let file = sshd.path("home/.ssh/known_hosts");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        file,
        format!("[127.0.0.1]:{} {}\n", sshd.port, sshd.public_key(key)),
    )
    .unwrap();
}

/// A transport that trusts the server's ed25519 key.
fn trusted(sshd: &Sshd) -> SshTransport {
    trust(sshd, "host_ed25519");
    SshTransport::new(options(sshd, false))
}

fn command(script: &str) -> Command {
    Command {
        script: script.into(),
        env: vec![],
        timeout: Some(Duration::from_secs(30)),
    }
}

fn accepted_logins(sshd: &Sshd) -> usize {
    sshd.log_text().matches("Accepted publickey").count()
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_its_fingerprint_and_nothing_runs() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = SshTransport::new(options(&sshd, false));
    let flag = sshd.path("ran");
    let err = transport
        .run(&host(&sshd), &command(&format!("touch {}", flag.display())))
        .await
        .unwrap_err();
    let TransportError::HostKey { host, message, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(host, "db-test");
    assert!(
        message.contains(&sshd.fingerprint("host_ed25519")),
        "{message}"
    );
    assert!(message.contains("--accept-new-host-keys"), "{message}");
    assert!(
        message.contains(&format!("ssh-keyscan -p {} 127.0.0.1", sshd.port)),
        "{message}"
    );
    assert!(!flag.exists(), "the command ran despite the unknown key");
    assert_eq!(accepted_logins(&sshd), 0);
}

#[tokio::test]
async fn accept_new_records_the_key_in_openssh_format_and_runs() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = SshTransport::new(options(&sshd, true));
    let out = transport
        .run(&host(&sshd), &command("echo hello"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "hello\n");

    let file = sshd.path("home/.ssh/known_hosts");
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!(
            "[127.0.0.1]:{} {}\n",
            sshd.port,
            sshd.public_key("host_ed25519")
        )
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // OpenSSH reads the entry back.
    let found = Process::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.1]:{}", sshd.port), "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(found.status.success());

    // And a later run without accept-new trusts it.
    let fingerprint = SshTransport::new(options(&sshd, false))
        .connect(&host(&sshd))
        .await
        .unwrap();
    assert_eq!(
        fingerprint,
        format!("ssh-ed25519 {}", sshd.fingerprint("host_ed25519"))
    );
}

#[tokio::test]
async fn a_changed_key_is_refused_even_with_accept_new() {
    let Some(sshd) = Sshd::start() else { return };
    sshd::keygen(&sshd.path("other_host_key"), "ed25519");
    trust(&sshd, "other_host_key");
    let transport = SshTransport::new(options(&sshd, true));
    let err = transport
        .run(&host(&sshd), &command("echo never"))
        .await
        .unwrap_err();
    let TransportError::HostKey { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "{message}"
    );
    assert!(
        message.contains(&sshd.fingerprint("other_host_key")),
        "old key missing: {message}"
    );
    assert!(
        message.contains(&sshd.fingerprint("host_ed25519")),
        "new key missing: {message}"
    );
    // The file still holds only the old key.
    let text = std::fs::read_to_string(sshd.path("home/.ssh/known_hosts")).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert_eq!(accepted_logins(&sshd), 0);
}

#[tokio::test]
async fn the_key_type_known_hosts_holds_is_the_one_negotiated() {
    let Some(sshd) = Sshd::start() else { return };
    // Only the RSA key is known: libssh2 would prefer ed25519 and report a bogus change.
    trust(&sshd, "host_rsa");
    let fingerprint = SshTransport::new(options(&sshd, false))
        .connect(&host(&sshd))
        .await
        .unwrap();
    assert_eq!(
        fingerprint,
        format!("ssh-rsa {}", sshd.fingerprint("host_rsa"))
    );
}

#[tokio::test]
async fn hashed_entries_in_the_inventory_known_hosts_file_are_trusted() {
    let Some(sshd) = Sshd::start() else { return };
    let extra = sshd.path("inventory_known_hosts");
    std::fs::write(
        &extra,
        format!(
            "[127.0.0.1]:{} {}\n",
            sshd.port,
            sshd.public_key("host_ed25519")
        ),
    )
    .unwrap();
    let hashed = Process::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&extra)
        .output()
        .unwrap();
    assert!(hashed.status.success());
    assert!(std::fs::read_to_string(&extra).unwrap().starts_with("|1|"));

    let mut host = host(&sshd);
    host.known_hosts = Some(extra);
    let out = SshTransport::new(options(&sshd, false))
        .run(&host, &command("echo ok"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "ok\n");
}

#[tokio::test]
async fn ten_commands_share_one_connection_and_run_in_parallel() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = Arc::new(trusted(&sshd));
    let host = Arc::new(host(&sshd));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (transport, host) = (Arc::clone(&transport), Arc::clone(&host));
        tasks.spawn(async move {
            transport
                .run(&host, &command(&format!("sleep 1; echo {i}")))
                .await
        });
    }
    let mut seen = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let out = result.unwrap().unwrap();
        assert_eq!(out.exit_code, Some(0));
        seen.push(out.stdout.trim().parse::<u32>().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "commands ran one after another"
    );
    assert_eq!(accepted_logins(&sshd), 1, "{}", sshd.log_text());
}

#[tokio::test]
async fn stdout_stderr_exit_code_and_env_come_back() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = trusted(&sshd);
    let cmd = Command {
        script: r#"echo "out $RUNBOOK_STEP"; echo "err $RUNBOOK_MODE" >&2; printf '%s' "$RUNBOOK_RUN_ID"; exit 7"#.into(),
        env: vec![
            ("RUNBOOK_STEP".into(), "stop-app".into()),
            ("RUNBOOK_MODE".into(), "DRILL".into()),
            ("RUNBOOK_RUN_ID".into(), "it's a \"test\" $HOME `x`".into()),
        ],
        timeout: Some(Duration::from_secs(30)),
    };
    let out = transport.run(&host(&sshd), &cmd).await.unwrap();
    assert_eq!(out.exit_code, Some(7));
    assert_eq!(out.stdout, "out stop-app\nit's a \"test\" $HOME `x`");
    assert_eq!(out.stderr, "err DRILL\n");
    assert!(!out.timed_out);
}

#[tokio::test]
async fn big_output_keeps_the_tail() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = trusted(&sshd);
    let script = "head -c 1000000 /dev/zero | tr '\\0' x; echo END; head -c 300000 /dev/zero | tr '\\0' e >&2";
    let out = transport.run(&host(&sshd), &command(script)).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout.len(), runbook::transport::OUTPUT_CAP);
    assert!(out.stdout.ends_with("xxEND\n"));
    assert_eq!(out.stderr.len(), runbook::transport::OUTPUT_CAP);
}

#[tokio::test]
async fn a_timed_out_command_is_killed_on_the_server() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = trusted(&sshd);
    let out = time_out_a_sleep_and_see_it_gone(&transport, &sshd).await;
    assert_eq!(out.exit_code, None);
    // The connection is still good for the next command.
    let out = transport
        .run(&host(&sshd), &command("echo again"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "again\n");
    assert_eq!(accepted_logins(&sshd), 1);
}

/// Runs `sleep 300` (and a background `sleep 300` it started) with a 1 s timeout, then
/// waits until both are gone from the server; returns the command's output.
async fn time_out_a_sleep_and_see_it_gone(
    transport: &SshTransport,
    sshd: &Sshd,
) -> runbook::transport::Output {
    let marker = unique_marker();
    let cmd = Command {
        script: format!("sleep 300 & echo $!; sleep 300 # {marker}"),
        env: vec![],
        timeout: Some(Duration::from_secs(1)),
    };
    let started = Instant::now();
    let out = transport.run(&host(sshd), &cmd).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(out.timed_out);
    let background = out.stdout.trim().to_owned();
    assert!(!background.is_empty());
    assert!(!pgrep(&marker).is_empty() || process_is_gone(&background));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(pgrep(&marker).is_empty() && process_is_gone(&background)) {
        assert!(
            Instant::now() < deadline,
            "still running: {} / sleep {background}",
            pgrep(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    out
}

#[tokio::test]
async fn a_closed_port_fails_fast_naming_the_host() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = trusted(&sshd);
    let mut host = host(&sshd);
    host.port = sshd::free_port();
    let started = Instant::now();
    let err = transport.run(&host, &command("true")).await.unwrap_err();
    assert!(started.elapsed() < host.connect_timeout);
    let TransportError::Connect {
        host: name,
        address,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(name, "db-test");
    assert_eq!(address, &format!("127.0.0.1:{}", host.port));
    assert!(err.to_string().contains("db-test"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_speaks_ssh_fails_within_the_connect_timeout() {
    let Some(sshd) = Sshd::start() else { return };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut host = host(&sshd);
    host.port = listener.local_addr().unwrap().port();
    host.connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let err = trusted(&sshd)
        .run(&host, &command("true"))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    drop(listener);
}

/// A host that drops every packet (a firewall, a dead route): needs iptables and root.
#[tokio::test]
async fn a_silent_host_fails_within_the_connect_timeout() {
    let Some(sshd) = Sshd::start() else { return };
    let port = sshd::free_port().to_string();
    let rule = [
        "INPUT",
        "-d",
        "127.0.0.3",
        "-p",
        "tcp",
        "--dport",
        &port,
        "-j",
        "DROP",
    ];
    let added = Process::new("iptables")
        .arg("-A")
        .args(rule)
        .status()
        .is_ok_and(|s| s.success());
    if !added {
        eprintln!("SKIPPED: cannot add an iptables DROP rule (needs iptables and root)");
        return;
    }
    let mut host = host(&sshd);
    host.address = "127.0.0.3".into();
    host.port = port.parse().unwrap();
    host.connect_timeout = Duration::from_secs(2);
    let started = Instant::now();
    let result = trusted(&sshd).run(&host, &command("true")).await;
    let elapsed = started.elapsed();
    let _ = Process::new("iptables").arg("-D").args(rule).status();
    let err = result.unwrap_err();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("no answer"), "{err}");
}

#[tokio::test]
async fn sshd_killed_during_a_command_fails_the_call() {
    let Some(mut sshd) = Sshd::start() else {
        return;
    };
    let transport = Arc::new(trusted(&sshd));
    let host = Arc::new(host(&sshd));
    let marker = unique_marker();
    let task = {
        let (transport, host) = (Arc::clone(&transport), Arc::clone(&host));
        let cmd = Command {
            script: format!("sleep 60 # {marker}"),
            env: vec![],
            timeout: None,
        };
        tokio::spawn(async move { transport.run(&host, &cmd).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while pgrep(&marker).is_empty() {
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sshd.kill_all();
    let started = Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            err,
            TransportError::Lost { .. } | TransportError::Connect { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("db-test"), "{err}");
    // With its connection gone, the command was stopped on the server too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pgrep(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "still running: {}",
            pgrep(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_broken_connection_is_reopened_on_the_next_call() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = trusted(&sshd);
    assert_eq!(
        transport
            .run(&host(&sshd), &command("echo 1"))
            .await
            .unwrap()
            .stdout,
        "1\n"
    );
    sshd.kill_connections();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        transport
            .run(&host(&sshd), &command("echo 2"))
            .await
            .unwrap()
            .stdout,
        "2\n"
    );
    assert_eq!(accepted_logins(&sshd), 2);
}

#[tokio::test]
async fn a_wrong_client_key_is_an_auth_error_naming_the_host() {
    let Some(sshd) = Sshd::start() else { return };
    sshd::keygen(&sshd.path("stranger"), "ed25519");
    let mut host = host(&sshd);
    host.identity_files = vec![sshd.path("stranger")];
    let err = trusted(&sshd)
        .run(&host, &command("true"))
        .await
        .unwrap_err();
    let TransportError::Auth {
        host: name,
        address,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(name, "db-test");
    assert_eq!(address, &format!("127.0.0.1:{}", sshd.port));
    assert!(message.contains("stranger"), "{message}");
    assert!(message.contains("authorized_keys"), "{message}");
}

#[tokio::test]
async fn a_passphrase_protected_key_is_reported_as_such() {
    let Some(sshd) = Sshd::start() else { return };
    let key = sshd.path("locked");
    let status = Process::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let mut host = host(&sshd);
    host.identity_files = vec![key];
    let err = trusted(&sshd)
        .run(&host, &command("true"))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("passphrase-protected"), "{err}");
}

#[tokio::test]
async fn default_identities_are_used_when_the_host_names_none() {
    let Some(sshd) = Sshd::start() else { return };
    trust(&sshd, "host_ed25519");
    let mut host = host(&sshd);
    host.identity_files = vec![];
    let mut options = options(&sshd, false);
    options.default_identities = vec![
        PathBuf::from("/nonexistent/id_rsa"),
        sshd.client_key.clone(),
    ];
    let out = SshTransport::new(options)
        .run(&host, &command("echo in"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "in\n");
}

#[tokio::test]
async fn local_transport_connect_says_local() {
    let host = Host {
        transport: TransportKind::Local,
        ..host_for_local()
    };
    assert_eq!(
        LocalTransport::default().connect(&host).await.unwrap(),
        "local"
    );
}

fn host_for_local() -> Host {
    Host {
        name: "lab".into(),
        address: "localhost".into(),
        port: 22,
        user: None,
        identity_files: vec![],
        transport: TransportKind::Local,
        workdir: None,
        known_hosts: None,
        connect_timeout: Duration::from_secs(1),
        vars: BTreeMap::new(),
    }
}

/// A link cut without a word (packets dropped mid-command): keepalives go unanswered and the
/// call fails as lost within a few keepalive intervals. Needs iptables and root.
#[tokio::test]
async fn a_silently_cut_link_is_reported_lost() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = Arc::new(trusted(&sshd));
    let host = Arc::new(host(&sshd));
    transport.connect(&host).await.unwrap();
    let port = sshd.port.to_string();
    let rule = [
        "INPUT",
        "-d",
        "127.0.0.1",
        "-p",
        "tcp",
        "--dport",
        &port,
        "-j",
        "DROP",
    ];
    let task = {
        let (transport, host) = (Arc::clone(&transport), Arc::clone(&host));
        let cmd = Command {
            script: "sleep 120".into(),
            env: vec![],
            timeout: None,
        };
        tokio::spawn(async move { transport.run(&host, &cmd).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    if !Process::new("iptables")
        .arg("-A")
        .args(rule)
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: cannot add an iptables DROP rule (needs iptables and root)");
        return;
    }
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(40), task).await;
    let _ = Process::new("iptables").arg("-D").args(rule).status();
    let err = result.unwrap().unwrap().unwrap_err();
    assert!(matches!(err, TransportError::Lost { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// From the second command on a connection, commands run on the host's agent shell: the
/// same guarantees must hold there.
#[tokio::test]
async fn on_the_agent_shell_a_timed_out_command_is_killed_and_output_stays_exact() {
    let Some(sshd) = Sshd::start() else { return };
    let transport = trusted(&sshd);
    let first = transport.run(&host(&sshd), &command("true")).await.unwrap();
    assert_eq!(first.exit_code, Some(0));

    let out = transport
        .run(&host(&sshd), &command("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(3), "out\n", "err\n")
    );

    time_out_a_sleep_and_see_it_gone(&transport, &sshd).await;
    let out = transport
        .run(&host(&sshd), &command("echo again"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "again\n");
    assert_eq!(accepted_logins(&sshd), 1);
}
