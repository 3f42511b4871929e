//! The deterministic stages of a sprint: each is a function of the state
//! (and of what the daemon observed about processes) that returns what is
//! owed. They never act; the daemon carries their actions out.
//!
//! Being pure makes them level-triggered: after a crash or a missed event,
//! the next reconcile computes the same debts from the same state and the
//! sprint carries on where it was.

use std::collections::{HashMap, HashSet};

use crate::state::{Agent, Breaker, Cause, Claim, FeatureState, Snapshot, Task, TaskStatus};

pub(crate) mod budget;
pub(crate) mod cab;
pub(crate) mod librarian;
pub(crate) mod manager;
pub(crate) mod refinery;
pub(crate) mod route;
pub(crate) mod tester;
pub(crate) mod trouble;
pub(crate) mod witness;

/// What the stages need to know beyond the state.
#[derive(Debug, Clone)]
pub(crate) struct World<'a> {
    pub(crate) snapshot: &'a Snapshot,
    /// Unix seconds.
    pub(crate) now: i64,
    /// Agents whose tmux session is alive.
    pub(crate) live: &'a HashSet<String>,
    /// Last pane output per live agent (unix seconds).
    pub(crate) activity: &'a HashMap<String, i64>,
    /// Tasks whose gates this orchestrator is running right now.
    pub(crate) busy: &'a HashSet<String>,
    pub(crate) limits: Limits,
    /// Spending limits (`budget` in the config).
    pub(crate) budget: &'a crate::config::Budget,
    /// Which agent profile plays each role, for the circuit breakers.
    pub(crate) profiles: &'a Profiles,
    /// Features whose base branch must be synced into the integration
    /// branch first (see [`crate::sync::behind`]).
    pub(crate) behind: &'a HashSet<String>,
    /// `route:` rules and the profiles' capabilities (see [`route`]).
    pub(crate) routing: &'a crate::router::Routing,
}

/// The agent profile of each AI role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profiles {
    pub(crate) developer: String,
    pub(crate) tester: String,
    pub(crate) librarian: String,
    /// The review gates of `kind: agent`, in config order.
    pub(crate) reviewers: Vec<ReviewerGate>,
}

/// A review gate judged by an AI Reviewer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReviewerGate {
    /// The gate's name.
    pub(crate) gate: String,
    /// The Reviewer's agent profile.
    pub(crate) profile: String,
    /// How long a Reviewer may run before it is stopped (`timeout`).
    pub(crate) timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) developers: usize,
    pub(crate) testers: usize,
    /// Librarians at once; 0 when no docs are configured.
    pub(crate) librarians: usize,
    /// Attempts a task gets before it is `failed`.
    pub(crate) max_attempts: u32,
    /// Lease length: a claim with no agent behind it is free after this.
    pub(crate) lease_secs: u64,
    /// An agent with no sign of life (stream event, pane output, commit)
    /// for this long is hung (`timeouts.hung`).
    pub(crate) hung_secs: u64,
    /// Cool-down of an open circuit breaker before one probe run.
    pub(crate) breaker_cooldown_secs: u64,
    /// Infrastructure failures in a row that open a breaker.
    pub(crate) breaker_threshold: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            developers: 3,
            testers: 3,
            librarians: 0,
            max_attempts: 3,
            lease_secs: 600,
            hung_secs: 900,
            breaker_cooldown_secs: 300,
            breaker_threshold: 3,
        }
    }
}

/// A gate stage the daemon runs in a task's worktree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum GateStage {
    Review,
    Test,
}

/// Something owed to the sprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Claim the task and start a Developer on it (attempt `attempt`).
    StartDeveloper {
        feature: String,
        task: String,
        attempt: u32,
        /// The profile the router chose, and the rule that chose it.
        route: crate::router::Choice,
    },
    /// The developer ended well: on to review.
    DeveloperDone {
        feature: String,
        task: String,
        agent: String,
    },
    /// Start a Tester in the task's worktree.
    StartTester {
        feature: String,
        task: String,
        attempt: u32,
        /// The profile the router chose, and the rule that chose it.
        route: crate::router::Choice,
    },
    /// Start an AI Reviewer for review gate `gate` in the task's worktree.
    StartReviewer {
        feature: String,
        task: String,
        gate: String,
    },
    /// The Reviewer met an infrastructure failure: another starts after a
    /// backoff, no attempt spent.
    RestartReviewer {
        feature: String,
        task: String,
        agent: String,
        cause: Cause,
    },
    /// The Reviewer ended: discard any change it made, read its verdict
    /// and record it as gate `gate`'s result.
    JudgeReview {
        feature: String,
        task: String,
        agent: String,
        gate: String,
    },
    /// Run a gate stage in the task's worktree.
    RunGates {
        feature: String,
        task: String,
        stage: GateStage,
    },
    /// The attempt ended badly (agent failed, died, hung, changed nothing):
    /// keep its work, stop it, and retry the task after a backoff — or fail
    /// it past the attempt limit. Infrastructure causes count no attempt.
    Retry {
        feature: String,
        task: String,
        agent: Option<String>,
        cause: Cause,
        reason: String,
    },
    /// The Tester's run failed for a reason that is not the work's
    /// (infrastructure): start another Tester after a backoff.
    RestartTester {
        feature: String,
        task: String,
        agent: String,
        cause: Cause,
    },
    /// A `todo` task waits on a task that failed or was cancelled.
    Block {
        feature: String,
        task: String,
        reason: String,
    },
    /// A task we blocked can run again: what it waited on is back.
    Unblock { feature: String, task: String },
    /// An agent profile's breaker reached its threshold: record it open.
    OpenBreaker { profile: String },
    /// The budgets reached differ from those recorded: record the change.
    RecordBudgets {
        stops: std::collections::BTreeMap<String, String>,
    },
    /// Merge the task's branch into the integration branch (Refinery).
    Merge { feature: String, task: String },
    /// Every task of the convoy is done.
    CloseConvoy { feature: String, convoy: String },
    /// Every convoy of the feature is done.
    CloseFeature { feature: String },
    /// Start a Librarian on a finished convoy's docs.
    StartLibrarian {
        feature: String,
        convoy: String,
        attempt: u32,
    },
    /// The Librarian's run failed for a reason that is not the docs'
    /// (infrastructure): another Librarian after a backoff, no attempt spent.
    RestartLibrarian {
        feature: String,
        convoy: String,
        agent: String,
        cause: Cause,
    },
    /// Merge the Librarian's docs branch (Refinery). `failed` says how
    /// its run went badly, if it did: then a branch with nothing new is a
    /// failed attempt, not "no docs to change".
    MergeDocs {
        feature: String,
        convoy: String,
        failed: Option<String>,
    },
    /// Merge the base branch's new commits into the integration branch.
    SyncBase { feature: String },
    /// A tester's or librarian's session is gone while its record says it
    /// runs (the orchestrator died while starting it, or tmux was killed),
    /// or it hung: stop it and record it dead with the cause.
    MarkDead {
        agent: String,
        cause: Cause,
        reason: String,
    },
}

impl Action {
    pub(crate) fn task(&self) -> (&str, &str) {
        match self {
            Action::StartDeveloper { feature, task, .. }
            | Action::DeveloperDone { feature, task, .. }
            | Action::StartTester { feature, task, .. }
            | Action::RunGates { feature, task, .. }
            | Action::StartReviewer { feature, task, .. }
            | Action::RestartReviewer { feature, task, .. }
            | Action::JudgeReview { feature, task, .. }
            | Action::Retry { feature, task, .. }
            | Action::RestartTester { feature, task, .. }
            | Action::Block { feature, task, .. }
            | Action::Unblock { feature, task }
            | Action::Merge { feature, task } => (feature, task),
            Action::CloseConvoy { feature, convoy }
            | Action::StartLibrarian {
                feature, convoy, ..
            }
            | Action::RestartLibrarian {
                feature, convoy, ..
            }
            | Action::MergeDocs {
                feature, convoy, ..
            } => (feature, convoy),
            Action::CloseFeature { feature } => (feature, ""),
            Action::SyncBase { feature } => (feature, "base"),
            Action::MarkDead { agent, .. } => (agent, ""),
            Action::OpenBreaker { profile } => (profile, ""),
            Action::RecordBudgets { .. } => ("", ""),
        }
    }
}

/// Every stage's debts, in the order the daemon should pay them: endings and
/// deaths first (they free slots), then new work.
pub(crate) fn owed(world: &World<'_>) -> Vec<Action> {
    let mut actions = witness::owed(world);
    actions.extend(budget::owed(world));
    actions.extend(breakers_owed(world));
    let retried: HashSet<(String, String)> = actions
        .iter()
        .map(|a| (a.task().0.to_owned(), a.task().1.to_owned()))
        .collect();
    let keep = |a: &Action| !retried.contains(&(a.task().0.to_owned(), a.task().1.to_owned()));
    actions.extend(cab::owed(world).into_iter().filter(keep));
    actions.extend(tester::owed(world).into_iter().filter(keep));
    actions.extend(refinery::owed(world).into_iter().filter(keep));
    actions.extend(librarian::owed(world).into_iter().filter(keep));
    actions.extend(manager::owed(world).into_iter().filter(keep));
    actions
}

/// The id of the agent working on `task` in `role` for `attempt`:
/// `<feature>.<task>.<role>.<attempt>`, so each attempt keeps its record.
/// How an ended agent's run went badly, if it did: its cause (a crash
/// when none was recorded) and a line naming the run, its exit and the
/// CLI's own error.
pub(crate) fn ended_badly(a: &Agent) -> Option<(Cause, String)> {
    if let (Some(0), None) = (a.exit_status, a.cause) {
        return None;
    }
    let what = match a.exit_status {
        Some(code) => format!("{} {} exited with status {code}", a.role, a.id),
        None => format!("{} {} {}", a.role, a.id, a.state),
    };
    let cause = a.cause.unwrap_or(Cause::Crash);
    Some(match &a.error {
        Some(e) if !e.is_empty() => (cause, format!("{what} ({cause}: {e})")),
        _ => (cause, format!("{what} ({cause})")),
    })
}

pub(crate) fn agent_id(feature: &str, task: &str, role: &str, attempt: u32) -> String {
    format!("{feature}.{task}.{}.{attempt}", role_tag(role))
}

fn role_tag(role: &str) -> &str {
    match role {
        "developer" => "dev",
        "tester" => "test",
        "librarian" => "docs",
        "reviewer" => "review",
        other => other,
    }
}

pub(crate) use crate::names::{integration_branch, task_branch};

pub(crate) fn agent<'s>(snapshot: &'s Snapshot, id: &str) -> Option<&'s Agent> {
    snapshot.agents.iter().find(|a| a.id == id)
}

/// Whether an agent record is still meant to be running.
pub(crate) fn running(a: &Agent) -> bool {
    crate::state::liveness::is_running(a)
}

/// Running agents of `role` (any task).
pub(crate) fn count_running(snapshot: &Snapshot, role: &str) -> usize {
    snapshot
        .agents
        .iter()
        .filter(|a| a.role == role && running(a))
        .count()
}

/// Active features' tasks, with their feature.
pub(crate) fn tasks(snapshot: &Snapshot) -> impl Iterator<Item = (&FeatureState, &Task)> {
    snapshot
        .features
        .iter()
        .filter(|f| {
            !matches!(
                f.feature.status,
                crate::state::FeatureStatus::Done | crate::state::FeatureStatus::Cancelled
            )
        })
        .flat_map(|f| f.tasks.iter().map(move |t| (f, t)))
}

pub(crate) fn key(feature: &str, task: &str) -> String {
    format!("{feature}/{task}")
}

/// Tasks an agent or the gates may be working on: their paths are locked.
pub(crate) fn holds_paths(status: TaskStatus) -> bool {
    status.is_active()
}

/// Whether a running agent is hung (the rule is
/// [`crate::state::liveness::hung_for`]), with what the world observed.
pub(crate) fn hung_for(world: &World<'_>, a: &Agent, claim: Option<&Claim>) -> Option<i64> {
    crate::state::liveness::hung_for(
        a,
        claim,
        world.activity.get(&a.id).copied(),
        world.now,
        world.limits.hung_secs,
    )
}

/// What an agent profile's circuit breaker lets start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerGate {
    /// Closed: start freely.
    Closed,
    /// Open, cooled down (or resumed), no probe running: one may start.
    Probe,
    /// Open: start nothing.
    Open,
}

/// The one home of the breaker rule, for the stages and the engine alike.
pub(crate) fn breaker_gate(
    b: Option<&Breaker>,
    snapshot: &Snapshot,
    limits: &Limits,
    now: i64,
) -> BreakerGate {
    let Some(b) = b else {
        return BreakerGate::Closed;
    };
    if b.failures < limits.breaker_threshold.max(1) {
        return BreakerGate::Closed;
    }
    let probing = b
        .probe
        .as_deref()
        .and_then(|id| agent(snapshot, id))
        .is_some_and(running);
    let cooled = b.half_open || now >= b.last_failure + limits.breaker_cooldown_secs as i64;
    if !probing && cooled {
        BreakerGate::Probe
    } else {
        BreakerGate::Open
    }
}

/// The breaker of `profile`, if it has one.
pub(crate) fn breaker<'s>(snapshot: &'s Snapshot, profile: &str) -> Option<&'s Breaker> {
    snapshot.meta.as_ref()?.breakers.get(profile)
}

/// How many agents of `profile` may start now, given `free` slots.
pub(crate) fn breaker_slots(world: &World<'_>, profile: &str, free: usize) -> usize {
    match breaker_gate(
        breaker(world.snapshot, profile),
        world.snapshot,
        &world.limits,
        world.now,
    ) {
        BreakerGate::Closed => free,
        BreakerGate::Probe => free.min(1),
        BreakerGate::Open => 0,
    }
}

/// Breakers past their threshold that are not yet recorded open.
fn breakers_owed(world: &World<'_>) -> Vec<Action> {
    let Some(meta) = &world.snapshot.meta else {
        return Vec::new();
    };
    meta.breakers
        .iter()
        .filter(|(_, b)| {
            b.failures >= world.limits.breaker_threshold.max(1) && b.open_since.is_none()
        })
        .map(|(p, _)| Action::OpenBreaker { profile: p.clone() })
        .collect()
}

/// Whether a task's backoff still holds it back.
pub(crate) fn backing_off(world: &World<'_>, t: &Task) -> bool {
    t.retry_after.is_some_and(|at| at > world.now)
}

/// A feature is stalled when nothing of it can move any more: no task is
/// active or waiting to run, and some are blocked, failed or cancelled
/// while not every one is finished.
pub(crate) fn stalled(fs: &FeatureState) -> bool {
    use crate::state::FeatureStatus;
    if matches!(
        fs.feature.status,
        FeatureStatus::Done | FeatureStatus::Cancelled
    ) || fs.tasks.is_empty()
    {
        return false;
    }
    let stuck = |s: TaskStatus| matches!(s, TaskStatus::Blocked | TaskStatus::Failed);
    let moving = fs
        .tasks
        .iter()
        .any(|t| t.status == TaskStatus::Todo || t.status.is_active());
    !moving && fs.tasks.iter().any(|t| stuck(t.status))
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;
    use crate::state::{AgentState, Claim, Feature, FeatureStatus, SprintMeta};

    fn task(id: &str, status: TaskStatus, deps: &[&str], paths: &[&str]) -> Task {
        let mut t = Task::new(id, id, "");
        t.status = status;
        t.deps = deps.iter().map(|d| d.to_string()).collect();
        t.paths = paths.iter().map(|p| p.to_string()).collect();
        t.line = id[1..].parse().unwrap_or(0);
        t
    }

    fn snapshot(tasks: Vec<Task>, agents: Vec<Agent>) -> Snapshot {
        let mut feature = Feature::new("f", "");
        feature.status = FeatureStatus::Active;
        Snapshot {
            meta: Some(SprintMeta::new("")),
            features: vec![FeatureState {
                feature,
                convoys: vec![],
                tasks,
            }],
            agents,
            quarantined: vec![],
        }
    }

    fn agent(id: &str, role: &str, state: AgentState, exit: Option<i32>) -> Agent {
        serde_yaml::from_str(&format!(
            "id: {id}\nrole: {role}\nstate: {}\n{}",
            state,
            exit.map(|c| format!("exit_status: {c}\n"))
                .unwrap_or_default()
        ))
        .unwrap()
    }

    fn claimed(mut t: Task, holder: &str, expires: i64) -> Task {
        t.claim = Some(Claim {
            holder: holder.into(),
            since: String::new(),
            expires,
            ttl: 600,
        });
        t
    }

    struct Fixture {
        live: HashSet<String>,
        activity: HashMap<String, i64>,
        busy: HashSet<String>,
        budget: crate::config::Budget,
        profiles: Profiles,
        behind: HashSet<String>,
        routing: crate::router::Routing,
    }

    impl Fixture {
        fn new(live: &[&str]) -> Self {
            Fixture {
                live: live.iter().map(|s| s.to_string()).collect(),
                activity: HashMap::new(),
                busy: HashSet::new(),
                budget: crate::config::Budget::default(),
                profiles: Profiles {
                    developer: "dev".into(),
                    tester: "test".into(),
                    librarian: "docs".into(),
                    reviewers: vec![],
                },
                behind: HashSet::new(),
                routing: crate::router::Routing::default(),
            }
        }
        fn world<'a>(&'a self, s: &'a Snapshot, now: i64) -> World<'a> {
            World {
                snapshot: s,
                now,
                live: &self.live,
                activity: &self.activity,
                busy: &self.busy,
                limits: Limits {
                    developers: 2,
                    ..Limits::default()
                },
                budget: &self.budget,
                profiles: &self.profiles,
                behind: &self.behind,
                routing: &self.routing,
            }
        }
    }

    fn starts(actions: &[Action]) -> Vec<&str> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::StartDeveloper { task, .. } => Some(task.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn manager_waits_for_deps_path_locks_and_free_slots() {
        let s = snapshot(
            vec![
                task("T1", TaskStatus::Done, &[], &["a.rs"]),
                task("T2", TaskStatus::Todo, &["T1"], &["b.rs"]),
                task("T3", TaskStatus::Todo, &["T9"], &["c.rs"]),
                task("T4", TaskStatus::InReview, &[], &["d.rs"]),
                task("T5", TaskStatus::Todo, &[], &["d.rs"]),
                task("T6", TaskStatus::Todo, &[], &["e.rs"]),
                task("T7", TaskStatus::Todo, &[], &["f.rs"]),
            ],
            vec![],
        );
        let fx = Fixture::new(&[]);
        // T3 waits for a dependency, T5 for T4's path; two slots: T2, T6.
        assert_eq!(starts(&manager::owed(&fx.world(&s, 0))), vec!["T2", "T6"]);
    }

    #[test]
    fn manager_prefers_priority_and_respects_pause_and_running_developers() {
        let mut high = task("T9", TaskStatus::Todo, &[], &["z.rs"]);
        high.priority = 5;
        let mut s = snapshot(
            vec![
                task("T1", TaskStatus::Todo, &[], &["a.rs"]),
                task("T2", TaskStatus::Todo, &[], &["a.rs"]),
                high,
            ],
            vec![agent("x", "developer", AgentState::Running, None)],
        );
        let fx = Fixture::new(&["x"]);
        // One slot left; T9 first by priority; T2 shares T1's path anyway.
        assert_eq!(starts(&manager::owed(&fx.world(&s, 0))), vec!["T9"]);
        s.meta.as_mut().unwrap().paused = true;
        assert!(manager::owed(&fx.world(&s, 0)).is_empty());
    }

    #[test]
    fn witness_retries_dead_and_hung_agents_but_not_busy_ones() {
        let s = snapshot(
            vec![
                claimed(task("T1", TaskStatus::InProgress, &[], &[]), "d1", 100),
                claimed(task("T2", TaskStatus::InProgress, &[], &[]), "d2", 100),
                claimed(task("T3", TaskStatus::InProgress, &[], &[]), "d3", 100),
                claimed(task("T4", TaskStatus::InProgress, &[], &[]), "d4", 3000),
            ],
            vec![
                agent("d1", "developer", AgentState::Running, None),
                agent("d2", "developer", AgentState::Running, None),
                agent("d3", "developer", AgentState::Running, None),
                agent("d4", "developer", AgentState::Running, None),
            ],
        );
        let mut fx = Fixture::new(&["d2", "d3", "d4"]);
        fx.activity.insert("d2".into(), 1900); // printed recently: not hung
        fx.activity.insert("d3".into(), 0);
        let actions = witness::owed(&fx.world(&s, 2000));
        let retried: Vec<_> = actions.iter().map(|a| a.task().1).collect();
        assert_eq!(retried, vec!["T1", "T3"]);
        assert!(
            matches!(&actions[0], Action::Retry { reason, .. } if reason.contains("tmux session is gone"))
        );
        assert!(matches!(&actions[1], Action::Retry { reason, .. } if reason.contains("hung")));
    }

    #[test]
    fn witness_marks_a_tester_without_a_session_dead_but_not_fleet_workers() {
        let mut tester = agent("f.T1.test.1", "tester", AgentState::Running, None);
        tester.task = Some("f/T1".into());
        let mut fleet = agent("w1", "fleet", AgentState::Starting, None);
        fleet.task = Some("w1".into());
        let s = snapshot(
            vec![task("T1", TaskStatus::InTests, &[], &[])],
            vec![tester, fleet],
        );
        let fx = Fixture::new(&[]);
        assert_eq!(
            witness::owed(&fx.world(&s, 0)),
            vec![Action::MarkDead {
                agent: "f.T1.test.1".into(),
                cause: Cause::Crash,
                reason: "its tmux session is gone".into(),
            }]
        );
    }

    #[test]
    fn cab_routes_developer_endings_and_reviews() {
        let s = snapshot(
            vec![
                claimed(task("T1", TaskStatus::InProgress, &[], &[]), "d1", 999),
                claimed(task("T2", TaskStatus::InProgress, &[], &[]), "d2", 999),
                task("T3", TaskStatus::InReview, &[], &[]),
            ],
            vec![
                agent("d1", "developer", AgentState::Exited, Some(0)),
                agent("d2", "developer", AgentState::Exited, Some(3)),
            ],
        );
        let fx = Fixture::new(&[]);
        let actions = cab::owed(&fx.world(&s, 0));
        assert!(matches!(&actions[0], Action::DeveloperDone { task, .. } if task == "T1"));
        assert!(matches!(&actions[1], Action::Retry { reason, .. } if reason.contains("status 3")));
        assert!(matches!(
            &actions[2],
            Action::RunGates {
                stage: GateStage::Review,
                ..
            }
        ));
    }

    #[test]
    fn tester_starts_once_then_gates_judge() {
        let mut t = task("T1", TaskStatus::InTests, &[], &[]);
        t.attempts = 2;
        let s = snapshot(vec![t.clone()], vec![]);
        let fx = Fixture::new(&[]);
        assert_eq!(
            tester::owed(&fx.world(&s, 0)),
            vec![Action::StartTester {
                feature: "f".into(),
                task: "T1".into(),
                attempt: 2,
                route: crate::router::Choice {
                    profile: "test".into(),
                    rule: "roles.tester.agent".into(),
                    passed: Vec::new(),
                },
            }]
        );
        let id = agent_id("f", "T1", "tester", 2);
        t.tester = Some(id.clone());
        let s = snapshot(
            vec![t.clone()],
            vec![agent(&id, "tester", AgentState::Exited, Some(0))],
        );
        assert!(matches!(
            &tester::owed(&fx.world(&s, 0))[0],
            Action::RunGates {
                stage: GateStage::Test,
                ..
            }
        ));
        // An API outage is not a verdict on the work: another Tester.
        let mut outage = agent(&id, "tester", AgentState::Exited, Some(1));
        outage.cause = Some(Cause::Overloaded);
        let s = snapshot(vec![t], vec![outage]);
        assert!(matches!(
            &tester::owed(&fx.world(&s, 0))[0],
            Action::RestartTester {
                cause: Cause::Overloaded,
                ..
            }
        ));
    }

    #[test]
    fn regression_a_librarian_the_api_failed_is_restarted_not_taken_for_no_docs() {
        use crate::state::{Convoy, ConvoyStatus};
        let mut s = snapshot(vec![task("T1", TaskStatus::Done, &[], &[])], vec![]);
        let convoy = |status, librarian: Option<&str>, retry_after| Convoy {
            id: "US1".into(),
            title: String::new(),
            status,
            tasks: vec!["T1".into()],
            attempts: 1,
            reason: None,
            runs: 1,
            librarian: librarian.map(str::to_owned),
            retry_after,
        };
        s.features[0].convoys = vec![convoy(ConvoyStatus::InDocs, Some("lib-1"), None)];
        let mut outage = agent("lib-1", "librarian", AgentState::Exited, Some(1));
        outage.cause = Some(Cause::Auth);
        s.agents = vec![outage];
        let mut fx = Fixture::new(&[]);
        fx.profiles.librarian = "docs".into();
        let mut world = fx.world(&s, 0);
        world.limits.librarians = 1;
        assert!(
            matches!(&librarian::owed(&world)[..], [Action::RestartLibrarian { agent, cause: Cause::Auth, .. }] if agent == "lib-1"),
            "{:?}",
            librarian::owed(&world)
        );
        // A failed run with no infrastructure cause goes to the merge as before.
        s.agents[0].cause = Some(Cause::Crash);
        let mut world = fx.world(&s, 0);
        world.limits.librarians = 1;
        assert!(matches!(
            &librarian::owed(&world)[..],
            [Action::MergeDocs { .. }]
        ));
        // Back to open, the next Librarian waits out its backoff.
        s.agents.clear();
        s.features[0].convoys = vec![convoy(ConvoyStatus::Open, None, Some(100))];
        let mut world = fx.world(&s, 99);
        world.limits.librarians = 1;
        assert!(librarian::owed(&world).is_empty());
        let mut world = fx.world(&s, 100);
        world.limits.librarians = 1;
        assert!(matches!(
            &librarian::owed(&world)[..],
            [Action::StartLibrarian { attempt: 2, .. }]
        ));
    }

    #[test]
    fn cab_carries_the_recorded_cause_and_defaults_to_crash() {
        let mut auth = agent("d1", "developer", AgentState::Exited, Some(1));
        auth.cause = Some(Cause::Auth);
        auth.error = Some("Invalid API key".into());
        let s = snapshot(
            vec![
                claimed(task("T1", TaskStatus::InProgress, &[], &[]), "d1", 999),
                claimed(task("T2", TaskStatus::InProgress, &[], &[]), "d2", 999),
            ],
            vec![auth, agent("d2", "developer", AgentState::Exited, Some(2))],
        );
        let actions = cab::owed(&Fixture::new(&[]).world(&s, 0));
        assert!(
            matches!(&actions[0], Action::Retry { cause: Cause::Auth, reason, .. } if reason.contains("Invalid API key"))
        );
        assert!(matches!(
            &actions[1],
            Action::Retry {
                cause: Cause::Crash,
                ..
            }
        ));
    }

    #[test]
    fn manager_waits_out_a_backoff_and_blocks_tasks_whose_dependency_failed() {
        let mut waiting = task("T1", TaskStatus::Todo, &[], &["a.rs"]);
        waiting.retry_after = Some(100);
        let s = snapshot(
            vec![
                waiting,
                task("T2", TaskStatus::Cancelled, &[], &["b.rs"]),
                task("T3", TaskStatus::Todo, &["T2"], &["c.rs"]),
            ],
            vec![],
        );
        let fx = Fixture::new(&[]);
        let early = manager::owed(&fx.world(&s, 50));
        assert!(starts(&early).is_empty(), "{early:?}");
        assert!(
            matches!(&early[0], Action::Block { task, reason, .. } if task == "T3" && reason.contains("T2 is cancelled"))
        );
        assert_eq!(starts(&manager::owed(&fx.world(&s, 100))), vec!["T1"]);
    }

    /// The profile each started developer got, in start order.
    fn routed(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::StartDeveloper { task, route, .. } => {
                    Some((task.clone(), route.profile.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_manager_routes_by_load_holds_max_parallel_and_falls_back_past_an_open_breaker() {
        let mut s = snapshot(
            vec![
                task("T1", TaskStatus::Todo, &[], &["web/a.ts"]),
                task("T2", TaskStatus::Todo, &[], &["web/b.ts"]),
                task("T3", TaskStatus::Todo, &[], &["src/c.rs"]),
            ],
            vec![],
        );
        let mut fx = Fixture::new(&[]);
        fx.routing.rules = serde_yaml::from_str(
            "- when: { paths: ['web/**'] }\n  agent: [a, b]\n  fallback: [c]\n",
        )
        .unwrap();
        let pair = |t: &str, p: &str| (t.to_owned(), p.to_owned());
        // Two slots: T1 to a, T2 to b (a has one now); T3 waits for a slot.
        assert_eq!(
            routed(&manager::owed(&fx.world(&s, 0))),
            [pair("T1", "a"), pair("T2", "b")]
        );
        // a may run one at most and runs one (a tester: max_parallel spans
        // roles): both web tasks go to b.
        fx.routing.capabilities.insert(
            "a".into(),
            crate::router::rules::Capabilities {
                max_parallel: Some(1),
                ..Default::default()
            },
        );
        let mut busy_a = agent("x", "tester", AgentState::Running, None);
        busy_a.profile = "a".into();
        s.agents.push(busy_a);
        assert_eq!(
            routed(&manager::owed(&fx.world(&s, 0))),
            [pair("T1", "b"), pair("T2", "b")]
        );
        // b's breaker opens: the fallback c takes them.
        let b = Breaker {
            failures: 3,
            last_failure: 1000,
            open_since: Some(1000),
            cause: Some(Cause::Auth),
            ..Breaker::default()
        };
        s.meta.as_mut().unwrap().breakers.insert("b".into(), b);
        assert_eq!(
            routed(&manager::owed(&fx.world(&s, 1001))),
            [pair("T1", "c"), pair("T2", "c")]
        );
        // c's budget is spent: the web tasks wait; T3 takes the role's agent.
        fx.routing.profile_usd.insert("c".into(), 0.0);
        assert_eq!(
            routed(&manager::owed(&fx.world(&s, 1001))),
            [pair("T3", "dev")]
        );
    }

    #[test]
    fn an_open_breaker_starts_nothing_then_one_probe_after_the_cool_down() {
        let mut s = snapshot(
            vec![
                task("T1", TaskStatus::Todo, &[], &["a.rs"]),
                task("T2", TaskStatus::Todo, &[], &["b.rs"]),
            ],
            vec![],
        );
        let b = Breaker {
            failures: 3,
            last_failure: 1000,
            open_since: Some(1000),
            cause: Some(Cause::Auth),
            ..Breaker::default()
        };
        s.meta.as_mut().unwrap().breakers.insert("dev".into(), b);
        let fx = Fixture::new(&[]);
        assert!(starts(&manager::owed(&fx.world(&s, 1100))).is_empty());
        assert_eq!(starts(&manager::owed(&fx.world(&s, 1300))), vec!["T1"]);
        // `resume` half-opens it at once.
        s.meta
            .as_mut()
            .unwrap()
            .breakers
            .get_mut("dev")
            .unwrap()
            .half_open = true;
        assert_eq!(starts(&manager::owed(&fx.world(&s, 1001))), vec!["T1"]);
        // Below the threshold, it does not hold anything back.
        let m = s.meta.as_mut().unwrap().breakers.get_mut("dev").unwrap();
        m.failures = 2;
        m.open_since = None;
        m.half_open = false;
        assert_eq!(
            starts(&manager::owed(&fx.world(&s, 1001))),
            vec!["T1", "T2"]
        );
    }

    #[test]
    fn a_reached_budget_stops_new_developers_in_its_scope_and_is_recorded() {
        let mut spent = task("T1", TaskStatus::Todo, &[], &["a.rs"]);
        spent.cost_usd = 2.5;
        let s = snapshot(
            vec![spent, task("T2", TaskStatus::Todo, &[], &["b.rs"])],
            vec![],
        );
        let mut fx = Fixture::new(&[]);
        fx.budget.task_usd = Some(2.0);
        assert_eq!(starts(&manager::owed(&fx.world(&s, 0))), vec!["T2"]);
        let owed = budget::owed(&fx.world(&s, 0));
        assert!(
            matches!(&owed[0], Action::RecordBudgets { stops } if stops.contains_key("task f/T1"))
        );
        fx.budget.task_usd = None;
        fx.budget.sprint_usd = Some(2.0);
        assert!(starts(&manager::owed(&fx.world(&s, 0))).is_empty());
    }

    #[test]
    fn a_quiet_tester_is_hung_after_timeouts_hung() {
        let mut tester = agent("f.T1.test.1", "tester", AgentState::Running, None);
        tester.task = Some("f/T1".into());
        tester.started = 0;
        let s = snapshot(
            vec![task("T1", TaskStatus::InTests, &[], &[])],
            vec![tester],
        );
        let mut fx = Fixture::new(&["f.T1.test.1"]);
        fx.activity.insert("f.T1.test.1".into(), 100);
        assert!(witness::owed(&fx.world(&s, 500)).is_empty());
        assert!(matches!(
            &witness::owed(&fx.world(&s, 1000))[0],
            Action::MarkDead {
                cause: Cause::Hung,
                ..
            }
        ));
    }

    #[test]
    fn a_feature_with_only_blocked_work_left_is_stalled() {
        let s = snapshot(
            vec![
                task("T1", TaskStatus::Done, &[], &[]),
                task("T2", TaskStatus::Failed, &[], &[]),
                task("T3", TaskStatus::Blocked, &["T2"], &[]),
            ],
            vec![],
        );
        assert!(stalled(&s.features[0]));
        let s = snapshot(
            vec![
                task("T2", TaskStatus::Failed, &[], &[]),
                task("T4", TaskStatus::Todo, &[], &[]),
            ],
            vec![],
        );
        assert!(!stalled(&s.features[0]));
    }
}
