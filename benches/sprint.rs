//! The orchestrator's speed and cost:
//! - from `git commit` of a tasks.md to its first Developer running (the
//!   post-commit hook ingests, inotify wakes the orchestrator);
//! - 20 scripted agents at once: wall time and the orchestrator's CPU share;
//! - an idle orchestrator's CPU use over 10 s (it should be zero: nothing polls).
//!
//! Run with `cargo bench --bench sprint`. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use git_sprint::state::{AgentState, Snapshot, TaskStatus};

mod support;

use support::{Env, BIN};

/// An orchestrator running `developers` scripted agents (and as many
/// Testers), each sleeping `agent_sleep` first.
fn started(developers: usize, agent_sleep: &str) -> Env {
    Env::started(
        "bench",
        &format!(
            "agents:\n  scripted:\n    command: [\"sh\", \"-c\", \"sleep {agent_sleep}; exec {}\"]\n    prompt: env\nroles:\n  developer: {{ agent: scripted, count: {developers} }}\n  tester: {{ agent: scripted, count: {developers} }}\n",
            support::scripted_agent().display()
        ),
    )
}

/// Commits `tasks` as specs/<feature>/tasks.md.
fn commit_spec(env: &Env, feature: &str, tasks: &str) {
    let dir = env.repo.join("specs").join(feature);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tasks.md"), tasks).unwrap();
    env.run("git", &["add", "-A"]);
    env.run("git", &["commit", "-q", "-m", feature]);
}

/// Waits (the harness may poll; the product does not) for `done`.
fn until(env: &Env, limit: Duration, done: impl Fn(&Snapshot) -> bool) -> Duration {
    let start = Instant::now();
    while !done(&env.snapshot()) {
        assert!(start.elapsed() < limit, "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

/// CPU time (user + system) of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let (user, system) = cpu_split(pid);
    user + system
}

/// User and system CPU time of a process, in clock ticks.
fn cpu_split(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    (f[11].parse().unwrap(), f[12].parse().unwrap())
}

fn main() {
    // 1. Commit to first worker running.
    let env = started(3, "0");
    let mut samples = Vec::new();
    for i in 0..10 {
        let feature = format!("f{i}");
        let t = Instant::now();
        commit_spec(&env, &feature, "- [ ] T001 Write a.txt\n");
        let _ = until(&env, Duration::from_secs(30), |s| {
            s.agents.iter().any(|a| {
                a.task.as_deref() == Some(&format!("{feature}/T001"))
                    && matches!(a.state, AgentState::Running | AgentState::Exited)
            })
        });
        samples.push(t.elapsed());
        until(&env, Duration::from_secs(60), |s| {
            s.feature(&feature)
                .is_some_and(|f| f.tasks.iter().all(|t| t.status == TaskStatus::Done))
        });
    }
    samples.sort();
    let first_worker = samples[samples.len() / 2];

    // 2. Idle: everything done, nothing running.
    let pid = env.orchestrator_pid();
    std::thread::sleep(Duration::from_secs(1));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = cpu_ticks(pid) - before;
    // Removed only after the run measured next: on ext4 without a journal a
    // file deleted in the last minutes makes every file creation near it
    // slower (the kernel skips recently freed inodes), charged to that run.
    let earlier = env;

    // 3. Twenty agents at once, each working for 2 s.
    let env = started(20, "2");
    let pid = env.orchestrator_pid();
    let tasks: String = (1..=20)
        .map(|i| format!("- [ ] T{i:03} [P] Write f{i}.txt\n"))
        .collect();
    let before = cpu_split(pid);
    let t = Instant::now();
    commit_spec(&env, "wide", &tasks);
    let peak = std::sync::atomic::AtomicUsize::new(0);
    let health = std::sync::Mutex::new(None);
    until(&env, Duration::from_secs(300), |s| {
        let running = s
            .agents
            .iter()
            .filter(|a| a.state == AgentState::Running)
            .count();
        peak.fetch_max(running, std::sync::atomic::Ordering::Relaxed);
        let mut h = health.lock().unwrap();
        if running >= 10 && h.is_none() {
            let t = Instant::now();
            let _ = env.cmd(BIN).args(["health", "--json"]).output();
            *h = Some((t.elapsed(), running));
        }
        s.feature("wide")
            .is_some_and(|f| f.tasks.iter().all(|t| t.status == TaskStatus::Done))
    });
    let wall = t.elapsed();
    let after = cpu_split(pid);
    let (user, system) = (after.0 - before.0, after.1 - before.1);
    let ticks = user + system;
    drop(env);
    drop(earlier);
    let tick = 100.0; // USER_HZ on Linux
    println!(
        "git commit of a tasks.md -> first developer running (median of 10): {:.0} ms",
        first_worker.as_secs_f64() * 1000.0
    );
    println!(
        "idle orchestrator over 10 s: {idle} CPU ticks ({:.2} s of CPU)",
        idle as f64 / tick
    );
    if let Some((t, n)) = health.into_inner().unwrap() {
        println!(
            "git sprint health with {n} agents running: {:.0} ms",
            t.as_secs_f64() * 1000.0
        );
    }
    println!(
        "20 tasks, up to {} agents at once: {:.1} s wall, orchestrator CPU {:.2} s ({:.1}% of one core; user {:.2} s, system {:.2} s)",
        peak.into_inner(),
        wall.as_secs_f64(),
        ticks as f64 / tick,
        100.0 * ticks as f64 / tick / wall.as_secs_f64(),
        user as f64 / tick,
        system as f64 / tick
    );
}
