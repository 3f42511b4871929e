//! `git sprint heartbeat`: renew a lease.

use super::{person, Ctx, Result};
use crate::clock;
use crate::state::ops;

/// Renew your lease on a claimed task by its TTL
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// The lease holder (default: your git user.name)
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
}

/// Runs `git sprint heartbeat`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let done = store.transact(&actor, |txn| {
        let r = ops::resolve(txn, &args.task)?;
        Ok((r.clone(), ops::heartbeat(txn, &r, &actor.name)?))
    })?;
    let (r, task) = done.value;
    let expires = task.claim.map(|c| c.expires).unwrap_or_default();
    writeln!(
        ctx.out,
        "{r}: lease renewed until {}",
        clock::rfc3339(expires)
    )?;
    Ok(())
}
