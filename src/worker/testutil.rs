//! Test fixtures for the worker modules: a real repository in a temp dir with
//! a pinned git environment (no system or global config, a temp `HOME`, fixed
//! author and dates), and a private tmux server that is killed on drop, even
//! when the test panics.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

use super::tmux::Tmux;
use super::worktree::{Git, Identity};

/// The pinned git environment, applied to our handle and to child processes.
pub(crate) fn git_env(home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
        ("HOME", home.display().to_string()),
        (
            "XDG_CONFIG_HOME",
            home.join(".config").display().to_string(),
        ),
        ("LC_ALL", "C".into()),
        ("GIT_AUTHOR_NAME", "Test Author".into()),
        ("GIT_AUTHOR_EMAIL", "author@example.invalid".into()),
        ("GIT_COMMITTER_NAME", "Test Author".into()),
        ("GIT_COMMITTER_EMAIL", "author@example.invalid".into()),
        ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z".into()),
        ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z".into()),
    ]
}

/// A repository with one commit on `main`, inside a temp dir that also holds
/// `home/` and room for worktrees.
pub(crate) struct TestRepo {
    pub(crate) tmp: TempDir,
    pub(crate) home: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) git: Git,
}

impl TestRepo {
    pub(crate) fn new() -> TestRepo {
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = tmp.path().join("home");
        let work = tmp.path().join("repo");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let mut git = Git::new(&work);
        for (k, v) in git_env(&home) {
            git = git.with_env(k, v);
        }
        let init = git
            .command(["init", "--quiet", "--initial-branch=main"])
            .status()
            .unwrap();
        assert!(init.success());
        std::fs::write(work.join("README.md"), "hello\n").unwrap();
        for args in [
            &["add", "README.md"][..],
            &["commit", "--quiet", "-m", "init"],
        ] {
            assert!(git.command(args).status().unwrap().success());
        }
        TestRepo {
            tmp,
            home,
            work,
            git,
        }
    }

    /// A path inside the temp dir (outside the repository's worktree).
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub(crate) fn identity(&self) -> Identity {
        Identity {
            name: "Test Author".into(),
            email: "author@example.invalid".into(),
        }
    }

    /// A command with the pinned environment, in `dir`.
    pub(crate) fn command(&self, program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir);
        for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
            cmd.env_remove(var);
        }
        cmd.envs(git_env(&self.home));
        cmd
    }
}

/// A tmux server on a socket no other test uses, killed when dropped.
pub(crate) struct TmuxGuard {
    pub(crate) tmux: Tmux,
}

impl TmuxGuard {
    pub(crate) fn new() -> TmuxGuard {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let socket = format!("gst-{}-{n}", std::process::id());
        TmuxGuard {
            // /dev/null: the developer's ~/.tmux.conf must not change the tests.
            tmux: Tmux::new(socket).with_config_file("/dev/null"),
        }
    }
}

impl Drop for TmuxGuard {
    fn drop(&mut self) {
        let _ = self.tmux.kill_server();
        // tmux leaves the socket file behind; don't litter /tmp with one per test.
        self.tmux.remove_socket_file();
    }
}

/// Polls `f` every 20 ms until it holds; fails the test, naming `what` it
/// waited for, after `secs` seconds.
pub(crate) fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(f(), "waited {secs}s for {what}");
}
