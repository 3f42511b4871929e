//! What the benchmarks share: a throw-away repository with its own HOME and
//! tmux socket, git and git-sprint run in it with a fixed identity and no
//! global configuration, and an orchestrator started on a config of
//! scripted agents. Each benchmark measures on top of it.
//!
//! Each benchmark is a crate of its own and uses only part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use git_sprint::state::{Snapshot, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_git-sprint");

/// The scripted stand-in for an AI agent (fixtures/agents/scripted-agent).
pub fn scripted_agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/agents/scripted-agent")
}

pub struct Env {
    _tmp: tempfile::TempDir,
    pub repo: PathBuf,
    pub home: PathBuf,
    pub socket: String,
}

impl Env {
    /// A new repository on `main` with no commit yet; `tag` names its tmux
    /// socket (with this process's id, so runs do not meet).
    pub fn empty(tag: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let env = Env {
            _tmp: tmp,
            repo,
            home,
            socket: format!("gs-{tag}-{}", std::process::id()),
        };
        env.run("git", &["init", "-q", "-b", "main"]);
        env
    }

    /// A repository whose first commit holds `config` as .git-sprint.yaml,
    /// with the orchestrator started.
    pub fn started(tag: &str, config: &str) -> Env {
        let env = Env::empty(tag);
        std::fs::write(env.repo.join(".git-sprint.yaml"), config).unwrap();
        env.run("git", &["add", "-A"]);
        env.run("git", &["commit", "-q", "-m", "init"]);
        env.run(BIN, &["start"]);
        env
    }

    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.repo)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
            .env("GIT_SPRINT_TMUX_SOCKET", &self.socket)
            .env_remove("TMUX")
            .env_remove("GIT_DIR");
        c
    }

    /// Runs `program`, asserting success; its stdout.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.cmd(program).args(args).output().expect("run");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn snapshot(&self) -> Snapshot {
        Store::discover(&self.repo)
            .unwrap()
            .read(Snapshot::read)
            .unwrap()
    }

    /// The running orchestrator's pid, from its lock file.
    pub fn orchestrator_pid(&self) -> u32 {
        std::fs::read_to_string(self.repo.join(".git/sprint/orchestrator.lock"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.cmd(BIN).args(["stop", "--all"]).output();
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// The median of `v` (the upper one of an even count); `None` when empty.
pub fn median<T: PartialOrd + Copy>(mut v: Vec<T>) -> Option<T> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v.get(v.len() / 2).copied()
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
