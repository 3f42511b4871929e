//! `git sprint retry`: give a failed, blocked or cancelled task a fresh start.

use super::{person, Ctx, Result};
use crate::control;

/// Put a failed, blocked or cancelled task back to todo with fresh attempts
///
/// Tasks that were blocked because this one failed are unblocked too.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub(crate) reason: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
}

/// Runs `git sprint retry`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let retried = control::retry(&store, &actor, &args.task, args.reason.as_deref())?;
    write!(ctx.out, "{retried}")?;
    Ok(())
}
