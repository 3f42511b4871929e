//! `git sprint config edit`: open the configuration file in an editor, then
//! check it.

use super::super::{worktree_root, CommandError, Ctx, Result};
use crate::config;

/// Edit .git-sprint.yaml (created from the commented example if missing), then validate it
///
/// Uses $GIT_EDITOR, $VISUAL, $EDITOR or vi, like git. The sprint reads the
/// file as committed on the base branch: commit it to use it.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub(crate) fn run(ctx: &mut Ctx<'_>, _args: &Args) -> Result {
    let store = ctx.store()?;
    let top = worktree_root(&store)?;
    let root = crate::worker::worktree::Git::new(&top)
        .main_worktree()
        .ok()
        .flatten()
        .unwrap_or(top);
    let path = config::path(&root);
    if !path.exists() {
        std::fs::write(&path, config::TEMPLATE).map_err(|e| CommandError::Failed {
            message: format!("creating {}: {e}", path.display()),
            hint: None,
        })?;
        writeln!(ctx.out, "Created {} from the example", path.display())?;
    }
    let editor = ["GIT_EDITOR", "VISUAL", "EDITOR"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    ctx.out.flush()?;
    // Through the shell, as git does: editors are often "code --wait".
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(&path)
        .status()
        .map_err(|e| CommandError::Failed {
            message: format!("running editor '{editor}': {e}"),
            hint: Some("set $GIT_EDITOR or $EDITOR".into()),
        })?;
    if !status.success() {
        return Err(CommandError::Failed {
            message: format!("editor '{editor}' exited with {status}"),
            hint: None,
        });
    }
    // The working tree's file is what will be committed: check that one.
    config::load_working_file(&root, &root)?;
    writeln!(ctx.out, "{} is valid", path.display())?;
    if let Some(notice) = config::uncommitted_notice(store.repo(), &root) {
        writeln!(ctx.out, "note: {notice}")?;
    }
    Ok(())
}
