//! `git sprint install-man`: the manual pages, generated from the clap
//! definitions, written where `man` finds them without root.
//!
//! `git sprint --help` makes git run `man git-sprint`, so without a page it
//! prints "No manual entry". The default directory is the one man-db derives
//! from PATH for this binary: `<bindir>/../share/man/man1` (for `cargo
//! install`, `~/.cargo/share/man/man1`), searched whenever the binary's
//! directory is on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{CommandError, Ctx, IoContext, Result};

/// Install the manual pages, so 'git sprint --help' and 'git help sprint' work
///
/// Writes git-sprint.1 and one git-sprint-<command>.1 per command, generated
/// from this binary's own help. By default into ../share/man/man1 beside the
/// binary, where man finds them while the binary's directory is on PATH (no
/// root, no MANPATH needed). Run it again after an upgrade.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write the pages into DIR instead (e.g. ~/.local/share/man/man1)
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// Writes the pages of `cli` (the parser `main` built) and says where.
pub fn run(ctx: &mut Ctx<'_>, args: &Args, cli: clap::Command) -> Result {
    let dir = match &args.dir {
        Some(d) => ctx.cwd.join(d),
        None => default_dir()?,
    };
    std::fs::create_dir_all(&dir).map_err(|e| CommandError::Failed {
        message: format!("cannot create {}: {e}", dir.display()),
        hint: Some("choose a directory you can write with --dir".into()),
    })?;
    let pages = pages(cli).during("rendering the manual pages")?;
    for (name, text) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| CommandError::Failed {
            message: format!("cannot write {}: {e}", path.display()),
            hint: Some("choose a directory you can write with --dir".into()),
        })?;
    }
    writeln!(
        ctx.out,
        "Wrote {} manual pages to {}",
        pages.len(),
        dir.display()
    )?;
    let main = dir.join("git-sprint.1");
    match found_by_man() {
        Some(found) if same_file(&found, &main) => {
            writeln!(ctx.out, "'git sprint --help' and 'man git-sprint' show it")?
        }
        Some(found) => writeln!(
            ctx.out,
            "note: man finds another page first: {}",
            found.display()
        )?,
        // No man here, or it does not search `dir`.
        None if args.dir.is_some() => writeln!(
            ctx.out,
            "note: if man does not find it, add {} to MANPATH",
            dir.parent().unwrap_or(&dir).display()
        )?,
        None => writeln!(
            ctx.out,
            "note: man finds it once {} is on PATH",
            bin_dir()?.display()
        )?,
    }
    Ok(())
}

/// `git-sprint.1` and a page per visible command (`git-sprint-start.1`, and
/// `git-sprint-config-check.1` for nested ones), as file names and roff.
pub(crate) fn pages(cli: clap::Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    // Building names each subcommand `git-sprint-<command>` (its display name).
    let mut cli = cli.disable_help_subcommand(true);
    cli.build();
    let mut out = Vec::new();
    collect(cli, &mut out)?;
    Ok(out)
}

fn collect(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub.clone(), out)?;
    }
    // Every field of `.TH` filled: an empty one shifts those after it. The
    // version stands where a date would, so a page is the same at each build.
    let page = clap_mangen::Man::new(cmd)
        .date(env!("CARGO_PKG_VERSION"))
        .source("git-sprint")
        .manual("Git Manual");
    let mut text = Vec::new();
    page.render(&mut text)?;
    out.push((page.get_filename(), text));
    Ok(())
}

/// The directory of this binary.
fn bin_dir() -> Result<PathBuf> {
    let exe = super::current_exe()?;
    Ok(exe.parent().map(Path::to_owned).unwrap_or_default())
}

/// `<bindir>/../share/man/man1`: where man-db looks for the pages of the
/// programs in a PATH directory.
fn default_dir() -> Result<PathBuf> {
    let bin = bin_dir()?;
    let prefix = bin.parent().unwrap_or(&bin);
    Ok(prefix.join("share").join("man").join("man1"))
}

/// What `man -w git-sprint` finds, if man is installed and finds anything.
fn found_by_man() -> Option<PathBuf> {
    let out = Command::new("man")
        .args(["-w", "git-sprint"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?.trim();
    (out.status.success() && !first.is_empty()).then(|| PathBuf::from(first))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
