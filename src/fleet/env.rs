//! The environment an agent starts with: that of the command that scheduled
//! it, never the tmux server's.
//!
//! A tmux server keeps the environment of the process that started it, and
//! every pane inherits it: an API key fixed in the shell afterwards would
//! never reach a new agent, and a variable unset since would still be there.
//! So the pane's environment is not used. Whoever starts a session writes the
//! environment it means the process to have to a file (mode 0600, under
//! `$GIT_COMMON_DIR/sprint/env/`) and names the file in the session's
//! [`HANDOFF_ENV`]; the process in the pane, first thing in `main`, reads and
//! deletes the file and re-executes itself with exactly that environment
//! ([`adopt_handoff`]). Secrets never appear on a command line (tmux's or
//! `ps`'s), and everything the process then runs — the agent, git, hooks,
//! gates — sees the same variables.
//!
//! Fleet commands hand over their own environment. Sprint agents get the
//! environment the last `git sprint start` (or `resume`) saved in
//! `$GIT_COMMON_DIR/sprint/environment` ([`Environment::save_for_sprint`]),
//! so starting again from a fixed shell refreshes what the next agents get
//! while the orchestrator keeps running.
//!
//! A few variables are never carried over: those that describe the pane
//! rather than the caller ([`PANE_VARS`], taken from the pane), those that
//! would point git at another repository, the working directory, and the
//! `SPRINT_*` variables the wrapper sets for each agent itself.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::hint::Hint;
use crate::worker::worktree::{Identity, REDIRECTING_VARS};

/// Names the file a process started in tmux takes its environment from.
pub(crate) const HANDOFF_ENV: &str = "GIT_SPRINT_ENV_FILE";

/// Variables that belong to the pane a process runs in, not to the caller:
/// they are taken from the pane (when it has them) and never from a file.
const PANE_VARS: [&str; 4] = ["TERM", "TMUX", "TMUX_PANE", super::SOCKET_ENV];

/// Variables never carried from a caller to an agent besides [`PANE_VARS`]
/// and [`REDIRECTING_VARS`]: the working directory is the worktree's.
const DROPPED: [&str; 3] = ["PWD", "OLDPWD", HANDOFF_ENV];

/// What went wrong saving or reading an environment.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{action} the environment file {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the environment file {} is not NUL-separated KEY=VALUE entries (entry {entry})", path.display())]
    Malformed { path: PathBuf, entry: usize },
    #[error("re-executing {} with the environment handed over", exe.display())]
    Exec {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Hint for EnvError {
    fn hint(&self) -> Option<String> {
        match self {
            EnvError::Malformed { .. } => {
                Some("run 'git sprint start' (or 'resume') again: it writes the file anew".into())
            }
            _ => None,
        }
    }
}

/// A set of environment variables, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Environment {
    vars: BTreeMap<OsString, OsString>,
}

fn carried(key: &OsStr) -> bool {
    let k = key.as_bytes();
    !k.is_empty()
        && !k.starts_with(b"SPRINT_")
        && !PANE_VARS.iter().any(|v| v.as_bytes() == k)
        && !REDIRECTING_VARS.iter().any(|v| v.as_bytes() == k)
        && !DROPPED.iter().any(|v| v.as_bytes() == k)
}

impl Environment {
    /// This process's environment, less what is never carried over.
    pub(crate) fn of_this_process() -> Environment {
        Environment::from_vars(std::env::vars_os())
    }

    /// `vars`, less what is never carried over.
    pub(crate) fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Environment {
        Environment {
            vars: vars.into_iter().filter(|(k, _)| carried(k)).collect(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&OsStr> {
        self.vars.get(OsStr::new(key)).map(OsString::as_os_str)
    }

    pub(crate) fn set(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        self.vars.insert(key.into(), value.into());
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }

    /// The same environment for an agent that commits as `author`: the
    /// author is the agent, the committer stays whoever the caller is.
    pub(crate) fn for_agent(mut self, author: &Identity) -> Environment {
        self.set("GIT_AUTHOR_NAME", &author.name);
        self.set("GIT_AUTHOR_EMAIL", &author.email);
        self
    }

    /// Where `git sprint start` keeps the environment for sprint agents.
    pub(crate) fn sprint_path(common_dir: &Path) -> PathBuf {
        common_dir.join("sprint").join("environment")
    }

    /// Saves this as the environment of the sprint's next agents.
    pub(crate) fn save_for_sprint(&self, common_dir: &Path) -> Result<PathBuf, EnvError> {
        let path = Environment::sprint_path(common_dir);
        self.write(&path)?;
        Ok(path)
    }

    /// The environment the last `start` or `resume` saved, if any.
    pub(crate) fn saved_for_sprint(common_dir: &Path) -> Result<Option<Environment>, EnvError> {
        let path = Environment::sprint_path(common_dir);
        match Environment::read(&path) {
            Ok(env) => Ok(Some(env)),
            Err(EnvError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the file: `KEY=VALUE` entries, each ended by NUL (values may
    /// hold newlines), readable by the owner only since it holds what the
    /// shell holds, API keys included. Written beside and renamed, so a
    /// reader never sees half of it.
    pub(crate) fn write(&self, path: &Path) -> Result<(), EnvError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |action, source| EnvError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the directory of", e))?;
        }
        let mut bytes = Vec::new();
        for (k, v) in &self.vars {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(b'=');
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0);
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes));
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("writing", e));
        }
        Ok(())
    }

    /// Reads a file [`Environment::write`] wrote.
    pub(crate) fn read(path: &Path) -> Result<Environment, EnvError> {
        let bytes = std::fs::read(path).map_err(|source| EnvError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        })?;
        let mut vars = BTreeMap::new();
        for (i, entry) in bytes.split(|b| *b == 0).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let eq = entry
                .iter()
                .position(|b| *b == b'=')
                .filter(|at| *at > 0)
                .ok_or_else(|| EnvError::Malformed {
                    path: path.to_owned(),
                    entry: i + 1,
                })?;
            vars.insert(
                OsString::from_vec(entry[..eq].to_vec()),
                OsString::from_vec(entry[eq + 1..].to_vec()),
            );
        }
        Ok(Environment { vars })
    }
}

/// In a process started in tmux with [`HANDOFF_ENV`] set: reads the file it
/// names, deletes it, and re-executes this program (same pid, same
/// arguments) with that environment plus the pane's own [`PANE_VARS`]. Does
/// nothing without [`HANDOFF_ENV`]; returns only when it did not re-execute.
///
/// Call it first in `main`, while the process has one thread.
pub fn adopt_handoff() -> Result<(), EnvError> {
    let Some(path) = std::env::var_os(HANDOFF_ENV).map(PathBuf::from) else {
        return Ok(());
    };
    // Whatever happens next, nothing this process starts inherits the name.
    std::env::remove_var(HANDOFF_ENV);
    let env = Environment::read(&path)?;
    let _ = std::fs::remove_file(&path);
    let mut all: Vec<(OsString, OsString)> = env.vars.into_iter().collect();
    for key in PANE_VARS {
        if let Some(value) = std::env::var_os(key) {
            all.push((key.into(), value));
        }
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    // /proc/self/exe runs this very binary even if its file was replaced.
    let exe = PathBuf::from("/proc/self/exe");
    let err = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env_clear()
            .envs(all)
            .exec()
    };
    Err(EnvError::Exec { exe, source: err })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn pane_repository_and_sprint_variables_are_not_carried() {
        let env = Environment::from_vars(vars(&[
            ("PATH", "/bin"),
            ("ANTHROPIC_API_KEY", "sk-1"),
            ("TMUX", "/tmp/tmux-0/default,1,0"),
            ("TERM", "xterm"),
            ("GIT_DIR", "/elsewhere/.git"),
            ("GIT_INDEX_FILE", "/elsewhere/index"),
            ("PWD", "/home/me"),
            ("SPRINT_WORKER", "dev-1"),
            ("SPRINT_PATHS", "a.rs"),
            (HANDOFF_ENV, "/x"),
            ("GIT_SPRINT_TMUX_SOCKET", "s"),
        ]));
        let keys: Vec<&OsStr> = env.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["ANTHROPIC_API_KEY", "PATH"]);
    }

    #[test]
    fn a_file_round_trips_newlines_and_equals_signs_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut env = Environment::from_vars(vars(&[
            ("MULTI", "line one\nline two"),
            ("EQ", "a=b=c"),
            ("EMPTY", ""),
        ]));
        env = env.for_agent(&Identity {
            name: "dev-1".into(),
            email: "dev-1@git-sprint.invalid".into(),
        });
        let path = env.save_for_sprint(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("sprint/environment"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = Environment::saved_for_sprint(dir.path()).unwrap().unwrap();
        assert_eq!(back, env);
        assert_eq!(back.get("GIT_AUTHOR_NAME").unwrap(), "dev-1");
        assert_eq!(back.get("MULTI").unwrap(), "line one\nline two");
        assert!(Environment::saved_for_sprint(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_malformed_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, b"A=1\0no-equals-sign\0").unwrap();
        let err = Environment::read(&path).unwrap_err();
        assert!(matches!(err, EnvError::Malformed { entry: 2, .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
