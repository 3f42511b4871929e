//! The AI Reviewer at the CAB (review gates of `kind: agent`), with
//! scripted Reviewers in real tmux sessions against real git: verdicts both
//! ways, the comments reaching the next developer's prompt, edits a
//! Reviewer must not make thrown away, and no verdict failing the gate.

use serde_json::Value;

use super::sprint::{scripted, Sprint, ONCE};

/// A sprint whose review stage runs the command gate `has-commits`, then
/// the AI gate `ai` played by `reviewer` (a shell script); no Tester.
fn config(reviewer: &str, extra: &str) -> String {
    format!(
        r#"agents:
  scripted:
    command: ["sh", "-c", {dev}]
    prompt: env
  reviewer:
    command: ["sh", "-c", {rev}]
    prompt: env
roles:
  developer: {{ agent: scripted, count: 2 }}
  tester: {{ agent: scripted, count: 0 }}
gates:
  review:
    - name: has-commits
      run: test "$(git rev-list --count sprint/f/integration..HEAD)" -gt 0
    - name: ai
      kind: agent
      agent: reviewer
      timeout: 2m
  post_merge:
    - name: check
      run: sh check.sh
{extra}"#,
        dev = serde_json::to_string(&scripted()).unwrap(),
        rev = serde_json::to_string(reviewer).unwrap(),
    )
}

const APPROVE: &str = r#"printf 'verdict: APPROVE\n' > "$GIT_SPRINT_VERDICT""#;

fn agents(s: &Sprint, task: &str, role: &str) -> Vec<Value> {
    let mut v: Vec<Value> = s.status()["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["task"] == format!("f/{task}") && a["role"] == role)
        .cloned()
        .collect();
    v.sort_by_key(|a| a["started"].as_i64());
    v
}

fn ai_results(t: &Value) -> Vec<Value> {
    t["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gate"] == "ai")
        .cloned()
        .collect()
}

#[test]
fn an_approving_reviewer_lets_the_task_merge_and_its_verdict_is_recorded() {
    // T001's Reviewer writes the file; T002's can only say it in its last
    // words, in a fenced block.
    let reviewer = format!(
        r#"if [ "$SPRINT_TASK" = f/T002 ]; then printf 'Looks right.\n```verdict\nverdict: APPROVE\n```\n'; else {APPROVE}; fi"#
    );
    let s = Sprint::new(
        &config(&reviewer, ""),
        "- [ ] T001 [P] Write src/a.txt\n- [ ] T002 [P] Write src/b.txt\n",
    );
    s.start(&[]);
    s.wait_done(90);
    let merges = s.merges();
    assert_eq!(merges.len(), 2, "{merges:?}");
    for task in ["T001", "T002"] {
        let t = &s.tasks()[task];
        let ai = ai_results(t);
        assert_eq!(ai.len(), 1, "{t}");
        assert_eq!(ai[0]["verdict"], "APPROVE", "{t}");
        assert_eq!(ai[0]["passed"], true, "{t}");
        assert_eq!(ai[0]["agent"], format!("f.{task}.review.1"), "{t}");
        assert!(t["review"].is_null(), "{t}");
        // The Reviewer got the task and its diff, and was told not to edit.
        let reviewers = agents(&s, task, "reviewer");
        assert_eq!(reviewers.len(), 1, "{reviewers:?}");
        let prompt = reviewers[0]["prompt"].as_str().unwrap();
        assert!(
            prompt.contains(&format!("task {task}"))
                && prompt.contains("Do not edit")
                && prompt.contains(&format!("+f/{task}: written by scripted-agent")),
            "{prompt}"
        );
    }
    // The CAB said why the task moved on.
    let reasons: Vec<String> = s
        .transitions()
        .into_iter()
        .filter(|(task, from, to, _)| task == "f/T001" && from == "in_review" && to == "in_tests")
        .map(|t| t.3)
        .collect();
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("reviewer f.T001.review.1 approved (review gate ai)"),
        "{reasons:?}"
    );
}

#[test]
fn requested_changes_reach_the_next_developer_prompt_then_an_approval_merges() {
    let reviewer = format!(
        r#"m="$HOME/once/reviewed"; if [ -e "$m" ]; then {APPROVE}; else touch "$m"; printf 'verdict: REQUEST_CHANGES\ncomments:\n  - {{path: src/a.txt, line: 1, body: "name the constant ANSWER"}}\n  - "add a test for zero"\n' > "$GIT_SPRINT_VERDICT"; fi"#
    );
    let s = Sprint::new(
        &config(&reviewer, &format!("{ONCE}policy: {{ max_attempts: 3 }}\n")),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.once_dir();
    s.start(&[]);
    s.wait_done(90);
    let t = &s.tasks()["T001"];
    assert_eq!(t["attempts"], 2, "{t}");
    let ai = ai_results(t);
    assert_eq!(ai.len(), 2, "{t}");
    assert_eq!(ai[0]["verdict"], "REQUEST_CHANGES", "{t}");
    assert_eq!(ai[0]["passed"], false, "{t}");
    assert_eq!(ai[0]["comments"][0]["path"], "src/a.txt", "{t}");
    assert_eq!(ai[0]["comments"][0]["line"], 1, "{t}");
    assert_eq!(ai[0]["comments"][1]["body"], "add a test for zero", "{t}");
    assert_eq!(ai[1]["verdict"], "APPROVE", "{t}");
    assert_eq!(ai[1]["agent"], "f.T001.review.2", "{t}");
    let history = t["history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["cause"] == "gate"
            && h["note"]
                .as_str()
                .unwrap()
                .contains("reviewer f.T001.review.1 requested changes (2 comments)")),
        "{history:?}"
    );
    // The comments are the "fix these" section of the second attempt only.
    let devs = agents(&s, "T001", "developer");
    assert_eq!(devs.len(), 2, "{devs:?}");
    let first = devs[0]["prompt"].as_str().unwrap();
    assert!(!first.contains("name the constant ANSWER"), "{first}");
    let second = devs[1]["prompt"].as_str().unwrap();
    assert!(
        second.contains("Feedback from earlier attempts")
            && second.contains("- src/a.txt:1: name the constant ANSWER")
            && second.contains("- add a test for zero"),
        "{second}"
    );
    // `show` tells who judged, what they said and asked; `--json` has it all.
    let shown = s.f.ok(&["show", "f/T001"]);
    assert!(
        shown.contains("f.T001.review.1: REQUEST_CHANGES")
            && shown.contains("- src/a.txt:1: name the constant ANSWER")
            && shown.contains("f.T001.review.2: APPROVE"),
        "{shown}"
    );
    let json: Value = serde_json::from_str(&s.f.ok(&["show", "f/T001", "--json"])).unwrap();
    assert_eq!(json["task"]["gates"], t["gates"], "{json}");
    // The second Reviewer saw what the first asked for.
    let reviewers = agents(&s, "T001", "reviewer");
    assert_eq!(reviewers.len(), 2, "{reviewers:?}");
    assert!(reviewers[1]["prompt"]
        .as_str()
        .unwrap()
        .contains("name the constant ANSWER"));
}

#[test]
fn a_reviewer_that_edits_has_its_edits_discarded_and_recorded() {
    let reviewer = format!(
        r#"echo hacked > src/a.txt && echo evil > evil.txt && git add -A && git -c user.name=r -c user.email=r@example.invalid commit -qm 'reviewer edit' && echo scratch > scratch.txt && {APPROVE}"#
    );
    let s = Sprint::new(&config(&reviewer, ""), "- [ ] T001 Write src/a.txt\n");
    s.start(&[]);
    s.wait_done(90);
    // What merged is the developer's work, not the Reviewer's.
    let a = s.f.repo.git(["show", "sprint/f/integration:src/a.txt"]);
    assert_eq!(a.trim(), "f/T001: written by scripted-agent");
    let tree =
        s.f.repo
            .git(["ls-tree", "-r", "--name-only", "sprint/f/integration"]);
    assert!(
        !tree.contains("evil.txt") && !tree.contains("scratch.txt"),
        "{tree}"
    );
    let t = &s.tasks()["T001"];
    let ai = ai_results(t);
    assert_eq!(ai.len(), 1, "{t}");
    assert_eq!(ai[0]["verdict"], "APPROVE", "{t}");
    let tail = ai[0]["output_tail"].as_str().unwrap();
    assert!(
        tail.contains("reviewer f.T001.review.1 changed what it reviewed")
            && tail.contains("commit(s) on sprint/f/T001"),
        "{tail}"
    );
    // Nothing it wrote is lost: its tip is kept aside, and it holds both
    // its commit and the wrapper's save of what it left uncommitted.
    let kept = s.f.repo.git([
        "log",
        "--format=%s",
        "refs/sprint/discarded/f.T001.review.1",
    ]);
    assert!(kept.contains("reviewer edit"), "{kept}");
    let kept_tree = s.f.repo.git([
        "ls-tree",
        "-r",
        "--name-only",
        "refs/sprint/discarded/f.T001.review.1",
    ]);
    assert!(kept_tree.contains("scratch.txt"), "{kept_tree}");
    let moved: Vec<String> = s
        .transitions()
        .into_iter()
        .filter(|(task, _, to, _)| task == "f/T001" && to == "in_tests")
        .map(|t| t.3)
        .collect();
    assert!(moved.iter().any(|r| r.contains("discarded")), "{moved:?}");
}

#[test]
fn a_reviewer_that_gives_no_verdict_fails_the_gate_with_its_cause() {
    let s = Sprint::new(
        &config("echo 'looks fine to me'", "policy: { max_attempts: 1 }\n"),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait("T001 failed", 90, |t| t["T001"]["status"] == "failed");
    let t = &s.tasks()["T001"];
    assert_eq!(t["cause"], "gate", "{t}");
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("review gate ai failed: the Reviewer gave no verdict"),
        "{reason}"
    );
    let ai = ai_results(t);
    assert_eq!(ai.len(), 1, "{t}");
    assert_eq!(ai[0]["passed"], false, "{t}");
    assert!(ai[0]["verdict"].is_null(), "{t}");
    assert!(
        ai[0]["output_tail"]
            .as_str()
            .unwrap()
            .contains("```verdict block"),
        "{t}"
    );
    assert!(s.merges().is_empty());
}

#[test]
fn a_reviewer_past_its_gate_timeout_is_stopped_and_the_gate_fails() {
    let s = Sprint::new(
        &config("exec sleep 600", "policy: { max_attempts: 1 }\n")
            .replace("timeout: 2m", "timeout: 2s"),
        "- [ ] T001 Write src/a.txt\n",
    );
    s.start(&[]);
    // Woken by the gate's deadline: nothing else happens meanwhile.
    s.wait("T001 failed", 60, |t| t["T001"]["status"] == "failed");
    let t = &s.tasks()["T001"];
    let reason = t["reason"].as_str().unwrap();
    assert!(
        reason.contains("review gate ai failed: the Reviewer gave no verdict")
            && reason.contains("the reviewer's run ended: timeout")
            && reason.contains("past review gate ai's timeout of 2s"),
        "{reason}"
    );
    let ai = ai_results(t);
    assert_eq!(ai.len(), 1, "{t}");
    assert_eq!(ai[0]["timed_out"], true, "{t}");
    // Its session is gone: nothing of it runs on.
    let sessions = s.f.sessions();
    assert!(
        !sessions.iter().any(|n| n.contains("review")),
        "{sessions:?}"
    );
}
