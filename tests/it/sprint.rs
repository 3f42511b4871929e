//! Whole sprints against real git and tmux: the orchestrator, scripted
//! agents, gates and the Refinery, each test in its own repository and tmux
//! server. The audit trail on refs/ai-sprint is what the checks read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fleet::{agent, Fleet};

/// Fails a post-merge (or test) gate on conflict markers or a file saying BAD.
pub(crate) const CHECK: &str = r#"#!/bin/sh
if grep -rIl -e '^<<<<<<< ' -e '^>>>>>>> ' --exclude-dir=.git . ; then echo "conflict markers"; exit 1; fi
if grep -rIl '^BAD' --exclude-dir=.git . ; then echo "found BAD"; exit 1; fi
exit 0
"#;

pub(crate) struct Sprint {
    pub(crate) f: Fleet,
}

/// One state commit's transitions, oldest first: (task, from, to, reason).
pub(crate) type Transition = (String, String, String, String);

impl Sprint {
    /// A repository with `check.sh`, the config and `tasks.md` committed.
    pub(crate) fn new(config: &str, tasks: &str) -> Sprint {
        let f = Fleet::new();
        f.repo.write("check.sh", CHECK);
        f.repo.write(".git-sprint.yaml", config);
        f.repo.write("specs/f/tasks.md", tasks);
        f.repo.git(["add", "-A"]);
        f.repo.git(["commit", "-q", "-m", "spec"]);
        Sprint { f }
    }

    pub(crate) fn start(&self, env: &[(&str, &str)]) {
        let mut cmd = self.f.cmd(super::support::BIN);
        cmd.arg("start");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", super::support::stderr(&out));
    }

    /// Makes `$HOME/once/`, where agents under [`ONCE`] may keep markers.
    pub(crate) fn once_dir(&self) {
        std::fs::create_dir_all(self.f.repo.home().join("once")).unwrap();
    }

    pub(crate) fn status(&self) -> Value {
        serde_json::from_str(&self.f.ok(&["status", "--json"])).unwrap()
    }

    pub(crate) fn tasks(&self) -> HashMap<String, Value> {
        self.status()["features"][0]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["id"].as_str().unwrap().to_owned(), t.clone()))
            .collect()
    }

    /// Polls the board until `done` holds (the test waits; the product does not poll).
    pub(crate) fn wait(
        &self,
        what: &str,
        secs: u64,
        done: impl Fn(&HashMap<String, Value>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let tasks = self.tasks();
            if done(&tasks) {
                return;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(
                    self.f.repo.path().join(".git/sprint/logs/orchestrator.log"),
                )
                .unwrap_or_default();
                panic!(
                    "timed out waiting for {what}\n{}\n{}\n--- orchestrator log ---\n{log}",
                    self.f.ok(&["status"]),
                    self.f.ok(&["log", "-n", "30"])
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_done(&self, secs: u64) {
        self.wait("every task done", secs, |t| {
            t.values().all(|t| t["status"] == "done")
        });
        // The feature closes right after its last merge.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status()["features"][0]["feature"]["status"] != "done" {
            assert!(Instant::now() < deadline, "feature not closed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn transitions(&self) -> Vec<Transition> {
        let log = self
            .f
            .repo
            .git(["log", "--reverse", "--format=%B%x00", "refs/ai-sprint"]);
        let mut out = Vec::new();
        for msg in log.split('\0') {
            let mut cur: Option<Transition> = None;
            for line in msg.lines() {
                if let Some(v) = line.strip_prefix("Sprint-Task: ") {
                    out.extend(cur.take());
                    cur = Some((v.to_owned(), String::new(), String::new(), String::new()));
                } else if let (Some(v), Some(c)) =
                    (line.strip_prefix("Sprint-From: "), cur.as_mut())
                {
                    c.1 = v.to_owned();
                } else if let (Some(v), Some(c)) = (line.strip_prefix("Sprint-To: "), cur.as_mut())
                {
                    c.2 = v.to_owned();
                } else if let (Some(v), Some(c)) =
                    (line.strip_prefix("Sprint-Reason: "), cur.as_mut())
                {
                    c.3 = v.to_owned();
                }
            }
            out.extend(cur);
        }
        out
    }

    /// Merge commits on the integration branch, per task.
    pub(crate) fn merges(&self) -> HashMap<String, usize> {
        let mut n = HashMap::new();
        for subject in self
            .f
            .repo
            .git(["log", "--merges", "--format=%s", "sprint/f/integration"])
            .lines()
        {
            if let Some(rest) = subject.strip_prefix("Merge f/") {
                *n.entry(rest.split(':').next().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
        }
        n
    }

    /// Runs check.sh on every commit the integration branch ever pointed at.
    pub(crate) fn check_every_integration_commit(&self) {
        let tips = self
            .f
            .repo
            .git(["rev-list", "--first-parent", "main..sprint/f/integration"]);
        assert!(!tips.trim().is_empty(), "nothing was merged");
        let dir = tempfile::tempdir().unwrap();
        for (i, commit) in tips.lines().enumerate() {
            let wt = dir.path().join(format!("c{i}"));
            self.f.repo.add_detached_worktree(&wt, commit);
            let out = self
                .f
                .cmd("sh")
                .arg("check.sh")
                .current_dir(&wt)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "check.sh fails on integration commit {commit}: {}",
                super::support::stdout(&out)
            );
            self.f
                .repo
                .git(["worktree", "remove", "--force", wt.to_str().unwrap()]);
        }
    }
}

/// Config for agents that remember across attempts in `$HOME/once/`: the
/// sandbox lets them write only there (see [`Sprint::once_dir`]).
pub(crate) const ONCE: &str = "sandbox: { writable: [~/once] }\n";

pub(crate) fn config(agent_command: &str, extra: &str) -> String {
    format!(
        r#"agents:
  scripted:
    command: ["sh", "-c", {cmd}]
    prompt: env
roles:
  developer: {{ agent: scripted, count: 3 }}
  tester: {{ agent: scripted, count: 2 }}
gates:
  review:
    - name: has-commits
      run: test "$(git rev-list --count sprint/f/integration..HEAD)" -gt 0
  test:
    - name: check
      run: sh check.sh
  post_merge:
    - name: check
      run: sh check.sh
{extra}"#,
        cmd = serde_json::to_string(agent_command).unwrap()
    )
}

pub(crate) fn scripted() -> String {
    format!("exec '{}'", agent())
}

const TWELVE: &str = "\
# Tasks: twelve

## Phase 1: Setup

- [ ] T001 Create src/core.txt

## Phase 2: Stories

- [ ] T002 [P] [US1] Model in src/us1/model.txt
- [ ] T003 [P] [US1] View in src/us1/view.txt
- [ ] T004 [US1] Wire src/us1/app.txt (depends on T002)
- [ ] T005 [P] [US2] Store in src/us2/store.txt
- [ ] T006 [P] [US2] Cache in src/us2/cache.txt
- [ ] T007 [P] [US2] Shared log in src/shared.txt
- [ ] T008 [P] [US3] Report in src/us3/report.txt
- [ ] T009 [P] [US3] Export in src/us3/export.txt and src/shared.txt
- [ ] T010 [US3] Import in src/us3/import.txt (depends on T008)

## Phase 3: Polish

- [ ] T011 [P] Docs in docs/guide.txt
- [ ] T012 [P] Changelog in CHANGELOG.txt
";

#[test]
fn a_twelve_task_three_story_spec_runs_to_done_in_order_and_merged_once() {
    let s = Sprint::new(&config(&scripted(), ""), TWELVE);
    s.start(&[]);
    s.wait_done(120);

    let merges = s.merges();
    assert_eq!(merges.len(), 12, "{merges:?}");
    assert!(merges.values().all(|n| *n == 1), "{merges:?}");
    s.check_every_integration_commit();
    let status = s.status();
    let convoys = status["features"][0]["convoys"].as_array().unwrap();
    assert!(convoys.iter().all(|c| c["status"] == "done"), "{convoys:?}");

    // The worktree pool is on (the default): merged tasks' worktrees went
    // back to it, and later tasks re-pointed them (a checkout onto a task
    // branch in a spare's HEAD log is only ever the pool's).
    let spares = s.f.pooled();
    assert!(!spares.is_empty() && spares.len() <= 4, "{spares:?}");
    let reused = spares.iter().any(|spare| {
        let dotgit = std::fs::read_to_string(spare.join(".git")).unwrap();
        let admin = dotgit.trim().strip_prefix("gitdir: ").unwrap().to_owned();
        let log = std::fs::read_to_string(std::path::Path::new(&admin).join("logs/HEAD"))
            .unwrap_or_default();
        log.contains("to sprint/f/")
    });
    assert!(reused, "no task reused a pooled worktree: {spares:?}");

    // From the audit trail: dependencies were done before a task started,
    // and no two tasks naming the same path were ever active together.
    let tasks = s.tasks();
    let mut now: HashMap<String, String> = HashMap::new();
    let active = |st: &str| matches!(st, "in_progress" | "in_review" | "in_tests" | "in_docs");
    for (task, from, to, _) in s.transitions() {
        let Some(id) = task.strip_prefix("f/") else {
            continue;
        };
        if from == "todo" && to == "in_progress" {
            for dep in tasks[id]["deps"].as_array().into_iter().flatten() {
                assert_eq!(
                    now.get(dep.as_str().unwrap()).map(String::as_str),
                    Some("done"),
                    "{id} started before {dep}"
                );
            }
        }
        now.insert(id.to_owned(), to.clone());
        if active(&to) {
            let paths = |t: &str| -> Vec<String> {
                tasks[t]["paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| p.as_str().unwrap().to_owned())
                    .collect()
            };
            for (other, st) in &now {
                if other != id && active(st) {
                    let shared: Vec<_> = paths(id)
                        .into_iter()
                        .filter(|p| paths(other).contains(p))
                        .collect();
                    assert!(
                        shared.is_empty(),
                        "{id} and {other} active together on {shared:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_review_gate_that_fails_once_is_fed_back_into_the_next_prompt() {
    let marks = tempfile::tempdir().unwrap();
    let extra = format!(
        "policy: {{ max_attempts: 3 }}\nsandbox: {{ writable: ['{}'] }}\n",
        marks.path().display()
    );
    let cfg = config(&scripted(), &extra).replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        &format!("  review:\n    - name: lint\n      run: 'm=\"{}/lint-ran\"; if [ -e \"$m\" ]; then exit 0; fi; touch \"$m\"; echo \"lint: unused variable in src/a.txt\"; exit 1'\n", marks.path().display()),
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/a.txt\n");
    s.start(&[]);
    s.wait_done(60);
    let status = s.status();
    let t = &s.tasks()["T001"];
    assert_eq!(t["attempts"], 2);
    let second = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "f.T001.dev.2")
        .expect("a second developer");
    let prompt = second["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("lint: unused variable in src/a.txt"),
        "{prompt}"
    );
    let first = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "f.T001.dev.1")
        .unwrap();
    assert!(!first["prompt"]
        .as_str()
        .unwrap()
        .contains("unused variable"));
}

#[test]
fn a_hung_agent_loses_its_lease_and_the_task_is_retried_with_its_work_kept() {
    let once = format!(
        "m=\"$HOME/once/hung\"; if [ ! -e \"$m\" ]; then touch \"$m\"; SCRIPTED_AGENT_MODE=hang {}; fi; {}",
        scripted(),
        scripted()
    );
    let s = Sprint::new(
        &config(
            &once,
            &format!(
                "timeouts: {{ lease: 2s, hung: 2s }}\npolicy: {{ retry_backoff: 1s }}\n{ONCE}"
            ),
        ),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.once_dir();
    s.start(&[]);
    s.wait_done(60);
    let trail = s.transitions();
    assert!(
        trail
            .iter()
            .any(|(t, _, to, why)| t == "f/T001" && to == "todo" && why.contains("hung")),
        "{trail:?}"
    );
    assert_eq!(s.tasks()["T001"]["attempts"], 2);
    // What the hung agent wrote was committed, not lost: it is merged (the
    // task branch itself is deleted once the feature is done).
    let log = s.f.repo.git(["log", "--format=%s", "sprint/f/integration"]);
    assert!(log.lines().any(|l| l.starts_with("WIP")), "{log}");
}

#[test]
fn an_agent_that_always_fails_fails_its_task_blocks_dependants_and_others_finish() {
    let tasks = "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n- [ ] T003 [P] Three in c.txt (depends on T002)\n- [ ] T004 [P] Four in d.txt\n";
    let s = Sprint::new(&config(&scripted(), "policy: { max_attempts: 2 }\n"), tasks);
    s.start(&[("SCRIPTED_AGENT_MODE_f_T002", "fail")]);
    s.wait("T002 failed, T001 and T004 done", 60, |t| {
        t["T002"]["status"] == "failed"
            && t["T001"]["status"] == "done"
            && t["T004"]["status"] == "done"
    });
    let t = s.tasks();
    assert_eq!(t["T002"]["attempts"], 2);
    assert_eq!(t["T003"]["status"], "blocked");
    assert!(
        t["T003"]["reason"]
            .as_str()
            .unwrap()
            .contains("T002 failed"),
        "{}",
        t["T003"]
    );
}

#[test]
fn kill_9_of_the_orchestrator_mid_run_loses_nothing_and_starts_nothing_twice() {
    let s = Sprint::new(&config(&scripted(), ""), TWELVE);
    s.start(&[("SCRIPTED_AGENT_SLEEP", "1")]);
    s.wait("work in flight", 60, |t| {
        t.values().filter(|t| t["status"] == "done").count() >= 2
    });
    // Only its pid is wanted: an unhealthy answer (exit 1) has it too.
    let health = s.f.run(&["health", "--json"]);
    let health: Value = serde_json::from_str(&super::support::stdout(&health).replace('\n', " "))
        .unwrap_or(Value::Null);
    let pid = health["orchestrator"].as_u64().unwrap_or_else(|| {
        std::fs::read_to_string(s.f.repo.path().join(".git/sprint/orchestrator.lock"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    });
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    // The kernel frees the orchestrator's lock when the process is gone.
    let gone = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < gone, "orchestrator {pid} survived kill -9");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.start(&[("SCRIPTED_AGENT_SLEEP", "1")]);
    // A new orchestrator holds the lock (once, CI saw `start` take a lock
    // still held a moment after the kill for a running orchestrator).
    let lock = s.f.repo.path().join(".git/sprint/orchestrator.lock");
    let restarted = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() == pid.to_string() {
        assert!(
            Instant::now() < restarted,
            "no new orchestrator after kill -9 of {pid}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.wait_done(180);
    let merges = s.merges();
    assert_eq!(merges.len(), 12);
    assert!(merges.values().all(|n| *n == 1), "{merges:?}");
    // Every developer attempt was claimed once.
    let mut claims: HashMap<String, usize> = HashMap::new();
    for (_, _, to, why) in s.transitions() {
        if to == "in_progress" {
            if let Some(who) = why.strip_prefix("claimed by ") {
                *claims
                    .entry(who.split(' ').next().unwrap().to_owned())
                    .or_insert(0) += 1;
            }
        }
    }
    assert!(claims.values().all(|n| *n == 1), "{claims:?}");
    s.check_every_integration_commit();
}

#[test]
fn an_edited_tasks_md_committed_mid_run_is_reconciled() {
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 One in a.txt\n");
    s.start(&[("SCRIPTED_AGENT_SLEEP", "1")]);
    s.f.repo.write(
        "specs/f/tasks.md",
        "- [ ] T001 One in a.txt\n- [ ] T002 Two in b.txt\n",
    );
    s.f.repo.git(["commit", "-q", "-am", "spec: add T002"]);
    s.wait_done(60);
    assert_eq!(s.merges().len(), 2);
}

#[test]
fn conflicting_tasks_the_second_gets_the_conflict_and_is_merged_after_rework() {
    // Each agent first merges the integration branch (keeping both sides),
    // then appends its task to shared.txt, which no task names.
    let rework = format!(
        r#"int=sprint/f/integration
if ! git merge -q --no-edit "$int" >/dev/null 2>&1; then
  for f in $(git diff --name-only --diff-filter=U); do grep -v -e '^<<<<<<< ' -e '^=======' -e '^>>>>>>> ' "$f" > "$f.tmp"; mv "$f.tmp" "$f"; git add "$f"; done
  git commit -q --no-edit
fi
grep -q "$SPRINT_TASK" shared.txt 2>/dev/null || {{ echo "$SPRINT_TASK" >> shared.txt; git add shared.txt; git commit -q -m "$SPRINT_TASK: shared"; }}
{}"#,
        scripted()
    );
    let s = Sprint::new(
        &config(&rework, ""),
        "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n",
    );
    s.start(&[]);
    s.wait_done(90);
    let t = s.tasks();
    let reworked: Vec<_> = ["T001", "T002"]
        .into_iter()
        .filter(|id| t[*id]["attempts"] == 2)
        .collect();
    assert_eq!(reworked.len(), 1, "exactly one task hit the conflict");
    let feedback = t[reworked[0]]["feedback"].to_string();
    assert!(feedback.contains("conflicts in: shared.txt"), "{feedback}");
    let shared = s.f.repo.git(["show", "sprint/f/integration:shared.txt"]);
    assert!(
        shared.contains("f/T001") && shared.contains("f/T002"),
        "{shared}"
    );
    s.check_every_integration_commit();
}

#[test]
fn a_failing_post_merge_gate_keeps_the_integration_branch_where_it_was() {
    let once = format!(
        r#"m="$HOME/once/bad"
case "$SPRINT_WORKER" in *.dev.*)
  if [ ! -e "$m" ]; then touch "$m"; echo BAD > bad.txt; git add bad.txt; git commit -q -m "bad"
  elif [ -e bad.txt ]; then git rm -q bad.txt; git commit -q -m "fix"; fi
esac
{}"#,
        scripted()
    );
    // Only the post-merge gate looks for BAD: review and test gates pass.
    let cfg = config(&once, ONCE).replace(
        "  test:\n    - name: check\n      run: sh check.sh\n",
        "  test: []\n",
    );
    let s = Sprint::new(&cfg, "- [ ] T001 One in a.txt\n");
    s.once_dir();
    let before = s.f.repo.git(["rev-parse", "HEAD"]);
    s.start(&[]);
    s.wait_done(60);
    let trail = s.transitions();
    assert!(
        trail.iter().any(|(t, from, to, why)| t == "f/T001"
            && from == "in_docs"
            && to == "in_progress"
            && why.contains("post_merge")),
        "{trail:?}"
    );
    // The branch moved once: from the base to the one good merge.
    let reflog =
        s.f.repo
            .git(["reflog", "show", "--format=%H", "sprint/f/integration"]);
    assert_eq!(reflog.lines().count(), 2, "{reflog}");
    assert_eq!(reflog.lines().last().unwrap(), before.trim());
    s.check_every_integration_commit();
}

#[test]
fn kill_9_during_a_merge_merges_once_or_not_at_all() {
    let s = Sprint::new(
        &config(&scripted(), ""),
        "- [ ] T001 One in a.txt\n- [ ] T002 Two in b.txt\n",
    );
    // The post-merge gate says when a merge is under way, and takes a while.
    // Gates run in the agents' sandbox: the marker's directory is granted.
    let marks = tempfile::tempdir().unwrap();
    let marker = marks.path().join("merging");
    let cfg = std::fs::read_to_string(s.f.repo.path().join(".git-sprint.yaml")).unwrap().replace(
        "  post_merge:\n    - name: check\n      run: sh check.sh\n",
        &format!("  post_merge:\n    - name: slow-check\n      run: 'touch \"{}\"; sleep 2; sh check.sh'\n", marker.display()),
    ) + &format!("sandbox: {{ writable: ['{}'] }}\n", marks.path().display());
    s.f.repo.write(".git-sprint.yaml", &cfg);
    s.f.repo
        .git(["commit", "-q", "-am", "slow post-merge gate"]);
    s.start(&[]);
    super::support::wait_for_file(&marker, 60, "a merge to start");
    let pid: u32 = std::fs::read_to_string(s.f.repo.path().join(".git/sprint/orchestrator.lock"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let gone = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < gone, "orchestrator {pid} survived kill -9");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.start(&[]);
    s.wait_done(90);
    let merges = s.merges();
    assert_eq!(merges.len(), 2);
    assert!(merges.values().all(|n| *n == 1), "{merges:?}");
    // The branch moved exactly once per merge, never to an unchecked commit.
    let reflog =
        s.f.repo
            .git(["reflog", "show", "--format=%H", "sprint/f/integration"]);
    assert_eq!(reflog.lines().count(), 3, "{reflog}");
    s.check_every_integration_commit();
}

#[test]
fn a_finished_convoy_gets_its_docs_from_a_librarian_merged_like_a_task() {
    let tasks = "- [ ] T001 [P] [US1] One in a.txt\n- [ ] T002 [P] [US1] Two in b.txt\n- [ ] T003 [P] [US2] Three in c.txt\n";
    let cfg = config(&scripted(), "docs: [docs/guide.md]\nroles_extra: {}\n")
        .replace("roles_extra: {}\n", "");
    let cfg = cfg.replace(
        "  tester: { agent: scripted, count: 2 }\n",
        "  tester: { agent: scripted, count: 2 }\n  librarian: { agent: scripted, count: 1 }\n",
    );
    let s = Sprint::new(&cfg, tasks);
    s.start(&[]);
    s.wait_done(90);
    let status = s.status();
    for c in status["features"][0]["convoys"].as_array().unwrap() {
        assert_eq!(c["status"], "done", "{c}");
    }
    let trail = s.transitions();
    for convoy in ["US1", "US2"] {
        assert!(
            trail
                .iter()
                .any(|(t, from, to, why)| t == &format!("f/{convoy}")
                    && from == "in_docs"
                    && to == "done"
                    && why.starts_with("docs merged")),
            "{convoy}: {trail:?}"
        );
    }
    // The Librarian was told what the convoy did.
    let librarian = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "f.docs-US1.docs.1")
        .expect("a librarian for US1");
    let prompt = librarian["prompt"].as_str().unwrap();
    // The diffstat pads names to the longest one, which depends on whether
    // the other convoy's docs were merged first.
    assert!(
        prompt.contains("- T001: One in a.txt")
            && prompt
                .lines()
                .any(|l| l.trim_start().starts_with("a.txt ") && l.contains(" | ")),
        "{prompt}"
    );
    let guide = s.f.repo.git(["show", "sprint/f/integration:docs/guide.md"]);
    assert!(
        guide.contains("f/docs-US1") && guide.contains("f/docs-US2"),
        "{guide}"
    );
    let merges = s.merges();
    assert_eq!(merges.get("docs-US1"), Some(&1), "{merges:?}");
    s.check_every_integration_commit();
}

#[test]
fn merge_auto_brings_a_finished_feature_into_its_base_and_deletes_merged_task_branches() {
    let tasks = "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n";
    let s = Sprint::new(
        &config(&scripted(), "merge: { auto: true, mode: merge }\n"),
        tasks,
    );
    s.start(&[]);
    s.wait_done(60);
    // Closing the feature and merging it into main is one more step.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.status()["features"][0]["feature"]["note"].is_null() {
        assert!(Instant::now() < deadline, "no merge into main");
        std::thread::sleep(Duration::from_millis(100));
    }
    let note = s.status()["features"][0]["feature"]["note"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(note.starts_with("merged into main"), "{note}");
    // main holds both tasks' work and the person's checkout followed.
    assert!(s.f.repo.path().join("a.txt").exists() && s.f.repo.path().join("b.txt").exists());
    let main = s.f.repo.git(["rev-parse", "main"]);
    s.f.repo.git([
        "merge-base",
        "--is-ancestor",
        "sprint/f/integration",
        main.trim(),
    ]);
    let branches = s.f.repo.git(["branch", "--list", "sprint/f/T*"]);
    assert!(branches.trim().is_empty(), "task branches left: {branches}");
    assert!(s.f.ok(&["status"]).contains("merged into main"));
}

#[test]
fn stop_all_keeps_the_work_health_notices_and_start_carries_on() {
    let s = Sprint::new(
        &config(&scripted(), ""),
        "- [ ] T001 [P] One in a.txt\n- [ ] T002 [P] Two in b.txt\n",
    );
    s.start(&[("SCRIPTED_AGENT_SLEEP", "30")]);
    s.wait("both developers running", 30, |t| {
        t.values().all(|t| t["status"] == "in_progress")
    });
    // Claimed is not yet started: wait for both wrappers to record `running`.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.status()["agents"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["state"] == "running").count())
        != Some(2)
    {
        assert!(
            Instant::now() < deadline,
            "both agents never ran: {}",
            s.f.ok(&["list"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let healthy = s.f.run(&["health"]);
    assert!(
        healthy.status.success(),
        "{}",
        super::support::stdout(&healthy)
    );
    let out = s.f.ok(&["stop", "--all"]);
    assert!(
        out.contains("Orchestrator stopped") && out.contains("Stopped 2 agents"),
        "{out}"
    );
    assert!(s.f.sessions().is_empty(), "{:?}", s.f.sessions());
    // Nothing runs now, but the tasks still say in_progress: unhealthy.
    let sick = s.f.run(&["health"]);
    assert_eq!(
        sick.status.code(),
        Some(1),
        "{}",
        super::support::stdout(&sick)
    );
    assert!(super::support::stdout(&sick).contains("orchestrator: not running"));
    // Their branches are kept; a new start retries and finishes.
    s.f.repo.git(["rev-parse", "--verify", "sprint/f/T001"]);
    s.start(&[]);
    s.wait_done(60);
    assert_eq!(s.merges().len(), 2);
}

#[test]
fn a_draft_tasks_md_saved_while_running_is_checked_at_once() {
    // No specs/ when the orchestrator starts: it watches for it to appear.
    // The draft may land before or after the watch begins (`start` returns
    // once the orchestrator holds its lock): both must be reported, since
    // drafts are also checked when the orchestrator starts.
    let f = Fleet::new();
    f.repo.write(".git-sprint.yaml", &config(&scripted(), ""));
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "config"]);
    f.ok(&["start"]);
    f.repo.write(
        "specs/draft/tasks.md",
        "- [ ] T001 one (depends on T002)\n- [ ] T002 two (depends on T001)\n",
    );
    let log = f.repo.path().join(".git/sprint/logs/orchestrator.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("does not parse")
            && text.contains("specs/draft/tasks.md:1: dependency cycle")
        {
            break;
        }
        assert!(Instant::now() < deadline, "not reported:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn regression_a_draft_saved_before_start_was_never_checked() {
    // Drafts were checked only on a file event, so one saved before the
    // orchestrator began watching went unreported until touched again.
    let f = Fleet::new();
    f.repo.write(".git-sprint.yaml", &config(&scripted(), ""));
    f.repo.git(["add", "-A"]);
    f.repo.git(["commit", "-q", "-m", "config"]);
    f.repo
        .write("specs/early/tasks.md", "- [ ] T001 one (depends on T009)\n");
    f.ok(&["start"]);
    let log = f.repo.path().join(".git/sprint/logs/orchestrator.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("does not parse") && text.contains("specs/early/tasks.md") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the draft saved before start was not reported:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn regression_a_half_made_task_worktree_stopped_its_task_for_good() {
    // 47dc9f1: an orchestrator that died while making a task's worktree left
    // a directory git does not know; making the worktree again failed on it.
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 One in a.txt\n");
    // The sprint's state exists, as it did when that orchestrator died.
    s.f.ok(&["ingest"]);
    let half = s.f.repo.path().join(".git/sprint/worktrees/f.T001");
    std::fs::create_dir_all(half.join("src")).unwrap();
    std::fs::write(half.join("src/partial.txt"), "half written\n").unwrap();
    s.start(&[]);
    s.wait_done(60);
    let tasks = s.tasks();
    assert_eq!(tasks["T001"]["attempts"], 1, "{:#}", tasks["T001"]);
    assert_eq!(s.merges().len(), 1);
}

#[test]
fn regression_a_pooled_worktree_taken_but_not_re_pointed_merged_nothing_for_ever() {
    // What a kill -9 between taking a pooled worktree (a rename) and
    // re-pointing it leaves: the task's worktree, detached, never set up.
    // Its agent committed on no branch, and the merge then failed at once
    // and again for ever ("sprint/f/T001: Needed a single revision").
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 One in a.txt\n");
    // The sprint's state exists, as it did when that orchestrator died.
    s.f.ok(&["ingest"]);
    let wt = s.f.repo.path().join(".git/sprint/worktrees/f.T001");
    s.f.repo.add_detached_worktree(&wt, "HEAD");
    s.start(&[]);
    s.wait_done(60);
    assert_eq!(s.merges().len(), 1);
    assert_eq!(s.tasks()["T001"]["attempts"], 1);
}

#[test]
fn a_merge_that_keeps_failing_without_a_verdict_backs_off_then_lands() {
    // The Refinery cannot take its lock (a directory stands where it goes):
    // every merge fails before it starts and records nothing. Before, the
    // job's wake-up retried it at once, hundreds of times a second.
    let s = Sprint::new(&config(&scripted(), ""), "- [ ] T001 One in a.txt\n");
    let lock = s.f.repo.path().join(".git/sprint/refinery.lock");
    std::fs::create_dir_all(&lock).unwrap();
    s.start(&[]);
    let log_path = s.f.repo.path().join(".git/sprint/logs/orchestrator.log");
    let failures = || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("merge failed"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while failures().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no three merge failures: {:?}",
            failures()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Three seconds more: the waits (2 s, then 4 s) allow one more try at
    // most; a slow machine makes fewer, and a loop without them hundreds.
    super::support::holds_for(
        "at most 5 merge failures",
        Duration::from_secs(3),
        || match failures() {
            seen if seen.len() <= 5 => Ok(()),
            seen => Err(format!("{seen:#?}")),
        },
    );
    let seen = failures();
    for (line, wait) in seen
        .iter()
        .zip(["retry_in_secs=1", "retry_in_secs=2", "retry_in_secs=4"])
    {
        assert!(line.contains(wait), "{line}");
    }
    // health says what keeps failing, and why.
    let retrying = |h: &Value| -> Vec<Value> {
        h["trouble"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["kind"] == "retrying")
            .cloned()
            .collect()
    };
    let out = s.f.run(&["health", "--json"]);
    assert!(!out.status.success(), "healthy while merges keep failing");
    let health: Value = serde_json::from_str(&super::support::stdout(&out)).unwrap();
    let shown = retrying(&health);
    assert_eq!(shown.len(), 1, "{health:#}");
    assert_eq!(shown[0]["subject"], "f/T001");
    let message = shown[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("merge failed") && message.contains("cannot take the refinery lock"),
        "{message}"
    );
    std::fs::remove_dir(&lock).unwrap();
    s.wait_done(60);
    assert_eq!(s.merges().len(), 1);
    let out = s.f.run(&["health", "--json"]);
    let health: Value = serde_json::from_str(&super::support::stdout(&out)).unwrap();
    assert!(retrying(&health).is_empty(), "{health:#}");
}

#[test]
fn regression_a_lock_left_on_a_task_branch_failed_every_attempt() {
    // kill -9 of an orchestrator inside `git worktree add` left
    // refs/heads/sprint/f/T001.lock; every attempt's `worktree add` then
    // failed on it until the task failed.
    let s = Sprint::new(
        &config(
            &scripted(),
            "policy: { max_attempts: 2, retry_backoff: 1s }\n",
        ),
        "- [ ] T001 One in a.txt\n",
    );
    s.f.ok(&["ingest"]);
    let refs = s.f.repo.path().join(".git/refs/heads/sprint/f");
    std::fs::create_dir_all(&refs).unwrap();
    let main = s.f.repo.git(["rev-parse", "main"]);
    std::fs::write(refs.join("T001.lock"), main).unwrap();
    s.start(&[]);
    s.wait_done(60);
    assert_eq!(s.tasks()["T001"]["attempts"], 1);
    assert!(!refs.join("T001.lock").exists());
}
