//! `git sprint config show`: the merged configuration and where each value
//! came from.

use serde::Serialize;

use super::super::{worktree_root, write_json, Ctx, Result};
use crate::config::{self, Config, Source};
use std::collections::BTreeMap;

/// Print the merged configuration, each value with where it came from
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ShowJson<'a> {
    file: Option<String>,
    config: &'a Config,
    sources: &'a BTreeMap<String, Source>,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let top = worktree_root(&store)?;
    let root = crate::worker::worktree::Git::new(&top)
        .main_worktree()
        .ok()
        .flatten()
        .unwrap_or(top);
    let loaded = config::load(&root, &root)?;
    if args.json {
        return write_json(
            ctx.out,
            &ShowJson {
                file: loaded.file.as_ref().map(|p| p.display().to_string()),
                config: &loaded.config,
                sources: &loaded.sources,
            },
        );
    }
    match &loaded.file {
        Some(f) => writeln!(ctx.out, "# {}", f.display())?,
        None => writeln!(
            ctx.out,
            "# no {} (built-in defaults; 'git sprint config edit' creates it)",
            config::FILE_NAME
        )?,
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
