//! One module per command; `main.rs` parses and dispatches here.
//!
//! Commands write to an output handle, never to stdout directly, so tests can
//! capture them and `--json` is one branch.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::hint::Hint;
use crate::state::{Actor, StateError, Store};

pub mod add;
pub mod agent_run;
pub mod agents;
pub mod approve;
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
pub mod notify;
mod pager;
pub mod pause;
pub mod plan;
pub mod policy;
pub mod prompt;
pub mod recover;
pub mod reject;
pub mod release;
pub mod repair;
pub mod retry;
pub mod serve;
pub mod show;
pub mod skill;
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

    /// A write to the command's output handle (stdout) failed. Only those
    /// writes convert implicitly: every other `io::Error` says what it was
    /// doing through [`IoContext`].
    #[error("writing output")]
    Output(#[from] std::io::Error),

    /// A file or process operation failed: what was being done, to which path.
    #[error("{doing}{}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Io {
        doing: String,
        path: Option<PathBuf>,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),

    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),

    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    #[error(transparent)]
    Demo(#[from] demo::DemoError),

    #[error(transparent)]
    View(#[from] crate::view::ViewError),

    #[error(transparent)]
    Skill(#[from] crate::skills::SkillError),

    #[error(transparent)]
    Board(#[from] crate::board::BoardError),

    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}

/// An action's state or fleet error is that error, so its exit code and
/// the board's HTTP status are the same as when the command made it.
impl From<crate::control::ControlError> for CommandError {
    fn from(e: crate::control::ControlError) -> Self {
        match e {
            crate::control::ControlError::State(e) => CommandError::State(e),
            crate::control::ControlError::Fleet(e) => CommandError::Fleet(e),
        }
    }
}

impl CommandError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CommandError::Usage {
            message: message.into(),
            hint: None,
        }
    }

    /// The process exit code: 2 for a usage error, 1 for any other failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Usage { .. } => 2,
            CommandError::State(e) if e.is_usage() => 2,
            CommandError::Fleet(e) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

impl Hint for CommandError {
    /// Each cause carries its own hint; this only picks the cause.
    fn hint(&self) -> Option<String> {
        let cause: &dyn Hint = match self {
            CommandError::Usage { hint, .. } | CommandError::Failed { hint, .. } => {
                return hint.clone();
            }
            CommandError::Output(_) | CommandError::Io { .. } => return None,
            CommandError::State(e) => e,
            CommandError::Hook(e) => e,
            CommandError::Ingest(e) => e,
            CommandError::Spec(e) => e,
            CommandError::Fleet(e) => e,
            CommandError::Daemon(e) => e,
            CommandError::Config(e) => e,
            CommandError::Demo(e) => e,
            CommandError::View(e) => e,
            CommandError::Skill(e) => e,
            CommandError::Board(e) => e,
            CommandError::Policy(e) => e,
        };
        cause.hint()
    }
}

/// A command's result; the error carries its hint and exit code.
pub type Result<T = ()> = std::result::Result<T, CommandError>;

/// Labels an `io::Error` with what was being done (and to which path), so
/// the message says more than "No such file or directory".
pub(crate) trait IoContext<T> {
    /// `doing` to `path`, e.g. `.doing("creating", &dir)`.
    fn doing(self, doing: &str, path: &Path) -> Result<T>;
    /// `doing` where no single path is involved, e.g. running a program.
    fn during(self, doing: &str) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn doing(self, doing: &str, path: &Path) -> Result<T> {
        self.map_err(|source| CommandError::Io {
            doing: doing.to_owned(),
            path: Some(path.to_owned()),
            source,
        })
    }

    fn during(self, doing: &str) -> Result<T> {
        self.map_err(|source| CommandError::Io {
            doing: doing.to_owned(),
            path: None,
            source,
        })
    }
}

/// What every command gets: where it runs and where it writes.
pub struct Ctx<'a> {
    /// The directory the command runs in.
    pub cwd: PathBuf,
    /// Where the command writes its output.
    pub out: &'a mut dyn Write,
}

impl Ctx<'_> {
    pub(crate) fn store(&self) -> std::result::Result<Store, StateError> {
        Store::discover(&self.cwd)
    }
}

/// The person running the command: `--as`, else `$GIT_AUTHOR_NAME`, else
/// git's `user.name`, else `$USER` — the order git itself uses for authors.
pub(crate) fn person(store: &Store, explicit: Option<&str>) -> Actor {
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
pub(crate) fn write_json<T: serde::Serialize>(out: &mut dyn Write, value: &T) -> Result {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

pub(crate) use crate::names::short_id as short;

/// The top of the worktree the command runs in; git-sprint's commands that
/// need files (hooks, tasks.md) refuse a bare repository here.
pub(crate) fn worktree_root(store: &Store) -> Result<PathBuf> {
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
pub(crate) fn current_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().during("finding the path of this program")?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SprintMeta;

    fn git(dir: &Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .expect("git runs");
        assert!(status.success(), "git {args:?}");
    }

    fn write_meta(store: &Store) -> std::result::Result<(), StateError> {
        store
            .transact(&Actor::named("tester"), |txn| {
                txn.put_meta(&SprintMeta::new("now"))?;
                txn.subject("sprint: initialized");
                Ok(())
            })
            .map(|_| ())
    }

    /// The store makes `Lost` and says what to do; the hint reaches the
    /// command's error, also through a wrapper, with no code that forwards it.
    #[test]
    fn a_hint_made_in_the_store_shows_through_command_error() {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let store = Store::discover(dir.path()).unwrap();
        write_meta(&store).unwrap();
        git(dir.path(), &["update-ref", "-d", "refs/ai-sprint"]);
        let store = Store::discover(dir.path()).unwrap();

        let lost = write_meta(&store).unwrap_err();
        assert!(matches!(lost, StateError::Lost { .. }), "{lost}");
        let hint = CommandError::from(lost).hint().expect("a hint");
        assert!(hint.contains("git sprint recover"), "{hint}");

        let lost = write_meta(&store).unwrap_err();
        let wrapped = CommandError::from(crate::fleet::FleetError::from(lost));
        let hint = wrapped.hint().expect("a hint through the fleet");
        assert!(hint.contains("git sprint recover"), "{hint}");
    }

    #[test]
    fn an_io_error_names_what_was_done_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("tasks.md");
        let err = std::fs::read_to_string(&missing)
            .doing("reading", &missing)
            .unwrap_err();
        assert_eq!(err.to_string(), format!("reading {}", missing.display()));
        let cause = std::error::Error::source(&err).expect("the io error is kept");
        assert!(cause.to_string().contains("No such file"), "{cause}");

        let err = std::fs::read_dir(&missing)
            .during("listing the worktrees")
            .unwrap_err();
        assert_eq!(err.to_string(), "listing the worktrees");
    }
}
