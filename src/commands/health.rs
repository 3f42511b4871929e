//! `git sprint health`: is every agent alive, and is the orchestrator?

use super::style::{self, Tone};
use super::{write_json, CommandError, Ctx, Result};
use crate::clock;
use crate::fleet::Fleet;
use crate::view::health::{self, Health};

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
    pub(crate) json: bool,
}

/// Runs `git sprint health`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let report = health::check(&Fleet::open(&ctx.cwd)?)?;
    let Health {
        in_flight,
        sprint_agents,
        ..
    } = report;
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
        if let Some(line) = &report.unconfined {
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
