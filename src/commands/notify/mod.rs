//! `git sprint notify`: try the receivers of `notify:` and read what was
//! delivered.

use super::{Ctx, Result};

pub(crate) mod log;
pub(crate) mod test;

/// Send a sample event, or show what notifications were delivered
///
/// Receivers are configured under `notify:` in .git-sprint.yaml (committed
/// on the base branch); the orchestrator sends them events as the sprint
/// moves. See 'git sprint notify test --help' for trying one out.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Test(test::Args),
    Log(log::Args),
}

/// Runs a `git sprint notify` subcommand.
pub fn run(ctx: &mut Ctx<'_>, command: &Command) -> Result {
    match command {
        Command::Test(a) => test::run(ctx, a),
        Command::Log(a) => log::run(ctx, a),
    }
}

/// The repository's main worktree and git common dir, for the config and
/// the notification ledger.
fn places(ctx: &Ctx<'_>) -> Result<(crate::state::Store, std::path::PathBuf, std::path::PathBuf)> {
    let store = ctx.store()?;
    let top = super::worktree_root(&store)?;
    let root = crate::worker::worktree::Git::new(&top)
        .main_worktree()
        .ok()
        .flatten()
        .unwrap_or(top);
    let common = store.repo().common_dir().to_owned();
    Ok((store, root, common))
}
