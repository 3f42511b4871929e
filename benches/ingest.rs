//! tasks.md ingest and hook speed.
//!
//! - parse + plan of a generated 1,000-task tasks.md;
//! - ingest of it into state (one state commit with 1,000 task files);
//! - what the post-commit hook adds to a `git commit` that touches no tasks.md:
//!   the same commit timed with and without git-sprint's hooks installed.
//!
//! Run: `cargo bench --bench ingest`. Prints medians; asserts nothing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use git_sprint::ingest;
use git_sprint::spec;
use git_sprint::state::{Actor, Store};

fn tasks_md(n: usize) -> String {
    let mut s = String::from("# Tasks: generated\n");
    for i in 0..n {
        if i % 100 == 0 {
            s.push_str(&format!(
                "\n## Phase {}: Part {}\n\n",
                i / 100 + 1,
                i / 100 + 1
            ));
        }
        let p = if i % 3 == 0 { "" } else { "[P] " };
        s.push_str(&format!(
            "- [ ] T{:04} {p}[US{}] Implement piece {i} in src/part{}/piece{i}.rs\n",
            i + 1,
            i / 100 + 1,
            i / 100
        ));
    }
    s
}

fn main() {
    let text = tasks_md(1000);
    let plan_time = sample(20, || {
        let plan = spec::plan(&spec::parse("tasks.md", &text).unwrap()).unwrap();
        assert_eq!(plan.tasks.len(), 1000);
    });

    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| run(repo, home.path(), "git", args);
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.name", "Bench"]);
    git(&["config", "user.email", "bench@example.com"]);
    std::fs::write(repo.join("README.md"), "bench\n").unwrap();
    git(&["add", "README.md"]);
    git(&["commit", "-q", "-m", "init"]);

    // Each sample ingests the same file as a new feature: 1,000 new tasks.
    let store = Store::discover(repo).unwrap();
    let actor = Actor::named("bench");
    let blob = gix::ObjectId::empty_blob(gix::hash::Kind::Sha1);
    let mut k = 0;
    let ingest_time = sample(10, || {
        k += 1;
        let source = ingest::Source {
            feature: format!("f{k}"),
            path: format!("specs/f{k}/tasks.md"),
            blob,
            text: text.clone(),
            rev: "main".into(),
        };
        let out = ingest::ingest(&store, &actor, &source, None).unwrap();
        assert_eq!(out.added.len(), 1000);
    });

    // Hook overhead on an ordinary commit.
    let bin = env!("CARGO_BIN_EXE_git-sprint");
    let mut n = 0;
    let mut commit = || {
        n += 1;
        std::fs::write(repo.join("file.txt"), format!("{n}\n")).unwrap();
        git(&["commit", "-q", "-a", "-m", "change"]);
    };
    std::fs::write(repo.join("file.txt"), "0\n").unwrap();
    git(&["add", "file.txt"]);
    let without = sample(30, &mut commit);
    run(repo, home.path(), bin, &["init"]);
    let with = sample(30, &mut commit);

    println!("1,000-task tasks.md (median):");
    println!("  parse + plan               {:>9.2} ms", ms(plan_time));
    println!("  ingest into state          {:>9.2} ms", ms(ingest_time));
    println!("git commit touching no tasks.md (median):");
    println!("  without git-sprint hooks   {:>9.2} ms", ms(without));
    println!("  with git-sprint hooks      {:>9.2} ms", ms(with));
    println!(
        "  added by the hook          {:>9.2} ms",
        ms(with) - ms(without)
    );
}

fn run(dir: &Path, home: &Path, program: &str, args: &[&str]) {
    let out = Command::new(program)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("GIT_DIR")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sample(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
