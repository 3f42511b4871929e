//! What a person does to a running sprint: retry or cancel a task, pause
//! or resume scheduling.
//!
//! `git sprint retry|cancel|pause|resume` and the board's actions call the
//! same functions here, each one state transaction, and say what happened
//! with the same words: every outcome's `Display` is the command's output.

use std::fmt;
use std::path::Path;

use crate::fleet::env::Environment;
use crate::fleet::{Fleet, FleetError};
use crate::hint::Hint;
use crate::state::{ops, Actor, StateError, Store, TaskRef, TaskStatus};

/// What an action failed with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ControlError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

impl Hint for ControlError {
    fn hint(&self) -> Option<String> {
        match self {
            ControlError::State(e) => e.hint(),
            ControlError::Fleet(e) => e.hint(),
        }
    }
}

/// A task put back to `todo` with fresh attempts.
#[derive(Debug)]
pub(crate) struct Retried {
    pub(crate) task: TaskRef,
    /// The ids of the dependants this unblocked.
    pub(crate) unblocked: Vec<String>,
}

impl fmt::Display for Retried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: back to todo with fresh attempts", self.task)?;
        if !self.unblocked.is_empty() {
            writeln!(f, "unblocked: {}", self.unblocked.join(", "))?;
        }
        Ok(())
    }
}

/// Gives the failed, blocked or cancelled task `name` a fresh start, as `actor`.
pub(crate) fn retry(
    store: &Store,
    actor: &Actor,
    name: &str,
    reason: Option<&str>,
) -> Result<Retried, StateError> {
    let done = store.transact(actor, |txn| {
        let task = ops::resolve(txn, name)?;
        let unblocked = ops::retry(txn, &task, reason)?;
        Ok(Retried { task, unblocked })
    })?;
    Ok(done.value)
}

/// A task taken out of the sprint.
#[derive(Debug)]
pub(crate) struct Cancelled {
    pub(crate) task: TaskRef,
    /// Its status before.
    pub(crate) from: Option<TaskStatus>,
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.from {
            Some(from) => writeln!(f, "{}: {from} -> cancelled", self.task),
            None => writeln!(f, "{}: cancelled", self.task),
        }
    }
}

/// Cancels the task `name`, as `actor`.
pub(crate) fn cancel(
    store: &Store,
    actor: &Actor,
    name: &str,
    reason: Option<&str>,
) -> Result<Cancelled, StateError> {
    let done = store.transact(actor, |txn| {
        let task = ops::resolve(txn, name)?;
        let from = txn.task(&task.feature, &task.id)?.map(|t| t.status);
        ops::cancel(txn, &task, reason)?;
        Ok(Cancelled { task, from })
    })?;
    Ok(done.value)
}

/// Scheduling stopped or started again.
#[derive(Debug)]
pub(crate) struct Paused {
    /// Whether the sprint is now paused.
    pub(crate) paused: bool,
    /// Whether it was not already so.
    pub(crate) changed: bool,
    /// The agent profiles whose open circuit breaker now lets one probe run.
    pub(crate) probes: Vec<String>,
    /// The running orchestrator (its pid), handed this process's
    /// environment on resume.
    pub(crate) orchestrator: Option<u32>,
}

impl fmt::Display for Paused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.probes {
            writeln!(
                f,
                "Circuit breaker of agent profile {p}: half open; one probe run starts now"
            )?;
        }
        let word = if self.paused { "paused" } else { "running" };
        if self.changed {
            writeln!(
                f,
                "Sprint {word}: {}",
                if self.paused {
                    "no new work will start"
                } else {
                    "scheduling new work again"
                }
            )?;
        } else if self.probes.is_empty() {
            writeln!(f, "Sprint already {word}; nothing changed")?;
        }
        if let Some(pid) = self.orchestrator {
            writeln!(
                f,
                "The orchestrator is running (pid {pid}); new agents will use this shell's environment"
            )?;
        }
        Ok(())
    }
}

/// Pauses (or resumes) scheduling in the repository at `cwd`, as `actor`.
/// Resuming also lets each open circuit breaker try one probe run.
pub(crate) fn set_paused(
    store: &Store,
    cwd: &Path,
    actor: &Actor,
    paused: bool,
    reason: Option<&str>,
) -> Result<Paused, ControlError> {
    // Resuming a running orchestrator hands its next agents this process's
    // environment, as `start` does (with none running, `start` will).
    let orchestrator = if paused {
        None
    } else {
        let fleet = Fleet::open(cwd)?;
        let pid = crate::daemon::lock::holder(&fleet.common_dir);
        if pid.is_some() {
            Environment::of_this_process()
                .save_for_sprint(&fleet.common_dir)
                .map_err(FleetError::from)?;
        }
        pid
    };
    let done = store.transact(actor, |txn| {
        let changed = ops::set_paused(txn, paused, reason)?;
        let probes = if paused {
            Vec::new()
        } else {
            ops::half_open_breakers(txn)?
        };
        Ok((changed, probes))
    })?;
    let (changed, probes) = done.value;
    Ok(Paused {
        paused,
        changed,
        probes,
        orchestrator,
    })
}
