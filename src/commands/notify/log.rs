//! `git sprint notify log`: the deliveries of notifications, newest first.

use super::super::{write_json, CommandError, Ctx, Result};
use crate::notify::{self, Delivery};

/// Show what notifications were delivered, newest first
///
/// One line per delivery to one receiver: when, the event and what it was
/// about, and how it went (attempts, HTTP status or exit code, error).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show at most N deliveries
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    pub(crate) max_count: Option<usize>,
    /// Only failed deliveries
    #[arg(long)]
    pub(crate) failed: bool,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let (_store, _root, common) = super::places(ctx)?;
    let dir = notify::dir(&common);
    let mut all = notify::deliveries(&dir).map_err(|source| CommandError::Io {
        doing: "reading the delivery log".into(),
        path: Some(dir.join("deliveries.jsonl")),
        source,
    })?;
    all.reverse();
    let shown: Vec<Delivery> = all
        .into_iter()
        .filter(|d| !args.failed || !d.outcome.ok)
        .take(args.max_count.unwrap_or(usize::MAX))
        .collect();
    if args.json {
        return write_json(ctx.out, &shown);
    }
    for d in &shown {
        writeln!(ctx.out, "{}", line(d))?;
    }
    Ok(())
}

/// One delivery in a line: `<when> <receiver> <event> <subject>: ok|failed …`.
pub(super) fn line(d: &Delivery) -> String {
    let o = &d.outcome;
    let mut how = if o.ok {
        "ok".to_owned()
    } else {
        "failed".to_owned()
    };
    if let Some(s) = o.status {
        how.push_str(&format!(", HTTP {s}"));
    }
    if let Some(c) = o.exit.filter(|_| !o.ok) {
        how.push_str(&format!(", exit {c}"));
    }
    how.push_str(&format!(
        ", {} attempt{}",
        o.attempts,
        if o.attempts == 1 { "" } else { "s" }
    ));
    if let Some(e) = &o.error {
        how.push_str(&format!(": {e}"));
    }
    format!("{} {} {} {}: {how}", d.at, d.receiver, d.event, d.subject)
}
