//! Tester: a Tester agent works in the task's worktree after review, then the
//! test gates run there.

use super::{agent, agent_id, count_running, key, running, tasks, Action, GateStage, World};
use crate::state::TaskStatus;

pub fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    let mut free = world
        .limits
        .testers
        .saturating_sub(count_running(world.snapshot, "tester"));
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
        let id = agent_id(&feature, &task, "tester", t.attempts.max(1));
        match agent(world.snapshot, &id) {
            None if free > 0 => {
                free -= 1;
                out.push(Action::StartTester {
                    feature,
                    task,
                    attempt: t.attempts.max(1),
                });
            }
            None => {}
            Some(a) if running(a) => {}
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
