//! The run journal: an append-only JSONL file whose lines are chained by SHA-256.
//!
//! This module owns the durable bytes of a run's checkpoints (SPEC §6) and nothing about
//! their meaning: callers append any JSON object, and reading hands the objects back with
//! a verdict on the file's integrity. Each line carries `"prev"`, the lowercase hex SHA-256
//! of the previous line's bytes (of the empty string for the first line), so a changed,
//! removed or reordered line breaks the chain. `append` returns only once the line is on
//! disk (fsync): the executor writes its intent before acting on it.
//!
//! Sharing between concurrent appenders: [`Journal`] commits in groups. While one appender
//! writes and fsyncs, the others' lines queue up, and the next round writes them all with
//! a single fsync; each caller is answered only after its own line is durable. There is no
//! writer thread: the appender that finds the writer free does the round itself (see
//! `Shared::lead`), which saves two thread wake-ups per line. A plain mutex around the
//! writer would instead pay one fsync per line, one caller at a time.

use std::fmt;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, mpsc};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// The field the writer adds to every event.
const PREV: &str = "prev";

/// Appends events to one journal file, keeping the hash chain.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    /// Hex SHA-256 of the last line written (without its newline).
    last_hash: String,
    sync: bool,
    /// Set after a failed write or fsync: what reached the disk is then unknown, so the
    /// chain cannot be continued safely from this handle (reopen with `open_append`).
    poisoned: bool,
}

impl JournalWriter {
    /// Creates a new journal (fails if it exists).
    pub fn create(path: &Path) -> io::Result<JournalWriter> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        file.sync_all()?;
        sync_parent_dir(path)?;
        Ok(JournalWriter::new(file, &[]))
    }

    /// Opens an existing journal for appending after [`read`]: the chain continues from the
    /// last complete line. A torn last line is first truncated away so the chain stays
    /// valid. Damage earlier in the file is left as it is (and still reported by `read`):
    /// new lines chain onto the bytes that are actually there.
    pub fn open_append(path: &Path) -> io::Result<JournalWriter> {
        let bytes = std::fs::read(path)?;
        let good_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let file = OpenOptions::new().append(true).open(path)?;
        if good_len < bytes.len() {
            file.set_len(good_len as u64)?;
            file.sync_all()?;
        }
        let complete = &bytes[..good_len];
        let last_line = complete.strip_suffix(b"\n").map_or(&[][..], |body| {
            match body.iter().rposition(|&b| b == b'\n') {
                Some(i) => &body[i + 1..],
                None => body,
            }
        });
        Ok(JournalWriter::new(file, last_line))
    }

    fn new(file: File, last_line: &[u8]) -> JournalWriter {
        JournalWriter {
            file,
            last_hash: sha256_hex(last_line),
            sync: true,
            poisoned: false,
        }
    }

    /// Appends one event (any `Serialize` producing a JSON object without a `prev` field),
    /// adds `prev`, and fsyncs before returning.
    pub fn append<T: Serialize>(&mut self, event: &T) -> io::Result<()> {
        let body = encode(event)?;
        self.append_encoded(&[body])
    }

    /// Turns fsync off or on. Off is only for the benchmark comparing the two: without it a
    /// power cut can lose lines the caller believes written.
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
    }

    /// Writes already encoded events (see [`encode`]) with one write and one fsync.
    fn append_encoded(&mut self, bodies: &[String]) -> io::Result<()> {
        self.write_encoded(bodies, self.sync)
    }

    /// Writes already encoded events; fsyncs only if `sync` (a later fsync covers them).
    fn write_encoded(&mut self, bodies: &[String], sync: bool) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(
                "the journal had a failed write; reopen it before appending",
            ));
        }
        let mut buf = Vec::with_capacity(bodies.iter().map(|b| b.len() + 80).sum());
        let mut hash = self.last_hash.clone();
        for body in bodies {
            let start = buf.len();
            seal(body, &hash, &mut buf);
            hash = sha256_hex(&buf[start..]);
            buf.push(b'\n');
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        match written {
            Ok(()) => {
                self.last_hash = hash;
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

/// Serializes an event, checking it is a JSON object that leaves `prev` to the writer.
/// Done on the caller's thread, outside the writer's lock, so the committing appender only
/// hashes and writes.
fn encode<T: Serialize>(event: &T) -> io::Result<String> {
    /// Reads just the `prev` key, skipping the values of all the others.
    #[derive(Deserialize)]
    struct Probe {
        prev: Option<serde::de::IgnoredAny>,
    }
    let body = serde_json::to_string(event).map_err(|e| invalid(&e.to_string()))?;
    // The newline check guards against raw JSON passed through verbatim by a custom
    // `Serialize`: a line must stay one line.
    if !body.starts_with('{') || !body.ends_with('}') || body.contains('\n') {
        return Err(invalid(
            "a journal event must serialize to a one-line JSON object",
        ));
    }
    let probe: Probe = serde_json::from_str(&body).map_err(|e| invalid(&e.to_string()))?;
    if probe.prev.is_some() {
        return Err(invalid(
            "a journal event must not have its own `prev` field",
        ));
    }
    Ok(body)
}

/// Appends `body` with `"prev":"<hash>"` added as its last field, keeping the event's own
/// field order (a `serde_json::Value` would sort the keys).
fn seal(body: &str, prev_hash: &str, out: &mut Vec<u8>) {
    // `encode` checked that `body` is a compact JSON object: it ends with `}`.
    let open = &body[..body.len() - 1];
    out.extend_from_slice(open.as_bytes());
    if open != "{" {
        out.push(b',');
    }
    out.extend_from_slice(format!("\"{PREV}\":\"{prev_hash}\"}}").as_bytes());
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned())
}

/// Lowercase hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Makes a new directory entry durable (the file's existence, not only its contents).
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// What [`read`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRead {
    pub events: Vec<serde_json::Value>,
    pub integrity: Integrity,
}

/// The verdict on a journal's bytes. When there are several faults, the first `Broken`
/// wins over a torn tail: tampering matters more than a power cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Integrity {
    Intact,
    /// The last line was cut short (power cut): ignored, nothing else is wrong.
    TornTail {
        line: usize,
    },
    /// Damage that is not a torn tail: a line that is not JSON in the middle, or a `prev`
    /// that does not match (tampering, a removed or reordered line). `line` is 1-based: the
    /// bad line, or for a chain mismatch the line before the `prev` that disagrees (the
    /// edited line when one was changed in place). Events after it are still returned.
    Broken {
        line: usize,
        reason: String,
    },
}

/// Reads a journal and checks its chain. A missing file is an `io::ErrorKind::NotFound`.
/// A last line without its newline is torn (the write never finished) and left out.
pub fn read(path: &Path) -> io::Result<JournalRead> {
    let bytes = std::fs::read(path)?;
    Ok(parse(&bytes))
}

fn parse(bytes: &[u8]) -> JournalRead {
    let mut events = Vec::new();
    let mut broken: Option<(usize, String)> = None;
    let mut expected = sha256_hex(&[]);
    let mut lines = bytes.split(|&b| b == b'\n').enumerate().peekable();
    let mut torn = None;
    while let Some((i, line)) = lines.next() {
        let number = i + 1;
        if lines.peek().is_none() {
            // After the last `\n`: empty when the file ends cleanly, else a torn line.
            if !line.is_empty() {
                torn = Some(number);
            }
            break;
        }
        let fault = match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(mut map)) => {
                let fault = match map.remove(PREV) {
                    Some(serde_json::Value::String(prev)) if prev == expected => None,
                    // The chain breaks between two lines; blame the earlier one, which is
                    // the changed line when a line was edited in place.
                    Some(serde_json::Value::String(_)) if number == 1 => Some((
                        1,
                        "line 1 does not start the chain: lines before it were removed".to_owned(),
                    )),
                    Some(serde_json::Value::String(_)) => Some((
                        number - 1,
                        format!(
                            "line {} does not match the hash recorded in line {number}: \
                             it was changed, or lines after it were removed or reordered",
                            number - 1
                        ),
                    )),
                    Some(_) => Some((number, "its `prev` field is not a string".to_owned())),
                    None => Some((number, "it has no `prev` field".to_owned())),
                };
                events.push(serde_json::Value::Object(map));
                fault
            }
            Ok(_) => Some((number, "it is not a JSON object".to_owned())),
            Err(e) => Some((number, format!("it is not valid JSON ({e})"))),
        };
        if let Some(fault) = fault {
            broken.get_or_insert(fault);
        }
        expected = sha256_hex(line);
    }
    let integrity = match (broken, torn) {
        (Some((line, reason)), _) => Integrity::Broken { line, reason },
        (None, Some(line)) => Integrity::TornTail { line },
        (None, None) => Integrity::Intact,
    };
    JournalRead { events, integrity }
}

/// Where a waiting appender is answered.
enum Reply {
    Async(oneshot::Sender<io::Result<()>>),
    Blocking(mpsc::SyncSender<io::Result<()>>),
}

impl Reply {
    fn send(self, result: io::Result<()>) {
        // A caller that stopped waiting (cancelled task) needs no answer.
        let _ = match self {
            Reply::Async(tx) => tx.send(result).map_err(drop),
            Reply::Blocking(tx) => tx.send(result).map_err(drop),
        };
    }
}

struct Request {
    body: String,
    /// `None`: a lazy line, made durable by the next durable one (or when the journal closes).
    reply: Option<Reply>,
}

/// A journal shared by concurrent appenders (cheap to clone); see the module documentation
/// for how they commit in groups. Lines still unsynced when the last clone is dropped are
/// synced then.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lines waiting to be written, in the order they were appended.
    queue: Mutex<Vec<Request>>,
    /// Held by the appender writing the queue (the leader) for one write and one fsync.
    writer: Mutex<Writing>,
}

struct Writing {
    writer: JournalWriter,
    /// Lazy lines were written since the last fsync.
    unsynced: bool,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Journal")
    }
}

impl Journal {
    /// Shares `writer` between appenders.
    #[must_use]
    pub fn share(writer: JournalWriter) -> Journal {
        Journal {
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                writer: Mutex::new(Writing {
                    writer,
                    unsynced: false,
                }),
            }),
        }
    }

    /// Appends one event and returns once it is durable.
    pub async fn append<T: Serialize>(&self, event: &T) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.shared.push(encode(event)?, Some(Reply::Async(tx)));
        rx.await.map_err(|_| writer_gone())?
    }

    /// Appends one event without waiting for its fsync: it is written at once, in order, and
    /// becomes durable with the next [`Journal::append`] (or when the journal closes). For
    /// lines nothing outside the tool acts on before the next durable line: the executor
    /// uses it for a step's outcome, whose consequence (the next command) is journaled
    /// durably first. A failed write poisons the writer, so the next `append` reports it.
    pub fn append_lazy<T: Serialize>(&self, event: &T) -> io::Result<()> {
        self.shared.push(encode(event)?, None);
        Ok(())
    }

    /// Same as [`Journal::append`], for plain threads (it blocks until the line is durable).
    pub fn append_blocking<T: Serialize>(&self, event: &T) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.shared.push(encode(event)?, Some(Reply::Blocking(tx)));
        rx.recv().map_err(|_| writer_gone())?
    }
}

impl Shared {
    /// Queues a line, then writes the queue unless another appender is writing already.
    fn push(&self, body: String, reply: Option<Reply>) {
        lock(&self.queue).push(Request { body, reply });
        self.lead();
    }

    /// Group commit without a thread of its own: whoever finds the writer free takes every
    /// queued line and writes them with one write and (if anyone waits) one fsync, then
    /// answers them all. Who finds it busy leaves its line to the leader, who looks at the
    /// queue again after letting go of the writer, so no line is left behind. The leader
    /// pays one fsync on its own thread, which, unlike handing the line to a writer thread,
    /// costs no thread wake-ups on the way there and back: on a busy machine those cost
    /// as much as the fsync.
    fn lead(&self) {
        loop {
            {
                let mut writing = match self.writer.try_lock() {
                    Ok(writing) => writing,
                    Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(TryLockError::WouldBlock) => return,
                };
                let batch = std::mem::take(&mut *lock(&self.queue));
                if !batch.is_empty() {
                    writing.commit(batch);
                }
            }
            if lock(&self.queue).is_empty() {
                return;
            }
        }
    }
}

impl Writing {
    fn commit(&mut self, batch: Vec<Request>) {
        let (bodies, replies): (Vec<String>, Vec<Option<Reply>>) =
            batch.into_iter().map(|r| (r.body, r.reply)).unzip();
        let replies: Vec<Reply> = replies.into_iter().flatten().collect();
        let sync = self.writer.sync && !replies.is_empty();
        let written = self.writer.write_encoded(&bodies, sync);
        match written {
            Ok(()) => {
                self.unsynced = !sync;
                for reply in replies {
                    reply.send(Ok(()));
                }
            }
            Err(e) => {
                let (kind, message) = (e.kind(), e.to_string());
                for r in replies {
                    r.send(Err(io::Error::new(kind, message.clone())));
                }
            }
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let writing = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if writing.unsynced && writing.writer.sync {
            let _ = writing.writer.file.sync_data();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn writer_gone() -> io::Error {
    io::Error::other("the journal stopped before the line was written")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(path: &Path, lines: &[String]) {
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(path, text).unwrap();
    }

    fn journal_with(n: usize) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut w = JournalWriter::create(&path).unwrap();
        for i in 0..n {
            w.append(&json!({"kind": "step_started", "n": i})).unwrap();
        }
        (dir, path)
    }

    #[test]
    fn chain_stays_valid_after_many_appends() {
        let (_dir, path) = journal_with(500);
        let read = read(&path).unwrap();
        assert_eq!(read.integrity, Integrity::Intact);
        assert_eq!(read.events.len(), 500);
        assert_eq!(read.events[42], json!({"kind": "step_started", "n": 42}));
    }

    #[test]
    fn first_line_chains_to_the_hash_of_the_empty_string() {
        let (_dir, path) = journal_with(1);
        assert_eq!(
            lines(&path)[0],
            r#"{"kind":"step_started","n":0,"prev":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}"#
        );
    }

    #[test]
    fn event_field_order_is_kept() {
        #[derive(Serialize)]
        struct Ev {
            z: u8,
            a: u8,
        }
        let (_dir, path) = journal_with(0);
        let mut w = JournalWriter::open_append(&path).unwrap();
        w.append(&Ev { z: 1, a: 2 }).unwrap();
        w.append(&json!({})).unwrap();
        let l = lines(&path);
        assert!(l[0].starts_with(r#"{"z":1,"a":2,"prev":""#), "{}", l[0]);
        assert!(l[1].starts_with(r#"{"prev":""#), "{}", l[1]);
        assert_eq!(read(&path).unwrap().integrity, Integrity::Intact);
    }

    #[test]
    fn events_that_are_not_objects_or_carry_prev_are_refused() {
        let (_dir, path) = journal_with(0);
        let mut w = JournalWriter::open_append(&path).unwrap();
        for bad in [json!([1]), json!("x"), json!({"prev": "forged"})] {
            let err = w.append(&bad).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        w.append(&json!({"ok": true})).unwrap();
        assert_eq!(read(&path).unwrap().integrity, Integrity::Intact);
    }

    #[test]
    fn tampered_middle_line_is_broken_at_that_line() {
        let (_dir, path) = journal_with(5);
        let mut l = lines(&path);
        l[2] = l[2].replace(r#""n":2"#, r#""n":9"#);
        write_lines(&path, &l);
        let read = read(&path).unwrap();
        // Line 3 still parses; line 4's `prev` no longer matches it.
        assert!(matches!(read.integrity, Integrity::Broken { line: 3, .. }));
        assert_eq!(read.events.len(), 5);
    }

    #[test]
    fn tampered_first_line_is_broken_at_line_1() {
        let (_dir, path) = journal_with(3);
        let mut l = lines(&path);
        l[0] = l[0].replace(r#""n":0"#, r#""n":7"#);
        write_lines(&path, &l);
        assert!(matches!(
            read(&path).unwrap().integrity,
            Integrity::Broken { line: 1, .. }
        ));
    }

    #[test]
    fn line_that_is_not_json_in_the_middle_is_broken_at_that_line() {
        let (_dir, path) = journal_with(4);
        let mut l = lines(&path);
        l[1] = "garbage".to_owned();
        write_lines(&path, &l);
        let read = read(&path).unwrap();
        let Integrity::Broken { line, reason } = read.integrity else {
            panic!("expected Broken, got {:?}", read.integrity)
        };
        assert_eq!(line, 2);
        assert!(reason.contains("not valid JSON"), "{reason}");
        assert_eq!(read.events.len(), 3, "events after the damage are returned");
    }

    #[test]
    fn removed_line_is_detected() {
        let (_dir, path) = journal_with(5);
        let mut l = lines(&path);
        l.remove(2);
        write_lines(&path, &l);
        let read = read(&path).unwrap();
        assert!(matches!(read.integrity, Integrity::Broken { line: 2, .. }));
        assert_eq!(read.events.len(), 4);
    }

    #[test]
    fn removed_first_line_is_detected() {
        let (_dir, path) = journal_with(3);
        let mut l = lines(&path);
        l.remove(0);
        write_lines(&path, &l);
        assert!(matches!(
            read(&path).unwrap().integrity,
            Integrity::Broken { line: 1, .. }
        ));
    }

    #[test]
    fn reordered_lines_are_detected() {
        let (_dir, path) = journal_with(4);
        let mut l = lines(&path);
        l.swap(1, 2);
        write_lines(&path, &l);
        assert!(matches!(
            read(&path).unwrap().integrity,
            Integrity::Broken { line: 1, .. }
        ));
    }

    #[test]
    fn torn_tail_is_ignored_and_open_append_continues_a_valid_chain() {
        let (_dir, path) = journal_with(3);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"kind":"step_fin"#).unwrap();
        drop(f);

        let torn = read(&path).unwrap();
        assert_eq!(torn.integrity, Integrity::TornTail { line: 4 });
        assert_eq!(torn.events.len(), 3);

        let mut w = JournalWriter::open_append(&path).unwrap();
        w.append(&json!({"kind": "resumed"})).unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.integrity, Integrity::Intact);
        assert_eq!(read.events.len(), 4);
        assert_eq!(read.events[3], json!({"kind": "resumed"}));
    }

    #[test]
    fn complete_last_line_without_newline_is_torn() {
        let (_dir, path) = journal_with(2);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.trim_end()).unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.integrity, Integrity::TornTail { line: 2 });
        assert_eq!(read.events.len(), 1);
    }

    #[test]
    fn open_append_on_an_empty_journal_starts_the_chain() {
        let (_dir, path) = journal_with(0);
        std::fs::write(&path, b"{\"half").unwrap();
        let mut w = JournalWriter::open_append(&path).unwrap();
        w.append(&json!({"a": 1})).unwrap();
        assert_eq!(read(&path).unwrap().integrity, Integrity::Intact);
    }

    #[test]
    fn create_refuses_an_existing_journal_and_read_reports_a_missing_one() {
        let (dir, path) = journal_with(1);
        assert_eq!(
            JournalWriter::create(&path).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let missing = read(&dir.path().join("nope.jsonl")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn unsynced_writer_keeps_the_same_chain() {
        let (_dir, path) = journal_with(0);
        let mut w = JournalWriter::open_append(&path).unwrap();
        w.set_sync(false);
        for i in 0..50 {
            w.append(&json!({"i": i})).unwrap();
        }
        assert_eq!(read(&path).unwrap().integrity, Integrity::Intact);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn lazy_lines_land_in_order_before_the_next_durable_one() {
        let (_dir, path) = journal_with(0);
        let journal = Journal::share(JournalWriter::open_append(&path).unwrap());
        journal.append_lazy(&json!({"n": 1})).unwrap();
        journal.append_lazy(&json!({"n": 2})).unwrap();
        journal.append(&json!({"n": 3})).await.unwrap();
        let read = read(&path).unwrap();
        assert_eq!(read.integrity, Integrity::Intact);
        let ns: Vec<u64> = read
            .events
            .iter()
            .map(|e| e["n"].as_u64().unwrap())
            .collect();
        assert_eq!(ns, [1, 2, 3]);
    }

    #[test]
    fn a_lazy_line_is_in_the_file_at_once_so_a_killed_process_keeps_it() {
        let (_dir, path) = journal_with(0);
        let journal = Journal::share(JournalWriter::open_append(&path).unwrap());
        journal.append_lazy(&json!({"n": 1})).unwrap();
        assert_eq!(read(&path).unwrap().events, vec![json!({"n": 1})]);
    }

    #[tokio::test]
    async fn concurrent_appends_from_8_tasks_all_land_on_a_valid_chain() {
        let (_dir, path) = journal_with(0);
        let journal = Journal::share(JournalWriter::open_append(&path).unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let journal = journal.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        journal
                            .append(&json!({"task": task, "i": i}))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let read = read(&path).unwrap();
        assert_eq!(read.integrity, Integrity::Intact);
        assert_eq!(read.events.len(), 400);
        for task in 0..8 {
            let mine: Vec<_> = read
                .events
                .iter()
                .filter(|e| e["task"] == task)
                .map(|e| e["i"].as_u64().unwrap())
                .collect();
            assert_eq!(mine, (0..50).collect::<Vec<_>>(), "task {task} in order");
        }
    }

    #[test]
    fn concurrent_blocking_appends_from_8_threads_all_land_on_a_valid_chain() {
        let (_dir, path) = journal_with(0);
        let journal = Journal::share(JournalWriter::open_append(&path).unwrap());
        std::thread::scope(|s| {
            for t in 0..8 {
                let journal = journal.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        journal.append_blocking(&json!({"t": t, "i": i})).unwrap();
                    }
                });
            }
        });
        let read = read(&path).unwrap();
        assert_eq!(read.integrity, Integrity::Intact);
        assert_eq!(read.events.len(), 200);
    }

    #[tokio::test]
    async fn shared_journal_refuses_a_bad_event_without_stopping() {
        let (_dir, path) = journal_with(0);
        let journal = Journal::share(JournalWriter::open_append(&path).unwrap());
        assert!(journal.append(&json!(3)).await.is_err());
        journal.append(&json!({"ok": 1})).await.unwrap();
        assert_eq!(read(&path).unwrap().events, vec![json!({"ok": 1})]);
    }
}
