//! CPU and memory of an agent's process tree, read from `/proc` (Linux).
//!
//! `list` shows what each agent costs the machine. An agent is a process tree
//! (a node CLI, its shells, the test runs it starts), so usage is summed over
//! the root pid and all its descendants. CPU % needs two looks a moment apart:
//! take a [`Snapshot`] of all processes, another later, and [`usage`] compares
//! them, so one pair of scans serves every agent. `/proc` is read directly: a
//! few fields of two files per process do not justify a dependency.

use std::collections::HashMap;
use std::fs;
use std::io;
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

use thiserror::Error;

/// Reading process information failed.
#[derive(Debug, Error)]
pub(crate) enum ProcError {
    /// `/proc` could not be listed (not Linux, or mounted elsewhere).
    #[error("cannot read /proc: process statistics need Linux with /proc mounted")]
    NoProc {
        #[source]
        source: io::Error,
    },
}

/// The kernel's clock ticks per second for `/proc/<pid>/stat` times. Linux
/// fixes USER_HZ at 100 for userspace on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug, Clone, Copy)]
struct Proc {
    ppid: u32,
    /// `R`, `S`, `Z` (a zombie: ended, not yet reaped), …
    state: char,
    /// utime + stime, in ticks.
    cpu_ticks: u64,
    /// Start time in ticks since boot: tells a reused pid from the original.
    start: u64,
}

/// All processes at one moment: parent links and CPU times.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    taken: Instant,
    procs: HashMap<u32, Proc>,
}

/// What a process tree uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct TreeUsage {
    /// CPU over the interval, in percent of one core (may exceed 100).
    pub(crate) cpu_percent: f64,
    /// Resident memory of all processes in the tree, in bytes.
    pub(crate) rss_bytes: u64,
    /// How many processes the tree has.
    pub(crate) processes: usize,
}

impl Snapshot {
    /// Scans `/proc` once.
    pub(crate) fn take() -> Result<Snapshot, ProcError> {
        let entries = fs::read_dir("/proc").map_err(|source| ProcError::NoProc { source })?;
        let mut procs = HashMap::new();
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            // A process may exit between listing and reading: skip it.
            if let Some(p) = read_stat(pid) {
                procs.insert(pid, p);
            }
        }
        Ok(Snapshot {
            taken: Instant::now(),
            procs,
        })
    }

    /// `root` and all its descendants, root first (empty if `root` is gone).
    pub(crate) fn tree(&self, root: u32) -> Vec<u32> {
        if !self.procs.contains_key(&root) {
            return Vec::new();
        }
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, p) in &self.procs {
            children.entry(p.ppid).or_default().push(pid);
        }
        let mut out = vec![root];
        let mut seen = std::collections::HashSet::from([root]);
        let mut i = 0;
        while i < out.len() {
            if let Some(kids) = children.get(&out[i]) {
                // The seen-set guards against a parent link read mid-change.
                let new: Vec<u32> = kids.iter().copied().filter(|k| seen.insert(*k)).collect();
                out.extend(new);
            }
            i += 1;
        }
        out
    }

    /// [`tree`](Self::tree) without `root` and without processes that have
    /// already ended (zombies waiting to be reaped).
    pub(crate) fn running_descendants(&self, root: u32) -> Vec<u32> {
        self.tree(root)
            .into_iter()
            .skip(1)
            .filter(|pid| self.procs[pid].state != 'Z' && self.procs[pid].state != 'X')
            .collect()
    }

    /// Every process that has not ended, by pid.
    pub(crate) fn running(&self) -> impl Iterator<Item = u32> + '_ {
        self.procs
            .iter()
            .filter(|(_, p)| p.state != 'Z' && p.state != 'X')
            .map(|(pid, _)| *pid)
    }
}

/// Usage of the tree rooted at `root` between two snapshots, or `None` if
/// `root` is not running in `after`.
///
/// CPU counts, for each process in the tree at `after`, the ticks it used
/// since `before` (all of them for processes that started in between).
/// Memory is read now, for the processes of `after`'s tree.
pub(crate) fn usage(before: &Snapshot, after: &Snapshot, root: u32) -> Option<TreeUsage> {
    let tree = after.tree(root);
    if tree.is_empty() {
        return None;
    }
    let mut ticks = 0u64;
    let mut rss_bytes = 0u64;
    for pid in &tree {
        let now = after.procs[pid];
        let earlier = before
            .procs
            .get(pid)
            .filter(|p| p.start == now.start)
            .map_or(0, |p| p.cpu_ticks);
        ticks += now.cpu_ticks.saturating_sub(earlier);
        rss_bytes += read_rss(*pid).unwrap_or(0);
    }
    let secs = after
        .taken
        .saturating_duration_since(before.taken)
        .as_secs_f64();
    let cpu_percent = if secs > 0.0 {
        ticks as f64 / TICKS_PER_SECOND / secs * 100.0
    } else {
        0.0
    };
    Some(TreeUsage {
        cpu_percent,
        rss_bytes,
        processes: tree.len(),
    })
}

/// Usage of one tree measured over `interval` (two snapshots with a sleep).
#[cfg(test)]
pub(crate) fn tree_usage(root: u32, interval: Duration) -> Result<Option<TreeUsage>, ProcError> {
    let before = Snapshot::take()?;
    std::thread::sleep(interval);
    let after = Snapshot::take()?;
    Ok(usage(&before, &after, root))
}

/// Whether `pid` is a running process (a zombie counts as ended).
pub(crate) fn is_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => parse_stat(&stat).is_some_and(|(state, _)| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn read_stat(pid: u32) -> Option<Proc> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, p)| p)
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself contain spaces and `)`, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(char, Proc)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((
        state,
        Proc {
            ppid,
            state,
            cpu_ticks: utime + stime,
            start,
        },
    ))
}

/// `VmRSS` from `/proc/<pid>/status`, in bytes (exact, unlike pages × a guessed page size).
fn read_rss(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let line = "42 (a) b (c)) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 12345 1000 10 18446744073709551615";
        let (state, p) = parse_stat(line).unwrap();
        assert_eq!(state, 'S');
        assert_eq!(p.ppid, 7);
        assert_eq!(p.cpu_ticks, 300);
        assert_eq!(p.start, 12345);
        assert!(parse_stat("garbage").is_none());
    }

    /// Kills the test's process group when the test ends, failed or not, so
    /// a failing assertion leaves no busy loop behind.
    struct Group(u32);

    impl Drop for Group {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0)])
                .status();
        }
    }

    #[test]
    fn tree_of_spawned_sleeps() {
        use std::os::unix::process::CommandExt;
        // sh busy-loops with two sleeping children: the tree is all three.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("sleep 30 & sleep 30 & while :; do :; done")
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let root = child.id();
        let _group = Group(root);
        assert!(is_alive(root));
        crate::worker::testutil::wait_for("sh and its two sleeps in the tree", 10, || {
            Snapshot::take().unwrap().tree(root).len() >= 3
        });
        let usage = tree_usage(root, Duration::from_millis(300))
            .unwrap()
            .unwrap();
        assert!(usage.processes >= 3, "{usage:?}");
        assert!(usage.rss_bytes > 0, "{usage:?}");
        // The busy loop runs for some of the interval; how much depends on
        // the machine's load, so only that it ran is asserted.
        assert!(usage.cpu_percent > 0.0, "{usage:?}");

        let snap = Snapshot::take().unwrap();
        let tree = snap.tree(root);
        assert_eq!(tree[0], root);
        for pid in &tree {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        child.wait().unwrap();
        assert!(!is_alive(root));
        assert_eq!(usage_of_gone(root), None);
    }

    fn usage_of_gone(pid: u32) -> Option<TreeUsage> {
        let a = Snapshot::take().unwrap();
        let b = Snapshot::take().unwrap();
        usage(&a, &b, pid)
    }

    #[test]
    fn unknown_pids_are_not_alive() {
        assert!(!is_alive(0));
        assert!(!is_alive(u32::MAX));
        assert!(is_alive(std::process::id()));
    }
}
