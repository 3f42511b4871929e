//! Gates narrowed by `paths`: a whole sprint in which a gate runs only for the
//! task whose change touches what it names, and says so where it is skipped.

use super::sprint::{config, scripted, Sprint};

/// The review gate and the post-merge gate both watch `docs/` only; each
/// leaves a line in a marker file under the common git directory when it runs.
fn docs_only_gates() -> String {
    config(&scripted(), "").replace(
        "  review:\n    - name: has-commits\n      run: test \"$(git rev-list --count sprint/f/integration..HEAD)\" -gt 0\n",
        "  review:\n    - name: docs-check\n      paths: [\"docs/**\"]\n      run: 'echo \"$SPRINT_TASK\" >> \"$(git rev-parse --git-common-dir)/docs-check-ran\"'\n",
    ).replace(
        "  post_merge:\n    - name: check\n      run: sh check.sh\n",
        "  post_merge:\n    - name: check\n      run: sh check.sh\n    - name: docs-merged\n      paths: [\"docs/**\"]\n      run: 'git log -1 --format=%s >> \"$(git rev-parse --git-common-dir)/docs-merged-ran\"'\n",
    )
}

fn lines(s: &Sprint, marker: &str) -> Vec<String> {
    std::fs::read_to_string(s.f.repo.path().join(".git").join(marker))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_gate_with_paths_runs_for_the_task_touching_them_and_is_skipped_with_a_reason_for_the_other() {
    let cfg = docs_only_gates();
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

    assert_eq!(lines(&s, "docs-check-ran"), ["f/T001"]);
    let merged = lines(&s, "docs-merged-ran");
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
