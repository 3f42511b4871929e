//! Worker machinery: the low-level pieces a worker is made of — a git worktree
//! per task ([`worktree`], recycled through the [`pool`]), a tmux session per worker on one private server per
//! repository ([`tmux`]), the agent command line rendered from a profile
//! ([`profile`]), the reader of its output ([`stream`]), process-tree
//! statistics for `list` ([`procstat`]), and the containment of untrusted
//! agents: the Landlock [`sandbox`], the [`guard`] on shared files checked
//! around every run, and [`reap`], which kills every process an agent or a
//! gate left behind.
//!
//! Nothing here knows about `refs/ai-sprint` or the CLI: each module shells out
//! to `git` or `tmux` (real processes, never a screen scraper) and returns typed
//! errors that say what failed, where, and what to do next. The state store and
//! the commands compose these pieces.

pub(crate) mod guard;
pub(crate) mod pool;
pub(crate) mod procstat;
pub(crate) mod profile;
pub(crate) mod reap;
pub(crate) mod sandbox;
pub(crate) mod stream;
pub mod tmux;
pub(crate) mod worktree;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
pub(crate) mod testutil;

/// The last `max_lines` lines of `text` (at most 2 KiB), for error messages.
///
/// A failing command can print megabytes; an error names the end, where the
/// cause usually is.
pub(crate) fn tail(text: &str, max_lines: usize) -> String {
    const MAX_BYTES: usize = 2048;
    let trimmed = text.trim_end();
    let lines: Vec<&str> = trimmed.lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let mut out = lines[start..].join("\n");
    if out.len() > MAX_BYTES {
        let mut cut = out.len() - MAX_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("…{}", &out[cut..]);
    }
    out
}
