//! The base moves forward during a sprint: its commits reach the
//! integration branch behind the post-merge gate, tasks.md is read again
//! from it, and a base that conflicts stops the feature's merges — named by
//! `health` — until it is resolved and `git sprint sync` runs.

use std::time::{Duration, Instant};

use super::sprint::{config, scripted, Sprint};

/// Whether `ancestor` is in `branch`'s history.
fn contains(s: &Sprint, branch: &str, ancestor: &str) -> bool {
    s.f.cmd("git")
        .args(["merge-base", "--is-ancestor", ancestor, branch])
        .status()
        .unwrap()
        .success()
}

#[test]
fn commits_on_the_base_mid_sprint_reach_the_integration_branch_and_new_tasks_run() {
    let tasks = "- [ ] T001 [P] Write src/a.txt\n";
    let s = Sprint::new(&config(&scripted(), ""), tasks);
    s.start(&[("SCRIPTED_AGENT_SLEEP", "2")]);
    s.wait("T001 started", 30, |t| t["T001"]["status"] != "todo");
    // A person works on main meanwhile: a new file and a new task.
    s.f.repo.write("base.txt", "from main\n");
    s.f.repo.write(
        "specs/f/tasks.md",
        &format!("{tasks}- [ ] T002 [P] Write src/b.txt\n"),
    );
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-qm", "work on main"]);
    let main = s.f.repo.git(["rev-parse", "main"]).trim().to_owned();
    s.wait("T002 ingested", 30, |t| t.contains_key("T002"));
    s.wait_done(90);
    assert!(contains(&s, "sprint/f/integration", &main));
    // The base's merge is on the record, and it passed the post-merge gate.
    let trail = s.transitions();
    assert!(
        trail
            .iter()
            .any(|(task, _, to, why)| task == "f" && to == "synced" && why.contains("merged main")),
        "{trail:?}"
    );
    s.check_every_integration_commit();
}

#[test]
fn a_base_that_conflicts_stops_merges_until_resolved_by_hand_and_synced() {
    // T002 waits for a marker, so the feature stays open while main moves.
    let held = format!(
        "case \"$SPRINT_TASK\" in *T002*) while [ ! -e \"$(git rev-parse --git-common-dir)/go\" ]; do sleep 0.1; done ;; esac; {}",
        scripted()
    );
    let s = Sprint::new(
        &config(&held, ""),
        "- [ ] T001 [P] Write src/a.txt\n- [ ] T002 [P] Write src/b.txt\n",
    );
    s.f.repo.write("src/a.txt", "v1\n");
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-qm", "a.txt v1"]);
    s.start(&[]);
    s.wait("T001 merged", 60, |t| t["T001"]["status"] == "done");
    // main rewrites the file T001 appended to: the base cannot merge.
    s.f.repo.write("src/a.txt", "rewritten on main\n");
    s.f.repo.git(["commit", "-qam", "main rewrites a.txt"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let out = s.f.run(&["health"]);
        let text = super::support::stdout(&out);
        if text.contains("base_conflict: f") {
            assert_eq!(out.status.code(), Some(1));
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no base conflict reported: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("src/a.txt") && text.contains("git sprint sync"),
        "{text}"
    );
    // T002 finishes its work but is not merged while the base conflicts.
    std::fs::write(s.f.repo.path().join(".git/go"), "").unwrap();
    s.wait("T002 waiting to merge", 60, |t| {
        t["T002"]["status"] == "in_docs"
    });
    // Resolve by hand: merge main into the integration branch, keep main's.
    let wt = tempfile::tempdir().unwrap();
    let wt_path = wt.path().join("fix");
    let p = wt_path.to_str().unwrap();
    s.f.repo
        .git(["worktree", "add", "-q", p, "sprint/f/integration"]);
    let _ =
        s.f.cmd("git")
            .current_dir(&wt_path)
            .args(["merge", "-q", "main"])
            .output();
    std::fs::write(wt_path.join("src/a.txt"), "rewritten on main\n").unwrap();
    s.f.repo.git(["-C", p, "add", "-A"]);
    s.f.repo
        .git(["-C", p, "commit", "-qm", "merge main by hand"]);
    s.f.repo.git(["worktree", "remove", "--force", p]);
    let out = s.f.ok(&["sync"]);
    assert!(out.contains("f: up to date"), "{out}");
    s.wait_done(60);
    let trail = s.transitions();
    assert!(
        trail
            .iter()
            .any(|(task, _, to, why)| task == "f" && to == "synced" && why.contains("resolved")),
        "{trail:?}"
    );
}
