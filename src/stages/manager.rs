//! Manager: schedules ready tasks onto Developer agents.
//!
//! A task is ready when it is `todo` with every dependency done, or
//! `in_progress` with nobody on it (a gate sent it back); and when no active
//! task holds a path it names. Order: priority, then convoy (the order its
//! first task has in tasks.md), then file order. Developers are limited by
//! the role's count, by the budgets, by each task's backoff after a failed
//! attempt, and by the profile the router picks for the task ([`super::route`]:
//! its circuit breaker, spend and `max_parallel`, with fallbacks). A `todo` task
//! whose dependency failed or was cancelled can never run: it is blocked,
//! with the reason.

use std::collections::{BTreeMap, HashMap};

use super::{backing_off, budget, count_running, holds_paths, key, tasks, Action, World};
use crate::spec::paths_overlap;
use crate::state::{Task, TaskStatus};

pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = blocked(world);
    if world.snapshot.meta.as_ref().is_some_and(|m| m.paused) {
        return out;
    }
    let mut free = world
        .limits
        .developers
        .saturating_sub(count_running(world.snapshot, "developer"));
    if free == 0 {
        return out;
    }
    // Agents this pass starts, by profile, for the router's load counts.
    let mut started: BTreeMap<String, usize> = BTreeMap::new();
    let stops = budget::reached(world);
    // Paths held by work in flight, per feature.
    let mut held: Vec<(&str, &Task)> = tasks(world.snapshot)
        .filter(|(_, t)| holds_paths(t.status))
        .map(|(f, t)| (f.feature.name.as_str(), t))
        .collect();

    let mut ready: Vec<(&str, &Task, u32)> = Vec::new();
    for fs in &world.snapshot.features {
        let status: HashMap<&str, TaskStatus> =
            fs.tasks.iter().map(|t| (t.id.as_str(), t.status)).collect();
        let convoy_rank: HashMap<&str, u32> = {
            let mut first: HashMap<&str, u32> = HashMap::new();
            for t in &fs.tasks {
                if let Some(c) = &t.convoy {
                    let e = first.entry(c.as_str()).or_insert(u32::MAX);
                    *e = (*e).min(t.line);
                }
            }
            first
        };
        for t in &fs.tasks {
            let waiting = match t.status {
                TaskStatus::Todo => true,
                TaskStatus::InProgress => t.claim.is_none(),
                _ => false,
            };
            if !waiting
                || world.busy.contains(&key(&fs.feature.name, &t.id))
                || backing_off(world, t)
                || stops.blocks(&fs.feature.name, &t.id)
                || !t
                    .deps
                    .iter()
                    .all(|d| status.get(d.as_str()) == Some(&TaskStatus::Done))
            {
                continue;
            }
            let rank = t
                .convoy
                .as_deref()
                .and_then(|c| convoy_rank.get(c).copied())
                .unwrap_or(u32::MAX);
            ready.push((fs.feature.name.as_str(), t, rank));
        }
    }
    ready.sort_by_key(|(f, t, rank)| {
        (
            -t.priority,
            *f,
            *rank,
            t.line,
            crate::state::natural_key(&t.id),
        )
    });

    for (feature, t, _) in ready {
        if free == 0 {
            break;
        }
        let clash = held
            .iter()
            .any(|(hf, h)| *hf == feature && h.id != t.id && paths_overlap(&h.paths, &t.paths));
        if clash {
            continue;
        }
        // No profile it may use can start one now (breaker open, budget
        // spent, max_parallel reached): the task waits for one.
        let Ok(route) =
            super::route::route(world, "developer", &world.profiles.developer, t, &started)
        else {
            continue;
        };
        *started.entry(route.profile.clone()).or_default() += 1;
        free -= 1;
        held.push((feature, t));
        out.push(Action::StartDeveloper {
            feature: feature.to_owned(),
            task: t.id.clone(),
            attempt: t.attempts + 1,
            route,
        });
    }
    out
}

/// `todo` tasks with a failed or cancelled dependency: they would wait forever.
fn blocked(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    for (f, t) in tasks(world.snapshot) {
        // Only blocks this tool made ("blocked: …") lift by themselves; a
        // person's `move … blocked` stays.
        let ours = t.status == TaskStatus::Blocked
            && t.reason
                .as_deref()
                .is_some_and(|r| r.starts_with("blocked: "));
        if t.status != TaskStatus::Todo && !ours {
            continue;
        }
        let dead: Vec<String> = t
            .deps
            .iter()
            .filter_map(|d| {
                let dep = f.tasks.iter().find(|x| &x.id == d)?;
                matches!(
                    dep.status,
                    TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Blocked
                )
                .then(|| format!("{d} is {}", dep.status))
            })
            .collect();
        if ours {
            if dead.is_empty() {
                out.push(Action::Unblock {
                    feature: f.feature.name.clone(),
                    task: t.id.clone(),
                });
            }
        } else if !dead.is_empty() {
            out.push(Action::Block {
                feature: f.feature.name.clone(),
                task: t.id.clone(),
                reason: format!("blocked: {}", dead.join(", ")),
            });
        }
    }
    out
}
