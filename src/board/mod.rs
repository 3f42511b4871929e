//! The board: `git sprint serve`, an HTTP API and a live web page over the
//! state on `refs/ai-sprint`.
//!
//! Nothing here keeps its own copy of the sprint. Every read answers with
//! the JSON the read commands' `--json` print (the same view, from the same
//! function in [`crate::view`]), the event stream is the audit trail as it
//! grows (one Server-Sent Event per state commit, woken by the
//! orchestrator's inotify watch of the refs, never a timer), and the
//! actions call the same functions as `git sprint
//! retry`/`cancel`/`pause`/`resume` ([`crate::control`]). The page is three files
//! compiled into the binary, so it works offline.

mod api;
mod auth;
mod events;
mod page;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::hint::Hint;
use crate::state::{StateError, Store};

pub(crate) use auth::TOKEN_HEADER;

/// What `git sprint serve` failed with.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {doing} the board's token {}", path.display())]
    Token {
        doing: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    View(#[from] crate::view::ViewError),
    #[error("the board's server failed")]
    Server(#[source] std::io::Error),
    #[error("writing output")]
    Output(#[from] std::io::Error),
}

impl Hint for BoardError {
    fn hint(&self) -> Option<String> {
        match self {
            BoardError::State(e) => e.hint(),
            BoardError::View(e) => e.hint(),
            BoardError::Bind { .. } => Some(
                "pick another address with --addr (port 0 lets the system choose a free one)"
                    .into(),
            ),
            BoardError::Token { path, .. } => Some(format!(
                "check the permissions of {}; deleting it makes the next serve write a new token",
                path.display()
            )),
            BoardError::Server(_) | BoardError::Output(_) => None,
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) addr: SocketAddr,
    /// Open the page in the desktop's browser once listening.
    pub(crate) open: bool,
}

/// What every request handler shares.
pub(crate) struct Shared {
    /// Where the repository is (commands run as if started here).
    pub(crate) cwd: PathBuf,
    pub(crate) token: String,
    /// Reads need the token too when the address is not loopback.
    pub(crate) loopback: bool,
    pub(crate) events: Arc<events::Hub>,
    /// The last `status --json`, by the state commit it was made at.
    pub(crate) status: std::sync::Mutex<Option<api::CachedStatus>>,
}

/// Serves the board until interrupted. Prints where it listens (the
/// first line, `Serving the board on http://ADDR/`) and the token's path.
pub(crate) fn serve(cwd: &Path, opts: &Options, out: &mut dyn Write) -> Result<(), BoardError> {
    let store = Store::discover(cwd)?;
    let token_path = auth::token_path(store.repo().common_dir());
    let token = auth::load_or_create(&token_path)?;
    let listener = TcpListener::bind(opts.addr).map_err(|source| BoardError::Bind {
        addr: opts.addr,
        source,
    })?;
    let bound = listener.local_addr().map_err(BoardError::Server)?;
    let loopback = bound.ip().is_loopback();
    let events = Arc::new(events::Hub::start(&store)?);
    let url = format!("http://{bound}/");
    writeln!(out, "Serving the board on {url}")?;
    writeln!(
        out,
        "Actions (retry, cancel, pause, resume) need the token in {}: paste it into the page once, or send it as the {TOKEN_HEADER} header",
        token_path.display()
    )?;
    if !loopback {
        writeln!(
            out,
            "warning: {bound} is not a loopback address: anyone who can reach it and holds the token can read the sprint and act on it, over plain HTTP (no TLS); prefer 127.0.0.1 behind an SSH tunnel"
        )?;
    }
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()?;
    if opts.open {
        open_browser(&url, out)?;
    }
    let shared = Arc::new(Shared {
        cwd: cwd.to_owned(),
        token,
        loopback,
        events,
        status: std::sync::Mutex::new(None),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(BoardError::Server)?;
    runtime.block_on(async move {
        listener.set_nonblocking(true).map_err(BoardError::Server)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(BoardError::Server)?;
        let app = api::router(shared);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(BoardError::Server)
    })
}

/// `--open`: the desktop's browser, when there is one; its absence is
/// said, not fatal (the URL is printed above).
fn open_browser(url: &str, out: &mut dyn Write) -> Result<(), BoardError> {
    let spawned = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        writeln!(
            out,
            "note: cannot open a browser (xdg-open: {e}); open {url} yourself"
        )?;
    }
    Ok(())
}
