//! `git sprint done`: an agent says its task is finished.

use super::{person, Ctx, Result};
use crate::state::{ops, Refusal, StateError, TaskRef, TaskStatus, Txn};

/// Tell git-sprint your task is finished: it moves on to review
///
/// Agents run this from their worktree; the task defaults to $SPRINT_TASK,
/// which the worker sets, else the one task you hold. Ending the agent's
/// process does the same.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task (default: $SPRINT_TASK, else the task you have claimed)
    pub task: Option<String>,
    /// Record the change as NAME (default: $SPRINT_WORKER, else your git user.name)
    #[arg(long = "as", value_name = "NAME")]
    pub actor: Option<String>,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let who = args
        .actor
        .clone()
        .or_else(|| std::env::var("SPRINT_WORKER").ok());
    let actor = person(&store, who.as_deref());
    let named = args
        .task
        .clone()
        .or_else(|| std::env::var("SPRINT_TASK").ok());
    let done = store.transact(&actor, |txn| {
        let r = match &named {
            Some(name) => ops::resolve(txn, name)?,
            None => held_by(txn, &actor.name)?,
        };
        let from = txn.task(&r.feature, &r.id)?.map(|t| t.status);
        ops::move_task(
            txn,
            &r,
            TaskStatus::InReview,
            Some(&format!("{} reported done", actor.name)),
            false,
        )?;
        Ok((r, from))
    })?;
    match done.value {
        (r, Some(TaskStatus::InReview)) => {
            writeln!(ctx.out, "{r} is already in_review; nothing changed")?
        }
        (r, _) => writeln!(ctx.out, "{r}: in_progress -> in_review")?,
    }
    Ok(())
}

/// The one task `holder` has claimed.
fn held_by(txn: &Txn<'_>, holder: &str) -> std::result::Result<TaskRef, StateError> {
    let mut found = Vec::new();
    for feature in txn.feature_names()? {
        for t in txn.tasks(&feature)? {
            if t.claim.as_ref().is_some_and(|c| c.holder == holder) {
                found.push(TaskRef {
                    feature: feature.clone(),
                    id: t.id,
                });
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(Refusal::UnknownTask {
            name: format!("claimed by {holder}"),
            known: Vec::new(),
        }
        .into()),
        _ => Err(Refusal::AmbiguousTask {
            name: format!("claimed by {holder}"),
            features: found.iter().map(|r| r.to_string()).collect(),
        }
        .into()),
    }
}
