//! tmux sessions for workers, driven through the tmux CLI on a private socket.
//!
//! Each repository gets its own tmux server (`tmux -L git-sprint-<hash>`), so
//! our sessions never mix with the user's and `kill_server` only ends ours.
//! One session per worker runs one command. The command reaches tmux as
//! `/bin/sh -c "exec 'arg0' 'arg1' …"`: every argv element is single-quoted for
//! POSIX sh, and because tmux receives more than one argument it execs `/bin/sh`
//! directly instead of going through the user's `default-shell` (which may be
//! fish). `exec` makes the pane's pid the command's own pid.
//!
//! `remain-on-exit` is forced off: the wrapper in the pane records the agent's
//! end itself, so the session may close as soon as its command exits, and a
//! dead session is then a fact the Witness can rely on. Output is piped to a
//! log file with `pipe-pane`, set up in the same tmux invocation as the
//! session so not even the first line is lost.
//!
//! tmux treats an argument ending in `;` as a command separator, and expands
//! `#` formats in some arguments; free-form arguments are escaped for both.

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use thiserror::Error;

use super::tail;

/// The oldest tmux this module works with: `new-session -e` arrived in 3.2.
pub(crate) const MIN_VERSION: (u32, u32) = (3, 2);

/// What went wrong talking to tmux.
#[derive(Debug, Error)]
pub enum TmuxError {
    /// The `tmux` binary could not be run.
    #[error("tmux is not installed or not on PATH: install it (e.g. `apt install tmux` or `brew install tmux`)")]
    NotInstalled {
        #[source]
        source: io::Error,
    },
    /// tmux exists but could not be started.
    #[error("could not run tmux")]
    Spawn {
        #[source]
        source: io::Error,
    },
    /// tmux is older than [`MIN_VERSION`].
    #[error("tmux {found} is too old: git-sprint needs tmux {}.{} or newer; upgrade tmux", MIN_VERSION.0, MIN_VERSION.1)]
    TooOld { found: String },
    /// A session name tmux would mangle or misread.
    #[error("invalid tmux session name `{name}`: use letters, digits, `-`, `_`, `/` or `@`")]
    InvalidName { name: String },
    /// An environment variable name that cannot be passed with `-e`.
    #[error("invalid environment variable name `{key}` for tmux session `{session}`")]
    InvalidEnv { key: String, session: String },
    /// A session was asked to run nothing.
    #[error("no command given for tmux session `{session}`")]
    EmptyCommand { session: String },
    /// The session to create exists already.
    #[error("tmux session `{session}` already exists on socket {socket}: kill it first or pick another name")]
    SessionExists { session: String, socket: String },
    /// The session to act on does not exist (or the server is not running).
    #[error("no tmux session `{session}` on socket {socket}")]
    NoSession { session: String, socket: String },
    /// A path could not be resolved.
    #[error("cannot resolve {path}")]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A tmux command failed.
    #[error("tmux {op} failed on socket {socket} ({status}): {stderr}")]
    Failed {
        op: &'static str,
        socket: String,
        status: ExitStatus,
        stderr: String,
    },
    /// tmux printed something this module cannot read.
    #[error("unexpected output from tmux {op}: `{output}`")]
    BadOutput { op: &'static str, output: String },
    /// `exec` of `tmux attach` failed.
    #[error("could not attach to tmux session `{session}`")]
    Attach {
        session: String,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, TmuxError>;

/// A tmux server on one socket name (`tmux -L <socket>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmux {
    socket: String,
    config: Option<PathBuf>,
}

impl Tmux {
    /// A handle on the server with socket name `socket`.
    pub fn new(socket: impl Into<String>) -> Tmux {
        Tmux {
            socket: socket.into(),
            config: None,
        }
    }

    /// The server of the repository whose common dir is `common_dir`.
    ///
    /// The socket is `git-sprint-<hash>` of the canonical path, so every
    /// worktree of one repository, and every process, finds the same server.
    pub(crate) fn for_repo(common_dir: &Path) -> Result<Tmux> {
        let canonical = common_dir
            .canonicalize()
            .map_err(|source| TmuxError::Path {
                path: common_dir.to_owned(),
                source,
            })?;
        Ok(Tmux::new(socket_name(&canonical)))
    }

    /// The same handle, starting the server with `path` instead of `~/.tmux.conf`.
    #[cfg(test)]
    pub(crate) fn with_config_file(mut self, path: impl Into<PathBuf>) -> Tmux {
        self.config = Some(path.into());
        self
    }

    /// The socket name given to `tmux -L`.
    pub(crate) fn socket(&self) -> &str {
        &self.socket
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        if let Some(config) = &self.config {
            cmd.arg("-f").arg(config);
        }
        cmd.arg("-L").arg(&self.socket);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn output(&self, cmd: &mut Command) -> Result<Output> {
        cmd.output().map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                TmuxError::NotInstalled { source }
            } else {
                TmuxError::Spawn { source }
            }
        })
    }

    fn failed(&self, op: &'static str, out: &Output) -> TmuxError {
        TmuxError::Failed {
            op,
            socket: self.socket.clone(),
            status: out.status,
            stderr: tail(&String::from_utf8_lossy(&out.stderr), 5),
        }
    }

    fn no_session(&self, session: &str) -> TmuxError {
        TmuxError::NoSession {
            session: session.to_owned(),
            socket: self.socket.clone(),
        }
    }

    /// Runs a command about `session`; a missing session or server becomes
    /// [`TmuxError::NoSession`].
    fn run_on(&self, op: &'static str, session: &str, args: &[&OsStr]) -> Result<String> {
        let out = self.output(self.command().args(args))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        // A server that exits with its last session can do so mid-answer.
        if is_missing(&out) || server_exited(&out) {
            return Err(self.no_session(session));
        }
        Err(self.failed(op, &out))
    }

    /// Checks that tmux is installed and new enough; returns its version string.
    pub(crate) fn check(&self) -> Result<String> {
        let out = self.output(Command::new("tmux").arg("-V").stdin(Stdio::null()))?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !out.status.success() {
            return Err(self.failed("-V", &out));
        }
        let version = text.strip_prefix("tmux ").unwrap_or(&text).to_owned();
        match parse_version(&version) {
            Some(v) if v < MIN_VERSION => Err(TmuxError::TooOld { found: version }),
            // Unparsable versions are development builds ("master"): assume new.
            _ => Ok(version),
        }
    }

    /// Starts a detached session `name` in `cwd` running `argv` with `env` added.
    ///
    /// Each element of `argv` reaches the program as one argument, whatever it
    /// contains. The session ends when the program exits.
    pub(crate) fn new_session(
        &self,
        name: &str,
        cwd: &Path,
        argv: &[OsString],
        env: &[(String, String)],
    ) -> Result<()> {
        self.spawn_session(name, cwd, argv, env, None)
    }

    /// Like [`Tmux::new_session`], with the pane's output appended to `log`
    /// from its first byte on.
    pub(crate) fn new_session_logged(
        &self,
        name: &str,
        cwd: &Path,
        argv: &[OsString],
        env: &[(String, String)],
        log: &Path,
    ) -> Result<()> {
        self.spawn_session(name, cwd, argv, env, Some(log))
    }

    fn spawn_session(
        &self,
        name: &str,
        cwd: &Path,
        argv: &[OsString],
        env: &[(String, String)],
        log: Option<&Path>,
    ) -> Result<()> {
        validate_name(name)?;
        if argv.is_empty() {
            return Err(TmuxError::EmptyCommand {
                session: name.to_owned(),
            });
        }
        for (key, _) in env {
            let ok = !key.is_empty()
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !key.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err(TmuxError::InvalidEnv {
                    key: key.clone(),
                    session: name.to_owned(),
                });
            }
        }
        // tmux would silently start in $HOME instead: never run an agent there.
        if !cwd.is_dir() {
            return Err(TmuxError::Path {
                path: cwd.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no such directory"),
            });
        }
        let exists = || TmuxError::SessionExists {
            session: name.to_owned(),
            socket: self.socket.clone(),
        };
        if self.has_session(name)? {
            return Err(exists());
        }
        let target = window_target(name);
        let mut cmd = self.command();
        cmd.args([
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            "200",
            "-y",
            "50",
            "-c",
        ])
        .arg(tmux_arg(&escape_format(cwd.as_os_str())));
        for (key, value) in env {
            cmd.arg("-e")
                .arg(tmux_arg(OsStr::new(&format!("{key}={value}"))));
        }
        // Three arguments, so tmux execs /bin/sh itself (see the module docs).
        cmd.arg("--")
            .arg("/bin/sh")
            .arg("-c")
            .arg(tmux_arg(&exec_script(argv)));
        // Same invocation: tmux runs these before it reads any pane output.
        cmd.args([
            ";",
            "set-option",
            "-w",
            "-t",
            &target,
            "remain-on-exit",
            "off",
        ]);
        if let Some(log) = log {
            cmd.args([";", "pipe-pane", "-o", "-t", &target])
                .arg(tmux_arg(&pipe_command(log)));
        }
        let mut out = self.output(&mut cmd)?;
        if server_exited(&out) {
            // The server was shutting down (its last session had just
            // ended) as we connected; the next command starts a new one.
            out = self.output(&mut cmd)?;
        }
        if !out.status.success() {
            // Another process created the same session since has_session.
            if String::from_utf8_lossy(&out.stderr).contains("duplicate session") {
                return Err(exists());
            }
            return Err(self.failed("new-session", &out));
        }
        Ok(())
    }

    /// Appends the session's output from now on to `log`.
    #[cfg(test)]
    pub(crate) fn pipe_pane_to(&self, session: &str, log: &Path) -> Result<()> {
        validate_name(session)?;
        let target = window_target(session);
        let cmd = pipe_command(log);
        self.run_on(
            "pipe-pane",
            session,
            &[
                OsStr::new("pipe-pane"),
                OsStr::new("-o"),
                OsStr::new("-t"),
                OsStr::new(&target),
                &tmux_arg(&cmd),
            ],
        )?;
        Ok(())
    }

    /// Whether session `name` exists (false when the server is not running).
    pub(crate) fn has_session(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        let out = self.output(
            self.command()
                .args(["has-session", "-t", &format!("={name}")]),
        )?;
        if out.status.success() {
            Ok(true)
        } else if is_missing(&out) || server_exited(&out) {
            Ok(false)
        } else {
            Err(self.failed("has-session", &out))
        }
    }

    /// The names of all sessions on this server (none when it is not running).
    pub(crate) fn list_sessions(&self) -> Result<Vec<String>> {
        Ok(self
            .sessions_with_activity()?
            .into_iter()
            .map(|(name, _)| name)
            .collect())
    }

    /// Every session with the last activity of its window (unix seconds,
    /// as [`Tmux::pane_activity`]), in one tmux call: the orchestrator asks
    /// this once per reconcile instead of once per running agent.
    pub(crate) fn sessions_with_activity(&self) -> Result<Vec<(String, Option<u64>)>> {
        let out = self.output(self.command().args([
            "list-sessions",
            "-F",
            "#{window_activity} #{session_name}",
        ]))?;
        if !out.status.success() {
            // A server whose last session just ended exits mid-answer.
            if is_missing(&out) || server_exited(&out) {
                return Ok(Vec::new());
            }
            return Err(self.failed("list-sessions", &out));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                // The time first, split at its end: the name is the rest.
                let (time, name) = l.split_once(' ')?;
                (!name.is_empty()).then(|| (name.to_owned(), time.parse().ok()))
            })
            .collect())
    }

    /// Kills session `name`; returns whether it existed.
    pub(crate) fn kill_session(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        // Asked first: a server that exits as we ask answers the same way
        // whether we killed its last session or it was already going.
        if !self.has_session(name)? {
            return Ok(false);
        }
        let out = self.output(
            self.command()
                .args(["kill-session", "-t", &format!("={name}")]),
        )?;
        if out.status.success() || server_exited(&out) {
            // Killing the last session ends the server before it can answer.
            Ok(true)
        } else if is_missing(&out) {
            Ok(false)
        } else {
            Err(self.failed("kill-session", &out))
        }
    }

    /// Kills the whole server and every session on it (fine if none runs).
    pub fn kill_server(&self) -> Result<()> {
        let out = self.output(self.command().arg("kill-server"))?;
        if out.status.success() || is_missing(&out) || server_exited(&out) {
            Ok(())
        } else {
            Err(self.failed("kill-server", &out))
        }
    }

    /// Removes the server's socket file, which tmux leaves behind when its
    /// server exits; for throwaway servers (the demo, tests), after
    /// [`Tmux::kill_server`].
    pub fn remove_socket_file(&self) {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata("/proc/self") else {
            return;
        };
        let dir = std::env::var_os("TMUX_TMPDIR").unwrap_or_else(|| "/tmp".into());
        let path = Path::new(&dir)
            .join(format!("tmux-{}", meta.uid()))
            .join(&self.socket);
        let _ = std::fs::remove_file(path);
    }

    /// Types `text` literally into the session's pane, then presses Enter.
    pub(crate) fn send_text(&self, session: &str, text: &str) -> Result<()> {
        validate_name(session)?;
        let target = window_target(session);
        if !text.is_empty() {
            self.run_on(
                "send-keys",
                session,
                &[
                    OsStr::new("send-keys"),
                    OsStr::new("-t"),
                    OsStr::new(&target),
                    OsStr::new("-l"),
                    OsStr::new("--"),
                    &tmux_arg(OsStr::new(text)),
                ],
            )?;
        }
        self.run_on(
            "send-keys",
            session,
            &[
                OsStr::new("send-keys"),
                OsStr::new("-t"),
                OsStr::new(&target),
                OsStr::new("Enter"),
            ],
        )?;
        Ok(())
    }

    fn display(&self, op: &'static str, session: &str, format: &str) -> Result<String> {
        validate_name(session)?;
        let target = window_target(session);
        let out = self.run_on(
            op,
            session,
            &[
                OsStr::new("display-message"),
                OsStr::new("-p"),
                OsStr::new("-t"),
                OsStr::new(&target),
                OsStr::new(format),
            ],
        )?;
        // A server that is exiting with its last session answers with
        // nothing and status 0: the session is gone.
        let out = out.trim();
        if out.is_empty() {
            return Err(self.no_session(session));
        }
        Ok(out.to_owned())
    }

    /// The pid of the process running in the session's pane.
    pub(crate) fn pane_pid(&self, session: &str) -> Result<u32> {
        let out = self.display("pane_pid", session, "#{pane_pid}")?;
        out.parse().map_err(|_| TmuxError::BadOutput {
            op: "pane_pid",
            output: out,
        })
    }

    /// When the session's pane last printed output, in unix seconds.
    pub(crate) fn pane_activity(&self, session: &str) -> Result<u64> {
        let out = self.display("window_activity", session, "#{window_activity}")?;
        out.parse().map_err(|_| TmuxError::BadOutput {
            op: "window_activity",
            output: out,
        })
    }

    /// The pane's visible screen plus up to `history` lines of scrollback.
    #[cfg(test)]
    pub(crate) fn capture_pane(&self, session: &str, history: u32) -> Result<String> {
        validate_name(session)?;
        let target = window_target(session);
        let start = format!("-{history}");
        self.run_on(
            "capture-pane",
            session,
            &[
                OsStr::new("capture-pane"),
                OsStr::new("-p"),
                OsStr::new("-J"),
                OsStr::new("-t"),
                OsStr::new(&target),
                OsStr::new("-S"),
                OsStr::new(&start),
            ],
        )
    }

    /// The command that attaches a terminal to `session`.
    ///
    /// `TMUX` is removed so attaching works from inside another tmux.
    pub(crate) fn attach_command(&self, session: &str) -> Command {
        let mut cmd = self.command();
        cmd.stdin(Stdio::inherit());
        cmd.env_remove("TMUX");
        cmd.args(["attach-session", "-t", &format!("={session}")]);
        cmd
    }

    /// Replaces this process with `tmux attach` to `session`, for a person.
    ///
    /// Returns only on failure.
    pub(crate) fn attach(&self, session: &str) -> Result<Infallible> {
        validate_name(session)?;
        if !self.has_session(session)? {
            return Err(self.no_session(session));
        }
        let source = self.attach_command(session).exec();
        Err(TmuxError::Attach {
            session: session.to_owned(),
            source,
        })
    }
}

/// `git-sprint-<12 hex digits>`: a short, stable FNV-1a hash of `path`.
pub(crate) fn socket_name(path: &Path) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in path.as_os_str().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("git-sprint-{:012x}", hash >> 16)
}

/// Quotes `arg` for POSIX sh: `'…'`, with each `'` written as `'\''`.
pub(crate) fn sh_quote(arg: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(arg.len() + 2);
    out.push(b'\'');
    for &b in arg.as_bytes() {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    OsString::from_vec(out)
}

/// `exec 'arg0' 'arg1' …` for `sh -c`.
fn exec_script(argv: &[OsString]) -> OsString {
    let mut script = OsString::from("exec");
    for arg in argv {
        script.push(" ");
        script.push(sh_quote(arg));
    }
    script
}

/// The `pipe-pane` shell command appending to `log` (run by tmux with /bin/sh,
/// after format expansion, hence the `#` escaping).
fn pipe_command(log: &Path) -> OsString {
    let mut cmd = OsString::from("exec cat >> ");
    cmd.push(sh_quote(log.as_os_str()));
    escape_format(&cmd)
}

/// tmux reads an argument ending in `;` as a command separator; `\;` keeps it.
fn tmux_arg(arg: &OsStr) -> OsString {
    let bytes = arg.as_bytes();
    if bytes.last() == Some(&b';') {
        let mut out = bytes[..bytes.len() - 1].to_vec();
        out.extend_from_slice(b"\\;");
        OsString::from_vec(out)
    } else {
        arg.to_owned()
    }
}

/// Escapes `#` as `##` for arguments tmux format-expands.
fn escape_format(arg: &OsStr) -> OsString {
    let mut out = Vec::with_capacity(arg.len());
    for &b in arg.as_bytes() {
        if b == b'#' {
            out.push(b'#');
        }
        out.push(b);
    }
    OsString::from_vec(out)
}

/// `=name:` — exactly session `name` (no prefix matching), its current window.
fn window_target(session: &str) -> String {
    format!("={session}:")
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'@' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(TmuxError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Whether tmux failed because the server or the session does not exist.
fn is_missing(out: &Output) -> bool {
    let stderr = String::from_utf8_lossy(&out.stderr);
    [
        "no server running",
        "error connecting to",
        "can't find session",
        "can't find window",
        "can't find pane",
        "session not found",
        "no current target",
        "no sessions",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// Whether the server went away while answering (it exits with its last session).
fn server_exited(out: &Output) -> bool {
    String::from_utf8_lossy(&out.stderr).contains("server exited unexpectedly")
}

/// `3.3a` → (3, 3); `next-3.4` → (3, 4); `master` → None.
fn parse_version(version: &str) -> Option<(u32, u32)> {
    let v = version.strip_prefix("next-").unwrap_or(version);
    let (major, rest) = v.split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testutil::{wait_for, TmuxGuard};
    use std::fs;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("3.3a"), Some((3, 3)));
        assert_eq!(parse_version("next-3.4"), Some((3, 4)));
        assert_eq!(parse_version("3.2"), Some((3, 2)));
        assert_eq!(parse_version("master"), None);
        assert!(parse_version("2.9a").unwrap() < MIN_VERSION);
    }

    #[test]
    fn socket_name_is_short_and_stable() {
        let a = socket_name(Path::new("/repo/.git"));
        assert_eq!(a, socket_name(Path::new("/repo/.git")));
        assert_ne!(a, socket_name(Path::new("/other/.git")));
        assert!(a.starts_with("git-sprint-") && a.len() == "git-sprint-".len() + 12);
        let dir = tempfile::tempdir().unwrap();
        let via_dot = dir.path().join(".");
        assert_eq!(
            Tmux::for_repo(dir.path()).unwrap(),
            Tmux::for_repo(&via_dot).unwrap()
        );
    }

    #[test]
    fn quoting_and_escaping() {
        assert_eq!(sh_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(sh_quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(tmux_arg(OsStr::new("x;")), "x\\;");
        assert_eq!(tmux_arg(OsStr::new("x")), "x");
        assert_eq!(escape_format(OsStr::new("a#{b}")), "a##{b}");
        assert!(validate_name("dev-1").is_ok());
        for bad in ["", "a:b", "a.b", "-x", "a b", "a#b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn check_finds_tmux() {
        let version = Tmux::new("unused").check().unwrap();
        assert!(!version.is_empty());
    }

    /// The argv, env and cwd reach the program intact, and the log gets the output.
    #[test]
    fn session_lifecycle_with_awkward_argv() {
        let guard = TmuxGuard::new();
        let tmux = &guard.tmux;
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("work dir #1;");
        fs::create_dir_all(&cwd).unwrap();
        let log = dir.path().join("logs #x/out 'q'.log");
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        let out = dir.path().join("args.txt");

        let awkward = [
            "two words",
            "it's \"quoted\"",
            "$HOME and `id` and $(id)",
            "ends with;",
            "#{session_name}",
            "",
            "new\nline",
        ];
        let script = format!(
            "for a in \"$@\"; do printf '<%s>\\n' \"$a\"; done > '{}'; \
             printf 'cwd=%s\\n' \"$PWD\" >> '{}'; \
             printf 'env=%s\\n' \"$SPRINT_TASK\" >> '{}'; \
             echo hello-from-pane; sleep 30",
            out.display(),
            out.display(),
            out.display()
        );
        let mut argv: Vec<OsString> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
        argv.extend(awkward.iter().map(OsString::from));
        let env = vec![("SPRINT_TASK".to_owned(), "T001 with space;".to_owned())];

        assert!(!tmux.has_session("w1").unwrap());
        assert_eq!(tmux.list_sessions().unwrap(), Vec::<String>::new());
        tmux.new_session_logged("w1", &cwd, &argv, &env, &log)
            .unwrap();
        assert!(tmux.has_session("w1").unwrap());
        assert!(!tmux.has_session("w").unwrap(), "no prefix matching");
        assert_eq!(tmux.list_sessions().unwrap(), vec!["w1".to_owned()]);

        wait_for("the pane's command to write its argv", 10, || {
            fs::read_to_string(&out)
                .map(|s| s.contains("env="))
                .unwrap_or(false)
        });
        let expected: String = awkward.iter().map(|a| format!("<{a}>\n")).collect();
        let got = fs::read_to_string(&out).unwrap();
        assert_eq!(
            got,
            format!("{expected}cwd={}\nenv=T001 with space;\n", cwd.display())
        );
        wait_for("the pane's output in its log", 10, || {
            fs::read_to_string(&log)
                .map(|s| s.contains("hello-from-pane"))
                .unwrap_or(false)
        });

        let pid = tmux.pane_pid("w1").unwrap();
        assert!(crate::worker::procstat::is_alive(pid));
        let activity = tmux.pane_activity("w1").unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            activity <= now && now - activity < 60,
            "{activity} vs {now}"
        );

        let err = tmux.new_session("w1", &cwd, &argv, &[]).unwrap_err();
        assert!(matches!(err, TmuxError::SessionExists { .. }), "{err}");

        assert!(tmux.kill_session("w1").unwrap());
        assert!(!tmux.kill_session("w1").unwrap());
        assert!(!tmux.has_session("w1").unwrap());
        let gone = tmux.pane_pid("w1").unwrap_err();
        assert!(matches!(gone, TmuxError::NoSession { .. }), "{gone:?}");
    }

    #[test]
    fn session_closes_when_command_exits() {
        let guard = TmuxGuard::new();
        let tmux = &guard.tmux;
        let dir = tempfile::tempdir().unwrap();
        tmux.new_session("short", dir.path(), &["sleep".into(), "0.2".into()], &[])
            .unwrap();
        tmux.new_session("long", dir.path(), &["sleep".into(), "30".into()], &[])
            .unwrap();
        wait_for("session `short` to close", 10, || {
            !tmux.has_session("short").unwrap()
        });
        assert_eq!(tmux.list_sessions().unwrap(), vec!["long".to_owned()]);
    }

    #[test]
    fn regression_a_server_shutting_down_as_we_ask_was_an_error() {
        // f7a9b42: the server exits with its last session; a command that
        // reached it while it was going got "server exited unexpectedly",
        // which read as a failure instead of "no session". Sessions that
        // end at once, asked about and replaced at once, hit that window.
        let guard = TmuxGuard::new();
        let tmux = &guard.tmux;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..20 {
            let name = format!("blink{i}");
            tmux.new_session(&name, dir.path(), &["true".into()], &[])
                .unwrap_or_else(|e| panic!("round {i}: new-session: {e}"));
            tmux.has_session(&name)
                .unwrap_or_else(|e| panic!("round {i}: has-session: {e}"));
        }
        wait_for("every session to close", 10, || {
            tmux.list_sessions().map(|l| l.is_empty()).unwrap_or(false)
        });
    }

    #[test]
    fn sessions_with_activity_match_each_pane_activity_in_one_call() {
        let guard = TmuxGuard::new();
        let tmux = &guard.tmux;
        let dir = tempfile::tempdir().unwrap();
        for name in ["w1", "w2"] {
            tmux.new_session(name, dir.path(), &["sleep".into(), "30".into()], &[])
                .unwrap();
        }
        let mut got = tmux.sessions_with_activity().unwrap();
        got.sort();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["w1", "w2"]);
        for (name, activity) in &got {
            // Idle panes: the one-call figure is the per-session one.
            assert_eq!(*activity, Some(tmux.pane_activity(name).unwrap()), "{name}");
        }
        tmux.kill_server().unwrap();
        assert!(tmux.sessions_with_activity().unwrap().is_empty());
    }

    #[test]
    fn send_text_reaches_the_pane() {
        let guard = TmuxGuard::new();
        let tmux = &guard.tmux;
        let dir = tempfile::tempdir().unwrap();
        let got = dir.path().join("got.txt");
        let log = dir.path().join("pane.log");
        // A line reader standing in for an interactive agent.
        let script = format!(
            "while IFS= read -r line; do printf '%s\\n' \"$line\" >> '{}'; done",
            got.display()
        );
        tmux.new_session(
            "reader",
            dir.path(),
            &["sh".into(), "-c".into(), script.into()],
            &[],
        )
        .unwrap();
        tmux.pipe_pane_to("reader", &log).unwrap();
        let text = "run the tests; then $STOP 'now' -x;";
        tmux.send_text("reader", text).unwrap();
        wait_for("the sent text to reach the pane's command", 10, || {
            fs::read_to_string(&got)
                .map(|s| s == format!("{text}\n"))
                .unwrap_or(false)
        });
        // The pane echoes typed input; the log sees it.
        wait_for("the typed input in the pane's log", 10, || {
            fs::read_to_string(&log)
                .map(|s| s.contains("run the tests"))
                .unwrap_or(false)
        });
        assert!(tmux
            .capture_pane("reader", 100)
            .unwrap()
            .contains("run the tests"));
    }

    #[test]
    fn invalid_input_is_an_error_not_a_panic() {
        let guard = TmuxGuard::new();
        let tmux = &guard.tmux;
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            tmux.new_session("a.b", dir.path(), &["true".into()], &[]),
            Err(TmuxError::InvalidName { .. })
        ));
        assert!(matches!(
            tmux.new_session("ok", dir.path(), &[], &[]),
            Err(TmuxError::EmptyCommand { .. })
        ));
        assert!(matches!(
            tmux.new_session(
                "ok",
                dir.path(),
                &["true".into()],
                &[("A=B".into(), "x".into())]
            ),
            Err(TmuxError::InvalidEnv { .. })
        ));
        assert!(matches!(
            tmux.new_session("ok", &dir.path().join("gone"), &["true".into()], &[]),
            Err(TmuxError::Path { .. })
        ));
        assert!(matches!(
            tmux.send_text("nope", "x"),
            Err(TmuxError::NoSession { .. })
        ));
        tmux.kill_server().unwrap();
    }
}
