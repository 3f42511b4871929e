//! Noticing what other machines write: with `sprint.remote` set, a thread
//! asks the remote for its state ref (`git ls-remote`, no objects moved)
//! and fetches when it moved. The fetch moves the local `refs/ai-sprint`,
//! which the inotify watch on refs turns into a wake-up like any local
//! write, so the loop itself never polls.
//!
//! Adaptive: every 2 s while the state keeps changing (work in flight, here
//! or elsewhere), doubling to 30 s while nothing does, jittered so that
//! machines started together do not ask in step.

use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use crate::state::Store;

/// The shortest wait between two questions to the remote.
const FAST: Duration = Duration::from_secs(2);
/// The longest, while nothing changes.
const IDLE: Duration = Duration::from_secs(30);

/// The running follower; it stops when this is dropped.
pub(crate) struct Follower {
    _stop: Sender<()>,
}

/// Starts following the remote of the repository at `dir`; `None` when no
/// remote is set (nothing to follow).
pub(crate) fn start(dir: &Path) -> Option<Follower> {
    let store = Store::discover(dir).ok()?;
    let remote = store.remote_name()?.to_owned();
    tracing::info!(%remote, "following the sprint state on the remote");
    let (stop, stopped) = channel::<()>();
    let dir = dir.to_owned();
    std::thread::Builder::new()
        .name("sprint-follow".into())
        .spawn(move || {
            // A Store is not Send: the thread opens its own.
            let Ok(store) = Store::discover(&dir) else {
                return;
            };
            let mut wait = FAST;
            let mut last_tip = store.tip().ok().flatten();
            loop {
                match stopped.recv_timeout(jittered(wait)) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let moved = match store.remote_moved() {
                    Ok(true) => match store.refresh() {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "fetching the sprint state failed");
                            false
                        }
                    },
                    Ok(false) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "the sprint remote does not answer; working from the local copy");
                        false
                    }
                };
                // A local write is work in flight too.
                let tip = store.tip().ok().flatten();
                let changed = moved || tip != last_tip;
                last_tip = tip;
                wait = next_wait(wait, changed);
            }
        })
        .ok()?;
    Some(Follower { _stop: stop })
}

/// Back to [`FAST`] after a change, else twice as long, up to [`IDLE`].
fn next_wait(wait: Duration, changed: bool) -> Duration {
    if changed {
        FAST
    } else {
        (wait * 2).min(IDLE)
    }
}

/// `d` give or take a quarter, from the clock's nanoseconds.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos() as u64)
        .unwrap_or(0);
    let quarter = d.as_millis() as u64 / 4;
    let spread = if quarter == 0 {
        0
    } else {
        nanos % (2 * quarter)
    };
    Duration::from_millis(d.as_millis() as u64 - quarter + spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_the_idle_bound_and_a_change_resets_it() {
        let mut w = FAST;
        let mut seen = vec![];
        for _ in 0..6 {
            w = next_wait(w, false);
            seen.push(w.as_secs());
        }
        assert_eq!(seen, [4, 8, 16, 30, 30, 30]);
        assert_eq!(next_wait(IDLE, true), FAST);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let j = jittered(FAST);
            assert!(j >= FAST * 3 / 4 && j < FAST * 5 / 4, "{j:?}");
        }
    }
}
