//! The worktree pool through the CLI: a killed worker's worktree is reused by
//! the next spawn (the same directory, clean, at the new base, with the keep
//! paths still there), and the pool's bound holds. The hostile cases (a
//! rewritten `.git` file, a `config.worktree`, secrets, links) are unit tests
//! next to the pool, against real git.

use std::os::unix::fs::MetadataExt;

use super::fleet::{agent, Fleet};

fn with_pool_config(f: &Fleet, yaml: &str) {
    f.repo.write(".git-sprint.yaml", yaml);
    f.repo.write(".gitignore", "*.secret\ntarget/\n");
    f.repo.git(["add", ".git-sprint.yaml", ".gitignore"]);
    f.repo.git(["commit", "-q", "-m", "pool config"]);
}

fn status(f: &Fleet, id: &str) -> String {
    f.list()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["status"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

#[test]
fn spawn_after_kill_reuses_the_worktree_clean_at_the_new_base_with_keep_paths() {
    let f = Fleet::new();
    with_pool_config(&f, "worktrees:\n  pool: 2\n  keep: [target]\n");
    let hang = format!("SCRIPTED_AGENT_MODE=hang {}", agent());
    f.ok(&["spawn", "w1", "--prompt", "work", "--agent-command", &hang]);
    let wt1 = f.worktree_dir("w1");
    f.wait_list("w1 to write its file", |_| {
        std::fs::read_dir(wt1.join("sprint-output")).is_ok_and(|mut d| d.next().is_some())
    });
    std::fs::create_dir_all(wt1.join("target")).unwrap();
    std::fs::write(wt1.join("target/built"), "cache\n").unwrap();
    std::fs::write(wt1.join("token.secret"), "hunter2\n").unwrap();
    let inode = std::fs::metadata(&wt1).unwrap().ino();

    f.ok(&["kill", "w1"]);
    // The work is on the branch; the directory went to the pool.
    let subject = f.repo.git(["log", "-1", "--format=%s", "w1"]);
    assert!(subject.starts_with("WIP: w1"), "{subject}");
    assert!(!wt1.exists());
    assert_eq!(f.pooled().len(), 1);

    f.repo.write("later.txt", "new on main\n");
    f.repo.git(["add", "later.txt"]);
    f.repo.git(["commit", "-q", "-m", "later"]);
    let tip = f.repo.git(["rev-parse", "main"]);

    f.ok(&["spawn", "w2", "--prompt", "x", "--agent-command", "true"]);
    let wt2 = f.worktree_dir("w2");
    assert_eq!(std::fs::metadata(&wt2).unwrap().ino(), inode, "not reused");
    assert!(f.pooled().is_empty());
    f.wait_list("w2 to exit", |_| status(&f, "w2") == "exited 0");
    let git2 = |args: &[&str]| {
        let mut all = vec!["-C", wt2.to_str().unwrap()];
        all.extend(args);
        f.repo.git(all)
    };
    assert_eq!(git2(&["rev-parse", "HEAD"]), tip);
    assert_eq!(git2(&["symbolic-ref", "HEAD"]).trim(), "refs/heads/w2");
    assert_eq!(git2(&["status", "--porcelain"]), "");
    assert!(!wt2.join("token.secret").exists());
    assert!(!wt2.join("sprint-output").exists());
    assert!(wt2.join("later.txt").is_file());
    assert_eq!(
        std::fs::read_to_string(wt2.join("target/built")).unwrap(),
        "cache\n"
    );
    // w1's branch still holds its work.
    let files = f.repo.git(["show", "--name-only", "--format=", "w1"]);
    assert!(files.contains("sprint-output/"), "{files}");
}

#[test]
fn kill_keeps_at_most_the_pool_bound_and_removes_the_rest() {
    let f = Fleet::new();
    with_pool_config(&f, "worktrees:\n  pool: 2\n");
    f.ok(&[
        "fanout",
        "3",
        "b",
        "--prompt",
        "x",
        "--agent-command",
        "true",
    ]);
    f.wait_list("3 exited", |r| {
        r.len() == 3 && r.iter().all(|w| w["status"] == "exited 0")
    });
    f.ok(&["kill", "--all", "--force"]);
    assert_eq!(f.pooled().len(), 2);
    assert_eq!(f.worktrees(), 1);
    let all = f.repo.git(["worktree", "list", "--porcelain"]);
    assert_eq!(all.matches("\nworktree ").count() + 1, 3, "{all}");
    assert_eq!(all.matches("detached").count(), 2, "{all}");

    // A pool of 0 is off: kill removes, as before the pool.
    with_pool_config(&f, "worktrees:\n  pool: 0\n");
    f.ok(&["spawn", "z", "--prompt", "x", "--agent-command", "true"]);
    assert_eq!(f.pooled().len(), 2, "spawn used the pool while it is off");
    f.wait_list("z exited", |_| status(&f, "z") == "exited 0");
    f.ok(&["kill", "z", "--force"]);
    assert!(!f.worktree_dir("z").exists());
    assert_eq!(f.pooled().len(), 2);
}
