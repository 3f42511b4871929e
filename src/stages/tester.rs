//! Tester: a Tester agent works in the task's worktree after review, then the
//! test gates run there. The task remembers its current Tester, so a Tester
//! that met an API outage is replaced (after a backoff, no attempt spent)
//! rather than mistaken for one that finished. Which profile runs a Tester
//! is the router's choice, as for Developers ([`super::route`]).

use std::collections::BTreeMap;

use super::{
    agent, backing_off, budget, count_running, key, running, tasks, Action, GateStage, World,
};
use crate::state::TaskStatus;

pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    let free = world
        .limits
        .testers
        .saturating_sub(count_running(world.snapshot, "tester"));
    let mut free = free;
    let mut started: BTreeMap<String, usize> = BTreeMap::new();
    let stops = budget::reached(world);
    for (f, t) in tasks(world.snapshot) {
        if t.status != TaskStatus::InTests || world.busy.contains(&key(&f.feature.name, &t.id)) {
            continue;
        }
        let (feature, task) = (f.feature.name.clone(), t.id.clone());
        if world.limits.testers == 0 {
            // No Tester role configured: the test gates alone decide.
            out.push(Action::RunGates {
                feature,
                task,
                stage: GateStage::Test,
            });
            continue;
        }
        let current = t
            .tester
            .as_deref()
            .map(|id| (id, agent(world.snapshot, id)));
        match current {
            // Not started yet, or the orchestrator stopped between naming
            // the Tester and starting it.
            None | Some((_, None)) => {
                if free == 0 || backing_off(world, t) || stops.blocks(&feature, &task) {
                    continue;
                }
                // The router picks the profile; none able now: it waits.
                let routed =
                    super::route::route(world, "tester", &world.profiles.tester, t, &started);
                if let Ok(route) = routed {
                    *started.entry(route.profile.clone()).or_default() += 1;
                    free -= 1;
                    out.push(Action::StartTester {
                        feature,
                        task,
                        attempt: t.attempts.max(1),
                        route,
                    });
                }
            }
            Some((_, Some(a))) if running(a) => {}
            Some((id, Some(a))) if a.cause.is_some_and(|c| c.is_infrastructure()) => {
                out.push(Action::RestartTester {
                    feature,
                    task,
                    agent: id.to_owned(),
                    cause: a.cause.unwrap_or(crate::state::Cause::Crash),
                })
            }
            // A tester that failed still leaves the gates to judge the work.
            Some(_) => out.push(Action::RunGates {
                feature,
                task,
                stage: GateStage::Test,
            }),
        }
    }
    out
}
