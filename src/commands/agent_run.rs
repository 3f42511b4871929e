//! `git sprint agent-run`: the wrapper a worker's tmux pane runs (hidden).

use super::{Ctx, Result};
use crate::fleet::{run, Fleet};

/// Run a worker's agent, save its uncommitted work and record its end
///
/// Started by spawn inside the worker's tmux session; not for people.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker id
    pub(crate) id: String,
}

/// Runs `git sprint agent-run`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let mut fleet = Fleet::open(&ctx.cwd)?;
    // Whoever started the session set the agent's author (from its config)
    // in the environment handed over: the wrapper's WIP commits use the same.
    if std::env::var("GIT_AUTHOR_NAME").is_ok_and(|n| n == args.id) {
        if let Ok(email) = std::env::var("GIT_AUTHOR_EMAIL") {
            fleet.identity.email = email;
        }
    }
    run::agent_run(&fleet, &args.id, ctx.out)?;
    Ok(())
}
