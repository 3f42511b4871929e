//! `git sprint init`: start keeping sprint state in this repository.

use super::{short, Ctx, Result};
use crate::clock;
use crate::state::{Actor, SprintMeta, Transition};

/// Create refs/ai-sprint in this repository, if it is missing
///
/// The state is shared by every worktree of the repository and lives only on
/// refs/ai-sprint: nothing in your branches or working tree changes. Running
/// it again changes nothing.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(ctx: &mut Ctx<'_>, _args: &Args) -> Result {
    let store = ctx.store()?;
    let done = store.transact(&Actor::named("git-sprint"), |txn| {
        if txn.meta()?.is_some() {
            return Ok(());
        }
        txn.put_meta(&SprintMeta::new(&clock::now_rfc3339()))?;
        txn.subject("sprint: initialized");
        txn.record(Transition {
            from: "none".into(),
            to: "initialized".into(),
            ..Default::default()
        });
        Ok(())
    })?;
    match done.commit {
        Some(id) => writeln!(
            ctx.out,
            "Initialized sprint state at refs/ai-sprint ({})",
            short(&id)
        )?,
        None => {
            let tip = store.tip()?.map(|t| short(&t)).unwrap_or_default();
            writeln!(
                ctx.out,
                "Sprint state already initialized (refs/ai-sprint at {tip}); nothing changed"
            )?
        }
    }
    Ok(())
}
