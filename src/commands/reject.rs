//! `git sprint reject`: send a task awaiting approval back to its Developer.

use super::{person, Ctx, Result};

/// Reject a task awaiting approval: back to the Developer with your reason
///
/// The reason becomes feedback in the Developer's next prompt; the attempt
/// counts (cause policy), so past the attempt limit the task fails.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// What must change, for the Developer's next attempt
    #[arg(long, short)]
    pub(crate) reason: String,
    /// Record the rejection as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
}

/// Runs `git sprint reject`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let config = crate::config::load_from(store.repo(), None)?.config;
    let attempts = crate::daemon::record::AttemptPolicy {
        max_attempts: config.policy.max_attempts,
        backoff_secs: config.policy.retry_backoff.0.as_secs(),
    };
    let (r, t) =
        crate::policy::approval::reject(&store, &args.task, &actor, &args.reason, attempts)?;
    writeln!(
        ctx.out,
        "{r}: awaiting_approval -> {} (rejected by {})",
        t.status, actor.name
    )?;
    Ok(())
}
