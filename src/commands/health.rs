//! `git sprint health`: is every agent alive, and is the orchestrator?

use std::collections::HashSet;

use serde::Serialize;

use super::style::{self, Tone};
use super::{write_json, CommandError, Ctx, Result};
use crate::clock;
use crate::daemon::lock;
use crate::fleet::Fleet;
use crate::state::{liveness, Snapshot};
use crate::worker::procstat;

/// Check the agents, the orchestrator and the sprint; exit 1 if anything needs you
///
/// For each running agent: its role and task, whether its process lives,
/// seconds since its last heartbeat (a commit or stream event) and since its
/// pane last printed, when its lease runs out, and what it has cost. Then
/// what needs a person: a quarantined record, an open breaker, a budget, failed or
/// blocked tasks, stalled features — each with its cause and the command
/// that helps. Agents run by fleet commands alone need no orchestrator.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct AgentHealth {
    id: String,
    role: String,
    /// The machine it runs on, when the sprint is shared through a remote.
    #[serde(skip_serializing_if = "Option::is_none")]
    machine: Option<String>,
    task: Option<String>,
    pid: Option<u32>,
    pid_alive: bool,
    session_alive: bool,
    since_heartbeat: Option<i64>,
    since_output: Option<i64>,
    lease_expires_in: Option<i64>,
    tokens: u64,
    cost_usd: Option<f64>,
    healthy: bool,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct Health {
    orchestrator: Option<u32>,
    healthy: bool,
    /// How agents are confined: `landlock ABI 7`, `off`, `unavailable: …`.
    sandbox: String,
    agents: Vec<AgentHealth>,
    /// What needs a person.
    trouble: Vec<crate::stages::trouble::Trouble>,
    /// The machines sharing the sprint through a remote (none: this
    /// clone's alone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    machines: Vec<crate::machines::MachineView>,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    // Sessions first, state second: a wrapper records its agent's end before
    // its session closes, so an agent that ends in between shows as ended,
    // never as a running agent with its session gone.
    let sessions: HashSet<String> = fleet
        .tmux
        .list_sessions()
        .unwrap_or_default()
        .into_iter()
        .collect();
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
        let session_alive = sessions.contains(&a.session);
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
        let problem = if !session_alive {
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
    let trouble = crate::stages::trouble::list(&snapshot);
    let healthy = agents.iter().all(|a| a.healthy)
        && (orchestrator.is_some() || (!sprint_agents && in_flight == 0))
        && trouble.is_empty();
    let (sandbox, unconfined) = crate::fleet::contain::sandbox_status(&fleet);
    let report = Health {
        orchestrator,
        healthy,
        sandbox,
        agents,
        trouble,
        machines,
    };
    if args.json {
        write_json(ctx.out, &report)?;
    } else {
        match report.orchestrator {
            Some(pid) => writeln!(ctx.out, "orchestrator: running (pid {pid})")?,
            None if in_flight > 0 => writeln!(
                ctx.out,
                "orchestrator: not running, with {in_flight} task{} in flight",
                if in_flight == 1 { "" } else { "s" }
            )?,
            None => writeln!(ctx.out, "orchestrator: not running")?,
        }
        if let Some(line) = unconfined {
            writeln!(ctx.out, "{line}")?;
        }
        if report.agents.is_empty() {
            writeln!(ctx.out, "no agents running")?;
        }
        let secs = |v: Option<i64>| v.map(|s| format!("{s}s")).unwrap_or_else(|| "-".into());
        for a in &report.agents {
            writeln!(
                ctx.out,
                "{:<28} {:<9} {:<16} pid {:<7} heartbeat {:>6} output {:>6} lease {:>6} {:>9}  {}",
                a.id,
                a.role,
                a.task.as_deref().unwrap_or("-"),
                a.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                secs(a.since_heartbeat),
                secs(a.since_output),
                secs(a.lease_expires_in),
                a.cost_usd
                    .map(|c| format!("${c:.2}"))
                    .unwrap_or_else(|| "-".into()),
                match &a.problem {
                    Some(p) => style::paint(p, Some(Tone::Bad)),
                    None => style::paint("ok", Some(Tone::Good)),
                },
            )?;
        }
        for m in &report.machines {
            writeln!(
                ctx.out,
                "machine {:<16} {:<8}{}{}",
                m.name,
                m.status,
                m.beat_age_secs
                    .map(|a| format!(" beat {} ago", clock::short_age(a)))
                    .unwrap_or_default(),
                if m.leader { ", leads" } else { "" }
            )?;
        }
        for t in &report.trouble {
            writeln!(
                ctx.out,
                "{}: {}: {}",
                style::paint(t.kind, style::tone_of(t.kind).or(Some(Tone::Warn))),
                t.subject,
                t.message
            )?;
            writeln!(ctx.out, "  -> {}", t.hint)?;
        }
    }
    if report.healthy {
        Ok(())
    } else {
        Err(CommandError::Failed {
            message: "unhealthy".into(),
            hint: Some(
                if report.orchestrator.is_none() && (in_flight > 0 || sprint_agents) {
                    "start the orchestrator with 'git sprint start'".into()
                } else if let Some(t) = report.trouble.first() {
                    t.hint.clone()
                } else if let Some(a) = report
                    .agents
                    .iter()
                    .find(|a| !a.healthy && a.role == "fleet")
                {
                    // Nothing retries a fleet worker: say what the person can do.
                    format!(
                        "'git sprint logs {0}' shows what it did; 'git sprint kill {0}' saves its work and removes it",
                        a.id
                    )
                } else {
                    "the orchestrator retries lost agents; 'git sprint logs <agent>' shows what one did"
                    .into()
                },
            ),
        })
    }
}
