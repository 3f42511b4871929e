//! `git sprint release`: give a claimed task back.

use super::{person, Ctx, Result};
use crate::state::ops;

/// Give a claimed task back: in_progress -> todo, lease cleared
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// Release only if NAME holds the lease (default: release whoever holds it)
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub(crate) reason: Option<String>,
}

/// Runs `git sprint release`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let done = store.transact(&actor, |txn| {
        let r = ops::resolve(txn, &args.task)?;
        ops::release(txn, &r, args.actor.as_deref(), args.reason.as_deref())?;
        Ok(r)
    })?;
    writeln!(ctx.out, "{}: released (in_progress -> todo)", done.value)?;
    Ok(())
}
