//! `git sprint log`: the audit trail, one line per state commit; paged on
//! a terminal, or followed as it grows (`--follow`).

use std::io::Write;

use super::pager::Pager;
use super::{short, write_json, Ctx, Result};
use crate::clock;
use crate::state::log::{decisions, LoggedDecision};
use crate::state::log::{history_from, since, Entry};

/// What `--follow` shows of the past without `-n`.
const FOLLOW_BACKLOG: usize = 10;

/// Show the audit trail of refs/ai-sprint, newest first
///
/// Every line is one state commit: when, who (the actor), what moved, and
/// why. The same history is in 'git log refs/ai-sprint'.
///
/// On a terminal the output goes through a pager, chosen as git does
/// ($GIT_PAGER, pager.sprint, core.pager, $PAGER, then 'less' with
/// LESS=FRX); never when piped. --follow prints the last entries oldest
/// first, then each new state commit as it lands, until interrupted.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only entries about this feature or <feature>/<task> (a bare task id works when unique)
    pub(crate) filter: Option<String>,
    /// Show at most N entries
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    pub(crate) max_count: Option<usize>,
    /// Print JSON for tools instead of text
    #[arg(long, conflicts_with = "follow")]
    pub(crate) json: bool,
    /// Keep printing new entries as they are committed (the last 10 first, or -n)
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// Print straight to the terminal, without a pager
    #[arg(long)]
    pub(crate) no_pager: bool,
    /// Only policy decision records: denials, approvals, warnings, overrides, budget stops
    #[arg(long)]
    pub(crate) policy: bool,
}

/// One line per decision record: `1a2b3c4 <time> deny no-migrations on f/T1 by cab: …`.
pub(crate) fn decision_line(out: &mut dyn Write, d: &LoggedDecision<'_>) -> Result {
    writeln!(
        out,
        "{} {} {}",
        short(&d.commit),
        clock::rfc3339(d.time),
        d.decision.summary()
    )?;
    Ok(())
}

/// Runs `git sprint log`.
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
    let keep = |e: &Entry| {
        filter
            .as_deref()
            .is_none_or(|f| e.concerns(f) || e.decisions.iter().any(|d| d.subject == f))
            && (!args.policy || !e.decisions.is_empty())
    };
    let focus = filter.as_deref().filter(|f| f.contains('/'));
    if args.follow {
        return follow(
            ctx,
            &store,
            args.max_count.unwrap_or(FOLLOW_BACKLOG),
            &keep,
            focus,
        );
    }
    let entries = history_from(&store, store.tip()?, args.max_count, keep)?;
    if args.json && args.policy {
        return write_json(ctx.out, &decisions(&entries));
    }
    if args.json {
        return write_json(ctx.out, &entries);
    }
    let mut pager = if args.no_pager {
        None
    } else {
        Pager::start(&store)
    };
    let out: &mut dyn Write = match &mut pager {
        Some(p) => p.writer(),
        None => ctx.out,
    };
    let mut written = Ok(());
    if args.policy {
        for d in decisions(&entries) {
            written = decision_line(out, &d);
            if written.is_err() {
                break;
            }
        }
    }
    for e in entries.iter().filter(|_| !args.policy) {
        written = line(out, e, focus);
        if written.is_err() {
            break;
        }
    }
    if let Some(p) = pager {
        p.finish();
        // Leaving the pager early closes its input: that is not an error.
        if let Err(super::CommandError::Output(e)) = &written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
        }
    }
    written
}

/// `--follow`: the last `backlog` entries oldest first, then every state
/// commit as it lands, woken by inotify on the ref storage.
fn follow(
    ctx: &mut Ctx<'_>,
    store: &crate::state::Store,
    backlog: usize,
    keep: &dyn Fn(&Entry) -> bool,
    focus: Option<&str>,
) -> Result {
    // Watch first, then read: a commit landing in between is not missed.
    let (_watch, wakes) = crate::view::ref_wakes(store)?;
    let mut seen = store.tip()?;
    let past = history_from(store, seen, Some(backlog), keep)?;
    for e in past.iter().rev() {
        line(ctx.out, e, focus)?;
    }
    ctx.out.flush()?;
    while wakes.recv().is_ok() {
        // A burst of ref events is one read.
        while wakes.try_recv().is_ok() {}
        let new = since(store, seen)?;
        for e in new.iter().filter(|e| keep(e)) {
            line(ctx.out, e, focus)?;
        }
        ctx.out.flush()?;
        if let Some(newest) = new.last() {
            seen = gix::ObjectId::from_hex(newest.commit.as_bytes()).ok();
        }
    }
    Ok(())
}

/// One entry per line. With `focus` (a `feature/task`), the entry shows
/// that task's own transition rather than the commit's subject.
pub(crate) fn line(out: &mut dyn Write, e: &Entry, focus: Option<&str>) -> Result {
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
