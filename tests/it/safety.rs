//! The trust model's promises about files, configuration, prompts, hooks and
//! input, each kept against a hostile agent or a clumsy user: real git, real
//! tmux, the real binary. Anything a test points a hostile link at lives in
//! a temp dir of its own, checked to stay empty.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::fleet::{agent, Fleet};
use super::sprint::{config, scripted, Sprint};
use super::support::{stderr, stdout, Repo, BIN};

/// Every file name under `dir`, recursively (symlinks not followed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The value and source `config show` prints for `key`: `2  # file`.
fn row(show: &str, key: &str) -> String {
    show.lines()
        .find_map(|l| {
            let (k, rest) = l.split_once(" = ")?;
            (k.trim_end() == key).then(|| rest.to_owned())
        })
        .unwrap_or_else(|| panic!("no {key} in:\n{show}"))
}

fn orchestrator_log(f: &Fleet) -> String {
    std::fs::read_to_string(f.repo.path().join(".git/sprint/logs/orchestrator.log"))
        .unwrap_or_default()
}

/// Waits until the orchestrator's log says `what`.
fn wait_log(f: &Fleet, what: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = orchestrator_log(f);
        if log.contains(what) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for '{what}' in the orchestrator's log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_committed_env_symlink_never_carries_the_secret_out_of_the_worktree() {
    let outside = tempfile::tempdir().unwrap();
    let stolen = outside.path().join("stolen");
    // T001's developer is hostile: it swaps the .env it was given for a link
    // out of the worktree and gets it merged, so every later worktree made
    // from the integration branch holds the link.
    let hostile = format!(
        "case \"$SPRINT_TASK\" in */T001) [ -L .env ] || {{ rm -f .env; ln -s '{}' .env; git add .env; git commit -q -m 'T001: link .env'; }}; exit 0;; esac; exec '{}'",
        stolen.display(),
        agent()
    );
    let s = Sprint::new(
        &config(&hostile, "setup:\n  copy: [.env]\n"),
        "- [ ] T001 Set up the environment\n- [ ] T002 Use it in b.txt (depends on T001)\n",
    );
    s.f.repo.write(".env", "SECRET=hunter2\n");
    s.start(&[]);
    s.wait_done(90);
    let log = orchestrator_log(&s.f);
    assert!(
        log.contains("setup file not copied")
            && log.contains("`.env` in the new worktree is a symlink"),
        "{log}"
    );
    assert!(
        files_under(outside.path()).is_empty(),
        "the secret was written outside the worktree: {:?}",
        files_under(outside.path())
    );
    // The link is what was merged; the secret never was.
    let merged = s.f.repo.git(["ls-tree", "sprint/f/integration", ".env"]);
    assert!(merged.starts_with("120000 "), "{merged}");
    let grep =
        s.f.repo
            .command("git")
            .args(["grep", "-q", "hunter2", "sprint/f/integration"])
            .status()
            .unwrap();
    assert!(!grep.success(), "the secret was committed");
}

#[test]
fn a_gate_on_a_checked_out_side_branch_never_runs() {
    let marks = tempfile::tempdir().unwrap();
    let marker = marks.path().join("side-gate-ran");
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 One in a.txt\n");
    // A side branch whose config names itself the base and adds a gate; the
    // person leaves it checked out in the main worktree.
    s.f.repo.git(["checkout", "-q", "-b", "side"]);
    // Its marker is writable to gates, so a pass means it never ran rather
    // than that the sandbox refused it.
    let side = format!(
        "base_branch: side\n{}",
        config(
            &scripted(),
            &format!("sandbox: {{ writable: ['{}'] }}\n", marks.path().display()),
        )
        .replace(
            "  review:\n",
            &format!(
                "  review:\n    - name: side-only\n      run: touch '{}'\n",
                marker.display()
            ),
        )
    );
    s.f.repo.write(".git-sprint.yaml", &side);
    s.f.repo
        .git(["commit", "-q", "-am", "side: a gate of its own"]);
    let out = s.f.run(&["start"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "note: `.git-sprint.yaml` has uncommitted changes: not used until committed on main"
        ),
        "{}",
        stdout(&out)
    );
    s.wait_done(60);
    assert!(!marker.exists(), "the side branch's gate ran");
    // The work went where main's config says.
    s.f.repo
        .git(["rev-parse", "--verify", "sprint/f/integration"]);
    let log = orchestrator_log(&s.f);
    assert!(log.contains("configuration loaded"), "{log}");
    assert!(log.contains(".git-sprint.yaml at main ("), "{log}");
}

#[test]
fn uncommitted_config_edits_are_reported_and_not_used_until_committed() {
    let repo = Repo::with_commit();
    repo.write(".git-sprint.yaml", "roles:\n  developer:\n    count: 2\n");
    repo.git(["add", ".git-sprint.yaml"]);
    repo.git(["commit", "-q", "-m", "config"]);
    let short = repo
        .git(["rev-parse", "--short=7", "main"])
        .trim()
        .to_owned();
    let show = repo.sprint(["config", "show"]);
    assert!(
        show.starts_with(&format!("# .git-sprint.yaml at main ({short})\n")),
        "{show}"
    );
    assert_eq!(row(&show, "roles.developer.count"), "2  # file");
    assert!(!show.contains("uncommitted"), "{show}");

    // An edit, and then a broken one: neither is used, both are reported.
    for edit in ["roles:\n  developer:\n    count: 5\n", "roles: [\n"] {
        repo.write(".git-sprint.yaml", edit);
        let show = repo.sprint(["config", "show"]);
        assert_eq!(row(&show, "roles.developer.count"), "2  # file");
        assert!(
            show.contains(
                "# `.git-sprint.yaml` has uncommitted changes: not used until committed on main\n"
            ),
            "{show}"
        );
        let status = repo.sprint(["status"]);
        assert!(
            status.starts_with(
                "note: `.git-sprint.yaml` has uncommitted changes: not used until committed on main\n"
            ),
            "{status}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&repo.sprint(["config", "show", "--json"])).unwrap();
    assert_eq!(json["uncommitted"], true);
    assert_eq!(json["base"]["branch"], "main");
    assert_eq!(
        json["base"]["commit"].as_str().unwrap(),
        repo.git(["rev-parse", "main"]).trim()
    );
    let status: serde_json::Value =
        serde_json::from_str(&repo.sprint(["status", "--json"])).unwrap();
    assert!(status["config_notice"].is_string(), "{status}");

    repo.write(".git-sprint.yaml", "roles:\n  developer:\n    count: 5\n");
    repo.git(["commit", "-q", "-am", "five developers"]);
    let show = repo.sprint(["config", "show"]);
    assert_eq!(row(&show, "roles.developer.count"), "5  # file");
    assert!(!show.contains("uncommitted"), "{show}");
    assert!(!repo.sprint(["status"]).contains("note:"));
    // Per-user git config still overrides the committed file.
    repo.git(["config", "sprint.roles.developer.count", "7"]);
    let show = repo.sprint(["config", "show"]);
    assert_eq!(
        row(&show, "roles.developer.count"),
        "7  # git config sprint.roles.developer.count"
    );
}

#[test]
fn a_committed_config_symlink_is_refused() {
    let repo = Repo::with_commit();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("evil.yaml");
    std::fs::write(
        &target,
        "gates:\n  review:\n    - name: x\n      run: 'true'\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(&target, repo.path().join(".git-sprint.yaml")).unwrap();
    repo.git(["add", ".git-sprint.yaml"]);
    repo.git(["commit", "-q", "-m", "a link"]);
    let out = repo.run(["config", "show"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(".git-sprint.yaml at main (") && err.contains("is a symlink"),
        "{err}"
    );
}

#[test]
fn a_task_title_with_shell_syntax_runs_nothing() {
    let marks = tempfile::tempdir().unwrap();
    let dollar = marks.path().join("dollar");
    let backtick = marks.path().join("backtick");
    // A `command:` agent that reads the prompt file as data and commits
    // what it saw.
    let reader = "cat \"$SPRINT_PROMPT_FILE\" > prompt-seen.txt; git add prompt-seen.txt; git commit -q -m \"$SPRINT_TASK: read the prompt\" || true";
    let title = format!(
        "Handle $(touch pwned) and `touch pwned-too` and $(touch '{}') and `touch '{}'` in a.txt",
        dollar.display(),
        backtick.display()
    );
    let s = Sprint::new(&config(reader, ""), &format!("- [ ] T001 {title}\n"));
    s.start(&[]);
    s.wait_done(60);
    assert!(!dollar.exists() && !backtick.exists(), "the title ran");
    let everywhere = files_under(s.f.repo.path());
    assert!(
        !everywhere.iter().any(|p| p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("pwned"))),
        "the title ran: {everywhere:?}"
    );
    // It reached the agent, as text.
    let seen =
        s.f.repo
            .git(["show", "sprint/f/integration:prompt-seen.txt"]);
    assert!(
        seen.contains("$(touch pwned)") && seen.contains("`touch pwned-too`"),
        "{seen}"
    );
}

#[test]
fn the_shell_preset_is_refused_for_sprint_roles_and_kept_for_fleet_commands() {
    let f = Fleet::new();
    f.repo.write(
        ".git-sprint.yaml",
        "roles:\n  developer:\n    agent: shell\n",
    );
    f.repo.git(["add", ".git-sprint.yaml"]);
    f.repo.git(["commit", "-q", "-m", "shell developers"]);
    let out = f.run(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`roles.developer.agent`")
            && err.contains("runs the prompt file as a script")
            && err.contains("$SPRINT_PROMPT_FILE")
            && err.contains("fleet commands"),
        "{err}"
    );
    assert!(f.sessions().is_empty(), "{:?}", f.sessions());

    // With a sprint-safe developer, a person may still run a script of
    // their own through the fleet.
    f.repo.write(
        ".git-sprint.yaml",
        "roles:\n  developer:\n    agent: claude\n",
    );
    f.repo.git(["commit", "-q", "-am", "claude developers"]);
    f.ok(&[
        "spawn",
        "script",
        "--agent",
        "shell",
        "--prompt",
        "echo done > out.txt && git add out.txt && git commit -q -m script",
    ]);
    f.wait_list("the script to finish", |rows| {
        rows.iter()
            .any(|r| r["id"] == "script" && r["status"] == "exited 0")
    });
    assert_eq!(f.repo.git(["show", "script:out.txt"]), "done\n");
}

#[test]
fn a_failed_setup_command_leaves_no_half_made_task_worktree() {
    let s = Sprint::new(
        &config(
            &scripted(),
            "setup:\n  commands: [\"echo no network >&2; exit 3\"]\n",
        ),
        "- [ ] T001 One in a.txt\n",
    );
    s.start(&[]);
    let log = wait_log(&s.f, "setup command", 30);
    assert!(
        log.contains("no network") && log.contains("exit status: 3"),
        "{log}"
    );
    // Stopped between two reconciles, so nothing is half done right now.
    s.f.ok(&["stop"]);
    assert!(!s.f.worktree_dir("f.T001").exists());
    assert_eq!(s.f.worktrees(), 1, "{}", s.f.repo.git(["worktree", "list"]));
}

#[test]
fn hooks_are_refused_into_a_shared_hooks_path_without_shared_hooks() {
    let repo = Repo::with_commit();
    let shared = tempfile::tempdir().unwrap();
    repo.git(["config", "core.hooksPath", shared.path().to_str().unwrap()]);
    for args in [&["init"][..], &["start"]] {
        let out = repo.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("outside this repository") && err.contains("--shared-hooks"),
            "{err}"
        );
        // Refused before anything was written.
        assert!(files_under(shared.path()).is_empty());
        assert!(!repo.path().join(".git-sprint.yaml").exists());
        let state = repo
            .command("git")
            .args(["rev-parse", "--verify", "-q", "refs/ai-sprint"])
            .status()
            .unwrap();
        assert!(!state.success(), "{args:?} created the state");
    }
    let out = repo.sprint(["init", "--shared-hooks"]);
    assert!(out.contains("post-rewrite hook installed"), "{out}");
    let shim = std::fs::read_to_string(shared.path().join("post-commit")).unwrap();
    assert!(shim.contains("# BEGIN git-sprint"), "{shim}");
    let out = repo.run(["uninstall"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("outside this repository"));
    assert!(shared.path().join("post-commit").exists());
    let out = repo.sprint(["uninstall", "--shared-hooks"]);
    assert!(out.contains("post-commit: removed"), "{out}");
    assert!(files_under(shared.path()).is_empty());
}

#[test]
fn git_am_and_a_rebase_ingest_a_tasks_md() {
    let repo = Repo::with_commit();
    repo.sprint(["init"]);
    // A patch that adds a spec, mailed in.
    repo.git(["checkout", "-q", "-b", "topic"]);
    repo.write("specs/am/tasks.md", "- [ ] T001 From a patch\n");
    repo.git(["add", "specs"]);
    repo.git(["commit", "-q", "-m", "spec by mail"]);
    let patch = repo.home().join("spec.patch");
    std::fs::write(&patch, repo.git(["format-patch", "-1", "--stdout"])).unwrap();
    repo.git(["checkout", "-q", "main"]);
    let out = repo
        .command("git")
        .args(["am", "-q", patch.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("git-sprint: am: specs/am/tasks.md ingested: 1 added"),
        "{}",
        stderr(&out)
    );

    // main has a commit of its own and is rebased onto a branch with a spec.
    repo.git(["checkout", "-q", "-b", "upstream"]);
    repo.write("specs/rb/tasks.md", "- [ ] T001 From upstream\n");
    repo.git(["add", "specs"]);
    repo.git(["commit", "-q", "-m", "spec upstream"]);
    repo.git(["checkout", "-q", "main"]);
    repo.write("local.txt", "mine\n");
    repo.git(["add", "local.txt"]);
    repo.git(["commit", "-q", "-m", "local work"]);
    let out = repo
        .command("git")
        .args(["rebase", "-q", "upstream"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("git-sprint: rb: specs/rb/tasks.md ingested: 1 added"),
        "{}",
        stderr(&out)
    );
    let status = repo.sprint(["status"]);
    assert!(
        status.contains("\nam ") && status.contains("\nrb "),
        "{status}"
    );
}

#[test]
fn a_hanging_git_sprint_never_holds_up_a_commit() {
    let repo = Repo::with_commit();
    repo.sprint(["init"]);
    // The installed shim now calls a git-sprint that never returns.
    let hang = repo.home().join("hanging-git-sprint");
    std::fs::write(&hang, "#!/bin/sh\nexec sleep 60\n").unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&hang, mode).unwrap();
    let hook = repo.path().join(".git/hooks/post-commit");
    let shim = std::fs::read_to_string(&hook).unwrap();
    assert!(shim.contains(BIN));
    std::fs::write(&hook, shim.replace(BIN, hang.to_str().unwrap())).unwrap();
    repo.write("a.txt", "a\n");
    repo.git(["add", "a.txt"]);
    // Bounded: the hook's own 1 s limit ends it, which it says below.
    let out = super::support::output_within(
        repo.command("git")
            .env("GIT_SPRINT_HOOK_TIMEOUT", "1")
            .args(["commit", "-q", "-m", "a"]),
        "a commit whose post-commit hook hangs",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("git-sprint: post-commit hook stopped after 1s"),
        "{}",
        stderr(&out)
    );
}

/// Lets readers blocked on a FIFO go (they read end of file), so no
/// process of the test is left behind.
struct FifoRelease(PathBuf);

impl Drop for FifoRelease {
    fn drop(&mut self) {
        use std::os::unix::fs::OpenOptionsExt;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            // Opening for writing without blocking succeeds only while
            // someone is reading; closing it gives them end of file.
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.0);
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_hook_stops_itself_when_what_it_reads_blocks() {
    let repo = Repo::with_commit();
    repo.sprint(["init"]);
    // A global git config that blocks whoever opens it, as a config on a
    // hung network filesystem would.
    let fifo = repo.home().join(".gitconfig");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let _release = FifoRelease(fifo);
    let out = super::support::output_within(
        repo.command(BIN)
            .env("GIT_SPRINT_HOOK_TIMEOUT", "1")
            .args(["hook", "post-commit"]),
        "a hook whose git config blocks",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("git-sprint: post-commit hook stopped after 1s"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn huge_task_titles_are_rejected_with_the_file_and_line() {
    let repo = Repo::with_commit();
    repo.sprint(["init"]);
    let title = "x".repeat(100 * 1024);
    repo.write(
        "specs/big/tasks.md",
        &format!("- [ ] T001 small\n- [ ] T002 {title}\n"),
    );
    repo.git(["add", "specs"]);
    let out = repo
        .command("git")
        .args(["commit", "-q", "-m", "big"])
        .output()
        .unwrap();
    assert!(out.status.success(), "the commit stands");
    let err = stderr(&out);
    assert!(
        err.contains(
            "specs/big/tasks.md:2: this line is 102411 bytes, more than the 65536 allowed"
        ),
        "{err}"
    );
    assert!(err.contains("not ingested"), "{err}");
    assert!(repo.sprint(["status"]).contains("0 features"));
    let out = repo.run(["add", "f", &title]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the task title is 102400 bytes, more than the 65536 allowed"),
        "{}",
        stderr(&out)
    );
    assert!(repo.sprint(["status"]).contains("0 features"));
}
