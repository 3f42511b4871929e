//! Plans that match spec-kit, run for real: story phases side by side once
//! Foundational is done, and chores that git-sprint handles itself (no agent,
//! no gates, no merge), checked on the state and the audit trail of a whole
//! sprint against real git and tmux.

use super::sprint::{config, scripted, Sprint, ONCE};

const STORIES: &str = "\
# Tasks: stories

## Phase 1: Setup

- [ ] T001 Create src/core.txt
- [ ] T002 Commit: add the core

## Phase 2: User Story 1 - Browse (Priority: P1)

- [ ] T003 [US1] Browse in src/us1.txt

## Phase 3: User Story 2 - Buy (Priority: P2)

- [ ] T004 [US2] Buy in src/us2.txt

## Phase 4: Polish

- [ ] T005 Guide in docs/guide.txt
- [ ] T006 Push branch and open a PR
";

#[test]
fn two_story_phases_run_side_by_side_and_chores_get_no_agent() {
    // Each story's developer waits (bounded) until the other story's has
    // started too: with stories in series neither would be running together.
    let agent = format!(
        r#"case "$SPRINT_WORKER" in
  f.T003.dev.*|f.T004.dev.*)
    touch "$HOME/once/${{SPRINT_WORKER%%.dev.*}}"
    i=0
    while [ ! -e "$HOME/once/f.T003" ] || [ ! -e "$HOME/once/f.T004" ]; do
      i=$((i+1)); [ "$i" -gt 900 ] && break; sleep 0.1
    done ;;
esac
{}"#,
        scripted()
    );
    let s = Sprint::new(&config(&agent, ONCE), STORIES);
    s.once_dir();
    s.start(&[]);
    s.wait(
        "the developers of US1 (T003) and US2 (T004) running at once",
        90,
        |t| t["T003"]["status"] == "in_progress" && t["T004"]["status"] == "in_progress",
    );
    s.wait_done(180);

    let tasks = s.tasks();
    for chore in ["T002", "T006"] {
        assert_eq!(tasks[chore]["status"], "done", "{chore}");
        assert_eq!(tasks[chore]["skipped"], "handled by git-sprint", "{chore}");
        assert!(tasks[chore].get("runs").is_none(), "{chore} got an agent");
        assert!(
            tasks[chore].get("gates").is_none(),
            "{chore} went through gates"
        );
    }
    let merges = s.merges();
    let mut merged: Vec<&str> = merges.keys().map(String::as_str).collect();
    merged.sort_unstable();
    assert_eq!(merged, ["T001", "T003", "T004", "T005"], "{merges:?}");
    // A chore is added done and never moves again.
    for (task, from, to, why) in s.transitions() {
        if task == "f/T002" || task == "f/T006" {
            assert_eq!(
                (from.as_str(), to.as_str()),
                ("none", "done"),
                "{task}: {why}"
            );
            assert!(why.contains("skipped: handled by git-sprint"), "{why}");
        }
    }
    // Polish started only once both stories were done.
    let trail = s.transitions();
    let at = |id: &str, to: &str| {
        trail
            .iter()
            .position(|(t, _, st, _)| t == &format!("f/{id}") && st == to)
            .unwrap_or_else(|| panic!("{id} never reached {to}"))
    };
    assert!(at("T005", "in_progress") > at("T003", "done"));
    assert!(at("T005", "in_progress") > at("T004", "done"));

    let status = s.f.ok(&["status"]);
    assert!(
        status.contains("6/6 tasks done (2 skipped: handled by git-sprint)"),
        "{status}"
    );
    let show = s.f.ok(&["show", "f/T002"]);
    assert!(
        show.starts_with("f/T002  done (skipped: handled by git-sprint)"),
        "{show}"
    );
}

#[test]
fn chores_run_keeps_the_old_behaviour_in_the_state() {
    let cfg = config(&scripted(), "planning: { chores: run }\n");
    let s = Sprint::new(
        &cfg,
        "- [ ] T001 Create a.txt\n- [ ] T002 Commit: add a.txt\n",
    );
    let out = s.f.ok(&["ingest"]);
    assert!(!out.contains("skipped"), "{out}");
    let tasks = s.tasks();
    assert_eq!(tasks["T002"]["status"], "todo");
    assert!(tasks["T002"].get("skipped").is_none());
}
