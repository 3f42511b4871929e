//! One module per command; `main.rs` parses and dispatches here.
//!
//! Commands write to an output handle, never to stdout directly, so tests can
//! capture them and `--json` is one branch.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::state::{Actor, StateError, Store};

pub mod add;
pub mod agent_run;
pub mod attach;
pub mod cancel;
pub mod claim;
pub mod completions;
pub mod config;
pub mod demo;
pub mod done;
pub mod fanout;
pub mod health;
pub mod heartbeat;
pub mod hook;
pub mod ingest;
pub mod init;
pub mod kill;
pub mod list;
pub mod log;
pub mod logs;
pub mod man;
pub mod move_;
pub mod multi;
mod pager;
pub mod pause;
pub mod plan;
pub mod prompt;
pub mod recover;
pub mod release;
pub mod repair;
pub mod retry;
pub mod show;
pub mod spawn;
pub mod start;
pub mod status;
pub mod stop;
pub mod style;
pub mod sync;
pub mod uninstall;
pub mod watch;

/// What a command failed with, rendered once by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    State(#[from] StateError),

    /// A mistake in the command line that clap could not catch.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },

    /// The command did what it could and the answer is "no" (exit 1).
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },

    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),

    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),

    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),

    #[error("writing output")]
    Output(#[from] std::io::Error),

    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),

    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),

    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),

    #[error(transparent)]
    View(#[from] crate::view::ViewError),
}

impl CommandError {
    pub fn usage(message: impl Into<String>) -> Self {
        CommandError::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            CommandError::State(e) => e.hint(),
            CommandError::Usage { hint, .. } | CommandError::Failed { hint, .. } => hint.clone(),
            CommandError::Hook(e) => e.hint(),
            CommandError::Ingest(e) => e.hint(),
            CommandError::Spec(_) => Some("fix the file; nothing was changed".into()),
            CommandError::Output(_) => None,
            CommandError::Fleet(e) => e.hint(),
            CommandError::Config(e) => e.hint(),
            CommandError::Daemon(e) => e.hint(),
            CommandError::Demo(e) => e.hint(),
            CommandError::View(e) => e.hint(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage { .. } => 2,
            CommandError::State(e) if e.is_usage() => 2,
            CommandError::Fleet(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, CommandError>;

/// What every command gets: where it runs and where it writes.
pub struct Ctx<'a> {
    pub cwd: PathBuf,
    pub out: &'a mut dyn Write,
}

impl Ctx<'_> {
    pub fn store(&self) -> std::result::Result<Store, StateError> {
        Store::discover(&self.cwd)
    }
}

/// The person running the command: `--as`, else `$GIT_AUTHOR_NAME`, else
/// git's `user.name`, else `$USER` — the order git itself uses for authors.
pub fn person(store: &Store, explicit: Option<&str>) -> Actor {
    if let Some(name) = explicit {
        return Actor::named(name);
    }
    let config = store.repo().config_snapshot();
    let name = std::env::var("GIT_AUTHOR_NAME")
        .ok()
        .or_else(|| config.string("user.name").map(|n| n.to_string()))
        .filter(|n| !n.trim().is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "someone".to_owned());
    let email = std::env::var("GIT_AUTHOR_EMAIL")
        .ok()
        .or_else(|| config.string("user.email").map(|e| e.to_string()))
        .unwrap_or_else(|| format!("{name}@git-sprint"));
    Actor { name, email }
}

/// Writes `value` as pretty JSON with a trailing newline.
pub fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// The short form of a commit id for people.
pub fn short(id: &impl std::fmt::Display) -> String {
    id.to_string().chars().take(7).collect()
}

pub fn display_path(p: &Path) -> String {
    p.display().to_string()
}

/// The top of the worktree the command runs in; git-sprint's commands that
/// need files (hooks, tasks.md) refuse a bare repository here.
pub fn worktree_root(store: &Store) -> Result<PathBuf> {
    store
        .repo()
        .workdir()
        .map(Path::to_owned)
        .ok_or_else(|| CommandError::Failed {
            message: format!("{} is a bare repository", store.repo().git_dir().display()),
            hint: Some("run this in a repository with a working tree".into()),
        })
}

/// This binary's absolute path, for hooks and tmux panes to call back.
pub fn current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.canonicalize().unwrap_or(exe))
}
