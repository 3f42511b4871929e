//! `git sprint stop`: stop the orchestrator (and, with --all, the agents).

use std::time::Duration;

use super::{Ctx, Result};
use crate::daemon::lock;
use crate::fleet::{self, Fleet};

/// Stop the orchestrator; with --all, stop every agent too
///
/// Agents keep their branches and worktrees: anything they had not
/// committed is committed as a WIP commit when they stop. 'git sprint start'
/// carries on where the sprint was.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also stop every running agent (their work is kept)
    #[arg(long)]
    pub(crate) all: bool,
}

/// Runs `git sprint stop`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    match lock::holder(&fleet.common_dir) {
        Some(pid) => {
            fleet::sys::signal(pid, libc::SIGTERM);
            if fleet::wait_for_exit(pid, Duration::from_secs(10)) {
                writeln!(ctx.out, "Orchestrator stopped (pid {pid})")?;
            } else {
                writeln!(ctx.out, "Orchestrator (pid {pid}) did not stop within 10s")?;
            }
            let _ = fleet.tmux.kill_session(crate::daemon::SESSION);
        }
        None => writeln!(ctx.out, "The orchestrator is not running")?,
    }
    if args.all {
        let agents = fleet.agents()?;
        let mut stopped = 0;
        for a in agents
            .iter()
            .filter(|a| crate::state::liveness::is_running(a))
        {
            if fleet.tmux.kill_session(&a.session).unwrap_or(false) {
                stopped += 1;
                if let Some(pid) = a.runner_pid {
                    fleet::wait_for_exit(pid, Duration::from_secs(10));
                }
            }
            // The wrapper kills the agent's processes as it ends; these are
            // what escaped a wrapper that could not (killed, or never ran).
            fleet.kill_leftovers(&a.id);
        }
        writeln!(
            ctx.out,
            "Stopped {stopped} agent{}; their branches and work are kept",
            if stopped == 1 { "" } else { "s" }
        )?;
    }
    Ok(())
}
