//! Process cleanup: every process an agent or a gate starts dies with it.
//!
//! A process group is not enough: `setsid` (or a double fork) leaves the group
//! and, once its parent exits, is re-parented away from whoever started it. Two
//! handles reach such a process anyway, and both are used:
//!
//! - **Ancestry.** The `agent-run` wrapper makes itself a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`), so orphans of the agent's tree are re-parented
//!   to the wrapper instead of to init, and stay its descendants in `/proc`.
//! - **A mark.** Every agent and gate runs with `GIT_SPRINT_MARK=<mark>` in its
//!   environment, which its descendants inherit; `/proc/<pid>/environ` shows it
//!   even after the wrapper or the orchestrator is gone (`kill -9`). A mark names
//!   one worker of one repository (or one gate run), so it never matches a
//!   stranger's process the way a reused pid can.
//!
//! [`terminate`] sends SIGTERM, waits a short grace on pidfds (no polling),
//! then SIGKILLs in rounds until nothing is found, so a process forking while it
//! is being killed is caught by the next round. A [`Ledger`] is a directory with
//! one file per running gate (its mark, pid and command), so an orchestrator
//! started after a crash finds and kills what the old one's gates left.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::procstat::Snapshot;

/// The environment variable that marks a process tree as one worker's or gate's.
pub(crate) const MARK_ENV: &str = "GIT_SPRINT_MARK";

/// How long processes get to exit on SIGTERM before they are SIGKILLed.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// SIGKILL rounds before giving up on a process tree that keeps forking.
const KILL_ROUNDS: usize = 20;

/// Makes this process a child subreaper: orphaned descendants are re-parented
/// to it rather than to init, so they stay findable as its descendants.
pub(crate) fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes plain integers and
    // touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reaps every child of this process that has ended, without blocking.
///
/// Only for a process whose every child is an orphan it adopted or one it
/// has already waited for (the wrapper after its agent ended): it would
/// otherwise take another waiter's exit status.
pub(crate) fn reap_ended_children() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`, a valid local.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
    }
}

/// This process's descendants that are still running.
pub(crate) fn descendants() -> Vec<u32> {
    Snapshot::take()
        .map(|s| s.running_descendants(std::process::id()))
        .unwrap_or_default()
}

/// Running processes (other than this one) whose environment carries `mark`.
pub(crate) fn marked(mark: &str) -> Vec<u32> {
    let needle = format!("{MARK_ENV}={mark}");
    let me = std::process::id();
    let Ok(snapshot) = Snapshot::take() else {
        return Vec::new();
    };
    let mut out: Vec<u32> = snapshot
        .running()
        .filter(|pid| *pid != me)
        .filter(|pid| {
            // Another user's process is unreadable: it is not ours to kill.
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Ends every process `find` returns: SIGTERM, up to `grace` for them to
/// exit, then SIGKILL in rounds (calling `find` again each time) until it
/// returns nothing. Returns how many distinct processes were signalled.
pub(crate) fn terminate(find: impl Fn() -> Vec<u32>, grace: Duration) -> usize {
    let first = find();
    if first.is_empty() {
        return 0;
    }
    let mut signalled: BTreeSet<u32> = first.iter().copied().collect();
    for pid in &first {
        send(*pid, libc::SIGTERM);
    }
    wait_all(&first, grace);
    for _ in 0..KILL_ROUNDS {
        let left = find();
        if left.is_empty() {
            break;
        }
        signalled.extend(left.iter().copied());
        for pid in &left {
            send(*pid, libc::SIGKILL);
        }
        wait_all(&left, Duration::from_secs(1));
    }
    signalled.len()
}

fn send(pid: u32, sig: i32) {
    if pid > 1 && pid != std::process::id() {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

/// Waits until every pid has exited (a zombie counts), for at most `timeout`.
fn wait_all(pids: &[u32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    for pid in pids {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        crate::fleet::sys::wait_exit(*pid, left);
    }
}

/// A directory of records of running processes, one file each, so that a
/// later process can kill what an earlier one left when it died.
#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    dir: PathBuf,
}

/// One record in a [`Ledger`]; dropping it removes the file.
#[derive(Debug)]
pub(crate) struct Entry {
    path: PathBuf,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What [`Ledger::sweep`] found for one stale record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Swept {
    pub(crate) command: String,
    /// Processes killed (0: the record was stale, its processes gone).
    pub(crate) killed: usize,
}

impl Ledger {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Ledger {
        Ledger { dir: dir.into() }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records that `pid` runs `command` under `mark`. The mark is the file
    /// name, so it must be a plain name (letters, digits, `-`, `_`, `.`).
    pub(crate) fn enter(&self, mark: &str, pid: u32, command: &str) -> io::Result<Entry> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(mark);
        // Newlines in the command would break the record's lines.
        let command = command.replace('\n', " ");
        std::fs::write(&path, format!("{pid}\n{command}\n"))?;
        Ok(Entry { path })
    }

    /// Kills the processes of every record and removes the records. Only
    /// call it when no process that writes this ledger is running, or for
    /// the caller's own records.
    pub(crate) fn sweep(&self) -> Vec<Swept> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(mark) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let command = text.lines().nth(1).unwrap_or("").to_owned();
            // The mark, not the recorded pid, picks the processes: a pid may
            // have been reused since, a mark is never shared.
            let killed = terminate(|| marked(&mark), GRACE);
            let _ = std::fs::remove_file(&path);
            out.push(Swept { command, killed });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn unique(tag: &str) -> String {
        format!(
            "reap-test-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
    }

    /// Kills whatever a failed test left carrying `mark`.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for pid in marked(&self.0) {
                send(pid, libc::SIGKILL);
            }
        }
    }

    #[test]
    fn marked_finds_setsid_escapees_and_terminate_kills_them() {
        let mark = unique("setsid");
        let _cleanup = Cleanup(mark.clone());
        // The shell starts a new session and exits: the sleep is re-parented
        // away from us and leaves our process group.
        let status = Command::new("sh")
            .arg("-c")
            .arg("setsid sleep 300 </dev/null >/dev/null 2>&1 &")
            .env(MARK_ENV, &mark)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        // Until the sleep has exec'd, the marked process may be `setsid`
        // itself, which forks and exits when it leads a process group.
        let is_sleep = |pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        };
        crate::worker::testutil::wait_for("the setsid sleep to carry the mark", 10, || {
            let found = marked(&mark);
            found.len() == 1 && found.iter().all(is_sleep)
        });
        let pid = marked(&mark)[0];
        assert_eq!(terminate(|| marked(&mark), GRACE), 1);
        assert!(!super::super::procstat::is_alive(pid));
        assert!(marked(&mark).is_empty());
        assert_eq!(terminate(|| marked(&mark), GRACE), 0, "nothing left");
    }

    #[test]
    fn terminate_sigkills_what_ignores_sigterm() {
        let mark = unique("stubborn");
        let _cleanup = Cleanup(mark.clone());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("trap '' TERM; while :; do sleep 1; done")
            .env(MARK_ENV, &mark)
            .spawn()
            .unwrap();
        let n = terminate(|| marked(&mark), Duration::from_millis(300));
        child.wait().unwrap();
        assert!(n >= 1);
        // It ignores SIGTERM and loops forever: gone means SIGKILLed.
        assert!(marked(&mark).is_empty());
    }

    #[test]
    fn a_ledger_sweep_kills_recorded_processes_and_removes_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().join("gates"));
        let mark = unique("ledger");
        let _cleanup = Cleanup(mark.clone());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 300")
            .env(MARK_ENV, &mark)
            .spawn()
            .unwrap();
        let entry = ledger
            .enter(&mark, child.id(), "sh -c 'sleep 300'")
            .unwrap();
        // The process that made the record died without removing it.
        std::mem::forget(entry);
        let swept = ledger.sweep();
        child.wait().unwrap();
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].command, "sh -c 'sleep 300'");
        assert!(swept[0].killed >= 1, "{swept:?}");
        assert!(ledger.sweep().is_empty(), "the record is gone");
        // A dropped entry removes its own record.
        let e = ledger.enter("other", 1, "x").unwrap();
        drop(e);
        assert_eq!(std::fs::read_dir(ledger.dir()).unwrap().count(), 0);
    }
}
