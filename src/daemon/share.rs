//! The orchestrator's part in a sprint several clones share through a
//! remote (`sprint.remote`): who this machine is, which debts it pays
//! ([`crate::machines::duty`]), the leader lease, and the branches it
//! brings from the remote before acting on a task.
//!
//! Every machine reads the same state, so each knows what every other
//! owes; it sees only its own tmux server, so it judges only its own
//! agents, and trusts another machine's for as long as that machine beats.

use std::collections::HashSet;
use std::path::PathBuf;

use super::engine::{Engine, EngineError};
use crate::machines::{self, branches, duty, lease};
use crate::stages::{self, Action, Limits};
use crate::state::{liveness, Cause, Snapshot};

/// This machine among those sharing the sprint.
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    pub labels: Vec<String>,
    /// `timeouts.machine`: no beat for this long and a machine is lost.
    pub lost_after_secs: i64,
    /// The remote the state and the branches go through.
    pub remote: String,
}

/// What one reconcile knows of the other machines.
#[derive(Debug, Clone, Default)]
pub struct Machines {
    /// Whether this machine holds the leader lease.
    pub leader: bool,
    /// Machines whose heartbeats stopped.
    pub lost: HashSet<String>,
}

impl Engine {
    /// The other machines as of now, and the lease taken when it is free
    /// or its holder lost; `None` when the sprint is this clone's alone.
    pub(super) fn machines(&self, snapshot: &Snapshot) -> Option<Machines> {
        let here = self.here.as_ref()?;
        let beats = machines::last_beats(&self.fleet.store);
        let now = crate::clock::now();
        // An agent's start is a sign of its machine's life too: that
        // machine's first beat may not have reached this one yet.
        let is_lost = |a: &crate::state::Agent, m: &str| {
            let sign = beats.get(m).copied().max(Some(a.started));
            m != here.name && machines::is_lost(sign, now, here.lost_after_secs)
        };
        // While the state cannot be pushed, acting as leader would decide
        // alone: a queued lease waits for the remote like any transition.
        let leader = match lease::hold(
            &self.fleet.store,
            &here.name,
            &beats,
            now,
            here.lost_after_secs,
        ) {
            Ok(lease::Lead::Here) => true,
            Ok(lease::Lead::Elsewhere(_)) => false,
            Err(e) => {
                tracing::warn!(error = %e, "the leader lease could not be checked");
                snapshot
                    .meta
                    .as_ref()
                    .and_then(|m| m.leader.as_ref())
                    .is_some_and(|l| l.machine == here.name)
            }
        };
        let lost = snapshot
            .agents
            .iter()
            .filter(|a| liveness::is_running(a))
            .filter_map(|a| a.machine.clone().filter(|m| is_lost(a, m)))
            .collect();
        Some(Machines { leader, lost })
    }

    /// Whether agent `a` runs on another machine, judged there.
    pub(super) fn elsewhere(&self, a: &crate::state::Agent) -> bool {
        match (&self.here, &a.machine) {
            (Some(here), Some(m)) => *m != here.name,
            _ => false,
        }
    }

    /// The limits the stages schedule by: each machine runs up to its own
    /// counts of its own agents, so the sprint-wide caps are what runs
    /// everywhere plus the room left here.
    pub(super) fn machine_limits(&self, snapshot: &Snapshot, mut limits: Limits) -> Limits {
        let Some(here) = &self.here else {
            return limits;
        };
        let running = |role: &str, mine: bool| {
            snapshot
                .agents
                .iter()
                .filter(|a| a.role == role && liveness::is_running(a))
                .filter(|a| !mine || a.machine.as_deref() == Some(here.name.as_str()))
                .count()
        };
        for (role, cap) in [
            ("developer", &mut limits.developers),
            ("tester", &mut limits.testers),
        ] {
            let room = cap.saturating_sub(running(role, true));
            *cap = running(role, false) + room;
        }
        limits
    }

    /// `action` as this machine carries it out, or `None` when another
    /// machine owes it (or this one may not run it: `machines:` labels).
    /// An agent of a lost machine is ended as such, counting no attempt.
    pub(super) fn for_this_machine(
        &self,
        snapshot: &Snapshot,
        m: &Machines,
        action: Action,
    ) -> Option<Action> {
        let here = self.here.as_ref()?;
        let view = duty::Here {
            name: &here.name,
            leader: m.leader,
            lost: &m.lost,
        };
        if !duty::is_mine(&duty::of(&action, snapshot), &view) {
            return None;
        }
        let placed = |role: &str, profile: &str| {
            duty::placement_allows(&self.config, role, profile, &here.labels)
        };
        let lost_machine = |agent: &str| {
            stages::agent(snapshot, agent)
                .and_then(|a| a.machine.clone())
                .filter(|machine| m.lost.contains(machine))
        };
        let lost_reason = |machine: &str| {
            format!(
                "machine {machine} lost: no heartbeat for {}s",
                here.lost_after_secs
            )
        };
        Some(match action {
            Action::StartDeveloper { ref route, .. } if !placed("developer", &route.profile) => {
                return None
            }
            Action::StartTester { ref route, .. } if !placed("tester", &route.profile) => {
                return None
            }
            Action::MarkDead {
                agent,
                cause,
                reason,
            } => match lost_machine(&agent) {
                Some(machine) => Action::MarkDead {
                    agent,
                    cause: Cause::MachineLost,
                    reason: lost_reason(&machine),
                },
                None => Action::MarkDead {
                    agent,
                    cause,
                    reason,
                },
            },
            Action::Retry {
                feature,
                task,
                agent: Some(agent),
                cause,
                reason,
            } => match lost_machine(&agent) {
                Some(machine) => Action::Retry {
                    feature,
                    task,
                    reason: format!("agent {agent}: {}", lost_reason(&machine)),
                    agent: Some(agent),
                    cause: Cause::MachineLost,
                },
                None => Action::Retry {
                    feature,
                    task,
                    agent: Some(agent),
                    cause,
                    reason,
                },
            },
            other => other,
        })
    }

    /// Brings from the remote what `action` works on: the task's branch
    /// (its work may have been done on another machine) and the
    /// integration branch (the leader merges there). A no-op when the
    /// sprint is not shared.
    pub(super) fn bring(&self, snapshot: &Snapshot, action: &Action) -> Result<(), EngineError> {
        let Some(here) = &self.here else {
            return Ok(());
        };
        let (feature, task) = match action {
            Action::StartDeveloper { feature, task, .. }
            | Action::StartTester { feature, task, .. }
            | Action::RunGates { feature, task, .. }
            | Action::StartReviewer { feature, task, .. }
            | Action::Merge { feature, task } => (feature, Some(task)),
            Action::DeveloperDone {
                feature,
                task,
                agent,
            } => match stages::agent(snapshot, agent) {
                Some(a) if self.elsewhere(a) => (feature, Some(task)),
                _ => return Ok(()),
            },
            Action::StartLibrarian { feature, .. } | Action::SyncBase { feature } => {
                (feature, None)
            }
            _ => return Ok(()),
        };
        let git = &self.fleet.git;
        let integration = self.integration(snapshot, feature);
        branches::pull(git, &here.remote, &integration, None).map_err(share_error)?;
        if let Some(task) = task {
            let branch = stages::task_branch(feature, task);
            let worktree: PathBuf = self.task_worktree(feature, task);
            branches::pull(git, &here.remote, &branch, Some(&worktree)).map_err(share_error)?;
        }
        Ok(())
    }

    /// After the Refinery moved `integration` from `old` here: the same
    /// move on the remote, with a lease on `old`. False when another
    /// machine moved the remote's first (the local move is then undone and
    /// the merge tried again).
    pub(super) fn share_integration(
        remote: Option<&str>,
        git: &crate::worker::worktree::Git,
        integration: &str,
        old: &str,
    ) -> Result<bool, String> {
        let Some(remote) = remote else {
            return Ok(true);
        };
        if branches::push_integration(git, remote, integration, old).map_err(|e| e.to_string())? {
            return Ok(true);
        }
        let name = format!("refs/heads/{integration}");
        git.run(&[
            "update-ref",
            "-m",
            "git-sprint: the remote moved first",
            &name,
            old,
        ])
        .map_err(|e| e.to_string())?;
        Ok(false)
    }
}

fn share_error(e: branches::BranchError) -> EngineError {
    EngineError::Other(e.to_string())
}
