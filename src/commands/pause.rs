//! `git sprint pause` and `git sprint resume`: stop or restart scheduling.

use super::{person, Ctx, Result};
use crate::fleet::env::Environment;
use crate::state::ops;

/// Stop starting new work; agents already running finish their tasks
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub reason: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args, paused: bool) -> Result {
    let store = ctx.store()?;
    // Resuming a running orchestrator hands its next agents this shell's
    // environment, as `start` does (with none running, `start` will).
    let running = if paused {
        None
    } else {
        let fleet = crate::fleet::Fleet::open(&ctx.cwd)?;
        let pid = crate::daemon::lock::holder(&fleet.common_dir);
        if pid.is_some() {
            Environment::of_this_process()
                .save_for_sprint(&fleet.common_dir)
                .map_err(crate::fleet::FleetError::from)?;
        }
        pid
    };
    let actor = person(&store, args.actor.as_deref());
    let done = store.transact(&actor, |txn| {
        let changed = ops::set_paused(txn, paused, args.reason.as_deref())?;
        // Resuming also lets each open circuit breaker try one probe run.
        let probes = if paused {
            Vec::new()
        } else {
            ops::half_open_breakers(txn)?
        };
        Ok((changed, probes))
    })?;
    let (changed, probes) = done.value;
    for p in &probes {
        writeln!(
            ctx.out,
            "Circuit breaker of agent profile {p}: half open; one probe run starts now"
        )?;
    }
    let word = if paused { "paused" } else { "running" };
    if changed {
        writeln!(
            ctx.out,
            "Sprint {word}: {}",
            if paused {
                "no new work will start"
            } else {
                "scheduling new work again"
            }
        )?;
    } else if probes.is_empty() {
        writeln!(ctx.out, "Sprint already {word}; nothing changed")?;
    }
    if let Some(pid) = running {
        writeln!(
            ctx.out,
            "The orchestrator is running (pid {pid}); new agents will use this shell's environment"
        )?;
    }
    Ok(())
}
