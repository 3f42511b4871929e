//! Tests of the scripted agent in `fixtures/agents/`, run directly in real
//! worktrees, and one run through the whole chain: profile → tmux session →
//! agent → commit on the task branch, with the pane's output in a log.

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use super::profile::{AgentProfile, RenderInput};
use super::testutil::{wait_for, TestRepo, TmuxGuard};

fn agent() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/agents/scripted-agent")
}

/// A repository with a worktree for `task` on branch `sprint/f/<task>`.
fn setup(task: &str) -> (TestRepo, PathBuf) {
    let repo = TestRepo::new();
    let wt = repo.path(&format!("wt/{task}"));
    repo.git
        .add_worktree(&wt, &format!("sprint/f/{task}"), "main")
        .unwrap();
    (repo, wt)
}

fn run(repo: &TestRepo, wt: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let out = repo
        .command(agent(), wt)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn head_subject(repo: &TestRepo, wt: &Path) -> String {
    let out = repo
        .git
        .at(wt)
        .command(["log", "-1", "--format=%s"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn ok_mode_writes_named_paths_and_commits() {
    let (repo, wt) = setup("T001");
    let (status, out) = run(
        &repo,
        &wt,
        &[
            ("SPRINT_TASK", "T001"),
            ("SPRINT_PROMPT", "\nAdd the model\nmore detail"),
            ("SPRINT_PATHS", "src/models/user.py\ndocs/user.md"),
        ],
    );
    assert!(status.success(), "{out}");
    assert_eq!(
        fs::read_to_string(wt.join("src/models/user.py")).unwrap(),
        "T001: written by scripted-agent\n"
    );
    assert!(wt.join("docs/user.md").is_file());
    assert!(!repo.git.at(&wt).is_dirty().unwrap());
    assert_eq!(head_subject(&repo, &wt), "T001: Add the model");
    assert_eq!(repo.git.commits_ahead("sprint/f/T001", "main").unwrap(), 1);
    let mut files = repo.git.files_changed("sprint/f/T001", "main").unwrap();
    files.sort();
    assert_eq!(files, ["docs/user.md", "src/models/user.py"]);
}

#[test]
fn ok_mode_reads_prompt_file_and_defaults_path() {
    let (repo, wt) = setup("T002");
    let prompt = repo.path("prompt.md");
    fs::write(&prompt, "Write the docs\n").unwrap();
    let (status, out) = run(
        &repo,
        &wt,
        &[
            ("SPRINT_TASK", "T002"),
            ("SPRINT_PROMPT_FILE", prompt.to_str().unwrap()),
        ],
    );
    assert!(status.success(), "{out}");
    assert!(wt.join("sprint-output/T002.txt").is_file());
    assert_eq!(head_subject(&repo, &wt), "T002: Write the docs");
}

#[test]
fn fail_mode_and_per_task_override_commit_nothing() {
    let (repo, wt) = setup("T003");
    let (status, out) = run(
        &repo,
        &wt,
        &[
            ("SPRINT_TASK", "T003"),
            ("SCRIPTED_AGENT_MODE", "ok"),
            ("SCRIPTED_AGENT_MODE_T003", "fail"),
        ],
    );
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("failing as told"), "{out}");
    assert_eq!(repo.git.commits_ahead("sprint/f/T003", "main").unwrap(), 0);
    assert!(!repo.git.at(&wt).is_dirty().unwrap());

    let (status, out) = run(&repo, &wt, &[("SCRIPTED_AGENT_MODE", "bogus")]);
    assert_eq!(status.code(), Some(2), "{out}");
}

#[test]
fn dirty_mode_leaves_work_that_commit_wip_saves() {
    let (repo, wt) = setup("T004");
    let (status, out) = run(
        &repo,
        &wt,
        &[("SPRINT_TASK", "T004"), ("SCRIPTED_AGENT_MODE", "dirty")],
    );
    assert!(status.success(), "{out}");
    let g = repo.git.at(&wt);
    assert!(g.is_dirty().unwrap());
    assert_eq!(repo.git.commits_ahead("sprint/f/T004", "main").unwrap(), 0);
    let id = g
        .commit_wip("T004: save uncommitted work", &repo.identity())
        .unwrap();
    assert!(id.is_some());
    assert_eq!(repo.git.commits_ahead("sprint/f/T004", "main").unwrap(), 1);
}

#[test]
fn crash_mode_dies_by_sigkill_with_files_uncommitted() {
    let (repo, wt) = setup("T005");
    let (status, out) = run(
        &repo,
        &wt,
        &[
            ("SPRINT_TASK", "T005"),
            ("SCRIPTED_AGENT_MODE", "crash"),
            ("SPRINT_PATHS", "a.txt"),
        ],
    );
    assert_eq!(status.signal(), Some(9), "{out}");
    assert!(wt.join("a.txt").is_file());
    assert!(repo.git.at(&wt).is_dirty().unwrap());
    assert_eq!(repo.git.commits_ahead("sprint/f/T005", "main").unwrap(), 0);
}

#[test]
fn hang_mode_keeps_running_until_killed() {
    let (repo, wt) = setup("T006");
    let mut child = repo
        .command(agent(), &wt)
        .envs([("SPRINT_TASK", "T006"), ("SCRIPTED_AGENT_MODE", "hang")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the agent to write sprint-output/T006.txt", 10, || {
        wt.join("sprint-output/T006.txt").is_file()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the agent should hang");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(repo.git.commits_ahead("sprint/f/T006", "main").unwrap(), 0);
}

#[test]
fn sleep_delays_the_agent() {
    let (repo, wt) = setup("T007");
    let started = std::time::Instant::now();
    let (status, out) = run(
        &repo,
        &wt,
        &[("SPRINT_TASK", "T007"), ("SCRIPTED_AGENT_SLEEP", "1")],
    );
    assert!(status.success(), "{out}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

/// The chain a worker is made of: a rendered profile runs in a tmux session
/// in the task's worktree, commits, and the session closes when it is done.
#[test]
fn profile_in_tmux_session_commits_and_logs() {
    let (repo, wt) = setup("T008");
    let guard = TmuxGuard::new();
    let prompt_file = repo.path("T008.prompt.md");
    fs::write(&prompt_file, "Implement the endpoint\n").unwrap();
    let profile = AgentProfile::from_command(&format!("exec '{}'", agent().display()));
    let extra = vec![
        ("SPRINT_TASK".to_owned(), "T008".to_owned()),
        ("SPRINT_PATHS".to_owned(), "api/endpoint.rs".to_owned()),
    ];
    let launch = profile
        .render(&RenderInput {
            prompt: "Implement the endpoint\n",
            prompt_file: &prompt_file,
            worktree: &wt,
            model: None,
            env: &extra,
        })
        .unwrap();
    let mut env: Vec<(String, String)> = launch
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.to_string_lossy().into_owned()))
        .collect();
    for (k, v) in super::testutil::git_env(&repo.home) {
        env.push((k.to_owned(), v));
    }
    let argv: Vec<OsString> = launch.argv.clone();
    let log = repo.path("logs/T008.log");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    guard
        .tmux
        .new_session_logged("dev-1", &wt, &argv, &env, &log)
        .unwrap();
    wait_for("session dev-1 to close", 20, || {
        !guard.tmux.has_session("dev-1").unwrap()
    });
    assert_eq!(head_subject(&repo, &wt), "T008: Implement the endpoint");
    assert!(wt.join("api/endpoint.rs").is_file());
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("scripted-agent: task T008, mode ok"),
        "{logged}"
    );
    assert!(logged.contains("scripted-agent: committed"), "{logged}");
}
