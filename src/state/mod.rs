//! The sprint state on `refs/ai-sprint`: the only code that touches that ref.
//!
//! State is a commit whose tree holds YAML files, sharded by feature
//! (DESIGN.md "State on refs/ai-sprint"). Reads never check anything out;
//! writes are operations applied in a compare-and-swap loop ([`Store::transact`]),
//! so `git log refs/ai-sprint` is a complete audit trail. Its integrity
//! (stale locks, a lost ref, records that do not parse) is kept here too:
//! see [`recover`] and [`repair`].

mod error;
pub mod liveness;
mod lock;
pub mod log;
pub mod model;
pub mod ops;
pub mod recover;
pub mod repair;
mod snapshot;
mod store;

pub use error::{Refusal, StateError};
pub use lock::{clear_stale_lock, Held};
pub use model::*;
pub use ops::TaskRef;
pub use repair::Quarantined;
pub use snapshot::{archive_finished_agents, FeatureState, Snapshot};
pub use store::{
    natural_key, sort_tasks, task_path, Actor, Committed, Store, Transition, Txn, BACKUP_REF,
    STATE_REF,
};
