//! Manager: schedules ready tasks onto Developer agents.
//!
//! A task is ready when it is `todo` with every dependency done, or
//! `in_progress` with nobody on it (a gate sent it back); and when no active
//! task holds a path it names. Order: priority, then convoy (the order its
//! first task has in tasks.md), then file order. Developers are limited by
//! the role's count.

use std::collections::HashMap;

use super::{count_running, holds_paths, key, tasks, Action, World};
use crate::spec::paths_overlap;
use crate::state::{Task, TaskStatus};

pub fn owed(world: &World<'_>) -> Vec<Action> {
    if world.snapshot.meta.as_ref().is_some_and(|m| m.paused) {
        return Vec::new();
    }
    let mut free = world
        .limits
        .developers
        .saturating_sub(count_running(world.snapshot, "developer"));
    if free == 0 {
        return Vec::new();
    }
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

    let mut out = Vec::new();
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
        free -= 1;
        held.push((feature, t));
        out.push(Action::StartDeveloper {
            feature: feature.to_owned(),
            task: t.id.clone(),
            attempt: t.attempts + 1,
        });
    }
    out
}
