//! `git sprint claim`: take a task with a lease.

use super::{person, Ctx, Result};
use crate::clock;
use crate::state::ops;

/// Claim a task: move it to in_progress with a lease in your name
///
/// Exactly one of several racing claimers wins; the others are told who holds
/// the task. A lease that expired (no heartbeat within its TTL) may be taken
/// over.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// Claim as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// How long the lease lasts without a heartbeat, e.g. 90s, 10m, 1h
    #[arg(long, default_value = "10m", value_parser = clock::parse_duration)]
    pub(crate) ttl: std::time::Duration,
}

/// Runs `git sprint claim`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let done = store.transact(&actor, |txn| {
        let r = ops::resolve(txn, &args.task)?;
        let task = ops::claim(txn, &r, &actor.name, args.ttl.as_secs())?;
        Ok((r, task))
    })?;
    let (r, task) = done.value;
    let claim = task.claim.as_ref().expect("a claimed task has a claim");
    writeln!(
        ctx.out,
        "Claimed {r} as {} until {} (attempt {})",
        claim.holder,
        clock::rfc3339(claim.expires),
        task.attempts
    )?;
    Ok(())
}
