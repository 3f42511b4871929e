//! Many machines, one sprint: clones of one remote (a bare repository
//! served by `git daemon` on 127.0.0.1) each run `git sprint start` with a
//! machine name and a tmux server of their own, as separate machines
//! would. The remote's state and branches are what the checks read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::remote::Fleet as Remote;
use crate::support::{isolate, kill_tmux, stderr, BIN};

/// One clone standing for one machine.
struct Machine {
    name: String,
    dir: PathBuf,
    socket: String,
}

/// The remote, an author's clone that committed the spec, and the machines.
struct Cluster {
    remote: Remote,
    author: PathBuf,
    machines: Vec<Machine>,
}

impl Cluster {
    /// `config` and `tasks` committed on `main` of a remote served by `git
    /// daemon`, and one clone per name in `machines` (labels after a
    /// colon: `m2:dev`).
    fn new(config: &str, tasks: &str, machines: &[&str]) -> Cluster {
        let remote = Remote::new(true);
        let author = remote.clone("author");
        std::fs::create_dir_all(author.join("specs/f")).unwrap();
        std::fs::write(author.join(".git-sprint.yaml"), config).unwrap();
        std::fs::write(author.join("specs/f/tasks.md"), tasks).unwrap();
        std::fs::write(author.join("check.sh"), crate::sprint::CHECK).unwrap();
        remote.git(&author, ["add", "-A"]);
        remote.git(&author, ["commit", "-q", "-m", "spec"]);
        remote.git(&author, ["push", "-q", "origin", "main"]);
        let machines = machines
            .iter()
            .map(|spec| {
                let (name, labels) = spec.split_once(':').unwrap_or((spec, ""));
                let dir = remote.clone(name);
                remote.git(&dir, ["config", "sprint.machine", name]);
                if !labels.is_empty() {
                    remote.git(&dir, ["config", "sprint.machine-labels", labels]);
                }
                Machine {
                    name: name.to_owned(),
                    socket: format!("gsm-{}-{name}-{}", std::process::id(), unique()),
                    dir,
                }
            })
            .collect();
        Cluster {
            remote,
            author,
            machines,
        }
    }

    fn machine(&self, name: &str) -> &Machine {
        self.machines.iter().find(|m| m.name == name).unwrap()
    }

    fn cmd(&self, m: &Machine) -> Command {
        let mut cmd = Command::new(BIN);
        isolate(&mut cmd, self.remote.home.path())
            .current_dir(&m.dir)
            .env("GIT_SPRINT_TMUX_SOCKET", &m.socket);
        cmd
    }

    fn sprint(&self, m: &str, args: &[&str]) -> Output {
        self.cmd(self.machine(m)).args(args).output().unwrap()
    }

    /// `git sprint start` on machine `m`, with `env` for its agents.
    fn start(&self, m: &str, env: &[(&str, &str)]) {
        let mut cmd = self.cmd(self.machine(m));
        cmd.arg("start");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "start on {m}: {}", stderr(&out));
    }

    fn status(&self, m: &str) -> Value {
        let out = self.sprint(m, &["status", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn tasks(&self, m: &str) -> BTreeMap<String, Value> {
        self.status(m)["features"][0]["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|t| (t["id"].as_str().unwrap().to_owned(), t))
            .collect()
    }

    /// Waits until `done` holds for the state as machine `m` sees it.
    fn wait(&self, m: &str, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let status = self.status(m);
            if done(&status) {
                return status;
            }
            if Instant::now() > deadline {
                let mut logs = String::new();
                for machine in &self.machines {
                    let log = std::fs::read_to_string(
                        machine.dir.join(".git/sprint/logs/orchestrator.log"),
                    )
                    .unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(120).collect();
                    logs.push_str(&format!(
                        "--- {} orchestrator log (newest first) ---\n{}\n",
                        machine.name,
                        tail.join("\n")
                    ));
                }
                let out = self.sprint(m, &["status"]);
                let listed = self.sprint(m, &["list", "--machines"]);
                panic!(
                    "timed out after {secs}s waiting for {what}\n{}\n{}\n{logs}",
                    crate::support::stdout(&out),
                    crate::support::stdout(&listed)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn wait_all_done(&self, m: &str, secs: u64) -> Value {
        self.wait(m, "every task merged and the feature done", secs, |s| {
            s["features"][0]["feature"]["status"] == "done"
        })
    }

    /// Merge commits per task on the remote's integration branch.
    fn merges(&self) -> BTreeMap<String, usize> {
        self.remote.git(
            &self.author,
            [
                "fetch",
                "-q",
                "origin",
                "+sprint/f/integration:refs/remotes/origin/integration",
            ],
        );
        let mut n = BTreeMap::new();
        let log = self.remote.git(
            &self.author,
            [
                "log",
                "--merges",
                "--format=%s",
                "refs/remotes/origin/integration",
            ],
        );
        for subject in log.lines() {
            if let Some(rest) = subject.strip_prefix("Merge f/") {
                *n.entry(rest.split(':').next().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
        }
        n
    }

    /// A file of the remote's integration branch.
    fn integration_file(&self, path: &str) -> String {
        self.remote.git(
            &self.author,
            ["show", &format!("refs/remotes/origin/integration:{path}")],
        )
    }

    /// Kills machine `m` as a power cut would: its orchestrator by
    /// SIGKILL, then its tmux server with every agent in it.
    fn kill_machine(&self, m: &str) {
        let machine = self.machine(m);
        let pid = git_sprint::daemon::lock::holder(&machine.dir.join(".git"))
            .unwrap_or_else(|| panic!("no orchestrator runs on {m}"));
        // SAFETY: kill(2) on a pid this test's machine started.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
        kill_tmux(&machine.socket);
    }

    /// Every agent log of machine `m`, for a failure's message.
    fn agent_logs(&self, m: &str) -> String {
        fn walk(dir: &std::path::Path, out: &mut String) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if !path.ends_with("orchestrator.log") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    out.push_str(&format!("--- {} ---\n{text}\n", path.display()));
                }
            }
        }
        let mut out = String::new();
        walk(&self.machine(m).dir.join(".git/sprint/logs"), &mut out);
        out
    }

    /// Developer agents per machine, from the whole history.
    fn developers_by_machine(status: &Value) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in status["agents"].as_array().into_iter().flatten() {
            if a["role"] == "developer" {
                out.entry(a["machine"].as_str().unwrap_or("-").to_owned())
                    .or_default()
                    .push(a["id"].as_str().unwrap().to_owned());
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &self.machines {
            kill_tmux(&m.socket);
        }
    }
}

fn unique() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Scripted agents, a review gate that needs a commit, a post-merge
/// check, and machines lost after 6 s without a beat (one every 2 s).
fn config(agent: &str, extra: &str) -> String {
    config_lost_after(agent, "6s", extra)
}

fn config_lost_after(agent: &str, lost_after: &str, extra: &str) -> String {
    format!(
        r#"agents:
  scripted:
    command: ["sh", "-c", {cmd}]
    prompt: env
roles:
  developer: {{ agent: scripted, count: 2 }}
  tester: {{ agent: scripted, count: 0 }}
timeouts:
  machine: {lost_after}
gates:
  review:
    - name: has-commits
      run: test "$(git rev-list --count sprint/f/integration..HEAD)" -gt 0
  post_merge:
    - name: check
      run: sh check.sh
{extra}"#,
        cmd = serde_json::to_string(agent).unwrap()
    )
}

fn scripted() -> String {
    format!("exec '{}'", crate::fleet::agent())
}

/// `n` independent tasks, each writing a file of its own.
fn wide(n: usize) -> String {
    let mut out = String::from("# Tasks: wide\n\n## Phase 1: Work\n\n");
    for i in 1..=n {
        out.push_str(&format!("- [ ] T{i:03} [P] Write src/t{i:03}.txt\n"));
    }
    out
}

#[test]
fn three_machines_finish_a_twenty_task_sprint_each_task_merged_once() {
    // Lost only after a minute: on a loaded machine a beat may come late,
    // and this test counts the lease's changes of hands.
    let config = config_lost_after(&scripted(), "60s", "");
    let c = Cluster::new(&config, &wide(20), &["m1", "m2", "m3"]);
    for m in ["m1", "m2", "m3"] {
        c.start(m, &[]);
    }
    let status = c.wait_all_done("m2", 300);

    let merges = c.merges();
    assert_eq!(merges.len(), 20, "{merges:?}");
    assert!(
        merges.values().all(|n| *n == 1),
        "merged more than once: {merges:?}"
    );
    for i in 1..=20 {
        let file = c.integration_file(&format!("src/t{i:03}.txt"));
        assert!(file.contains(&format!("T{i:03}")), "{file}");
    }
    // `health` shows the machines too, and no other machine's agent as a
    // lost session.
    let health = c.sprint("m1", &["health", "--json"]);
    let health: Value = serde_json::from_slice(&health.stdout).unwrap();
    let names: Vec<&str> = health["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m1", "m2", "m3"], "{health}");
    let by_machine = Cluster::developers_by_machine(&status);
    assert!(
        by_machine.keys().filter(|m| m.starts_with('m')).count() >= 2,
        "work was done on fewer than two machines: {by_machine:?}"
    );
    // One leader made every merge: the lease was taken once.
    let log = c
        .remote
        .git(&c.author, ["log", "--format=%s", "origin/main"]);
    assert!(!log.contains("heartbeat"), "{log}");
    let leads = c.sprint("m1", &["log", "--json", "-n", "500"]);
    let leads = String::from_utf8_lossy(&leads.stdout);
    assert_eq!(
        leads.matches("takes the lead").count(),
        1,
        "the lease changed hands with every machine alive"
    );
}

/// The first attempt on a machine started with `SCRIPTED_HANG` commits a
/// marker and hangs; any other run completes the task.
const HANG_ONCE: &str = r#"f="wip-${SPRINT_TASK##*/}.txt"
if [ -n "${SCRIPTED_HANG:-}" ] && [ ! -f "$f" ]; then
  echo "first attempt on $SPRINT_TASK" > "$f"
  git add -A && git commit -q -m "$SPRINT_TASK: work in progress"
  exec sleep 100000
fi
exec "$AGENT"
"#;

#[test]
fn a_machine_killed_mid_task_loses_its_tasks_to_another_with_their_work() {
    let agent = format!("AGENT='{}'\n{HANG_ONCE}", crate::fleet::agent());
    // m1 leads and runs no developer (no `dev` label): the killed m3's
    // tasks can only finish on m2.
    let config = config(&agent, "").replace(
        "developer: { agent: scripted, count: 2 }",
        "developer: { agent: scripted, count: 2, machines: [dev] }",
    );
    let c = Cluster::new(&config, &wide(4), &["m1", "m2:dev", "m3:dev"]);
    c.start("m1", &[]);
    c.wait("m1", "m1 to take the lead", 60, |s| {
        s["meta"]["leader"]["machine"].as_str() == Some("m1")
    });
    c.start("m3", &[("SCRIPTED_HANG", "1")]);
    // Both of m3's agents committed and pushed their work in progress.
    let held = c.wait("m1", "m3 to hold two tasks", 120, |s| {
        s["features"][0]["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["status"] == "in_progress")
            .count()
            == 2
    });
    let on_m3: Vec<String> = held["features"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["status"] == "in_progress")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &on_m3 {
        loop {
            let remote_branch = c.remote.git(
                &c.author,
                ["ls-remote", "origin", &format!("refs/heads/sprint/f/{id}")],
            );
            let pushed = !remote_branch.trim().is_empty() && {
                let sha = remote_branch.split_whitespace().next().unwrap().to_owned();
                c.remote.git(&c.author, ["fetch", "-q", "origin", &sha]);
                c.remote
                    .git(&c.author, ["log", "--format=%s", "-1", &sha])
                    .contains("work in progress")
            };
            if pushed {
                break;
            }
            if Instant::now() > deadline {
                let logs = c.agent_logs("m3");
                panic!("{id}'s work never reached the remote\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    c.kill_machine("m3");
    c.start("m2", &[]);
    let status = c.wait_all_done("m1", 240);

    let merges = c.merges();
    assert_eq!(merges.len(), 4, "{merges:?}");
    assert!(merges.values().all(|n| *n == 1), "{merges:?}");
    for id in &on_m3 {
        let wip = c.integration_file(&format!("wip-{id}.txt"));
        assert!(
            wip.contains("first attempt"),
            "{id}: m3's work was lost: {wip}"
        );
    }
    let tasks = c.tasks("m1");
    for id in &on_m3 {
        let history = tasks[id]["history"].as_array().unwrap();
        let lost = history
            .iter()
            .find(|h| h["cause"] == "machine_lost")
            .unwrap_or_else(|| panic!("{id}: no machine_lost attempt: {history:?}"));
        // `counted` is written only when true.
        assert_ne!(
            lost["counted"], true,
            "a lost machine is not the task's fault"
        );
    }
    // `status` shows the machines as the beats say: m3 lost, m1 leading.
    let machines: Vec<(String, String, bool)> = c.status("m1")["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["status"].as_str().unwrap().to_owned(),
                m["leader"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(
        machines.contains(&("m3".into(), "lost".into(), false))
            && machines.contains(&("m1".into(), "up".into(), true)),
        "{machines:?}"
    );
    let by_machine = Cluster::developers_by_machine(&status);
    assert!(by_machine.contains_key("m2"), "{by_machine:?}");
    assert!(
        !by_machine.contains_key("m1"),
        "m1 has no dev label: {by_machine:?}"
    );
}

#[test]
fn when_the_leader_dies_another_machine_takes_the_lease_and_the_refinery_goes_on() {
    let slow = format!("SCRIPTED_AGENT_SLEEP=1 exec '{}'", crate::fleet::agent());
    let c = Cluster::new(&config(&slow, ""), &wide(8), &["m1", "m2", "m3"]);
    c.start("m1", &[]);
    c.wait("m1", "m1 to take the lead", 60, |s| {
        s["meta"]["leader"]["machine"].as_str() == Some("m1")
    });
    c.start("m2", &[]);
    c.start("m3", &[]);
    c.wait("m2", "a first merge", 180, |s| {
        s["features"][0]["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["status"] == "done")
    });
    c.kill_machine("m1");
    let status = c.wait_all_done("m2", 300);

    let merges = c.merges();
    assert_eq!(merges.len(), 8, "{merges:?}");
    assert!(merges.values().all(|n| *n == 1), "{merges:?}");
    let leader = status["meta"]["leader"]["machine"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        leader == "m2" || leader == "m3",
        "the lease did not move off the dead leader: {leader:?}"
    );
    let log = c.sprint("m2", &["log", "-n", "500"]);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.contains(&format!("machine {leader} takes the lead")),
        "{log}"
    );
}

#[test]
fn a_machine_taken_for_lost_that_comes_back_stops_its_agents_and_keeps_their_work_aside() {
    let agent = format!("AGENT='{}'\n{HANG_ONCE}", crate::fleet::agent());
    let config = config(&agent, "").replace(
        "developer: { agent: scripted, count: 2 }",
        "developer: { agent: scripted, count: 1, machines: [dev] }",
    );
    let c = Cluster::new(&config, &wide(1), &["m1", "m2:dev", "m3:dev"]);
    c.start("m1", &[]);
    c.wait("m1", "m1 to take the lead", 60, |s| {
        s["meta"]["leader"]["machine"].as_str() == Some("m1")
    });
    c.start("m3", &[("SCRIPTED_HANG", "1")]);
    c.wait("m1", "m3 to hold the task", 120, |s| {
        s["features"][0]["tasks"][0]["status"] == "in_progress"
    });
    // m3's orchestrator freezes (a stopped VM, a long pause): no beats,
    // while its agent runs on. Its tmux server is stopped first: tmux
    // continues a pane's process that stops.
    let m3 = c.machine("m3");
    let pid = git_sprint::daemon::lock::holder(&m3.dir.join(".git")).unwrap();
    let tmux_pid: i32 = String::from_utf8_lossy(
        &Command::new("tmux")
            .args(["-L", &m3.socket, "display-message", "-p", "#{pid}"])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .expect("m3's tmux server pid");
    struct Thaw(Vec<i32>);
    impl Drop for Thaw {
        fn drop(&mut self) {
            for pid in &self.0 {
                // SAFETY: kill(2) on processes this test stopped; a stopped
                // process must not outlive the test.
                unsafe {
                    libc::kill(*pid, libc::SIGCONT);
                }
            }
        }
    }
    let thaw = Thaw(vec![pid as i32, tmux_pid]);
    for p in [tmux_pid, pid as i32] {
        // SAFETY: kill(2) on processes this test started.
        unsafe {
            libc::kill(p, libc::SIGSTOP);
        }
    }
    c.start("m2", &[]);
    c.wait_all_done("m1", 240);
    drop(thaw);
    // Back, m3 learns its task went elsewhere: its agent stops and what
    // its branch held goes to a side ref on the remote.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let side = c
            .remote
            .git(&c.author, ["ls-remote", "origin", "refs/sprint/side/*"]);
        let sessions = Command::new("tmux")
            .args(["-L", &m3.socket, "list-sessions", "-F", "#{session_name}"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let agents_left = sessions.lines().filter(|s| *s != "orchestrator").count();
        if !side.trim().is_empty() && agents_left == 0 {
            assert!(side.contains("refs/sprint/side/sprint/f/T001/"), "{side}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "m3 kept its agent or its work: side refs {side:?}, sessions {sessions:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(c.merges().get("T001"), Some(&1));
}
