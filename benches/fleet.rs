//! Fleet benchmark: on a generated repository of 5,000 files, the median
//! `git sprint spawn` (worktree + setup + tmux session + state record) with a
//! cold worktree pool (`git worktree add`) and a warm one (a killed worker's
//! worktree re-pointed), and `fanout 10` both ways, each against a bare
//! `git worktree add` in the same run; then `list` with 20 workers.
//! Benchmarks measure; the targets are printed beside the figures.
//!
//! Run with `cargo bench --bench fleet`.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use support::{median, ms, Env, BIN};

const FILES: usize = 5000;
const RUNS: usize = 7;

/// How long `program args` took (asserting success).
fn time(env: &Env, program: &str, args: &[&str]) -> Duration {
    let t = Instant::now();
    env.run(program, args);
    t.elapsed()
}

fn setup() -> Env {
    let env = Env::empty("fleet");
    for i in 0..FILES {
        let p = env.repo.join(format!("src/m{:02}/f{i:04}.rs", i % 50));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("pub fn f{i}() -> usize {{ {i} }}\n")).unwrap();
    }
    env.run("git", &["add", "-A"]);
    env.run("git", &["commit", "-q", "-m", "5000 files"]);
    env
}

fn main() {
    let env = setup();
    let agent = "true";
    // Warm the server and caches once.
    env.run(
        BIN,
        &["spawn", "warm", "--prompt", "x", "--agent-command", agent],
    );
    env.run(BIN, &["kill", "--all", "--force"]);

    // Cold: the pool off (`git worktree add` every time); warm: a pooled
    // worktree re-pointed. Interleaved, each after a `sync`, so all three see
    // the same disk and load.
    let pool = |n: &str| env.run("git", &["config", "sprint.worktrees.pool", n]);
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut bare = Vec::new();
    for i in 0..RUNS {
        let path = env.repo.join(format!(".git/sprint/bare{i}"));
        let p = path.display().to_string();
        env.run("sync", &[]);
        bare.push(time(
            &env,
            "git",
            &["worktree", "add", "-q", "-b", &format!("b{i}"), &p, "main"],
        ));
        env.run("git", &["worktree", "remove", "--force", &p]);
        env.run("git", &["branch", "-D", &format!("b{i}")]);

        pool("0");
        let id = format!("c{i}");
        env.run("sync", &[]);
        cold.push(time(
            &env,
            BIN,
            &["spawn", &id, "--prompt", "x", "--agent-command", agent],
        ));
        env.run(BIN, &["kill", &id, "--force"]);

        pool("12");
        if i == 0 {
            // Fill the pool with one spare.
            env.run(
                BIN,
                &["spawn", "fill", "--prompt", "x", "--agent-command", agent],
            );
            env.run(BIN, &["kill", "fill", "--force"]);
        }
        let id = format!("w{i}");
        env.run("sync", &[]);
        warm.push(time(
            &env,
            BIN,
            &["spawn", &id, "--prompt", "x", "--agent-command", agent],
        ));
        env.run(BIN, &["kill", &id, "--force"]);
    }
    let (cold, warm, bare) = (
        median(cold).unwrap(),
        median(warm).unwrap(),
        median(bare).unwrap(),
    );
    let ratio = |d: Duration| d.as_secs_f64() / bare.as_secs_f64();
    println!("median of {RUNS}, against a bare `git worktree add` in the same run:");
    println!("  bare `git worktree add`             {:7.1} ms", ms(bare));
    println!(
        "  spawn, cold pool (worktree add)     {:7.1} ms  {:.2}x",
        ms(cold),
        ratio(cold)
    );
    println!(
        "  spawn, warm pool (reused worktree)  {:7.1} ms  {:.2}x  (target <= 400 ms)",
        ms(warm),
        ratio(warm)
    );

    let fanout = |name: &str| {
        let d = time(
            &env,
            BIN,
            &[
                "fanout",
                "10",
                name,
                "--prompt",
                "x",
                "--agent-command",
                agent,
            ],
        );
        env.run(BIN, &["kill", "--batch", name, "--force"]);
        d
    };
    let mut fan_cold = Vec::new();
    let mut fan_warm = Vec::new();
    pool("12");
    fanout("fill"); // ten spares in the pool
    for i in 0..3 {
        pool("0");
        env.run("sync", &[]);
        fan_cold.push(fanout(&format!("fc{i}")));
        pool("12");
        env.run("sync", &[]);
        fan_warm.push(fanout(&format!("fw{i}")));
    }
    let (fan_cold, fan_warm) = (median(fan_cold).unwrap(), median(fan_warm).unwrap());
    println!(
        "  fanout 10, cold pool, median of 3   {:7.1} ms  {:.2}x",
        ms(fan_cold),
        ratio(fan_cold)
    );
    println!(
        "  fanout 10, warm pool, median of 3   {:7.1} ms  {:.2}x  (target <= 3000 ms)",
        ms(fan_warm),
        ratio(fan_warm)
    );

    // 20 workers that each made a commit, then exited.
    let work = "echo change > out-$SPRINT_WORKER.txt && git add -A && git commit -qm work";
    env.run(
        BIN,
        &[
            "fanout",
            "20",
            "l",
            "--prompt",
            "x",
            "--agent-command",
            work,
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = env
            .cmd(BIN)
            .args(["list", "--all", "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.matches("\"status\": \"exited 0\"").count() == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "workers did not finish: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lists: Vec<Duration> = (0..RUNS)
        .map(|_| time(&env, BIN, &["list", "--all"]))
        .collect();
    println!(
        "list with 20 exited workers, median of {RUNS}:               {:.1} ms (target <= 100 ms)",
        ms(median(lists).unwrap())
    );
    let table = env.cmd(BIN).args(["list", "--all"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    println!("{}", table.lines().take(4).collect::<Vec<_>>().join("\n"));
    let _ = Path::new(BIN);
}
