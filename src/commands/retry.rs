//! `git sprint retry`: give a failed, blocked or cancelled task a fresh start.

use super::{person, Ctx, Result};
use crate::state::ops;

/// Put a failed, blocked or cancelled task back to todo with fresh attempts
///
/// Tasks that were blocked because this one failed are unblocked too.
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
        let unblocked = ops::retry(txn, &r, args.reason.as_deref())?;
        Ok((r, unblocked))
    })?;
    let (r, unblocked) = done.value;
    writeln!(ctx.out, "{r}: back to todo with fresh attempts")?;
    if !unblocked.is_empty() {
        writeln!(ctx.out, "unblocked: {}", unblocked.join(", "))?;
    }
    Ok(())
}
