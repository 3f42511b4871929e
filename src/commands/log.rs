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
    for e in &entries {
        line(ctx.out, e)?;
    }
    Ok(())
}

pub fn line(out: &mut dyn Write, e: &Entry) -> Result {
    let reason = e
        .transitions
        .iter()
        .find_map(|t| t.reason.as_deref())
        .filter(|_| e.transitions.len() == 1)
        .map(|r| format!("  ({r})"))
        .unwrap_or_default();
    writeln!(
        out,
        "{} {} {:<10} {}{reason}",
        short(&e.commit),
        clock::rfc3339(e.time),
        e.actor,
        e.subject
    )?;
    Ok(())
}
