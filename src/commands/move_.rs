//! `git sprint move`: one transition of a task.

use super::{person, Ctx, Result};
use crate::policy::{Decision, Verdict};
use crate::state::{ops, repair, TaskStatus};

/// Move a task to another status
///
/// The task life is todo -> in_progress -> in_review -> in_tests -> in_docs ->
/// done, plus blocked, failed and cancelled; a gate that fails sends a task
/// back to in_progress. Moves the state machine does not allow are refused
/// with the legal next states, unless --force.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// The new status: todo, in_progress, in_review, in_tests, in_docs, awaiting_approval, done, blocked, failed, cancelled
    #[arg(value_parser = parse_status)]
    pub(crate) status: TaskStatus,
    /// Why, recorded in the audit trail
    #[arg(long, short)]
    pub(crate) reason: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Allow a move the state machine does not (recorded as a policy override)
    #[arg(long)]
    pub(crate) force: bool,
}

fn parse_status(s: &str) -> std::result::Result<TaskStatus, String> {
    s.parse()
}

/// Runs `git sprint move`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let mut from = None;
    let mut repaired = false;
    let done = store.transact(&actor, |txn| {
        let r = ops::resolve(txn, &args.task)?;
        // A record that does not parse is rewritten (as `repair` does):
        // forcing it to a status is a person saying what it is.
        repaired = args.force && repair::is_broken(txn, &r)?;
        if repaired {
            let fixed = repair::repair_task(
                txn,
                &r,
                args.status,
                args.reason.as_deref(),
                &super::repair::overlay_spec,
            )?;
            return Ok((r, fixed.task));
        }
        from = txn.task(&r.feature, &r.id)?.map(|t| t.status);
        let task = ops::move_task(txn, &r, args.status, args.reason.as_deref(), args.force)?;
        // A move only --force allowed is an override, on the record.
        if let Some(old) =
            from.filter(|f| args.force && *f != args.status && !f.can_move_to(args.status))
        {
            let mut d = Decision::new("force", &r.to_string(), Verdict::Override, &actor.name);
            d.inputs.insert("from".into(), old.as_str().into());
            d.inputs.insert("to".into(), args.status.as_str().into());
            d.reason = args.reason.clone();
            txn.decide(&d);
        }
        Ok((r, task))
    })?;
    let (r, task) = done.value;
    match (from, done.commit) {
        _ if repaired => writeln!(
            ctx.out,
            "{r}: quarantined -> {} (its unreadable record was rewritten)",
            task.status
        )?,
        (Some(from), Some(_)) => writeln!(ctx.out, "{r}: {from} -> {}", task.status)?,
        _ => writeln!(ctx.out, "{r} is already {}; nothing changed", task.status)?,
    }
    Ok(())
}
