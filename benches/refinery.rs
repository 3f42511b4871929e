//! Refinery throughput: 30 ready task branches merged one at a time into the
//! integration branch behind a trivial post-merge gate (`true`), with the
//! time spent waiting on git split from the rest; and the demo's wall time.
//!
//! Run with `cargo bench --bench refinery`. Prints figures; asserts nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use git_sprint::gates::{Gate, Runner};
use git_sprint::refinery::{self, Merge, Verdict};

const TASKS: usize = 30;

fn git(dir: &Path, home: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .env_remove("GIT_DIR")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    // The Refinery's git inherits this process's environment.
    std::env::set_var("HOME", &home);
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    git(&repo, &home, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "bench\n").unwrap();
    git(&repo, &home, &["add", "-A"]);
    git(&repo, &home, &["commit", "-q", "-m", "init"]);
    git(&repo, &home, &["branch", "sprint/f/integration"]);
    for i in 0..TASKS {
        git(
            &repo,
            &home,
            &[
                "switch",
                "-q",
                "-c",
                &format!("sprint/f/T{i:03}"),
                "sprint/f/integration",
            ],
        );
        std::fs::write(repo.join(format!("t{i}.txt")), format!("{i}\n")).unwrap();
        git(&repo, &home, &["add", "-A"]);
        git(&repo, &home, &["commit", "-q", "-m", &format!("T{i:03}")]);
        git(&repo, &home, &["switch", "-q", "main"]);
    }
    let gate: Gate = serde_yaml::from_str("name: trivial\nrun: 'true'").unwrap();
    let post_merge = vec![gate];
    let common = repo.join(".git");
    let git_before = refinery::git_time();
    let start = Instant::now();
    for i in 0..TASKS {
        let branch = format!("sprint/f/T{i:03}");
        let task = format!("f/T{i:03}");
        let v = refinery::merge(&Merge {
            common_dir: &common,
            root: &repo,
            task: &task,
            title: "bench",
            task_branch: &branch,
            task_worktree: &repo.join("none"),
            integration: "sprint/f/integration",
            security: &[],
            post_merge: &post_merge,
            gates: &Runner::default(),
        })
        .unwrap();
        assert!(matches!(v, Verdict::Merged { .. }), "{v:?}");
    }
    let total = start.elapsed();
    let in_git = refinery::git_time() - git_before;
    let per = total / TASKS as u32;
    println!(
        "Refinery: {TASKS} merges in {:.2} s: {:.0} merges/min, {:.0} ms each",
        total.as_secs_f64(),
        60.0 / per.as_secs_f64(),
        per.as_secs_f64() * 1000.0
    );
    println!(
        "  waiting on git {:.2} s ({:.0}%), gates and the tool {:.2} s",
        in_git.as_secs_f64(),
        100.0 * in_git.as_secs_f64() / total.as_secs_f64(),
        (total - in_git).as_secs_f64()
    );

    // The demo, end to end.
    let bin = env!("CARGO_BIN_EXE_git-sprint");
    let mut runs: Vec<Duration> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(bin)
                .arg("demo")
                .current_dir(tmp.path())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            t.elapsed()
        })
        .collect();
    runs.sort();
    println!(
        "git sprint demo (11 tasks, median of 3): {:.1} s wall",
        runs[1].as_secs_f64()
    );
}
