//! `git sprint watch`: the live board in the terminal.

use std::io::IsTerminal;

use super::{style, Ctx, Result};
use crate::view;

/// Show the sprint live: progress, running agents, trouble, transitions
///
/// Per feature a progress bar with counts by status and an ETA from how long
/// finished tasks took; the running agents with role, task, age, tokens,
/// cost and their last output line; failed, blocked and stalled work
/// highlighted; the last transitions. It redraws when refs/ai-sprint moves or
/// an agent prints (inotify, no polling). q or Ctrl-C leaves.
///
/// Piped (stdout not a terminal), it prints the board once and exits.
/// Colour follows --color and NO_COLOR, as for the other boards.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `git sprint watch`.
pub fn run(ctx: &mut Ctx<'_>, _args: &Args) -> Result {
    if !std::io::stdout().is_terminal() {
        let board = view::Board::open(&ctx.cwd)?;
        for line in view::paint(
            &board.frame(crate::clock::now(), false, usize::MAX, 0),
            style::enabled(),
        ) {
            writeln!(ctx.out, "{}", line.trim_end())?;
        }
        return Ok(());
    }
    Ok(view::live(&ctx.cwd, style::enabled())?)
}
