//! The fleet commands against real git and tmux: each test has its own
//! repository and its own tmux server (GIT_SPRINT_TMUX_SOCKET), killed on drop
//! even when the test fails. The scripted agent stands in for an AI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::support::{stderr, stdout, Repo};

pub(crate) fn agent() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/agents/scripted-agent")
        .display()
        .to_string()
}

/// A repository plus a private tmux server that dies with it.
pub(crate) struct Fleet {
    pub(crate) repo: Repo,
    pub(crate) socket: String,
}

impl Fleet {
    pub(crate) fn new() -> Fleet {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "gsf-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Fleet {
            repo: Repo::with_commit(),
            socket,
        }
    }

    pub(crate) fn cmd(&self, program: &str) -> Command {
        let mut c = self.repo.command(program);
        c.env("GIT_SPRINT_TMUX_SOCKET", &self.socket);
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd(super::support::BIN)
            .args(args)
            .output()
            .expect("run git-sprint")
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "git-sprint {args:?} failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    pub(crate) fn list(&self) -> Vec<Value> {
        let v: Value = serde_json::from_str(&self.ok(&["list", "--all", "--json"])).expect("json");
        v.as_array().cloned().unwrap_or_default()
    }

    /// Polls `list --json` until `f` holds, for at most 20 s.
    pub(crate) fn wait_list(&self, what: &str, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let rows = self.list();
            if f(&rows) {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {rows:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn tmux(&self, args: &[&str]) -> String {
        stdout(&self.tmux_on(&self.socket, args))
    }

    /// tmux on server `socket` (this fleet's, or another a test starts),
    /// with the test's environment.
    pub(crate) fn tmux_on(&self, socket: &str, args: &[&str]) -> std::process::Output {
        self.cmd("tmux")
            .arg("-L")
            .arg(socket)
            .args(args)
            .output()
            .expect("tmux")
    }

    pub(crate) fn sessions(&self) -> Vec<String> {
        self.tmux(&["list-sessions", "-F", "#{session_name}"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Worktrees in use: the main one and workers', not the pool's spares.
    pub(crate) fn worktrees(&self) -> usize {
        self.repo
            .git(["worktree", "list", "--porcelain"])
            .lines()
            .filter(|l| l.starts_with("worktree ") && !l.contains("/.git/sprint/pool/"))
            .count()
    }

    /// The spare worktrees in the pool.
    pub(crate) fn pooled(&self) -> Vec<PathBuf> {
        let dir = self.repo.path().join(".git/sprint/pool");
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    pub(crate) fn state_commits(&self) -> usize {
        self.repo
            .git(["rev-list", "--count", "refs/ai-sprint"])
            .trim()
            .parse()
            .unwrap()
    }

    pub(crate) fn worktree_dir(&self, id: &str) -> PathBuf {
        self.repo.path().join(".git/sprint/worktrees").join(id)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        super::support::kill_tmux(&self.socket);
    }
}

fn status_of(rows: &[Value], id: &str) -> String {
    rows.iter()
        .find(|r| r["id"] == id)
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[test]
fn spawned_agent_commits_and_list_shows_it_exited_with_one_commit_ahead() {
    let f = Fleet::new();
    let out = f.ok(&[
        "spawn",
        "w1",
        "--prompt",
        "add a file",
        "--agent-command",
        &agent(),
    ]);
    assert!(out.contains("Started w1"), "{out}");
    let rows = f.wait_list("w1 to exit", |r| status_of(r, "w1") == "exited 0");
    let w1 = &rows[0];
    assert_eq!(w1["ahead"], 1);
    assert_eq!(w1["files_changed"], 1);
    assert_eq!(w1["branch"], "w1");
    let table = f.ok(&["list", "--all"]);
    assert!(
        table.contains("w1") && table.contains("exited 0"),
        "{table}"
    );
    let log = f.ok(&["logs", "w1"]);
    assert!(log.contains("scripted-agent: committed"), "{log}");
    // The wrapper recorded the run under the worker's name.
    let authors = f.repo.git(["log", "--format=%an %s", "refs/ai-sprint"]);
    assert!(authors.contains("w1 w1: running -> exited 0"), "{authors}");
    assert!(authors.contains("fleet: spawn w1"), "{authors}");
}

#[test]
fn fanout_five_makes_five_worktrees_sessions_and_records_and_kill_all_removes_them() {
    let f = Fleet::new();
    let cmd = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    let out = f.ok(&[
        "fanout",
        "5",
        "probe",
        "--prompt",
        "try it",
        "--agent-command",
        &cmd,
    ]);
    assert!(out.contains("Batch probe: 5 workers"), "{out}");
    assert_eq!(f.worktrees(), 6);
    let rows = f.wait_list("5 running", |r| {
        r.len() == 5 && r.iter().all(|w| w["status"] == "running")
    });
    assert!(rows.iter().all(|r| r["batch"] == "probe"));
    let mut sessions = f.sessions();
    sessions.sort();
    assert_eq!(
        sessions,
        ["probe-1", "probe-2", "probe-3", "probe-4", "probe-5"]
    );
    assert!(
        rows.iter()
            .all(|r| r["rss_bytes"].as_u64().unwrap_or(0) > 0),
        "{rows:#?}"
    );

    let out = f.ok(&["kill", "--all", "--force"]);
    assert_eq!(out.matches("Stopped").count(), 5, "{out}");
    assert_eq!(f.worktrees(), 1);
    assert!(f.sessions().is_empty());
    assert!(f.list().is_empty());
    let branches = f.repo.git(["branch", "--list", "probe-*"]);
    assert!(branches.trim().is_empty(), "{branches}");
    assert!(!f.worktree_dir("probe-1").exists());
}

#[test]
fn crashed_agent_leaves_its_uncommitted_work_as_a_wip_commit() {
    let f = Fleet::new();
    let cmd = format!("SCRIPTED_AGENT_MODE=crash {}", agent());
    f.ok(&[
        "spawn",
        "boom",
        "--prompt",
        "crash",
        "--agent-command",
        &cmd,
    ]);
    let rows = f.wait_list("boom to end", |r| {
        status_of(r, "boom").starts_with("exited")
    });
    assert!(rows[0]["wip_commit"].is_string(), "{rows:#?}");
    let subject = f.repo.git(["log", "-1", "--format=%s %an", "boom"]);
    assert!(
        subject.starts_with("WIP: boom") && subject.contains("boom"),
        "{subject}"
    );
    let files = f.repo.git(["show", "--name-only", "--format=", "boom"]);
    assert!(files.contains("sprint-output/boom.txt"), "{files}");
    // kill keeps a branch that holds work.
    let out = f.ok(&["kill", "boom"]);
    assert!(
        out.contains("branch boom kept (1 commit not in main"),
        "{out}"
    );
    assert!(f.repo.git(["branch", "--list", "boom"]).contains("boom"));
}

#[test]
fn killed_tmux_server_is_reported_dead_and_recorded_once() {
    let f = Fleet::new();
    let cmd = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    f.ok(&[
        "fanout",
        "2",
        "z",
        "--prompt",
        "hang",
        "--agent-command",
        &cmd,
    ]);
    let rows = f.wait_list("running", |r| r.iter().all(|w| w["status"] == "running"));
    // A crash of everything: the wrappers die without recording anything.
    for r in &rows {
        let pid = r["runner_pid"].as_u64().unwrap();
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    // Both are gone before anything looks, or a busy machine shows one
    // death before the other and they are (rightly) recorded apart.
    for r in &rows {
        let pid = r["runner_pid"].as_u64().unwrap() as u32;
        assert!(
            git_sprint::fleet::wait_for_exit(pid, Duration::from_secs(10)),
            "wrapper {pid} survived kill -9"
        );
    }
    f.tmux(&["kill-server"]);
    let rows = f.wait_list("dead", |r| r.iter().all(|w| w["status"] == "dead"));
    assert_eq!(rows.len(), 2);
    let before = f.state_commits();
    f.ok(&["list"]);
    assert_eq!(f.state_commits(), before, "dead is recorded once");
    let subjects = f.repo.git(["log", "--format=%s", "refs/ai-sprint"]);
    assert_eq!(
        subjects.matches("dead (tmux session gone)").count(),
        1,
        "{subjects}"
    );
}

#[test]
fn failing_setup_rolls_back_everything() {
    let f = Fleet::new();
    f.repo.write(
        ".git-sprint.yaml",
        "setup:\n  commands: [\"echo setting up; exit 3\"]\n",
    );
    f.repo.git(["add", ".git-sprint.yaml"]);
    f.repo.git(["commit", "-q", "-m", "a failing setup"]);
    let out = f.run(&["spawn", "bad", "--prompt", "x", "--agent-command", &agent()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("nothing was left behind") && err.contains("exit 3"),
        "{err}"
    );
    assert_eq!(f.worktrees(), 1);
    assert!(f.repo.git(["branch", "--list", "bad"]).trim().is_empty());
    assert!(f.sessions().is_empty());
    assert!(f.list().is_empty());
    assert!(!f.worktree_dir("bad").exists());
}

#[test]
fn bad_revision_creates_nothing() {
    let f = Fleet::new();
    let out = f.run(&[
        "spawn",
        "w",
        "--prompt",
        "x",
        "--from",
        "nope",
        "--agent-command",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`nope` is not a commit"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.worktrees(), 1);
    assert!(f.list().is_empty());
}

#[test]
fn prompt_reaches_the_pane_and_logs_show_it() {
    let f = Fleet::new();
    f.ok(&[
        "spawn",
        "talk",
        "--prompt",
        "listen",
        "--agent-command",
        "read line; echo \"heard: $line\"",
    ]);
    f.wait_list("running", |r| status_of(r, "talk") == "running");
    f.ok(&["prompt", "talk", "hello there"]);
    f.wait_list("exit", |r| status_of(r, "talk") == "exited 0");
    let log = f.ok(&["logs", "talk", "-n", "5"]);
    assert!(log.contains("heard: hello there"), "{log}");
    let rec = f.list();
    assert_eq!(rec[0]["followups"][0], "hello there");
}

#[test]
fn multi_starts_one_batch_and_unknown_workers_are_usage_errors() {
    let f = Fleet::new();
    let out = f.ok(&[
        "multi",
        "a:first thing",
        "b:second thing",
        "--batch",
        "pair",
        "--agent-command",
        &agent(),
    ]);
    assert!(out.contains("Batch pair: 2 workers"), "{out}");
    let rows = f.wait_list("both exit", |r| {
        r.len() == 2 && r.iter().all(|w| w["status"] == "exited 0")
    });
    assert!(rows.iter().all(|r| r["batch"] == "pair"));
    let out = f.run(&["logs", "nobody"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("known workers: a, b"),
        "{}",
        stderr(&out)
    );
    let again = f.run(&["spawn", "a", "--prompt", "x", "--agent-command", "true"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    f.ok(&["kill", "--batch", "pair", "--force"]);
    assert!(f.list().is_empty());
}

#[test]
fn logs_follow_prints_output_until_the_worker_ends() {
    let f = Fleet::new();
    let cmd = format!("SCRIPTED_AGENT_SLEEP=1 {}", agent());
    f.ok(&[
        "spawn",
        "slow",
        "--prompt",
        "wait a bit",
        "--agent-command",
        &cmd,
    ]);
    // `logs -f` must end by itself when the worker does.
    let out = super::support::output_within(
        f.cmd(super::support::BIN).args(["logs", "slow", "-f"]),
        "logs -f after the worker ended",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stdout(&out);
    assert!(out.contains("scripted-agent: committed"), "{out}");
    assert!(out.contains("git-sprint: slow: agent exited 0"), "{out}");
}
