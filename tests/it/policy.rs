//! The policy engine in whole sprints: rules committed in
//! `.git-sprint/policy.yaml` judge each Developer's diff. A denial sends the
//! task back with the rule as feedback, an approval rule parks the task until
//! a person answers, and every decision is a record in the state commit that
//! acted on it. Plus the files themselves: layers, validation, errors.

use serde_json::Value;

use super::sprint::{config, Sprint};

/// A stand-in Developer steered by its prompt: a task titled "Touch
/// migrations", "Store a key" or "Touch CI" does that; once its prompt holds
/// a policy denial or a rejection, it takes the offending files out again
/// and writes only the file the task names.
const AGENT: &str = r#"p="$SPRINT_PROMPT"
t=$(printf '%s\n' "$p" | sed -n 's/^\(T[0-9][0-9]*\): .*/\1/p' | head -n1)
case "$p" in
  *"policy refused"*|*"rejected this change"*)
    git rm -rq --ignore-unmatch migrations .github "src/$t.conf"
    f="src/$t.txt"; c="$t: reworked" ;;
  *"Touch migrations"*) f="migrations/$t.sql"; c="create table t;" ;;
  *"Store a key"*) f="src/$t.conf"; c="aws_key = AKIAIOSFODNN7EXAMPLE" ;;
  *"Touch CI"*) f=".github/workflows/$t.yml"; c="on: push" ;;
  *) f="src/$t.txt"; c="$t" ;;
esac
mkdir -p "$(dirname "$f")" && printf '%s\n' "$c" >> "$f" && git add -A && git commit -qm "$t: work"
"#;

const POLICY: &str = "\
rules:
  - id: no-migrations
    action: deny
    paths: ['migrations/**']
  - id: ci-needs-a-person
    action: require_approval
    paths: ['.github/**']
  - id: no-secrets
    action: deny
    secrets: true
";

const TASKS: &str = "\
- [ ] T001 [P] Touch migrations for src/T001.txt
- [ ] T002 [P] Store a key in src/T002.txt
- [ ] T003 [P] Touch CI for src/T003.txt
- [ ] T004 [P] Touch CI for src/T004.txt
";

/// The policy sprint, with `extra` configuration.
fn sprint_with_policy(extra: &str) -> Sprint {
    let cfg = config(AGENT, &format!("policy: {{ retry_backoff: 1s }}\n{extra}"))
        .replace(
            "developer: { agent: scripted, count: 3 }",
            "developer: { agent: scripted, count: 4 }",
        )
        .replace(
            "tester: { agent: scripted, count: 2 }",
            "tester: { agent: scripted, count: 0 }",
        );
    let s = Sprint::new(&cfg, TASKS);
    s.f.repo.write(".git-sprint/policy.yaml", POLICY);
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-q", "-m", "policy"]);
    s
}

fn decisions(s: &Sprint) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(&s.f.ok(&["log", "--policy", "--json"])).unwrap()
}

fn find<'a>(ds: &'a [Value], rule: &str, subject: &str, verdict: &str) -> Option<&'a Value> {
    ds.iter()
        .find(|d| d["rule"] == rule && d["subject"] == subject && d["verdict"] == verdict)
}

#[test]
fn denials_send_work_back_with_the_rule_and_approvals_hold_the_merge_for_a_person() {
    // A person is told when a task waits for them (notify: approval.needed).
    let told = tempfile::tempdir().unwrap();
    let told = told.path().join("approval-needed.jsonl");
    let s = sprint_with_policy(&format!(
        "notify:\n  me:\n    on: [approval.needed]\n    command: [tee, -a, '{}']\n",
        told.display()
    ));
    s.start(&[]);
    s.wait("T003 and T004 awaiting approval", 120, |t| {
        ["T003", "T004"]
            .iter()
            .all(|id| t[*id]["status"] == "awaiting_approval")
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&told).unwrap_or_default();
        if ["f/T003", "f/T004"].iter().all(|t| text.contains(t)) {
            assert!(text.contains("\"approval.needed\""), "{text}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "approval.needed never reached the receiver for both tasks: {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // A path rule: the attempt ended with cause policy, the rule and what it
    // matched in the feedback, and a decision record on refs/ai-sprint.
    let show: Value = serde_json::from_str(&s.f.ok(&["show", "T001", "--json"])).unwrap();
    let feedback = show["task"]["feedback"].to_string();
    assert!(
        feedback.contains("policy rule no-migrations (deny): migrations/T001.sql"),
        "{feedback}"
    );
    assert_eq!(show["task"]["history"][0]["cause"], "policy", "{show}");
    let raw = s.f.repo.git(["log", "--format=%B", "refs/ai-sprint"]);
    assert!(
        raw.lines().any(|l| l.starts_with("Sprint-Decision: ")
            && l.contains("\"rule\":\"no-migrations\"")
            && l.contains("\"verdict\":\"deny\"")),
        "{raw}"
    );
    let ds = decisions(&s);
    let deny = find(&ds, "no-migrations", "f/T001", "deny").expect("a deny record for T001");
    assert_eq!(
        deny["inputs"]["matched"],
        serde_json::json!(["migrations/T001.sql"])
    );
    assert_eq!(deny["actor"], "cab");
    let blob = s.f.repo.git(["rev-parse", "main:.git-sprint/policy.yaml"]);
    assert_eq!(
        deny["policy"],
        blob.trim(),
        "the record names the policy blob"
    );

    // A secret added by the agent is denied, reported by place, never quoted.
    let secret = find(&ds, "no-secrets", "f/T002", "deny").expect("a deny record for T002");
    assert_eq!(
        secret["inputs"]["matched"],
        serde_json::json!(["src/T002.conf:1 (aws-access-key)"])
    );
    assert!(
        !raw.contains("AKIAIOSFODNN7EXAMPLE"),
        "a secret reached the state"
    );

    // An approval rule parks the task where status and health say so.
    assert!(find(&ds, "ci-needs-a-person", "f/T003", "approval_required").is_some());
    let status = s.f.ok(&["status"]);
    assert!(status.contains("git sprint approve f/T003"), "{status}");
    let health = s.f.run(&["health"]);
    assert_eq!(health.status.code(), Some(1), "a task waits for a person");

    // Approval lets it merge; rejection sends it back with the reason.
    let out = s.f.ok(&[
        "approve",
        "T003",
        "--as",
        "Alice",
        "--reason",
        "CI change reviewed",
    ]);
    assert!(out.contains("awaiting_approval -> in_docs"), "{out}");
    let out = s.f.ok(&[
        "reject",
        "T004",
        "--as",
        "Bob",
        "--reason",
        "no CI changes in this feature",
    ]);
    assert!(out.contains("awaiting_approval -> in_progress"), "{out}");
    let again = s.f.run(&["approve", "T004"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        super::support::stderr(&again).contains("not awaiting_approval"),
        "{}",
        super::support::stderr(&again)
    );

    s.wait_done(120);
    let ds = decisions(&s);
    let granted = find(&ds, "ci-needs-a-person", "f/T003", "approval_granted").expect("granted");
    assert_eq!(granted["actor"], "Alice");
    assert_eq!(granted["reason"], "CI change reviewed");
    let rejected = find(&ds, "ci-needs-a-person", "f/T004", "approval_rejected").expect("rejected");
    assert_eq!(rejected["actor"], "Bob");
    let t4: Value = serde_json::from_str(&s.f.ok(&["show", "T004", "--json"])).unwrap();
    assert!(
        t4["task"]["feedback"]
            .to_string()
            .contains("no CI changes in this feature"),
        "{t4}"
    );
    // What merged: T003's CI file (approved); no migration, key or T004 CI file.
    let merged =
        s.f.repo
            .git(["ls-tree", "-r", "--name-only", "sprint/f/integration"]);
    assert!(merged.contains(".github/workflows/T003.yml"), "{merged}");
    for absent in ["migrations/", "src/T002.conf", ".github/workflows/T004.yml"] {
        assert!(!merged.contains(absent), "{absent} merged:\n{merged}");
    }
    let text = s.f.ok(&["log", "--policy"]);
    assert!(
        text.contains("approval_granted ci-needs-a-person on f/T003 by Alice"),
        "{text}"
    );
    let shown = s.f.ok(&["show", "T001"]);
    assert!(
        shown.contains("policy decisions:") && shown.contains("deny no-migrations"),
        "{shown}"
    );
}

#[test]
fn an_invalid_policy_names_file_and_line_and_nothing_starts() {
    let s = Sprint::new(&config("true", ""), "- [ ] T001 Write src/a.txt\n");
    s.f.repo.write(
        ".git-sprint/policy.yaml",
        "rules:\n  - id: mig\n    action: deny\n    paths: ['migrations/[']\n",
    );
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-q", "-m", "bad policy"]);
    for args in [&["policy", "validate"][..], &["start"]] {
        let out = s.f.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = super::support::stderr(&out);
        assert!(
            err.contains(
                "main:.git-sprint/policy.yaml:2: rule `mig`: `migrations/[` is not a valid glob"
            ),
            "{args:?}: {err}"
        );
        assert!(err.contains("hint: "), "{err}");
    }
    assert!(
        s.f.sessions().is_empty(),
        "nothing started: {:?}",
        s.f.sessions()
    );
    let status = s.status();
    assert!(
        status["agents"].as_array().is_none_or(|a| a.is_empty()),
        "no agent ran: {status}"
    );
}

#[test]
fn the_users_layer_is_read_first_and_the_repository_may_only_tighten_it() {
    let s = Sprint::new(&config("true", ""), "- [ ] T001 Write src/a.txt\n");
    let user = s.f.repo.home().join(".config/git-sprint/policy.yaml");
    std::fs::create_dir_all(user.parent().unwrap()).unwrap();
    std::fs::write(
        &user,
        "rules:\n  - id: ci\n    action: require_approval\n    paths: ['.github/**']\n  - id: size\n    action: warn\n    max_lines: 400\n    overridable: true\n",
    )
    .unwrap();
    let commit = |text: &str| {
        s.f.repo.write(".git-sprint/policy.yaml", text);
        s.f.repo.git(["add", "-A"]);
        s.f.repo.git(["commit", "-q", "-m", "policy"]);
    };
    commit("rules:\n  - id: ci\n    action: deny\n    paths: ['.github/**']\n  - id: size\n    action: off\n    max_lines: 400\n");
    let shown = s.f.ok(&["policy", "show", "--explain"]);
    let user_at = format!("{}:2 (require_approval)", user.display());
    assert!(
        shown.contains("from main:.git-sprint/policy.yaml:2"),
        "{shown}"
    );
    assert!(shown.contains(&format!("overrides {user_at}")), "{shown}");
    let json: Value = serde_json::from_str(&s.f.ok(&["policy", "show", "--json"])).unwrap();
    assert_eq!(json["rules"][0]["action"], "deny");
    assert_eq!(
        json["rules"][1]["action"], "off",
        "an overridable rule relaxed"
    );
    assert_eq!(json["layers"].as_array().unwrap().len(), 2);

    // Relaxing the locked rule is refused, naming both places.
    commit("rules:\n  - id: ci\n    action: warn\n    paths: ['.github/**']\n");
    let out = s.f.run(&["policy", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = super::support::stderr(&out);
    let user_line = format!("{}:2", user.display());
    assert!(
        err.contains("main:.git-sprint/policy.yaml:2: rule `ci` relaxes the rule at")
            && err.contains(&user_line),
        "{err}"
    );
}

#[test]
fn take_rules_block_a_task_caps_serialise_a_profile_and_a_protected_base_is_never_written() {
    let agent = format!("sleep 1\n{AGENT}");
    let cfg = config(
        &agent,
        "policy: { retry_backoff: 1s }\nmerge: { auto: true }\n",
    )
    .replace(
        "tester: { agent: scripted, count: 2 }",
        "tester: { agent: scripted, count: 0 }",
    );
    let s = Sprint::new(
        &cfg,
        "- [ ] T001 [P] [security] Harden src/T001.txt\n- [ ] T002 [P] Write src/T002.txt\n- [ ] T003 [P] Write src/T003.txt\n",
    );
    s.f.repo.write(
        ".git-sprint/policy.yaml",
        "take:\n  - id: security-by-claude\n    labels: [security]\n    agents: [claude]\nconcurrency:\n  scripted: 1\nprotected_branches: [main]\n",
    );
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-q", "-m", "policy"]);
    let main_before = s.f.repo.git(["rev-parse", "main"]);
    s.start(&[]);
    s.wait("T001 blocked by the policy, T002 and T003 done", 120, |t| {
        t["T001"]["status"] == "blocked"
            && t["T002"]["status"] == "done"
            && t["T003"]["status"] == "done"
    });
    let tasks = s.tasks();
    let reason = tasks["T001"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        reason,
        "policy: rule security-by-claude: agent profile scripted may not take this developer work (allowed: claude)"
    );
    let ds = decisions(&s);
    let refused = find(&ds, "security-by-claude", "f/T001", "deny").expect("a deny record");
    assert_eq!(refused["actor"], "manager");
    assert_eq!(refused["inputs"]["labels"], serde_json::json!(["security"]));

    // The cap of 1: no two developers of the profile ever ran at once.
    let status = s.status();
    let mut runs: Vec<(i64, i64)> = status["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["role"] == "developer")
        .map(|a| {
            (
                a["started"].as_i64().unwrap(),
                a["ended"].as_i64().unwrap_or(i64::MAX),
            )
        })
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{status}");
    assert!(
        runs[0].1 <= runs[1].0,
        "two developers overlapped: {runs:?}"
    );

    // With T001 out of the way the feature closes; merge.auto would write
    // main, which the policy protects.
    s.f.ok(&["cancel", "T001"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while find(&decisions(&s), "protected_branches", "f", "deny").is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no protected-branch decision:\n{}",
            s.f.ok(&["log", "-n", "20"])
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        s.f.repo.git(["rev-parse", "main"]),
        main_before,
        "main was written"
    );
    let note = s.status()["features"][0]["feature"]["note"].to_string();
    assert!(note.contains("main is protected by the policy"), "{note}");
}

#[test]
fn what_a_tester_adds_is_judged_again_before_the_test_gates() {
    // The Tester adds a migration once; the Developer's rework takes it out.
    let agent = format!(
        "case \"$SPRINT_PROMPT\" in *\"You are a Tester\"*)\n  [ -e \"$HOME/once/tester\" ] && exit 0\n  touch \"$HOME/once/tester\"\n  mkdir -p migrations && echo x > migrations/t.sql && git add -A && git commit -qm tester && exit 0 ;;\nesac\n{AGENT}"
    );
    let extra = format!("policy: {{ retry_backoff: 1s }}\n{}", super::sprint::ONCE);
    let cfg = config(&agent, &extra).replace(
        "tester: { agent: scripted, count: 2 }",
        "tester: { agent: scripted, count: 1 }",
    );
    let s = Sprint::new(&cfg, "- [ ] T001 Write src/T001.txt\n");
    s.once_dir();
    s.f.repo.write(".git-sprint/policy.yaml", POLICY);
    s.f.repo.git(["add", "-A"]);
    s.f.repo.git(["commit", "-q", "-m", "policy"]);
    s.start(&[]);
    s.wait_done(120);
    let ds = decisions(&s);
    let deny = find(&ds, "no-migrations", "f/T001", "deny").expect("the tester's migration denied");
    assert_eq!(
        deny["inputs"]["matched"],
        serde_json::json!(["migrations/t.sql"])
    );
    let moved = s
        .transitions()
        .into_iter()
        .any(|(t, from, to, _)| t == "f/T001" && from == "in_tests" && to == "in_progress");
    assert!(moved, "the denial sent the task back from in_tests");
    let merged =
        s.f.repo
            .git(["ls-tree", "-r", "--name-only", "sprint/f/integration"]);
    assert!(!merged.contains("migrations/"), "{merged}");
}
