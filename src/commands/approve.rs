//! `git sprint approve`: let a task held by a `require_approval` rule merge.

use super::{person, Ctx, Result};

/// Approve a task awaiting approval, so the Refinery merges it
///
/// A policy rule with `action: require_approval` that matched the task's
/// diff holds it in awaiting_approval once its gates pass. Approving is a
/// state commit with a decision record; 'git sprint status' lists what waits.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// Record the approval as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Why, recorded with the approval
    #[arg(long, short)]
    pub(crate) reason: Option<String>,
}

/// Runs `git sprint approve`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let (r, t) =
        crate::policy::approval::approve(&store, &args.task, &actor, args.reason.as_deref())?;
    writeln!(
        ctx.out,
        "{r}: awaiting_approval -> {} (approved by {})",
        t.status, actor.name
    )?;
    Ok(())
}
