//! CAB: routes a developer's finished work into review and runs the review
//! gates. A developer that ended badly loses its attempt, with the cause
//! its wrapper recorded (an API outage is not the task's fault).
//!
//! Review gates of `kind: agent` are AI Reviewers. They run after the
//! command gates passed (no tokens are spent on work a linter refuses), one
//! at a time in config order, each a Reviewer agent in the task's worktree
//! that the task remembers (`review.reviewer`) until its verdict is read.
//! A Reviewer past its gate's `timeout` is stopped; one that met an API
//! outage is replaced after a backoff, no attempt spent.

use std::collections::HashMap;

use super::{
    agent, backing_off, breaker_slots, budget, key, running, tasks, Action, GateStage, World,
};
use crate::state::{Cause, Task, TaskStatus};

pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    // Reviewers each profile's breaker lets start in this pass.
    let mut slots: HashMap<&str, usize> = HashMap::new();
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
            TaskStatus::InReview => match &t.review {
                // The command gates first (again, when the reviewers
                // configured are all behind it).
                None => out.push(Action::RunGates {
                    feature,
                    task,
                    stage: GateStage::Review,
                }),
                Some(_) => out.extend(reviewer_owed(world, &mut slots, feature, t)),
            },
            _ => {}
        }
    }
    out
}

/// What the task's next AI Reviewer is owed: a start, a stop, a restart or
/// a reading of its verdict.
fn reviewer_owed<'w>(
    world: &World<'w>,
    slots: &mut HashMap<&'w str, usize>,
    feature: String,
    t: &Task,
) -> Option<Action> {
    let review = t.review.as_ref()?;
    let task = t.id.clone();
    let Some(next) = world
        .profiles
        .reviewers
        .iter()
        .find(|g| !review.approved.contains(&g.gate))
    else {
        // Every reviewer configured approved (the config changed under
        // the task): the command gates move it on.
        return Some(Action::RunGates {
            feature,
            task,
            stage: GateStage::Review,
        });
    };
    let current = review
        .reviewer
        .as_deref()
        .map(|id| (id, agent(world.snapshot, id)));
    match current {
        None | Some((_, None)) => {
            let free = slots
                .entry(next.profile.as_str())
                .or_insert_with(|| breaker_slots(world, &next.profile, usize::MAX));
            if *free == 0 || backing_off(world, t) || budget::reached(world).blocks(&feature, &task)
            {
                return None;
            }
            *free -= 1;
            Some(Action::StartReviewer {
                feature,
                task,
                gate: next.gate.clone(),
            })
        }
        Some((id, Some(a))) if running(a) => {
            let over = world.now - a.started;
            (a.started > 0 && over >= next.timeout_secs as i64).then(|| Action::MarkDead {
                agent: id.to_owned(),
                cause: Cause::Timeout,
                reason: format!(
                    "reviewer ran {over}s, past review gate {}'s timeout of {}s",
                    next.gate, next.timeout_secs
                ),
            })
        }
        Some((id, Some(a))) if a.cause.is_some_and(|c| c.is_infrastructure()) => {
            Some(Action::RestartReviewer {
                feature,
                task,
                agent: id.to_owned(),
                cause: a.cause.unwrap_or(Cause::Crash),
            })
        }
        Some((id, Some(_))) => Some(Action::JudgeReview {
            feature,
            task,
            agent: id.to_owned(),
            gate: next.gate.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::stages::{Limits, Profiles, ReviewerGate};
    use crate::state::{
        Agent, AgentState, Feature, FeatureState, FeatureStatus, Review, Snapshot, SprintMeta,
    };

    fn snapshot(review: Option<Review>, agents: Vec<Agent>) -> Snapshot {
        let mut feature = Feature::new("f", "");
        feature.status = FeatureStatus::Active;
        let mut t = Task::new("T1", "T1", "");
        t.status = TaskStatus::InReview;
        t.review = review;
        Snapshot {
            meta: Some(SprintMeta::new("")),
            features: vec![FeatureState {
                feature,
                convoys: vec![],
                tasks: vec![t],
            }],
            agents,
            quarantined: vec![],
        }
    }

    fn reviewer(state: AgentState, started: i64, cause: Option<Cause>) -> Agent {
        let mut a: Agent = serde_yaml::from_str(&format!(
            "id: f.T1.review.1\nrole: reviewer\nstate: {state}\ntask: f/T1\n"
        ))
        .unwrap();
        a.started = started;
        a.cause = cause;
        a
    }

    fn owed_with(s: &Snapshot, now: i64) -> Vec<Action> {
        let (live, activity, busy, behind) = (
            HashSet::new(),
            HashMap::new(),
            HashSet::new(),
            HashSet::new(),
        );
        let budget = crate::config::Budget::default();
        let profiles = Profiles {
            developer: "dev".into(),
            reviewers: vec![
                ReviewerGate {
                    gate: "ai".into(),
                    profile: "rev".into(),
                    timeout_secs: 100,
                },
                ReviewerGate {
                    gate: "security".into(),
                    profile: "rev".into(),
                    timeout_secs: 100,
                },
            ],
            ..Profiles::default()
        };
        owed(&World {
            snapshot: s,
            now,
            live: &live,
            activity: &activity,
            busy: &busy,
            limits: Limits::default(),
            budget: &budget,
            profiles: &profiles,
            behind: &behind,
            routing: &crate::router::Routing::default(),
        })
    }

    fn named(reviewer: Option<&str>, approved: &[&str]) -> Option<Review> {
        Some(Review {
            approved: approved.iter().map(|g| g.to_string()).collect(),
            reviewer: reviewer.map(str::to_owned),
        })
    }

    #[test]
    fn command_gates_come_first_then_each_reviewer_in_order() {
        let s = snapshot(None, vec![]);
        assert!(matches!(
            owed_with(&s, 1000)[..],
            [Action::RunGates {
                stage: GateStage::Review,
                ..
            }]
        ));
        let s = snapshot(named(None, &[]), vec![]);
        assert!(
            matches!(&owed_with(&s, 1000)[..], [Action::StartReviewer { gate, .. }] if gate == "ai")
        );
        let s = snapshot(named(None, &["ai"]), vec![]);
        assert!(
            matches!(&owed_with(&s, 1000)[..], [Action::StartReviewer { gate, .. }] if gate == "security")
        );
        let s = snapshot(named(None, &["ai", "security"]), vec![]);
        assert!(matches!(owed_with(&s, 1000)[..], [Action::RunGates { .. }]));
    }

    #[test]
    fn a_running_reviewer_is_stopped_past_its_timeout_and_an_ended_one_judged() {
        let id = Some("f.T1.review.1");
        let s = snapshot(
            named(id, &[]),
            vec![reviewer(AgentState::Running, 1000, None)],
        );
        assert!(owed_with(&s, 1099).is_empty());
        assert!(matches!(
            &owed_with(&s, 1100)[..],
            [Action::MarkDead {
                cause: Cause::Timeout,
                ..
            }]
        ));
        let s = snapshot(
            named(id, &[]),
            vec![reviewer(AgentState::Exited, 1000, None)],
        );
        assert!(
            matches!(&owed_with(&s, 1100)[..], [Action::JudgeReview { gate, .. }] if gate == "ai")
        );
        let s = snapshot(
            named(id, &[]),
            vec![reviewer(AgentState::Exited, 1000, Some(Cause::RateLimit))],
        );
        assert!(matches!(
            &owed_with(&s, 1100)[..],
            [Action::RestartReviewer {
                cause: Cause::RateLimit,
                ..
            }]
        ));
    }
}
