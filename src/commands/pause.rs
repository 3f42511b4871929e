//! `git sprint pause` and `git sprint resume`: stop or restart scheduling.

use super::{person, Ctx, Result};
use crate::control;

/// Stop starting new work; agents already running finish their tasks
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub(crate) reason: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
}

/// Runs `git sprint pause` (`paused`) or `git sprint resume`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args, paused: bool) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let outcome = control::set_paused(&store, &ctx.cwd, &actor, paused, args.reason.as_deref())?;
    write!(ctx.out, "{outcome}")?;
    Ok(())
}
