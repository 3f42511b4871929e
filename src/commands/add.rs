//! `git sprint add`: create a task by hand.

use super::{person, Ctx, Result};
use crate::state::ops::{self, NewTask};

/// Add a task to a feature by hand (the feature is created if missing)
///
/// Tasks usually come from a committed specs/<feature>/tasks.md; this is for
/// work that is not in one.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Feature the task belongs to, e.g. 001-auth
    pub(crate) feature: String,
    /// What the task is about, in one line
    pub(crate) title: String,
    /// Task id (default: the next free T<nnn>)
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// User story the task serves, e.g. US1 (also its convoy)
    #[arg(long)]
    pub(crate) story: Option<String>,
    /// Tasks that must be done first, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub(crate) depends: Vec<String>,
    /// Files the task touches (its path locks), comma-separated; globs allowed
    #[arg(long, value_delimiter = ',', value_name = "PATHS")]
    pub(crate) paths: Vec<String>,
    /// Higher runs first
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub(crate) priority: i64,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
}

/// Runs `git sprint add`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let new = NewTask {
        id: args.id.clone(),
        title: args.title.trim().to_owned(),
        story: args.story.clone(),
        deps: args
            .depends
            .iter()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect(),
        paths: args
            .paths
            .iter()
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        priority: args.priority,
    };
    if new.title.is_empty() {
        return Err(super::CommandError::usage("the task title is empty"));
    }
    if new.title.len() > crate::spec::MAX_TEXT {
        return Err(super::CommandError::Usage {
            message: format!(
                "the task title is {} bytes, more than the {} allowed",
                new.title.len(),
                crate::spec::MAX_TEXT
            ),
            hint: Some("give a one-line title; put the detail in the feature's spec.md".into()),
        });
    }
    let done = store.transact(&actor, |txn| ops::add_task(txn, &args.feature, &new))?;
    writeln!(
        ctx.out,
        "Added {}/{}: {}",
        args.feature, done.value.id, done.value.title
    )?;
    Ok(())
}
