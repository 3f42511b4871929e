//! Which files a change touched, so a stage runs only the gates whose `paths`
//! it matches. A task's change is its branch against the merge-base with the
//! integration branch (what the merge would bring in, not what the
//! integration branch gained meanwhile); a merge's change is the old tip to
//! the new. When the diff cannot be computed every gate runs: skipping a gate
//! by mistake is worse than running one for nothing.

use std::path::Path;

use super::config::Gate;
use super::outcome::StageOutcome;
use super::run::{run_stage, run_stage_for_diff, Runner};
use crate::worker::worktree::{Git, WorktreeError};

/// What a stage's gates are run for.
pub(crate) enum Change<'a> {
    /// A task branch at `tip`, measured from its merge-base with `base`.
    Branch { base: &'a str, tip: &'a str },
    /// Two commits, e.g. an integration tip before and after a merge.
    Commits { from: &'a str, to: &'a str },
}

/// The files `change` touched, repo-relative, asked of git in `git`'s directory.
pub(crate) fn changed_files(git: &Git, change: &Change<'_>) -> Result<Vec<String>, WorktreeError> {
    let (from, to) = match change {
        Change::Branch { base, tip } => {
            let mb = git.run(&["merge-base", base, tip])?;
            (mb.trim().to_owned(), *tip)
        }
        Change::Commits { from, to } => ((*from).to_owned(), *to),
    };
    let range = format!("{from}..{to}");
    // --no-renames: a rename lists its old path too, so a gate on what was
    // moved away still runs; -z: paths unquoted, whatever their bytes.
    let out = git.run(&["diff", "--name-only", "--no-renames", "-z", &range, "--"])?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Runs `gates` in `worktree` for `change`: a gate whose `paths` match none
/// of the changed files is skipped (and named in [`StageOutcome::skipped`]).
/// If git cannot tell what changed, every gate runs and the error is logged.
pub(crate) fn run_stage_for_change(
    runner: &Runner,
    gates: &[Gate],
    worktree: &Path,
    env: &[(String, String)],
    git: &Git,
    change: &Change<'_>,
) -> StageOutcome {
    // No gate narrows itself: the diff would change nothing, so git is spared.
    if gates.iter().all(|g| g.paths.is_none()) {
        return run_stage(runner, gates, worktree, env);
    }
    match changed_files(git, change) {
        Ok(changed) => {
            let outcome = run_stage_for_diff(runner, gates, worktree, env, &changed);
            if let Some(note) = outcome.skipped_note() {
                tracing::info!(worktree = %worktree.display(), "{note}");
            }
            outcome
        }
        Err(e) => {
            tracing::warn!(
                dir = %git.dir().display(),
                error = %super::run::error_chain(&e),
                "cannot tell which files changed; running every gate, `paths` or not"
            );
            run_stage(runner, gates, worktree, env)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use crate::worker::testutil::TestRepo;

    #[test]
    fn a_diff_that_cannot_be_computed_runs_every_gate() {
        let repo = TestRepo::new();
        let mut docs = gate("docs", "touch ran-docs");
        docs.paths = Some(vec!["docs/**".into()]);
        let plain = gate("plain", "touch ran-plain");
        let git = &repo.git;
        // A branch that does not exist: merge-base fails.
        let change = Change::Branch {
            base: "no-such-branch",
            tip: "HEAD",
        };
        assert!(changed_files(git, &change).is_err());
        let s = run_stage_for_change(
            &Runner::default(),
            &[docs.clone(), plain],
            &repo.work,
            &[],
            git,
            &change,
        );
        assert!(s.passed, "{s:?}");
        assert!(s.skipped.is_empty(), "{s:?}");
        assert_eq!(s.results.len(), 2);
        assert!(repo.work.join("ran-docs").exists());

        // The same gate with a diff that works and touches no docs is skipped.
        std::fs::remove_file(repo.work.join("ran-docs")).unwrap();
        let s = run_stage_for_change(
            &Runner::default(),
            &[docs],
            &repo.work,
            &[],
            git,
            &Change::Commits {
                from: "HEAD",
                to: "HEAD",
            },
        );
        assert_eq!(s.skipped, ["docs"]);
        assert!(!repo.work.join("ran-docs").exists());
    }

    #[test]
    fn a_branch_change_is_measured_from_its_merge_base() {
        let repo = TestRepo::new();
        let git = &repo.git;
        let base = git.run(&["rev-parse", "HEAD"]).unwrap();
        let base = base.trim();
        git.run(&["checkout", "-q", "-b", "task"]).unwrap();
        std::fs::create_dir_all(repo.work.join("docs")).unwrap();
        std::fs::write(repo.work.join("docs/a b.md"), "x").unwrap();
        git.run(&["add", "-A"]).unwrap();
        git.run(&["commit", "-q", "-m", "docs"]).unwrap();
        // The base moves on meanwhile; its file is not the task's change.
        git.run(&["checkout", "-q", "-b", "moved", base]).unwrap();
        std::fs::write(repo.work.join("other.txt"), "y").unwrap();
        git.run(&["add", "-A"]).unwrap();
        git.run(&["commit", "-q", "-m", "other"]).unwrap();
        let changed = changed_files(
            git,
            &Change::Branch {
                base: "moved",
                tip: "task",
            },
        )
        .unwrap();
        assert_eq!(changed, ["docs/a b.md"]);
    }
}
