//! Stale ref locks: a `refs/ai-sprint.lock` left behind by a writer that
//! died holding it (`kill -9`, a power cut) would otherwise stall every
//! state write until a person finds and deletes it.
//!
//! git and gix lock a ref by creating `<ref>.lock` and renaming it over the
//! ref; the file names no owner, so its age is the test: a state write holds
//! the lock for milliseconds, so a lock older than [`STALE_AFTER`] belongs
//! to a writer that is gone. Removal is made safe against a race with a
//! fresh lock: the file is renamed aside first, and if what was renamed is
//! not the file judged stale (a new writer took the name in between), it is
//! linked back (a hard link never replaces a lock that exists again).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::error::StateError;

/// A lock older than this is stale: state writes hold it for milliseconds.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(10);

/// A lock file found in the way of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub(crate) path: PathBuf,
    pub(crate) age: Duration,
}

/// The lock file git and gix use for the ref file at `ref_path`.
pub(crate) fn lock_path(ref_path: &Path) -> PathBuf {
    let mut p = ref_path.as_os_str().to_owned();
    p.push(".lock");
    p.into()
}

/// Removes `lock`, a git lock file of this repository, if it is stale: for
/// locks outside `refs/ai-sprint` (the Refinery's worktree index, the
/// integration branch). It is moved aside into `git_dir` first (the top of
/// the git dir, where a stray file is never taken for a ref).
pub(crate) fn clear_stale_lock(lock: &Path, git_dir: &Path) -> Result<Option<Held>, StateError> {
    clear_if_stale(lock, STALE_AFTER, git_dir)
}

/// Removes `lock`, a git lock file that can only be a leftover (its writer
/// is known to be gone), whatever its age; moved aside like the others.
pub(crate) fn clear_leftover_lock(lock: &Path, git_dir: &Path) -> Result<Option<Held>, StateError> {
    clear_if_stale(lock, Duration::ZERO, git_dir)
}

/// Whether `lock` exists, and how old it is (by its modification time, on
/// the real clock: `GIT_SPRINT_NOW` does not age files).
pub(crate) fn held(lock: &Path) -> Option<Held> {
    let meta = std::fs::symlink_metadata(lock).ok()?;
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    Some(Held {
        path: lock.to_owned(),
        age,
    })
}

/// Removes `lock` if it is older than `bound`. Returns what was removed
/// (for the audit trail), `None` when there is no stale lock (none, too
/// young, or another process removed it first), or an error naming the file
/// when it is stale but cannot be removed.
pub(crate) fn clear_if_stale(
    lock: &Path,
    bound: Duration,
    aside_dir: &Path,
) -> Result<Option<Held>, StateError> {
    let Ok(before) = std::fs::symlink_metadata(lock) else {
        return Ok(None);
    };
    let Some(found) = held(lock).filter(|h| h.age >= bound) else {
        return Ok(None);
    };
    let aside = aside_dir.join(format!(
        "ai-sprint-stale-lock-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    match std::fs::rename(lock, &aside) {
        Ok(()) => {}
        // Another writer cleared it (or committed) first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::StaleLock {
                path: lock.to_owned(),
                age_secs: found.age.as_secs(),
                source,
            })
        }
    }
    if !same_file(&before, &aside) {
        // A fresh lock took the name between the look and the rename: give
        // it back. `hard_link` fails if yet another lock exists; either way
        // the aside copy goes.
        let _ = std::fs::hard_link(&aside, lock);
        let _ = std::fs::remove_file(&aside);
        return Ok(None);
    }
    if let Err(e) = std::fs::remove_file(&aside) {
        // The lock is out of the way; only a stray file is left.
        tracing::warn!(path = %aside.display(), error = %e, "could not delete a stale lock moved aside");
    }
    tracing::warn!(
        lock = %lock.display(),
        age_secs = found.age.as_secs(),
        "removed a stale lock left by a writer that is gone"
    );
    Ok(Some(found))
}

#[cfg(unix)]
fn same_file(before: &std::fs::Metadata, now: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(now).is_ok_and(|m| {
        m.ino() == before.ino() && m.dev() == before.dev() && m.mtime() == before.mtime()
    })
}

#[cfg(not(unix))]
fn same_file(before: &std::fs::Metadata, now: &Path) -> bool {
    std::fs::symlink_metadata(now).is_ok_and(|m| m.modified().ok() == before.modified().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::Hint;

    fn age(path: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn a_young_lock_is_left_alone_and_an_old_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_path(&dir.path().join("ai-sprint"));
        assert_eq!(lock.file_name().unwrap(), "ai-sprint.lock");
        std::fs::write(&lock, "0123\n").unwrap();
        assert_eq!(
            clear_if_stale(&lock, STALE_AFTER, dir.path()).unwrap(),
            None
        );
        assert!(lock.exists(), "a live writer's lock must stay");

        age(&lock, 60);
        let removed = clear_if_stale(&lock, STALE_AFTER, dir.path())
            .unwrap()
            .expect("removed");
        assert!(removed.age >= Duration::from_secs(59), "{removed:?}");
        assert!(!lock.exists());
        // Nothing is left beside it either.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn no_lock_is_nothing_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("x.lock");
        assert_eq!(
            clear_if_stale(&lock, STALE_AFTER, dir.path()).unwrap(),
            None
        );
        assert_eq!(held(&lock), None);
    }

    #[test]
    fn a_stale_lock_that_cannot_be_moved_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("ai-sprint.lock");
        std::fs::write(&lock, "x\n").unwrap();
        age(&lock, 60);
        // Moving it aside fails (the place to move it to is not a
        // directory), the way a read-only refs/ would for anyone but root.
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, "").unwrap();
        let err = clear_if_stale(&lock, STALE_AFTER, &not_a_dir).unwrap_err();
        assert!(err.to_string().contains("ai-sprint.lock"), "{err}");
        let hint = err.hint().unwrap();
        assert!(hint.contains(&format!("rm {}", lock.display())), "{hint}");
        assert!(lock.exists());
    }
}
