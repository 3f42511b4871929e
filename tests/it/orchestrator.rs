//! The orchestrator's loop itself: blocking work (a task's setup commands)
//! runs beside it, so other tasks and `stop` are never held up; and every
//! agent death it records is a real transition.

use std::process::Command;
use std::time::{Duration, Instant};

use super::sprint::{config, scripted, Sprint};

/// Kills a process the product left running (a setup command the test made
/// hang) even when the test fails.
struct KillOnDrop(Option<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn a_setup_command_that_hangs_holds_up_neither_other_tasks_nor_stop() {
    // T001's setup hangs (writing its pid first, so the test can end it);
    // every other worktree's setup is instant.
    let setup =
        r#"case "$PWD" in *f.T001) echo $$ > "$HOME/slow-setup.pid"; exec sleep 600;; esac"#;
    let s = Sprint::new(
        &config(
            &scripted(),
            &format!(
                "setup: {{ copy: [], commands: [{}], timeout: 15m }}\n",
                serde_json::to_string(setup).unwrap()
            ),
        ),
        "- [ ] T001 [P] Slow in a.txt\n- [ ] T002 [P] Quick in b.txt\n",
    );
    let mut guard = KillOnDrop(None);
    s.start(&[]);
    let pid_file = s.f.repo.home().join("slow-setup.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for T001's setup command to start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    guard.0 = Some(pid);
    s.wait("T002 done while T001's setup still runs", 120, |t| {
        t["T002"]["status"] == "done"
    });
    assert!(alive(pid), "T001's setup command still runs");
    let t001 = &s.tasks()["T001"];
    assert_eq!(t001["status"], "todo", "{t001}");
    // The loop still answers: stop ends the orchestrator.
    let lock = s.f.repo.path().join(".git/sprint/orchestrator.lock");
    let orchestrator: u32 = std::fs::read_to_string(&lock)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = s.f.ok(&["stop"]);
    assert!(out.contains("Orchestrator stopped"), "{out}");
    assert!(
        git_sprint::fleet::wait_for_exit(orchestrator, Duration::from_secs(10)),
        "the orchestrator {orchestrator} survived stop"
    );
}

/// Regression: an agent whose session could not start was marked dead in a
/// commit with no transition ("update sprint state"); every death is now
/// one path that records `<agent>: running -> dead` with its cause.
#[test]
fn update_sprint_state_commit_for_a_dead_agent_is_a_named_transition() {
    let s = Sprint::new(
        // Nothing wakes the orchestrator when a session vanishes; the
        // lease running out does.
        &config(
            &scripted(),
            "policy: { max_attempts: 1 }\ntimeouts: { lease: 2s }\n",
        ),
        "- [ ] T001 Hang in a.txt\n",
    );
    s.start(&[("SCRIPTED_AGENT_MODE_f_T001", "hang")]);
    // Its record must say `running` (the wrapper has taken over), not only
    // its session be up: a wrapper killed while the record still says
    // `starting` is a different transition.
    let developer = || -> Option<serde_json::Value> {
        s.status()["agents"]
            .as_array()?
            .iter()
            .find(|a| a["role"] == "developer" && a["state"] == "running")
            .cloned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let dev = loop {
        if let Some(dev) = developer() {
            break dev;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for the developer's record to say running"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let id = dev["id"].as_str().unwrap().to_owned();
    // A crash of the wrapper: it records nothing; its session closes.
    let runner = dev["runner_pid"].as_u64().unwrap() as u32;
    Command::new("kill")
        .args(["-9", &runner.to_string()])
        .status()
        .unwrap();
    assert!(
        git_sprint::fleet::wait_for_exit(runner, Duration::from_secs(10)),
        "wrapper {runner} survived kill -9"
    );
    let session = dev["session"].as_str().unwrap().to_owned();
    s.f.tmux(&["kill-session", "-t", &session]);
    s.wait("T001 failed after its agent died", 60, |t| {
        t["T001"]["status"] == "failed"
    });
    // Dead with a recorded cause: `crash` when the reconcile finds the
    // session gone; on a loaded machine the lease may run out first, and
    // the Witness's cause is recorded instead. Either way, a transition.
    let trail = s.transitions();
    assert!(
        trail.iter().any(|(task, from, to, why)| task == &id
            && from == "running"
            && to == "dead"
            && why.contains('[')
            && why.contains(']')),
        "{trail:?}"
    );
    let subjects = s.f.repo.git(["log", "--format=%s", "refs/ai-sprint"]);
    assert!(!subjects.contains("update sprint state"), "{subjects}");
}

#[test]
fn regression_a_failed_tmux_listing_marks_no_agent_dead() {
    // Before: a `tmux list-sessions` that failed (a fork refused on a
    // loaded machine) read as "no sessions", and every running agent was
    // recorded dead ("its tmux session is gone") and its task retried.
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 Write a.txt\n");
    let home = s.f.repo.home().to_owned();
    let (flag, failed) = (home.join("fail-listing"), home.join("listing-failed"));
    // `list-sessions` fails while the flag exists, and says so in a file.
    let path = super::support::tmux_shim(
        &home,
        "list-sessions",
        &format!(
            "    if [ -e '{}' ]; then touch '{}'; echo 'tmux: fork failed: Resource temporarily unavailable' >&2; exit 1; fi",
            flag.display(),
            failed.display()
        ),
    );
    s.start(&[("PATH", &path), ("SCRIPTED_AGENT_SLEEP", "3")]);
    s.wait("the developer running", 60, |t| {
        t["T001"]["status"] == "in_progress"
    });
    let running = |s: &Sprint| {
        s.status()["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == "f.T001.dev.1" && a["state"] == "running")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running(&s) {
        assert!(Instant::now() < deadline, "f.T001.dev.1 never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&flag, "").unwrap();
    // A ref change wakes the orchestrator: its next look fails to list.
    s.f.repo.git(["update-ref", "refs/heads/wake", "HEAD"]);
    super::support::wait_for_file(&failed, 60, "a failed tmux listing");
    std::fs::remove_file(&flag).unwrap();
    s.wait_done(120);
    let status = s.status();
    let agents = status["agents"].as_array().unwrap();
    let dev: Vec<_> = agents.iter().filter(|a| a["role"] == "developer").collect();
    assert_eq!(dev.len(), 1, "one developer run, no retry: {agents:#?}");
    assert!(dev[0]["cause"].is_null(), "{:#}", dev[0]);
    let log =
        std::fs::read_to_string(s.f.repo.path().join(".git/sprint/logs/orchestrator.log")).unwrap();
    assert!(log.contains("listing tmux sessions failed"), "{log}");
}

#[test]
fn regression_a_read_command_between_a_developers_claim_and_its_session_recorded_it_dead() {
    // The orchestrator records a developer `starting`, then makes its tmux
    // session. `git sprint logs` (and list, show: every fleet read) looked
    // in between, found no session and no wrapper, and recorded the agent
    // dead ("tmux session gone"); CI saw its log vanish mid-test.
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 Write a.txt\n");
    let home = s.f.repo.home().to_owned();
    let (entered, go) = (
        home.join("dev-session-entered"),
        home.join("dev-session-go"),
    );
    // The developer's `new-session` waits (at most a minute) for a go file;
    // the orchestrator's own session does not.
    let path = super::support::tmux_shim(
        &home,
        "new-session",
        &format!(
            "    case \"$*\" in *T001*dev*) touch '{}'; i=0\n      while [ ! -e '{}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;; esac",
            entered.display(),
            go.display()
        ),
    );
    let go_guard = super::support::GoOnDrop(go.clone());
    s.start(&[("PATH", &path)]);
    super::support::wait_for_file(&entered, 60, "the developer's tmux new-session");
    let logs = s.f.run(&["logs", "f.T001.dev.1"]);
    assert!(logs.status.success(), "{}", super::support::stderr(&logs));
    s.f.ok(&["list"]);
    let dev = s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "f.T001.dev.1")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    assert_eq!(dev["state"], "starting", "{dev:#}");
    drop(go_guard);
    s.wait_done(60);
    assert_eq!(s.tasks()["T001"]["attempts"], 1);
    let trail = s.f.repo.git(["log", "--format=%s", "refs/ai-sprint"]);
    assert!(!trail.contains("tmux session gone"), "{trail}");
}
