//! Run locks: `STATE_DIR/locks/NAME.lock`, so that one runbook is executed by one process
//! at a time (SPEC §6).
//!
//! The lock is a small JSON file saying who holds it, so a refused operator learns who to
//! call. Taking it is atomic without any lock daemon: the info is written to a temporary
//! file, which is then hard-linked to the lock path; `link` fails if the path exists, so of
//! two racing processes exactly one wins. A lock whose pid is gone on this same host is
//! stale and taken over by renaming a fresh file over it. Two processes may find the same
//! stale lock at once, so the takeover runs under an `flock` on a side file
//! (`.NAME.takeover`, released by the kernel if its holder dies) and only replaces the lock
//! if it still holds the very bytes found stale. A lock that cannot be parsed is never
//! taken: it is reported as held by "unknown".

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::host_info;
use crate::journal::sync_parent_dir;

/// Who holds a lock, as stored in the lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    pub run_id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub reason: Option<String>,
}

impl LockInfo {
    /// Stands for the holder of a lock file that cannot be read.
    fn unknown(reason: String) -> LockInfo {
        let unknown = || "unknown".to_owned();
        LockInfo {
            run_id: unknown(),
            user: unknown(),
            host: unknown(),
            pid: 0,
            started_at: unknown(),
            reason: Some(reason),
        }
    }
}

/// A held lock. Dropping it (or [`LockGuard::release`]) removes the lock file, unless the
/// file is no longer this guard's own.
#[derive(Debug)]
pub struct LockGuard {
    path: PathBuf,
    /// The exact bytes written, to recognise our own file before removing it.
    bytes: Vec<u8>,
    info: LockInfo,
    released: bool,
}

impl LockGuard {
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the lock file now, reporting failure (dropping the guard ignores it).
    pub fn release(mut self) -> io::Result<()> {
        self.released = true;
        self.remove()
    }

    fn remove(&self) -> io::Result<()> {
        match fs::read(&self.path) {
            Ok(bytes) if bytes == self.bytes => {
                fs::remove_file(&self.path)?;
                sync_parent_dir(&self.path)
            }
            // Taken over or removed by hand: not ours to delete.
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.remove();
        }
    }
}

/// How a lock was obtained.
#[derive(Debug)]
pub enum Acquired {
    Fresh(LockGuard),
    /// The previous holder's process is gone from this host; the caller should warn.
    TookOverStale {
        guard: LockGuard,
        previous: LockInfo,
    },
}

impl Acquired {
    pub fn into_guard(self) -> LockGuard {
        match self {
            Acquired::Fresh(guard) | Acquired::TookOverStale { guard, .. } => guard,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Boxed to keep `Result<_, LockError>` small (clippy::result_large_err) for callers.
    #[error("{}", held_message(.0))]
    Held(Box<LockInfo>),
    #[error("cannot take the lock: {0}")]
    Io(#[from] io::Error),
}

fn held_message(info: &LockInfo) -> String {
    let mut msg = format!(
        "the lock is held by run {} ({}@{}, pid {}, since {})",
        info.run_id, info.user, info.host, info.pid, info.started_at
    );
    if let Some(reason) = &info.reason {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    msg
}

/// Takes `lock_dir/NAME.lock` for the holder `info` (see the module documentation).
/// `lock_dir` is created if missing.
pub fn acquire(lock_dir: &Path, name: &str, info: LockInfo) -> Result<Acquired, LockError> {
    let lock_path = lock_path(lock_dir, name)?;
    fs::create_dir_all(lock_dir)?;
    let mut bytes = serde_json::to_vec_pretty(&info).map_err(io::Error::other)?;
    bytes.push(b'\n');
    let tmp = TempFile::write(lock_dir, name, &bytes)?;
    let guard = |path: PathBuf, bytes: Vec<u8>, info: LockInfo| LockGuard {
        path,
        bytes,
        info,
        released: false,
    };

    // Each round either wins, gives up, or saw the lock change under it (released, or
    // taken over by someone else); a handful of rounds is plenty.
    for _ in 0..16 {
        match fs::hard_link(&tmp.path, &lock_path) {
            Ok(()) => {
                sync_parent_dir(&lock_path)?;
                return Ok(Acquired::Fresh(guard(lock_path, bytes, info)));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        let existing = match fs::read(&lock_path) {
            Ok(existing) => existing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        let holder = parse_lock(&lock_path, &existing);
        if !is_stale(&holder) {
            return Err(LockError::Held(Box::new(holder)));
        }
        if take_over(lock_dir, name, &tmp.path, &lock_path, &existing)? {
            return Ok(Acquired::TookOverStale {
                guard: guard(lock_path, bytes, info),
                previous: holder,
            });
        }
    }
    Err(io::Error::other(format!("{} keeps changing", lock_path.display())).into())
}

/// Who holds `lock_dir/NAME.lock`, if anyone. An unreadable lock file is reported as held by
/// "unknown", as `acquire` does.
pub fn read_lock(lock_dir: &Path, name: &str) -> io::Result<Option<LockInfo>> {
    let path = lock_path(lock_dir, name)?;
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(parse_lock(&path, &bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn lock_path(lock_dir: &Path, name: &str) -> io::Result<PathBuf> {
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.chars().all(|c| !c.is_control());
    if plain {
        Ok(lock_dir.join(format!("{name}.lock")))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} cannot name a lock file"),
        ))
    }
}

fn parse_lock(path: &Path, bytes: &[u8]) -> LockInfo {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        LockInfo::unknown(format!(
            "{} cannot be parsed ({e}); if no run holds it, remove it by hand",
            path.display()
        ))
    })
}

/// A lock is stale when it was taken on this host by a process that no longer exists.
/// Anything we cannot check (another host, no `/proc`) counts as alive.
pub fn is_stale(holder: &LockInfo) -> bool {
    holder.host == host_info::hostname() && holder.pid != 0 && !pid_alive(holder.pid)
}

fn pid_alive(pid: u32) -> bool {
    !Path::new("/proc/self").exists() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Replaces the lock with our temp file if it still holds `stale` (compared under the
/// takeover flock, so two processes cannot both replace the same stale lock). Returns
/// whether it did.
fn take_over(
    lock_dir: &Path,
    name: &str,
    tmp: &Path,
    lock_path: &Path,
    stale: &[u8],
) -> io::Result<bool> {
    let side = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_dir.join(format!(".{name}.takeover")))?;
    side.lock()?;
    let replaced = match fs::read(lock_path) {
        Ok(current) if current == stale => {
            fs::rename(tmp, lock_path)?;
            sync_parent_dir(lock_path)?;
            true
        }
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    side.unlock()?;
    Ok(replaced)
}

/// The lock's contents, written and synced beside the lock; removed on drop (a no-op once
/// it was renamed into place).
struct TempFile {
    path: PathBuf,
}

impl TempFile {
    fn write(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<TempFile> {
        // Unique per process and per call, as threads of one process may race too.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}.lock.{}.{n}.tmp", std::process::id()));
        let tmp = TempFile { path };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp.path)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        Ok(tmp)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::thread;

    fn info(run_id: &str, pid: u32) -> LockInfo {
        LockInfo {
            run_id: run_id.to_owned(),
            user: "ops".to_owned(),
            host: host_info::hostname(),
            pid,
            started_at: "2026-04-14T09:30:05.123Z".to_owned(),
            reason: None,
        }
    }

    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn write_lock(dir: &Path, name: &str, info: &LockInfo) {
        fs::write(
            dir.join(format!("{name}.lock")),
            serde_json::to_vec(info).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn fresh_lock_records_its_holder_and_is_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let me = info("r1", std::process::id());
        let acquired = acquire(&locks, "failover", me.clone()).unwrap();
        assert!(matches!(acquired, Acquired::Fresh(_)));
        assert_eq!(read_lock(&locks, "failover").unwrap(), Some(me));
        drop(acquired);
        assert_eq!(read_lock(&locks, "failover").unwrap(), None);
        let left: Vec<_> = fs::read_dir(&locks)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "no temp files left behind: {left:?}");
    }

    #[test]
    fn lock_held_by_the_current_pid_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let _guard = acquire(dir.path(), "failover", info("r1", std::process::id())).unwrap();
        match acquire(dir.path(), "failover", info("r2", std::process::id())) {
            Err(LockError::Held(holder)) => assert_eq!(holder.run_id, "r1"),
            other => panic!("expected Held, got {other:?}"),
        }
    }

    #[test]
    fn two_racing_acquirers_exactly_one_wins_and_the_other_sees_the_winner() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let barrier = Arc::new(Barrier::new(2));
            let results: Vec<_> = thread::scope(|s| {
                let handles: Vec<_> = ["a", "b"]
                    .into_iter()
                    .map(|run| {
                        let barrier = Arc::clone(&barrier);
                        let dir = dir.path();
                        s.spawn(move || {
                            barrier.wait();
                            (run, acquire(dir, "failover", info(run, std::process::id())))
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<_> = results
                .iter()
                .filter(|(_, r)| matches!(r, Ok(Acquired::Fresh(_))))
                .map(|(run, _)| *run)
                .collect();
            assert_eq!(winners.len(), 1, "{results:?}");
            let loser = results.iter().find(|(run, _)| *run != winners[0]).unwrap();
            match &loser.1 {
                Err(LockError::Held(holder)) => assert_eq!(holder.run_id, winners[0]),
                other => panic!("expected Held, got {other:?}"),
            }
        }
    }

    #[test]
    fn lock_of_a_dead_pid_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let old = info("old", dead_pid());
        write_lock(dir.path(), "failover", &old);
        let me = info("new", std::process::id());
        match acquire(dir.path(), "failover", me.clone()) {
            Ok(Acquired::TookOverStale { guard, previous }) => {
                assert_eq!(previous, old);
                assert_eq!(guard.info(), &me);
                assert_eq!(read_lock(dir.path(), "failover").unwrap(), Some(me));
            }
            other => panic!("expected TookOverStale, got {other:?}"),
        }
        assert_eq!(read_lock(dir.path(), "failover").unwrap(), None);
    }

    #[test]
    fn racing_takeovers_of_one_stale_lock_leave_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        write_lock(dir.path(), "failover", &info("old", dead_pid()));
        let barrier = Barrier::new(4);
        let results: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let (barrier, dir) = (&barrier, dir.path());
                    s.spawn(move || {
                        barrier.wait();
                        acquire(dir, "failover", info(&format!("r{i}"), std::process::id()))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let took: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
        assert_eq!(took.len(), 1, "{results:?}");
        assert!(matches!(took[0], Ok(Acquired::TookOverStale { .. })));
        let held = results
            .iter()
            .filter(|r| matches!(r, Err(LockError::Held(h)) if h.run_id != "old"))
            .count();
        assert_eq!(held, 3, "{results:?}");
    }

    #[test]
    fn lock_of_a_dead_pid_on_another_host_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let other = LockInfo {
            host: "elsewhere.invalid".to_owned(),
            ..info("old", dead_pid())
        };
        write_lock(dir.path(), "failover", &other);
        match acquire(dir.path(), "failover", info("new", std::process::id())) {
            Err(LockError::Held(holder)) => assert_eq!(*holder, other),
            other => panic!("expected Held, got {other:?}"),
        }
    }

    #[test]
    fn unparsable_lock_is_held_by_unknown_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failover.lock");
        fs::write(&path, "not json").unwrap();
        let err = acquire(dir.path(), "failover", info("new", std::process::id())).unwrap_err();
        let LockError::Held(holder) = &err else {
            panic!("expected Held, got {err:?}")
        };
        assert_eq!(holder.user, "unknown");
        assert!(err.to_string().contains("cannot be parsed"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "not json");
        let read = read_lock(dir.path(), "failover").unwrap().unwrap();
        assert_eq!(read.run_id, "unknown");
    }

    #[test]
    fn guard_does_not_remove_a_lock_that_is_no_longer_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let guard = acquire(dir.path(), "failover", info("r1", std::process::id()))
            .unwrap()
            .into_guard();
        let other = info("r2", std::process::id());
        write_lock(dir.path(), "failover", &other);
        guard.release().unwrap();
        assert_eq!(read_lock(dir.path(), "failover").unwrap(), Some(other));
    }

    #[test]
    fn names_that_are_not_plain_file_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "../x", "a/b", ".hidden"] {
            let err = acquire(dir.path(), bad, info("r", 1)).unwrap_err();
            assert!(
                matches!(&err, LockError::Io(e) if e.kind() == io::ErrorKind::InvalidInput),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn held_error_names_the_holder() {
        let err = LockError::Held(Box::new(info("2026-04-14-a1", 4242)));
        let msg = err.to_string();
        assert!(msg.contains("2026-04-14-a1") && msg.contains("ops@") && msg.contains("4242"));
    }
}
