//! The backup of `refs/ai-sprint`: what lets `git sprint recover` restore
//! the state after `git update-ref -d refs/ai-sprint` (which deletes the
//! ref's reflog too), and what keeps the state's commits from `git gc`
//! meanwhile.
//!
//! The backup is [`BACKUP_REF`] and its reflog. Every state write appends
//! its new tip to that reflog, one line in one `write` to a file that
//! already exists; the ref itself moves with a write only once it is
//! [`MOVE_EVERY`] old. A reflog entry is a root for `git gc` and
//! `git prune` like a ref, so every state commit stays reachable; the newest
//! entry is the newest state.
//!
//! Why not move the ref on every write, as the first version did: replacing
//! a ref file is a lock file created and an old inode deleted. That doubled
//! a write's ref work, and on ext4 without a journal (as on our CI
//! machines) each inode deleted in the last minutes makes every later file
//! creation near it scan past it (the state's loose objects, the lock
//! files): the orchestrator spent most of its CPU there in the sprint
//! benchmark (`cargo bench --bench sprint`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gix::ObjectId;

use super::error::StateError;
use super::store::Store;

/// A second ref on the state, kept by every write (see the module docs).
pub(crate) const BACKUP_REF: &str = "refs/ai-sprint-backup";

/// How old the backup ref may get before a write moves it.
pub(crate) const MOVE_EVERY: Duration = Duration::from_secs(60);

/// Reflog entries read to find the newest tip: writers append after their
/// compare-and-swap, so concurrent ones may land a few lines out of order.
const TAIL: usize = 32;

/// Whether the write about to be made should move the backup ref: it is
/// missing (or only in `packed-refs`), or [`MOVE_EVERY`] old.
pub(crate) fn ref_is_due(common_dir: &Path) -> bool {
    let modified = std::fs::metadata(common_dir.join(BACKUP_REF)).and_then(|m| m.modified());
    match modified {
        // A time in the future (a changed clock) counts as old.
        Ok(at) => at.elapsed().map_or(true, |age| age >= MOVE_EVERY),
        Err(_) => true,
    }
}

/// The backup ref's reflog file.
fn reflog_path(common_dir: &Path) -> PathBuf {
    common_dir.join("logs").join(BACKUP_REF)
}

/// Appends `old -> new` to the backup's reflog as one line, in git's format
/// (`git reflog refs/ai-sprint-backup` lists it). Best effort: the write it
/// records is already made, and the backup ref still moves every minute.
pub(crate) fn log(
    common_dir: &Path,
    old: Option<ObjectId>,
    new: ObjectId,
    signature: gix::actor::Signature,
    message: &str,
) {
    let line = gix::refs::log::Line {
        previous_oid: old.unwrap_or_else(|| ObjectId::null(new.kind())),
        new_oid: new,
        signature,
        message: message.replace('\n', " ").into(),
    };
    let mut buf = Vec::with_capacity(256);
    let appended = line.write_to(&mut buf).and_then(|()| {
        let path = reflog_path(common_dir);
        let open = || {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
        };
        let mut file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path.parent().unwrap_or(common_dir))?;
                open()?
            }
            other => other?,
        };
        // One write: concurrent appenders never interleave within a line.
        file.write_all(&buf)
    });
    if let Err(e) = appended {
        tracing::warn!(error = %e, "could not add to the reflog of {BACKUP_REF}");
    }
}

impl Store {
    /// The newest state commit the backup holds: the newest of its ref and
    /// the last entries of its reflog, by ancestry (state history is linear).
    pub(crate) fn backup_tip(&self) -> Result<Option<ObjectId>, StateError> {
        let reference = self
            .repo()
            .try_find_reference(BACKUP_REF)
            .map_err(|e| StateError::git(format!("reading {BACKUP_REF}"), e))?;
        let at_ref = match reference {
            None => None,
            Some(r) => r.target().try_id().map(|id| id.to_owned()),
        };
        let mut newest: Option<ObjectId> = None;
        for id in self
            .reflog_newest(BACKUP_REF, TAIL)?
            .into_iter()
            .chain(at_ref)
        {
            newest = match newest {
                None => Some(id),
                Some(n) if id != n && self.descends_within(id, n, TAIL) => Some(id),
                keep => keep,
            };
        }
        Ok(newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Actor;

    fn add(store: &Store, id: &str) -> ObjectId {
        store.add_test_task(id)
    }

    fn at_ref(store: &Store) -> ObjectId {
        let r = store.repo().find_reference(BACKUP_REF).unwrap();
        r.target().try_id().unwrap().to_owned()
    }

    /// Makes the backup ref look `age` old.
    fn age(store: &Store, age: Duration) {
        let path = store.repo().common_dir().join(BACKUP_REF);
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::SystemTime::now() - age)
            .unwrap();
    }

    #[test]
    fn every_write_is_the_backups_newest_and_the_ref_moves_once_a_minute() {
        let (_dir, store) = Store::temp();
        assert_eq!(store.backup_tip().unwrap(), None);
        let first = add(&store, "T1");
        assert_eq!(at_ref(&store), first, "the first write creates the ref");
        let second = add(&store, "T2");
        assert_eq!(at_ref(&store), first, "a fresh ref stays where it is");
        assert_eq!(store.backup_tip().unwrap(), Some(second));
        age(&store, MOVE_EVERY + Duration::from_secs(1));
        let third = add(&store, "T3");
        assert_eq!(at_ref(&store), third, "an old ref moves with the write");
        assert_eq!(store.backup_tip().unwrap(), Some(third));
        // The reflog has every state, newest first, as git reads it.
        let logged = store.reflog_newest(BACKUP_REF, 10).unwrap();
        assert_eq!(logged, vec![third, second, first]);
    }

    #[test]
    fn appends_out_of_order_still_give_the_newest_state() {
        let (_dir, store) = Store::temp();
        let first = add(&store, "T1");
        let second = add(&store, "T2");
        let third = add(&store, "T3");
        // Two writers appended after their swaps in the other order.
        let log = reflog_path(store.repo().common_dir());
        std::fs::remove_file(&log).unwrap();
        let sig = || crate::state::store::signature(&Actor::named("tester"));
        super::log(store.repo().common_dir(), Some(first), second, sig(), "x");
        super::log(store.repo().common_dir(), Some(second), third, sig(), "y");
        super::log(store.repo().common_dir(), Some(first), second, sig(), "x");
        assert_eq!(store.reflog_newest(BACKUP_REF, 1).unwrap(), vec![second]);
        assert_eq!(store.backup_tip().unwrap(), Some(third));
    }
}
