//! `git sprint attach`: open a worker's tmux session in this terminal.

use super::{person, Ctx, Result};
use crate::fleet::{Fleet, FleetError};

/// Attach this terminal to a worker's tmux session (detach with C-b d)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker
    pub(crate) id: String,
}

/// Runs `git sprint attach`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    let actor = person(&fleet.store, None);
    let a = &fleet.running_worker(&actor, &args.id)?;
    ctx.out.flush()?;
    // Returns only when exec failed.
    fleet.tmux.attach(&a.session).map_err(FleetError::from)?;
    Ok(())
}
