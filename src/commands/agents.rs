//! `git sprint agents`: the agent registry.

use super::{write_json, Ctx, Result};
use crate::router::registry::{registry, ProfileView};
use crate::state::Snapshot;

/// List agent profiles: labels, capabilities, load, spend, breaker, success rate
///
/// Every profile of the `agents:` section, every one a role or a `route:`
/// rule names, and every one a recorded agent ran. Spend and success rate
/// count every finished run of the profile (a success exited 0 with no
/// cause recorded against it); running counts agents running now.
/// Capabilities (languages, roles, cost_tier, max_parallel) are what the
/// router weighs when it picks a profile for a task.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `git sprint agents`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let config = crate::config::load_from(store.repo(), None)?.config;
    let snapshot = store.read(Snapshot::read)?;
    let rows = registry(&config, &snapshot);
    if args.json {
        return write_json(ctx.out, &rows);
    }
    let out = &mut *ctx.out;
    writeln!(
        out,
        "{:<16} {:<10} {:>7} {:>5} {:>8} {:>9}  {:<16} LABELS / CAPABILITIES",
        "PROFILE", "PROGRAM", "RUNNING", "RUNS", "SUCCESS", "SPENT", "BREAKER"
    )?;
    for p in &rows {
        let rate = p
            .success_rate
            .map(|r| format!("{:.0}%", r * 100.0))
            .unwrap_or_else(|| "-".into());
        let spent = match p.budget_usd {
            Some(b) => format!("${:.2}/{b:.0}", p.stats.cost_usd),
            None => format!("${:.2}", p.stats.cost_usd),
        };
        let running = match p.capabilities.max_parallel {
            Some(m) => format!("{}/{m}", p.stats.running),
            None => p.stats.running.to_string(),
        };
        writeln!(
            out,
            "{:<16} {:<10} {:>7} {:>5} {:>8} {:>9}  {:<16} {}",
            p.name,
            p.program,
            running,
            p.stats.runs,
            rate,
            spent,
            p.breaker,
            describe(p)
        )?;
        if let Some(e) = &p.error {
            writeln!(out, "{:<16} error: {e}", "")?;
        }
    }
    Ok(())
}

fn describe(p: &ProfileView) -> String {
    let c = &p.capabilities;
    let mut parts = Vec::new();
    if !p.labels.is_empty() {
        parts.push(p.labels.join(","));
    }
    if !p.plays.is_empty() {
        parts.push(format!("plays {}", p.plays.join(",")));
    }
    if !c.roles.is_empty() {
        parts.push(format!("roles {}", c.roles.join(",")));
    }
    if !c.languages.is_empty() {
        parts.push(format!("languages {}", c.languages.join(",")));
    }
    if let Some(t) = c.cost_tier {
        parts.push(format!("cost {}", format!("{t:?}").to_lowercase()));
    }
    parts.join("; ")
}
