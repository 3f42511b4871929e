//! Gates narrowed by `paths`: a whole sprint in which a gate runs only for the
//! task whose change touches what it names, and says so where it is skipped.

use std::path::Path;

use super::sprint::{config, scripted, Sprint};

/// The review gate and the post-merge gate both watch `docs/` only; each
/// leaves a line in a marker file in `marks` when it runs (gates run in the
/// agents' sandbox, so `marks` is made writable).
fn docs_only_gates(marks: &Path) -> String {
    config(
        &scripted(),
        &format!("sandbox: {{ writable: ['{}'] }}\n", marks.display()),
    )
    .replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        "  review:\n    - name: docs-check\n      paths: [\"docs/**\"]\n      run: 'echo \"$SPRINT_TASK\" >> \"$SPRINT_MARKS/docs-check-ran\"'\n",
    ).replace(
        "  post_merge:\n    - name: check\n      run: sh check.sh\n",
        "  post_merge:\n    - name: check\n      run: sh check.sh\n    - name: docs-merged\n      paths: [\"docs/**\"]\n      run: 'git log -1 --format=%s >> \"$SPRINT_MARKS/docs-merged-ran\"'\n",
    )
    .replace("$SPRINT_MARKS", &marks.display().to_string())
}

fn lines(marks: &Path, marker: &str) -> Vec<String> {
    std::fs::read_to_string(marks.join(marker))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_gate_with_paths_runs_for_the_task_touching_them_and_is_skipped_with_a_reason_for_the_other() {
    let marks = tempfile::tempdir().unwrap();
    let cfg = docs_only_gates(marks.path());
    assert!(
        cfg.contains("docs-check") && cfg.contains("docs-merged"),
        "{cfg}"
    );
    let s = Sprint::new(
        &cfg,
        "- [ ] T001 [P] Write docs/guide.md\n- [ ] T002 [P] Write src/a.txt\n",
    );
    s.start(&[]);
    s.wait_done(90);

    assert_eq!(lines(marks.path(), "docs-check-ran"), ["f/T001"]);
    let merged = lines(marks.path(), "docs-merged-ran");
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert!(merged[0].starts_with("Merge f/T001:"), "{merged:?}");

    let reviewed = |task: &str| -> String {
        s.transitions()
            .into_iter()
            .find(|(t, from, to, _)| t == task && from == "in_review" && to == "in_tests")
            .map(|(_, _, _, why)| why)
            .unwrap_or_else(|| panic!("{task} never passed review"))
    };
    assert_eq!(reviewed("f/T001"), "review gates passed");
    let skipped = "docs-check skipped: the change touches none of its paths";
    assert_eq!(
        reviewed("f/T002"),
        format!("no review gate had to run; {skipped}")
    );
    let show = s.f.ok(&["show", "T002"]);
    assert!(show.contains(skipped), "{show}");
}
