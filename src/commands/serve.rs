//! `git sprint serve`: the board in a browser.

use std::net::SocketAddr;

use super::{Ctx, Result};

/// Serve the board: a live web page and a JSON API over the sprint's state
///
/// The page shows tasks in columns by status, each feature's progress and
/// ETA, the running agents and the audit trail, and changes within a second
/// of each state commit, without reloading. The API (under /api/v1/) answers
/// with the JSON the read commands print with --json: status,
/// features/F, tasks/F/ID, agents, log?after=ID, health; events is a
/// Server-Sent Events stream of every state commit (resumable with
/// Last-Event-ID).
///
/// Actions (retry, cancel, pause, resume; POST) need the token kept in
/// .git/sprint/board-token (made at the first serve) in the X-Sprint-Token
/// header, and a same-origin request. Reads need it too when the address
/// is not loopback. Stop with Ctrl-C.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen (port 0: any free port; the first line says which)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7878")]
    pub(crate) addr: SocketAddr,
    /// Open the page in the desktop's browser (xdg-open)
    #[arg(long)]
    pub(crate) open: bool,
}

/// Runs `git sprint serve`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let opts = crate::board::Options {
        addr: args.addr,
        open: args.open,
    };
    Ok(crate::board::serve(&ctx.cwd, &opts, ctx.out)?)
}
