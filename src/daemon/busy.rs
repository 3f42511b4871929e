//! What the orchestrator's own job threads are working on (a task's gates
//! or merge, a feature's base sync, a worktree's setup), by key, and which
//! keys wait out a backoff because their last job failed without a verdict.
//!
//! A job that ends with a verdict has changed the state, and that change
//! is what the loop acts on next. One that failed without one (git could
//! not run, a lock, a race, a state write refused) changed nothing: no
//! event would come to try it again, and trying again at once would spin
//! for as long as the cause lasts. So its key waits ([`next_wait`]: 1 s
//! after the first failure and twice as long after each next one up to a
//! minute, as the loop does after a failed reconcile), and the end of the
//! wait is one of the loop's deadlines (a timer, not a poll).
//!
//! The waiting keys are also written to `.git/sprint/retrying.yaml` (gone
//! when none waits), so `git sprint health`, another process, can say what
//! keeps failing and why.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

use super::watch::Wake;
use crate::clock;

/// The first wait after a failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait.
const LONGEST_WAIT: Duration = Duration::from_secs(60);

/// The wait after a failure that nothing recorded (a job's, or a whole
/// reconcile's), given the wait after the failure before it, if any.
pub(super) fn next_wait(last: Option<Duration>) -> Duration {
    last.map_or(FIRST_WAIT, |w| (w * 2).min(LONGEST_WAIT))
}

/// The keys being worked on, shared by the loop and its job threads.
#[derive(Clone)]
pub(super) struct Busy {
    inner: Arc<Mutex<Inner>>,
    wake: UnboundedSender<Wake>,
    /// Where the waiting keys are written for `health`.
    file: PathBuf,
}

#[derive(Default)]
struct Inner {
    running: HashSet<String>,
    /// Keys whose last job failed, and until when they wait.
    waiting: HashMap<String, (Instant, Retrying)>,
}

/// A job that failed without a verdict and waits to be tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Retrying {
    /// `<feature>/<task>`, `<feature>/base`, …
    pub(crate) key: String,
    /// What failed: `merge failed`, `syncing the base failed`, …
    pub(crate) what: String,
    /// The last failure's error.
    pub(crate) error: String,
    /// Failures in a row.
    pub(crate) failures: u32,
    /// When the first of them was (unix seconds).
    pub(crate) since: i64,
    /// When the next try is due (unix seconds).
    pub(crate) next_try: i64,
    /// The wait before it, in seconds.
    pub(crate) wait_secs: u64,
}

/// `.git/sprint/retrying.yaml` of the repository whose common dir is `common`.
fn file_of(common: &Path) -> PathBuf {
    common.join("sprint").join("retrying.yaml")
}

/// The jobs the running orchestrator of `common` waits to try again, as it
/// last wrote them (none when it wrote none or the file does not parse).
pub(crate) fn retrying(common: &Path) -> Vec<Retrying> {
    std::fs::read_to_string(file_of(common))
        .ok()
        .and_then(|text| serde_yaml::from_str(&text).ok())
        .unwrap_or_default()
}

impl Busy {
    /// An empty set for the orchestrator of `common`; what an earlier one
    /// left waiting is its own past, so its file goes.
    pub(super) fn new(wake: UnboundedSender<Wake>, common: &Path) -> Busy {
        let file = file_of(common);
        let _ = std::fs::remove_file(&file);
        Busy {
            inner: Arc::default(),
            wake,
            file,
        }
    }

    /// The set, whatever a panicking job thread left: it only ever holds
    /// whole entries.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `key` as worked on; false when a job has it already or it
    /// waits out a backoff.
    pub(super) fn take(&self, key: &str) -> bool {
        let mut inner = self.lock();
        if inner
            .waiting
            .get(key)
            .is_some_and(|(until, _)| *until > Instant::now())
        {
            return false;
        }
        inner.running.insert(key.to_owned())
    }

    /// Ends the job on `key` with its verdict in the state (or nothing to
    /// do), and wakes the loop.
    pub(super) fn done(&self, key: &str) {
        {
            let mut inner = self.lock();
            inner.running.remove(key);
            if inner.waiting.remove(key).is_some() {
                self.save(&inner);
            }
        }
        let _ = self.wake.send(Wake::JobDone);
    }

    /// Ends the job on `key`, which failed (`what`, with `error`) and
    /// recorded nothing: it waits, and the loop is woken to learn the end
    /// of the wait as a deadline. Logs the failure with the wait.
    pub(super) fn failed(&self, key: &str, what: &str, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        let wait = {
            let mut inner = self.lock();
            inner.running.remove(key);
            let now = clock::now();
            let last = inner.waiting.get(key).map(|(_, r)| r);
            let (failures, since) = last.map_or((1, now), |r| (r.failures + 1, r.since));
            let wait = next_wait(last.map(|r| Duration::from_secs(r.wait_secs)));
            let secs = wait.as_secs();
            let retrying = Retrying {
                key: key.to_owned(),
                what: what.to_owned(),
                error: error.clone(),
                failures,
                since,
                next_try: now + secs as i64,
                wait_secs: secs,
            };
            let until = Instant::now() + wait;
            inner.waiting.insert(key.to_owned(), (until, retrying));
            self.save(&inner);
            secs
        };
        tracing::warn!(%key, %error, retry_in_secs = wait, "{what}");
        let _ = self.wake.send(Wake::JobDone);
    }

    /// Writes the waiting keys for `health` (a new file renamed over the
    /// old, so a reader never sees half), or removes the file when none
    /// waits. Best effort: the loop does not need it.
    fn save(&self, inner: &Inner) {
        if inner.waiting.is_empty() {
            let _ = std::fs::remove_file(&self.file);
            return;
        }
        let mut list: Vec<&Retrying> = inner.waiting.values().map(|(_, r)| r).collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        let Ok(text) = serde_yaml::to_string(&list) else {
            return;
        };
        let tmp = self.file.with_extension("yaml.tmp");
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &self.file));
        if let Err(e) = written {
            tracing::debug!(file = %self.file.display(), error = %e, "could not write the retrying jobs");
        }
    }

    /// The keys the stages must leave alone now: those a job has, and
    /// those waiting out a backoff.
    pub(super) fn keys(&self) -> HashSet<String> {
        let now = Instant::now();
        let inner = self.lock();
        let waiting = inner
            .waiting
            .iter()
            .filter(|(_, (until, _))| *until > now)
            .map(|(k, _)| k.clone());
        inner.running.iter().cloned().chain(waiting).collect()
    }

    /// When the soonest backoff ends (unix seconds, rounded up), if one
    /// is running.
    pub(super) fn next_retry(&self) -> Option<i64> {
        let now = Instant::now();
        let left = self
            .lock()
            .waiting
            .values()
            .filter(|(until, _)| *until > now)
            .map(|(until, _)| *until - now)
            .min()?;
        Some(clock::now() + left.as_secs_f64().ceil() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ends `key`'s wait now, as time passing would.
    fn expire(busy: &Busy, key: &str) {
        busy.lock().waiting.get_mut(key).expect("waiting").0 = Instant::now();
    }

    /// Fails the job on `key` once it may run again; returns its wait.
    fn fail_again(busy: &Busy, key: &str) -> u64 {
        expire(busy, key);
        assert!(busy.take(key), "not taken after its wait");
        busy.failed(key, "merge failed", &"a lock");
        busy.lock().waiting[key].1.wait_secs
    }

    #[test]
    fn a_failed_key_waits_twice_as_long_each_time_up_to_a_minute_and_a_verdict_clears_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sprint")).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let busy = Busy::new(tx, dir.path());
        assert!(busy.take("f/T001"));
        assert!(!busy.take("f/T001"), "taken twice");
        busy.failed("f/T001", "merge failed", &"cannot take the refinery lock");
        assert!(matches!(rx.try_recv(), Ok(Wake::JobDone)));
        assert!(!busy.take("f/T001"), "taken again during its wait");
        assert!(busy.keys().contains("f/T001"));
        let before = clock::now();
        let retry = busy.next_retry().expect("a deadline");
        assert!((before + 1..=clock::now() + 1).contains(&retry), "{retry}");
        // What health reads.
        let shown = retrying(dir.path());
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert_eq!(
            (
                shown[0].key.as_str(),
                shown[0].what.as_str(),
                shown[0].failures
            ),
            ("f/T001", "merge failed", 1)
        );
        assert_eq!(shown[0].error, "cannot take the refinery lock");
        let waits: Vec<u64> = (0..8).map(|_| fail_again(&busy, "f/T001")).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(retrying(dir.path())[0].failures, 9);
        expire(&busy, "f/T001");
        assert!(busy.take("f/T001"));
        busy.done("f/T001");
        assert!(busy.keys().is_empty());
        assert_eq!(busy.next_retry(), None);
        assert!(retrying(dir.path()).is_empty());
        assert!(!dir.path().join("sprint/retrying.yaml").exists());
        // The next failure starts from the first wait again.
        assert!(busy.take("f/T001"));
        busy.failed("f/T001", "merge failed", &"a lock");
        assert_eq!(retrying(dir.path())[0].wait_secs, 1);
        // A new orchestrator starts with none waiting.
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let _next = Busy::new(tx, dir.path());
        assert!(retrying(dir.path()).is_empty());
    }
}
