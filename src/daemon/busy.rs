//! What the orchestrator's own job threads are working on (a task's gates
//! or merge, a feature's base sync, a worktree's setup), by key, and which
//! keys wait out a backoff because their last job failed without a verdict.
//!
//! A job that ends with a verdict has changed the state, and that change
//! is what the loop acts on next. One that failed without one (git could
//! not run, a lock, a race, a state write refused) changed nothing: no
//! event would come to try it again, and trying again at once would spin
//! for as long as the cause lasts. So its key waits, 1 s after the first
//! failure and twice as long after each next one up to a minute, and the
//! end of the wait is one of the loop's deadlines (a timer, not a poll).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::watch::Wake;
use crate::clock;

/// The first wait after a failure, in seconds.
const FIRST_WAIT: u64 = 1;
/// The longest wait, in seconds.
const LONGEST_WAIT: u64 = 60;

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Its verdict is in the state (or there was nothing to do).
    Recorded,
    /// It failed and recorded nothing: its key waits before another try.
    Failed,
}

/// The keys being worked on, shared by the loop and its job threads.
#[derive(Clone)]
pub(super) struct Busy {
    inner: Arc<Mutex<Inner>>,
    wake: UnboundedSender<Wake>,
}

#[derive(Default)]
struct Inner {
    running: HashSet<String>,
    /// Keys whose last job failed: when they may run again, and the wait
    /// that was.
    waiting: HashMap<String, Wait>,
}

#[derive(Debug, Clone, Copy)]
struct Wait {
    until: Instant,
    secs: u64,
}

impl Busy {
    pub(super) fn new(wake: UnboundedSender<Wake>) -> Busy {
        Busy {
            inner: Arc::default(),
            wake,
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
            .is_some_and(|w| w.until > Instant::now())
        {
            return false;
        }
        inner.running.insert(key.to_owned())
    }

    /// Ends the job on `key` and wakes the loop (after a failure too, so
    /// the loop learns the wait's end as a deadline). Returns how many
    /// seconds a failed key waits.
    pub(super) fn end(&self, key: &str, ended: Ended) -> u64 {
        let secs = {
            let mut inner = self.lock();
            inner.running.remove(key);
            match ended {
                Ended::Recorded => {
                    inner.waiting.remove(key);
                    0
                }
                Ended::Failed => {
                    let secs = inner
                        .waiting
                        .get(key)
                        .map_or(FIRST_WAIT, |w| (w.secs * 2).min(LONGEST_WAIT));
                    let until = Instant::now() + Duration::from_secs(secs);
                    inner.waiting.insert(key.to_owned(), Wait { until, secs });
                    secs
                }
            }
        };
        let _ = self.wake.send(Wake::JobDone);
        secs
    }

    /// The keys the stages must leave alone now: those a job has, and
    /// those waiting out a backoff.
    pub(super) fn keys(&self) -> HashSet<String> {
        let now = Instant::now();
        let inner = self.lock();
        let waiting = inner
            .waiting
            .iter()
            .filter(|(_, w)| w.until > now)
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
            .filter(|w| w.until > now)
            .map(|w| w.until - now)
            .min()?;
        Some(clock::now() + left.as_secs_f64().ceil() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ends `key`'s wait now, as time passing would.
    fn expire(busy: &Busy, key: &str) {
        busy.lock().waiting.get_mut(key).expect("waiting").until = Instant::now();
    }

    #[test]
    fn a_failed_key_waits_twice_as_long_each_time_up_to_a_minute_and_a_verdict_clears_it() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let busy = Busy::new(tx);
        assert!(busy.take("f/T001"));
        assert!(!busy.take("f/T001"), "taken twice");
        assert_eq!(busy.end("f/T001", Ended::Failed), 1);
        assert!(matches!(rx.try_recv(), Ok(Wake::JobDone)));
        assert!(!busy.take("f/T001"), "taken again during its wait");
        assert!(busy.keys().contains("f/T001"));
        let before = clock::now();
        let retry = busy.next_retry().expect("a deadline");
        assert!((before + 1..=clock::now() + 1).contains(&retry), "{retry}");
        let waits: Vec<u64> = (0..8)
            .map(|_| {
                expire(&busy, "f/T001");
                assert!(busy.take("f/T001"), "not taken after its wait");
                busy.end("f/T001", Ended::Failed)
            })
            .collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60, 60]);
        expire(&busy, "f/T001");
        assert!(busy.take("f/T001"));
        assert_eq!(busy.end("f/T001", Ended::Recorded), 0);
        assert!(busy.keys().is_empty());
        assert_eq!(busy.next_retry(), None);
        // The next failure starts from the first wait again.
        assert!(busy.take("f/T001"));
        assert_eq!(busy.end("f/T001", Ended::Failed), 1);
    }
}
