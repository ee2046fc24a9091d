//! The `ssh` transport, on libssh2 (the `ssh2` crate).
//!
//! libssh2 is blocking and a `Session` must not be shared between threads, so each host gets
//! one dedicated thread (a host actor) that owns its session and is fed through a channel;
//! async callers wait on a oneshot reply and the tokio runtime never blocks. The session is
//! opened once and every command on that host is a channel of it, several at once if the
//! executor runs steps in parallel; a broken session is reopened (and its host key checked
//! again) on the next call.
//!
//! Host keys fail closed: an unknown key is refused unless `accept_new_host_keys`, a changed
//! key always. A timed-out command must stop on the server, and closing an SSH channel does
//! not stop it, so every command runs under a small shell wrapper that kills the command's
//! process group when the channel's stdin reaches end of file — on timeout, on a dropped
//! connection, or when this process dies.
//!
//! A session channel costs the server a fork, the login shell and the wrapper, most of the
//! time of a short step; so from its second command a connection keeps an agent, one `sh`
//! on its own channel that runs commands sent on its stdin one at a time, each in a process
//! group of its own that a watcher kills at end of file, as the wrapper does (see `AGENT`).
//! A command that arrives while the agent is busy gets a channel of its own.
//!
//! `runbook_workdir` applies here too: the command runs in that folder on the server (an
//! operator who sets it means "run there"), which is also how the lab runs over SSH.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};
use ssh2::{Channel, CheckResult, MethodType, Session};
use tokio::sync::oneshot;

use super::tail::Tail;
use super::{
    BoxFuture, Command, Output, Transport, TransportError, exported, nonce, quote, with_prelude,
};
use crate::inventory::Host;

/// Seconds between keepalives; a link silent for about three of them counts as lost.
const KEEPALIVE_SECS: u32 = 5;
/// Longest wait for socket activity while commands run (deadlines are checked this often).
const POLL_CAP: Duration = Duration::from_millis(50);
/// How long stopping a timed-out command may take before the session is considered broken.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Where host keys and client keys are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshOptions {
    /// Record unknown host keys in `user_known_hosts` instead of refusing them
    /// (`--accept-new-host-keys`). A changed key is refused regardless.
    pub accept_new_host_keys: bool,
    /// The user's known_hosts file (`~/.ssh/known_hosts`); new keys are added here.
    pub user_known_hosts: PathBuf,
    /// Keys tried after the agent and the host's own identity files, when they exist.
    pub default_identities: Vec<PathBuf>,
}

impl Default for SshOptions {
    fn default() -> Self {
        let ssh_dir = std::env::home_dir()
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".ssh");
        Self {
            accept_new_host_keys: false,
            user_known_hosts: ssh_dir.join("known_hosts"),
            default_identities: ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|name| ssh_dir.join(name))
                .collect(),
        }
    }
}

/// Runs commands over SSH, one connection per host (name, address, port, user).
pub struct SshTransport {
    options: Arc<SshOptions>,
    actors: Mutex<HashMap<ConnectionKey, mpsc::Sender<Request>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ConnectionKey {
    name: String,
    address: String,
    port: u16,
    user: String,
}

enum Request {
    Connect {
        host: Host,
        reply: oneshot::Sender<Result<String, TransportError>>,
    },
    Run {
        host: Host,
        command: Command,
        reply: oneshot::Sender<Result<Output, TransportError>>,
    },
}

impl SshTransport {
    #[must_use]
    pub fn new(options: SshOptions) -> Self {
        Self {
            options: Arc::new(options),
            actors: Mutex::new(HashMap::new()),
        }
    }

    /// Hands a request to the host's actor (started on first use, restarted if it died)
    /// and waits for the answer without blocking the runtime.
    async fn ask<T>(
        &self,
        host: &Host,
        request: impl Fn(oneshot::Sender<Result<T, TransportError>>) -> Request,
    ) -> Result<T, TransportError> {
        let user = remote_user(host)?;
        let key = ConnectionKey {
            name: host.name.clone(),
            address: host.address.clone(),
            port: host.port,
            user: user.clone(),
        };
        for _ in 0..2 {
            let (tx, rx) = oneshot::channel();
            let sender = self.actor(&key, host)?;
            if sender.send(request(tx)).is_err() {
                // The actor thread is gone (it panicked): forget it and start a new one.
                self.actors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
                continue;
            }
            return rx.await.unwrap_or_else(|_| Err(worker_stopped(host)));
        }
        Err(worker_stopped(host))
    }

    fn actor(
        &self,
        key: &ConnectionKey,
        host: &Host,
    ) -> Result<mpsc::Sender<Request>, TransportError> {
        let mut actors = self.actors.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = actors.get(key) {
            return Ok(sender.clone());
        }
        let (tx, rx) = mpsc::channel();
        let actor = Actor {
            user: key.user.clone(),
            options: Arc::clone(&self.options),
            requests: rx,
            connection: None,
            jobs: Vec::new(),
        };
        std::thread::Builder::new()
            .name(format!("ssh {}", host.name))
            .spawn(move || actor.serve())
            .map_err(|e| TransportError::Spawn {
                host: host.name.clone(),
                message: format!("cannot start a thread for the SSH connection: {e}"),
            })?;
        actors.insert(key.clone(), tx.clone());
        Ok(tx)
    }
}

impl Transport for SshTransport {
    fn run<'a>(
        &'a self,
        host: &'a Host,
        command: &'a Command,
    ) -> BoxFuture<'a, Result<Output, TransportError>> {
        Box::pin(self.ask(host, |reply| Request::Run {
            host: host.clone(),
            command: command.clone(),
            reply,
        }))
    }

    fn connect<'a>(&'a self, host: &'a Host) -> BoxFuture<'a, Result<String, TransportError>> {
        Box::pin(self.ask(host, |reply| Request::Connect {
            host: host.clone(),
            reply,
        }))
    }
}

fn worker_stopped(host: &Host) -> TransportError {
    TransportError::Spawn {
        host: host.name.clone(),
        message: "the SSH worker for this host stopped unexpectedly".into(),
    }
}

/// `host.user`, else the local user, as OpenSSH does.
fn remote_user(host: &Host) -> Result<String, TransportError> {
    host.user
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .or_else(|| std::env::var("LOGNAME").ok())
        .filter(|user| !user.is_empty())
        .ok_or_else(|| TransportError::Auth {
            host: host.name.clone(),
            address: endpoint(host),
            message: "no user: set ansible_user for the host (or User in ~/.ssh/config)".into(),
        })
}

fn endpoint(host: &Host) -> String {
    format!("{}:{}", host.address, host.port)
}

// ---------------------------------------------------------------------------------------
// The host actor: one thread, one session, any number of running commands.

struct Actor {
    user: String,
    options: Arc<SshOptions>,
    requests: mpsc::Receiver<Request>,
    connection: Option<Connection>,
    jobs: Vec<Job>,
}

struct Connection {
    session: Session,
    /// A second handle on the session's socket, to sleep until it is readable.
    socket: TcpStream,
    /// `TYPE SHA256:…` of the server's host key, for the journal.
    fingerprint: String,
    /// The host as it was when connected, for error messages.
    host: Host,
    /// Commands started on this connection: the agent starts with the second one, so that
    /// a host that runs one command (most of a fleet) costs no more than before.
    commands: u32,
    /// The shell that runs sequential commands without a session channel each.
    agent: Option<Agent>,
    /// The agent could not start here (no `setsid`, a login shell that prints, …): every
    /// command gets its own channel, as before.
    agent_unavailable: bool,
}

/// A long-lived `sh` on its own channel that runs one command at a time (see `AGENT`).
struct Agent {
    channel: Channel,
    job: Option<AgentJob>,
}

/// The command the agent runs now. Its output ends with a marker naming `nonce` (stdout
/// also gets the exit status), so the last bytes of each stream are held back from the tail
/// until it is clear whether they are the marker.
struct AgentJob {
    nonce: String,
    stdout: Held,
    stderr: Held,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Output, TransportError>>,
}

/// The most bytes the end markers take: `\nN<32 hex> <status>\n`.
const HOLD: usize = 64;

#[derive(Default)]
struct Held {
    tail: Tail,
    held: Vec<u8>,
}

impl Held {
    fn push(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
        if self.held.len() > HOLD {
            let spill = self.held.len() - HOLD;
            self.tail.push(&self.held[..spill]);
            self.held.drain(..spill);
        }
    }

    /// The stream without its last `marker` bytes.
    fn into_string(mut self, marker: usize) -> String {
        let keep = self.held.len().saturating_sub(marker);
        self.tail.push(&self.held[..keep]);
        self.tail.into_string()
    }
}

/// A command running on a channel of the session.
struct Job {
    channel: Channel,
    stdout: Tail,
    stderr: Tail,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Output, TransportError>>,
}

enum Progress {
    Running {
        moved: bool,
    },
    Finished(Output),
    /// The caller stopped waiting (its future was dropped).
    Abandoned,
}

impl Actor {
    fn serve(mut self) {
        loop {
            if self.busy() {
                while let Ok(request) = self.requests.try_recv() {
                    self.handle(request);
                }
            } else {
                match self
                    .requests
                    .recv_timeout(Duration::from_secs(KEEPALIVE_SECS.into()))
                {
                    Ok(request) => self.handle(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => self.idle_keepalive(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            }
            if self.busy() {
                self.poll_jobs();
            }
        }
    }

    /// Whether a command runs, on a channel of its own or on the agent.
    fn busy(&self) -> bool {
        !self.jobs.is_empty()
            || self
                .connection
                .as_ref()
                .and_then(|c| c.agent.as_ref())
                .is_some_and(|agent| agent.job.is_some())
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Connect { host, reply } => {
                let result = self.connection(&host).map(|c| c.fingerprint.clone());
                let _ = reply.send(result);
            }
            Request::Run {
                host,
                command,
                reply,
            } => match self.start_on_agent(&host, &command) {
                Ok(Some(nonce)) => {
                    if let Some(agent) = self.connection.as_mut().and_then(|c| c.agent.as_mut()) {
                        agent.job = Some(AgentJob {
                            nonce,
                            stdout: Held::default(),
                            stderr: Held::default(),
                            deadline: command.timeout.map(|t| Instant::now() + t),
                            reply,
                        });
                    }
                }
                Ok(None) => self.start_on_channel(&host, &command, reply),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
        }
    }

    fn start_on_channel(
        &mut self,
        host: &Host,
        command: &Command,
        reply: oneshot::Sender<Result<Output, TransportError>>,
    ) {
        match self.start(host, command) {
            Ok(channel) => self.jobs.push(Job {
                channel,
                stdout: Tail::default(),
                stderr: Tail::default(),
                deadline: command.timeout.map(|t| Instant::now() + t),
                reply,
            }),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Hands the command to the host's agent when it is free, starting the agent first if
    /// this connection already ran a command and nothing else runs. `None`: the command
    /// needs a channel of its own (first command, agent busy or unavailable).
    fn start_on_agent(
        &mut self,
        host: &Host,
        command: &Command,
    ) -> Result<Option<String>, TransportError> {
        let idle = self.jobs.is_empty();
        let Some(connection) = self.connection.as_mut() else {
            return Ok(None);
        };
        if connection.commands == 0 || connection.agent_unavailable {
            return Ok(None);
        }
        if connection.agent.is_none() {
            if !idle {
                return Ok(None);
            }
            connection.agent = start_agent(&connection.session, host.connect_timeout);
            connection.agent_unavailable = connection.agent.is_none();
        }
        let Some(agent) = connection.agent.as_mut() else {
            return Ok(None);
        };
        if agent.job.is_some() {
            return Ok(None);
        }
        let nonce = nonce();
        let request = format!("{nonce}\n{}\n{nonce}\n", with_prelude(host, command)?);
        let sent = blocking(&connection.session, host.connect_timeout, |_| {
            agent.channel.write_all(request.as_bytes())
        });
        if sent.is_err() {
            // The session is checked (and reopened) by the channel path.
            connection.agent = None;
            connection.agent_unavailable = true;
            return Ok(None);
        }
        connection.commands += 1;
        Ok(Some(nonce))
    }

    /// The open session, connecting first if there is none.
    fn connection(&mut self, host: &Host) -> Result<&Connection, TransportError> {
        if self.connection.is_none() {
            self.connection = Some(open(host, &self.user, &self.options)?);
        }
        self.connection.as_ref().ok_or_else(|| worker_stopped(host))
    }

    /// Opens a channel and starts the wrapped command. A session that died while idle is
    /// noticed here (the channel cannot open) and reopened once: nothing ran yet.
    fn start(&mut self, host: &Host, command: &Command) -> Result<Channel, TransportError> {
        let text = remote_command(host, command)?;
        let mut reopened = false;
        loop {
            let connection = self.connection(host)?;
            let limit = host.connect_timeout;
            match blocking(&connection.session, limit, Session::channel_session) {
                Ok(mut channel) => {
                    return match blocking(&connection.session, limit, |_| channel.exec(&text)) {
                        Ok(()) => {
                            if let Some(connection) = self.connection.as_mut() {
                                connection.commands += 1;
                            }
                            Ok(channel)
                        }
                        Err(e) => {
                            let error = lost(
                                host,
                                &format!(
                                    "cannot start the command: {e} (the server closed the \
                                     session; its sshd log says why)"
                                ),
                            );
                            self.drop_connection(&error);
                            Err(error)
                        }
                    };
                }
                Err(e) if reopened || self.busy() => {
                    let error = lost(
                        host,
                        &format!(
                            "cannot open a session channel: {e} (the server went away, or \
                             refuses more sessions: see MaxSessions in its sshd_config)"
                        ),
                    );
                    self.drop_connection(&error);
                    return Err(error);
                }
                Err(_) => {
                    self.connection = None;
                    reopened = true;
                }
            }
        }
    }

    fn idle_keepalive(&mut self) {
        if let Some(connection) = &self.connection
            && let Err(e) = connection.session.keepalive_send()
            && io::Error::from(e).kind() != io::ErrorKind::WouldBlock
        {
            // Reopened on the next call.
            self.connection = None;
        }
    }

    /// Moves every running command forward once, then sleeps until the socket has data
    /// (or a deadline or keepalive is due).
    fn poll_jobs(&mut self) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        let mut moved = false;
        let mut failure = None;
        if let Some(agent) = &mut connection.agent {
            match agent.poll(&connection.session) {
                Ok(AgentProgress::Running { moved: m }) => moved |= m,
                Ok(AgentProgress::Done) => moved = true,
                Ok(AgentProgress::Gone(result)) => {
                    connection.agent = None;
                    if let Some(reply) = result {
                        let _ = reply.send(Err(lost(
                            &connection.host,
                            "the runbook agent on the host stopped while the command ran (was \
                             it killed?)",
                        )));
                    }
                    moved = true;
                }
                Err(e) => failure = Some(e),
            }
        }
        let connection = &*connection;
        let session = &connection.session;
        let mut i = 0;
        while failure.is_none() && i < self.jobs.len() {
            match self.jobs[i].poll(session) {
                Ok(Progress::Running { moved: m }) => {
                    moved |= m;
                    i += 1;
                }
                Ok(Progress::Finished(output)) => {
                    let job = self.jobs.swap_remove(i);
                    let _ = job.reply.send(Ok(output));
                    moved = true;
                }
                Ok(Progress::Abandoned) => {
                    self.jobs.swap_remove(i);
                    moved = true;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none()
            && let Err(e) = session.keepalive_send()
        {
            let e = io::Error::from(e);
            if e.kind() != io::ErrorKind::WouldBlock {
                failure = Some(e);
            }
        }
        if let Some(e) = failure {
            let error = lost(
                &connection.host,
                &format!(
                    "{e}: the link or the server went away while commands ran, and they did \
                     not finish (check that the host is up and its sshd running)"
                ),
            );
            self.drop_connection(&error);
            return;
        }
        if !moved {
            let now = Instant::now();
            let agent_deadline = connection
                .agent
                .as_ref()
                .and_then(|agent| agent.job.as_ref())
                .and_then(|job| job.deadline);
            let wait = self
                .jobs
                .iter()
                .filter_map(|job| job.deadline)
                .chain(agent_deadline)
                .map(|deadline| deadline.saturating_duration_since(now))
                .fold(POLL_CAP, Duration::min);
            wait_readable(&connection.socket, wait);
        }
    }

    /// Forgets the session and fails every running command with `error`.
    fn drop_connection(&mut self, error: &TransportError) {
        if let Some(job) = self
            .connection
            .take()
            .and_then(|c| c.agent)
            .and_then(|agent| agent.job)
        {
            let _ = job.reply.send(Err(error.clone()));
        }
        for job in self.jobs.drain(..) {
            let _ = job.reply.send(Err(error.clone()));
        }
    }
}

impl Job {
    fn poll(&mut self, session: &Session) -> io::Result<Progress> {
        if self.reply.is_closed() {
            stop(session, &mut self.channel);
            return Ok(Progress::Abandoned);
        }
        let mut moved = drain(&mut self.channel, |b| self.stdout.push(b))?;
        moved |= drain(&mut self.channel.stderr(), |b| self.stderr.push(b))?;
        if self.channel.eof() {
            // Output is complete; the exit status is certain once the server closes too.
            match self
                .channel
                .close()
                .and_then(|()| self.channel.wait_close())
            {
                Ok(()) => return Ok(Progress::Finished(self.output(false))),
                Err(e) => {
                    let e = io::Error::from(e);
                    if e.kind() != io::ErrorKind::WouldBlock {
                        return Err(e);
                    }
                }
            }
        }
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            stop(session, &mut self.channel);
            return Ok(Progress::Finished(self.output(true)));
        }
        Ok(Progress::Running { moved })
    }

    fn output(&mut self, timed_out: bool) -> Output {
        let killed = timed_out
            || self
                .channel
                .exit_signal()
                .is_ok_and(|signal| signal.exit_signal.is_some());
        Output {
            exit_code: if killed {
                None
            } else {
                self.channel.exit_status().ok()
            },
            stdout: std::mem::take(&mut self.stdout).into_string(),
            stderr: std::mem::take(&mut self.stderr).into_string(),
            timed_out,
        }
    }
}

enum AgentProgress {
    Running {
        moved: bool,
    },
    /// The command finished and its caller has the answer; the agent waits for the next.
    Done,
    /// The agent is to be forgotten: it was stopped (timeout, caller gone), or it ended on
    /// its own, and then the caller still waiting (if any) is to be told.
    Gone(Option<oneshot::Sender<Result<Output, TransportError>>>),
}

impl Agent {
    fn poll(&mut self, session: &Session) -> io::Result<AgentProgress> {
        let Some(job) = &mut self.job else {
            // Nothing runs: anything but silence means the agent ended.
            return Ok(if self.channel.eof() {
                AgentProgress::Gone(None)
            } else {
                AgentProgress::Running { moved: false }
            });
        };
        if job.reply.is_closed() {
            stop(session, &mut self.channel);
            return Ok(AgentProgress::Gone(None));
        }
        let mut moved = drain(&mut self.channel, |b| job.stdout.push(b))?;
        moved |= drain(&mut self.channel.stderr(), |b| job.stderr.push(b))?;
        if let Some(status) = job.status() {
            let Some(job) = self.job.take() else {
                return Ok(AgentProgress::Done);
            };
            let out_marker = format!("\n{} {status}\n", job.nonce).len();
            let err_marker = job.nonce.len() + 2;
            let _ = job.reply.send(Ok(Output {
                exit_code: Some(status),
                stdout: job.stdout.into_string(out_marker),
                stderr: job.stderr.into_string(err_marker),
                timed_out: false,
            }));
            return Ok(AgentProgress::Done);
        }
        if self.channel.eof() {
            return Ok(AgentProgress::Gone(self.job.take().map(|job| job.reply)));
        }
        if job
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            stop(session, &mut self.channel);
            if let Some(job) = self.job.take() {
                let _ = job.reply.send(Ok(Output {
                    exit_code: None,
                    stdout: job.stdout.into_string(0),
                    stderr: job.stderr.into_string(0),
                    timed_out: true,
                }));
            }
            return Ok(AgentProgress::Gone(None));
        }
        Ok(AgentProgress::Running { moved })
    }
}

impl AgentJob {
    /// The exit status, once both streams end with their marker.
    fn status(&self) -> Option<i32> {
        let err_marker = format!("\n{}\n", self.nonce);
        if !self.stderr.held.ends_with(err_marker.as_bytes()) {
            return None;
        }
        let out = self.stdout.held.strip_suffix(b"\n")?;
        let prefix = format!("\n{} ", self.nonce);
        let start = out
            .windows(prefix.len())
            .rposition(|w| w == prefix.as_bytes())?;
        std::str::from_utf8(&out[start + prefix.len()..])
            .ok()?
            .parse()
            .ok()
    }
}

/// Starts the agent on a new channel and waits for its greeting. `None` when it cannot run
/// here; commands then get a channel each.
fn start_agent(session: &Session, limit: Duration) -> Option<Agent> {
    let greeting = b"runbook-agent\n";
    let mut channel = blocking(session, limit, Session::channel_session).ok()?;
    let started = blocking(session, limit, |_| {
        channel.exec(&format!("sh -c {}", quote(AGENT)))?;
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        while seen.len() < greeting.len() {
            match channel.read(&mut buf)? {
                0 => break,
                n => seen.extend_from_slice(&buf[..n]),
            }
        }
        Ok::<_, io::Error>(seen == greeting)
    });
    if started.is_ok_and(|ok| ok) {
        Some(Agent { channel, job: None })
    } else {
        stop(session, &mut channel);
        None
    }
}

/// Reads what is available on one stream without blocking. Returns whether anything came.
fn drain(stream: &mut impl Read, mut push: impl FnMut(&[u8])) -> io::Result<bool> {
    let mut buf = [0u8; 16 * 1024];
    let mut moved = false;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(moved),
            Ok(n) => {
                push(&buf[..n]);
                moved = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(moved),
            Err(e) => return Err(e),
        }
    }
}

/// Stops a command on the server: end of file on its stdin makes the wrapper kill the
/// command's process group. Errors are left to the next read or keepalive to notice.
fn stop(session: &Session, channel: &mut Channel) {
    let _ = blocking(session, KILL_GRACE, |_| {
        channel.send_eof()?;
        channel.close()
    });
}

/// Runs `f` with the session in blocking mode, bounded by `limit`, then returns the session
/// to non-blocking mode (which polling running commands needs).
fn blocking<T, E>(
    session: &Session,
    limit: Duration,
    f: impl FnOnce(&Session) -> Result<T, E>,
) -> Result<T, E> {
    session.set_blocking(true);
    session.set_timeout(millis(limit));
    let result = f(session);
    session.set_timeout(0);
    session.set_blocking(false);
    result
}

fn millis(limit: Duration) -> u32 {
    u32::try_from(limit.as_millis()).unwrap_or(u32::MAX).max(1)
}

fn wait_readable(socket: &TcpStream, wait: Duration) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let timeout = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(socket.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, timeout).is_err() {
        std::thread::sleep(wait);
    }
}

fn lost(host: &Host, message: &str) -> TransportError {
    TransportError::Lost {
        host: host.name.clone(),
        address: endpoint(host),
        message: message.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Connecting: TCP, handshake, host key, authentication — all within the connect timeout.

fn open(host: &Host, user: &str, options: &SshOptions) -> Result<Connection, TransportError> {
    let deadline = Instant::now() + host.connect_timeout;
    let connect_error = |message: String| TransportError::Connect {
        host: host.name.clone(),
        address: endpoint(host),
        message,
    };
    let host_key_error = |message: String| TransportError::HostKey {
        host: host.name.clone(),
        address: endpoint(host),
        message,
    };

    let mut files = vec![options.user_known_hosts.clone()];
    files.extend(host.known_hosts.clone());
    let name = known_hosts_name(&host.address, host.port);
    let known = known_keys(&files, &name).map_err(host_key_error)?;

    let stream = tcp_connect(host, deadline).map_err(connect_error)?;
    let socket = stream
        .try_clone()
        .map_err(|e| connect_error(format!("cannot use the socket: {e}")))?;
    let mut session =
        Session::new().map_err(|e| connect_error(format!("cannot start SSH: {e}")))?;
    session.set_tcp_stream(stream);
    session.set_timeout(millis(deadline.saturating_duration_since(Instant::now())));

    // Offer only the key types known_hosts holds for this host, or libssh2 may negotiate
    // another type and the check would report a change that is not one.
    let known_types = distinct_types(&known);
    if !known_types.is_empty() {
        let supported = session
            .supported_algs(MethodType::HostKey)
            .unwrap_or_default();
        let prefs = host_key_methods(&known_types, &supported);
        if prefs.is_empty() {
            return Err(host_key_error(format!(
                "known_hosts holds only keys of type {} for {name}, which this tool cannot check",
                known_types.join(", ")
            )));
        }
        session
            .method_pref(MethodType::HostKey, &prefs)
            .map_err(|e| connect_error(format!("cannot select host key types {prefs}: {e}")))?;
    }

    if let Err(e) = session.handshake() {
        // LIBSSH2_ERROR_TIMEOUT: the session timeout (the rest of the connect timeout) ran out.
        let timed_out = e.code() == ssh2::ErrorCode::Session(-9);
        let message = if timed_out || Instant::now() >= deadline {
            format!(
                "no SSH answer within {}s (check that sshd listens on this port)",
                host.connect_timeout.as_secs_f32()
            )
        } else if known_types.is_empty() {
            format!("SSH handshake failed: {e} (is it an SSH server on this port?)")
        } else {
            format!(
                "SSH handshake failed: {e} (known_hosts holds {} keys for {name}: the server may \
                 no longer offer them — a reinstalled or different host?)",
                known_types.join(", ")
            )
        };
        return Err(connect_error(message));
    }

    let Some((server_key, _)) = session.host_key() else {
        return Err(host_key_error("the server sent no host key".into()));
    };
    let fingerprint = describe_key(server_key);
    match verify(&known, server_key) {
        Verdict::Trusted => {}
        Verdict::Revoked(entry) => {
            return Err(host_key_error(format!(
                "the host key {fingerprint} is marked @revoked in {}:{}",
                entry.file.display(),
                entry.line
            )));
        }
        Verdict::Changed(old) => {
            return Err(host_key_error(format!(
                "REMOTE HOST IDENTIFICATION HAS CHANGED! {}:{} holds {} for {name}, but the \
                 server presents {fingerprint}. Someone could be intercepting the connection, or \
                 the host was reinstalled. If the change is expected, remove the old key \
                 (ssh-keygen -R '{name}' -f {}) and connect again.",
                old.file.display(),
                old.line,
                describe_key(&old.blob),
                old.file.display(),
            )));
        }
        Verdict::Unknown if options.accept_new_host_keys => {
            append_known_host(&options.user_known_hosts, &name, server_key).map_err(|e| {
                host_key_error(format!(
                    "cannot record the new key {fingerprint} in {}: {e}",
                    options.user_known_hosts.display()
                ))
            })?;
        }
        Verdict::Unknown => {
            let files = files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>();
            return Err(host_key_error(format!(
                "unknown host key {fingerprint} ({name} is not in {}). Check the fingerprint with \
                 the host's administrator, then accept it with `runbook run … \
                 --accept-new-host-keys` or `ssh-keyscan -p {} {} >> {}`",
                files.join(" or "),
                host.port,
                host.address,
                options.user_known_hosts.display()
            )));
        }
    }

    authenticate(&session, host, user, options)?;
    session.set_timeout(0);
    session.set_keepalive(true, KEEPALIVE_SECS);
    session.set_blocking(false);
    Ok(Connection {
        session,
        socket,
        fingerprint,
        host: host.clone(),
        commands: 0,
        agent: None,
        agent_unavailable: false,
    })
}

fn tcp_connect(host: &Host, deadline: Instant) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = (host.address.as_str(), host.port)
        .to_socket_addrs()
        .map_err(|e| {
            format!(
                "cannot resolve {}: {e} (check ansible_host, or the name in DNS or /etc/hosts)",
                host.address
            )
        })?
        .collect();
    let mut last = format!("{} resolves to no address", host.address);
    for address in addresses {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&address, left) {
            Ok(stream) => {
                // Small requests and replies: do not wait to fill packets.
                let _ = stream.set_nodelay(true);
                // Keepalives are unanswered on a cut link; the kernel then gives up after
                // about three intervals instead of the default quarter of an hour.
                #[cfg(target_os = "linux")]
                let _ = socket2::SockRef::from(&stream)
                    .set_tcp_user_timeout(Some(Duration::from_secs((3 * KEEPALIVE_SECS).into())));
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                last = format!(
                    "no answer from {address} within {}s (check the address, the port and firewalls)",
                    host.connect_timeout.as_secs_f32()
                );
            }
            Err(e) => {
                last = format!(
                    "TCP connection to {address} failed: {e} (is sshd running there, on this port?)"
                );
            }
        }
    }
    Err(last)
}

/// Agent first, then the host's identity files, then the default keys that exist.
fn authenticate(
    session: &Session,
    host: &Host,
    user: &str,
    options: &SshOptions,
) -> Result<(), TransportError> {
    let mut tried = Vec::new();
    let agent = std::env::var_os("SSH_AUTH_SOCK").is_some();
    if agent {
        match session.userauth_agent(user) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push("ssh-agent: no key accepted".to_owned()),
            Err(e) => tried.push(format!("ssh-agent: {}", e.message())),
        }
    }
    let defaults = options.default_identities.iter().filter(|key| key.exists());
    for key in host.identity_files.iter().chain(defaults) {
        let shown = key.display();
        let text = match std::fs::read_to_string(key) {
            Ok(text) => text,
            Err(e) => {
                tried.push(format!("{shown}: cannot read it: {e}"));
                continue;
            }
        };
        if key_is_encrypted(&text) {
            tried.push(if agent {
                format!("{shown}: passphrase-protected and not accepted from the agent")
            } else {
                format!("{shown}: passphrase-protected, and no ssh-agent is running (load it with ssh-add)")
            });
            continue;
        }
        match session.userauth_pubkey_file(user, None, key, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{shown}: not accepted")),
            Err(e) => tried.push(format!("{shown}: {}", key_refusal(&e))),
        }
    }
    if tried.is_empty() {
        tried.push("no ssh-agent, no identity file set and no default key found".into());
    }
    Err(TransportError::Auth {
        host: host.name.clone(),
        address: endpoint(host),
        message: format!(
            "no key was accepted for user {user} ({}); check the user and that the public key is \
             in the server's ~{user}/.ssh/authorized_keys",
            tried.join("; ")
        ),
    })
}

/// libssh2's words for a refused key ("Username/PublicKey combination invalid") say less
/// than they could; the codes tell a refusal from a key file it could not use.
fn key_refusal(error: &ssh2::Error) -> String {
    // LIBSSH2_ERROR_FILE, _AUTHENTICATION_FAILED, _PUBLICKEY_UNVERIFIED.
    match error.code() {
        ssh2::ErrorCode::Session(-18 | -19) => "not accepted by the server".into(),
        ssh2::ErrorCode::Session(-16) => format!(
            "cannot use this key file (not a private key, or a format libssh2 cannot read): {}",
            error.message()
        ),
        _ => error.message().to_owned(),
    }
}

/// Whether a private key file needs a passphrase (PEM or OpenSSH format).
fn key_is_encrypted(text: &str) -> bool {
    if text.contains("ENCRYPTED") {
        return true;
    }
    let Some(body) = text
        .split("-----BEGIN OPENSSH PRIVATE KEY-----")
        .nth(1)
        .and_then(|rest| rest.split("-----END").next())
    else {
        return false;
    };
    let body: String = body.split_whitespace().collect();
    let Ok(blob) = STANDARD.decode(body) else {
        return false;
    };
    // "openssh-key-v1\0", then the cipher name as an SSH string: "none" when unencrypted.
    blob.strip_prefix(b"openssh-key-v1\0")
        .and_then(ssh_string)
        .is_some_and(|cipher| cipher != b"none")
}

// ---------------------------------------------------------------------------------------
// The remote command.

/// The text sent as the exec request: the wrapper, with the script as its argument, the
/// script preceded by `export NAME=value` lines (servers rarely accept SetEnv; exporting in
/// the wrapper's shell spares the `env` process a step would otherwise start; the wrapper
/// runs the script in a subshell rather than `sh -c`, one process fewer again). Every value
/// is single-quoted.
fn remote_command(host: &Host, command: &Command) -> Result<String, TransportError> {
    let script = exported(host, command)?;
    let mut text = format!("sh -c {} runbook {}", quote(WRAPPER), quote(&script));
    if let Some(dir) = &host.workdir {
        let _ = write!(text, " {}", quote(&dir.to_string_lossy()));
    }
    Ok(text)
}

/// Enters the workdir (`$2`, `runbook_workdir`) if one is given, then runs the script (`$1`)
/// with nothing on stdin while a watcher reads the channel's stdin;
/// when that reaches end of file before the script is done (timeout, lost connection, this
/// process gone), the watcher kills the whole process group. OpenSSH starts every session
/// command in a new session (setsid), so the group holds exactly this command's processes;
/// where /proc shows otherwise (a server that does not), the watcher kills nothing rather
/// than hit processes that are not the command's.
const WRAPPER: &str = r#"c=$1 g=1
if [ -n "${2-}" ] && ! cd -- "$2" 2>/dev/null; then echo "runbook: cannot enter the workdir $2 (runbook_workdir): no such folder on this host, or no permission" >&2; exit 1; fi
if [ -r /proc/$$/stat ]; then read -r t </proc/$$/stat; set -- ${t##*") "}; [ "$3" = "$4" ] || g=; fi
exec 3<&0 </dev/null
{ while read -r _; do :; done <&3; [ -n "$g" ] && kill -KILL 0; } >/dev/null 2>&1 &
w=$!
exec 3<&-
(set --; eval "$c")
s=$?
kill "$w" 2>/dev/null
exit "$s""#;

/// The agent: a shell on its own channel that runs the commands sent on its stdin, one at a
/// time, without the session channel, login shell and wrapper each command costs otherwise.
/// A request is a line with a nonce, the script's lines, and the nonce again. Each command
/// runs in `sh` under `setsid`, in a process group of its own (`set -m` needs a terminal in
/// most shells), with the agent's stdout and stderr; when it ends, they get
/// `\n<nonce> <status>\n` and `\n<nonce>\n`. While it runs, a watcher reads stdin: the
/// caller sends nothing then, so end of file means a timeout, a lost connection or the
/// runbook gone, and the watcher kills the command's whole group, as the wrapper does. What
/// a finished command left running is left alone. Without `setsid` the agent exits before
/// its greeting and commands get a channel each.
const AGENT: &str = r#"command -v setsid >/dev/null 2>&1 || exit 127
exec 3<&0 </dev/null
echo runbook-agent
while IFS= read -r n <&3; do
c=
while IFS= read -r l <&3 && [ "$l" != "$n" ]; do c="$c$l
"; done
setsid sh -c 'c=$1; set --; eval "$c"' runbook "$c" 3<&- &
b=$!
{ read -r _ <&3 || kill -KILL -"$b"; } >/dev/null 2>&1 &
w=$!
wait "$b"
s=$?
kill "$w" 2>/dev/null
wait "$w" 2>/dev/null
printf '\n%s %s\n' "$n" "$s"
printf '\n%s\n' "$n" >&2
done"#;

// ---------------------------------------------------------------------------------------
// known_hosts.

/// A key known_hosts holds for the host being checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownKey {
    file: PathBuf,
    line: usize,
    key_type: String,
    blob: Vec<u8>,
    revoked: bool,
}

/// How known_hosts names a host: `addr` on port 22, `[addr]:port` elsewhere.
fn known_hosts_name(address: &str, port: u16) -> String {
    if port == 22 {
        address.to_owned()
    } else {
        format!("[{address}]:{port}")
    }
}

/// The keys of `files` that apply to `name` (plain entries with OpenSSH's patterns, hashed
/// `|1|` ones checked by libssh2, `[host]:port` names), and every `@revoked` key. A missing file holds no keys; an
/// unreadable one is an error, since skipping it could trust too little or too much.
fn known_keys(files: &[PathBuf], name: &str) -> Result<Vec<KnownKey>, String> {
    let session = Session::new().map_err(|e| format!("cannot start libssh2: {e}"))?;
    let mut keys = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        for (index, line) in text.lines().enumerate() {
            let Some(entry) = parse_known_line(line) else {
                continue;
            };
            let applies = entry.revoked
                || if entry.hosts.starts_with("|1|") {
                    // Hashed: libssh2 checks the HMAC, one entry at a time, so that the
                    // answer is about this line alone.
                    let mut single = session.known_hosts().map_err(|e| format!("libssh2: {e}"))?;
                    single
                        .read_str(line.trim(), ssh2::KnownHostFileKind::OpenSSH)
                        .is_ok()
                        && matches!(single.check(name, &entry.blob), CheckResult::Match)
                } else {
                    hosts_field_names(&entry.hosts, name)
                };
            if applies {
                keys.push(KnownKey {
                    file: file.clone(),
                    line: index + 1,
                    key_type: entry.key_type,
                    blob: entry.blob,
                    revoked: entry.revoked,
                });
            }
        }
    }
    Ok(keys)
}

/// Whether a plain known_hosts host field names `name` as OpenSSH reads it: patterns
/// separated by commas, `*` and `?` wildcards, letters compared without case, and a match
/// of a `!pattern` excludes the line whatever else matches.
fn hosts_field_names(field: &str, name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let mut named = false;
    for pattern in field.split(',') {
        let (excluded, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        if wildcard_match(pattern.to_ascii_lowercase().as_bytes(), name.as_bytes()) {
            if excluded {
                return false;
            }
            named = true;
        }
    }
    named
}

/// `*` matches any run of characters (also none), `?` exactly one, anything else itself.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it has swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and try again.
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[derive(Debug, PartialEq, Eq)]
struct KnownLine {
    hosts: String,
    revoked: bool,
    key_type: String,
    blob: Vec<u8>,
}

/// One known_hosts line: `[@marker] hosts keytype base64 [comment]`. Comments, blank and
/// malformed lines and `@cert-authority` (certificates are not supported) give `None`.
fn parse_known_line(line: &str) -> Option<KnownLine> {
    let mut fields = line.split_whitespace().peekable();
    let revoked = match fields.peek() {
        Some(first) if first.starts_with('#') => return None,
        Some(&"@revoked") => true,
        Some(first) if first.starts_with('@') => return None,
        _ => false,
    };
    if revoked {
        fields.next();
    }
    let hosts = fields.next()?.to_owned();
    let key_type = fields.next()?.to_owned();
    let blob = STANDARD.decode(fields.next()?).ok()?;
    Some(KnownLine {
        hosts,
        revoked,
        key_type,
        blob,
    })
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict<'a> {
    Trusted,
    Unknown,
    Changed(&'a KnownKey),
    Revoked(&'a KnownKey),
}

/// Decides about the server's key. Known keys of another type than the one presented also
/// count as a change: failing closed is the point.
fn verify<'a>(known: &'a [KnownKey], server_key: &[u8]) -> Verdict<'a> {
    if let Some(entry) = known.iter().find(|k| k.revoked && k.blob == server_key) {
        return Verdict::Revoked(entry);
    }
    let valid: Vec<&KnownKey> = known.iter().filter(|k| !k.revoked).collect();
    if valid.iter().any(|k| k.blob == server_key) {
        return Verdict::Trusted;
    }
    let server_type = blob_key_type(server_key);
    match valid
        .iter()
        .find(|k| Some(k.key_type.as_str()) == server_type)
        .or(valid.first())
    {
        Some(old) => Verdict::Changed(old),
        None => Verdict::Unknown,
    }
}

fn distinct_types(known: &[KnownKey]) -> Vec<String> {
    let mut types: Vec<String> = Vec::new();
    for key in known.iter().filter(|k| !k.revoked) {
        if !types.contains(&key.key_type) {
            types.push(key.key_type.clone());
        }
    }
    types
}

/// The libssh2 host key methods that can present keys of `types`, among `supported`.
fn host_key_methods(types: &[String], supported: &[&str]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for key_type in types {
        let candidates = match key_type.as_str() {
            // An RSA key signs with any of these algorithms; the newer ones come first.
            "ssh-rsa" => vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
            other => vec![other],
        };
        methods.extend(candidates.iter().filter(|m| supported.contains(m)));
    }
    methods.join(",")
}

/// `ssh-ed25519 SHA256:…`, as `ssh-keygen -l` shows it.
fn describe_key(blob: &[u8]) -> String {
    format!(
        "{} {}",
        blob_key_type(blob).unwrap_or("unknown-type"),
        fingerprint(blob)
    )
}

/// OpenSSH's fingerprint: SHA-256 of the key blob, base64 without padding.
fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The key type a key blob starts with (an SSH string).
fn blob_key_type(blob: &[u8]) -> Option<&str> {
    ssh_string(blob).and_then(|name| std::str::from_utf8(name).ok())
}

/// The first SSH string (u32 big-endian length, then bytes) of `data`.
fn ssh_string(data: &[u8]) -> Option<&[u8]> {
    let (len, rest) = data.split_first_chunk::<4>()?;
    rest.get(..u32::from_be_bytes(*len) as usize)
}

/// Appends `name keytype base64` to the user's known_hosts, creating it (0600, in a 0700
/// folder) if needed.
fn append_known_host(file: &Path, name: &str, blob: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let key_type = blob_key_type(blob)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "the host key has no type"))?;
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let needs_newline =
        std::fs::read(file).is_ok_and(|text| !text.is_empty() && !text.ends_with(b"\n"));
    let mut out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(file)?;
    let line = format!("{name} {key_type} {}\n", STANDARD.encode(blob));
    out.write_all(format!("{}{line}", if needs_newline { "\n" } else { "" }).as_bytes())?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::TransportKind;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIH8QTwWNFfGRIFB5uEL63X9YeRkgXgG4Wi1GtwYJ/2g3";
    /// `ssh-keygen -lf` of `KEY`.
    const KEY_FINGERPRINT: &str = "SHA256:S5Jc2TpujPlfQfLssstN56wjTrAbGfxbUhtg4sJaA1w";
    /// `[db.example]:2222` with `KEY`, hashed by `ssh-keygen -H`.
    const HASHED: &str = "|1|XUVLUGe/Ktd/r6s/MN/qSsgcga8=|JhtVt8AHNY2NRgLBapzh7mJwd1Q= ssh-ed25519 \
        AAAAC3NzaC1lZDI1NTE5AAAAIH8QTwWNFfGRIFB5uEL63X9YeRkgXgG4Wi1GtwYJ/2g3";
    const PLAIN_KEY_FILE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACB/EE8FjRXxkSBQebhC+t1/WHkZIF4BuFotRrcGCf9oNwAAAIj1WQMy9VkD
MgAAAAtzc2gtZWQyNTUxOQAAACB/EE8FjRXxkSBQebhC+t1/WHkZIF4BuFotRrcGCf9oNw
AAAEBv4wE1Qbuw0Rtv1Oyw/Al2QpfhV2omSn7su48UNoddFX8QTwWNFfGRIFB5uEL63X9Y
eRkgXgG4Wi1GtwYJ/2g3AAAAAmZ4AQID
-----END OPENSSH PRIVATE KEY-----
";
    const LOCKED_KEY_FILE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABD2kphMNB
JCXavU+4pP6DL3AAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIJ98wQ41E0FR3JhC
f9/Yc289gtgl6OjXg/ecvakSuNCPAAAAkHCwDnf76Zhvd9IWsDHNoEu0NVDETn0wjc6zOM
yyyMC8RzVn9xs0OIfFaI//WdL2sorC3fHsSH63pbmy+IGKd8ngw9wiRsyDZc5HPMXUYGgv
MR0wlLG23F6OkLnp5aSmHyiGXsoAE51se445NwmUnr4kR52OIsq9DbRjWVPKShFb0DuDLk
/KQBx6iTakrUccng==
-----END OPENSSH PRIVATE KEY-----
";

    fn blob() -> Vec<u8> {
        STANDARD.decode(KEY).unwrap()
    }

    fn known(key_type: &str, blob: Vec<u8>, revoked: bool) -> KnownKey {
        KnownKey {
            file: "/k".into(),
            line: 1,
            key_type: key_type.into(),
            blob,
            revoked,
        }
    }

    fn keys_in(text: &str, name: &str) -> Vec<KnownKey> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, text).unwrap();
        known_keys(&[file, dir.path().join("missing")], name).unwrap()
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint(&blob()), KEY_FINGERPRINT);
        assert_eq!(
            describe_key(&blob()),
            format!("ssh-ed25519 {KEY_FINGERPRINT}")
        );
    }

    #[test]
    fn known_hosts_names_non_standard_ports_in_brackets() {
        assert_eq!(known_hosts_name("10.0.0.21", 22), "10.0.0.21");
        assert_eq!(known_hosts_name("10.2.1.1", 2222), "[10.2.1.1]:2222");
    }

    #[test]
    fn known_lines_parse_markers_and_skip_what_they_cannot_use() {
        let line = parse_known_line(&format!("host1,10.0.0.1 ssh-ed25519 {KEY} comment")).unwrap();
        assert_eq!(
            line,
            KnownLine {
                hosts: "host1,10.0.0.1".into(),
                revoked: false,
                key_type: "ssh-ed25519".into(),
                blob: blob()
            }
        );
        assert!(
            parse_known_line(&format!("@revoked * ssh-ed25519 {KEY}"))
                .unwrap()
                .revoked
        );
        assert_eq!(
            parse_known_line(&format!("@cert-authority *.lan ssh-ed25519 {KEY}")),
            None
        );
        assert_eq!(parse_known_line("# a comment"), None);
        assert_eq!(parse_known_line(""), None);
        assert_eq!(parse_known_line("host ssh-ed25519 not-base64!"), None);
    }

    #[test]
    fn entries_apply_by_exact_name_and_port() {
        let text =
            format!("db ssh-ed25519 {KEY}\n[db]:2222 ssh-rsa {KEY}\nother ssh-ed25519 {KEY}\n");
        let on_22 = keys_in(&text, "db");
        assert_eq!((on_22.len(), on_22[0].line), (1, 1));
        let on_2222 = keys_in(&text, "[db]:2222");
        assert_eq!(
            (on_2222.len(), on_2222[0].key_type.as_str()),
            (1, "ssh-rsa")
        );
        assert!(keys_in(&text, "[db]:2200").is_empty());
    }

    #[test]
    fn entries_apply_by_openssh_patterns_and_exclusions() {
        let text = format!(
            "*.ward.example,!icu.ward.example ssh-ed25519 {KEY}\n10.2.?.1 ssh-ed25519 {KEY}\n\
             [10.9.*]:2222 ssh-ed25519 {KEY}\nDB-Primary ssh-ed25519 {KEY}\n"
        );
        let lines = |name: &str| {
            keys_in(&text, name)
                .iter()
                .map(|k| k.line)
                .collect::<Vec<_>>()
        };
        assert_eq!(lines("ns.ward.example"), [1]);
        assert_eq!(lines("icu.ward.example"), Vec::<usize>::new());
        assert_eq!(lines("ward.example"), Vec::<usize>::new());
        assert_eq!(lines("10.2.7.1"), [2]);
        assert_eq!(lines("10.2.17.1"), Vec::<usize>::new());
        assert_eq!(lines("[10.9.0.5]:2222"), [3]);
        assert_eq!(lines("10.9.0.5"), Vec::<usize>::new());
        assert_eq!(lines("db-primary"), [4]);
    }

    #[test]
    fn wildcards_match_like_openssh() {
        let yes = [
            ("*", ""),
            ("*", "abc"),
            ("a*c", "abbbc"),
            ("a*b*c", "axbyc"),
            ("?b", "ab"),
            ("**", "x"),
        ];
        for (pattern, text) in yes {
            assert!(
                wildcard_match(pattern.as_bytes(), text.as_bytes()),
                "{pattern} {text}"
            );
        }
        let no = [
            ("a*c", "abcd"),
            ("?", ""),
            ("?b", "b"),
            ("abc", "ab"),
            ("a*b", "ac"),
        ];
        for (pattern, text) in no {
            assert!(
                !wildcard_match(pattern.as_bytes(), text.as_bytes()),
                "{pattern} {text}"
            );
        }
    }

    #[test]
    fn hashed_entries_apply_to_their_host() {
        let text = format!("# hashed\n{HASHED}\n");
        assert_eq!(keys_in(&text, "[db.example]:2222").len(), 1);
        assert!(keys_in(&text, "db.example").is_empty());
    }

    #[test]
    fn a_bad_line_does_not_hide_the_lines_after_it() {
        let text = format!("garbage\n@cert-authority * ssh-ed25519 {KEY}\ndb ssh-ed25519 {KEY}\n");
        assert_eq!(keys_in(&text, "db").len(), 1);
    }

    #[test]
    fn verdicts_fail_closed() {
        let server = blob();
        let other = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIJ98wQ41E0FR3JhCf9/Yc289gtgl6OjXg/ecvakSuNCP")
            .unwrap();
        assert_eq!(verify(&[], &server), Verdict::Unknown);
        let same = [known("ssh-ed25519", server.clone(), false)];
        assert_eq!(verify(&same, &server), Verdict::Trusted);
        let changed = [known("ssh-ed25519", other.clone(), false)];
        assert_eq!(verify(&changed, &server), Verdict::Changed(&changed[0]));
        let other_type = [known("ssh-rsa", other.clone(), false)];
        assert_eq!(
            verify(&other_type, &server),
            Verdict::Changed(&other_type[0])
        );
        let revoked = [
            known("ssh-ed25519", server.clone(), false),
            known("ssh-ed25519", server.clone(), true),
        ];
        assert_eq!(verify(&revoked, &server), Verdict::Revoked(&revoked[1]));
        // A revoked key of someone else neither trusts nor condemns this one.
        let unrelated = [known("ssh-ed25519", other, true)];
        assert_eq!(verify(&unrelated, &server), Verdict::Unknown);
    }

    #[test]
    fn rsa_known_keys_allow_every_rsa_signature_the_library_supports() {
        let types = vec![
            "ssh-rsa".to_owned(),
            "ssh-ed25519".to_owned(),
            "sk-ssh-ed25519@openssh.com".to_owned(),
        ];
        let supported = ["ssh-ed25519", "rsa-sha2-256", "ssh-rsa"];
        assert_eq!(
            host_key_methods(&types, &supported),
            "rsa-sha2-256,ssh-rsa,ssh-ed25519"
        );
    }

    #[test]
    fn encrypted_keys_are_recognised() {
        assert!(!key_is_encrypted(PLAIN_KEY_FILE));
        assert!(key_is_encrypted(LOCKED_KEY_FILE));
        assert!(key_is_encrypted(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        ));
        assert!(key_is_encrypted("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(!key_is_encrypted("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"));
    }

    #[test]
    fn a_new_key_is_appended_on_its_own_line_in_a_private_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new/.ssh/known_hosts");
        append_known_host(&file, "[db]:2222", &blob()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dir_mode = std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        std::fs::write(&file, "old ssh-ed25519 AAAA").unwrap();
        append_known_host(&file, "db", &blob()).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            text,
            format!("old ssh-ed25519 AAAA\ndb ssh-ed25519 {KEY}\n")
        );
    }

    fn host() -> Host {
        Host {
            name: "db".into(),
            address: "10.0.0.21".into(),
            port: 22,
            user: None,
            identity_files: vec![],
            transport: TransportKind::Ssh,
            workdir: None,
            known_hosts: None,
            connect_timeout: Duration::from_secs(10),
            vars: BTreeMap::new(),
        }
    }

    #[test]
    fn the_remote_command_carries_env_and_script_through_any_quoting() {
        let command = Command {
            script:
                "printf '%s|%s|' \"$RUNBOOK_STEP\" \"$RUNBOOK_RUN_ID\"; echo \"it's\" >&2; exit 4"
                    .into(),
            env: vec![
                ("RUNBOOK_STEP".into(), "a 'quoted' $step `x`".into()),
                ("RUNBOOK_RUN_ID".into(), "line1\nline2".into()),
            ],
            timeout: None,
        };
        let text = remote_command(&host(), &command).unwrap();
        assert!(text.starts_with("sh -c "), "{text}");
        // What a login shell on the server does with it:
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a 'quoted' $step `x`|line1\nline2|"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "it's\n");
    }

    #[test]
    fn the_remote_command_enters_the_workdir_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host();
        host.workdir = Some(dir.path().join("it's here"));
        std::fs::create_dir(host.workdir.as_ref().unwrap()).unwrap();
        let command = Command {
            script: "pwd".into(),
            env: vec![],
            timeout: None,
        };
        let sh = |text: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(text)
                .output()
                .unwrap()
        };
        let out = sh(&remote_command(&host, &command).unwrap());
        assert_eq!(out.status.code(), Some(0));
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.trim_end().ends_with("/it's here"), "{shown}");

        host.workdir = Some(dir.path().join("missing"));
        let out = sh(&remote_command(&host, &command).unwrap());
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(why.contains("cannot enter the workdir"), "{why}");
        assert!(why.contains("missing (runbook_workdir)"), "{why}");
    }

    #[test]
    fn an_env_name_that_could_be_an_option_is_refused() {
        let command = Command {
            script: "true".into(),
            env: vec![("-i".into(), "x".into())],
            timeout: None,
        };
        let err = remote_command(&host(), &command).unwrap_err();
        assert!(matches!(err, TransportError::Spawn { .. }), "{err:?}");
    }

    /// The agent run locally, its pipes standing for the channel.
    struct LocalAgent {
        child: std::process::Child,
    }

    impl LocalAgent {
        fn start() -> Self {
            use std::process::Stdio;
            let mut child = std::process::Command::new("sh")
                .arg("-c")
                .arg(AGENT)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut greeting = [0u8; 14];
            child
                .stdout
                .as_mut()
                .unwrap()
                .read_exact(&mut greeting)
                .unwrap();
            assert_eq!(&greeting, b"runbook-agent\n");
            Self { child }
        }

        /// Sends one request and reads until both markers came, as the transport does.
        fn run(&mut self, host: &Host, command: &Command) -> Output {
            let nonce = nonce();
            let request = format!(
                "{nonce}\n{}\n{nonce}\n",
                with_prelude(host, command).unwrap()
            );
            let stdin = self.child.stdin.as_mut().unwrap();
            stdin.write_all(request.as_bytes()).unwrap();
            let (reply, _rx) = oneshot::channel();
            let mut job = AgentJob {
                nonce: nonce.clone(),
                stdout: Held::default(),
                stderr: Held::default(),
                deadline: None,
                reply,
            };
            let mut buf = [0u8; 1];
            while !job.stdout.held.ends_with(b"\n")
                || !String::from_utf8_lossy(&job.stdout.held).contains(&nonce)
            {
                let n = self.child.stdout.as_mut().unwrap().read(&mut buf).unwrap();
                assert!(n > 0, "the agent ended");
                job.stdout.push(&buf[..n]);
            }
            while job.status().is_none() {
                let n = self.child.stderr.as_mut().unwrap().read(&mut buf).unwrap();
                assert!(n > 0, "the agent ended");
                job.stderr.push(&buf[..n]);
            }
            let status = job.status().unwrap();
            let out_marker = format!("\n{nonce} {status}\n").len();
            Output {
                exit_code: Some(status),
                stdout: job.stdout.into_string(out_marker),
                stderr: job.stderr.into_string(nonce.len() + 2),
                timed_out: false,
            }
        }

        /// Closes its stdin (as a closed channel does) and waits for it to exit.
        fn close(mut self) {
            drop(self.child.stdin.take());
            self.child.wait().unwrap();
        }
    }

    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.split(") ").nth(1).unwrap_or("").starts_with('Z'))
    }

    fn wait_gone(pid: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    #[test]
    fn the_agent_runs_commands_in_turn_with_separate_streams_and_exact_status() {
        let mut agent = LocalAgent::start();
        let command = Command {
            script: "printf 'out %s' \"$RUNBOOK_STEP\"; printf 'err\\n' >&2; exit 3".into(),
            env: vec![("RUNBOOK_STEP".into(), "it's\nmultiline".into())],
            timeout: None,
        };
        let out = agent.run(&host(), &command);
        assert_eq!(out.exit_code, Some(3));
        assert_eq!(out.stdout, "out it's\nmultiline");
        assert_eq!(out.stderr, "err\n");
        let quiet = Command {
            script: "true".into(),
            env: vec![],
            timeout: None,
        };
        let out = agent.run(&host(), &quiet);
        assert_eq!(
            (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(0), "", "")
        );
        // A script that ends without a newline, exits from a function, or is killed.
        let killed = Command {
            script: "f() { exit 7; }; printf x; f".into(),
            env: vec![],
            timeout: None,
        };
        let out = agent.run(&host(), &killed);
        assert_eq!((out.exit_code, out.stdout.as_str()), (Some(7), "x"));
        let out = agent.run(
            &host(),
            &Command {
                script: "echo before; kill -TERM $$; echo after".into(),
                env: vec![],
                timeout: None,
            },
        );
        // `$$` is the command's own shell: killing it ends the command, not the agent.
        assert_eq!(out.exit_code, Some(128 + 15));
        assert_eq!(out.stdout, "before\n");
        agent.close();
    }

    #[test]
    fn the_agent_enters_the_workdir_or_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut host = host();
        host.workdir = Some(dir.path().join("it's here"));
        std::fs::create_dir(host.workdir.as_ref().unwrap()).unwrap();
        let pwd = Command {
            script: "pwd".into(),
            env: vec![],
            timeout: None,
        };
        let mut agent = LocalAgent::start();
        let out = agent.run(&host, &pwd);
        assert_eq!(out.exit_code, Some(0));
        assert!(
            out.stdout.trim_end().ends_with("/it's here"),
            "{}",
            out.stdout
        );
        host.workdir = Some(dir.path().join("missing"));
        let out = agent.run(&host, &pwd);
        assert_eq!(out.exit_code, Some(1));
        assert!(out.stdout.is_empty());
        assert!(
            out.stderr.contains("cannot enter the workdir"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("missing (runbook_workdir)"),
            "{}",
            out.stderr
        );
        agent.close();
    }

    #[test]
    fn closing_the_agent_mid_command_kills_the_command_and_its_children() {
        let mut agent = LocalAgent::start();
        let nonce = nonce();
        let script = "sleep 300 & echo $!; sleep 300";
        let request = format!("{nonce}\n{script}\n{nonce}\n");
        agent
            .child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(request.as_bytes())
            .unwrap();
        let mut line = Vec::new();
        let mut buf = [0u8; 1];
        while !line.ends_with(b"\n") {
            agent
                .child
                .stdout
                .as_mut()
                .unwrap()
                .read_exact(&mut buf)
                .unwrap();
            line.push(buf[0]);
        }
        let background = String::from_utf8(line).unwrap().trim().to_owned();
        assert!(alive(&background));
        agent.close();
        assert!(wait_gone(&background), "sleep {background} still runs");
    }

    #[test]
    fn what_a_finished_command_left_running_outlives_the_agent() {
        let mut agent = LocalAgent::start();
        let command = Command {
            script: "sleep 300 >/dev/null 2>&1 & echo $!".into(),
            env: vec![],
            timeout: None,
        };
        let out = agent.run(&host(), &command);
        agent.close();
        let background = out.stdout.trim();
        std::thread::sleep(Duration::from_millis(200));
        let survived = alive(background);
        let _ = std::process::Command::new("kill").arg(background).status();
        assert!(survived, "sleep {background} was killed");
    }

    #[test]
    fn the_inventory_user_is_the_remote_user() {
        let mut host = host();
        host.user = Some("deploy".into());
        assert_eq!(remote_user(&host).unwrap(), "deploy");
    }
}
