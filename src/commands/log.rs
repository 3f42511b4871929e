//! `git sprint log`: the audit trail, one line per state commit.

use std::io::Write;

use super::{short, write_json, Ctx, Result};
use crate::clock;
use crate::state::log::{history, Entry};

/// Show the audit trail of refs/ai-sprint, newest first
///
/// Every line is one state commit: when, who (the actor), what moved, and
/// why. The same history is in 'git log refs/ai-sprint'.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only entries about this feature or <feature>/<task> (a bare task id works when unique)
    pub filter: Option<String>,
    /// Show at most N entries
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    pub max_count: Option<usize>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let filter = match &args.filter {
        None => None,
        Some(f) if f.contains('/') => Some(f.clone()),
        Some(f) => {
            // A feature name, or a bare task id resolved to feature/task.
            let is_feature = store.read(|txn| Ok(txn.feature(f)?.is_some()))?;
            if is_feature {
                Some(f.clone())
            } else {
                Some(
                    store
                        .read(|txn| crate::state::ops::resolve(txn, f))?
                        .to_string(),
                )
            }
        }
    };
    let entries = history(&store, args.max_count, |e| {
        filter.as_deref().is_none_or(|f| e.concerns(f))
    })?;
    if args.json {
        return write_json(ctx.out, &entries);
    }
    let focus = filter.as_deref().filter(|f| f.contains('/'));
    for e in &entries {
        line(ctx.out, e, focus)?;
    }
    Ok(())
}

/// One entry per line. With `focus` (a `feature/task`), the entry shows
/// that task's own transition rather than the commit's subject.
pub fn line(out: &mut dyn Write, e: &Entry, focus: Option<&str>) -> Result {
    let own = focus.and_then(|f| e.transitions.iter().find(|t| t.task == f));
    let (what, reason) = match own {
        Some(t) => (
            format!("{}: {} -> {}", t.task, t.from, t.to),
            t.reason.as_deref(),
        ),
        None => (
            e.subject.clone(),
            e.transitions
                .iter()
                .find_map(|t| t.reason.as_deref())
                .filter(|_| e.transitions.len() == 1),
        ),
    };
    let reason = reason.map(|r| format!("  ({r})")).unwrap_or_default();
    writeln!(
        out,
        "{} {} {:<10} {what}{reason}",
        short(&e.commit),
        clock::rfc3339(e.time),
        e.actor,
    )?;
    Ok(())
}
