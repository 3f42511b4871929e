//! `git sprint demo`: the whole sprint, end to end, as a new user first sees it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{isolate, BIN};

fn run_in(dir: &Path, home: &Path, program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(program);
    isolate(&mut cmd, home).current_dir(dir).args(args);
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{program} {args:?} failed in {}:\n{}{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn demo_runs_the_whole_sprint_merges_each_task_once_and_leaves_no_tmux_server() {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let socket = format!("gs-demo-test-{}", std::process::id());

    let mut cmd = Command::new(BIN);
    isolate(&mut cmd, home.path())
        .env("GIT_SPRINT_TMUX_SOCKET", &socket)
        .current_dir(tmp.path())
        .args(["demo", "--keep", "demo", "--timeout", "100s"]);
    let out = super::support::output_within(&mut cmd, "git sprint demo", Duration::from_secs(150));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("001-notes is done"), "{stdout}");
    assert!(stdout.contains("T005   in_review -> in_tests"), "{stdout}");

    // No tmux server is left on the socket.
    let mut tmux = Command::new("tmux");
    isolate(&mut tmux, home.path()).args(["-L", &socket, "list-sessions"]);
    let _cleanup = SocketFile(&socket);
    let listed = tmux.output().expect("run tmux");
    assert!(
        !listed.status.success(),
        "tmux server left running: {}",
        String::from_utf8_lossy(&listed.stdout)
    );

    // Every task done.
    let status: Value =
        serde_json::from_str(&run_in(&dir, home.path(), BIN, &["status", "--json"])).unwrap();
    let feature = &status["features"][0];
    assert_eq!(feature["feature"]["status"], "done");
    let tasks: Vec<&str> = feature["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["status"], "done", "{t}");
            t["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(tasks.len(), 11);

    // Each task merged exactly once into the integration branch.
    let integration = "sprint/001-notes/integration";
    let merges = run_in(
        &dir,
        home.path(),
        "git",
        &["log", "--merges", "--format=%s", integration],
    );
    for task in &tasks {
        let prefix = format!("Merge 001-notes/{task}: ");
        let n = merges.lines().filter(|l| l.starts_with(&prefix)).count();
        assert_eq!(n, 1, "{task} merged {n} times:\n{merges}");
    }

    // check.sh passes on every commit the integration branch ever pointed at.
    let commits = run_in(
        &dir,
        home.path(),
        "git",
        &["rev-list", "--first-parent", integration],
    );
    let check = tmp.path().join("check");
    let check_s = check.to_str().unwrap();
    run_in(
        &dir,
        home.path(),
        "git",
        &[
            "worktree",
            "add",
            "--quiet",
            "--detach",
            check_s,
            integration,
        ],
    );
    assert!(commits.lines().count() >= 12, "{commits}");
    for commit in commits.lines() {
        run_in(
            &check,
            home.path(),
            "git",
            &["checkout", "--quiet", "--detach", commit],
        );
        run_in(&check, home.path(), "sh", &["check.sh"]);
    }
}

#[test]
fn demo_refuses_a_directory_that_is_not_empty() {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), "mine\n").unwrap();
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd, home.path())
        .env(
            "GIT_SPRINT_TMUX_SOCKET",
            format!("gs-demo-refuse-{}", std::process::id()),
        )
        .args(["demo", "--keep"])
        .arg(tmp.path());
    let out = cmd.output().expect("run git sprint demo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "the demo wrote into a directory it refused");
}

#[test]
fn demo_with_a_failing_agent_exits_1_names_the_task_and_stops_its_tmux_server() {
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let socket = format!("gs-demo-fail-{}", std::process::id());
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd, home.path())
        .env("GIT_SPRINT_TMUX_SOCKET", &socket)
        // The scripted agent fails every attempt at T003, through the tmux
        // server's environment, which the demo's process starts.
        .env("SCRIPTED_AGENT_MODE_001_notes_T003", "fail")
        .current_dir(tmp.path())
        .args(["demo", "--keep", "demo", "--timeout", "100s"]);
    let out = cmd.output().expect("run git sprint demo");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("task T003 failed"), "{stderr}");
    assert!(stdout.contains("failing as told"), "{stdout}");
    assert!(!stdout.contains("001-notes is done"), "{stdout}");
    let mut tmux = Command::new("tmux");
    isolate(&mut tmux, home.path()).args(["-L", &socket, "list-sessions"]);
    let _cleanup = SocketFile(&socket);
    assert!(!tmux.output().expect("run tmux").status.success());
}

/// Removes the demo's tmux socket file at the end of the test.
struct SocketFile<'a>(&'a str);

impl Drop for SocketFile<'_> {
    fn drop(&mut self) {
        super::support::kill_tmux(self.0);
    }
}

/// The demo's process group, killed (with its tmux server) if the test
/// fails before the demo ends.
struct Group {
    child: std::process::Child,
    socket: String,
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: a signal to a process group this test made.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
        super::support::kill_tmux(&self.socket);
    }
}

#[test]
fn demo_serve_shows_the_sprint_on_the_board_and_ends_on_ctrl_c() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let home = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let socket = format!("gs-demo-serve-{}", std::process::id());
    let mut cmd = Command::new(BIN);
    isolate(&mut cmd, home.path())
        .env("GIT_SPRINT_TMUX_SOCKET", &socket)
        // xdg-open runs $BROWSER where there is no desktop: nothing opens.
        .env("BROWSER", "true")
        .current_dir(tmp.path())
        .args(["demo", "--serve=127.0.0.1:0", "--timeout", "100s"])
        .stdout(std::process::Stdio::piped())
        .process_group(0);
    let mut group = Group {
        child: cmd.spawn().expect("start the demo"),
        socket: socket.clone(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let out = group.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut until = |what: &str, prefix: &str| -> String {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(150))
                .unwrap_or_else(|_| {
                    panic!("no line starting {prefix:?} ({what}); the demo printed:\n{seen}")
                });
            seen.push_str(&line);
            seen.push('\n');
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    };
    let repo = until("the demo's repository", "Demo repository: ");
    let url = until("the board's address", "The board: http://");
    let addr = url.split('/').next().unwrap().to_owned();
    let status = super::board::request(&addr, "GET", "/api/v1/status", &[], "");
    assert_eq!(status.status, 200, "{}", status.body);
    until(
        "the sprint to end with the board up",
        "The board stays up at",
    );

    // The finished sprint, on the board.
    let status = super::board::request(&addr, "GET", "/api/v1/status", &[], "");
    let v: Value = serde_json::from_str(&status.body).unwrap();
    assert_eq!(v["features"][0]["feature"]["status"], "done", "{v:#}");

    // Ctrl-C: the board stops and the demo cleans up after itself.
    // SAFETY: a signal to the process group this test made.
    unsafe {
        libc::kill(-(group.child.id() as i32), libc::SIGINT);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Some(code) = group.child.try_wait().unwrap() {
            break code;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo did not end on Ctrl-C:\n{seen}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(code.success(), "{code}:\n{seen}");
    assert!(!Path::new(&repo).exists(), "the demo left {repo}:\n{seen}");
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "the board still listens"
    );
}
