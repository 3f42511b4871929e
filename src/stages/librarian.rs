//! Librarian: when every task of a convoy is merged, a Librarian agent
//! updates the configured docs on a branch of its own, which the Refinery
//! merges like a task; the convoy is `done` once its docs are in. With no
//! docs configured, a finished convoy is simply done.

use super::{agent, agent_id, count_running, running, Action, World};
use crate::state::{ConvoyStatus, FeatureStatus, TaskStatus};

/// The pseudo-task name of a convoy's docs work: its branch is
/// `sprint/<feature>/docs-<convoy>`.
pub(crate) fn docs_task(convoy: &str) -> String {
    format!("docs-{convoy}")
}

pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    let free = world
        .limits
        .librarians
        .saturating_sub(count_running(world.snapshot, "librarian"));
    let mut free = super::breaker_slots(world, &world.profiles.librarian, free);
    let stops = super::budget::reached(world);
    for fs in &world.snapshot.features {
        if matches!(
            fs.feature.status,
            FeatureStatus::Done | FeatureStatus::Cancelled
        ) {
            continue;
        }
        let feature = &fs.feature.name;
        // Every Librarian edits the same docs: one convoy at a time per
        // feature, so the next one starts from the docs already merged.
        let mut docs_locked = fs.convoys.iter().any(|c| c.status == ConvoyStatus::InDocs);
        for c in &fs.convoys {
            let finished = c.tasks.iter().all(|id| {
                !world.snapshot.is_quarantined(feature, id)
                    && fs.tasks.iter().find(|t| &t.id == id).is_none_or(|t| {
                        matches!(t.status, TaskStatus::Done | TaskStatus::Cancelled)
                    })
            });
            let merged_any = c.tasks.iter().any(|id| {
                fs.tasks
                    .iter()
                    .any(|t| &t.id == id && t.status == TaskStatus::Done)
            });
            match c.status {
                ConvoyStatus::Open if finished => {
                    if world.limits.librarians == 0 || !merged_any {
                        out.push(Action::CloseConvoy {
                            feature: feature.clone(),
                            convoy: c.id.clone(),
                        });
                    } else if free > 0
                        && !docs_locked
                        && c.retry_after.is_none_or(|at| at <= world.now)
                        && !stops.blocks(feature, &docs_task(&c.id))
                    {
                        free -= 1;
                        docs_locked = true;
                        out.push(Action::StartLibrarian {
                            feature: feature.clone(),
                            convoy: c.id.clone(),
                            attempt: c.attempts + 1,
                        });
                    }
                }
                ConvoyStatus::InDocs => {
                    // Records from before `librarian` was kept name the
                    // librarian by the attempt.
                    let id = c.librarian.clone().unwrap_or_else(|| {
                        agent_id(feature, &docs_task(&c.id), "librarian", c.attempts)
                    });
                    let key = format!("{feature}/{}", docs_task(&c.id));
                    match agent(world.snapshot, &id) {
                        // The orchestrator stopped between the two steps.
                        None => out.push(Action::StartLibrarian {
                            feature: feature.clone(),
                            convoy: c.id.clone(),
                            attempt: c.attempts,
                        }),
                        Some(a) if running(a) => {}
                        // An API outage wrote no docs: that is not "no docs
                        // to write". Another Librarian, after a backoff.
                        Some(a) if a.cause.is_some_and(|c| c.is_infrastructure()) => {
                            out.push(Action::RestartLibrarian {
                                feature: feature.clone(),
                                convoy: c.id.clone(),
                                agent: id,
                                cause: a.cause.unwrap_or(crate::state::Cause::Crash),
                            })
                        }
                        Some(_) if world.busy.contains(&key) => {}
                        Some(a) => out.push(Action::MergeDocs {
                            feature: feature.clone(),
                            convoy: c.id.clone(),
                            failed: super::ended_badly(a).map(|(_, why)| why),
                        }),
                    }
                }
                _ => {}
            }
        }
    }
    out
}
