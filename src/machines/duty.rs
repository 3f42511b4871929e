//! Who carries out what is owed when several machines share one sprint.
//!
//! Every orchestrator computes the same debts from the same state; this is
//! the one rule that says which of them pays each. A machine starts agents
//! for itself (the claim is a compare-and-swap, so two machines never both
//! win a task), looks after the agents it started (only it sees their tmux
//! sessions), and leaves the single-writer stages — gates and verdicts,
//! the Refinery, the Librarian, features' ends — to the leader. The agents
//! of a lost machine fall to the leader too.

use std::collections::HashSet;

use crate::stages::{self, Action};
use crate::state::Snapshot;

/// Who carries out an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Duty {
    /// Any machine with room: the claim decides.
    Anyone,
    /// The holder of the leader lease.
    Leader,
    /// The machine that runs the agent the action is about.
    Machine(String),
}

/// This machine, as the rule needs it.
#[derive(Debug, Clone)]
pub(crate) struct Here<'a> {
    pub(crate) name: &'a str,
    /// Whether it holds the leader lease now.
    pub(crate) leader: bool,
    /// Machines whose heartbeats stopped (`timeouts.machine`).
    pub(crate) lost: &'a HashSet<String>,
}

/// Who owes `action`.
pub(crate) fn of(action: &Action, snapshot: &Snapshot) -> Duty {
    let agent = match action {
        Action::StartDeveloper { .. } | Action::StartTester { .. } => return Duty::Anyone,
        Action::DeveloperDone { agent, .. }
        | Action::MarkDead { agent, .. }
        | Action::RestartTester { agent, .. }
        | Action::RestartReviewer { agent, .. }
        | Action::RestartLibrarian { agent, .. }
        | Action::Retry {
            agent: Some(agent), ..
        } => agent,
        _ => return Duty::Leader,
    };
    match stages::agent(snapshot, agent).and_then(|a| a.machine.clone()) {
        Some(m) => Duty::Machine(m),
        // Started before the sprint was shared: the leader looks after it.
        None => Duty::Leader,
    }
}

/// Whether `here` carries out an action owed by `duty`.
pub(crate) fn is_mine(duty: &Duty, here: &Here<'_>) -> bool {
    match duty {
        Duty::Anyone => true,
        Duty::Leader => here.leader,
        Duty::Machine(m) if m == here.name => true,
        // A lost machine cannot look after its agents: the leader does.
        Duty::Machine(m) => here.leader && here.lost.contains(m),
    }
}

/// Whether a machine with `labels` may run `role` with agent profile
/// `profile`: it has every label the role and the profile ask for
/// (`machines:` in the config).
pub(crate) fn placement_allows(
    config: &crate::config::Config,
    role: &str,
    profile: &str,
    labels: &[String],
) -> bool {
    let role_needs: &[String] = match role {
        "developer" => &config.roles.developer.machines,
        "tester" => &config.roles.tester.machines,
        "librarian" => &config.roles.librarian.machines,
        _ => &[],
    };
    let profile_needs: &[String] = config
        .agents
        .get(profile)
        .map_or(&[], |a| a.machines.as_slice());
    role_needs
        .iter()
        .chain(profile_needs)
        .all(|l| labels.iter().any(|have| have == l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Cause;

    fn snapshot_with(agent: &str, machine: Option<&str>) -> Snapshot {
        let mut a: crate::state::Agent = serde_yaml::from_str(&format!(
            "id: {agent}\nrole: developer\nstate: running\nsession: s\nworktree: /w\nbranch: b\nbase: i\nstarted: 1\n"
        ))
        .unwrap();
        a.machine = machine.map(str::to_owned);
        Snapshot {
            agents: vec![a],
            ..Snapshot::default()
        }
    }

    fn dead(agent: &str) -> Action {
        Action::MarkDead {
            agent: agent.into(),
            cause: Cause::Crash,
            reason: "gone".into(),
        }
    }

    #[test]
    fn agents_are_looked_after_by_their_machine_and_a_lost_ones_by_the_leader() {
        let snap = snapshot_with("d1", Some("m2"));
        let duty = of(&dead("d1"), &snap);
        assert_eq!(duty, Duty::Machine("m2".into()));
        let none = HashSet::new();
        let lost = HashSet::from(["m2".to_owned()]);
        let here = |name, leader, lost| Here { name, leader, lost };
        assert!(is_mine(&duty, &here("m2", false, &none)));
        assert!(!is_mine(&duty, &here("m1", true, &none)), "m2 is up");
        assert!(is_mine(&duty, &here("m1", true, &lost)));
        assert!(
            !is_mine(&duty, &here("m3", false, &lost)),
            "only the leader"
        );
    }

    #[test]
    fn claims_are_anyones_and_the_single_writer_stages_the_leaders() {
        let snap = snapshot_with("d1", None);
        let merge = Action::Merge {
            feature: "f".into(),
            task: "T1".into(),
        };
        assert_eq!(of(&merge, &snap), Duty::Leader);
        assert_eq!(of(&dead("d1"), &snap), Duty::Leader, "no machine recorded");
        let none = HashSet::new();
        let follower = Here {
            name: "m1",
            leader: false,
            lost: &none,
        };
        assert!(!is_mine(&Duty::Leader, &follower));
        assert!(is_mine(&Duty::Anyone, &follower));
    }

    #[test]
    fn placement_needs_every_label_of_the_role_and_the_profile() {
        let mut config = crate::config::Config::default();
        config.roles.developer.machines = vec!["gpu".into()];
        config.agents.get_mut("claude").unwrap().machines = vec!["big".into()];
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(placement_allows(
            &config,
            "developer",
            "claude",
            &labels(&["big", "gpu"])
        ));
        assert!(!placement_allows(
            &config,
            "developer",
            "claude",
            &labels(&["gpu"])
        ));
        assert!(!placement_allows(
            &config,
            "developer",
            "other",
            &labels(&["big"])
        ));
        assert!(placement_allows(&config, "tester", "other", &[]));
    }
}
