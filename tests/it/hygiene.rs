//! What agents start with and what they leave: the environment of the
//! command that scheduled them (never the tmux server's), commits authored as
//! the agent with a `Sprint-Agent:` trailer and the user as committer, `list`
//! measuring sprint agents too, and logs shown as plain text that outlive a
//! `kill` until pruned or their feature is done.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::{agent, Fleet};
use super::sprint::{scripted, Sprint};
use super::support::{stderr, stdout, BIN};

fn status_of(rows: &[Value], id: &str) -> String {
    rows.iter()
        .find(|r| r["id"] == id)
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// Starts the test's tmux server before git-sprint does, with `vars` in its
/// environment: what a server keeps from the shell it was first started in.
fn early_tmux_server(f: &Fleet, vars: &[(&str, &str)]) {
    let mut cmd = f.cmd("tmux");
    cmd.args([
        "-L",
        &f.socket,
        "new-session",
        "-d",
        "-s",
        "early",
        "sleep 600",
    ]);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("tmux");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Waits until file `path` holds `needle`, for at most `secs`.
fn wait_for_text(path: &Path, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {needle:?} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn common(f: &Fleet) -> PathBuf {
    f.repo.path().join(".git")
}

/// `author|email|committer|trailer` of commit `rev`.
fn who(f: &Fleet, rev: &str) -> String {
    f.repo
        .git([
            "log",
            "-1",
            "--format=%an|%ae|%cn|%(trailers:key=Sprint-Agent,valueonly,separator=)",
            rev,
        ])
        .trim()
        .to_owned()
}

#[test]
fn a_spawned_agent_gets_the_callers_environment_not_the_tmux_servers() {
    let f = Fleet::new();
    // The agent reports into .git, which the sandbox keeps agents out of.
    f.repo.git(["config", "sprint.sandbox", "off"]);
    early_tmux_server(&f, &[("GS_SERVER_ONLY", "stale"), ("GS_FOO", "server")]);
    let report = "printf 'FOO=%s SERVER_ONLY=%s AUTHOR=%s\\n' \"$GS_FOO\" \"${GS_SERVER_ONLY-unset}\" \"$GIT_AUTHOR_NAME\" > \"$(git rev-parse --git-common-dir)/seen\"";
    let out = f
        .cmd(BIN)
        .args(["spawn", "w", "--prompt", "x", "--agent-command", report])
        .env("GS_FOO", "caller")
        .env_remove("GS_SERVER_ONLY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    f.wait_list("w to exit", |r| status_of(r, "w") == "exited 0");
    let seen = std::fs::read_to_string(common(&f).join("seen")).unwrap();
    assert_eq!(seen, "FOO=caller SERVER_ONLY=unset AUTHOR=w\n");
    // The environment handed over is deleted as the session starts.
    let left: Vec<_> = std::fs::read_dir(common(&f).join("sprint/env"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn start_again_hands_its_environment_to_the_next_agent_and_the_tmux_servers_never_leaks() {
    // T001's developer waits for `go`, so the second start happens while it
    // runs; T002 starts only after T001 is merged.
    let agent_cmd = format!(
        r#"common=$(git rev-parse --git-common-dir)
printf '%s FOO=%s SERVER_ONLY=%s\n' "$SPRINT_WORKER" "$GS_FOO" "${{GS_SERVER_ONLY-unset}}" >> "$common/seen"
case $SPRINT_WORKER in *T001.dev*) i=0; while [ ! -e "$common/go" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done;; esac
{}"#,
        scripted()
    );
    let cfg = super::sprint::config(&agent_cmd, "").replace(
        "  review:\n    - name: has-commits\n      run: test",
        "  review:\n    - name: has-commits\n      run: printf 'gate SERVER_ONLY=%s\\n' \"${GS_SERVER_ONLY-unset}\" >> \"$(git rev-parse --git-common-dir)/seen\"; test",
    );
    assert!(cfg.contains("gate SERVER_ONLY"), "{cfg}");
    let s = Sprint::new(
        &cfg,
        "- [ ] T001 One in a.txt\n- [ ] T002 Two in b.txt (depends on T001)\n",
    );
    // The agents report into .git, which the sandbox keeps agents out of.
    s.f.repo.git(["config", "sprint.sandbox", "off"]);
    early_tmux_server(&s.f, &[("GS_SERVER_ONLY", "stale")]);
    let seen = common(&s.f).join("seen");
    s.start(&[("GS_FOO", "one")]);
    wait_for_text(&seen, "f.T001.dev.1 ", 60);

    let saved = common(&s.f).join("sprint/environment");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the saved environment holds secrets");
    let again =
        s.f.cmd(BIN)
            .arg("start")
            .env("GS_FOO", "two")
            .output()
            .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("already running")
            && stdout(&again).contains("new agents will use this shell's environment"),
        "{}",
        stdout(&again)
    );
    std::fs::write(common(&s.f).join("go"), "").unwrap();
    s.wait_done(120);

    let seen = std::fs::read_to_string(&seen).unwrap();
    assert!(
        seen.contains("f.T001.dev.1 FOO=one SERVER_ONLY=unset\n"),
        "{seen}"
    );
    assert!(
        seen.contains("f.T002.dev.1 FOO=two SERVER_ONLY=unset\n"),
        "{seen}"
    );
    // The orchestrator, and so its gates, has the caller's environment too.
    assert!(seen.contains("gate SERVER_ONLY=unset"), "{seen}");
    assert!(!seen.contains("stale"), "{seen}");

    // Every commit an agent made: the agent authored it, the user committed
    // it, and the trailer names the agent.
    let commits = s.f.repo.git([
        "log",
        "--no-merges",
        "--format=%an|%ae|%cn|%(trailers:key=Sprint-Agent,valueonly,separator=)",
        "main..sprint/f/integration",
    ]);
    assert!(commits.lines().count() >= 4, "{commits}");
    for line in commits.lines() {
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 4, "{line}");
        assert!(parts[0].starts_with("f.T00"), "{line}");
        assert_eq!(
            parts[1],
            format!("{}@git-sprint.invalid", parts[0]),
            "{line}"
        );
        assert_eq!(parts[2], "Tester", "{line}");
        assert_eq!(parts[3], parts[0], "{line}");
    }

    // list measures sprint agents from where each started to where it ended,
    // though their branches are deleted now: numbers, not '-'.
    let rows: Value = serde_json::from_str(&s.f.ok(&["list", "--all", "--json"])).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows.len() >= 4, "{rows:#?}");
    for r in rows {
        assert_eq!(r["ahead"].as_u64(), Some(1), "{r:#}");
        assert_eq!(r["files_changed"].as_u64(), Some(1), "{r:#}");
    }
    let table = s.f.ok(&["list", "--all"]);
    let dev = table
        .lines()
        .find(|l| l.starts_with("f.T001.dev.1 "))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = dev.split_whitespace().collect();
    // ID BATCH BRANCH STATE(2 words) AGE AHEAD FILES …
    assert_eq!(&cells[6..8], ["1", "1"], "{table}");

    // The feature is done: its agents' logs go.
    let log = common(&s.f).join("sprint/logs/f.T001.dev.1.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while log.exists() {
        assert!(
            Instant::now() < deadline,
            "log kept after the feature was done"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = s.f.ok(&["logs", "f.T001.dev.1"]);
    assert!(out.contains("removed when their feature is done"), "{out}");
}

#[test]
fn resume_while_the_orchestrator_runs_saves_this_shells_environment() {
    let f = Fleet::new();
    f.repo
        .write(".git-sprint.yaml", &super::sprint::config(&scripted(), ""));
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "config"]);
    f.ok(&["start"]);
    let out = f
        .cmd(BIN)
        .arg("resume")
        .env("GS_FOO", "three")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("new agents will use this shell's environment"),
        "{}",
        stdout(&out)
    );
    let saved = std::fs::read(common(&f).join("sprint/environment")).unwrap();
    assert!(
        saved.split(|b| *b == 0).any(|e| e == b"GS_FOO=three"),
        "{}",
        String::from_utf8_lossy(&saved)
    );
    f.ok(&["stop"]);
}

#[test]
fn fleet_agents_author_their_commits_and_wip_commits_with_the_configured_email() {
    let f = Fleet::new();
    f.repo.write(
        ".git-sprint.yaml",
        "identity: { email: 'bots+{agent}@example.com' }\n",
    );
    // The configuration is read as committed on the base branch.
    f.repo.git(["add", ".git-sprint.yaml"]);
    f.repo.git(["commit", "-qm", "identity"]);
    f.ok(&["init"]);
    let out = f
        .cmd(BIN)
        .args(["multi", "a:first", "b:second", "--agent-command", &agent()])
        .env("SCRIPTED_AGENT_MODE_b", "dirty")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    f.wait_list("both exit", |r| {
        r.len() == 2 && r.iter().all(|w| w["status"] == "exited 0")
    });
    assert_eq!(who(&f, "a"), "a|bots+a@example.com|Tester|a");
    // b left its work uncommitted: the wrapper's WIP commit is b's too.
    assert_eq!(who(&f, "b"), "b|bots+b@example.com|Tester|b");
    let subject = f.repo.git(["log", "-1", "--format=%s", "b"]);
    assert!(subject.starts_with("WIP: b"), "{subject}");
    // A person's own commit gets no trailer and keeps its author.
    f.repo.write("mine.txt", "mine\n");
    f.repo.git(["add", "mine.txt"]);
    f.repo.git(["commit", "-q", "-m", "mine"]);
    assert_eq!(who(&f, "HEAD"), "Tester|tester@example.com|Tester|");
}

#[test]
fn a_users_prepare_commit_msg_hook_still_runs_and_can_refuse() {
    let f = Fleet::new();
    let hook = f.repo.write(
        ".git/hooks/prepare-commit-msg",
        "#!/bin/sh\necho 'refused by my hook' >&2\nexit 1\n",
    );
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
    let out = f.ok(&["init"]);
    assert!(out.contains("prepare-commit-msg hook installed"), "{out}");
    f.repo.write("x.txt", "x\n");
    f.repo.git(["add", "x.txt"]);
    let commit = f
        .repo
        .command("git")
        .args(["commit", "-q", "-m", "x"])
        .output()
        .unwrap();
    assert!(
        !commit.status.success(),
        "the user's hook must still refuse"
    );
    assert!(
        stderr(&commit).contains("refused by my hook"),
        "{}",
        stderr(&commit)
    );
}

#[test]
fn logs_show_plain_text_and_raw_shows_the_bytes_as_recorded() {
    let f = Fleet::new();
    let noisy =
        r"printf '\033[1;31mred\033[0m plain\n\033]0;a title\007progress 10%%\rprogress 100%%\n'";
    f.ok(&["spawn", "noisy", "--prompt", "x", "--agent-command", noisy]);
    f.wait_list("noisy to exit", |r| status_of(r, "noisy") == "exited 0");
    let plain = f.ok(&["logs", "noisy"]);
    assert!(plain.contains("red plain\n"), "{plain:?}");
    assert!(plain.contains("\nprogress 100%\n"), "{plain:?}");
    assert!(
        !plain.contains('\x1b') && !plain.contains('\r'),
        "{plain:?}"
    );
    // What was recorded is the wrapper's transcript (the agent's output
    // reaches the pane only through it, escape-free), with the terminal's
    // own line ends.
    let raw = f.ok(&["logs", "noisy", "--raw"]);
    assert!(raw.contains("red plain\r\n"), "{raw:?}");
    assert!(
        !raw.contains('\x1b') && !raw.contains("progress 10%"),
        "{raw:?}"
    );
}

#[test]
fn logs_follow_filters_escapes_as_it_goes() {
    let f = Fleet::new();
    let slow = r"sleep 1; printf '\033[32mgreen\033[0m\r\n'; sleep 1; printf 'done \033]8;;x\033\\link\033]8;;\033\\\n'";
    f.ok(&["spawn", "slow", "--prompt", "x", "--agent-command", slow]);
    let out = f.ok(&["logs", "slow", "-f"]);
    assert!(out.contains("green\n"), "{out:?}");
    assert!(out.contains("done link\n"), "{out:?}");
    assert!(out.contains("git-sprint: slow: agent exited 0"), "{out:?}");
    assert!(!out.contains('\x1b') && !out.contains('\r'), "{out:?}");
}

#[test]
fn a_killed_agents_log_survives_until_logs_prune() {
    let f = Fleet::new();
    f.ok(&[
        "spawn",
        "gone",
        "--prompt",
        "x",
        "--agent-command",
        "echo 'fatal: the API key is invalid' >&2; exit 1",
    ]);
    f.ok(&["spawn", "ended", "--prompt", "x", "--agent-command", "true"]);
    let hang = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    f.ok(&["spawn", "alive", "--prompt", "x", "--agent-command", &hang]);
    f.wait_list("two ended, one running", |r| {
        status_of(r, "gone") == "exited 1"
            && status_of(r, "ended") == "exited 0"
            && status_of(r, "alive") == "running"
    });
    f.ok(&["kill", "gone"]);
    assert!(f.list().iter().all(|r| r["id"] != "gone"));
    // The record is gone; the real error message is not.
    let log = f.ok(&["logs", "gone"]);
    assert!(log.contains("fatal: the API key is invalid"), "{log}");
    assert!(log.contains("git-sprint: gone: agent exited 1"), "{log}");

    let out = f.ok(&["logs", "--prune"]);
    assert_eq!(out, "Removed 1 log: gone\n");
    let after = f.run(&["logs", "gone"]);
    assert_eq!(after.status.code(), Some(2), "{}", stdout(&after));
    assert!(
        stderr(&after).contains("no worker 'gone'"),
        "{}",
        stderr(&after)
    );

    // --all: also ended workers that are still listed; never a running one.
    let out = f.ok(&["logs", "--prune", "--all"]);
    assert_eq!(out, "Removed 1 log: ended\n");
    let out = f.ok(&["logs", "ended"]);
    assert!(out.contains("No log for ended"), "{out}");
    wait_for_text(
        &common(&f).join("sprint/logs/alive.log"),
        "hanging as told",
        20,
    );
    assert_eq!(f.ok(&["logs", "--prune", "--all"]), "No logs to remove.\n");
    f.ok(&["kill", "--all", "--force"]);
}

#[test]
fn a_new_worker_with_a_killed_ones_name_starts_a_new_log() {
    let f = Fleet::new();
    f.ok(&[
        "spawn",
        "w",
        "--prompt",
        "x",
        "--agent-command",
        "echo first run",
    ]);
    f.wait_list("the first w to exit", |r| status_of(r, "w") == "exited 0");
    f.ok(&["kill", "w"]);
    assert!(f.ok(&["logs", "w"]).contains("first run"));
    f.ok(&[
        "spawn",
        "w",
        "--prompt",
        "x",
        "--agent-command",
        "echo second run",
    ]);
    f.wait_list("the second w to exit", |r| status_of(r, "w") == "exited 0");
    let log = f.ok(&["logs", "w"]);
    assert!(
        log.contains("second run") && !log.contains("first run"),
        "{log}"
    );
}

/// An I/O failure names what was being done and the path, not "writing
/// output" (what every `io::Error` in a command used to say).
#[test]
fn start_names_the_log_directory_it_cannot_create() {
    let f = Fleet::new();
    f.repo
        .write(".git-sprint.yaml", &super::sprint::config(&scripted(), ""));
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "config"]);
    // A file where the orchestrator's log directory goes.
    f.repo.write(".git/sprint/logs", "not a directory\n");
    let start = f.run(&["start"]);
    assert_eq!(start.status.code(), Some(1), "{}", stderr(&start));
    let logs = f.repo.path().join(".git/sprint/logs");
    let err = stderr(&start);
    assert!(
        err.contains(&format!(
            "error: creating the log directory {}",
            logs.display()
        )),
        "{err}"
    );
    assert!(err.contains("caused by: File exists"), "{err}");
    assert!(!err.contains("writing output"), "{err}");
}
