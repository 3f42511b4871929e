//! `git sprint repair`: rewrite a task record that does not parse.

use super::{person, Ctx, Result};
use crate::state::{ops, repair, Task, TaskStatus, Txn};

/// Rewrite a quarantined task record (one that does not parse)
///
/// A task whose record on refs/ai-sprint does not parse is quarantined: the
/// rest of the sprint runs without it, and 'git sprint status' lists it.
/// This rewrites it: every field of the old record that still reads is
/// kept, the title, dependencies and paths come from the feature's
/// tasks.md, the claim is cleared and the status set (todo unless
/// --status). One recorded transition.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// The status to give it: todo, in_progress, in_review, in_tests, in_docs, done, blocked, failed, cancelled
    #[arg(long, default_value = "todo", value_parser = parse_status)]
    pub(crate) status: TaskStatus,
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub(crate) reason: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
}

fn parse_status(s: &str) -> std::result::Result<TaskStatus, String> {
    s.parse()
}

/// Runs `git sprint repair`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let done = store.transact(&actor, |txn| {
        let r = ops::resolve(txn, &args.task)?;
        let repaired =
            repair::repair_task(txn, &r, args.status, args.reason.as_deref(), &overlay_spec)?;
        Ok((r, repaired))
    })?;
    let (r, repaired) = done.value;
    writeln!(
        ctx.out,
        "{r}: repaired as {} (kept: {}; dropped: {})",
        repaired.task.status,
        list(&repaired.kept),
        list(&repaired.dropped)
    )?;
    Ok(())
}

/// What the feature's tasks.md says about the task, on top of what was
/// salvaged: the title, dependencies and paths people wrote.
pub(crate) fn overlay_spec(txn: &Txn<'_>, feature: &str, task: &mut Task) {
    if let Ok(Some(f)) = txn.feature(feature) {
        crate::ingest::overlay_from_spec(txn.repo(), &f, task);
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}
