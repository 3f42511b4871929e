//! CAB: routes a developer's finished work into review and runs the review
//! gates. A developer that ended badly loses its attempt, with the cause
//! its wrapper recorded (an API outage is not the task's fault).

use super::{agent, key, running, tasks, Action, GateStage, World};
use crate::state::TaskStatus;

pub fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    for (f, t) in tasks(world.snapshot) {
        let (feature, task) = (f.feature.name.clone(), t.id.clone());
        if world.busy.contains(&key(&feature, &task)) {
            continue;
        }
        match t.status {
            TaskStatus::InProgress => {
                let Some(holder) = t.claim.as_ref().map(|c| &c.holder) else {
                    continue;
                };
                let Some(a) = agent(world.snapshot, holder) else {
                    continue;
                };
                if running(a) {
                    continue;
                }
                match super::ended_badly(a) {
                    None => out.push(Action::DeveloperDone {
                        feature,
                        task,
                        agent: a.id.clone(),
                    }),
                    Some((cause, reason)) => out.push(Action::Retry {
                        feature,
                        task,
                        agent: Some(a.id.clone()),
                        cause,
                        reason,
                    }),
                }
            }
            TaskStatus::InReview => out.push(Action::RunGates {
                feature,
                task,
                stage: GateStage::Review,
            }),
            _ => {}
        }
    }
    out
}
