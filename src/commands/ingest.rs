//! `git sprint ingest`: tasks.md as committed → tasks in state.

use std::io::Write;

use super::{person, short, write_json, Ctx, Result};
use crate::ingest::{self, Outcome};

/// Read committed specs/<feature>/tasks.md files into the sprint state
///
/// Reads the file as committed on the base branch (base_branch in
/// .git-sprint.yaml, else the remote's default branch, else main or master,
/// else HEAD), never the working tree. New tasks are added, tasks gone from the file are cancelled (their
/// history stays), changed text and dependencies are updated; status and
/// attempts are kept. Ingesting the same file again changes nothing. The
/// post-commit hook runs this for you when a commit on the base branch
/// changes a tasks.md.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Features to ingest (default: every specs/*/tasks.md)
    pub(crate) features: Vec<String>,
    /// Read tasks.md from this commit instead of the base branch
    #[arg(long, value_name = "REV")]
    pub(crate) rev: Option<String>,
    /// Record the change as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `git sprint ingest`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    let outcomes = ingest_all(&store, &actor, args.rev.as_deref(), &args.features)?;
    if args.json {
        return write_json(ctx.out, &outcomes);
    }
    for o in &outcomes {
        report(ctx.out, o)?;
    }
    Ok(())
}

/// Ingests `features` at `rev` (the base branch by default).
pub(crate) fn ingest_all(
    store: &crate::state::Store,
    actor: &crate::state::Actor,
    rev: Option<&str>,
    features: &[String],
) -> Result<Vec<Outcome>> {
    let repo = store.repo();
    let (rev_name, commit) = ingest::resolve_rev(repo, rev)?;
    let base = ingest::base_branch(repo);
    let mut outcomes = Vec::new();
    for source in ingest::sources(repo, &rev_name, commit, features)? {
        outcomes.push(ingest::ingest(store, actor, &source, base.as_deref())?);
    }
    Ok(outcomes)
}

pub(crate) fn report(out: &mut dyn Write, o: &Outcome) -> Result {
    if o.unchanged {
        writeln!(
            out,
            "{}: {} already ingested; nothing changed",
            o.feature, o.path
        )?;
        return Ok(());
    }
    let at = o
        .commit
        .map(|c| format!(" (refs/ai-sprint at {})", short(&c)))
        .unwrap_or_default();
    writeln!(
        out,
        "{}: ingested {}: {}{at}",
        o.feature,
        o.path,
        o.summary()
    )?;
    if let Some(b) = &o.integration_branch {
        writeln!(out, "{}: created integration branch {b}", o.feature)?;
    }
    Ok(())
}
