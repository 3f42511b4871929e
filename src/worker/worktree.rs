//! Git worktrees for workers: create one per task on its own branch, set it up
//! (copied files such as `.env`, setup commands), save an agent's uncommitted
//! work, measure a branch for `list`, and remove the worktree and its branch.
//!
//! gix has no worktree add/remove, so this module shells out to `git` through a
//! [`Git`] handle. The handle pins the environment of every invocation: no
//! terminal prompts, no `GIT_DIR`-style variables leaking in from a hook that
//! called us, plus whatever the caller adds (tests add an isolated `HOME` and
//! author). Preconditions (revision exists, branch is new, path is free) are
//! checked with plumbing first, so errors are typed instead of parsed from
//! git's localized messages.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use thiserror::Error;

use super::tail;

/// What went wrong with a worktree, a branch or a setup step.
#[derive(Debug, Error)]
pub enum WorktreeError {
    /// `git` could not be started at all.
    #[error("could not run git in {dir}: is git installed and on PATH?")]
    GitMissing {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A git command exited unsuccessfully.
    #[error("`git {args}` failed in {dir} ({status}): {stderr}")]
    Git {
        args: String,
        dir: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    /// The revision to branch from does not name a commit.
    #[error("`{rev}` is not a commit in {repo}: check the base branch or revision")]
    BadRevision { rev: String, repo: PathBuf },
    /// The branch name is not a valid git branch name.
    #[error("`{branch}` is not a valid branch name")]
    BadBranchName { branch: String },
    /// The branch to create exists already.
    #[error("branch `{branch}` already exists in {repo}: pick another name, or delete it with `git branch -D {branch}`")]
    BranchExists { branch: String, repo: PathBuf },
    /// The worktree path is taken by a non-empty directory or a file.
    #[error(
        "{path} already exists and is not an empty directory: remove it or choose another path"
    )]
    PathExists { path: PathBuf },
    /// A worktree has uncommitted changes and removal was not forced.
    #[error("worktree {path} has uncommitted changes: commit them, or remove with force")]
    Dirty { path: PathBuf },
    /// A file or directory operation failed.
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A path to copy into a worktree is absolute or climbs out with `..`.
    #[error("setup file `{path}` must be a relative path inside the repository")]
    UnsafeCopyPath { path: PathBuf },
    /// A setup command failed.
    #[error("setup command `{command}` failed in {dir} ({status}): {stderr_tail}")]
    Setup {
        command: String,
        dir: PathBuf,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// git printed something this module cannot read.
    #[error("unexpected output from `git {args}`: {output}")]
    BadOutput { args: String, output: String },
    /// A setup command ran past `setup.timeout`.
    #[error("setup command `{command}` in {dir} ran longer than {secs}s (setup.timeout) and was killed: {stderr_tail}")]
    SetupTimeout {
        command: String,
        dir: PathBuf,
        secs: u64,
        stderr_tail: String,
    },
}

type Result<T> = std::result::Result<T, WorktreeError>;

/// Environment variables that would redirect git away from the directory we
/// name with `-C`: git exports some of them to hooks, and a hook may call us.
pub(crate) const REDIRECTING_VARS: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
];

/// Runs `git` in one directory with a fixed environment.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    dir: PathBuf,
    env: Vec<(OsString, OsString)>,
}

thread_local! {
    /// Repositories opened in-process on this thread, by directory, for the
    /// questions gix answers without starting git (does this branch exist,
    /// which commit does this name): the orchestrator asks them for every
    /// task it starts and merges, and each `git rev-parse` is a process. A
    /// gix repository is not `Send`, so each thread keeps its own; a few
    /// are kept, the loop thread's one for the repository root.
    static OPEN: std::cell::RefCell<Vec<(PathBuf, gix::Repository)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// How many repositories a thread keeps open.
const KEEP_OPEN: usize = 4;

/// The name and email a commit is made as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) name: String,
    pub(crate) email: String,
}

/// What [`Git::delete_branch_if_merged`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BranchDeletion {
    /// The branch was deleted.
    Deleted,
    /// The branch has commits not in the target and was kept.
    KeptUnmerged,
    /// There was no such branch.
    Missing,
}

impl BranchDeletion {
    /// Whether the branch was deleted.
    #[cfg(test)]
    pub(crate) fn deleted(self) -> bool {
        self == BranchDeletion::Deleted
    }
}

impl Git {
    /// A handle running git in `dir` (a worktree, or any directory of a repository).
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Git {
        Git {
            dir: dir.into(),
            env: Vec::new(),
        }
    }

    /// The same handle with one more environment variable on every invocation.
    pub(crate) fn with_env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Git {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The same environment, running in another directory.
    pub(crate) fn at(&self, dir: impl Into<PathBuf>) -> Git {
        Git {
            dir: dir.into(),
            env: self.env.clone(),
        }
    }

    /// Runs `f` on the repository of [`Git::dir`], opened in-process on
    /// first use on this thread; `None` when gix cannot open it (then git
    /// answers).
    fn with_repo<T>(&self, f: impl FnOnce(&gix::Repository) -> T) -> Option<T> {
        OPEN.with(|open| {
            let mut open = open.borrow_mut();
            let i = match open.iter().position(|(dir, _)| *dir == self.dir) {
                Some(i) => i,
                None => {
                    let repo = gix::discover(&self.dir).ok()?;
                    if open.len() >= KEEP_OPEN {
                        open.remove(0);
                    }
                    open.push((self.dir.clone(), repo));
                    open.len() - 1
                }
            };
            Some(f(&open[i].1))
        })
    }

    /// The commit `rev` names (peeled through tags), or `None` when it names
    /// none. Found in-process when gix can; a name gix does not find is asked
    /// of `git rev-parse` unless it is a full ref name (`refs/...`), whose
    /// absence gix knows for sure.
    pub(crate) fn commit_id(&self, rev: &str) -> Result<Option<String>> {
        // What a worktree has of its own (HEAD, per-worktree refs) is asked
        // of git: a kept repository may be of a worktree since re-made.
        let shared = !rev.starts_with('-')
            && !rev.contains("HEAD")
            && !rev.contains('@')
            && !rev.starts_with("refs/worktree/")
            && !rev.starts_with("refs/bisect/");
        if shared {
            let found = self.with_repo(|repo| {
                if let Ok(id) = repo.rev_parse_single(format!("{rev}^{{commit}}").as_str()) {
                    return Some(Some(id.detach().to_string()));
                }
                (rev.starts_with("refs/") && matches!(repo.try_find_reference(rev), Ok(None)))
                    .then_some(None)
            });
            if let Some(Some(known)) = found {
                return Ok(known);
            }
        }
        let args = [
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ];
        match self.run(&args) {
            Ok(id) => Ok(Some(id.trim().to_owned())),
            Err(WorktreeError::Git { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `branch` is a valid branch name (`git check-ref-format
    /// --branch`): in-process for what gix accepts, git for the rest.
    pub(crate) fn is_branch_name(&self, branch: &str) -> Result<bool> {
        if branch.starts_with('-') {
            return Ok(false);
        }
        if gix::refs::FullName::try_from(format!("refs/heads/{branch}").as_str()).is_ok()
            && !branch.contains('@')
        {
            return Ok(true);
        }
        self.check(&["check-ref-format", "--branch", branch])
    }

    /// The directory git runs in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `git -C <dir> <args>` command with the pinned environment.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir).args(args);
        for var in REDIRECTING_VARS {
            cmd.env_remove(var);
        }
        // A worker runs unattended: a credential prompt would hang it forever.
        cmd.env("GIT_TERMINAL_PROMPT", "0");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null());
        cmd
    }

    fn output(&self, args: &[&OsStr]) -> Result<Output> {
        self.command(args)
            .output()
            .map_err(|source| WorktreeError::GitMissing {
                dir: self.dir.clone(),
                source,
            })
    }

    /// Runs git and returns its stdout, or a [`WorktreeError::Git`] naming the command.
    /// The one way git-sprint shells out to git: the environment rules of
    /// [`Git::command`] hold for every call.
    pub(crate) fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
        let out = self.output(&args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.failure(&args, &out))
        }
    }

    /// Runs git and reports only whether it exited 0 (for `--verify`-style checks).
    pub(crate) fn check<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<bool> {
        let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
        Ok(self.output(&args)?.status.success())
    }

    fn failure(&self, args: &[&OsStr], out: &Output) -> WorktreeError {
        WorktreeError::Git {
            args: join_args(args),
            dir: self.dir.clone(),
            status: out.status,
            stderr: tail(&String::from_utf8_lossy(&out.stderr), 10),
        }
    }

    /// The repository's common directory (shared by all its worktrees), absolute.
    #[cfg(test)]
    pub(crate) fn common_dir(&self) -> Result<PathBuf> {
        let out = self.run(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
        Ok(PathBuf::from(out.trim_end_matches('\n')))
    }

    /// The main worktree of the repository, or `None` for a bare repository.
    pub(crate) fn main_worktree(&self) -> Result<Option<PathBuf>> {
        let out = self.run(&["worktree", "list", "--porcelain", "-z"])?;
        // The first record is the main worktree; a bare one carries `bare`.
        let mut fields = out.split('\0').take_while(|f| !f.is_empty());
        let Some(path) = fields.next().and_then(|f| f.strip_prefix("worktree ")) else {
            return Err(WorktreeError::BadOutput {
                args: "worktree list --porcelain -z".into(),
                output: tail(&out, 3),
            });
        };
        if fields.any(|f| f == "bare") {
            return Ok(None);
        }
        Ok(Some(PathBuf::from(path)))
    }

    /// Whether `rev` names a commit.
    pub(crate) fn is_commit(&self, rev: &str) -> Result<bool> {
        Ok(self.commit_id(rev)?.is_some())
    }

    /// Whether the local branch `branch` exists.
    pub(crate) fn branch_exists(&self, branch: &str) -> Result<bool> {
        let name = format!("refs/heads/{branch}");
        let found =
            self.with_repo(|repo| repo.try_find_reference(name.as_str()).map(|r| r.is_some()));
        if let Some(Ok(found)) = found {
            return Ok(found);
        }
        self.check(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ])
    }

    /// Creates a worktree at `path` on a new branch `branch` starting at `from_rev`.
    ///
    /// Missing parent directories are created. Fails with a typed error when
    /// the revision is not a commit, the branch exists or the path is taken.
    pub(crate) fn add_worktree(&self, path: &Path, branch: &str, from_rev: &str) -> Result<()> {
        if !self.is_branch_name(branch)? {
            return Err(WorktreeError::BadBranchName {
                branch: branch.to_owned(),
            });
        }
        if !self.is_commit(from_rev)? {
            return Err(WorktreeError::BadRevision {
                rev: from_rev.to_owned(),
                repo: self.dir.clone(),
            });
        }
        if self.branch_exists(branch)? {
            return Err(WorktreeError::BranchExists {
                branch: branch.to_owned(),
                repo: self.dir.clone(),
            });
        }
        if path.exists() && !is_empty_dir(path) {
            return Err(WorktreeError::PathExists {
                path: path.to_owned(),
            });
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| WorktreeError::Io {
                action: "creating directory",
                path: parent.to_owned(),
                source,
            })?;
        }
        // --no-track: a task branch must not push to whatever `from_rev` tracks.
        self.run(&[
            OsStr::new("worktree"),
            OsStr::new("add"),
            OsStr::new("--quiet"),
            OsStr::new("--no-track"),
            OsStr::new("-b"),
            OsStr::new(branch),
            path.as_os_str(),
            OsStr::new(from_rev),
        ])?;
        Ok(())
    }

    /// Removes the worktree at `path` and prunes stale worktree records.
    ///
    /// Without `force`, a worktree with uncommitted changes (including
    /// untracked files) is refused with [`WorktreeError::Dirty`]. A path that
    /// is already gone is only pruned.
    pub(crate) fn remove_worktree(&self, path: &Path, force: bool) -> Result<()> {
        if path.exists() {
            if !force && self.at(path).is_dirty()? {
                return Err(WorktreeError::Dirty {
                    path: path.to_owned(),
                });
            }
            let mut args = vec![OsStr::new("worktree"), OsStr::new("remove")];
            if force {
                args.push(OsStr::new("--force"));
            }
            args.push(path.as_os_str());
            self.run(&args)?;
        }
        self.run(&["worktree", "prune"])?;
        Ok(())
    }

    /// Deletes `branch` if all its commits are in `into`, or regardless with `force`.
    ///
    /// A branch with unmerged commits is kept ([`BranchDeletion::KeptUnmerged`]):
    /// an agent's work is never thrown away by accident.
    pub(crate) fn delete_branch_if_merged(
        &self,
        branch: &str,
        into: &str,
        force: bool,
    ) -> Result<BranchDeletion> {
        if !self.branch_exists(branch)? {
            return Ok(BranchDeletion::Missing);
        }
        if !force {
            if !self.is_commit(into)? {
                return Err(WorktreeError::BadRevision {
                    rev: into.to_owned(),
                    repo: self.dir.clone(),
                });
            }
            let merged = self.check(&[
                "merge-base",
                "--is-ancestor",
                &format!("refs/heads/{branch}"),
                into,
            ])?;
            if !merged {
                return Ok(BranchDeletion::KeptUnmerged);
            }
        }
        // -D: merged-ness was checked against `into` above; -d would check HEAD.
        self.run(&["branch", "-D", "--", branch])?;
        Ok(BranchDeletion::Deleted)
    }

    /// Whether the worktree has uncommitted changes, untracked files included.
    pub(crate) fn is_dirty(&self) -> Result<bool> {
        let out = self.run(&["status", "--porcelain", "--untracked-files=all"])?;
        Ok(!out.trim().is_empty())
    }

    /// Commits everything uncommitted in this worktree as `author`.
    ///
    /// The committer is whoever git says it is (the user); only when git
    /// knows no committer is `author` the committer too, so that saving work
    /// never fails for want of a name. Returns the new commit id, or `None`
    /// when the worktree was clean. Hooks are skipped (`--no-verify`): a
    /// user's pre-commit lint must not refuse saving a crashed agent's work.
    pub(crate) fn commit_wip(&self, message: &str, author: &Identity) -> Result<Option<String>> {
        if !self.is_dirty()? {
            return Ok(None);
        }
        self.run(&["add", "-A"])?;
        let mut who = self
            .clone()
            .with_env("GIT_AUTHOR_NAME", &author.name)
            .with_env("GIT_AUTHOR_EMAIL", &author.email);
        if !who.check(&["var", "GIT_COMMITTER_IDENT"])? {
            who = who
                .with_env("GIT_COMMITTER_NAME", &author.name)
                .with_env("GIT_COMMITTER_EMAIL", &author.email);
        }
        who.run(&[
            "commit",
            "--quiet",
            "--no-verify",
            "--no-gpg-sign",
            "-m",
            message,
        ])?;
        let id = self.run(&["rev-parse", "HEAD"])?;
        Ok(Some(id.trim().to_owned()))
    }

    /// How many commits `rev` has that `base` does not (`git rev-list --count base..rev`).
    pub(crate) fn commits_ahead(&self, rev: &str, base: &str) -> Result<usize> {
        let out = self.run(&["rev-list", "--count", &format!("{base}..{rev}"), "--"])?;
        out.trim().parse().map_err(|_| WorktreeError::BadOutput {
            args: format!("rev-list --count {base}..{rev}"),
            output: out.trim().to_owned(),
        })
    }

    /// Files changed on `rev` since it forked from `base` (`git diff base...rev`).
    pub(crate) fn files_changed(&self, rev: &str, base: &str) -> Result<Vec<String>> {
        let out = self.run(&[
            "diff",
            "--no-ext-diff",
            "--no-renames",
            "--name-only",
            "-z",
            &format!("{base}...{rev}"),
            "--",
        ])?;
        Ok(out
            .split('\0')
            .filter(|f| !f.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// What [`setup`] did with the files it was asked to copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SetupReport {
    /// Files copied into the new worktree.
    pub(crate) copied: Vec<PathBuf>,
    /// Files left out, each with the reason (a symlink, not a regular file,
    /// something already in the worktree). Missing files are not listed: a
    /// `.env` is optional.
    pub(crate) skipped: Vec<(PathBuf, String)>,
}

/// Whether `rel` may name a setup file: relative, not empty, and made of
/// plain names only (no `..`, no root, no prefix), so it stays inside both
/// worktrees. Config loading uses it to reject a bad entry with its key.
pub(crate) fn is_safe_copy_path(rel: &Path) -> bool {
    !rel.as_os_str().is_empty()
        && rel.components().any(|c| matches!(c, Component::Normal(_)))
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Prepares a fresh worktree: copies `copy_files` (relative to `main_worktree`)
/// that exist, then runs each of `commands` with `sh -c` inside `worktree`.
///
/// Only regular files are copied, and never through a symlink: a committed
/// link at the source or in the new worktree (`.env -> /tmp/x`, or a linked
/// directory) would otherwise read a secret from elsewhere or write one
/// outside the worktree. Every path component is opened relative to its
/// parent with `O_NOFOLLOW`, so nothing can swap a link in between a check
/// and the write; the file is created with `O_EXCL`, never over something the
/// worktree already holds. A file refused for any of these reasons is
/// reported in [`SetupReport::skipped`], not fatal: a copy is optional, and a
/// hostile link must not make every later attempt fail. Missing files are
/// skipped quietly; the first failing command stops setup with
/// [`WorktreeError::Setup`], and one running past `timeout` is killed with
/// everything it started ([`WorktreeError::SetupTimeout`]); the caller
/// removes the half-made worktree.
pub(crate) fn setup(
    main_worktree: &Path,
    worktree: &Path,
    copy_files: &[PathBuf],
    commands: &[String],
    timeout: std::time::Duration,
) -> Result<SetupReport> {
    let mut report = SetupReport::default();
    for rel in copy_files {
        if !is_safe_copy_path(rel) {
            return Err(WorktreeError::UnsafeCopyPath { path: rel.clone() });
        }
        match safe_copy::copy(main_worktree, worktree, rel)? {
            safe_copy::Outcome::Copied => report.copied.push(rel.clone()),
            safe_copy::Outcome::Missing => {}
            safe_copy::Outcome::Refused(why) => report.skipped.push((rel.clone(), why)),
        }
    }
    for command in commands {
        run_setup_command(command, worktree, timeout)?;
    }
    Ok(report)
}

/// Runs one setup command in its own process group, so a timeout kills all
/// it started; stderr is read on a thread so a chatty command cannot block
/// on a full pipe.
fn run_setup_command(command: &str, worktree: &Path, timeout: std::time::Duration) -> Result<()> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};
    let io = |source| WorktreeError::Io {
        action: "running setup command in",
        path: worktree.to_owned(),
        source,
    };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(worktree)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(io)?;
    let mut stderr = child.stderr.take();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            // SAFETY: kill(2) with a negative pid signals the process group
            // the child leads (made by `process_group(0)` above).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        // A child's exit has no file descriptor to wait on with a deadline
        // in std; a short poll costs nothing next to a setup command.
        std::thread::sleep(Duration::from_millis(20));
    };
    // A process that left the group (setsid) may hold stderr open for ever:
    // what arrived by shortly after the end is what is shown.
    let stderr = rx.recv_timeout(Duration::from_secs(2)).unwrap_or_default();
    let stderr_tail = tail(&String::from_utf8_lossy(&stderr), 20);
    match status {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(WorktreeError::Setup {
            command: command.to_owned(),
            dir: worktree.to_owned(),
            status,
            stderr_tail,
        }),
        None => Err(WorktreeError::SetupTimeout {
            command: command.to_owned(),
            dir: worktree.to_owned(),
            secs: timeout.as_secs(),
            stderr_tail,
        }),
    }
}

/// Copying one setup file without following a symlink anywhere below the
/// two worktree roots (the roots themselves are ours and trusted).
mod safe_copy {
    use std::fs::File;
    use std::os::fd::OwnedFd;
    use std::path::{Component, Path};

    use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
    use rustix::io::Errno;

    use super::{Result, WorktreeError};

    pub(super) enum Outcome {
        Copied,
        Missing,
        Refused(String),
    }

    /// Why opening `name` (a directory entry of `dir`) failed, for people.
    fn describe(dir: &OwnedFd, name: &Path, shown: &str, side: &str) -> String {
        let kind = rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .map(|st| FileType::from_raw_mode(st.st_mode));
        match kind {
            Ok(FileType::Symlink) => format!("`{shown}` in the {side} is a symlink"),
            Ok(FileType::Directory) => format!("`{shown}` in the {side} is a directory"),
            Ok(FileType::RegularFile) => format!("`{shown}` in the {side} is a file"),
            Ok(_) => format!("`{shown}` in the {side} is not a regular file or directory"),
            Err(e) => format!("`{shown}` in the {side}: {e}"),
        }
    }

    fn io(action: &'static str, path: &Path, e: Errno) -> WorktreeError {
        WorktreeError::Io {
            action,
            path: path.to_owned(),
            source: e.into(),
        }
    }

    const DIR: OFlags = OFlags::RDONLY
        .union(OFlags::DIRECTORY)
        .union(OFlags::NOFOLLOW)
        .union(OFlags::CLOEXEC);

    pub(super) fn copy(main: &Path, worktree: &Path, rel: &Path) -> Result<Outcome> {
        let names: Vec<&Path> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(Path::new(n)),
                _ => None,
            })
            .collect();
        let Some((file, parents)) = names.split_last() else {
            return Ok(Outcome::Missing);
        };
        let shown = |upto: usize| {
            names[..=upto]
                .iter()
                .map(|n| n.display().to_string())
                .collect::<Vec<_>>()
                .join("/")
        };

        // The source, in the main worktree.
        let open_root = |root: &Path| {
            rfs::open(
                root,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io("opening", root, e))
        };
        let mut dir = open_root(main)?;
        for (i, name) in parents.iter().enumerate() {
            dir = match rfs::openat(&dir, *name, DIR, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => return Ok(Outcome::Missing),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Ok(Outcome::Refused(describe(
                        &dir,
                        name,
                        &shown(i),
                        "main worktree",
                    )))
                }
                Err(e) => return Err(io("opening", &main.join(shown(i)), e)),
            };
        }
        // NONBLOCK: opening a FIFO must not wait for a writer.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let source = match rfs::openat(&dir, *file, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Outcome::Missing),
            Err(Errno::LOOP) => {
                return Ok(Outcome::Refused(describe(
                    &dir,
                    file,
                    &shown(parents.len()),
                    "main worktree",
                )))
            }
            Err(e) => return Err(io("opening setup file", &main.join(rel), e)),
        };
        let stat = rfs::fstat(&source).map_err(|e| io("reading", &main.join(rel), e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Ok(Outcome::Refused(format!(
                "`{}` in the main worktree is not a regular file",
                rel.display()
            )));
        }
        let mode = Mode::from_raw_mode(stat.st_mode) & Mode::from_bits_truncate(0o777);

        // The destination, in the new worktree: a committed link must not
        // redirect the write, so every directory is opened without following.
        let mut dir = open_root(worktree)?;
        for (i, name) in parents.iter().enumerate() {
            let opened = match rfs::openat(&dir, *name, DIR, Mode::empty()) {
                Err(Errno::NOENT) => {
                    match rfs::mkdirat(&dir, *name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(io("creating directory", &worktree.join(shown(i)), e))
                        }
                    }
                    rfs::openat(&dir, *name, DIR, Mode::empty())
                }
                other => other,
            };
            dir = match opened {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Ok(Outcome::Refused(describe(
                        &dir,
                        name,
                        &shown(i),
                        "new worktree",
                    )))
                }
                Err(e) => return Err(io("opening", &worktree.join(shown(i)), e)),
            };
        }
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let target = match rfs::openat(&dir, *file, flags, mode) {
            Ok(fd) => fd,
            Err(Errno::EXIST | Errno::LOOP) => {
                return Ok(Outcome::Refused(format!(
                    "{}: the new worktree already has it, and it is never overwritten",
                    describe(&dir, file, &shown(parents.len()), "new worktree")
                )))
            }
            Err(e) => return Err(io("creating setup file", &worktree.join(rel), e)),
        };
        let (mut from, mut to) = (File::from(source), File::from(target));
        std::io::copy(&mut from, &mut to).map_err(|source| WorktreeError::Io {
            action: "copying setup file to",
            path: worktree.join(rel),
            source,
        })?;
        Ok(Outcome::Copied)
    }
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false)
}

fn join_args(args: &[&OsStr]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testutil::TestRepo;

    #[test]
    fn add_and_remove_worktree() {
        let repo = TestRepo::new();
        let wt = repo.path("wt/T001");
        repo.git.add_worktree(&wt, "sprint/f/T001", "main").unwrap();
        assert!(wt.join("README.md").is_file());
        assert!(repo.git.branch_exists("sprint/f/T001").unwrap());
        let listed = repo.git.run(&["worktree", "list", "--porcelain"]).unwrap();
        assert!(
            listed.contains("branch refs/heads/sprint/f/T001"),
            "{listed}"
        );

        repo.git.remove_worktree(&wt, false).unwrap();
        assert!(!wt.exists());
        let listed = repo.git.run(&["worktree", "list", "--porcelain"]).unwrap();
        assert!(!listed.contains("sprint/f/T001"), "{listed}");
        // Removing again is only a prune.
        repo.git.remove_worktree(&wt, false).unwrap();
    }

    #[test]
    fn add_refuses_bad_rev_existing_branch_and_taken_path() {
        let repo = TestRepo::new();
        let err = repo
            .git
            .add_worktree(&repo.path("a"), "b1", "no-such-rev")
            .unwrap_err();
        assert!(matches!(err, WorktreeError::BadRevision { .. }), "{err}");
        assert!(err.to_string().contains("no-such-rev"));

        let err = repo
            .git
            .add_worktree(&repo.path("a"), "main", "main")
            .unwrap_err();
        assert!(matches!(err, WorktreeError::BranchExists { .. }), "{err}");

        let err = repo
            .git
            .add_worktree(&repo.path("a"), "bad..name", "main")
            .unwrap_err();
        assert!(matches!(err, WorktreeError::BadBranchName { .. }), "{err}");

        fs::create_dir_all(repo.path("taken")).unwrap();
        fs::write(repo.path("taken/x"), "x").unwrap();
        let err = repo
            .git
            .add_worktree(&repo.path("taken"), "b2", "main")
            .unwrap_err();
        assert!(matches!(err, WorktreeError::PathExists { .. }), "{err}");
    }

    #[test]
    fn remove_refuses_dirty_worktree_unless_forced() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "b", "main").unwrap();
        fs::write(wt.join("new.txt"), "untracked").unwrap();
        let err = repo.git.remove_worktree(&wt, false).unwrap_err();
        assert!(matches!(err, WorktreeError::Dirty { .. }), "{err}");
        repo.git.remove_worktree(&wt, true).unwrap();
        assert!(!wt.exists());
    }

    #[test]
    fn branch_kept_when_unmerged_and_deleted_when_merged() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        fs::write(wt.join("a.txt"), "a").unwrap();
        let who = repo.identity();
        repo.git.at(&wt).commit_wip("work: a", &who).unwrap();
        repo.git.remove_worktree(&wt, false).unwrap();

        let kept = repo
            .git
            .delete_branch_if_merged("work", "main", false)
            .unwrap();
        assert_eq!(kept, BranchDeletion::KeptUnmerged);
        assert!(repo.git.branch_exists("work").unwrap());

        repo.git
            .run(&["merge", "--quiet", "--ff-only", "work"])
            .unwrap();
        let done = repo
            .git
            .delete_branch_if_merged("work", "main", false)
            .unwrap();
        assert!(done.deleted());
        assert!(!repo.git.branch_exists("work").unwrap());
        assert_eq!(
            repo.git
                .delete_branch_if_merged("work", "main", false)
                .unwrap(),
            BranchDeletion::Missing
        );
    }

    #[test]
    fn force_deletes_unmerged_branch() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        fs::write(wt.join("a.txt"), "a").unwrap();
        repo.git.at(&wt).commit_wip("a", &repo.identity()).unwrap();
        repo.git.remove_worktree(&wt, false).unwrap();
        let r = repo
            .git
            .delete_branch_if_merged("work", "main", true)
            .unwrap();
        assert!(r.deleted());
    }

    #[test]
    fn commit_wip_commits_dirty_worktree_and_skips_clean_one() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        let g = repo.git.at(&wt);
        assert_eq!(g.commit_wip("nothing", &repo.identity()).unwrap(), None);

        fs::write(wt.join("README.md"), "changed\n").unwrap();
        fs::create_dir_all(wt.join("src")).unwrap();
        fs::write(wt.join("src/new.rs"), "fn x() {}\n").unwrap();
        let who = Identity {
            name: "dev-2".into(),
            email: "dev-2@git-sprint.invalid".into(),
        };
        let id = g.commit_wip("T001: save work", &who).unwrap().unwrap();
        assert_eq!(id.len(), 40);
        assert!(!g.is_dirty().unwrap());
        let show = g
            .run(&["log", "-1", "--format=%an <%ae>|%cn|%s", "HEAD"])
            .unwrap();
        // The agent authors it; the committer stays the user.
        assert_eq!(
            show.trim(),
            "dev-2 <dev-2@git-sprint.invalid>|Test Author|T001: save work"
        );

        assert_eq!(repo.git.commits_ahead("work", "main").unwrap(), 1);
        let mut files = repo.git.files_changed("work", "main").unwrap();
        files.sort();
        assert_eq!(files, vec!["README.md", "src/new.rs"]);
        assert_eq!(repo.git.commits_ahead("main", "work").unwrap(), 0);
    }

    #[test]
    fn commit_wip_without_a_known_committer_commits_as_the_author() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        // No committer in the environment and none git may guess.
        let mut g = Git::new(&wt);
        for (k, v) in crate::worker::testutil::git_env(&repo.home) {
            if !k.starts_with("GIT_COMMITTER_") && !k.starts_with("GIT_AUTHOR_") {
                g = g.with_env(k, v);
            }
        }
        let g = g
            .with_env("GIT_CONFIG_COUNT", "1")
            .with_env("GIT_CONFIG_KEY_0", "user.useConfigOnly")
            .with_env("GIT_CONFIG_VALUE_0", "true");
        assert!(!g.check(&["var", "GIT_COMMITTER_IDENT"]).unwrap());
        fs::write(wt.join("a.txt"), "a").unwrap();
        let who = Identity {
            name: "dev-3".into(),
            email: "dev-3@git-sprint.invalid".into(),
        };
        assert!(g.commit_wip("save", &who).unwrap().is_some());
        let show = g.run(&["log", "-1", "--format=%an|%cn"]).unwrap();
        assert_eq!(show.trim(), "dev-3|dev-3");
    }

    #[test]
    fn common_dir_and_main_worktree() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        let common = repo.git.at(&wt).common_dir().unwrap();
        assert_eq!(
            common.canonicalize().unwrap(),
            repo.work.join(".git").canonicalize().unwrap()
        );
        let main = repo.git.at(&wt).main_worktree().unwrap().unwrap();
        assert_eq!(
            main.canonicalize().unwrap(),
            repo.work.canonicalize().unwrap()
        );
    }

    #[test]
    fn setup_copies_files_and_runs_commands() {
        let repo = TestRepo::new();
        fs::write(repo.work.join(".env"), "SECRET=1\n").unwrap();
        fs::create_dir_all(repo.work.join("config")).unwrap();
        fs::write(repo.work.join("config/local.toml"), "x = 1\n").unwrap();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();

        let report = setup(
            &repo.work,
            &wt,
            &[
                PathBuf::from(".env"),
                PathBuf::from("config/local.toml"),
                PathBuf::from("missing.txt"),
                PathBuf::from("nodir/missing.txt"),
            ],
            &["echo made > setup-ran.txt".into(), "test -f .env".into()],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(
            report.copied,
            vec![PathBuf::from(".env"), PathBuf::from("config/local.toml")]
        );
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        assert_eq!(fs::read_to_string(wt.join(".env")).unwrap(), "SECRET=1\n");
        assert_eq!(
            fs::read_to_string(wt.join("setup-ran.txt")).unwrap(),
            "made\n"
        );
    }

    #[test]
    fn a_setup_command_past_its_timeout_is_killed_with_what_it_started() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        let err = setup(
            &repo.work,
            &wt,
            &[],
            &["sleep 300 & echo $! > bg.pid; echo waiting >&2; wait".into()],
            std::time::Duration::from_secs(1),
        )
        .unwrap_err();
        let WorktreeError::SetupTimeout {
            secs, stderr_tail, ..
        } = &err
        else {
            panic!("wrong error: {err}");
        };
        assert_eq!((*secs, stderr_tail.as_str()), (1, "waiting"));
        assert!(err.to_string().contains("setup.timeout"), "{err}");
        let bg: u32 = fs::read_to_string(wt.join("bg.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed with its group; it may linger as a zombie until reaped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let state = fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
            let zombie_or_gone = state.is_empty()
                || state
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z');
            if zombie_or_gone {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for the setup's background sleep {bg} to die"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn setup_failure_names_command_status_and_stderr() {
        let repo = TestRepo::new();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        let err = setup(
            &repo.work,
            &wt,
            &[],
            &[
                "true".into(),
                "echo boom >&2; exit 3".into(),
                "touch never".into(),
            ],
            std::time::Duration::from_secs(60),
        )
        .unwrap_err();
        let WorktreeError::Setup {
            command,
            status,
            stderr_tail,
            ..
        } = &err
        else {
            panic!("wrong error: {err}");
        };
        assert_eq!(command, "echo boom >&2; exit 3");
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr_tail, "boom");
        assert!(err.to_string().contains("echo boom"), "{err}");
        assert!(!wt.join("never").exists());

        for bad in ["../escape", "/etc/passwd", "", ".", "a/../../b"] {
            let err = setup(
                &repo.work,
                &wt,
                &[PathBuf::from(bad)],
                &[],
                std::time::Duration::from_secs(60),
            )
            .unwrap_err();
            assert!(
                matches!(err, WorktreeError::UnsafeCopyPath { .. }),
                "{bad}: {err}"
            );
        }
    }

    /// A directory outside both worktrees that a hostile link points at.
    fn outside() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn setup_never_writes_through_a_symlink_in_the_new_worktree() {
        use std::os::unix::fs::symlink;
        let repo = TestRepo::new();
        let elsewhere = outside();
        fs::write(repo.work.join(".env"), "SECRET=1\n").unwrap();
        fs::create_dir_all(repo.work.join("config")).unwrap();
        fs::write(repo.work.join("config/local.toml"), "token = 2\n").unwrap();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        // As if committed on the branch: a file link and a directory link,
        // both pointing outside the worktree.
        symlink(elsewhere.path().join("stolen"), wt.join(".env")).unwrap();
        symlink(elsewhere.path(), wt.join("config")).unwrap();

        let report = setup(
            &repo.work,
            &wt,
            &[PathBuf::from(".env"), PathBuf::from("config/local.toml")],
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(report.copied.is_empty(), "{report:?}");
        let skipped: Vec<&str> = report.skipped.iter().map(|(_, why)| why.as_str()).collect();
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0].contains("`.env` in the new worktree is a symlink"),
            "{skipped:?}"
        );
        assert!(
            skipped[1].contains("`config` in the new worktree is a symlink"),
            "{skipped:?}"
        );
        assert!(
            listing(elsewhere.path()).is_empty(),
            "written outside: {:?}",
            listing(elsewhere.path())
        );
    }

    #[test]
    fn setup_never_reads_through_a_symlink_in_the_main_worktree() {
        use std::os::unix::fs::symlink;
        let repo = TestRepo::new();
        let elsewhere = outside();
        fs::write(elsewhere.path().join("id_rsa"), "PRIVATE KEY\n").unwrap();
        fs::create_dir_all(elsewhere.path().join("dir")).unwrap();
        fs::write(elsewhere.path().join("dir/creds"), "PRIVATE\n").unwrap();
        symlink(elsewhere.path().join("id_rsa"), repo.work.join(".env")).unwrap();
        symlink(elsewhere.path().join("dir"), repo.work.join("linked")).unwrap();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();

        let report = setup(
            &repo.work,
            &wt,
            &[PathBuf::from(".env"), PathBuf::from("linked/creds")],
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(report.copied.is_empty(), "{report:?}");
        assert_eq!(report.skipped.len(), 2, "{report:?}");
        assert!(
            report.skipped[0].1.contains("main worktree is a symlink"),
            "{report:?}"
        );
        assert!(!wt.join(".env").exists());
        assert!(!wt.join("linked").exists());
    }

    #[test]
    fn setup_copies_only_regular_files_and_never_overwrites() {
        let repo = TestRepo::new();
        fs::create_dir_all(repo.work.join("adir")).unwrap();
        let fifo = repo.work.join("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        fs::write(repo.work.join("README.md"), "main worktree's copy\n").unwrap();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        let committed = fs::read_to_string(wt.join("README.md")).unwrap();

        let report = setup(
            &repo.work,
            &wt,
            &[
                PathBuf::from("adir"),
                PathBuf::from("fifo"),
                PathBuf::from("README.md"),
            ],
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(report.copied.is_empty(), "{report:?}");
        let why: Vec<&str> = report.skipped.iter().map(|(_, w)| w.as_str()).collect();
        assert!(why[0].contains("not a regular file"), "{why:?}");
        assert!(why[1].contains("not a regular file"), "{why:?}");
        assert!(why[2].contains("never overwritten"), "{why:?}");
        assert_eq!(fs::read_to_string(wt.join("README.md")).unwrap(), committed);
    }

    #[test]
    fn setup_keeps_the_file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let repo = TestRepo::new();
        let env = repo.work.join(".env");
        fs::write(&env, "S=1\n").unwrap();
        fs::set_permissions(&env, fs::Permissions::from_mode(0o600)).unwrap();
        let wt = repo.path("wt");
        repo.git.add_worktree(&wt, "work", "main").unwrap();
        setup(
            &repo.work,
            &wt,
            &[PathBuf::from(".env")],
            &[],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let mode = fs::metadata(wt.join(".env")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
