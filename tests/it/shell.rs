//! How git-sprint fits git and the shell: the manual page where `man` and
//! `git sprint --help` find it, completion of `git sprint <TAB>` through
//! git's bash completion, `init --gates`, typed `--json` settings, `start`
//! saying what is wrong with the configuration, and `health` judging
//! fleet-only use on its own terms. Real git, tmux, bash and man.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::{agent, Fleet};
use super::support::{isolate, stderr, stdout, Repo, BIN};

/// Whether `program` runs here (man and bash are optional on a machine).
fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn start_with_a_broken_config_prints_the_error_and_starts_nothing() {
    let f = Fleet::new();
    f.repo
        .write(".git-sprint.yaml", "policy:\n  max_atempts: 3\n");
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "config"]);
    let out = f.run(&["start"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("policy.max_atempts") && err.contains("max_attempts"),
        "the error names the key and what is expected: {err}"
    );
    assert!(err.contains(".git-sprint.yaml"), "and the file: {err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(!err.contains("see its log"), "{err}");
    assert!(f.sessions().is_empty(), "{:?}", f.sessions());
}

#[test]
fn health_judges_fleet_only_use_without_an_orchestrator() {
    let f = Fleet::new();
    let cmd = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    f.ok(&["spawn", "w1", "--prompt", "wait", "--agent-command", &cmd]);
    f.wait_list("w1 running", |r| r.iter().any(|w| w["status"] == "running"));
    // A fleet worker needs no orchestrator: healthy, exit 0.
    let out = f.run(&["health"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("orchestrator: not running"), "{text}");
    assert!(text.contains("w1") && text.contains(" ok"), "{text}");
    let json: Value = serde_json::from_str(&f.ok(&["health", "--json"])).unwrap();
    assert_eq!(json["healthy"], true, "{json:#}");
    assert_eq!(json["orchestrator"], Value::Null, "{json:#}");

    // Piped, plain; asked for, the states are painted (padding kept outside).
    assert!(!f.ok(&["list"]).contains('\x1b'));
    let list = f.ok(&["list", "--color=always"]);
    assert!(list.contains("\x1b[32mrunning "), "{list:?}");
    let health = f.ok(&["--color=always", "health"]);
    assert!(health.contains("\x1b[32mok\x1b[0m"), "{health:?}");

    // A lost fleet worker is trouble, and nothing retries it: the hint says
    // what the person can do.
    f.tmux(&["kill-session", "-t", "w1"]);
    let out = f.run(&["health"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("tmux session gone"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("'git sprint kill w1'"),
        "{}",
        stderr(&out)
    );

    // A sprint task in flight does need one.
    f.ok(&["add", "feat", "a task", "--id", "T001"]);
    f.ok(&["claim", "feat/T001"]);
    let out = f.run(&["health"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("with 1 task in flight"), "{text}");
    assert!(
        stderr(&out).contains("hint: start the orchestrator"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_json_shows_the_recorded_settings_typed() {
    let f = Fleet::new();
    f.repo
        .write(".git-sprint.yaml", "policy:\n  max_attempts: 2\n");
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "config"]);
    f.ok(&["start"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let settings = loop {
        let status: Value = serde_json::from_str(&f.ok(&["status", "--json"])).unwrap();
        let settings = &status["meta"]["settings"];
        if settings.is_object() {
            break settings.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the orchestrator to record its settings: {status:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    f.ok(&["stop"]);
    assert_eq!(settings["base_branch"], "main", "{settings:#}");
    assert_eq!(settings["policy.max_attempts"], 2, "{settings:#}");
    assert_eq!(settings["merge.auto"], false, "{settings:#}");
    assert_eq!(settings["timeouts.lease"], "10m", "{settings:#}");
    // No value is JSON inside a string.
    for (key, value) in settings.as_object().unwrap() {
        if let Some(text) = value.as_str() {
            assert!(
                serde_json::from_str::<Value>(text).is_err(),
                "{key} holds JSON text: {text}"
            );
        }
    }
}

#[test]
fn init_gates_writes_a_config_the_loader_takes_for_each_toolchain() {
    for (set, gate) in [
        ("rust", "cargo clippy"),
        ("python", "ruff"),
        ("node", "eslint"),
    ] {
        let repo = Repo::with_commit();
        let out = repo.sprint(["init", "--gates", set, "--no-hooks"]);
        assert!(out.contains(&format!("with the {set} gates")), "{out}");
        repo.git(["add", ".git-sprint.yaml"]);
        repo.git(["commit", "-q", "-m", "config"]);
        let shown: Value = serde_json::from_str(&repo.sprint(["config", "show", "--json"]))
            .unwrap_or_else(|e| panic!("{set}: {e}"));
        let gates = &shown["config"]["gates"];
        for stage in ["review", "test", "security", "post_merge"] {
            assert!(
                gates[stage].as_array().is_some_and(|g| !g.is_empty()),
                "{set}: no {stage} gates in {gates:#}"
            );
        }
        assert!(gates.to_string().contains(gate), "{set}: {gates:#}");
        // A second --gates never overwrites the file.
        let again = repo.run(["init", "--gates", set, "--no-hooks"]);
        assert_eq!(again.status.code(), Some(1), "{}", stdout(&again));
        assert!(
            stderr(&again).contains("exists already"),
            "{}",
            stderr(&again)
        );
    }
}

/// `cargo install` puts the binary in `<prefix>/bin`; `install-man` puts the
/// pages in `<prefix>/share/man/man1`, which man-db searches for a `bin` on
/// PATH, so `git sprint --help` (git runs `man git-sprint`) shows the page.
#[test]
fn install_man_puts_the_pages_where_man_and_git_help_find_them() {
    let repo = Repo::with_commit();
    let prefix = tempfile::tempdir().unwrap();
    let bin = prefix.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("git-sprint");
    if std::fs::hard_link(BIN, &exe).is_err() {
        std::fs::copy(BIN, &exe).unwrap();
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let run = |program: &Path, args: &[&str]| {
        let mut cmd = Command::new(program);
        isolate(&mut cmd, repo.home())
            .current_dir(repo.path())
            .env("PATH", &path)
            .env_remove("MANPATH")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80")
            .args(args);
        cmd.output().unwrap()
    };
    let out = run(&exe, &["install-man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let man1 = prefix.path().join("share/man/man1");
    let page = std::fs::read_to_string(man1.join("git-sprint.1")).unwrap();
    assert!(page.contains(".TH git-sprint 1"), "{page}");
    assert!(
        page.contains(".SH NAME") && page.contains(".SH SYNOPSIS"),
        "{page}"
    );
    let start = std::fs::read_to_string(man1.join("git-sprint-start.1")).unwrap();
    assert!(start.contains("\\-\\-foreground"), "{start}");
    assert!(
        !man1.join("git-sprint-hook.1").exists(),
        "hidden commands get no page"
    );
    if !have("man") {
        eprintln!("man is not installed: checked the pages only");
        return;
    }
    assert!(
        stdout(&out).contains("'git sprint --help' and 'man git-sprint' show it"),
        "{}",
        stdout(&out)
    );
    let found = run(Path::new("man"), &["-w", "git-sprint"]);
    assert_eq!(
        Path::new(stdout(&found).trim()).canonicalize().unwrap(),
        man1.join("git-sprint.1").canonicalize().unwrap()
    );
    let help = run(Path::new("git"), &["sprint", "--help"]);
    let text = stdout(&help);
    assert!(help.status.success(), "{text}{}", stderr(&help));
    assert!(
        text.contains("NAME") && text.contains("git-sprint"),
        "{text}"
    );
    assert!(text.contains("refs/ai-sprint"), "{text}");
}

/// git-completion.bash calls `_git_sprint` with COMP_WORDS/COMP_CWORD over
/// the whole line; the script hands the words after `sprint` to the
/// `git-sprint` completion.
#[test]
fn bash_completion_completes_git_sprint_through_git() {
    if !have("bash") {
        eprintln!("bash is not installed");
        return;
    }
    let repo = Repo::new();
    let script = repo.sprint(["completions", "bash"]);
    let file = repo.write("completion.bash", &script);
    let complete = |words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let line = format!(
            "source '{}'; COMP_WORDS=({}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _git_sprint; echo \"${{COMPREPLY[*]}}\"",
            file.display(),
            words.join(" ")
        );
        let out = repo.command("bash").args(["-c", &line]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    assert_eq!(complete(&["git", "sprint", "sta"]), "start status");
    assert_eq!(
        complete(&["git", "-C", ".", "sprint", "status", "--"]),
        "--json --color --help"
    );
    assert_eq!(
        complete(&["git", "sprint", "h"]),
        "health heartbeat help",
        "hidden commands are not offered"
    );
    assert_eq!(
        complete(&["git", "sprint", "completions", "z"]),
        "zsh",
        "the shells are completed too"
    );
    let direct = format!(
        "source '{}'; COMP_WORDS=(git-sprint ini); COMP_CWORD=1; _gitsprint git-sprint ini git-sprint; echo \"${{COMPREPLY[*]}}\"",
        file.display()
    );
    let out = repo.command("bash").args(["-c", &direct]).output().unwrap();
    assert_eq!(stdout(&out).trim(), "init", "{}", stderr(&out));
}

/// That `health --json` (its output `out`) calls agent `w1` healthy and
/// exits 0.
fn assert_w1_healthy(out: &std::process::Output) {
    let json: Value = serde_json::from_str(&stdout(out)).unwrap();
    let w1 = json["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "w1")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(w1["healthy"], true, "{json:#}");
    assert_eq!(out.status.code(), Some(0), "{json:#}");
}

#[test]
fn regression_an_agent_recorded_starting_before_its_session_exists_is_not_gone() {
    // Before: `health` looked between the record of a launch (`starting`)
    // and its tmux session and called the agent dead ("tmux session gone").
    let f = Fleet::new();
    let home = f.repo.home().to_owned();
    let (entered, go) = (
        home.join("new-session-entered"),
        home.join("new-session-go"),
    );
    // `new-session` waits (at most a minute) for a go file.
    let path = super::support::tmux_shim(
        &home,
        "new-session",
        &format!(
            "    touch '{}'; i=0\n    while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
            entered.display(),
            go.display()
        ),
    );
    let cmd = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    let mut spawn = f
        .cmd(BIN)
        .args(["spawn", "w1", "--prompt", "wait", "--agent-command", &cmd])
        .env("PATH", &path)
        .spawn()
        .unwrap();
    let go_guard = super::support::GoOnDrop(go.clone());
    super::support::wait_for_file(&entered, 60, "spawn to reach tmux new-session");
    let out = f.run(&["health", "--json"]);
    assert_w1_healthy(&out);
    drop(go_guard);
    assert!(spawn.wait().unwrap().success());
    f.wait_list("w1 running", |r| r.iter().any(|w| w["status"] == "running"));
}

#[test]
fn regression_health_with_a_failed_tmux_listing_calls_no_agent_gone() {
    // Before: a `tmux list-sessions` that failed read as "no sessions", and
    // `health` called every running agent's session gone.
    let f = Fleet::new();
    let home = f.repo.home().to_owned();
    let cmd = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    f.ok(&["spawn", "w1", "--prompt", "wait", "--agent-command", &cmd]);
    f.wait_list("w1 running", |r| r.iter().any(|w| w["status"] == "running"));
    let path = super::support::tmux_shim(
        &home,
        "list-sessions",
        "    echo 'tmux: fork failed: Resource temporarily unavailable' >&2; exit 1",
    );
    let out = f
        .cmd(BIN)
        .args(["health", "--json"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_w1_healthy(&out);
}
