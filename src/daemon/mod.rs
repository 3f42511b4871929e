//! The orchestrator: one per repository, woken by inotify, reconciling the
//! sprint state with what runs (DESIGN.md principle 2).

pub mod lock;
pub mod watch;
