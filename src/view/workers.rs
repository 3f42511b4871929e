//! The workers as `git sprint list` and the board's `/api/v1/agents` see
//! them (each agent's record checked against tmux and its processes), and
//! the machines as `list --machines` and `/api/v1/machines` see them.
//!
//! Gathered here once, so the command's table, its `--json` and the board's
//! answer are all renderings of the same rows.

use std::time::Duration;

use serde::Serialize;

use crate::fleet::{Fleet, FleetError, WorkerStatus};
use crate::machines::MachineView;
use crate::state::{Actor, AgentState, StateError, Store};

/// Which workers to list.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Only the workers of this batch.
    pub(crate) batch: Option<String>,
    /// The ended workers too, not only the live ones.
    pub(crate) all: bool,
}

/// The workers a [`Filter`] selects; serialised as the bare list of rows.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub(crate) struct Workers {
    pub(crate) rows: Vec<WorkerStatus>,
    /// How many ended workers the filter left out (those of its batch).
    #[serde(skip)]
    pub(crate) ended: usize,
}

/// How long a worker's CPU use is sampled for.
const CPU_SAMPLE: Duration = Duration::from_millis(100);

/// The workers of `fleet` that `filter` selects. A worker whose session
/// vanished is recorded dead as `actor` on the way.
pub(crate) fn list(fleet: &Fleet, actor: &Actor, filter: &Filter) -> Result<Workers, FleetError> {
    let mut rows = fleet.status(actor, CPU_SAMPLE)?;
    if let Some(b) = &filter.batch {
        rows.retain(|r| r.agent.batch.as_deref() == Some(b.as_str()));
    }
    let before = rows.len();
    if !filter.all {
        rows.retain(|r| matches!(r.agent.state, AgentState::Starting | AgentState::Running));
    }
    let ended = before - rows.len();
    Ok(Workers { rows, ended })
}

/// The machines sharing the sprint of `store` through its remote, each up
/// or lost by the committed config's `timeouts.machine` (`list --machines`).
pub(crate) fn machines(store: &Store) -> Result<Vec<MachineView>, StateError> {
    let lost_after = crate::config::load_from(store.repo(), None)
        .map(|l| l.config.timeouts.machine.0.as_secs() as i64)
        .unwrap_or(crate::machines::LOST_AFTER_SECS);
    crate::machines::list(store, crate::clock::now(), lost_after)
}
