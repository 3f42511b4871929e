//! `git sprint cancel`: take a task out of the sprint.

use super::{person, Ctx, Result};
use crate::control;

/// Cancel a task: it will not be scheduled; its history stays
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

/// Runs `git sprint cancel`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let cancelled = control::cancel(&store, &actor, &args.task, args.reason.as_deref())?;
    write!(ctx.out, "{cancelled}")?;
    Ok(())
}
