//! `git sprint config show`: the merged configuration and where each value
//! came from: the `.git-sprint.yaml` committed on the base branch (named with
//! its commit), git config, or the defaults.

use serde::Serialize;

use super::super::{worktree_root, write_json, Ctx, Result};
use crate::config::{self, Config, Source};
use std::collections::BTreeMap;

/// Print the merged configuration, each value with where it came from
///
/// The file is read as committed at the base branch's tip, the version the
/// sprint uses; uncommitted edits are reported and not used until committed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Serialize)]
struct ShowJson<'a> {
    file: Option<String>,
    /// The branch and commit the file was read from.
    base: Option<&'a config::BaseFile>,
    /// The working tree's file differs from the committed one (not used).
    uncommitted: bool,
    config: &'a Config,
    sources: &'a BTreeMap<String, Source>,
}

pub(crate) fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let top = worktree_root(&store)?;
    let root = crate::worker::worktree::Git::new(&top)
        .main_worktree()
        .ok()
        .flatten()
        .unwrap_or(top);
    let loaded = config::load_from(store.repo(), Some(&root))?;
    if args.json {
        return write_json(
            ctx.out,
            &ShowJson {
                file: loaded.file.as_ref().map(|p| p.display().to_string()),
                base: loaded.base.as_ref(),
                uncommitted: loaded.uncommitted,
                config: &loaded.config,
                sources: &loaded.sources,
            },
        );
    }
    let on = loaded
        .base
        .as_ref()
        .map(|b| format!(" on {}", b.branch))
        .unwrap_or_default();
    match &loaded.file {
        Some(_) => writeln!(ctx.out, "# {}", loaded.origin())?,
        None => writeln!(
            ctx.out,
            "# no {} committed{on} (built-in defaults; 'git sprint config edit' creates it)",
            config::FILE_NAME
        )?,
    }
    if let Some(notice) = loaded.notice() {
        writeln!(ctx.out, "# {notice}")?;
    }
    let rows = config::flatten(&loaded.config);
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in rows {
        let source = source_of(&loaded.sources, &key);
        writeln!(ctx.out, "{key:<width$} = {value}  # {source}")?;
    }
    Ok(())
}

/// The source recorded for `key` or for the leaf that contains it.
fn source_of(sources: &BTreeMap<String, Source>, key: &str) -> String {
    let mut k = key.to_owned();
    loop {
        if let Some(s) = sources.get(&k) {
            return match s {
                Source::File(_) => "file".into(),
                other => other.to_string(),
            };
        }
        match k.rfind('.') {
            Some(i) => k.truncate(i),
            None => return "default".into(),
        }
    }
}
