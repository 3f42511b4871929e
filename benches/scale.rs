//! Flat overhead: a 1,000-task sprint with scripted agents, measuring what
//! the tool adds per task and what `git sprint status` costs near task 100
//! and near task 1,000. With finished agents archived out of the live state
//! and snapshot reads reusing unchanged subtrees, the late figures should
//! stay within 1.5x of the early ones.
//!
//! Configured for speed, so the tool is what is measured: the scripted agent
//! with no sleep, 4 developers, no Tester and no Librarian (count 0), no
//! gates, no sandbox; every task `[P]` and writing its own file, so merges
//! never conflict. `SCALE_TASKS=<n>` runs a smaller sprint.
//!
//! Run: `cargo bench --bench scale`. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use git_sprint::state::{Snapshot, Store, TaskStatus};

mod support;

use support::{Env, BIN};

/// An orchestrator running four scripted Developers with no sleep, and no
/// Tester, Librarian or sandbox.
fn started() -> Env {
    Env::started(
        "scale",
        &format!(
            "agents:\n  scripted:\n    command: [\"{}\"]\n    prompt: env\nroles:\n  developer: {{ agent: scripted, count: 4 }}\n  tester: {{ agent: scripted, count: 0 }}\n  librarian: {{ agent: scripted, count: 0 }}\nsandbox: {{ enabled: false }}\n",
            support::scripted_agent().display()
        ),
    )
}

trait Scale {
    fn progress(&self, store: &Store) -> (usize, usize);
    fn status_time(&self, n: usize) -> Duration;
}

impl Scale for Env {
    /// Tasks done, and agents in the live state.
    fn progress(&self, store: &Store) -> (usize, usize) {
        let s = store.read(Snapshot::read).unwrap();
        let done = s
            .features
            .iter()
            .flat_map(|f| &f.tasks)
            .filter(|t| t.status == TaskStatus::Done)
            .count();
        (done, s.agents.len())
    }

    /// Median wall time of `git sprint status` over `n` runs.
    fn status_time(&self, n: usize) -> Duration {
        let mut times: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                self.run(BIN, &["status"]);
                t.elapsed()
            })
            .collect();
        times.sort();
        times[n / 2]
    }
}

fn main() {
    let tasks: usize = std::env::var("SCALE_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let early = (tasks / 10).max(1);
    let late = tasks - tasks / 20;
    let env = started();
    let store = Store::discover(&env.repo).unwrap();
    let spec: String = (1..=tasks)
        .map(|i| format!("- [ ] T{i:04} [P] Write out/f{i}.txt\n"))
        .collect();
    let dir = env.repo.join("specs/scale");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tasks.md"), spec).unwrap();
    let start = Instant::now();
    env.run("git", &["add", "-A"]);
    env.run("git", &["commit", "-q", "-m", "scale"]);

    // The harness polls (the product does not): when each task count was
    // first seen done, and `status` timed at the two marks.
    let mut seen: Vec<(usize, Duration)> = Vec::new();
    let mut status_early = None;
    let mut status_late = None;
    let limit = Duration::from_secs(60 * 60);
    loop {
        let (done, live) = env.progress(&store);
        if seen.last().is_none_or(|&(d, _)| d < done) {
            seen.push((done, start.elapsed()));
        }
        if done >= early && status_early.is_none() {
            status_early = Some((done, live, env.status_time(5)));
        }
        if done >= late && status_late.is_none() {
            status_late = Some((done, live, env.status_time(5)));
        }
        if done == tasks {
            break;
        }
        assert!(
            start.elapsed() < limit,
            "{done} of {tasks} tasks done after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let wall = start.elapsed();

    // Per-task overhead in a window: wall time per task finished there
    // (the agent itself does next to nothing, so this is the tool).
    let at = |n: usize| {
        seen.iter()
            .find(|&&(d, _)| d >= n)
            .map(|&(_, t)| t)
            .unwrap()
    };
    let window = (tasks / 10).max(2);
    let per_task = |from: usize| {
        let to = (from + window).min(tasks);
        (at(to) - at(from)).as_secs_f64() * 1000.0 / (to - from) as f64
    };
    let early_task = per_task(early.saturating_sub(window / 2).max(1));
    let late_task = per_task(tasks - window);
    let (d1, l1, s1) = status_early.unwrap();
    let (d2, l2, s2) = status_late.unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{tasks} tasks, 4 developers, no tester/librarian/gates: {wall:.1?} wall");
    println!(
        "per-task overhead near task {early}: {early_task:.0} ms   near task {tasks}: {late_task:.0} ms   ratio {:.2}",
        late_task / early_task
    );
    println!(
        "git sprint status at {d1} done ({l1} live agents): {:.1} ms   at {d2} done ({l2} live agents): {:.1} ms   ratio {:.2} (target <= 1.5)",
        ms(s1),
        ms(s2),
        ms(s2) / ms(s1)
    );
}
