//! The Refinery's merge: one task branch into the feature's integration
//! branch, so that the integration branch only ever points at commits that
//! passed the post-merge gates (bors's "not rocket science" rule).
//!
//! The merge happens in the Refinery's own worktree, detached at the
//! integration tip; the branch moves only after the gates pass, by a
//! compare-and-swap `update-ref`. A crash at any point leaves either the old
//! tip (the merge never happened) or the new one (it happened once).
//!
//! The integration branch, not the state, is the truth for "merged": every
//! merge commit carries a `Sprint-Task: <feature>/<task>` trailer, and a task
//! whose merge is already on the branch's first-parent history is never
//! merged again, whatever the state says. A task branch with no commit
//! beyond the integration branch is nothing to merge, never a merge.

use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

use crate::gates::{self, Gate, StageOutcome};
use crate::worker::worktree::Git;

/// One merge to make.
pub struct Merge<'a> {
    /// The repository's common git directory.
    pub common_dir: &'a Path,
    /// The main worktree, where git commands start.
    pub root: &'a Path,
    /// The task's id.
    pub task: &'a str,
    /// The task's title, for the merge commit message.
    pub title: &'a str,
    /// The branch holding the task's work.
    pub task_branch: &'a str,
    /// The task's worktree.
    pub task_worktree: &'a Path,
    /// The integration branch the task merges into.
    pub integration: &'a str,
    /// Gates run on the task's branch before the merge.
    pub security: &'a [Gate],
    /// Gates run on the merged result before it lands.
    pub post_merge: &'a [Gate],
    /// How the gates run (recorded, confined).
    pub gates: &'a gates::Runner,
}

/// How it went.
#[derive(Debug)]
pub enum Verdict {
    /// `commit` on the integration branch merged the task branch at `tip`.
    Merged {
        commit: String,
        tip: String,
    },
    /// The integration branch already has the task's merge commit (one that
    /// finished before a crash, or a state that forgot it): nothing to do
    /// again. `tip` is what that merge brought in.
    AlreadyMerged {
        commit: String,
        tip: String,
    },
    /// The task branch adds no commit to the integration branch (the agent
    /// committed nothing, or dropped its commits): no merge was made.
    NothingToMerge {
        tip: String,
    },
    /// The task branch does not exist (deleted, or its worktree never got
    /// onto it) and the integration branch has no merge of the task: there
    /// is nothing to merge, and no retry of the merge can change that.
    NoBranch {
        branch: String,
    },
    Conflict {
        files: Vec<String>,
        output: String,
    },
    GatesFailed {
        stage: gates::Stage,
        outcome: StageOutcome,
    },
}

/// Why the Refinery could not merge a task.
#[derive(Debug, thiserror::Error)]
pub enum RefineryError {
    #[error("git {args} failed in {}: {stderr}", dir.display())]
    Git {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error("cannot run git in {}", dir.display())]
    Spawn {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot take the refinery lock {}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{integration} moved while merging {task}; the merge will be tried again")]
    Raced { integration: String, task: String },
    #[error(transparent)]
    StaleLock(#[from] crate::state::StateError),
}

type Result<T> = std::result::Result<T, RefineryError>;

/// The Refinery's worktree, shared by all features (merges are serial).
pub(crate) fn worktree(common_dir: &Path) -> PathBuf {
    crate::names::worktree_path(common_dir, "refinery")
}

/// Nanoseconds this process spent waiting on git in the Refinery, for the
/// benchmark's split between git and the tool.
static GIT_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Time this process has spent waiting on git in the Refinery.
pub fn git_time() -> std::time::Duration {
    std::time::Duration::from_nanos(GIT_NANOS.load(std::sync::atomic::Ordering::Relaxed))
}

fn run(git: &Git, args: &[&str]) -> Result<std::process::Output> {
    let start = std::time::Instant::now();
    let out = git
        .command(args)
        .output()
        .map_err(|source| RefineryError::Spawn {
            dir: git.dir().to_owned(),
            source,
        });
    GIT_NANOS.fetch_add(
        start.elapsed().as_nanos() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    out
}

/// The commit `rev` names (a full ref), or an error naming the command.
fn commit_of(git: &Git, rev: &str) -> Result<String> {
    // In-process when it can (a merge asks several times); git says why not.
    if let Ok(Some(id)) = git.commit_id(rev) {
        return Ok(id);
    }
    ok(
        git,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )
}

/// Whether commit `a` is `b` or one of its ancestors.
fn is_ancestor(git: &Git, a: &str, b: &str) -> Result<bool> {
    Ok(run(git, &["merge-base", "--is-ancestor", a, b])?
        .status
        .success())
}

fn ok(git: &Git, args: &[&str]) -> Result<String> {
    let out = run(git, args)?;
    if !out.status.success() {
        return Err(RefineryError::Git {
            args: args.join(" "),
            dir: git.dir().to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The repository's Refinery lock: one merge at a time across processes.
fn lock(common_dir: &Path) -> Result<std::fs::File> {
    let path = common_dir.join("sprint").join("refinery.lock");
    let err = |source| RefineryError::Lock {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(path.parent().expect("has parent")).map_err(err)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(err)?;
    FileExt::lock_exclusive(&file).map_err(err)?;
    Ok(file)
}

/// git as the Refinery: its own identity, and our hooks off so they do
/// not react to its merge commits.
fn refinery_git(root: &Path) -> Git {
    Git::new(root)
        .with_env("GIT_SPRINT_HOOKS", "0")
        .with_env("GIT_AUTHOR_NAME", "refinery")
        .with_env("GIT_AUTHOR_EMAIL", "refinery@git-sprint")
        .with_env("GIT_COMMITTER_NAME", "refinery")
        .with_env("GIT_COMMITTER_EMAIL", "refinery@git-sprint")
}

/// The Refinery's worktree, clean and detached at `at` (made if missing,
/// and reset from whatever a crash left in it).
fn prepare_worktree(git: &Git, common_dir: &Path, at: &str) -> Result<Git> {
    let path = worktree(common_dir);
    if path.join(".git").exists() {
        let wt = git.at(&path);
        // A git killed in here (with the orchestrator) leaves its index
        // lock, and every merge after it would fail.
        if let Ok(lock) = ok(
            &wt,
            &[
                "rev-parse",
                "--path-format=absolute",
                "--git-path",
                "index.lock",
            ],
        ) {
            clear_stale_lock(Path::new(&lock), common_dir)?;
        }
        let _ = run(&wt, &["merge", "--abort"]);
        ok(&wt, &["checkout", "--quiet", "--force", "--detach", at])?;
        ok(&wt, &["clean", "-fdxq"])?;
        return Ok(wt);
    }
    let _ = std::fs::remove_dir_all(&path);
    let _ = run(git, &["worktree", "prune"]);
    let p = path.to_string_lossy().into_owned();
    ok(git, &["worktree", "add", "--quiet", "--detach", &p, at])?;
    Ok(git.at(&path))
}

/// Removes `lock` if it is stale (see [`crate::state::clear_stale_lock`]);
/// true if it did.
fn clear_stale_lock(lock: &Path, common_dir: &Path) -> Result<bool> {
    Ok(crate::state::clear_stale_lock(lock, common_dir)?.is_some())
}

/// Moves `full_ref` from `old` to `new` by compare-and-swap; false when it
/// is not at `old` (or is locked by a live writer). A lock left on it by a
/// git killed mid-update would fail every move after it: once stale, it is
/// removed and the swap tried again.
fn move_branch(
    git: &Git,
    common_dir: &Path,
    full_ref: &str,
    new: &str,
    old: &str,
    message: &str,
) -> Result<bool> {
    let swap = || run(git, &["update-ref", "-m", message, full_ref, new, old]);
    if swap()?.status.success() {
        return Ok(true);
    }
    let lock = common_dir.join(format!("{full_ref}.lock"));
    Ok(clear_stale_lock(&lock, common_dir)? && swap()?.status.success())
}

/// Files left in conflict by a failed merge.
fn conflicted(wt: &Git) -> Vec<String> {
    ok(wt, &["diff", "--name-only", "--diff-filter=U"])
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Makes one merge, holding the repository's refinery lock throughout.
pub fn merge(m: &Merge<'_>) -> Result<Verdict> {
    let lock = lock(m.common_dir)?;
    let git = refinery_git(m.root);
    let integration_ref = format!("refs/heads/{}", m.integration);
    let old = commit_of(&git, &integration_ref)?;
    // The merge first: a merged task needs its branch no more.
    if let Some((commit, tip)) = find_merge(&git, &integration_ref, m.task)? {
        return Ok(Verdict::AlreadyMerged { commit, tip });
    }
    let task_ref = format!("refs/heads/{}", m.task_branch);
    if !git
        .branch_exists(m.task_branch)
        .map_err(|e| RefineryError::Git {
            args: format!("rev-parse --verify {task_ref}"),
            dir: m.root.to_owned(),
            stderr: e.to_string(),
        })?
    {
        return Ok(Verdict::NoBranch {
            branch: m.task_branch.to_owned(),
        });
    }
    let tip = commit_of(&git, &task_ref)?;
    if is_ancestor(&git, &tip, &old)? {
        return Ok(Verdict::NothingToMerge { tip });
    }

    if !m.security.is_empty() && m.task_worktree.exists() {
        let change = gates::Change::Branch {
            base: &old,
            tip: &tip,
        };
        let outcome =
            gates::run_stage_for_change(m.gates, m.security, m.task_worktree, &[], &git, &change);
        if !outcome.passed {
            return Ok(Verdict::GatesFailed {
                stage: gates::Stage::Security,
                outcome,
            });
        }
    }

    let wt_path = worktree(m.common_dir);
    let wt = prepare_worktree(&git, m.common_dir, &old)?;
    let message = format!("Merge {}: {}\n\nSprint-Task: {}\n", m.task, m.title, m.task);
    let out = run(
        &wt,
        &["merge", "--no-ff", "--no-edit", "-m", &message, &tip],
    )?;
    if !out.status.success() {
        let files = conflicted(&wt);
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = run(&wt, &["merge", "--abort"]);
        if files.is_empty() {
            // git could not merge at all (a lock, a broken worktree): not
            // the task's conflict, so no attempt is spent on it.
            return Err(RefineryError::Git {
                args: "merge".into(),
                dir: wt_path,
                stderr: output.trim().to_owned(),
            });
        }
        return Ok(Verdict::Conflict { files, output });
    }
    let new = ok(&wt, &["rev-parse", "HEAD"])?;
    let change = gates::Change::Commits {
        from: &old,
        to: &new,
    };
    let outcome = gates::run_stage_for_change(m.gates, m.post_merge, &wt_path, &[], &wt, &change);
    if !outcome.passed {
        let _ = run(&wt, &["checkout", "--quiet", "--force", "--detach", &old]);
        return Ok(Verdict::GatesFailed {
            stage: gates::Stage::PostMerge,
            outcome,
        });
    }
    // Compare-and-swap: only from the tip we merged onto.
    let moved = move_branch(
        &git,
        m.common_dir,
        &integration_ref,
        &new,
        &old,
        &format!("refinery: merge {}", m.task),
    )?;
    if !moved {
        return Err(RefineryError::Raced {
            integration: m.integration.to_owned(),
            task: m.task.to_owned(),
        });
    }
    drop(lock);
    Ok(Verdict::Merged { commit: new, tip })
}

/// How far back the integration branch's first-parent history is searched
/// for a task's merge: a sprint's merges are the newest commits on it, so
/// this bounds the cost in a long history without missing any of them.
const MERGE_SCAN: usize = 5000;

/// The merge commit on `integration`'s first-parent history whose
/// `Sprint-Task:` trailer names `task`, and the tip it merged (its second
/// parent).
fn find_merge(git: &Git, integration: &str, task: &str) -> Result<Option<(String, String)>> {
    let log = ok(
        git,
        &[
            "log",
            "--first-parent",
            &format!("--max-count={MERGE_SCAN}"),
            "--format=%H %P%x1f%(trailers:key=Sprint-Task,valueonly,separator=%x1e)",
            integration,
            "--",
        ],
    )?;
    Ok(merge_of(&log, task))
}

/// Parses `find_merge`'s log: one line per commit, `<id> <parents…>` then
/// \x1f then the `Sprint-Task:` values separated by \x1e. Only a merge
/// commit (two parents or more) counts, and only an exact value.
fn merge_of(log: &str, task: &str) -> Option<(String, String)> {
    log.lines().find_map(|line| {
        let (ids, trailers) = line.split_once('\x1f')?;
        if !trailers.split('\x1e').any(|v| v.trim() == task) {
            return None;
        }
        let mut ids = ids.split_whitespace();
        let (commit, _first, second) = (ids.next()?, ids.next()?, ids.next()?);
        Some((commit.to_owned(), second.to_owned()))
    })
}

/// What the developer is told when their merge did not go in.
pub(crate) fn feedback(verdict: &Verdict, integration: &str) -> Option<String> {
    match verdict {
        Verdict::NothingToMerge { .. } => Some(format!(
            "Nothing was merged: your branch has no commit that is not already in {integration}.\n\
             Make the change the task asks for and commit it; work left uncommitted is not merged."
        )),
        Verdict::Conflict { files, output } => Some(format!(
            "Merging your branch into {integration} conflicts in: {}.\n\
             Merge {integration} into your branch, resolve the conflicts, keep both sides' intent, and commit.\n\n```\n{}\n```",
            files.join(", "),
            output.trim_end()
        )),
        Verdict::GatesFailed { stage, outcome } => Some(format!(
            "The {stage} gates failed on your branch merged into {integration}:\n{}",
            outcome.feedback()
        )),
        Verdict::NoBranch { branch } => Some(format!(
            "Nothing was merged: your branch {branch} did not exist when it was to be merged.\n\
             Commit your work on {branch}, the branch your worktree is on; do not switch or delete it."
        )),
        _ => None,
    }
}

/// How a finished feature reaches its base branch with `merge.auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MergeMode {
    /// Only when the base has not moved: the base takes the integration tip.
    #[default]
    Ff,
    /// A merge commit, made and gated in the Refinery's worktree first.
    Merge,
}

/// How a feature's merge into its base branch went.
#[derive(Debug)]
pub(crate) enum BaseVerdict {
    Merged {
        commit: String,
    },
    AlreadyMerged,
    /// `ff` was asked for but the base moved on.
    NotFastForward,
    /// The base is checked out in a worktree with uncommitted changes.
    Dirty {
        worktree: PathBuf,
    },
    Conflict {
        files: Vec<String>,
    },
    GatesFailed {
        outcome: StageOutcome,
    },
}

/// Merges `integration` into `base` (fast-forward or a gated merge commit)
/// and moves `base` without ever touching a dirty checkout of it.
pub(crate) fn merge_into_base(
    common_dir: &Path,
    root: &Path,
    integration: &str,
    base: &str,
    mode: MergeMode,
    post_merge: &[Gate],
    runner: &gates::Runner,
) -> Result<BaseVerdict> {
    let lock = lock(common_dir)?;
    let git = refinery_git(root);
    let base_ref = format!("refs/heads/{base}");
    let old = commit_of(&git, &base_ref)?;
    let tip = commit_of(&git, &format!("refs/heads/{integration}"))?;
    if is_ancestor(&git, &tip, &old)? {
        return Ok(BaseVerdict::AlreadyMerged);
    }
    let target = match mode {
        MergeMode::Ff if is_ancestor(&git, &old, &tip)? => tip.clone(),
        MergeMode::Ff => return Ok(BaseVerdict::NotFastForward),
        MergeMode::Merge => {
            let wt_path = worktree(common_dir);
            let wt = prepare_worktree(&git, common_dir, &old)?;
            let msg = format!("Merge {integration} into {base}\n");
            let out = run(&wt, &["merge", "--no-ff", "--no-edit", "-m", &msg, &tip])?;
            if !out.status.success() {
                let files = conflicted(&wt);
                let _ = run(&wt, &["merge", "--abort"]);
                return Ok(BaseVerdict::Conflict { files });
            }
            let new = ok(&wt, &["rev-parse", "HEAD"])?;
            let change = gates::Change::Commits {
                from: &old,
                to: &new,
            };
            let outcome =
                gates::run_stage_for_change(runner, post_merge, &wt_path, &[], &wt, &change);
            if !outcome.passed {
                return Ok(BaseVerdict::GatesFailed { outcome });
            }
            new
        }
    };
    // Where is the base checked out? Move it there only by a fast-forward of
    // a clean worktree; elsewhere by compare-and-swap.
    let list = ok(&git, &["worktree", "list", "--porcelain"])?;
    let mut path = None;
    let mut current = None;
    for line in list.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            current = Some(PathBuf::from(p));
        } else if line == format!("branch {base_ref}") {
            path = current.clone();
        }
    }
    match path {
        Some(p) => {
            let wt = git.at(&p);
            if !ok(&wt, &["status", "--porcelain"])?.is_empty() {
                return Ok(BaseVerdict::Dirty { worktree: p });
            }
            ok(&wt, &["merge", "--quiet", "--ff-only", &target])?;
        }
        None => {
            ok(
                &git,
                &[
                    "update-ref",
                    "-m",
                    &format!("refinery: merge {integration}"),
                    &base_ref,
                    &target,
                    &old,
                ],
            )?;
        }
    }
    drop(lock);
    Ok(BaseVerdict::Merged { commit: target })
}

/// How bringing the base branch's new commits into an integration branch went.
#[derive(Debug)]
pub(crate) enum BaseSync {
    /// The integration branch already holds the base's tip.
    UpToDate,
    Merged {
        commit: String,
    },
    Conflict {
        files: Vec<String>,
    },
    GatesFailed {
        outcome: StageOutcome,
    },
}

/// Merges `base` into `integration` behind the post-merge gates, in the
/// Refinery's worktree and under its lock, moving the integration branch by
/// compare-and-swap — the same rule as a task merge: the integration branch
/// only ever points at commits that passed.
pub(crate) fn sync_base(
    common_dir: &Path,
    root: &Path,
    base: &str,
    integration: &str,
    post_merge: &[Gate],
    runner: &gates::Runner,
) -> Result<BaseSync> {
    let lock = lock(common_dir)?;
    let git = refinery_git(root);
    let integration_ref = format!("refs/heads/{integration}");
    let old = commit_of(&git, &integration_ref)?;
    let tip = commit_of(&git, &format!("refs/heads/{base}"))?;
    if is_ancestor(&git, &tip, &old)? {
        return Ok(BaseSync::UpToDate);
    }
    let wt_path = worktree(common_dir);
    let wt = prepare_worktree(&git, common_dir, &old)?;
    let message = format!("Merge {base} into {integration}\n\nSprint-Base: {tip}\n");
    let out = run(
        &wt,
        &["merge", "--no-ff", "--no-edit", "-m", &message, &tip],
    )?;
    if !out.status.success() {
        let files = conflicted(&wt);
        let _ = run(&wt, &["merge", "--abort"]);
        return Ok(BaseSync::Conflict { files });
    }
    let new = ok(&wt, &["rev-parse", "HEAD"])?;
    let change = gates::Change::Commits {
        from: &old,
        to: &new,
    };
    let outcome = gates::run_stage_for_change(runner, post_merge, &wt_path, &[], &wt, &change);
    if !outcome.passed {
        let _ = run(&wt, &["checkout", "--quiet", "--force", "--detach", &old]);
        return Ok(BaseSync::GatesFailed { outcome });
    }
    let moved = move_branch(
        &git,
        common_dir,
        &integration_ref,
        &new,
        &old,
        &format!("refinery: merge {base}"),
    )?;
    if !moved {
        return Err(RefineryError::Raced {
            integration: integration.to_owned(),
            task: base.to_owned(),
        });
    }
    drop(lock);
    Ok(BaseSync::Merged { commit: new })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testutil::TestRepo;

    #[test]
    fn only_an_exact_trailer_on_a_merge_commit_counts_as_the_task_merged() {
        let log = "m3 p2 t3\x1ff/T0010\x1e\n\
                   c2 p1\x1ff/T001\x1e\n\
                   m1 p0 t1\x1fother/T9\x1ef/T001\x1e\n";
        assert_eq!(merge_of(log, "f/T001"), Some(("m1".into(), "t1".into())));
        assert_eq!(merge_of(log, "f/T0010"), Some(("m3".into(), "t3".into())));
        assert_eq!(merge_of(log, "f/T002"), None);
        assert_eq!(merge_of("", "f/T001"), None);
    }

    #[test]
    fn the_integration_branch_finds_a_task_merge_by_its_trailer() {
        let r = TestRepo::new();
        let git = |args: &[&str]| ok(&r.git, args).unwrap();
        git(&["branch", "sprint/f/integration"]);
        git(&["switch", "-q", "-c", "sprint/f/T001"]);
        std::fs::write(r.work.join("a.txt"), "a\n").unwrap();
        git(&["add", "a.txt"]);
        git(&["commit", "-q", "-m", "T001: a"]);
        let tip = git(&["rev-parse", "HEAD"]);
        git(&["switch", "-q", "sprint/f/integration"]);
        git(&[
            "merge",
            "--no-ff",
            "-q",
            "-m",
            "Merge f/T001: a\n\nSprint-Task: f/T001\n",
            "sprint/f/T001",
        ]);
        let merge = git(&["rev-parse", "HEAD"]);
        // A commit of a person on the branch after it does not hide it.
        std::fs::write(r.work.join("b.txt"), "b\n").unwrap();
        git(&["add", "b.txt"]);
        git(&[
            "commit",
            "-q",
            "-m",
            "Sprint-Task: f/T002 is not a trailer here",
        ]);
        let integration = "refs/heads/sprint/f/integration";
        assert_eq!(
            find_merge(&r.git, integration, "f/T001").unwrap(),
            Some((merge, tip))
        );
        assert_eq!(find_merge(&r.git, integration, "f/T002").unwrap(), None);
    }

    #[test]
    fn a_missing_task_branch_is_a_verdict_and_a_merged_task_needs_no_branch() {
        let r = TestRepo::new();
        let git = |args: &[&str]| ok(&r.git, args).unwrap();
        git(&["branch", "sprint/f/integration"]);
        let common = r.work.join(".git");
        let runner = gates::Runner::default();
        let merge = |task: &str, branch: &str| {
            merge(&Merge {
                common_dir: &common,
                root: &r.work,
                task,
                title: "a",
                task_branch: branch,
                task_worktree: &r.work.join("no-such-worktree"),
                integration: "sprint/f/integration",
                security: &[],
                post_merge: &[],
                gates: &runner,
            })
            .unwrap()
        };
        // Before: an error, and the orchestrator tried again at once, for ever.
        match merge("f/T001", "sprint/f/T001") {
            Verdict::NoBranch { branch } => assert_eq!(branch, "sprint/f/T001"),
            other => panic!("{other:?}"),
        }
        git(&["branch", "sprint/f/T001", "sprint/f/integration"]);
        git(&["switch", "-q", "sprint/f/T001"]);
        std::fs::write(r.work.join("a.txt"), "a\n").unwrap();
        git(&["add", "a.txt"]);
        git(&["commit", "-q", "-m", "T001: a"]);
        git(&["switch", "-q", "--detach"]);
        let Verdict::Merged { commit, tip } = merge("f/T001", "sprint/f/T001") else {
            panic!("not merged");
        };
        git(&["branch", "-D", "sprint/f/T001"]);
        match merge("f/T001", "sprint/f/T001") {
            Verdict::AlreadyMerged { commit: c, tip: t } => assert_eq!((c, t), (commit, tip)),
            other => panic!("{other:?}"),
        }
    }
}
