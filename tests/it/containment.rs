//! Containment of hostile agents (DESIGN.md "Trust model"): scripted agents
//! that write the shared `.git/config` and hooks, commit the sprint's own
//! configuration, or fork `setsid` processes meant to outlive them; and a
//! gate whose `setsid` child outlives an orchestrator killed with `kill -9`.
//! Each runs a real sprint or fleet worker in its own repository and tmux
//! server. Processes are found by a `sleep` duration no other test uses and
//! killed on drop whatever happens.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::{agent, Fleet};
use super::sprint::{config, scripted, Sprint};

/// A `sleep` argument unique to one test run, and a guard that kills every
/// process sleeping on it when dropped.
struct Marker(String);

impl Marker {
    fn new() -> Marker {
        static N: AtomicUsize = AtomicUsize::new(0);
        Marker(format!(
            "{}.{}{:03}",
            4000 + std::process::id() % 5000,
            std::process::id() % 977,
            N.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// Shell that starts `sleep <marker>` in a new session, detached from
    /// the caller's output, so only a kill by mark or ancestry reaches it.
    fn setsid_sleep(&self) -> String {
        format!("setsid sleep {} </dev/null >/dev/null 2>&1 &", self.0)
    }

    /// Running processes whose command line is `sleep <marker>`.
    fn pids(&self) -> Vec<u32> {
        let want = format!("sleep\0{}\0", self.0);
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
                continue;
            };
            let running = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
                })
                .unwrap_or(false);
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if running && cmdline == want.as_bytes() {
                out.push(pid);
            }
        }
        out
    }

    fn wait(&self, what: &str, secs: u64, done: impl Fn(&[u32]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let pids = self.pids();
            if done(&pids) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs}s waiting for {what} (sleep {}: {pids:?})",
                self.0
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}

/// Whether this kernel confines agents, from `health --json`; prints why a
/// test is skipped when it does not.
fn landlock(f: &Fleet, test: &str) -> bool {
    let out = f.run(&["health", "--json"]);
    let health: Value = serde_json::from_slice(&out.stdout).expect("health --json");
    let sandbox = health["sandbox"].as_str().unwrap_or("").to_owned();
    if sandbox.starts_with("landlock") {
        return true;
    }
    eprintln!("SKIPPED {test}: no Landlock on this kernel ({sandbox})");
    false
}

fn agent_record(s: &Sprint, id: &str) -> Value {
    s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits until agent `id` has ended and returns its record.
fn ended(s: &Sprint, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = agent_record(s, id);
        if matches!(a["state"].as_str(), Some("exited" | "killed" | "dead")) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {id} to end: {a:#}\n{}",
            s.f.ok(&["log", "-n", "20"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_of(s: &Sprint, id: &str) -> String {
    std::fs::read_to_string(s.f.repo.path().join(format!(".git/sprint/logs/{id}.log")))
        .unwrap_or_default()
}

/// What a hostile agent does before the scripted agent's honest work:
/// git runs `core.fsmonitor` for everyone's `git status`, and the
/// post-commit hook on everyone's commits. Only T001's agent does: without the sandbox, agents running at once
/// would see each other's changes as the state they started from.
const PLANT: &str = r#"if [ "$SPRINT_TASK" = f/T001 ]; then git config core.fsmonitor 'touch pwned; true'; printf '#!/bin/sh\ntouch pwned\n' > "$(git rev-parse --git-common-dir)/hooks/post-commit"; fi; "#;

/// Two tasks, the second of which hangs (see [`HANG_T002`]): the feature
/// stays open, so its agents' logs are kept while the test reads them.
const TWO: &str = "- [ ] T001 [P] Write src/a.txt\n- [ ] T002 [P] Wait in src/b.txt\n";
const HANG_T002: (&str, &str) = ("SCRIPTED_AGENT_MODE_f_T002", "hang");

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn the_sandbox_refuses_writes_to_the_shared_config_and_hooks_and_the_sprint_goes_on() {
    let agent_cmd = format!("{PLANT}{}", scripted());
    let s = Sprint::new(&config(&agent_cmd, ""), TWO);
    if !landlock(&s.f, "the_sandbox_refuses_writes") {
        return;
    }
    let git_dir = s.f.repo.path().join(".git");
    s.f.ok(&["init"]);
    let config_before = read(&git_dir.join("config"));
    s.start(&[HANG_T002]);
    s.wait("T001 merged", 60, |t| t["T001"]["status"] == "done");

    let log = log_of(&s, "f.T001.dev.1");
    assert!(log.contains("sandbox: Landlock ABI"), "{log}");
    assert!(
        log.contains("could not lock config file"),
        "git config was refused: {log}"
    );
    assert!(
        log.contains("hooks/post-commit: Permission denied"),
        "the hook write was refused: {log}"
    );
    assert_eq!(read(&git_dir.join("config")), config_before);
    assert!(read(&git_dir.join("hooks/post-commit")).contains("git-sprint"));
    let dev = agent_record(&s, "f.T001.dev.1");
    assert!(dev["cause"].is_null(), "nothing to undo: {dev:#}");
    // The honest part of the work was merged.
    let merged = s.f.repo.git(["show", "sprint/f/integration:src/a.txt"]);
    assert!(merged.contains("T001"), "{merged}");
    s.f.ok(&["stop", "--all"]);
}

#[test]
fn a_gate_runs_the_agents_code_in_the_agents_sandbox() {
    // The review gate stands for the agent's own test suite, which the gate
    // runs: it plants an fsmonitor and writes into the main worktree, then
    // writes inside its worktree and passes. Before, gates ran unconfined.
    let main = "$(dirname \"$(git rev-parse --git-common-dir)\")";
    // It fails only when a hostile write gets through, so a pass shows the
    // refusals; writing its own worktree must still work.
    let gate = format!(
        "if git config core.fsmonitor 'touch pwned; true'; then exit 1; fi; if echo x > \"{main}/pwned-by-gate\"; then exit 1; fi; echo ok > gate-was-here.txt"
    );
    let cfg = with_hostile_gate(
        &config(&scripted(), ""),
        "review",
        "    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        &gate,
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/a.txt\n");
    if !landlock(&s.f, "a_gate_runs_the_agents_code_in_the_agents_sandbox") {
        return;
    }
    let git_dir = s.f.repo.path().join(".git");
    s.f.ok(&["init"]);
    let config_before = read(&git_dir.join("config"));
    s.start(&[]);
    s.wait("T001 merged", 60, |t| t["T001"]["status"] == "done");
    let t = &s.tasks()["T001"];
    assert_eq!(t["attempts"], 1, "the gate passed the first time: {t:#}");
    assert_eq!(read(&git_dir.join("config")), config_before);
    assert!(!s.f.repo.path().join("pwned-by-gate").exists());
    s.f.ok(&["stop", "--all"]);
}

/// `cfg` with the gates of `stage` (configured as `old`) replaced by one
/// gate, `hostile`, running `run`.
fn with_hostile_gate(cfg: &str, stage: &str, old: &str, run: &str) -> String {
    let out = cfg.replace(
        &format!("  {stage}:\n{old}"),
        &format!(
            "  {stage}:\n    - name: hostile\n      run: {}\n",
            serde_json::to_string(run).unwrap()
        ),
    );
    assert!(out.contains("hostile"), "{cfg}");
    out
}

#[test]
fn git_sprint_sync_runs_the_post_merge_gates_in_the_agents_sandbox() {
    // Regression: gate confinement was a setting of the orchestrator's
    // process, so the post-merge gates `git sprint sync` runs (the agents'
    // merged code, with no orchestrator) ran unconfined. This gate fails
    // only when its write into the main worktree gets through.
    let main = "$(dirname \"$(git rev-parse --git-common-dir)\")";
    let gate = format!("if echo x > \"{main}/pwned-by-gate\"; then exit 1; fi");
    // The developer waits for a marker, so the feature stays open.
    let held = format!(
        "while [ ! -e \"$(git rev-parse --git-common-dir)/go\" ]; do sleep 0.1; done; {}",
        scripted()
    );
    let cfg = with_hostile_gate(
        &config(&held, ""),
        "post_merge",
        "    - name: check\n      run: sh check.sh\n",
        &gate,
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/a.txt\n");
    if !landlock(
        &s.f,
        "git_sprint_sync_runs_the_post_merge_gates_in_the_agents_sandbox",
    ) {
        return;
    }
    s.start(&[]);
    s.wait("T001 started", 60, |t| t["T001"]["status"] == "in_progress");
    s.f.ok(&["stop"]);
    // The base moves while no orchestrator runs: `sync` brings it in.
    s.f.repo.write("base.txt", "from main\n");
    s.f.repo.git(["add", "base.txt"]);
    s.f.repo.git(["commit", "-qm", "work on main"]);
    let out = s.f.ok(&["sync", "f"]);
    assert!(out.contains("f: merged the base"), "{out}");
    assert!(!s.f.repo.path().join("pwned-by-gate").exists());
    s.f.ok(&["stop", "--all"]);
}

#[test]
fn without_the_sandbox_a_planted_fsmonitor_and_hook_are_reverted_and_the_run_is_a_policy_failure() {
    let agent_cmd = format!("{PLANT}{}", scripted());
    let s = Sprint::new(&config(&agent_cmd, "sandbox: off\n"), TWO);
    let git_dir = s.f.repo.path().join(".git");
    // init installs the hooks; what they are before any agent runs:
    s.f.ok(&["init"]);
    let config_before = read(&git_dir.join("config"));
    let hook_before = read(&git_dir.join("hooks/post-commit"));
    assert!(hook_before.contains("git-sprint"), "{hook_before}");
    let out =
        s.f.cmd(super::support::BIN)
            .arg("start")
            .env(HANG_T002.0, HANG_T002.1)
            .output()
            .unwrap();
    assert!(out.status.success(), "{}", super::support::stderr(&out));
    let said = super::support::stdout(&out);
    let lines: Vec<&str> = said.lines().filter(|l| l.contains("sandbox")).collect();
    assert_eq!(lines.len(), 1, "one line: {said}");
    assert!(lines[0].starts_with("sandbox: off"), "{said}");
    let health = super::support::stdout(&s.f.run(&["health"]));
    assert!(health.contains("sandbox: off"), "{health}");
    let dev = ended(&s, "f.T001.dev.1");

    assert_eq!(dev["cause"], "policy", "{dev:#}");
    let error = dev["error"].as_str().unwrap_or("");
    assert!(
        error.contains(".git/config changed (reverted)")
            && error.contains("hooks/post-commit changed (reverted)"),
        "{error}"
    );
    let log = log_of(&s, "f.T001.dev.1");
    assert!(log.contains("sandbox: off"), "{log}");
    assert!(log.contains("policy: the agent's run left"), "{log}");
    assert_eq!(read(&git_dir.join("config")), config_before);
    assert!(!read(&git_dir.join("config")).contains("fsmonitor"));
    assert_eq!(read(&git_dir.join("hooks/post-commit")), hook_before);
    // The audit trail says which rule the run broke.
    let trail = s.f.repo.git(["log", "--format=%B", "refs/ai-sprint"]);
    assert!(
        trail.contains("Sprint-Policy: the agent's run left"),
        "{trail}"
    );
    // The user's next git status runs nothing the agent planted.
    s.f.repo.git(["status"]);
    assert!(!s.f.repo.path().join("pwned").exists());
    s.f.ok(&["stop", "--all"]);
}

#[test]
fn an_agent_that_commits_the_sprint_config_unasked_fails_with_cause_policy() {
    let agent_cmd = format!(
        "if [ \"$SPRINT_TASK\" = f/T001 ]; then echo '# tuned by the agent' >> .git-sprint.yaml; fi; {}",
        scripted()
    );
    let tasks = "- [ ] T001 [P] Write src/a.txt\n- [ ] T002 [P] Tune .git-sprint.yaml\n";
    let s = Sprint::new(&config(&agent_cmd, ""), tasks);
    s.start(&[]);
    let hostile = ended(&s, "f.T001.dev.1");
    assert_eq!(hostile["cause"], "policy", "{hostile:#}");
    let error = hostile["error"].as_str().unwrap_or("");
    assert!(
        error.contains(".git-sprint.yaml") && error.contains("does not name"),
        "{error}"
    );
    // A task that names the file may change it.
    let named = ended(&s, "f.T002.dev.1");
    assert!(named["cause"].is_null(), "{named:#}");
    s.f.ok(&["stop", "--all"]);
}

#[test]
fn a_setsid_process_an_agent_started_dies_when_the_agent_ends() {
    let f = Fleet::new();
    let m = Marker::new();
    let cmd = format!("{} exec {}", m.setsid_sleep(), agent());
    f.ok(&[
        "spawn",
        "w1",
        "--prompt",
        "add a file",
        "--agent-command",
        &cmd,
    ]);
    f.wait_list("w1 to exit", |rows| {
        rows.iter()
            .any(|r| r["id"] == "w1" && r["status"] == "exited 0")
    });
    // The wrapper kills the agent's leftovers before it records the end.
    assert!(m.pids().is_empty(), "sleep {} outlived its agent", m.0);
    // At least the sleep; under load a child still on its way out (say, a
    // git the agent ran) may be counted with it.
    let log = f.ok(&["logs", "w1"]);
    assert!(
        log.contains("killed 1 process the agent left running")
            || log.contains("processes the agent left running"),
        "{log}"
    );
}

#[test]
fn git_sprint_kill_leaves_no_process_of_the_agent_behind() {
    let f = Fleet::new();
    let m = Marker::new();
    let cmd = format!(
        "{} SCRIPTED_AGENT_MODE=hang exec {}",
        m.setsid_sleep(),
        agent()
    );
    f.ok(&["spawn", "w1", "--prompt", "hang", "--agent-command", &cmd]);
    m.wait("the agent's setsid sleep to start", 20, |p| p.len() == 1);
    f.ok(&["kill", "w1", "--force"]);
    assert!(
        m.pids().is_empty(),
        "sleep {} outlived git sprint kill",
        m.0
    );
}

#[test]
fn stop_all_leaves_no_process_of_the_agents_behind() {
    let m = Marker::new();
    let agent_cmd = format!(
        "{} SCRIPTED_AGENT_MODE=hang {}",
        m.setsid_sleep(),
        scripted()
    );
    let s = Sprint::new(&config(&agent_cmd, ""), "- [ ] T001 Write src/a.txt\n");
    s.start(&[]);
    m.wait("the agent's setsid sleep to start", 30, |p| p.len() == 1);
    let out = s.f.ok(&["stop", "--all"]);
    assert!(out.contains("Stopped 1 agent"), "{out}");
    assert!(m.pids().is_empty(), "sleep {} outlived stop --all", m.0);
}

#[test]
fn a_gate_process_orphaned_by_a_killed_orchestrator_is_killed_at_the_next_start() {
    let m = Marker::new();
    // The first run of the gate leaves a setsid sleep and blocks; later
    // runs pass at once.
    // Gates run in the agents' sandbox: the marker's directory is granted.
    let marks = tempfile::tempdir().unwrap();
    let gate = format!(
        "o=\"{}/gate-ran\"; if [ ! -e \"$o\" ]; then touch \"$o\"; {} sleep 600; fi; true",
        marks.path().display(),
        m.setsid_sleep()
    );
    let writable = format!("sandbox: {{ writable: ['{}'] }}\n", marks.path().display());
    let cfg = config(&scripted(), &writable).replace(
        "run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0",
        &format!("run: {}", serde_json::to_string(&gate).unwrap()),
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/a.txt\n");
    s.start(&[]);
    m.wait("the gate's setsid sleep to start", 60, |p| p.len() == 1);
    let health: Value = serde_json::from_slice(&s.f.run(&["health", "--json"]).stdout).unwrap();
    let pid = health["orchestrator"].as_u64().expect("orchestrator pid");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < gone, "orchestrator {pid} survived kill -9");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Nothing killed the gate's child with the orchestrator...
    assert_eq!(m.pids().len(), 1, "the leftover is there to be found");
    // ...until the next start.
    s.start(&[]);
    m.wait("the next start to kill the leftover", 20, |p| p.is_empty());
    s.wait_done(60);
}
