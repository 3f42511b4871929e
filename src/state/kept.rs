//! The objects a store keeps in memory: the repository's object cache,
//! shared with the store so it can hold what the store writes, not only
//! what it reads.
//!
//! A transition reads the trees the previous one wrote (the root, the
//! feature's trees, the task's blob). gix's own cache fills only on reads,
//! so each of those was a loose-object read from the disk: a `stat`, an
//! `open`, an `mmap`, an inflate and an `munmap`, about half of a
//! transition's time on tmpfs. Objects are named by their content, so a
//! kept one can never be stale.

use std::sync::{Arc, Mutex, PoisonError};

use gix::odb::pack::cache::object::MemoryCappedHashmap;
use gix::odb::pack::cache::Object;
use gix::ObjectId;

/// How much object data is kept: a state of 100 features × 100 tasks has
/// about 1.5 MB of trees and blobs.
const CAP_BYTES: usize = 8 * 1024 * 1024;

/// A handle on the kept objects; clones share them.
#[derive(Clone)]
pub(crate) struct Kept(Arc<Mutex<MemoryCappedHashmap>>);

impl Kept {
    /// Installs a new set of kept objects as `repo`'s object cache, and
    /// returns the handle that feeds it.
    pub(crate) fn install(repo: &mut gix::Repository) -> Kept {
        let kept = Kept(Arc::new(Mutex::new(MemoryCappedHashmap::new(CAP_BYTES))));
        let shared = kept.clone();
        repo.objects
            .set_object_cache(move || Box::new(shared.clone()) as Box<_>);
        kept
    }

    /// Keeps `data`, just written as `id`, for the reads that follow.
    pub(crate) fn keep(&self, id: ObjectId, kind: gix::object::Kind, data: &[u8]) {
        self.lock().put(id, kind, data);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryCappedHashmap> {
        // A panic inside the map's own put or get leaves at worst an entry
        // missing: a later read goes to the disk.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Object for Kept {
    fn put(&mut self, id: ObjectId, kind: gix::object::Kind, data: &[u8]) {
        self.keep(id, kind, data);
    }

    fn get(&mut self, id: &ObjectId, out: &mut Vec<u8>) -> Option<gix::object::Kind> {
        self.lock().get(id, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object kept after a write is found without the disk: the
    /// repository's cache is the kept set, not a copy of it.
    #[test]
    fn a_kept_object_is_found_by_the_repository_without_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut repo = gix::init(dir.path()).unwrap();
        let kept = Kept::install(&mut repo);
        let data = b"kept, never written";
        let id =
            gix::objs::compute_hash(repo.object_hash(), gix::object::Kind::Blob, data).unwrap();
        assert!(repo.try_find_object(id).unwrap().is_none());
        kept.keep(id, gix::object::Kind::Blob, data);
        let found = repo.find_object(id).unwrap();
        assert_eq!(found.data, data);
        // A thread-local clone of the repository shares the same set.
        let other = repo.clone();
        assert_eq!(other.find_object(id).unwrap().data, data);
    }

    /// The store keeps what it writes: with every loose object gone from
    /// the disk, the same store still reads the state it just wrote.
    #[test]
    fn the_store_reads_what_it_wrote_without_the_disk() {
        let (_dir, store) = crate::state::Store::temp();
        store.add_test_task("T1");
        let objects = store.repo().common_dir().join("objects");
        let mut removed = 0;
        for fan in std::fs::read_dir(&objects).unwrap() {
            let fan = fan.unwrap().path();
            let name = fan.file_name().unwrap().to_string_lossy().into_owned();
            if name.len() == 2 && fan.is_dir() {
                std::fs::remove_dir_all(&fan).unwrap();
                removed += 1;
            }
        }
        assert!(
            removed > 0,
            "the write left loose objects in {}",
            objects.display()
        );
        let task = store.read(|txn| txn.task("f", "T1")).unwrap();
        assert_eq!(task.map(|t| t.title), Some("task T1".to_owned()));
    }
}
