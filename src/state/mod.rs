//! The sprint state on `refs/ai-sprint`: the only code that touches that ref.
//!
//! State is a commit whose tree holds YAML files, sharded by feature
//! (DESIGN.md "State on refs/ai-sprint"). Reads never check anything out;
//! writes are operations applied in a compare-and-swap loop ([`Store::transact`]),
//! so `git log refs/ai-sprint` is a complete audit trail. Its integrity
//! (stale locks, a lost ref, records that do not parse) is kept here too:
//! see [`recover`] and [`repair`].

mod backup;
mod error;
pub mod liveness;
mod lock;
pub mod log;
pub mod model;
pub mod ops;
mod queue;
pub mod recover;
mod remote;
pub mod repair;
mod snapshot;
mod store;
mod writers;

pub use backup::BACKUP_REF;
pub use error::{Refusal, StateError};
pub use lock::{clear_leftover_lock, clear_stale_lock, Held};
pub use model::*;
pub use ops::TaskRef;
pub use queue::{Dropped, Queued, FETCHED_REF};
pub(crate) use remote::run_with_deadline;
pub use remote::{REMOTE_KEY, REMOTE_STATE_REF};
pub use repair::Quarantined;
pub use snapshot::{archive_agents_of_task, archive_finished_agents, FeatureState, Snapshot};
pub use store::{
    natural_key, sort_tasks, task_path, Actor, Committed, Store, Transition, Txn, STATE_REF,
};

#[cfg(test)]
mod layering {
    /// The state layer stores plain data; it must not reach into the code that
    /// runs agents (`worker`), which itself records into the state.
    #[test]
    fn state_imports_nothing_from_worker() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/state");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    assert!(
                        // Spelled in two halves so this line does not match itself.
                        !line.contains(concat!("crate::", "worker")),
                        "{}:{}: the state layer imports worker: {line}",
                        path.display(),
                        n + 1
                    );
                }
                checked += 1;
            }
        }
        assert!(
            checked >= 5,
            "found only {checked} files in {}",
            dir.display()
        );
    }
}
