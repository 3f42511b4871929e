//! Budgets: what the sprint has spent, per task, per feature and in total,
//! against the `budget` limits of the config. A limit reached stops new
//! agents in its scope (the stages ask [`reached`]); the engine records each
//! change of the reached set as one commit with a `Sprint-Policy:` trailer,
//! and raising a limit lifts the stop on the next reconcile.

use std::collections::BTreeMap;

use super::{Action, World};
use crate::state::Snapshot;

/// Money spent, from the task records (every run adds its cost there) and
/// from agents with no task record (Librarians).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct Spend {
    pub(crate) total_usd: f64,
    pub(crate) features: BTreeMap<String, f64>,
}

/// What the snapshot says was spent.
pub(crate) fn spend(snapshot: &Snapshot) -> Spend {
    let mut out = Spend::default();
    for fs in &snapshot.features {
        let mut usd: f64 = fs.tasks.iter().map(|t| t.cost_usd).sum();
        for a in &snapshot.agents {
            let Some((f, id)) = a.task.as_deref().and_then(|t| t.split_once('/')) else {
                continue;
            };
            if f == fs.feature.name && !fs.tasks.iter().any(|t| t.id == id) {
                usd += a.usage.as_ref().and_then(|u| u.cost_usd).unwrap_or(0.0);
            }
        }
        out.total_usd += usd;
        out.features.insert(fs.feature.name.clone(), usd);
    }
    out
}

/// The scopes whose limit is reached, each with the line that says so.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Stops(pub BTreeMap<String, String>);

impl Stops {
    /// Whether a new agent for `feature/task` must not start.
    pub(crate) fn blocks(&self, feature: &str, task: &str) -> bool {
        self.0.contains_key("sprint")
            || self.0.contains_key(&format!("feature {feature}"))
            || self.0.contains_key(&format!("task {feature}/{task}"))
    }
}

/// The budgets reached now.
pub(crate) fn reached(world: &World<'_>) -> Stops {
    let b = world.budget;
    let mut stops = BTreeMap::new();
    if b.sprint_usd.is_none()
        && b.feature_usd.is_none()
        && b.task_usd.is_none()
        && b.task_tokens.is_none()
    {
        return Stops(stops);
    }
    let spent = spend(world.snapshot);
    if let Some(limit) = b.sprint_usd {
        if spent.total_usd >= limit {
            stops.insert(
                "sprint".to_owned(),
                format!(
                    "sprint budget reached: ${:.2} spent of ${limit:.2}; raise budget.sprint_usd to go on",
                    spent.total_usd
                ),
            );
        }
    }
    for fs in &world.snapshot.features {
        let name = &fs.feature.name;
        if let Some(limit) = b.feature_usd {
            let usd = spent.features.get(name).copied().unwrap_or(0.0);
            if usd >= limit {
                stops.insert(
                    format!("feature {name}"),
                    format!("feature {name} budget reached: ${usd:.2} spent of ${limit:.2}; raise budget.feature_usd to go on"),
                );
            }
        }
        for t in &fs.tasks {
            if t.status == crate::state::TaskStatus::Done
                || t.status == crate::state::TaskStatus::Cancelled
            {
                continue;
            }
            if let Some(limit) = b.task_usd {
                if t.cost_usd >= limit {
                    stops.insert(
                        format!("task {name}/{}", t.id),
                        format!("task {name}/{} budget reached: ${:.2} spent of ${limit:.2}; raise budget.task_usd to go on", t.id, t.cost_usd),
                    );
                }
            }
            if let Some(limit) = b.task_tokens {
                if t.tokens >= limit {
                    stops.insert(
                        format!("task {name}/{}", t.id),
                        format!("task {name}/{} token budget reached: {} tokens of {limit}; raise budget.task_tokens to go on", t.id, t.tokens),
                    );
                }
            }
        }
    }
    Stops(stops)
}

/// A commit is owed when the reached set differs from the recorded one.
pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let now = reached(world).0;
    let recorded = world
        .snapshot
        .meta
        .as_ref()
        .map(|m| &m.budget_stops)
        .cloned()
        .unwrap_or_default();
    if now == recorded {
        Vec::new()
    } else {
        vec![Action::RecordBudgets { stops: now }]
    }
}
