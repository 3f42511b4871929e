//! `git sprint status`: the board.

use std::collections::BTreeMap;
use std::io::Write;

use super::style::{self, Tone};
use super::{short, write_json, Ctx, Result};
use crate::clock;
use crate::state::{natural_key, ConvoyStatus, FeatureState, Store, TaskStatus};
use crate::view::status::{self, StatusView};

/// Show features, convoys, tasks per status, claims and quarantined records
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// How to show the board; [`Args`] resolved, for callers without a command line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// JSON for tools instead of text.
    pub(crate) json: bool,
}

/// Runs `git sprint status`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    // With a state remote, show what every machine wrote; an unreachable
    // remote still leaves this clone's copy to show.
    if let Err(e) = store.refresh() {
        eprintln!("note: showing this clone's copy of the state: {e}");
    } else if let Err(e) = store.fetch_refs(&format!("{}*", crate::machines::HEARTBEAT_REFS)) {
        eprintln!("note: showing this clone's copy of the machines' heartbeats: {e}");
    }
    show(&store, ctx.out, &Options { json: args.json })
}

/// Writes the board of `store` to `out`.
pub(crate) fn show(store: &Store, out: &mut dyn Write, opts: &Options) -> Result {
    let view = status::gather(store, opts.json)?;
    if opts.json {
        return write_json(out, &view);
    }
    let StatusView {
        tip,
        spend: spent,
        trouble,
        drafts,
        config_notice,
        queued,
        machines,
        snapshot,
    } = view;
    if let Some(notice) = &config_notice {
        writeln!(out, "note: {notice}")?;
    }
    if let Some(q) = &queued {
        writeln!(
            out,
            "note: {} transition{} queued on this clone since {}: the state remote '{}' does not answer; they are replayed there when it does",
            q.count,
            plural(q.count),
            clock::rfc3339(q.since),
            store.remote_name().unwrap_or_default()
        )?;
    }
    let Some(tip) = tip else {
        writeln!(out, "No sprint state yet: refs/ai-sprint does not exist.")?;
        writeln!(out, "hint: run 'git sprint init', then commit a specs/<feature>/tasks.md or 'git sprint add' a task")?;
        return show_drafts(out, &drafts);
    };
    writeln!(
        out,
        "refs/ai-sprint at {}: {} feature{}, {} agent{}, ${:.2} spent{}",
        short(&tip),
        snapshot.features.len(),
        plural(snapshot.features.len()),
        snapshot.agents.len(),
        plural(snapshot.agents.len()),
        spent.total_usd,
        if snapshot.meta.as_ref().is_some_and(|m| m.paused) {
            " (paused)"
        } else {
            ""
        }
    )?;
    if !machines.is_empty() {
        let each: Vec<String> = machines
            .iter()
            .map(|m| {
                let lead = if m.leader { ", leads" } else { "" };
                format!("{} {}{lead}", m.name, m.status)
            })
            .collect();
        writeln!(
            out,
            "machines (through {}): {}",
            store.remote_name().unwrap_or("a remote"),
            each.join("; ")
        )?;
    }
    for t in &trouble {
        writeln!(
            out,
            "{}: {}: {}",
            style::paint(t.kind, style::tone_of(t.kind).or(Some(Tone::Warn))),
            t.subject,
            t.message
        )?;
        writeln!(out, "  -> {}", t.hint)?;
    }
    let now = clock::now();
    for fs in &snapshot.features {
        writeln!(out)?;
        let git = store
            .repo()
            .workdir()
            .map(crate::worker::worktree::Git::new);
        let usd = spent.features.get(&fs.feature.name).copied().unwrap_or(0.0);
        feature(out, fs, now, git.as_ref(), usd)?;
    }
    show_drafts(out, &drafts)
}

/// Working-tree tasks.md files that would be rejected if committed.
fn show_drafts(out: &mut dyn Write, drafts: &[crate::ingest::Draft]) -> Result {
    for d in drafts {
        writeln!(out, "\nnot committable: {}", d.error)?;
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn feature(
    out: &mut dyn Write,
    fs: &FeatureState,
    now: i64,
    git: Option<&crate::worker::worktree::Git>,
    usd: f64,
) -> Result {
    let f = &fs.feature;
    let done = fs
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Done)
        .count();
    let skipped = fs.tasks.iter().filter(|t| t.skipped.is_some()).count();
    let skipped = if skipped > 0 {
        format!(" ({skipped} skipped: {})", crate::spec::CHORE_REASON)
    } else {
        String::new()
    };
    writeln!(
        out,
        "{}  {}  {}/{} tasks done{skipped}  ${usd:.2} spent",
        f.name,
        style::state(&if crate::stages::stalled(fs) {
            "stalled".to_owned()
        } else {
            f.status.to_string()
        }),
        done,
        fs.tasks.len()
    )?;
    if let Some(branch) = &f.integration_branch {
        let base = f.base_branch.as_deref().unwrap_or("main");
        let ahead = git.and_then(|g| g.commits_ahead(branch, base).ok());
        match ahead {
            Some(n) => writeln!(
                out,
                "  integration branch: {branch} ({n} commit{} ahead of {base})",
                if n == 1 { "" } else { "s" }
            )?,
            None => writeln!(out, "  integration branch: {branch}")?,
        }
        if f.status == crate::state::FeatureStatus::Done {
            match &f.note {
                Some(note) => writeln!(out, "  {note}")?,
                None if ahead.is_some_and(|n| n > 0) => {
                    writeln!(out, "  ready: git switch {base} && git merge {branch}")?
                }
                None => {}
            }
        }
    }
    let counts: Vec<String> = fs
        .counts()
        .into_iter()
        .map(|(st, n)| style::state(&format!("{st} {n}")).into_owned())
        .collect();
    if !counts.is_empty() {
        writeln!(out, "  tasks: {}", counts.join(", "))?;
    }
    // Convoys: the stored records, plus any story named only by tasks.
    let mut convoys: BTreeMap<String, (Option<ConvoyStatus>, Vec<&crate::state::Task>)> =
        BTreeMap::new();
    for c in &fs.convoys {
        convoys.entry(c.id.clone()).or_default().0 = Some(c.status);
    }
    for t in &fs.tasks {
        if let Some(c) = &t.convoy {
            convoys.entry(c.clone()).or_default().1.push(t);
        }
    }
    // In tasks.md order: by the first line of each convoy's tasks.
    let first_line = |id: &String| {
        convoys[id]
            .1
            .iter()
            .map(|t| if t.line == 0 { u32::MAX } else { t.line })
            .min()
            .unwrap_or(u32::MAX)
    };
    let mut ids: Vec<_> = convoys.keys().cloned().collect();
    ids.sort_by_key(|id| (first_line(id), natural_key(id)));
    for id in ids {
        let (status, tasks) = &convoys[&id];
        let done = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Done)
            .count();
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "open".into());
        writeln!(
            out,
            "  convoy {id:<14} {} {done}/{} done",
            style::state(&format!("{status:<8}")),
            tasks.len()
        )?;
    }
    let claims: Vec<_> = fs
        .tasks
        .iter()
        .filter_map(|t| t.claim.as_ref().map(|c| (t, c)))
        .collect();
    if !claims.is_empty() {
        writeln!(out, "  claims:")?;
        for (t, c) in claims {
            let left = c.expires - now;
            let when = if left > 0 {
                format!("expires in {}", clock::short_age(left))
            } else {
                style::state(&format!("expired {} ago", clock::short_age(-left))).into_owned()
            };
            writeln!(out, "    {:<8} {:<12} {when}", t.id, c.holder)?;
        }
    }
    Ok(())
}
