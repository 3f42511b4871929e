//! Whether an agent is running, when it last showed a sign of life, and
//! whether it is hung: the one home of these small truths, so the Witness,
//! the orchestrator's timers, `health`, `stop`, `logs` and the fleet
//! commands all judge an agent the same way.
//!
//! Everything here is a function of the record (and of what the caller
//! observed: a tmux pane's last output), never of tmux or processes
//! themselves, so the state layer stays free of `worker`.

use super::{Agent, AgentState, Claim, Snapshot};

/// How long an agent recorded `starting` may be without its tmux session:
/// the record is written before the session is made, so a look in between
/// sees no session yet, and that is no death.
const LAUNCH_GRACE_SECS: i64 = 30;

/// Whether `a` is being launched at `now`: recorded `starting` less than
/// [`LAUNCH_GRACE_SECS`] ago, so a missing session says nothing yet.
pub(crate) fn launching(a: &Agent, now: i64) -> bool {
    a.state == AgentState::Starting && now - a.started < LAUNCH_GRACE_SECS
}

/// Whether the record says the agent is meant to be running (starting, or
/// running under its wrapper). An ended agent's record never goes back.
pub(crate) fn is_running(a: &Agent) -> bool {
    matches!(a.state, AgentState::Starting | AgentState::Running)
}

/// The claim `a` holds on its task, if it holds one.
pub(crate) fn claim_of<'s>(snapshot: &'s Snapshot, a: &Agent) -> Option<&'s Claim> {
    let (feature, id) = a.task.as_deref()?.split_once('/')?;
    snapshot
        .feature(feature)?
        .tasks
        .iter()
        .find(|t| t.id == id)?
        .claim
        .as_ref()
        .filter(|c| c.holder == a.id)
}

/// The last renewal of `a`'s lease (unix seconds): a heartbeat moves
/// `expires` to `now + ttl`.
pub(crate) fn renewed(a: &Agent, claim: Option<&Claim>) -> Option<i64> {
    claim
        .filter(|c| c.holder == a.id)
        .map(|c| c.expires - c.ttl as i64)
}

/// The last sign of life of a running agent (unix seconds): its start, its
/// heartbeat (stream events and commits renew it), its claim's renewal, and
/// its pane's last output (`activity`, as tmux reported it).
pub(crate) fn last_sign(a: &Agent, claim: Option<&Claim>, activity: Option<i64>) -> i64 {
    a.started
        .max(a.heartbeat)
        .max(renewed(a, claim).unwrap_or(i64::MIN))
        .max(activity.unwrap_or(i64::MIN))
}

/// The hang rule: a running agent with no sign of life for `hung_secs` is
/// hung, whatever its role. Returns how long it has been quiet, if so.
pub(crate) fn hung_for(
    a: &Agent,
    claim: Option<&Claim>,
    activity: Option<i64>,
    now: i64,
    hung_secs: u64,
) -> Option<i64> {
    let quiet = now - last_sign(a, claim, activity);
    (quiet >= hung_secs as i64).then_some(quiet)
}

/// When a running agent becomes hung if it stays quiet (unix seconds).
pub(crate) fn hung_at(
    a: &Agent,
    claim: Option<&Claim>,
    activity: Option<i64>,
    hung_secs: u64,
) -> i64 {
    last_sign(a, claim, activity).saturating_add(hung_secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(state: AgentState, started: i64, heartbeat: i64) -> Agent {
        let mut a: Agent = serde_yaml::from_str(&format!(
            "id: d1\nrole: developer\nstate: {state}\nsession: s\nworktree: /w\nbranch: b\nbase: i\nprompt: p\nstarted: {started}\nheartbeat: {heartbeat}\n"
        ))
        .expect("a minimal agent record parses");
        a.task = Some("f/T001".into());
        a
    }

    #[test]
    fn only_starting_and_running_agents_are_running() {
        assert!(is_running(&agent(AgentState::Starting, 0, 0)));
        assert!(is_running(&agent(AgentState::Running, 0, 0)));
        for s in [AgentState::Exited, AgentState::Dead, AgentState::Killed] {
            assert!(!is_running(&agent(s, 0, 0)), "{s} is not running");
        }
    }

    #[test]
    fn the_latest_sign_of_life_counts_and_a_foreign_claim_does_not() {
        let a = agent(AgentState::Running, 100, 150);
        assert_eq!(last_sign(&a, None, None), 150);
        assert_eq!(last_sign(&a, None, Some(170)), 170);
        let own = Claim {
            holder: "d1".into(),
            since: String::new(),
            expires: 400,
            ttl: 200,
        };
        assert_eq!(last_sign(&a, Some(&own), Some(170)), 200);
        let other = Claim {
            holder: "d2".into(),
            ..own
        };
        assert_eq!(last_sign(&a, Some(&other), None), 150);
    }

    #[test]
    fn hung_after_exactly_hung_secs_of_quiet() {
        let a = agent(AgentState::Running, 100, 0);
        assert_eq!(hung_for(&a, None, None, 159, 60), None);
        assert_eq!(hung_for(&a, None, None, 160, 60), Some(60));
        assert_eq!(hung_at(&a, None, None, 60), 160);
        assert_eq!(hung_for(&a, None, Some(150), 160, 60), None);
    }
}
