//! Attempts mean something: every way an attempt ends badly counts against
//! `policy.max_attempts`, attempts are spaced by a backoff, a run that
//! changed nothing is never merged, `retry` starts afresh, a person's
//! cancel sticks, and `health` names what needs a person. Hostile scripted
//! agents against real git and tmux.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::sprint::{config, scripted, Sprint};

/// The developer agents the state knows for `task`, oldest first.
fn developers(s: &Sprint, task: &str) -> Vec<Value> {
    let mut v: Vec<Value> = s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["task"] == format!("f/{task}") && a["role"] == "developer")
        .cloned()
        .collect();
    v.sort_by_key(|a| a["started"].as_i64());
    v
}

fn health(s: &Sprint) -> (Option<i32>, String) {
    let out = s.f.run(&["health"]);
    (
        out.status.code(),
        format!(
            "{}{}",
            super::support::stdout(&out),
            super::support::stderr(&out)
        ),
    )
}

#[test]
fn a_gate_that_always_fails_costs_max_attempts_spaced_by_backoff_then_fails_and_blocks() {
    let cfg = config(
        &scripted(),
        "policy: { max_attempts: 3, retry_backoff: 1s }\n",
    )
    .replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        "  review:\n    - name: lint\n      run: \"echo lint says always unhappy; exit 1\"\n",
    );
    let s = Sprint::new(
        &cfg,
        "- [ ] T001 Write src/a.txt\n- [ ] T002 Write src/b.txt (depends on T001)\n",
    );
    s.start(&[]);
    s.wait("T001 failed and T002 blocked", 90, |t| {
        t["T001"]["status"] == "failed" && t["T002"]["status"] == "blocked"
    });
    let t = &s.tasks()["T001"];
    assert_eq!(t["attempts"], 3, "{t}");
    assert_eq!(t["cause"], "gate", "{t}");
    // Exactly three developer runs, never more, each a fresh id.
    let devs = developers(&s, "T001");
    let ids: Vec<&str> = devs.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["f.T001.dev.1", "f.T001.dev.2", "f.T001.dev.3"]);
    // Spaced by the backoff: no two runs started in the same second.
    let starts: Vec<i64> = devs
        .iter()
        .map(|a| a["started"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[1] > w[0]), "{starts:?}");
    // Every failed attempt is in the history, with its cause; the gate's
    // output went to the prompt of the next attempt.
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    assert!(history
        .iter()
        .all(|h| h["cause"] == "gate" && h["counted"] == true));
    assert!(devs[1]["prompt"]
        .as_str()
        .unwrap()
        .contains("always unhappy"));
    let blocked = &s.tasks()["T002"];
    assert!(
        blocked["reason"].as_str().unwrap().contains("T001"),
        "{blocked}"
    );
    // Nothing more starts, and health says what needs a person.
    super::support::holds_for("three developers of T001", Duration::from_secs(2), || {
        match developers(&s, "T001").len() {
            3 => Ok(()),
            n => Err(format!("{n} developers")),
        }
    });
    let (code, text) = health(&s);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("failed: f/T001")
            && text.contains("blocked: f/T002")
            && text.contains("stalled: f"),
        "{text}"
    );
    assert!(text.contains("git sprint retry f/T001"), "{text}");
}

#[test]
fn a_developer_that_changes_nothing_fails_its_attempts_with_no_change_and_nothing_is_merged() {
    let s = Sprint::new(
        &config(
            "echo 'Done.'",
            "policy: { max_attempts: 2, retry_backoff: 1s }\n",
        ),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait("T001 failed", 60, |t| t["T001"]["status"] == "failed");
    let t = &s.tasks()["T001"];
    assert_eq!(t["cause"], "no_change", "{t}");
    assert_eq!(t["attempts"], 2, "{t}");
    assert!(t.get("merged").is_none(), "{t}");
    let trail = s.transitions();
    assert!(
        !trail
            .iter()
            .any(|(task, _, to, _)| task == "f/T001" && to == "done"),
        "{trail:?}"
    );
    assert!(
        trail
            .iter()
            .any(|(task, _, _, why)| task == "f/T001" && why.contains("without a commit")),
        "{trail:?}"
    );
    assert_eq!(
        s.f.repo
            .git(["rev-list", "--count", "main..sprint/f/integration"])
            .trim(),
        "0"
    );
    let agent = &developers(&s, "T001")[0];
    assert_eq!(agent["cause"], "no_change", "{agent}");
}

#[test]
fn retry_after_failure_starts_a_fresh_attempt_with_a_fresh_agent_id_and_a_clean_prompt() {
    // Fails until a marker exists, then works.
    let flaky = format!(
        "if [ -e \"$(git rev-parse --git-common-dir)/fixed\" ]; then {}; else echo 'broken tool' >&2; exit 3; fi",
        scripted()
    );
    let s = Sprint::new(
        &config(&flaky, "policy: { max_attempts: 2, retry_backoff: 1s }\n"),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait("T001 failed", 60, |t| t["T001"]["status"] == "failed");
    std::fs::write(s.f.repo.path().join(".git/fixed"), "").unwrap();
    s.f.ok(&["retry", "f/T001"]);
    s.wait_done(60);
    let devs = developers(&s, "T001");
    let ids: Vec<&str> = devs.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["f.T001.dev.1", "f.T001.dev.2", "f.T001.dev.3"]);
    let prompt = devs[2]["prompt"].as_str().unwrap();
    assert!(
        !prompt.contains("broken tool") && !prompt.contains("was lost"),
        "{prompt}"
    );
    assert_eq!(s.merges().get("T001"), Some(&1));
}

#[test]
fn a_setup_command_that_fails_counts_attempts_and_fails_the_task_with_cause_setup() {
    let s = Sprint::new(
        &config(
            &scripted(),
            "policy: { max_attempts: 2, retry_backoff: 1s }\nsetup: { copy: [], commands: [\"echo no deps >&2; exit 7\"] }\n",
        ),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait("T001 failed", 60, |t| t["T001"]["status"] == "failed");
    let t = &s.tasks()["T001"];
    assert_eq!(t["cause"], "setup", "{t}");
    assert_eq!(t["attempts"], 2, "{t}");
    assert!(developers(&s, "T001").is_empty(), "no agent ever started");
}

#[test]
fn a_hung_tester_is_stopped_after_timeouts_hung_and_the_gates_judge() {
    // The tester hangs; developers work.
    let agent = format!(
        "case \"$SPRINT_WORKER\" in *.test.*) exec sleep 1000 ;; esac; {}",
        scripted()
    );
    let s = Sprint::new(
        &config(&agent, "timeouts: { hung: 3s }\n"),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait_done(60);
    let status = s.status();
    let tester = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["role"] == "tester")
        .expect("a tester");
    // Stopped: its wrapper records it killed, the Witness why.
    assert!(
        tester["state"] == "dead" || tester["state"] == "killed",
        "{tester}"
    );
    assert_eq!(tester["cause"], "hung", "{tester}");
}

#[test]
fn a_manual_cancel_sticks_across_re_ingest_blocks_dependants_and_the_feature_stalls() {
    let tasks =
        "- [ ] T001 [P] Write src/a.txt\n- [ ] T002 [P] Write src/b.txt (depends on T001)\n";
    let s = Sprint::new(&config(&scripted(), ""), tasks);
    // Cancel before anything runs: the orchestrator is not started yet.
    s.f.ok(&["init"]);
    s.f.ok(&["ingest"]);
    s.f.ok(&["cancel", "f/T001", "--reason", "not needed"]);
    assert_eq!(s.tasks()["T002"]["status"], "blocked");
    // An unrelated edit of tasks.md is re-ingested: T001 stays cancelled.
    s.f.repo.write(
        "specs/f/tasks.md",
        &format!("{tasks}- [ ] T003 [P] Write src/c.txt\n"),
    );
    s.f.repo.git(["commit", "-qam", "add T003"]);
    let t = s.tasks();
    assert_eq!(t["T001"]["status"], "cancelled", "{}", t["T001"]);
    assert_eq!(t["T003"]["status"], "todo");
    s.start(&[]);
    s.wait("T003 done", 60, |t| t["T003"]["status"] == "done");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, text) = health(&s);
        if code == Some(1) && text.contains("stalled: f") {
            assert!(text.contains("blocked: f/T002"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "never stalled: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(s.f.ok(&["status"]).contains("f  stalled"));
    // Changing T001's line in tasks.md brings it back.
    s.f.repo.write(
        "specs/f/tasks.md",
        "- [ ] T001 [P] Write src/a.txt for real\n- [ ] T002 [P] Write src/b.txt (depends on T001)\n- [ ] T003 [P] Write src/c.txt\n",
    );
    s.f.repo.git(["commit", "-qam", "T001 is needed after all"]);
    assert_ne!(s.tasks()["T001"]["status"], "cancelled");
    // …and what waited on it runs again.
    s.wait_done(60);
}

#[test]
fn timeouts_gate_bounds_a_gate_that_names_no_timeout() {
    let cfg = config(
        &scripted(),
        "policy: { max_attempts: 1 }\ntimeouts: { gate: 1s }\n",
    )
    .replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        "  review:\n    - name: slow\n      run: sleep 600\n",
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/a.txt\n");
    s.start(&[]);
    // Failed within the wait, so the 600 s gate was cut short.
    s.wait("T001 failed", 60, |t| t["T001"]["status"] == "failed");
    let t = &s.tasks()["T001"];
    assert_eq!(t["cause"], "gate", "{t}");
    let gate = &t["gates"][0];
    assert_eq!(gate["timed_out"], true, "{gate}");
}

/// An agent that does the scripted agent's work, then prints Claude Code's
/// stream-json of a run that cost $0.047313 (fixtures/streams).
fn costly() -> String {
    let stream =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/streams/claude-ok.stdout");
    format!(
        "'{}' >/dev/null 2>&1; cat '{}'",
        super::fleet::agent(),
        stream.display()
    )
}

#[test]
fn a_reached_task_budget_starts_no_new_attempt_until_the_limit_is_raised() {
    // The review gate fails the first attempt; the second would cost more
    // than the task's budget allows.
    let marks = tempfile::tempdir().unwrap();
    let cfg = config(
        &costly(),
        &format!(
            "policy: {{ max_attempts: 3, retry_backoff: 1s }}\nbudget: {{ task_usd: 0.04 }}\nsandbox: {{ writable: ['{}'] }}\n",
            marks.path().display()
        ),
    )
    .replace("  scripted:\n", "  scripted:\n    output: claude\n")
    .replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        &format!("  review:\n    - name: once\n      run: \"m={}/failed-once; [ -e $m ] && exit 0; touch $m; echo nope; exit 1\"\n", marks.path().display()),
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/a.txt\n");
    s.start(&[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let (code, text) = health(&s);
        if text.contains("budget: task f/T001") {
            assert_eq!(code, Some(1), "{text}");
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "budget never reached: {text}\n{}\n{}",
            s.f.ok(&["status"]),
            s.f.ok(&["log", "-n", "20"])
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text.contains("budget.task_usd"), "{text}");
    // The stop is recorded as soon as the cost is, which may be while the
    // review gate still runs; its failure then sends the task back.
    s.wait("T001 back in progress after its review", 60, |t| {
        t["T001"]["status"] == "in_progress"
    });
    // Past the retry backoff (1 s, jittered) no second attempt starts.
    super::support::holds_for(
        "one developer of T001",
        Duration::from_secs(4),
        || match developers(&s, "T001").len() {
            1 => Ok(()),
            n => Err(format!("{n} developers despite the budget")),
        },
    );
    // Recorded as a policy decision.
    let log = s.f.repo.git(["log", "--format=%B", "refs/ai-sprint"]);
    assert!(log.contains("Sprint-Policy: budget"), "{log}");
    // Raising the limit lets the task go on, without a restart.
    s.f.repo.git(["config", "sprint.budget.task-usd", "1"]);
    s.wait_done(60);
    assert_eq!(developers(&s, "T001").len(), 2);
}
