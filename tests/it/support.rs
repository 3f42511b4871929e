//! A real git repository in a temp dir, with git and git-sprint run in an
//! environment that reads no global or system configuration.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_git-sprint");

pub struct Repo {
    // Kept for their Drop: the directories go when the test ends.
    _home: tempfile::TempDir,
    dir: tempfile::TempDir,
}

/// Applies the fixed environment of every test process.
pub fn isolate<'c>(cmd: &'c mut Command, home: &Path) -> &'c mut Command {
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_SPRINT_NOW",
        "GIT_SPRINT_HOOKS",
        "TMUX",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("USER", "tester")
}

impl Repo {
    /// A fresh repository on branch `main` with no commits.
    pub fn new() -> Repo {
        let home = tempfile::tempdir().expect("temp home");
        let dir = tempfile::tempdir().expect("temp repo");
        let repo = Repo { _home: home, dir };
        repo.git(["init", "-q", "-b", "main"]);
        repo.git(["config", "user.name", "Tester"]);
        repo.git(["config", "user.email", "tester@example.com"]);
        repo
    }

    /// A fresh repository with one commit on `main`.
    pub fn with_commit() -> Repo {
        let repo = Repo::new();
        repo.write("README.md", "hello\n");
        repo.git(["add", "README.md"]);
        repo.git(["commit", "-q", "-m", "initial"]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> &Path {
        self._home.path()
    }

    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        isolate(&mut cmd, self.home()).current_dir(self.path());
        cmd
    }

    /// Runs git and returns its stdout; panics with its stderr on failure.
    pub fn git<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.command("git").args(args).output().expect("run git");
        assert!(
            out.status.success(),
            "git failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds a worktree at `path`, detached at `rev`.
    pub fn add_detached_worktree(&self, path: &Path, rev: &str) {
        self.git([
            OsStr::new("worktree"),
            OsStr::new("add"),
            OsStr::new("-q"),
            OsStr::new("--detach"),
            path.as_os_str(),
            OsStr::new(rev),
        ]);
    }

    /// Runs git-sprint and returns the whole output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(BIN)
            .args(args)
            .output()
            .expect("run git-sprint")
    }

    /// Runs git-sprint, asserts success, returns stdout.
    pub fn sprint<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "git-sprint failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the tmux server on `socket` and removes its socket file, which
/// tmux leaves behind: tests must not litter /tmp with one per run.
pub fn kill_tmux(socket: &str) {
    let tmux = git_sprint::worker::tmux::Tmux::new(socket);
    let _ = tmux.kill_server();
    tmux.remove_socket_file();
}

/// Writes the go file at its path when dropped, so what waits for it goes
/// on even when an assertion fails first.
pub struct GoOnDrop(pub PathBuf);

impl Drop for GoOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

/// Waits up to `secs` for `path` to exist; fails the test naming `what`
/// if it does not.
pub fn wait_for_file(path: &Path, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Checks that a claim of "nothing more happens" holds for `span`. Such a
/// claim can only be tested by waiting; this fails at the first moment it
/// breaks, naming what was expected to hold.
pub fn holds_for(what: &str, span: std::time::Duration, check: impl Fn() -> Result<(), String>) {
    let end = std::time::Instant::now() + span;
    loop {
        if let Err(e) = check() {
            panic!("expected {what} to hold for {span:?}, but: {e}");
        }
        if std::time::Instant::now() >= end {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs `cmd` to its end, killing it and failing the test if it is still
/// running after `limit`: a bounded wait for a process that must not hang,
/// rather than an assertion on how fast it was.
pub fn output_within(cmd: &mut Command, what: &str, limit: std::time::Duration) -> Output {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Readers on threads: a full pipe must not stall the child.
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut err, &mut v);
        v
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}; killed it");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A `tmux` in front of the real one, in `<home>/shim`: when called with
/// `subcommand` it first runs the shell `snippet` (which may `exit` to fail
/// the call), then hands every call to the real tmux. Returns a `PATH` with
/// the shim first, for the product's processes to find it.
pub fn tmux_shim(home: &Path, subcommand: &str, snippet: &str) -> String {
    let real = Command::new("sh")
        .args(["-c", "command -v tmux"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_owned();
    let shim = home.join("shim");
    std::fs::create_dir_all(&shim).unwrap();
    let script = shim.join("tmux");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do\n  if [ \"$a\" = {subcommand} ]; then\n{snippet}\n  fi\ndone\nexec '{real}' \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("{}:{}", shim.display(), std::env::var("PATH").unwrap())
}
