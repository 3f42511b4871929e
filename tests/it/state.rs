//! The state store through the real binary: atomicity under contention,
//! schema refusal, worktrees, and the audit trail.

use std::sync::{Arc, Barrier};
use std::thread;

use crate::support::{stderr, stdout, Repo};

/// `Sprint-Task:`/`Sprint-To:` pairs from the whole state history, oldest first.
fn transitions(repo: &Repo) -> Vec<(String, String)> {
    let log = repo.git(["log", "--reverse", "--format=%B%x00", "refs/ai-sprint"]);
    let mut out = Vec::new();
    for msg in log.split('\0') {
        let mut task = None;
        for line in msg.lines() {
            if let Some(t) = line.strip_prefix("Sprint-Task: ") {
                task = Some(t.to_owned());
            } else if let Some(to) = line.strip_prefix("Sprint-To: ") {
                if let Some(t) = &task {
                    out.push((t.clone(), to.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn sixteen_writers_lose_no_transition_and_one_claimer_wins() {
    let repo = Repo::new();
    repo.sprint(["init"]);
    for i in 0..16 {
        repo.sprint([
            "add",
            "load",
            &format!("task {i}"),
            "--id",
            &format!("W{i}"),
        ]);
    }
    repo.sprint(["add", "race", "contended", "--id", "R1"]);

    // 16 processes, 50 transitions each on their own task.
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let path = repo.path().to_owned();
            let home = repo.home().to_owned();
            thread::spawn(move || {
                for n in 0..50 {
                    let to = if n % 2 == 0 { "in_progress" } else { "todo" };
                    let mut cmd = std::process::Command::new(crate::support::BIN);
                    crate::support::isolate(&mut cmd, &home).current_dir(&path);
                    let out = cmd
                        .args(["move", &format!("load/W{i}"), to, "--as", &format!("w{i}")])
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    // 16 processes racing for one task.
    let barrier = Arc::new(Barrier::new(16));
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let path = repo.path().to_owned();
            let home = repo.home().to_owned();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut cmd = std::process::Command::new(crate::support::BIN);
                crate::support::isolate(&mut cmd, &home).current_dir(&path);
                cmd.args(["claim", "race/R1", "--as", &format!("c{i}")]);
                barrier.wait();
                cmd.output().unwrap()
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = results.iter().filter(|o| o.status.success()).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins");
    for loser in results.iter().filter(|o| !o.status.success()) {
        assert_eq!(loser.status.code(), Some(1));
        assert!(
            stderr(loser).contains("is claimed by c"),
            "{}",
            stderr(loser)
        );
    }

    let all = transitions(&repo);
    for i in 0..16 {
        let task = format!("load/W{i}");
        let seen: Vec<_> = all
            .iter()
            .filter(|(t, _)| *t == task)
            .map(|(_, to)| to.as_str())
            .collect();
        // One add, then exactly 50 alternating moves, each once and in order.
        assert_eq!(seen.len(), 51, "{task}: {seen:?}");
        for (n, to) in seen[1..].iter().enumerate() {
            assert_eq!(
                *to,
                if n % 2 == 0 { "in_progress" } else { "todo" },
                "{task} move {n}"
            );
        }
    }
    let claims = all
        .iter()
        .filter(|(t, to)| t == "race/R1" && to == "in_progress")
        .count();
    assert_eq!(claims, 1);
    let winner = stdout(winners[0]);
    let holder = winner
        .split(" as ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let show = repo.sprint(["show", "race/R1", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(json["task"]["claim"]["holder"], holder);

    repo.git(["fsck", "--strict", "--no-progress"]);
}

#[test]
fn a_newer_schema_is_refused_and_nothing_is_written() {
    let repo = Repo::new();
    repo.sprint(["init"]);
    // Rewrite sprint.yaml the way a future version would.
    let blob = repo
        .command("git")
        .args(["hash-object", "-w", "--stdin"])
        .stdin_bytes("schema: 99\nnew_field: [x]\n");
    let tree = repo
        .command("git")
        .args(["mktree"])
        .stdin_bytes(&format!("100644 blob {blob}\tsprint.yaml\n"));
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]).trim().to_owned();
    let commit = repo
        .git(["commit-tree", &tree, "-p", &tip, "-m", "from the future"])
        .trim()
        .to_owned();
    repo.git(["update-ref", "refs/ai-sprint", &commit]);

    let out = repo.run(["add", "f", "something"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("schema version 99, newer than this git-sprint understands (1)"),
        "{err}"
    );
    assert!(err.contains("hint: install a newer git-sprint"), "{err}");
    assert_eq!(repo.git(["rev-parse", "refs/ai-sprint"]).trim(), commit);
    let out = repo.run(["status"]);
    assert_eq!(out.status.code(), Some(1), "reads refuse too");
}

#[test]
fn state_is_shared_by_linked_worktrees() {
    let repo = Repo::with_commit();
    let wt = repo.path().join("../wt-linked");
    let wt = wt.to_str().unwrap();
    repo.git(["worktree", "add", "-q", wt, "-b", "side"]);
    let mut cmd = repo.command(crate::support::BIN);
    let out = cmd
        .current_dir(wt)
        .args(["add", "shared", "made in a worktree"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(repo
        .sprint(["status"])
        .contains("shared  planned  0/1 tasks done"));
    repo.git(["worktree", "remove", "--force", wt]);
}

#[test]
fn init_works_in_an_unborn_repository_and_is_idempotent() {
    let repo = Repo::new();
    assert!(repo
        .sprint(["init"])
        .starts_with("Initialized sprint state at refs/ai-sprint"));
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]);
    assert!(repo.sprint(["init"]).contains("already initialized"));
    assert_eq!(repo.git(["rev-parse", "refs/ai-sprint"]), tip);
    // The reflog is written for the ref.
    assert!(repo
        .git(["reflog", "show", "refs/ai-sprint"])
        .contains("sprint: initialized"));
    // HEAD's branch is still unborn: nothing touched the user's branches.
    assert!(
        repo.command("git")
            .args(["rev-parse", "--verify", "-q", "HEAD"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
}

#[test]
fn outside_a_repository_the_error_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::new();
    let out = repo
        .command(crate::support::BIN)
        .current_dir(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: not a git repository: "), "{err}");
    assert!(err.contains("hint: "), "{err}");
}

#[test]
fn an_expired_lease_can_be_taken_over_and_heartbeats_extend_it() {
    let repo = Repo::new();
    repo.sprint(["add", "f", "leased"]);
    let at = |now: i64, args: &[&str]| {
        repo.command(crate::support::BIN)
            .env("GIT_SPRINT_NOW", now.to_string())
            .args(args)
            .output()
            .unwrap()
    };
    assert!(at(1000, &["claim", "T001", "--as", "a", "--ttl", "60s"])
        .status
        .success());
    assert_eq!(
        at(1030, &["claim", "T001", "--as", "b"]).status.code(),
        Some(1)
    );
    assert!(at(1050, &["heartbeat", "T001", "--as", "a"])
        .status
        .success());
    // Renewed to 1110: still held at 1100.
    assert_eq!(
        at(1100, &["claim", "T001", "--as", "b"]).status.code(),
        Some(1)
    );
    let out = at(1111, &["claim", "T001", "--as", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = repo.sprint(["log", "T001"]);
    assert!(log.contains("taking over a's expired lease"), "{log}");
    let hb = at(1112, &["heartbeat", "T001", "--as", "a"]);
    assert_eq!(hb.status.code(), Some(1));
    assert!(stderr(&hb).contains("is not claimed by a (it is claimed by b)"));
}

trait StdinBytes {
    fn stdin_bytes(&mut self, input: &str) -> String;
}

impl StdinBytes for std::process::Command {
    fn stdin_bytes(&mut self, input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}
