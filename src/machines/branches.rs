//! Branches through the remote: when machines share a sprint, a task's
//! branch is where its work moves between them. An agent's commits are
//! pushed as it makes them (the post-commit hook) and when it ends (its
//! wrapper); a machine about to start an agent or a gate on a task, or to
//! merge it, first brings the task branch and the integration branch from
//! the remote.
//!
//! Bringing never loses a commit: a local branch ahead of the remote's is
//! kept (and pushed), one that has diverged from it — work of a machine
//! that was cut off while another took its task over — is kept on a side
//! ref, `refs/sprint/side/<branch>/<commit>`, pushed too, and the remote's
//! branch wins.

use std::path::Path;
use std::time::Duration;

use crate::worker::worktree::Git;

/// Where a fetched branch is held before it is compared with the local one.
const FETCHED: &str = "refs/sprint/fetched/";

/// Where diverged local work is kept.
pub(crate) const SIDE: &str = "refs/sprint/side/";

/// The longest a push or fetch of a branch may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// A branch could not be moved between this clone and the remote.
#[derive(Debug, thiserror::Error)]
#[error("{action} branch {branch} ({remote}): {detail}")]
pub(crate) struct BranchError {
    pub(crate) action: &'static str,
    pub(crate) branch: String,
    pub(crate) remote: String,
    pub(crate) detail: String,
}

/// What bringing a branch from the remote did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pulled {
    /// The remote has no such branch.
    Absent,
    /// The local branch was already the remote's, or ahead of it.
    Unchanged,
    /// The local branch moved to the remote's.
    Moved,
    /// The local branch had diverged: its work is kept on this side ref
    /// and the branch is now the remote's.
    Diverged { side: String },
}

fn run(
    git: &Git,
    action: &'static str,
    remote: &str,
    branch: &str,
    args: &[&str],
) -> Result<std::process::Output, BranchError> {
    let mut cmd = git.command(args);
    cmd.env("LC_ALL", "C");
    crate::state::run_with_deadline(cmd, DEADLINE).map_err(|detail| BranchError {
        action,
        branch: branch.to_owned(),
        remote: remote.to_owned(),
        detail,
    })
}

fn failed(
    action: &'static str,
    remote: &str,
    branch: &str,
    out: &std::process::Output,
) -> BranchError {
    BranchError {
        action,
        branch: branch.to_owned(),
        remote: remote.to_owned(),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// Brings `branch` from `remote` into this clone (see the module's rule).
/// `worktree`, when given, has the branch checked out and nothing running
/// in it: its files follow the branch.
pub(crate) fn pull(
    git: &Git,
    remote: &str,
    branch: &str,
    worktree: Option<&Path>,
) -> Result<Pulled, BranchError> {
    let held = format!("{FETCHED}{branch}");
    let refspec = format!("+refs/heads/{branch}:{held}");
    let out = run(
        git,
        "fetching",
        remote,
        branch,
        &[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            remote,
            &refspec,
        ],
    )?;
    if !out.status.success() {
        if String::from_utf8_lossy(&out.stderr).contains("couldn't find remote ref") {
            return Ok(Pulled::Absent);
        }
        return Err(failed("fetching", remote, branch, &out));
    }
    let tip = |rev: &str| git.commit_id(rev).ok().flatten();
    let Some(theirs) = tip(&held) else {
        return Ok(Pulled::Absent);
    };
    let local_ref = format!("refs/heads/{branch}");
    let ours = tip(&local_ref);
    let is_ancestor = |a: &str, b: &str| {
        git.check(&["merge-base", "--is-ancestor", a, b])
            .unwrap_or(false)
    };
    let pulled = match &ours {
        Some(o) if *o == theirs => return Ok(Pulled::Unchanged),
        // Ahead: this machine's work the remote has not seen yet.
        Some(o) if is_ancestor(&theirs, o) => {
            push(git, remote, branch, false)?;
            return Ok(Pulled::Unchanged);
        }
        Some(o) if !is_ancestor(o, &theirs) => {
            let side = side_ref(branch, o);
            update_ref(git, remote, branch, &side, o, None)?;
            if let Err(e) = push_ref(git, remote, &side, &side) {
                tracing::warn!(error = %e, %side, "pushing diverged work to the remote failed; it is kept here");
            }
            Pulled::Diverged { side }
        }
        _ => Pulled::Moved,
    };
    update_ref(git, remote, branch, &local_ref, &theirs, ours.as_deref())?;
    if let Some(wt) = worktree.filter(|w| w.join(".git").exists()) {
        let at = git.at(wt);
        // Only a worktree on this branch follows it.
        let on_branch = at
            .run(&["symbolic-ref", "--quiet", "HEAD"])
            .is_ok_and(|h| h.trim() == local_ref);
        if on_branch {
            at.run(&["reset", "--hard", "--quiet", "HEAD"])
                .map_err(|e| BranchError {
                    action: "checking out",
                    branch: branch.to_owned(),
                    remote: remote.to_owned(),
                    detail: e.to_string(),
                })?;
        }
    }
    Ok(pulled)
}

/// Where diverged work at `commit` of `branch` is kept.
pub(crate) fn side_ref(branch: &str, commit: &str) -> String {
    format!("{SIDE}{branch}/{}", crate::names::short_id(&commit))
}

fn update_ref(
    git: &Git,
    remote: &str,
    branch: &str,
    name: &str,
    new: &str,
    old: Option<&str>,
) -> Result<(), BranchError> {
    let mut args = vec!["update-ref", "-m", "git-sprint: from the remote", name, new];
    if let Some(old) = old {
        args.push(old);
    }
    let out = run(git, "moving", remote, branch, &args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed("moving", remote, branch, &out))
    }
}

/// Pushes `branch` to `remote`: as a fast-forward, or `force`d by the
/// machine that holds the task (a discarded Reviewer's edits rewind it).
/// Returns false when the remote refused a fast-forward: another machine
/// has moved the branch on, and this work stays here.
pub(crate) fn push(
    git: &Git,
    remote: &str,
    branch: &str,
    force: bool,
) -> Result<bool, BranchError> {
    let refspec = format!(
        "{}refs/heads/{branch}:refs/heads/{branch}",
        if force { "+" } else { "" }
    );
    push_unless_rejected(git, remote, branch, &[], &refspec)
}

/// Pushes ref `local` to `remote` as `theirs`, forced: for refs with one
/// writer (a side ref named after its commit).
pub(crate) fn push_ref(
    git: &Git,
    remote: &str,
    local: &str,
    theirs: &str,
) -> Result<(), BranchError> {
    let refspec = format!("+{local}:{theirs}");
    let out = run(
        git,
        "pushing",
        remote,
        local,
        &["push", "--quiet", "--no-verify", remote, &refspec],
    )?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed("pushing", remote, local, &out))
    }
}

/// Pushes the integration branch the Refinery just moved from `old` to
/// the remote, with a lease on `old`: if another machine moved the
/// remote's meanwhile (two leaders for a moment), the push is refused and
/// the merge is tried again from what the remote has.
pub(crate) fn push_integration(
    git: &Git,
    remote: &str,
    branch: &str,
    old: &str,
) -> Result<bool, BranchError> {
    // The first merge of a feature makes the remote's branch: the lease is
    // then that it still has none.
    let name = format!("refs/heads/{branch}");
    let listed = run(git, "asking", remote, branch, &["ls-remote", remote, &name])?;
    if !listed.status.success() {
        return Err(failed("asking", remote, branch, &listed));
    }
    let exists = !String::from_utf8_lossy(&listed.stdout).trim().is_empty();
    let lease = format!(
        "--force-with-lease={name}:{}",
        if exists { old } else { "" }
    );
    let refspec = format!("refs/heads/{branch}:refs/heads/{branch}");
    push_unless_rejected(git, remote, branch, &[&lease], &refspec)
}

/// `git push` of `refspec` with `options`: true when done, false when the
/// remote rejected it (not a fast-forward, or a lease that no longer
/// holds: another machine moved the branch), an error otherwise.
fn push_unless_rejected(
    git: &Git,
    remote: &str,
    branch: &str,
    options: &[&str],
    refspec: &str,
) -> Result<bool, BranchError> {
    let mut args = vec!["push", "--quiet", "--porcelain", "--no-verify"];
    args.extend_from_slice(options);
    args.extend([remote, refspec]);
    let out = run(git, "pushing", remote, branch, &args)?;
    if out.status.success() {
        return Ok(true);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout
        .lines()
        .any(|l| l.starts_with('!') && l.contains("[rejected]"))
    {
        return Ok(false);
    }
    Err(failed("pushing", remote, branch, &out))
}

/// The directory of `remote` (a remote's name or a URL) when it is a
/// repository on this machine's file system (a path or `file://`).
pub(crate) fn local_path(git: &Git, remote: &str) -> Option<std::path::PathBuf> {
    let url = git
        .run(&["remote", "get-url", "--", remote])
        .map(|u| u.trim().to_owned())
        .unwrap_or_else(|_| remote.to_owned());
    let path = url.strip_prefix("file://").unwrap_or(&url);
    let path = Path::new(path);
    let dir = if path.is_absolute() {
        path.to_path_buf()
    } else if !url.contains(':') {
        git.dir().join(path)
    } else {
        return None; // ssh, git://, https://
    };
    dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let g = Git::new(dir)
            .with_env("GIT_CONFIG_NOSYSTEM", "1")
            .with_env("HOME", dir)
            .with_env("GIT_AUTHOR_NAME", "t")
            .with_env("GIT_AUTHOR_EMAIL", "t@e")
            .with_env("GIT_COMMITTER_NAME", "t")
            .with_env("GIT_COMMITTER_EMAIL", "t@e");
        g.run(args).unwrap()
    }

    /// A bare remote and two clones of it with one commit on `b`.
    fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("r.git");
        git(
            tmp.path(),
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                remote.to_str().unwrap(),
            ],
        );
        let a = tmp.path().join("a");
        git(
            tmp.path(),
            &["init", "-q", "-b", "main", a.to_str().unwrap()],
        );
        git(&a, &["commit", "-q", "--allow-empty", "-m", "one"]);
        git(&a, &["branch", "b"]);
        git(&a, &["remote", "add", "origin", remote.to_str().unwrap()]);
        git(&a, &["push", "-q", "origin", "main", "b"]);
        let b = tmp.path().join("b");
        git(
            tmp.path(),
            &["clone", "-q", remote.to_str().unwrap(), b.to_str().unwrap()],
        );
        (tmp, a, b)
    }

    fn tip(dir: &Path, rev: &str) -> String {
        git(dir, &["rev-parse", rev]).trim().to_owned()
    }

    #[test]
    fn a_branch_follows_the_remote_forward_and_diverged_work_goes_to_a_side_ref() {
        let (_tmp, a, b) = setup();
        let ga = Git::new(&a);
        // The remote moves on: clone a takes it (b has no local `b` yet).
        git(&b, &["checkout", "-q", "b"]);
        git(&b, &["commit", "-q", "--allow-empty", "-m", "two"]);
        assert!(push(&Git::new(&b), "origin", "b", false).unwrap());
        assert_eq!(pull(&ga, "origin", "b", None).unwrap(), Pulled::Moved);
        assert_eq!(tip(&a, "b"), tip(&b, "b"));
        assert_eq!(pull(&ga, "origin", "b", None).unwrap(), Pulled::Unchanged);
        // Both move on: a's work is kept on a side ref, the remote's wins.
        git(&a, &["commit", "-q", "--allow-empty", "-m", "a's"]);
        let mine = tip(&a, "HEAD");
        git(&a, &["branch", "-f", "b", &mine]);
        git(&b, &["commit", "-q", "--allow-empty", "-m", "b's"]);
        assert!(push(&Git::new(&b), "origin", "b", false).unwrap());
        let Pulled::Diverged { side } = pull(&ga, "origin", "b", None).unwrap() else {
            panic!("diverged work is kept");
        };
        assert_eq!(tip(&a, &side), mine);
        assert_eq!(tip(&a, "b"), tip(&b, "b"));
        // ... and the side ref is on the remote too.
        assert!(git(&b, &["ls-remote", "origin", &side]).contains(&mine));
        // A fast-forward push that would lose the remote's work is refused.
        git(&a, &["branch", "-f", "b", &mine]);
        assert!(!push(&ga, "origin", "b", false).unwrap());
        assert_eq!(pull(&ga, "origin", "nope", None).unwrap(), Pulled::Absent);
        let remote = local_path(&ga, "origin").expect("a path remote");
        assert!(remote.ends_with("r.git"), "{}", remote.display());
        assert_eq!(local_path(&ga, "git://127.0.0.1:1/r.git"), None);
    }

    #[test]
    fn the_integration_push_is_refused_when_the_remote_moved_meanwhile() {
        let (_tmp, a, b) = setup();
        let old = tip(&a, "main");
        git(&b, &["commit", "-q", "--allow-empty", "-m", "elsewhere"]);
        git(&b, &["push", "-q", "origin", "main"]);
        git(&a, &["commit", "-q", "--allow-empty", "-m", "here"]);
        assert!(!push_integration(&Git::new(&a), "origin", "main", &old).unwrap());
        let theirs = tip(&b, "main");
        git(&a, &["fetch", "-q", "origin", "main"]);
        git(&a, &["reset", "-q", "--hard", &theirs]);
        git(&a, &["commit", "-q", "--allow-empty", "-m", "on top"]);
        assert!(push_integration(&Git::new(&a), "origin", "main", &theirs).unwrap());
        // A branch the remote does not have yet is made.
        git(&a, &["branch", "fresh"]);
        assert!(push_integration(&Git::new(&a), "origin", "fresh", &theirs).unwrap());
        assert!(!git(&b, &["ls-remote", "origin", "fresh"]).is_empty());
    }
}
