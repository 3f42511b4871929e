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
pub(crate) struct Machine {
    pub(crate) name: String,
    pub(crate) labels: Vec<String>,
    /// `timeouts.machine`: no beat for this long and a machine is lost.
    pub(crate) lost_after_secs: i64,
    /// The remote the state and the branches go through.
    pub(crate) remote: String,
}

/// What one reconcile knows of the other machines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Machines {
    /// Whether this machine holds the leader lease.
    pub(crate) leader: bool,
    /// Machines whose heartbeats stopped.
    pub(crate) lost: HashSet<String>,
    /// When the next machine alive now would count as lost if it beats no
    /// more (unix seconds): the loop looks again then, so a dead machine's
    /// tasks move on without waiting for an event.
    pub(crate) next_loss: Option<i64>,
    /// Transitions of this clone wait for the remote (it cannot be
    /// reached): this machine looks after its running agents only, and
    /// starts nothing and leads nothing until they are through.
    pub(crate) offline: bool,
}

impl Engine {
    /// The other machines as of now, and the lease taken when it is free
    /// or its holder lost; `None` when the sprint is this clone's alone.
    pub(super) fn machines(&self, snapshot: &Snapshot) -> Option<Machines> {
        let here = self.here.as_ref()?;
        let beats = machines::last_beats(&self.fleet.store);
        let now = crate::clock::now();
        // While the state cannot be pushed, acting as leader would decide
        // alone: a queued lease waits for the remote like any transition.
        let offline = matches!(self.fleet.store.queued(), Ok(Some(_)));
        let leader = !offline
            && match lease::hold(
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
        // A machine's last sign of life: its last beat, or the start of
        // its newest agent (its first beat may not have reached this
        // machine yet). Ended agents count: what their end owes falls to
        // their machine while it lives.
        let mut signs = beats;
        for a in &snapshot.agents {
            if let Some(m) = &a.machine {
                let at = signs.entry(m.clone()).or_insert(a.started);
                *at = (*at).max(a.started);
            }
        }
        signs.remove(&here.name);
        let (lost, alive): (Vec<_>, Vec<_>) = signs
            .into_iter()
            .partition(|(_, at)| machines::is_lost(Some(*at), now, here.lost_after_secs));
        let next_loss = alive
            .iter()
            .map(|(_, at)| at + here.lost_after_secs + 1)
            .min();
        let lost = lost.into_iter().map(|(m, _)| m).collect();
        Some(Machines {
            leader,
            lost,
            next_loss,
            offline,
        })
    }

    /// Stops this machine's agents that the others took for lost (this
    /// machine stopped beating: frozen, cut off) while they ran on: their
    /// tasks went to other machines, so they must not go on beside the new
    /// holders. Their wrappers save what they have; the branch's tip here
    /// goes to a side ref, here and on the remote, once, so no work is
    /// lost.
    pub(super) fn stop_orphans(
        &self,
        snapshot: &Snapshot,
        sessions: &std::collections::HashMap<String, Option<u64>>,
    ) {
        let Some(here) = &self.here else {
            return;
        };
        // Its record may be archived already (the task was finished
        // elsewhere while this machine was away): a session no live
        // record names is looked up there.
        let named: HashSet<&str> = snapshot.agents.iter().map(|a| a.session.as_str()).collect();
        let strays: HashSet<&str> = sessions
            .keys()
            .map(String::as_str)
            .filter(|s| *s != super::SESSION && !named.contains(s))
            .collect();
        let archived: Vec<crate::state::Agent> = if strays.is_empty() {
            Vec::new()
        } else {
            self.fleet
                .store
                .read(|txn| {
                    let mut found = Vec::new();
                    for id in txn.archived_agent_ids()? {
                        if let Some(a) = txn.archived_agent(&id)? {
                            if strays.contains(a.session.as_str()) {
                                found.push(a);
                            }
                        }
                    }
                    Ok(found)
                })
                .unwrap_or_default()
        };
        for a in snapshot.agents.iter().chain(&archived).filter(|a| {
            a.machine.as_deref() == Some(here.name.as_str()) && a.cause == Some(Cause::MachineLost)
        }) {
            if sessions.contains_key(&a.session) {
                tracing::warn!(agent = %a.id, "this machine was taken for lost and its task went elsewhere: stopping the agent; its work goes to a side ref");
                self.stop_agent(
                    a,
                    "its machine was taken for lost; the task went to another",
                );
            }
            // An agent that ended while this machine was away (its end was
            // dropped as stale) left its work on the branch here.
            let git = &self.fleet.git;
            let Ok(Some(tip)) = git.commit_id(&format!("refs/heads/{}", a.branch)) else {
                continue;
            };
            let side = branches::side_ref(&a.branch, &tip);
            if matches!(git.commit_id(&side), Ok(Some(_))) {
                continue; // kept already
            }
            let kept = git
                .run(&[
                    "update-ref",
                    "-m",
                    "git-sprint: work of an agent taken for lost",
                    &side,
                    &tip,
                ])
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    branches::push_ref(git, &here.remote, &side, &side).map_err(|e| e.to_string())
                });
            match kept {
                Ok(()) => tracing::warn!(agent = %a.id, %side, "its work is kept"),
                Err(e) => {
                    tracing::warn!(agent = %a.id, error = %e, "keeping its work on the remote failed; it stays on this machine")
                }
            }
        }
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
        let duty = duty::of(&action, snapshot);
        if !duty::is_mine(&duty, &view) {
            return None;
        }
        if m.offline && duty != duty::Duty::Machine(here.name.clone()) {
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
    ///
    /// Gates, a Reviewer and the Refinery's security gates run in the
    /// task's worktree, which the leader may never have made (the work was
    /// done elsewhere): it is made here. Returns false while its setup
    /// runs (the job's end wakes the loop to act then).
    pub(super) fn bring(&self, snapshot: &Snapshot, action: &Action) -> Result<bool, EngineError> {
        let Some(here) = &self.here else {
            return Ok(true);
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
                _ => return Ok(true),
            },
            Action::StartLibrarian { feature, .. } | Action::SyncBase { feature } => {
                (feature, None)
            }
            _ => return Ok(true),
        };
        let git = &self.fleet.git;
        let integration = self.integration(snapshot, feature);
        branches::pull(git, &here.remote, &integration, None).map_err(share_error)?;
        if let Some(task) = task {
            let branch = stages::task_branch(feature, task);
            let worktree: PathBuf = self.task_worktree(feature, task);
            branches::pull(git, &here.remote, &branch, Some(&worktree)).map_err(share_error)?;
            let runs_here = match action {
                Action::RunGates { .. } | Action::StartReviewer { .. } => true,
                Action::Merge { .. } => !self.config.gates.security.is_empty(),
                _ => false,
            };
            if runs_here {
                return Ok(self
                    .ensure_worktree(feature, task, &integration, None)?
                    .is_some());
            }
        }
        Ok(true)
    }

    /// After the Refinery moved `integration` from `old` here: the same
    /// move on the remote, with a lease on `old`. When the remote refuses
    /// (another machine moved it first) or cannot be reached, the local
    /// move is undone — a merge counts once every machine can start from
    /// it — and the reason returned; the merge is tried again.
    pub(super) fn share_integration(
        remote: Option<&str>,
        git: &crate::worker::worktree::Git,
        integration: &str,
        old: &str,
    ) -> Result<(), String> {
        let Some(remote) = remote else {
            return Ok(());
        };
        let why = match branches::push_integration(git, remote, integration, old) {
            Ok(true) => return Ok(()),
            Ok(false) => format!("{integration} moved on the remote meanwhile"),
            Err(e) => e.to_string(),
        };
        let name = format!("refs/heads/{integration}");
        if let Err(e) = git.run(&[
            "update-ref",
            "-m",
            "git-sprint: not on the remote",
            &name,
            old,
        ]) {
            tracing::warn!(error = %e, %integration, "undoing a merge the remote did not take failed");
        }
        Err(format!("{why}; the merge will be tried again"))
    }
}

fn share_error(e: branches::BranchError) -> EngineError {
    EngineError::Other(e.to_string())
}
