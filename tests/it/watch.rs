//! The live views against a real sprint: `watch` drawn in a tmux pane on
//! the test's own server and read back with `capture-pane`, `log --follow`
//! reading commits as they land, `list` with and without `--all`, and the
//! pager `log` starts on a terminal and not when piped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::fleet::{agent, Fleet};
use super::sprint::{config, scripted, Sprint};
use super::support::BIN;

/// A tmux server of the test's own, for a terminal a view can draw on;
/// killed on drop, even when the test fails.
struct Pane<'a> {
    f: &'a Fleet,
    socket: String,
}

impl<'a> Pane<'a> {
    /// Runs `script` (sh) in a 120×40 pane in the repository; the pane
    /// stays after the script ends, so its last words can be read.
    fn start(f: &'a Fleet, script: &str) -> Pane<'a> {
        let pane = Pane {
            f,
            socket: format!("{}-view", f.socket),
        };
        let script = format!(
            "cd '{}' && {script}; exec sleep 600",
            f.repo.path().display()
        );
        pane.tmux(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "sh",
            "-c",
            &script,
        ]);
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = self.f.tmux_on(&self.socket, args);
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            super::support::stderr(&out)
        );
        super::support::stdout(&out)
    }

    /// The screen, with escape sequences (`-e`) or as plain text.
    fn screen(&self, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p"];
        if escapes {
            args.push("-e");
        }
        self.tmux(&args)
    }

    /// Reads the screen until `done` holds, for at most `secs`.
    fn wait(&self, what: &str, secs: u64, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.screen(false);
            if done(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Runs watch, then says how it exited and how the terminal was left.
const WATCH: &str = r#"'BIN' watch; echo "watch exited $?"; echo "tty: $(stty -a | tr ' ;' '\n\n' | grep -x -e icanon -e -icanon -e echo -e -echo | tr '\n' ' ')""#;

fn watch_script() -> String {
    WATCH.replace("BIN", BIN)
}

/// After watch exited: the alternate screen is off, the cursor shown, and
/// the line discipline cooked and echoing again.
fn assert_restored(pane: &Pane<'_>) {
    let screen = pane.wait("watch to exit", 30, |sc| sc.contains("tty: "));
    assert!(screen.contains("watch exited 0"), "{screen}");
    assert!(
        screen.contains("tty: icanon echo"),
        "raw mode left on: {screen}"
    );
    let alternate = pane.tmux(&["display-message", "-p", "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "0", "the alternate screen was left on");
    let cursor = pane.tmux(&["display-message", "-p", "#{cursor_flag}"]);
    assert_eq!(cursor.trim(), "1", "the cursor was left hidden");
}

impl Drop for Pane<'_> {
    fn drop(&mut self) {
        super::support::kill_tmux(&self.socket);
    }
}

#[test]
fn watch_draws_progress_agents_transitions_and_failures_live_and_q_restores_the_terminal() {
    // T001's agent waits for the test's go, so the board must show it
    // running; T002's fails, so it must show a failure highlighted.
    let gated = format!(
        r#"if [ "${{SPRINT_TASK#*/}}" = T001 ] && [ ! -e "$HOME/go" ]; then echo "waiting for go"; while [ ! -e "$HOME/go" ]; do sleep 0.1; done; fi; {}"#,
        scripted()
    );
    let s = Sprint::new(
        &config(&gated, "policy: { max_attempts: 1 }\n"),
        "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n",
    );
    let pane = Pane::start(&s.f, &watch_script());
    pane.wait("the board", 30, |sc| sc.contains("git sprint watch"));
    s.start(&[("SCRIPTED_AGENT_MODE_f_T002", "fail")]);

    let screen = pane.wait("T001's agent running with its last line", 60, |sc| {
        sc.lines().any(|l| {
            l.contains("f.T001.dev.1") && l.contains("developer") && l.contains("waiting for go")
        })
    });
    assert!(screen.contains("f  active  ["), "{screen}");
    assert!(screen.contains("f/T001: todo -> in_progress"), "{screen}");

    pane.wait("T002 failed", 60, |sc| {
        sc.contains("f/T002: in_progress -> failed")
    });
    let coloured = pane.screen(true);
    let failed = coloured
        .lines()
        .find(|l| l.contains("f/T002: in_progress -> failed"))
        .unwrap();
    // tmux re-encodes SGR 1;31 as bold, then red.
    assert!(
        failed.contains("\x1b[31m"),
        "not highlighted in red: {failed:?}"
    );

    std::fs::write(s.f.repo.home().join("go"), "").unwrap();
    let screen = pane.wait("T001 done", 90, |sc| {
        sc.contains("f/T001: in_docs -> done")
            && sc.contains("1/2 done")
            && sc.contains("Running (0)")
    });
    assert!(screen.contains("failed f/T002"), "{screen}");

    pane.tmux(&["send-keys", "q"]);
    assert_restored(&pane);
}

#[test]
fn watch_ended_by_sigterm_gives_the_terminal_back() {
    let f = Fleet::new();
    f.ok(&["add", "f", "a task"]);
    let pane = Pane::start(&f, &watch_script());
    pane.wait("the board", 30, |sc| sc.contains("0/1 done"));
    let alternate = pane.tmux(&["display-message", "-p", "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "1", "watch draws on the alternate screen");
    let shell = pane.tmux(&["display-message", "-p", "#{pane_pid}"]);
    let shell = shell.trim();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the pane's shell");
    let watch = children
        .split_whitespace()
        .next()
        .expect("watch under the pane's shell");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", watch])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_restored(&pane);
}

#[test]
fn watch_piped_prints_the_board_once() {
    let f = Fleet::new();
    f.ok(&["add", "f", "a task"]);
    let out = f.ok(&["watch"]);
    assert!(out.contains("f  planned  ["), "{out}");
    assert!(out.contains("0/1 done"), "{out}");
    assert!(!out.contains('\x1b'), "escapes in piped output: {out:?}");
    let painted = f.ok(&["--color=always", "watch"]);
    assert!(painted.contains("\x1b[1m"), "--color=always: {painted:?}");
}

/// A follower process, killed on drop; its lines arrive on a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(f: &Fleet, args: &[&str]) -> Follower {
        let mut child = f
            .cmd(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start git-sprint log --follow");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Follower { child, lines }
    }

    /// Lines until one contains `needle`, for at most 30 s.
    fn until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    seen.push(line);
                    if hit {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within 30 s; got {seen:#?}"),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn log_follow_prints_the_backlog_oldest_first_then_each_new_transition() {
    let f = Fleet::new();
    f.ok(&["add", "f", "first", "--id", "T001"]);
    f.ok(&["add", "f", "second", "--id", "T002"]);
    let follower = Follower::start(&f, &["log", "--follow", "-n", "2"]);
    let backlog = follower.until("f/T002: none -> todo");
    assert!(
        backlog.iter().any(|l| l.contains("f/T001: none -> todo")),
        "the backlog is oldest first: {backlog:#?}"
    );
    f.ok(&["move", "f/T001", "in_progress"]);
    follower.until("f/T001: todo -> in_progress");
    f.ok(&["add", "f", "third", "--id", "T003"]);
    let more = follower.until("f/T003: none -> todo");
    assert_eq!(
        more.len(),
        1,
        "each commit is printed once, in order: {more:#?}"
    );
}

#[test]
fn list_shows_live_workers_and_all_adds_the_ended() {
    let f = Fleet::new();
    let hang = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    f.ok(&[
        "spawn",
        "done1",
        "--prompt",
        "x",
        "--agent-command",
        &agent(),
    ]);
    f.ok(&["spawn", "live1", "--prompt", "x", "--agent-command", &hang]);
    f.wait_list("done1 exited, live1 running", |rows| {
        rows.iter()
            .any(|r| r["id"] == "done1" && r["status"] == "exited 0")
            && rows
                .iter()
                .any(|r| r["id"] == "live1" && r["status"] == "running")
    });
    let live = f.ok(&["list"]);
    assert!(live.contains("live1") && !live.contains("done1"), "{live}");
    let json: serde_json::Value = serde_json::from_str(&f.ok(&["list", "--json"])).unwrap();
    let ids: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["live1"]);
    let all = f.ok(&["list", "--all"]);
    assert!(all.contains("live1") && all.contains("done1"), "{all}");
    f.ok(&["kill", "live1"]);
    let none = f.ok(&["list"]);
    assert_eq!(
        none.trim(),
        "No live workers; 1 ended ('git sprint list --all' shows them)."
    );
}

#[test]
fn log_pages_through_the_pager_on_a_terminal_and_never_when_piped() {
    let f = Fleet::new();
    f.ok(&["add", "f", "a task"]);
    let pager = f.repo.home().join("pager.sh");
    std::fs::write(&pager, "#!/bin/sh\nsed 's/^/paged: /'\n").unwrap();
    let piped = f
        .cmd(BIN)
        .arg("log")
        .env("GIT_PAGER", format!("sh {}", pager.display()))
        .output()
        .unwrap();
    let piped = super::support::stdout(&piped);
    assert!(piped.contains("f/T001: none -> todo"), "{piped}");
    assert!(!piped.contains("paged: "), "paged though piped: {piped}");

    let pane = Pane::start(
        &f,
        &format!(
            "GIT_PAGER='sh {}' '{BIN}' log; echo \"log exited $?\"; '{BIN}' log --no-pager",
            pager.display()
        ),
    );
    let screen = pane.wait("the log, paged, then unpaged", 30, |sc| {
        sc.contains("log exited 0")
            && sc.lines().filter(|l| l.contains("none -> todo")).count() == 2
    });
    let lines: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains("f/T001: none -> todo"))
        .collect();
    assert!(lines[0].starts_with("paged: "), "{screen}");
    assert!(
        !lines[1].starts_with("paged: "),
        "--no-pager paged: {screen}"
    );
}
