//! `git sprint done`: an agent says its task is finished; with
//! `--no-change`, a person closes a task that needs no change.

use super::{person, CommandError, Ctx, Result};
use crate::state::{ops, Refusal, StateError, Store, TaskRef, TaskStatus, Txn};

/// Tell git-sprint your task is finished: it moves on to review
///
/// Agents run this from their worktree; the task defaults to $SPRINT_TASK,
/// which the worker sets, else the one task you hold. Ending the agent's
/// process does the same. With --no-change, a person closes a task that
/// truly needs no change: it is done without a merge, recorded as their
/// decision (refused while an agent holds it, or when its branch or
/// worktree holds work).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task (default: $SPRINT_TASK, else the task you have claimed)
    pub(crate) task: Option<String>,
    /// Record the change as NAME (default: $SPRINT_WORKER, else your git user.name)
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Close the task as done without a change (a person's decision, recorded)
    #[arg(long, requires = "task")]
    pub(crate) no_change: bool,
    /// Why no change is needed, recorded in the audit trail (with --no-change)
    #[arg(long, short, requires = "no_change")]
    pub(crate) reason: Option<String>,
}

/// Runs `git sprint done`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    if args.no_change {
        return no_change(ctx, &store, args);
    }
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

/// `done --no-change`: the task is closed as needing no change.
fn no_change(ctx: &mut Ctx<'_>, store: &Store, args: &Args) -> Result {
    // An agent must not close its own task without doing it.
    if let Ok(worker) = std::env::var("SPRINT_WORKER") {
        return Err(CommandError::Failed {
            message: format!(
                "--no-change is a person's decision; worker {worker} cannot close a task without a change"
            ),
            hint: Some("if the task needs no change, say so in your output and exit".into()),
        });
    }
    let actor = person(store, args.actor.as_deref());
    let name = args.task.clone().unwrap_or_default();
    // Work on the task's branch or in its worktree is a change: check git
    // before the state (the transaction re-checks the status and claim).
    let (r, branch, integration, worktree) = store.read(|txn| {
        let r = ops::resolve(txn, &name)?;
        let t = txn.task(&r.feature, &r.id)?;
        let f = txn.feature(&r.feature)?;
        Ok((
            r.clone(),
            t.as_ref()
                .and_then(|t| t.branch.clone())
                .unwrap_or_else(|| crate::stages::task_branch(&r.feature, &r.id)),
            f.and_then(|f| f.integration_branch)
                .unwrap_or_else(|| crate::stages::integration_branch(&r.feature)),
            t.and_then(|t| t.worktree),
        ))
    })?;
    if let Some(root) = store.repo().workdir() {
        let git = crate::worker::worktree::Git::new(root);
        if git.branch_exists(&branch).unwrap_or(false)
            && git.branch_exists(&integration).unwrap_or(false)
        {
            let ahead = git.commits_ahead(&branch, &integration).unwrap_or(0);
            if ahead > 0 {
                return Err(StateError::from(Refusal::NeedsChange {
                    task: r.to_string(),
                    why: format!(
                        "its branch {branch} has {ahead} commit{} not in {integration}",
                        if ahead == 1 { "" } else { "s" }
                    ),
                })
                .into());
            }
        }
        if let Some(wt) = worktree.filter(|w| std::path::Path::new(w).join(".git").exists()) {
            if git.at(&wt).is_dirty().unwrap_or(false) {
                return Err(StateError::from(Refusal::NeedsChange {
                    task: r.to_string(),
                    why: format!("its worktree {wt} has uncommitted changes"),
                })
                .into());
            }
        }
    }
    let why = args.reason.as_deref().unwrap_or("no change needed");
    let done = store.transact(&actor, |txn| {
        ops::close_without_change(txn, &r, &actor.name, why)
    })?;
    writeln!(
        ctx.out,
        "{r}: {} -> done without a change ({why}; recorded as {}'s decision)",
        done.value, actor.name
    )?;
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
