//! Writers on one machine take turns: an advisory lock around each local
//! state write, so a write rarely loses its compare-and-swap.
//!
//! The compare-and-swap alone is correct, but a writer learns it lost only
//! after writing its objects (a blob, the trees above it, a commit), and
//! then writes them again on the new tip. In the sprint benchmark's
//! 20-agent run, wrappers, hooks and the orchestrator's threads lost more
//! swaps than they won, and those lost objects were most of the
//! orchestrator's file creations. Waiting for a turn costs nothing while
//! it waits.
//!
//! The lock is a hint, never a requirement: a writer that cannot get it
//! within [`PATIENCE`] (its holder stopped with SIGSTOP, say) writes anyway,
//! and the compare-and-swap still decides. The kernel drops it with its
//! holder, so a killed writer leaves nothing to clean up.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;

/// How long a writer waits for its turn before writing without it.
const PATIENCE: Duration = Duration::from_secs(2);

/// A turn at writing; the lock is released when this drops.
pub(crate) struct Turn {
    held: Option<File>,
}

thread_local! {
    /// Whether this thread holds a turn: a write made inside another write's
    /// operation must not wait for the turn its own thread holds.
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.held.is_some() {
            HOLDING.with(|h| h.set(false));
        }
    }
}

/// Waits for this machine's turn to write the state of the repository whose
/// git dir is `common_dir`, sleeping `backoff(attempt)` between tries.
pub(crate) fn turn(common_dir: &Path, mut backoff: impl FnMut(u32) -> Duration) -> Turn {
    if HOLDING.with(|h| h.get()) {
        return Turn { held: None };
    }
    let path = common_dir.join("sprint").join("state-writer.lock");
    // A file of its own per write: flock excludes per open file, so two
    // threads of one process exclude each other too.
    let open = || {
        File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
    };
    let file = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let _ = std::fs::create_dir_all(common_dir.join("sprint"));
            open()
        }
        other => other,
    };
    let Ok(file) = file else {
        // A read-only repository, say: the compare-and-swap still decides.
        return Turn { held: None };
    };
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match FileExt::try_lock_exclusive(&file) {
            Ok(true) => {
                HOLDING.with(|h| h.set(true));
                return Turn { held: Some(file) };
            }
            Ok(false) if start.elapsed() < PATIENCE => {
                std::thread::sleep(backoff(attempt));
                attempt += 1;
            }
            Ok(false) => {
                tracing::debug!(path = %path.display(), "writing without a turn: the lock stays taken");
                return Turn { held: None };
            }
            Err(e) => {
                tracing::debug!(error = %e, "writing without a turn");
                return Turn { held: None };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_turn_at_a_time_and_free_again_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = turn(dir.path(), |_| Duration::ZERO);
        assert!(first.held.is_some(), "the first writer gets its turn");
        // A write inside it, on the same thread, does not wait for it.
        let nested = turn(dir.path(), |_| {
            panic!("a nested write waited for its own turn")
        });
        assert!(nested.held.is_none());
        // Another thread waits (its patience, then writes without).
        let path = dir.path().to_owned();
        let (got, waits) = std::thread::spawn(move || {
            let mut waits = 0;
            let t = turn(&path, |_| {
                waits += 1;
                Duration::from_millis(20)
            });
            (t.held.is_some(), waits)
        })
        .join()
        .unwrap();
        assert!(!got && waits > 0, "got {got} after {waits} waits");
        drop(first);
        let path = dir.path().to_owned();
        let third = std::thread::spawn(move || turn(&path, |_| Duration::ZERO).held.is_some());
        assert!(third.join().unwrap(), "free again once the first dropped");
    }
}
