//! Whether every agent is alive, and the orchestrator, as `git sprint
//! health` and the board's `/api/v1/health` see it.
//!
//! Gathered here once, so the command's text, its `--json` and the board's
//! answer are all renderings of the same [`Health`].

use std::collections::HashSet;

use serde::Serialize;

use crate::clock;
use crate::daemon::lock;
use crate::fleet::Fleet;
use crate::state::{liveness, Snapshot, StateError};
use crate::worker::procstat;

/// One running agent: is its process alive, is it heard from, what it cost.
#[derive(Debug, Serialize)]
pub(crate) struct AgentHealth {
    pub(crate) id: String,
    pub(crate) role: String,
    /// The machine it runs on, when the sprint is shared through a remote.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) machine: Option<String>,
    pub(crate) task: Option<String>,
    pub(crate) pid: Option<u32>,
    pub(crate) pid_alive: bool,
    pub(crate) session_alive: bool,
    pub(crate) since_heartbeat: Option<i64>,
    pub(crate) since_output: Option<i64>,
    pub(crate) lease_expires_in: Option<i64>,
    pub(crate) tokens: u64,
    pub(crate) cost_usd: Option<f64>,
    pub(crate) healthy: bool,
    pub(crate) problem: Option<String>,
}

/// The report: `healthy` is false when anything needs a person.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    pub(crate) orchestrator: Option<u32>,
    pub(crate) healthy: bool,
    /// How agents are confined: `landlock ABI 7`, `off`, `unavailable: …`.
    pub(crate) sandbox: String,
    pub(crate) agents: Vec<AgentHealth>,
    /// What needs a person.
    pub(crate) trouble: Vec<crate::stages::trouble::Trouble>,
    /// The machines sharing the sprint through a remote (none: this
    /// clone's alone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) machines: Vec<crate::machines::MachineView>,
    /// A line saying agents run unconfined, when they do and should not.
    #[serde(skip)]
    pub(crate) unconfined: Option<String>,
    /// How many tasks are active (claimed, in review, merging, …): work
    /// that needs an orchestrator to move on.
    #[serde(skip)]
    pub(crate) in_flight: usize,
    /// Whether a running agent is a sprint's (not a fleet worker).
    #[serde(skip)]
    pub(crate) sprint_agents: bool,
}

/// Failures in a row of one orchestrator job before `health` shows it: a
/// race or a lock held a moment is tried again and gone in seconds.
const RETRIES_SHOWN: u32 = 3;

/// A job the orchestrator keeps failing at, as trouble.
fn retrying_trouble(
    r: &crate::daemon::busy::Retrying,
    now: i64,
) -> crate::stages::trouble::Trouble {
    crate::stages::trouble::Trouble {
        kind: "retrying",
        subject: r.key.clone(),
        cause: None,
        message: format!(
            "{} {} times in a row (the first {} ago): {}; next try in {}s",
            r.what,
            r.failures,
            clock::short_age(now - r.since),
            r.error,
            (r.next_try - now).max(0)
        ),
        hint: "the error names what to fix; the orchestrator tries again by itself \
               (its log: .git/sprint/logs/orchestrator.log)"
            .into(),
    }
}

/// The health of the agents, the orchestrator and the sprint of `fleet`.
pub(crate) fn check(fleet: &Fleet) -> Result<Health, StateError> {
    // Sessions first, state second: a wrapper records its agent's end before
    // its session closes, so an agent that ends in between shows as ended,
    // never as a running agent with its session gone. A listing that failed
    // says nothing about any session: no agent is called gone for it.
    let sessions: Option<HashSet<String>> = fleet
        .tmux
        .list_sessions()
        .map(|list| list.into_iter().collect())
        .ok();
    // Shared through a remote: the machines as their beats say, and this
    // clone's name (only its own agents' sessions are here to look at).
    let config = crate::config::load_from(fleet.store.repo(), None)
        .map(|l| l.config)
        .unwrap_or_default();
    let here = fleet
        .store
        .remote_name()
        .map(|_| crate::machines::name(config.machine.as_deref()));
    let now = clock::now();
    let machines = match &here {
        Some(_) => crate::machines::list(
            &fleet.store,
            now,
            config.timeouts.machine.0.as_secs() as i64,
        )
        .unwrap_or_default(),
        None => Vec::new(),
    };
    let snapshot = fleet.store.read(Snapshot::read)?;
    let mut agents = Vec::new();
    for a in snapshot.agents.iter().filter(|a| liveness::is_running(a)) {
        if let (Some(here), Some(m)) = (&here, &a.machine) {
            if m != here {
                let lost = machines.iter().any(|v| v.name == *m && v.status == "lost");
                let problem = lost.then(|| format!("machine {m} lost"));
                agents.push(AgentHealth {
                    id: a.id.clone(),
                    role: a.role.clone(),
                    machine: Some(m.clone()),
                    task: a.task.clone(),
                    pid: a.pid,
                    pid_alive: false,
                    session_alive: false,
                    since_heartbeat: Some(a.heartbeat).filter(|h| *h > 0).map(|t| now - t),
                    since_output: None,
                    lease_expires_in: liveness::claim_of(&snapshot, a).map(|c| c.expires - now),
                    tokens: a.usage.as_ref().map(|u| u.tokens()).unwrap_or(0),
                    cost_usd: a.usage.as_ref().and_then(|u| u.cost_usd),
                    healthy: problem.is_none(),
                    problem,
                });
                continue;
            }
        }
        let session_alive = sessions.as_ref().is_none_or(|s| s.contains(&a.session));
        let pid_alive = a.pid.is_some_and(procstat::is_alive);
        let claim = liveness::claim_of(&snapshot, a);
        let since_output = session_alive
            .then(|| fleet.tmux.pane_activity(&a.session).ok())
            .flatten()
            .map(|t| now - t as i64);
        let since_heartbeat = liveness::renewed(a, claim)
            .max(Some(a.heartbeat).filter(|h| *h > 0))
            .map(|t| now - t);
        let lease_expires_in = claim.map(|c| c.expires - now);
        // An agent that has ended while its wrapper still cleans up, saves
        // its work and records the end is finishing, not lost.
        let finishing = a
            .runner_pid
            .is_some_and(|p| crate::fleet::is_runner_of(p, &a.id));
        // Recorded `starting` just before its session is made: a look in
        // between sees no session yet, and that is no death.
        let problem = if !session_alive && !liveness::launching(a, now) {
            Some("tmux session gone".to_owned())
        } else if a.pid.is_some() && !pid_alive && !finishing {
            Some("agent process gone".to_owned())
        } else if lease_expires_in.is_some_and(|s| s < 0)
            && since_output.is_none_or(|s| s > -lease_expires_in.unwrap_or(0))
        {
            Some("lease expired".to_owned())
        } else {
            None
        };
        agents.push(AgentHealth {
            id: a.id.clone(),
            role: a.role.clone(),
            machine: a.machine.clone(),
            task: a.task.clone(),
            pid: a.pid,
            pid_alive,
            session_alive,
            since_heartbeat,
            since_output,
            lease_expires_in,
            tokens: a.usage.as_ref().map(|u| u.tokens()).unwrap_or(0),
            cost_usd: a.usage.as_ref().and_then(|u| u.cost_usd),
            healthy: problem.is_none(),
            problem,
        });
    }
    let orchestrator = lock::holder(&fleet.common_dir);
    // Work in flight needs an orchestrator to move it on; fleet workers and
    // finished sprints do not.
    let in_flight = snapshot
        .features
        .iter()
        .flat_map(|f| &f.tasks)
        .filter(|t| t.status.is_active())
        .count();
    let sprint_agents = agents.iter().any(|a| a.role != "fleet");
    let mut trouble = crate::stages::trouble::list(&snapshot);
    // What the running orchestrator keeps failing at without a verdict
    // (an earlier one's file is gone when a new one starts).
    if orchestrator.is_some() {
        trouble.extend(
            crate::daemon::busy::retrying(&fleet.common_dir)
                .iter()
                .filter(|r| r.failures >= RETRIES_SHOWN)
                .map(|r| retrying_trouble(r, now)),
        );
    }
    let healthy = agents.iter().all(|a| a.healthy)
        && (orchestrator.is_some() || (!sprint_agents && in_flight == 0))
        && trouble.is_empty();
    let (sandbox, unconfined) = crate::fleet::contain::sandbox_status(fleet);
    Ok(Health {
        orchestrator,
        healthy,
        sandbox,
        agents,
        trouble,
        machines,
        unconfined,
        in_flight,
        sprint_agents,
    })
}
