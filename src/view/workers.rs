//! The workers as `git sprint list` and the board's `/api/v1/agents` see
//! them: each agent's record checked against tmux and its processes.
//!
//! Gathered here once, so the command's table, its `--json` and the board's
//! answer are all renderings of the same rows.

use std::time::Duration;

use serde::Serialize;

use crate::fleet::{Fleet, FleetError, WorkerStatus};
use crate::state::{Actor, AgentState};

/// Which workers to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only the workers of this batch.
    pub batch: Option<String>,
    /// The ended workers too, not only the live ones.
    pub all: bool,
}

/// The workers a [`Filter`] selects; serialised as the bare list of rows.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Workers {
    pub rows: Vec<WorkerStatus>,
    /// How many ended workers the filter left out (those of its batch).
    #[serde(skip)]
    pub ended: usize,
}

/// How long a worker's CPU use is sampled for.
const CPU_SAMPLE: Duration = Duration::from_millis(100);

/// The workers of `fleet` that `filter` selects. A worker whose session
/// vanished is recorded dead as `actor` on the way.
pub fn list(fleet: &Fleet, actor: &Actor, filter: &Filter) -> Result<Workers, FleetError> {
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
