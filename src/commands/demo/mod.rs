//! `git sprint demo`: the first run, with nothing to set up.
//!
//! This file is the command (its `--help` and options); the walk through a whole
//! sprint in a throwaway repository is [`walkthrough`].

mod walkthrough;

pub(crate) use walkthrough::DemoError;

use std::path::PathBuf;
use std::time::Duration;

use super::{current_exe, Ctx, Result};

/// Watch a whole sprint run in a throwaway repository, in under a minute
///
/// Makes a temporary repository with a tiny project, its spec and a tasks.md
/// of 11 tasks in 3 stories, configured with a scripted stand-in for an AI
/// agent. Then runs the sprint: developers and testers in tmux on a private
/// server, review and test gates, merges into the integration branch behind
/// a post-merge gate. Prints each transition as it is recorded on
/// refs/ai-sprint, then the board and the logs. Needs git and tmux; no
/// network. Exits 0 only when the feature is done.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Make the repository in DIR (new or empty) and keep it afterwards
    #[arg(long, value_name = "DIR")]
    pub(crate) keep: Option<PathBuf>,
    /// Give up if the sprint is not done after this long
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,
    /// Serve the board (git sprint serve) on ADDR while the sprint runs, open
    /// it in the browser, and keep it up after the sprint until Ctrl-C
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "127.0.0.1:7878"
    )]
    pub(crate) serve: Option<std::net::SocketAddr>,
}

fn parse_timeout(s: &str) -> std::result::Result<Duration, String> {
    crate::clock::parse_duration(s)
}

/// Runs a `git sprint demo` subcommand.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let keep = args.keep.as_ref().map(|dir| ctx.cwd.join(dir));
    let options = walkthrough::Options {
        keep,
        timeout: args.timeout,
        exe: current_exe()?,
        serve: args.serve,
    };
    walkthrough::run(ctx.out, &options)?;
    Ok(())
}
