//! The names git-sprint gives things in a repository: branches, the folders
//! under `$GIT_COMMON_DIR/sprint/`, and commit ids cut short for people.
//!
//! Each is formed here and only here, so a change of layout is one edit and
//! the code that finds a thing agrees with the code that made it.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// Characters of a commit id shown to people in tables and command output
/// (git's own default abbreviation).
pub(crate) const SHORT_ID_LEN: usize = 7;

/// Characters of a commit id written into the sprint state (transition
/// reasons, notes): longer than [`SHORT_ID_LEN`], since a record outlives
/// the repository's growth and must stay unambiguous.
pub(crate) const RECORD_ID_LEN: usize = 12;

/// The branch a task's work lives on: `sprint/<feature>/<task>`.
pub(crate) fn task_branch(feature: &str, task: &str) -> String {
    format!("sprint/{feature}/{task}")
}

/// The feature's integration branch: `sprint/<feature>/integration`. Not
/// `sprint/<feature>` itself: git cannot hold both a branch `sprint/f` and
/// branches `sprint/f/T001`.
pub(crate) fn integration_branch(feature: &str) -> String {
    format!("sprint/{feature}/integration")
}

/// Whether `branch` (without `refs/heads/`) is one git-sprint makes for a
/// feature: `sprint/<feature>/<something>`.
pub(crate) fn is_sprint_branch(branch: &str) -> bool {
    branch
        .strip_prefix("sprint/")
        .is_some_and(|rest| rest.contains('/'))
}

/// `$GIT_COMMON_DIR/sprint`: where git-sprint keeps its files in a repository.
pub(crate) fn sprint_dir(common_dir: &Path) -> PathBuf {
    common_dir.join("sprint")
}

/// The folder holding every worktree git-sprint makes.
pub(crate) fn worktrees_dir(common_dir: &Path) -> PathBuf {
    sprint_dir(common_dir).join("worktrees")
}

/// The worktree of worker `id` (an agent, or `refinery`).
pub(crate) fn worktree_path(common_dir: &Path, id: &str) -> PathBuf {
    worktrees_dir(common_dir).join(id)
}

/// A commit id cut to [`SHORT_ID_LEN`] characters, for people.
pub(crate) fn short_id(id: &impl Display) -> String {
    id.to_string().chars().take(SHORT_ID_LEN).collect()
}

/// A commit id cut to [`RECORD_ID_LEN`] characters, for records.
pub(crate) fn record_id(id: &str) -> &str {
    // Ids are hex (ASCII); `get` keeps an odd input from panicking.
    id.get(..id.len().min(RECORD_ID_LEN)).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_nest_under_the_feature() {
        assert_eq!(task_branch("001-notes", "T003"), "sprint/001-notes/T003");
        assert_eq!(
            integration_branch("001-notes"),
            "sprint/001-notes/integration"
        );
        assert!(is_sprint_branch(&task_branch("f", "T1")));
        assert!(is_sprint_branch(&integration_branch("f")));
        assert!(!is_sprint_branch("sprint/f"));
        assert!(!is_sprint_branch("main"));
    }

    #[test]
    fn worktrees_live_under_the_common_dir() {
        let common = Path::new("/r/.git");
        assert_eq!(worktrees_dir(common), Path::new("/r/.git/sprint/worktrees"));
        assert_eq!(
            worktree_path(common, "refinery"),
            Path::new("/r/.git/sprint/worktrees/refinery")
        );
    }

    #[test]
    fn short_ids() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(short_id(&id), "0123456");
        assert_eq!(record_id(id), "0123456789ab");
        assert_eq!(short_id(&"abc"), "abc");
        assert_eq!(record_id("abc"), "abc");
        // A cut inside a character returns the whole text, never panics.
        assert_eq!(record_id("xéééééé"), "xéééééé");
        let oid = gix::ObjectId::empty_tree(gix::hash::Kind::Sha1);
        assert_eq!(
            short_id(&oid),
            oid.to_hex_with_len(SHORT_ID_LEN).to_string()
        );
    }
}
