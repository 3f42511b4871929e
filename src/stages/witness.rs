//! Witness: leases, hangs and dead sessions.
//!
//! Every running agent shows signs of life: stream events and commits (its
//! heartbeat), pane output, its claim's renewal. One with none for
//! `timeouts.hung` is hung, whatever its role; one whose tmux session
//! vanished is dead. A developer's attempt is then lost and the task
//! retried — with its work kept, which the daemon does before anything
//! else; a Tester or Librarian is stopped and recorded dead, and its stage
//! moves on. A claim with no agent behind it is free once its lease runs out.

use super::{agent, hung_for, key, running, tasks, Action, World};
use crate::state::{Cause, TaskStatus};

pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    // Agents that hold no lease (testers, librarians): a dead or hung one is
    // recorded, and its stage moves on. Fleet workers are the fleet
    // commands' own.
    let holders: std::collections::HashSet<&str> = tasks(world.snapshot)
        .filter_map(|(_, t)| t.claim.as_ref().map(|c| c.holder.as_str()))
        .collect();
    for a in &world.snapshot.agents {
        if !running(a) || a.role == "fleet" || a.task.is_none() || holders.contains(a.id.as_str()) {
            continue;
        }
        if !world.live.contains(&a.id) {
            out.push(Action::MarkDead {
                agent: a.id.clone(),
                cause: Cause::Crash,
                reason: "its tmux session is gone".into(),
            });
        } else if let Some(quiet) = hung_for(world, a, None) {
            out.push(Action::MarkDead {
                agent: a.id.clone(),
                cause: Cause::Hung,
                reason: format!("hung: no output, event or commit for {quiet}s"),
            });
        }
    }
    for (f, t) in tasks(world.snapshot) {
        if world.busy.contains(&key(&f.feature.name, &t.id)) {
            continue;
        }
        let (holder, claim) = match (&t.status, &t.claim) {
            (TaskStatus::InProgress, Some(c)) => (c.holder.clone(), c),
            _ => continue,
        };
        let Some(a) = agent(world.snapshot, &holder) else {
            // A claim with no agent record: the orchestrator died between
            // the claim and the spawn. The lease decides, so a person's
            // hand-made claim is honoured until it expires.
            if claim.expires <= world.now {
                out.push(Action::Retry {
                    feature: f.feature.name.clone(),
                    task: t.id.clone(),
                    agent: None,
                    cause: Cause::Crash,
                    reason: format!("lease of {holder} expired with no agent running"),
                });
            }
            continue;
        };
        if !running(a) {
            continue; // ended: the CAB looks at how
        }
        let lost = if !world.live.contains(&a.id) {
            Some((
                Cause::Crash,
                format!("agent {} died: its tmux session is gone", a.id),
            ))
        } else {
            hung_for(world, a, Some(claim)).map(|quiet| {
                (
                    Cause::Hung,
                    format!(
                        "agent {} hung: no output, event or commit for {quiet}s",
                        a.id
                    ),
                )
            })
        };
        if let Some((cause, reason)) = lost {
            out.push(Action::Retry {
                feature: f.feature.name.clone(),
                task: t.id.clone(),
                agent: Some(a.id.clone()),
                cause,
                reason,
            });
        }
    }
    out
}
