//! Refinery (the stage): which finished task merges next, and which
//! features are complete (convoys close through the Librarian stage).
//!
//! One merge at a time per repository, in queue order: priority, then the
//! time the task became ready (`updated` when it entered `in_docs`).

use super::{key, tasks, Action, World};
use crate::state::{ConvoyStatus, FeatureStatus, TaskStatus};

pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    // Any merge already running holds the queue.
    let merging = tasks(world.snapshot).any(|(f, t)| {
        t.status == TaskStatus::InDocs && world.busy.contains(&key(&f.feature.name, &t.id))
    });
    // The base first: a feature whose base moved merges it before any
    // task, and one whose base would not merge takes no task until fixed.
    let syncing = |f: &crate::state::FeatureState| {
        world.behind.contains(&f.feature.name) || f.feature.base_conflict.is_some()
    };
    for fs in &world.snapshot.features {
        let name = &fs.feature.name;
        if world.behind.contains(name)
            && !matches!(
                fs.feature.status,
                FeatureStatus::Done | FeatureStatus::Cancelled
            )
            && !world.busy.contains(&key(name, "base"))
        {
            out.push(Action::SyncBase {
                feature: name.clone(),
            });
        }
    }
    if !merging {
        let next = tasks(world.snapshot)
            .filter(|(f, t)| t.status == TaskStatus::InDocs && !syncing(f))
            .min_by(|(fa, a), (fb, b)| {
                (-a.priority, &a.updated, &fa.feature.name, a.line).cmp(&(
                    -b.priority,
                    &b.updated,
                    &fb.feature.name,
                    b.line,
                ))
            });
        if let Some((f, t)) = next {
            out.push(Action::Merge {
                feature: f.feature.name.clone(),
                task: t.id.clone(),
            });
        }
    }
    for fs in &world.snapshot.features {
        if matches!(
            fs.feature.status,
            FeatureStatus::Done | FeatureStatus::Cancelled
        ) {
            continue;
        }
        let finished = |s: TaskStatus| matches!(s, TaskStatus::Done | TaskStatus::Cancelled);
        // A quarantined task (its record does not parse) is not finished.
        let tasks_done = !fs.tasks.is_empty()
            && fs.tasks.iter().all(|t| finished(t.status))
            && !world.snapshot.has_quarantined_tasks(&fs.feature.name);
        let convoys_done = fs.convoys.iter().all(|c| c.status == ConvoyStatus::Done);
        if tasks_done && convoys_done {
            out.push(Action::CloseFeature {
                feature: fs.feature.name.clone(),
            });
        }
    }
    out
}
