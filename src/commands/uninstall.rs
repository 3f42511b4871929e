//! `git sprint uninstall`: take git-sprint's hooks out of this repository.

use super::{Ctx, Result};
use crate::hooks::{self, Removed};

/// Remove git-sprint's git hooks and put back the hooks they replaced
///
/// The sprint state on refs/ai-sprint is kept; delete it yourself with
/// 'git update-ref -d refs/ai-sprint' and 'git update-ref -d
/// refs/ai-sprint-backup' if you want it gone.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove them from core.hooksPath even when it is outside this
    /// repository (other repositories sharing it lose them too)
    #[arg(long)]
    pub(crate) shared_hooks: bool,
}

/// Runs `git sprint uninstall`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let dir = super::init::hooks_dir(&store, args.shared_hooks)?;
    for (name, outcome) in hooks::uninstall(&dir)? {
        let what = match outcome {
            Removed::Restored => "removed; your hook is back in place",
            Removed::Removed => "removed",
            Removed::NotInstalled => "not installed",
        };
        writeln!(ctx.out, "{name}: {what}")?;
    }
    writeln!(ctx.out, "refs/ai-sprint is kept.")?;
    Ok(())
}
