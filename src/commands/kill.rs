//! `git sprint kill`: stop workers and remove what they used.

use super::{person, write_json, CommandError, Ctx, Result};
use crate::fleet::Fleet;

/// Stop workers, save their work, and remove their worktrees and records
///
/// The session is ended (the agent gets SIGHUP), uncommitted work is
/// committed on the worker's branch as a WIP commit, and the worktree and
/// record are removed (the record's history stays in 'git sprint log'). The
/// log is kept: 'git sprint logs <id>' still shows it, 'git sprint logs
/// --prune' removes it. The branch is deleted only when it has no commits
/// beyond its base, so an agent's work is never lost; --force deletes it
/// anyway.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["ids", "batch", "all"]))]
pub struct Args {
    /// The workers to stop
    pub(crate) ids: Vec<String>,
    /// Every worker of this batch
    #[arg(long, value_name = "B")]
    pub(crate) batch: Option<String>,
    /// Every worker
    #[arg(long)]
    pub(crate) all: bool,
    /// Delete branches even when they hold commits that are not in their base
    #[arg(long)]
    pub(crate) force: bool,
    /// Print JSON for tools
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `git sprint kill`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let mut fleet = Fleet::open(&ctx.cwd)?;
    // WIP commits are authored as the agent, with the configured email; a
    // broken config must not stop a kill, so it falls back to the default.
    if let Ok(root) = fleet.main_worktree() {
        if let Ok(loaded) = crate::config::load(&root, &fleet.common_dir) {
            fleet.configure_pool(&loaded.config.worktrees);
            fleet.identity = loaded.config.identity;
        }
    }
    let actor = person(&fleet.store, None);
    let agents = fleet.agents()?;
    let ids: Vec<String> = if args.all {
        agents.iter().map(|a| a.id.clone()).collect()
    } else if let Some(b) = &args.batch {
        let ids: Vec<String> = agents
            .iter()
            .filter(|a| a.batch.as_deref() == Some(b.as_str()))
            .map(|a| a.id.clone())
            .collect();
        if ids.is_empty() {
            return Err(CommandError::Usage {
                message: format!("no workers in batch '{b}'"),
                hint: Some("'git sprint list' shows the batches".into()),
            });
        }
        ids
    } else {
        args.ids.clone()
    };
    if ids.is_empty() {
        if !args.json {
            writeln!(ctx.out, "No workers to stop.")?;
        } else {
            write_json(ctx.out, &Vec::<()>::new())?;
        }
        return Ok(());
    }
    let killed = fleet.kill(&actor, &ids, args.force)?;
    if args.json {
        return write_json(ctx.out, &killed);
    }
    for k in &killed {
        let mut line = format!("Stopped {}", k.id);
        if let Some(c) = &k.wip_commit {
            line.push_str(&format!("; uncommitted work saved as {}", super::short(c)));
        }
        if k.branch_deleted {
            line.push_str(&format!("; branch {} deleted", k.branch));
        } else if let Some(n) = k.kept_commits {
            line.push_str(&format!(
                "; branch {} kept ({n} commit{} not in {}; --force deletes it)",
                k.branch,
                if n == 1 { "" } else { "s" },
                k.into
            ));
        }
        writeln!(ctx.out, "{line}")?;
    }
    Ok(())
}
