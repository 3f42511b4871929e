//! Routing in a reconcile: what each agent profile can take now (running
//! agents, circuit breaker, `budget.profile_usd`, `max_parallel`, agents
//! started earlier in the same pass) for the pure choice of
//! [`crate::router::choose`].

use std::collections::BTreeMap;

use super::{breaker, breaker_gate, BreakerGate, World};
use crate::router::{self, Candidate, Choice, TaskView};
use crate::state::Task;

/// The profile that takes `task` in `role` now, or why none can; `started`
/// counts the agents this pass already decided to start, by profile.
pub(crate) fn route(
    world: &World<'_>,
    role: &str,
    default: &str,
    task: &Task,
    started: &BTreeMap<String, usize>,
) -> Result<Choice, String> {
    let labels = router::labels(task);
    let view = TaskView {
        role,
        labels: &labels,
        paths: &task.paths,
    };
    let routing = world.routing;
    let stats = router::stats(world.snapshot);
    let mut candidates = BTreeMap::new();
    for name in routing.names(&[default]) {
        let s = stats.get(name).cloned().unwrap_or_default();
        let now = started.get(name).copied().unwrap_or(0);
        let caps = routing.capabilities.get(name).cloned().unwrap_or_default();
        let mut c = Candidate {
            running: s.running + now,
            capabilities: caps.clone(),
            slots: None,
            blocked: None,
        };
        match breaker_gate(
            breaker(world.snapshot, name),
            world.snapshot,
            &world.limits,
            world.now,
        ) {
            BreakerGate::Closed => {}
            BreakerGate::Probe => c.slots = Some(1usize.saturating_sub(now)),
            BreakerGate::Open => c.blocked = Some("circuit breaker open".into()),
        }
        if let Some(max) = caps.max_parallel {
            let left = (max as usize).saturating_sub(c.running);
            c.slots = Some(c.slots.map_or(left, |s| s.min(left)));
        }
        if let Some(limit) = routing.profile_usd.get(name) {
            if s.cost_usd >= *limit {
                c.blocked = Some(format!("budget spent (${:.2} of ${limit:.2})", s.cost_usd));
            }
        }
        candidates.insert(name.to_owned(), c);
    }
    router::choose(&routing.rules, default, &view, &candidates)
}
