//! Witness: leases, heartbeats and dead sessions.
//!
//! A developer holds its task by a lease; commits (through the worker's
//! post-commit hook) and pane output renew it. An agent whose tmux session
//! vanished is dead; one whose lease ran out with no output since is hung.
//! Either way the attempt is lost and the task is retried — with its work
//! kept, which the daemon does before anything else.

use super::{agent, key, running, tasks, Action, World};
use crate::state::TaskStatus;

pub fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    // Agents that hold no lease (testers, librarians) die quietly: record it,
    // and their stage moves on. Fleet workers are the fleet commands' own.
    let holders: std::collections::HashSet<&str> = tasks(world.snapshot)
        .filter_map(|(_, t)| t.claim.as_ref().map(|c| c.holder.as_str()))
        .collect();
    for a in &world.snapshot.agents {
        if running(a)
            && a.role != "fleet"
            && a.task.is_some()
            && !holders.contains(a.id.as_str())
            && !world.live.contains(&a.id)
        {
            out.push(Action::MarkDead {
                agent: a.id.clone(),
            });
        }
    }
    for (f, t) in tasks(world.snapshot) {
        if world.busy.contains(&key(&f.feature.name, &t.id)) {
            continue;
        }
        let holder = match (&t.status, &t.claim) {
            (TaskStatus::InProgress, Some(c)) => c.holder.clone(),
            _ => continue,
        };
        let Some(a) = agent(world.snapshot, &holder) else {
            // A claim with no agent record: the orchestrator died between
            // the claim and the spawn. The lease decides, so a person's
            // hand-made claim is honoured until it expires.
            if t.claim.as_ref().is_some_and(|c| c.expires <= world.now) {
                out.push(Action::Retry {
                    feature: f.feature.name.clone(),
                    task: t.id.clone(),
                    agent: None,
                    reason: format!("lease of {holder} expired with no agent running"),
                });
            }
            continue;
        };
        if !running(a) {
            continue; // ended: the CAB looks at how
        }
        let reason = if !world.live.contains(&a.id) {
            Some(format!("agent {} died: its tmux session is gone", a.id))
        } else {
            // Alive while a heartbeat (which sets the lease's expiry) or
            // pane output happened within the last lease period.
            let lease = world.limits.lease_secs as i64;
            let heartbeat = t
                .claim
                .as_ref()
                .map(|c| c.expires - c.ttl as i64)
                .unwrap_or(i64::MIN / 2);
            let output = world.activity.get(&a.id).copied().unwrap_or(i64::MIN / 2);
            let last_sign = heartbeat.max(output);
            (last_sign + lease <= world.now).then(|| {
                format!(
                    "agent {} hung: no heartbeat or output for {}s",
                    a.id,
                    world.now - last_sign
                )
            })
        };
        if let Some(reason) = reason {
            out.push(Action::Retry {
                feature: f.feature.name.clone(),
                task: t.id.clone(),
                agent: Some(a.id.clone()),
                reason,
            });
        }
    }
    out
}
