//! `git sprint policy validate`: the policy loads, or an error with file and line.

use super::super::{worktree_root, Ctx, Result};
use crate::policy::{self, FILE_NAME};

/// Check the policy files: the committed one, and the working tree's if it differs
///
/// An invalid file is an error naming the file and line; the orchestrator
/// does not start on one. Exits 1 if any layer is invalid.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) fn run(ctx: &mut Ctx<'_>, _args: &Args) -> Result {
    let store = ctx.store()?;
    let committed = policy::load(store.repo()).map_err(super::super::CommandError::from)?;
    let count = committed.base().len();
    let names: Vec<&str> = committed.layers.iter().map(|l| l.name.as_str()).collect();
    if names.is_empty() {
        writeln!(ctx.out, "no policy files: no rules apply")?;
    } else {
        writeln!(
            ctx.out,
            "policy ok: {count} rule{} from {}",
            if count == 1 { "" } else { "s" },
            names.join(", ")
        )?;
    }
    // The working tree's file, when it is not what is committed: checked
    // now so a mistake shows before it is committed.
    let Ok(root) = worktree_root(&store) else {
        return Ok(());
    };
    let here = std::fs::read(root.join(FILE_NAME)).ok();
    let committed_bytes = crate::config::committed_at_base(store.repo(), FILE_NAME)
        .ok()
        .and_then(|c| c.blob.map(|(_, b)| b));
    if here.is_some() && here != committed_bytes {
        policy::load_working(&root)?;
        writeln!(
            ctx.out,
            "{FILE_NAME} in the working tree is valid too; it is not used until committed on the base branch"
        )?;
    }
    Ok(())
}
