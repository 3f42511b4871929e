//! State-store speed: one transition in-process, as a `git sprint move`
//! process, and as the plumbing a shell script would run, all on the same
//! 100 features × 100 tasks state in the same run.
//!
//! Run: `cargo bench --bench state`. Prints medians and ratios; asserts
//! nothing (shared machines are noisy: compare ratios, not seconds).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use git_sprint::state::ops::{self, NewTask, TaskRef};
use git_sprint::state::{Actor, Store, TaskStatus};

const FEATURES: usize = 100;
const TASKS: usize = 100;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let repo = dir.path();
    let git = |args: &[&str]| {
        let out = env(Command::new("git"), home.path())
            .current_dir(repo)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["config", "user.name", "Bench"]);
    git(&["config", "user.email", "bench@example.com"]);

    let store = Store::discover(repo).unwrap();
    let actor = Actor::named("bench");
    let setup = Instant::now();
    for f in 0..FEATURES {
        let feature = format!("f{f:03}");
        store
            .transact(&actor, |txn| {
                for t in 0..TASKS {
                    let new = NewTask {
                        id: Some(format!("T{t:03}")),
                        title: format!("task {t} of {feature}"),
                        paths: vec![format!("src/{feature}/t{t}.rs")],
                        ..Default::default()
                    };
                    ops::add_task(txn, &feature, &new)?;
                }
                Ok(())
            })
            .unwrap();
    }
    println!(
        "state: {FEATURES} features x {TASKS} tasks written in {:.2?}",
        setup.elapsed()
    );

    // Each sample toggles a different task between todo and in_progress.
    let mut n = 0usize;
    let mut next = || {
        n += 1;
        let r = TaskRef {
            feature: format!("f{:03}", (n * 37) % FEATURES),
            id: format!("T{:03}", (n * 11) % TASKS),
        };
        r
    };

    let in_process = sample(300, || {
        let r = next();
        store
            .transact(&actor, |txn| {
                let to = match txn.task(&r.feature, &r.id)?.unwrap().status {
                    TaskStatus::Todo => TaskStatus::InProgress,
                    _ => TaskStatus::Todo,
                };
                ops::move_task(txn, &r, to, None, false)
            })
            .unwrap();
    });

    let bin = env!("CARGO_BIN_EXE_git-sprint");
    let process = sample(60, || {
        let r = next();
        let status = store
            .read(|txn| Ok(txn.task(&r.feature, &r.id)?.unwrap().status))
            .unwrap();
        let to = if status == TaskStatus::Todo {
            "in_progress"
        } else {
            "todo"
        };
        let out = env(Command::new(bin), home.path())
            .current_dir(repo)
            .args(["move", &r.to_string(), to])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });

    let script = shell_script();
    let shell = sample(60, || {
        let r = next();
        let out = env(Command::new("sh"), home.path())
            .current_dir(repo)
            .args([
                "-c",
                &script,
                "sh",
                &format!("features/{}/tasks/{}.yaml", r.feature, r.id),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });

    // What the disk alone costs: a transition creates 7 files (a blob, 4
    // trees, a commit, the ref's lock; the reflogs are appended to).
    let scratch = repo.join(".git/objects/bench-floor");
    std::fs::create_dir_all(&scratch).unwrap();
    let mut k = 0;
    let floor = sample(200, || {
        for _ in 0..7 {
            k += 1;
            let tmp = scratch.join(format!("tmp{k}"));
            std::fs::write(&tmp, [b'x'; 200]).unwrap();
            std::fs::rename(&tmp, scratch.join(format!("obj{k}"))).unwrap();
        }
    });
    std::fs::remove_dir_all(&scratch).unwrap();

    git(&["fsck", "--no-progress", "--connectivity-only"]);
    println!("one transition (median of samples):");
    println!(
        "  in-process (Store::transact)     {:>9.3} ms",
        ms(in_process)
    );
    println!("  git sprint move (process)        {:>9.3} ms", ms(process));
    println!("  shell script (git plumbing)      {:>9.3} ms", ms(shell));
    println!("  floor: create+rename 7 files     {:>9.3} ms", ms(floor));
    println!(
        "ratio shell / in-process: {:.1}x   shell / git sprint move: {:.1}x",
        ms(shell) / ms(in_process),
        ms(shell) / ms(process)
    );
}

/// The transition as a shell script would do it with git plumbing: a temp
/// index, one new blob, a tree and a commit, and a compare-and-swap update.
fn shell_script() -> String {
    r#"set -e
path=$1
old=$(git rev-parse refs/ai-sprint)
export GIT_INDEX_FILE=$(mktemp)
trap 'rm -f "$GIT_INDEX_FILE"' EXIT
git read-tree "$old"
content=$(git cat-file blob "$old:$path")
case "$content" in
  *"status: todo"*) new=$(printf '%s\n' "$content" | sed 's/^status: todo$/status: in_progress/') ;;
  *) new=$(printf '%s\n' "$content" | sed 's/^status: .*/status: todo/') ;;
esac
blob=$(printf '%s\n' "$new" | git hash-object -w --stdin)
git update-index --cacheinfo "100644,$blob,$path"
tree=$(git write-tree)
commit=$(printf 'shell transition\n\nSprint-Task: %s\n' "$path" | git commit-tree "$tree" -p "$old")
git update-ref refs/ai-sprint "$commit" "$old"
"#
    .to_owned()
}

fn env(mut cmd: Command, home: &Path) -> Command {
    cmd.env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR");
    cmd
}

fn sample(n: usize, mut f: impl FnMut()) -> Duration {
    // One warm-up, then the median.
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
