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
mod kept;
pub(crate) mod liveness;
mod lock;
pub(crate) mod log;
pub(crate) mod model;
pub mod ops;
mod queue;
pub(crate) mod recover;
mod remote;
pub(crate) mod repair;
mod snapshot;
mod store;
mod writers;

pub(crate) use backup::BACKUP_REF;
pub use error::{Refusal, StateError};
pub use lock::Held;
pub(crate) use lock::{clear_leftover_lock, clear_stale_lock};
pub use model::*;
pub(crate) use ops::TaskRef;
pub(crate) use queue::Queued;
pub(crate) use remote::run_with_deadline;
pub(crate) use remote::REMOTE_STATE_REF;
pub(crate) use snapshot::{archive_agents_of_task, archive_finished_agents};
pub use snapshot::{FeatureState, Snapshot};
pub(crate) use store::{natural_key, STATE_REF};
pub use store::{Actor, Committed, Store, Transition, Txn};

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
