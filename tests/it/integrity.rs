//! State integrity against real git, tmux and processes: a writer killed
//! holding the state lock, the state ref deleted mid-sprint, a broken task
//! record, agents that commit nothing, and a person closing a task that
//! needs no change. The integration branch's `Sprint-Task:` trailers are
//! what "merged exactly once" is counted from.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use super::sprint::{config, scripted, Sprint, ONCE};
use super::support::{stderr, stdout, Repo};

/// Merge commits on the integration branch's first-parent history, per
/// `Sprint-Task:` trailer.
fn merges_by_trailer(repo: &Repo) -> HashMap<String, usize> {
    let log = repo.git([
        "log",
        "--first-parent",
        "--merges",
        "--format=%(trailers:key=Sprint-Task,valueonly,separator=%x2C)",
        "sprint/f/integration",
    ]);
    let mut n = HashMap::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        for task in line.split(',') {
            *n.entry(task.trim().to_owned()).or_insert(0) += 1;
        }
    }
    n
}

fn assert_each_merged_once(repo: &Repo, tasks: &[&str]) {
    let merges = merges_by_trailer(repo);
    for t in tasks {
        assert_eq!(merges.get(*t), Some(&1), "{t}: {merges:?}");
    }
    assert_eq!(merges.len(), tasks.len(), "{merges:?}");
}

/// Sets the file's modification time `secs` in the past.
fn age(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// A real writer of `refs/ai-sprint`: `git update-ref --stdin` holds the
/// ref's lock between `prepare` and `commit`; it is killed with SIGKILL
/// while holding it, so the lock stays (git cannot clean up after -9).
fn kill_9_a_writer_holding_the_lock(repo: &Repo) -> std::path::PathBuf {
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]);
    kill_9_git_update_ref(
        repo,
        &format!("update refs/ai-sprint {0} {0}", tip.trim()),
        "refs/ai-sprint.lock",
    )
}

/// Runs `git update-ref --stdin` on `edit` up to `prepare`, waits for it to
/// hold `lock` (relative to the git dir), and kills it with SIGKILL; returns
/// the lock's path.
fn kill_9_git_update_ref(repo: &Repo, edit: &str, lock: &str) -> std::path::PathBuf {
    let lock = repo.path().join(".git").join(lock);
    let mut writer = repo
        .command("git")
        .args(["update-ref", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = writer.stdin.take().unwrap();
    writeln!(input, "start\n{edit}\nprepare").unwrap();
    input.flush().unwrap();
    super::support::wait_for_file(&lock, 10, "git update-ref to take the lock");
    writer.kill().unwrap(); // SIGKILL
    writer.wait().unwrap();
    drop(input);
    assert!(lock.exists(), "the killed writer's lock is left behind");
    lock
}

#[test]
fn kill_9_of_a_writer_holding_the_state_lock_costs_the_next_write_seconds_not_a_minute() {
    let repo = Repo::new();
    repo.sprint(["init", "--no-hooks"]);
    repo.sprint(["add", "f", "one"]);
    let lock = kill_9_a_writer_holding_the_lock(&repo);

    // As it is found: a lock too young to call stale is waited on, then
    // removed once it is old enough (state writes take milliseconds).
    // Before the fix it stalled for 61 s and then failed.
    add_t002_past_the_lock(&repo, &lock, "a write behind a young stale lock");

    // A writer that died a minute ago: the next write does not wait at all.
    let lock = kill_9_a_writer_holding_the_lock(&repo);
    age(&lock, 60);
    let out = super::support::output_within(
        repo.command(super::support::BIN)
            .args(["claim", "T001", "--as", "dev-1"]),
        "a write behind a lock a minute old",
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let trail = repo.git(["log", "--format=%s%n%b", "refs/ai-sprint"]);
    assert_eq!(
        trail.matches("Sprint-Repair: removed stale lock").count(),
        2,
        "{trail}"
    );
    // Both writes are there, each once; no state was lost.
    let shown = repo.sprint(["show", "T002"]);
    assert!(shown.contains("two"), "{shown}");
}

#[test]
fn a_git_killed_deleting_a_branch_leaves_packed_refs_lock_and_the_next_state_write_clears_it() {
    // Any ref deletion takes packed-refs.lock, even with no packed-refs
    // file, and gix's ref writes wait on it whenever it exists. Found by
    // kill -9 of an orchestrator: every state write after it failed, so the
    // new orchestrator started nothing for ever.
    let repo = Repo::new();
    repo.sprint(["init", "--no-hooks"]);
    repo.sprint(["add", "f", "one"]);
    repo.git(["branch", "doomed", "refs/ai-sprint"]);
    let lock = kill_9_git_update_ref(&repo, "delete refs/heads/doomed", "packed-refs.lock");
    age(&lock, 60);
    add_t002_past_the_lock(
        &repo,
        &lock,
        "a write behind a packed-refs.lock a minute old",
    );
}

/// `git sprint add f two` (task T002) gets past the stale `lock` within
/// 30 s, removes it and says so in its commit.
fn add_t002_past_the_lock(repo: &Repo, lock: &Path, what: &str) {
    let out = super::support::output_within(
        repo.command(super::support::BIN).args(["add", "f", "two"]),
        what,
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!lock.exists());
    let body = repo.git(["log", "-1", "--format=%B", "refs/ai-sprint"]);
    assert!(body.starts_with("f/T002: none -> todo"), "{body}");
    let name = lock.strip_prefix(repo.path().join(".git")).unwrap();
    let repair = format!("Sprint-Repair: removed stale lock {} (", name.display());
    assert!(body.contains(&repair), "{body}");
}

#[test]
fn the_state_ref_deleted_mid_sprint_start_refuses_recover_restores_and_each_task_merges_once() {
    let tasks = "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n- [ ] T003 [P] Three in c.txt (depends on T001)\n- [ ] T004 [P] Four in d.txt (depends on T002)\n";
    let s = Sprint::new(
        &config(&scripted(), "policy: { retry_backoff: 1s }\n"),
        tasks,
    );
    s.start(&[("SCRIPTED_AGENT_SLEEP", "1")]);
    s.wait("a task done", 60, |t| {
        t.values().any(|t| t["status"] == "done")
    });
    delete_ref(&s.f.repo, "refs/ai-sprint");
    // No write lands while the ref is gone: the backup stays where it was.
    // Its newest state is its reflog's newest entry (the ref itself moves
    // once a minute).
    let before = s.f.repo.git([
        "reflog",
        "show",
        "--format=%H",
        "-n1",
        "refs/ai-sprint-backup",
    ]);
    for args in [&["start"][..], &["init"], &["status"]] {
        let out = s.f.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stdout(&out));
        let err = stderr(&out);
        assert!(
            err.contains("refs/ai-sprint is missing, but this repository had sprint state")
                && err.contains("git sprint recover"),
            "{args:?}: {err}"
        );
    }
    let restored = s.f.ok(&["recover"]);
    assert!(
        restored.contains("Restored refs/ai-sprint from refs/ai-sprint-backup at"),
        "{restored}"
    );
    // Restored where the backup was (the orchestrator wrote nothing while
    // the ref was gone): the new reflog starts there, and the recovery is
    // on the record (the orchestrator may have written after it already).
    let reflog =
        s.f.repo
            .git(["reflog", "show", "--format=%H %gs", "refs/ai-sprint"]);
    assert_eq!(
        reflog.lines().last().unwrap(),
        format!(
            "{} git-sprint: recovered from refs/ai-sprint-backup",
            before.trim()
        ),
        "{reflog}"
    );
    let subjects = s.f.repo.git(["log", "--format=%s", "refs/ai-sprint"]);
    assert!(
        subjects
            .lines()
            .any(|l| l.starts_with("sprint: recovered from refs/ai-sprint-backup at ")),
        "{subjects}"
    );
    s.start(&[("SCRIPTED_AGENT_SLEEP", "1")]);
    s.wait_done(120);
    assert_each_merged_once(&s.f.repo, &["f/T001", "f/T002", "f/T003", "f/T004"]);
    for (id, t) in s.tasks() {
        assert!(t["merged"]["commit"].is_string(), "{id}: {t}");
    }
    s.check_every_integration_commit();
}

#[test]
fn update_ref_d_then_gc_prune_now_loses_no_state_recover_restores_the_newest() {
    let repo = Repo::with_commit();
    repo.sprint(["init", "--no-hooks"]);
    for i in 1..=3 {
        repo.sprint(["add", "f", &format!("task {i}"), "--id", &format!("T00{i}")]);
    }
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]);
    // The backup ref moves once a minute: the newer states are only in its
    // reflog, whose entries git's gc keeps like refs.
    repo.git(["update-ref", "-d", "refs/ai-sprint"]);
    repo.git(["gc", "--prune=now", "--quiet"]);
    let out = repo.sprint(["recover", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "restored", "{v}");
    assert_eq!(v["source"], "backup", "{v}");
    assert_eq!(v["commit"], tip.trim(), "{v}");
    assert_eq!(v["tasks"], 3, "{v}");
    repo.git(["fsck", "--no-progress", "--connectivity-only"]);
}

#[test]
fn regression_a_state_started_over_a_merged_sprint_never_merges_a_task_twice() {
    let tasks = "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n";
    let s = Sprint::new(&config(&scripted(), ""), tasks);
    s.start(&[]);
    s.wait_done(60);
    s.f.ok(&["stop"]);
    let merged = s.f.repo.git(["rev-parse", "sprint/f/integration"]);
    // The state is gone with its backup: nothing to restore from.
    delete_ref(&s.f.repo, "refs/ai-sprint");
    delete_ref(&s.f.repo, "refs/ai-sprint-backup");
    let start = s.f.run(&["start"]);
    assert_eq!(start.status.code(), Some(1));
    assert!(
        stderr(&start).contains("branches sprint/f/integration"),
        "{}",
        stderr(&start)
    );
    let nothing = s.f.run(&["recover"]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        stderr(&nothing).contains("nothing to recover") && stderr(&nothing).contains("--fresh"),
        "{}",
        stderr(&nothing)
    );
    let fresh = s.f.ok(&["recover", "--fresh"]);
    assert!(fresh.starts_with("Started a new sprint state"), "{fresh}");

    // Started over, the tasks run again and their developers commit again:
    // the Refinery finds each merge on the integration branch instead.
    s.start(&[]);
    s.wait_done(60);
    assert_each_merged_once(&s.f.repo, &["f/T001", "f/T002"]);
    let now = s.f.repo.git(["rev-parse", "sprint/f/integration"]);
    assert_eq!(now, merged, "the integration branch did not move");
    let trail = s.transitions();
    for id in ["f/T001", "f/T002"] {
        assert!(
            trail.iter().any(|(t, from, to, why)| t == id
                && from == "in_docs"
                && to == "done"
                && why.starts_with("already merged into sprint/f/integration")),
            "{id}: {trail:?}"
        );
    }
}

/// Deletes `name`, retrying while a state write holds its lock.
fn delete_ref(repo: &Repo, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = repo
            .command("git")
            .args(["update-ref", "-d", name])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "could not delete {name}: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Replaces `path` in the state with `content` by git plumbing (a temp
/// index, commit-tree, a compare-and-swap update-ref), as a person editing
/// the state by hand would; retried while the orchestrator writes too.
fn hand_edit(repo: &Repo, path: &str, content: &str) {
    let index = tempfile::NamedTempFile::new().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tip = repo.git(["rev-parse", "refs/ai-sprint"]).trim().to_owned();
        let mut hash = repo
            .command("git")
            .args(["hash-object", "-w", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        hash.stdin
            .take()
            .unwrap()
            .write_all(content.as_bytes())
            .unwrap();
        let blob = String::from_utf8(hash.wait_with_output().unwrap().stdout).unwrap();
        let with_index = |args: &[&str]| -> String {
            let out = repo
                .command("git")
                .env("GIT_INDEX_FILE", index.path())
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            stdout(&out).trim().to_owned()
        };
        with_index(&["read-tree", &tip]);
        with_index(&[
            "update-index",
            "--cacheinfo",
            &format!("100644,{},{path}", blob.trim()),
        ]);
        let tree = with_index(&["write-tree"]);
        let commit = repo.git(["commit-tree", &tree, "-p", &tip, "-m", "hand edit"]);
        let swapped = repo
            .command("git")
            .args(["update-ref", "refs/ai-sprint", commit.trim(), &tip])
            .output()
            .unwrap();
        if swapped.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "could not edit the state: {}",
            stderr(&swapped)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_broken_task_record_is_quarantined_the_rest_runs_and_repair_lets_the_sprint_finish() {
    let tasks = "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt (depends on T001)\n- [ ] T003 [P] Three in c.txt\n- [ ] T004 [P] Four in d.txt (depends on T002)\n";
    let s = Sprint::new(&config(&scripted(), ""), tasks);
    s.start(&[("SCRIPTED_AGENT_SLEEP", "1")]);
    s.wait("T001 started", 60, |t| t["T001"]["status"] != "todo");
    hand_edit(
        &s.f.repo,
        "features/f/tasks/T002.yaml",
        "id: T002\ntitle: Two\nstatus: flying\nattempts: lots\n",
    );
    // The rest of the sprint runs on without it.
    s.wait("T001 and T003 done", 60, |t| {
        t["T001"]["status"] == "done" && t["T003"]["status"] == "done"
    });
    let status = s.status();
    let q = &status["quarantined"][0];
    assert_eq!(q["path"], "features/f/tasks/T002.yaml", "{status}");
    assert_eq!(q["fix"], "git sprint repair f/T002");
    assert!(q["error"].as_str().unwrap().contains("flying"), "{q}");
    assert!(!s.tasks().contains_key("T002"));
    assert_eq!(s.tasks()["T004"]["status"], "todo");
    assert_ne!(status["features"][0]["feature"]["status"], "done");
    let text = s.f.ok(&["status"]);
    assert!(
        text.contains("quarantined: f/T002: features/f/tasks/T002.yaml does not parse: ")
            && text.contains("  -> git sprint repair f/T002"),
        "{text}"
    );
    let health = s.f.run(&["health"]);
    assert_eq!(health.status.code(), Some(1), "{}", stdout(&health));
    assert!(stdout(&health).contains("features/f/tasks/T002.yaml"));
    assert!(
        stderr(&health).contains("git sprint repair f/T002"),
        "{}",
        stderr(&health)
    );

    let repaired =
        s.f.ok(&["repair", "T002", "--reason", "hand edit gone wrong"]);
    assert!(
        repaired
            .starts_with("f/T002: repaired as todo (kept: id, title; dropped: status, attempts)"),
        "{repaired}"
    );
    s.wait_done(90);
    assert_each_merged_once(&s.f.repo, &["f/T001", "f/T002", "f/T003", "f/T004"]);
    let t = s.tasks();
    // The title came back from tasks.md, not from the hand edit.
    assert_eq!(t["T002"]["title"], "Two in b.txt (depends on T001)");
    // Nothing depending on the quarantined task started before its repair.
    let trail = s.transitions();
    let at = |pred: &dyn Fn(&super::sprint::Transition) -> bool| {
        trail
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("{trail:?}"))
    };
    let repair = at(&|(t, from, _, _)| t == "f/T002" && from == "quarantined");
    let t004 = at(&|(t, from, to, _)| t == "f/T004" && from == "todo" && to == "in_progress");
    assert!(repair < t004, "{trail:?}");
    assert!(s.f.ok(&["health"]).contains("orchestrator: running"));
}

#[test]
fn move_force_rewrites_a_quarantined_record_and_every_command_names_the_fix() {
    let repo = Repo::with_commit();
    repo.sprint(["init", "--no-hooks"]);
    repo.sprint(["add", "f", "one", "--id", "T001"]);
    repo.sprint(["add", "f", "two", "--id", "T002", "--depends", "T001"]);
    let refused = repo.run(["repair", "T001"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("f/T001's record reads fine"),
        "{}",
        stderr(&refused)
    );

    hand_edit(
        &repo,
        "features/f/tasks/T001.yaml",
        "id: T001\nstatus: [oops\n",
    );
    for args in [&["show", "T001"][..], &["move", "T001", "in_progress"]] {
        let out = repo.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("features/f/tasks/T001.yaml")
                && err.contains("hint: 'git sprint repair f/T001' rewrites it"),
            "{args:?}: {err}"
        );
    }
    // The rest of the state still reads.
    let status = repo.sprint(["status"]);
    assert!(
        status.contains("quarantined: f/T001: features/f/tasks/T001.yaml does not parse"),
        "{status}"
    );
    let moved = repo.sprint(["move", "T001", "in_progress", "--force"]);
    assert_eq!(
        moved,
        "f/T001: quarantined -> in_progress (its unreadable record was rewritten)\n"
    );
    let shown = repo.sprint(["show", "T001"]);
    assert!(shown.contains("in_progress"), "{shown}");
    let body = repo.git(["log", "-1", "--format=%B", "refs/ai-sprint"]);
    assert!(
        body.contains("Sprint-From: quarantined")
            && body.contains("Sprint-Policy: record rewritten by repair"),
        "{body}"
    );
    assert!(!repo.sprint(["status"]).contains("quarantined"));
}

#[test]
fn regression_a_branch_with_no_commit_beyond_the_integration_branch_is_never_reported_merged() {
    // T001: the first developer commits nothing. T002: the first developer
    // commits, then its tester drops that commit again, so the branch adds
    // nothing by the time the Refinery sees it. Later runs do the work.
    let agent = format!(
        r#"m="$HOME/once/first-${{SPRINT_WORKER%.*}}"
first() {{ [ ! -e "$m" ] && touch "$m"; }}
case "$SPRINT_WORKER" in
  f.T001.dev.*) first && export SCRIPTED_AGENT_MODE=nothing ;;
  f.T002.test.*) first && {{ git reset -q --hard sprint/f/integration; exit 0; }} ;;
  *.test.*) export SCRIPTED_AGENT_MODE=nothing ;;
esac
{}"#,
        scripted()
    );
    // No review gate asks for commits: the Refinery is the last line.
    let extra = format!("policy: {{ retry_backoff: 1s }}\n{ONCE}");
    let cfg = config(&agent, &extra).replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        "  review: []\n",
    );
    let s = Sprint::new(
        &cfg,
        "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n",
    );
    s.once_dir();
    let base = s.f.repo.git(["rev-parse", "main"]).trim().to_owned();
    s.start(&[]);
    s.wait_done(120);
    let trail = s.transitions();
    // The dropped commit reached the Refinery, which merged nothing.
    assert!(
        trail.iter().any(|(t, from, to, why)| t == "f/T002"
            && from == "in_docs"
            && to == "in_progress"
            && why.starts_with("nothing to merge: sprint/f/T002 at")
            && why.contains("[no_change]")),
        "{trail:?}"
    );
    for id in ["T001", "T002"] {
        let task = format!("f/{id}");
        // Never "merged" at the base's tip.
        assert!(
            !trail
                .iter()
                .any(|(t, _, to, why)| *t == task && to == "done" && why.contains(&base[..12])),
            "{task}: {trail:?}"
        );
        let t = &s.tasks()[id];
        let history = t["history"].as_array().expect("a history");
        assert!(history.iter().any(|h| h["cause"] == "no_change"), "{t}");
        // What was merged is a later run's real commit.
        let tip = t["merged"]["tip"].as_str().unwrap();
        let in_base =
            s.f.repo
                .command("git")
                .args(["merge-base", "--is-ancestor", tip, &base])
                .status()
                .unwrap();
        assert!(!in_base.success(), "{id} merged {tip}, already in main");
        let merge = t["merged"]["commit"].as_str().unwrap();
        let second = s.f.repo.git(["rev-parse", &format!("{merge}^2")]);
        assert_eq!(second.trim(), tip);
    }
    assert_each_merged_once(&s.f.repo, &["f/T001", "f/T002"]);
}

#[test]
fn done_no_change_closes_a_task_as_a_persons_recorded_decision_and_refuses_otherwise() {
    let repo = Repo::with_commit();
    repo.sprint(["init", "--no-hooks"]);
    repo.sprint(["add", "f", "one", "--id", "T001"]);
    repo.sprint(["add", "f", "two", "--id", "T002"]);
    repo.sprint(["add", "f", "three", "--id", "T003", "--depends", "T001"]);

    let closed = repo.sprint([
        "done",
        "T001",
        "--no-change",
        "--reason",
        "the parser already does this",
    ]);
    assert_eq!(
        closed,
        "f/T001: todo -> done without a change (the parser already does this; recorded as Tester's decision)\n"
    );
    let body = repo.git(["log", "-1", "--format=%an%n%B", "refs/ai-sprint"]);
    assert!(
        body.starts_with("Tester\n")
            && body.contains(
                "Sprint-Reason: no change needed: the parser already does this (closed by Tester)"
            )
            && body
                .contains("Sprint-Policy: closed without a change by a person: nothing was merged"),
        "{body}"
    );
    // Its dependant may start now.
    repo.sprint(["claim", "T003", "--as", "dev-3"]);

    /// Arguments, extra environment, and what the refusal says.
    type Refusal<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let refusals: [Refusal; 3] = [
        (&["done", "T001", "--no-change"], &[], "it is done already"),
        (
            &["done", "T002", "--no-change"],
            &[("SPRINT_WORKER", "dev-2")],
            "--no-change is a person's decision",
        ),
        (
            &["done", "T003", "--no-change"],
            &[],
            "dev-3 is working on it until",
        ),
    ];
    for (args, env, expect) in refusals {
        let out = repo
            .command(super::support::BIN)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    // Work on its branch is a change.
    repo.git(["branch", "sprint/f/integration"]);
    repo.git(["switch", "-q", "-c", "sprint/f/T002"]);
    repo.write("b.txt", "b\n");
    repo.git(["add", "b.txt"]);
    repo.git(["commit", "-q", "-m", "T002: b"]);
    repo.git(["switch", "-q", "main"]);
    let out = repo.run(["done", "T002", "--no-change"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("its branch sprint/f/T002 has 1 commit not in sprint/f/integration"),
        "{}",
        stderr(&out)
    );
    // Naming the task is required.
    assert_eq!(repo.run(["done", "--no-change"]).status.code(), Some(2));
}

#[test]
fn recover_restores_from_the_reflog_and_fresh_starts_over_only_when_asked() {
    let repo = Repo::with_commit();
    repo.sprint(["init", "--no-hooks"]);
    repo.sprint(["add", "f", "one", "--id", "T001"]);
    let tip = repo.git(["rev-parse", "refs/ai-sprint"]);
    assert_eq!(
        repo.sprint(["recover"]),
        format!("refs/ai-sprint is at {}: nothing to recover\n", &tip[..7])
    );
    // The ref file deleted by hand leaves its reflog; the backup is gone too.
    std::fs::remove_file(repo.path().join(".git/refs/ai-sprint")).unwrap();
    repo.git(["update-ref", "-d", "refs/ai-sprint-backup"]);
    let out = repo.sprint(["recover", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["outcome"], "restored", "{v}");
    assert_eq!(v["source"], "reflog");
    assert_eq!(v["commit"], tip.trim());
    assert_eq!(v["tasks"], 1);
    assert!(repo.sprint(["show", "T001"]).contains("one"));

    // Nothing recorded at all, but a sprint's branch: only --fresh.
    repo.git(["branch", "sprint/f/T001"]);
    repo.git(["update-ref", "-d", "refs/ai-sprint"]);
    repo.git(["update-ref", "-d", "refs/ai-sprint-backup"]);
    let refused = repo.run(["add", "f", "two"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let init = repo.run(["init", "--no-hooks"]);
    assert!(
        stderr(&init).contains("branches sprint/f/T001"),
        "{}",
        stderr(&init)
    );
    let fresh = repo.sprint(["recover", "--fresh"]);
    assert!(
        fresh.starts_with("Started a new sprint state at refs/ai-sprint"),
        "{fresh}"
    );
    assert!(
        fresh.contains("left as they were: branches sprint/f/T001"),
        "{fresh}"
    );
    repo.sprint(["add", "f", "two"]);
    let again = repo.run(["recover", "--fresh"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("--fresh only starts over when it is missing"));
}

#[test]
fn regression_git_locks_left_by_a_killed_merge_do_not_fail_every_merge_after_it() {
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 One in a.txt\n");
    // What a git killed mid-merge (with its orchestrator) leaves: the
    // Refinery worktree's index lock and a lock on the integration branch.
    let git = s.f.repo.path().join(".git");
    s.f.ok(&["init"]);
    s.f.repo.git(["branch", "sprint/f/integration", "main"]);
    let refinery = git.join("sprint/worktrees/refinery");
    s.f.repo.add_detached_worktree(&refinery, "main");
    let index_lock = git.join("worktrees/refinery/index.lock");
    let branch_lock = git.join("refs/heads/sprint/f/integration.lock");
    for lock in [&index_lock, &branch_lock] {
        std::fs::write(lock, "").unwrap();
        age(lock, 60);
    }
    s.start(&[]);
    s.wait_done(60);
    assert!(!index_lock.exists() && !branch_lock.exists());
    let t = &s.tasks()["T001"];
    assert!(
        t["history"].as_array().is_none(),
        "no attempt was spent: {t}"
    );
    assert_each_merged_once(&s.f.repo, &["f/T001"]);
}
