//! `git sprint cancel`: take a task out of the sprint.

use super::{person, Ctx, Result};
use crate::state::ops;

/// Cancel a task: it will not be scheduled; its history stays
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub task: String,
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub reason: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let done = store.transact(&actor, |txn| {
        let r = ops::resolve(txn, &args.task)?;
        let from = txn.task(&r.feature, &r.id)?.map(|t| t.status);
        ops::cancel(txn, &r, args.reason.as_deref())?;
        Ok((r, from))
    })?;
    let (r, from) = done.value;
    match from {
        Some(from) => writeln!(ctx.out, "{r}: {from} -> cancelled")?,
        None => writeln!(ctx.out, "{r}: cancelled")?,
    }
    Ok(())
}
