//! The worktree pool: finished workers' worktrees kept for the next spawn,
//! because `git worktree add` writes every file of the tree (seconds on a
//! large repository) while re-pointing a kept one writes only the files that
//! differ.
//!
//! A pooled worktree is a registered worktree under
//! `$GIT_COMMON_DIR/sprint/pool/<n>` on a detached HEAD. It is returned by
//! [`Pool::retire`] only once its worker's work is safe (committed on the
//! worker's branch: the branch keeps the commits, the pool reuses only the
//! directory), and only up to the configured bound; beyond it, or when it
//! fails a check, it is removed as before. [`Pool::take`] moves one to the
//! new worker's path and re-points it (`git checkout --force -b`), cleans it
//! (`git clean -ffdx`, sparing the configured keep paths) and checks it
//! (`git status` empty, HEAD on the branch at the commit asked for).
//!
//! Agents are untrusted, so before any git command runs in a returned
//! worktree its ties are read as plain files: the directory and its `.git`
//! file must not be symlinks, the `.git` file must name its own admin
//! directory under `<common>/worktrees/`, which must point back, name the
//! common directory and hold nothing but git's own per-worktree files — no
//! `config.worktree` (where `core.fsmonitor` or `core.hooksPath` would make
//! our git run the agent's code), no lock, no hooks. A worktree that fails is
//! discarded, never repaired.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::worktree::{Git, WorktreeError};

type Result<T> = std::result::Result<T, WorktreeError>;

/// The most worktrees a pool may keep (`worktrees.pool`): each is a full
/// checkout on disk.
pub(crate) const MAX_POOL: usize = 64;

/// What git keeps in a worktree's admin directory; anything else there was
/// put by someone else (an agent) and the worktree is not reused.
const ADMIN_FILES: &[&str] = &[
    "HEAD",
    "ORIG_HEAD",
    "FETCH_HEAD",
    "AUTO_MERGE",
    "COMMIT_EDITMSG",
    "index",
    "commondir",
    "gitdir",
    "logs",
    "refs",
];

/// git-sprint's own mark in a worktree's admin directory that its setup
/// ran (see `daemon::launch`). A pooled worktree runs setup again for its
/// next task, so the mark goes when the worktree is retired.
pub(crate) const SETUP_DONE: &str = "sprint-setup-done";

/// The repository's pool of spare worktrees.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    /// `<common>/sprint/pool`.
    dir: PathBuf,
    /// The repository's common directory, canonical.
    common: PathBuf,
    /// How many worktrees the pool keeps at most; 0 turns it off.
    size: usize,
    /// Paths (relative, top of the worktree) `git clean` spares.
    keep: Vec<PathBuf>,
}

/// Where a worker's worktree came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A pooled worktree, re-pointed and cleaned.
    Pooled,
    /// A new `git worktree add`.
    Added,
}

/// What [`Pool::retire`] did with a worktree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Retired {
    /// Kept in the pool at this path.
    Pooled(PathBuf),
    /// Removed: the pool is off or full.
    Removed,
    /// Removed because it failed a check (the reason), so never reused.
    Discarded(String),
}

impl Pool {
    /// The pool of the repository whose common directory is `common_dir`,
    /// keeping at most `size` worktrees and sparing `keep` when cleaning.
    pub(crate) fn new(common_dir: &Path, size: usize, keep: &[PathBuf]) -> Pool {
        let common = common_dir
            .canonicalize()
            .unwrap_or_else(|_| common_dir.to_owned());
        Pool {
            dir: common.join("sprint").join("pool"),
            common,
            size: size.min(MAX_POOL),
            keep: keep.to_vec(),
        }
    }

    /// A pool that keeps nothing: every worktree is added and removed.
    #[cfg(test)]
    pub(crate) fn off(common_dir: &Path) -> Pool {
        Pool::new(common_dir, 0, &[])
    }

    /// The directory pooled worktrees live in.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The pooled worktrees, oldest name first.
    pub(crate) fn entries(&self) -> Vec<PathBuf> {
        let Ok(read) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = read.flatten().map(|e| e.path()).collect();
        out.sort();
        out
    }

    /// A worktree at `path` on `branch`: the existing branch checked out, or
    /// a new one made at `from_rev`. From the pool when it holds a sound
    /// worktree, else `git worktree add` (see [`Git::add_worktree`]).
    pub(crate) fn add(
        &self,
        git: &Git,
        path: &Path,
        branch: &str,
        from_rev: &str,
    ) -> Result<Origin> {
        if self.take(git, path, branch, from_rev)? {
            return Ok(Origin::Pooled);
        }
        if git.branch_exists(branch)? {
            git.run(&[
                OsStr::new("worktree"),
                OsStr::new("add"),
                OsStr::new("--quiet"),
                path.as_os_str(),
                OsStr::new(branch),
            ])?;
        } else {
            git.add_worktree(path, branch, from_rev)?;
        }
        Ok(Origin::Added)
    }

    /// Takes a pooled worktree for `path` on `branch` (the existing branch,
    /// or a new one at `from_rev`); false when the pool had none that passed
    /// its checks (each failed one is discarded). The caller adds a new
    /// worktree then.
    pub(crate) fn take(
        &self,
        git: &Git,
        path: &Path,
        branch: &str,
        from_rev: &str,
    ) -> Result<bool> {
        if self.size == 0 {
            return Ok(false);
        }
        let existing = git.branch_exists(branch)?;
        let commit = if existing {
            None
        } else {
            if !git.is_branch_name(branch)? {
                return Err(WorktreeError::BadBranchName {
                    branch: branch.to_owned(),
                });
            }
            match git.commit_id(from_rev)? {
                Some(sha) => Some(sha),
                None => {
                    return Err(WorktreeError::BadRevision {
                        rev: from_rev.to_owned(),
                        repo: git.dir().to_owned(),
                    })
                }
            }
        };
        if fs::symlink_metadata(path).is_ok() {
            if !is_empty_dir(path) {
                return Err(WorktreeError::PathExists {
                    path: path.to_owned(),
                });
            }
            let _ = fs::remove_dir(path);
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| WorktreeError::Io {
                action: "creating directory",
                path: parent.to_owned(),
                source,
            })?;
        }
        for entry in self.entries() {
            // Moving it is the claim: of two spawns racing for one entry, one
            // rename fails and that spawn tries the next.
            if fs::rename(&entry, path).is_err() {
                continue;
            }
            let ready = self
                .inspect(path, &entry)
                .and_then(|()| self.tie(path))
                .and_then(|()| self.repoint(git, path, branch, commit.as_deref()));
            match ready {
                Ok(()) => return Ok(true),
                Err(why) => {
                    tracing::warn!(worktree = %entry.display(), "pooled worktree discarded: {why}");
                    self.discard(git, path);
                    if commit.is_some() {
                        // Made by this checkout at `from_rev`: no one's work.
                        let _ = git.delete_branch_if_merged(branch, from_rev, false);
                    }
                }
            }
        }
        Ok(false)
    }

    /// Puts the worktree at `path` in the pool, detached, or removes it when
    /// the pool is off or full or the worktree fails a check. Call it only
    /// once the worker's work is committed on its branch: the pool keeps the
    /// directory, not its uncommitted files.
    pub(crate) fn retire(&self, git: &Git, path: &Path) -> Result<Retired> {
        if !path.exists() {
            git.remove_worktree(path, true)?;
            return Ok(Retired::Removed);
        }
        if self.entries().len() >= self.size {
            self.remove(git, path)?;
            return Ok(Retired::Removed);
        }
        let Ok(here) = path.canonicalize() else {
            self.remove(git, path)?;
            return Ok(Retired::Removed);
        };
        if let Some(admin) =
            admin_of(path).filter(|a| a.parent() == Some(&*self.common.join("worktrees")))
        {
            let _ = fs::remove_file(admin.join(SETUP_DONE));
        }
        if let Err(why) = self.inspect(path, &here) {
            self.discard(git, path);
            return Ok(Retired::Discarded(why));
        }
        // Detached, so the branch is free to be deleted or checked out
        // elsewhere while its old directory waits here.
        if let Err(e) = git.at(path).run(&["checkout", "--quiet", "--detach"]) {
            let why = format!("detaching it failed: {e}");
            self.discard(git, path);
            return Ok(Retired::Discarded(why));
        }
        let dest = self.dir.join(unique_name());
        let moved = fs::create_dir_all(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|()| fs::rename(path, &dest).map_err(|e| e.to_string()));
        if let Err(e) = moved {
            let why = format!("moving it to the pool failed: {e}");
            self.discard(git, path);
            return Ok(Retired::Discarded(why));
        }
        if let Err(why) = self.tie(&dest) {
            self.discard(git, &dest);
            return Ok(Retired::Discarded(why));
        }
        Ok(Retired::Pooled(dest))
    }

    /// Removes a worktree as before the pool: `git worktree remove --force`.
    fn remove(&self, git: &Git, path: &Path) -> Result<()> {
        git.remove_worktree(path, true)
    }

    /// Removes a worktree that failed a check, whatever state it is in:
    /// the directory (made writable first: an agent may have left
    /// read-only directories), then git's record of it, if the record is
    /// its own or no one's.
    pub(crate) fn discard(&self, git: &Git, path: &Path) {
        let admin = admin_of(path)
            .filter(|a| a.parent() == Some(&*self.common.join("worktrees")))
            .filter(|a| abandoned_or_of(a, path));
        if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
            make_writable(path);
            let _ = fs::remove_dir_all(path);
        } else {
            let _ = fs::remove_file(path);
        }
        if let Some(admin) = admin {
            let _ = fs::remove_dir_all(admin);
        }
        let _ = git.run(&["worktree", "prune"]);
    }

    /// Reads the ties of the worktree at `path`, which git knows at `was`
    /// (where it was before a move), as plain files: no git runs there yet.
    /// `Err` says why it must not be used.
    fn inspect(&self, path: &Path, was: &Path) -> std::result::Result<(), String> {
        let meta = fs::symlink_metadata(path).map_err(|e| format!("{e}"))?;
        if !meta.is_dir() {
            return Err("it is not a directory (a symlink?)".into());
        }
        let dotgit = path.join(".git");
        let meta = fs::symlink_metadata(&dotgit).map_err(|e| format!(".git: {e}"))?;
        if !meta.is_file() {
            return Err(".git is not a regular file".into());
        }
        let admin = admin_of(path).ok_or(".git does not name a git directory")?;
        let worktrees = self.common.join("worktrees");
        let admin_real = admin
            .canonicalize()
            .map_err(|e| format!(".git names {}: {e}", admin.display()))?;
        if admin_real.parent() != Some(&*worktrees) {
            return Err(format!(
                ".git points outside {}: {}",
                worktrees.display(),
                admin.display()
            ));
        }
        if fs::symlink_metadata(&admin).is_ok_and(|m| !m.is_dir()) {
            return Err("its admin directory is not a directory".into());
        }
        let back = fs::read_to_string(admin.join("gitdir")).map_err(|e| format!("gitdir: {e}"))?;
        let back = Path::new(back.trim_end_matches('\n'));
        if back != was.join(".git") {
            return Err(format!("its admin directory belongs to {}", back.display()));
        }
        let common =
            fs::read_to_string(admin.join("commondir")).map_err(|e| format!("commondir: {e}"))?;
        let common = admin.join(common.trim_end_matches('\n'));
        if common.canonicalize().ok().as_deref() != Some(&*self.common) {
            return Err(format!("commondir names {}", common.display()));
        }
        let entries = fs::read_dir(&admin).map_err(|e| format!("{e}"))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !ADMIN_FILES.iter().any(|f| OsStr::new(f) == name) {
                return Err(format!(
                    "its admin directory holds {} (not git's: a lock, a config.worktree, hooks?)",
                    name.to_string_lossy()
                ));
            }
            if entry.file_type().is_ok_and(|t| t.is_symlink()) {
                return Err(format!(
                    "{} in its admin directory is a symlink",
                    name.to_string_lossy()
                ));
            }
        }
        Ok(())
    }

    /// Points the ties of the checked worktree now at `path` (moved there)
    /// at each other again, as `git worktree move` does, without running git
    /// in it.
    fn tie(&self, path: &Path) -> std::result::Result<(), String> {
        let admin = admin_of(path).ok_or("no admin directory")?;
        let real = path.canonicalize().map_err(|e| e.to_string())?;
        fs::write(path.join(".git"), format!("gitdir: {}\n", admin.display()))
            .map_err(|e| format!("writing {}/.git: {e}", path.display()))?;
        fs::write(
            admin.join("gitdir"),
            format!("{}\n", real.join(".git").display()),
        )
        .map_err(|e| format!("writing {}/gitdir: {e}", admin.display()))?;
        Ok(())
    }

    /// Re-points the worktree at `path` to `branch` (made at `commit` when
    /// given, else the existing one), cleans it and checks the result.
    fn repoint(
        &self,
        git: &Git,
        path: &Path,
        branch: &str,
        commit: Option<&str>,
    ) -> std::result::Result<(), String> {
        let here = git.at(path);
        for keep in &self.keep {
            // A kept path must be the worktree's own directory, not a link
            // an agent left to somewhere else.
            let mut at = path.to_owned();
            for part in keep.components() {
                at.push(part);
                if fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = fs::remove_file(&at);
                    break;
                }
            }
        }
        let mut checkout = vec!["checkout", "--quiet", "--force"];
        match commit {
            Some(sha) => checkout.extend(["--no-track", "-b", branch, sha]),
            None => checkout.push(branch),
        }
        here.run(&checkout).map_err(|e| e.to_string())?;
        let mut clean: Vec<String> = vec!["clean".into(), "-ffdxq".into()];
        for keep in &self.keep {
            clean.push("-e".into());
            clean.push(format!("/{}", keep.display()));
        }
        here.run(&clean).map_err(|e| e.to_string())?;
        let status = here
            .run(&[
                "status",
                "--porcelain=v2",
                "--branch",
                "-z",
                "--untracked-files=normal",
                "--ignored=no",
            ])
            .map_err(|e| e.to_string())?;
        let want_head = format!("refs/heads/{branch}");
        let mut head = None;
        let mut oid = None;
        for record in status.split('\0').filter(|r| !r.is_empty()) {
            if let Some(h) = record.strip_prefix("# branch.head ") {
                head = Some(h.to_owned());
            } else if let Some(o) = record.strip_prefix("# branch.oid ") {
                oid = Some(o.to_owned());
            } else if record.starts_with("# ") {
                continue;
            } else if let Some(file) = record.strip_prefix("? ") {
                if !self.keep.iter().any(|k| Path::new(file).starts_with(k)) {
                    return Err(format!("`{file}` survived cleaning"));
                }
            } else {
                return Err(format!("not clean after checkout: {record}"));
            }
        }
        if head.as_deref() != Some(branch) {
            return Err(format!("HEAD is {head:?}, not {want_head}"));
        }
        if let Some(sha) = commit {
            if oid.as_deref() != Some(sha) {
                return Err(format!("HEAD is at {oid:?}, not {sha}"));
            }
        }
        Ok(())
    }
}

/// The admin directory the worktree's `.git` file names, as written.
fn admin_of(path: &Path) -> Option<PathBuf> {
    let text = fs::read_to_string(path.join(".git")).ok()?;
    let dir = text.trim().strip_prefix("gitdir:")?.trim();
    Some(path.join(dir))
}

/// Whether the admin directory `admin` is the worktree at `path`'s own or
/// belongs to no worktree that exists: an agent may point its `.git` at
/// another worktree's, which must survive the discarding of this one.
fn abandoned_or_of(admin: &Path, path: &Path) -> bool {
    let Ok(back) = fs::read_to_string(admin.join("gitdir")) else {
        return true;
    };
    let back = Path::new(back.trim_end_matches('\n'));
    let own = path.join(".git");
    back == own
        || path.canonicalize().is_ok_and(|p| back == p.join(".git"))
        || fs::symlink_metadata(back).is_err()
}

/// A pool entry name no other process or thread picks at the same time.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_empty_dir(path: &Path) -> bool {
    fs::read_dir(path)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false)
}

/// Gives the owner write and search permission on every directory under
/// `path` (never following a symlink), so that it can be removed.
fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let mode = meta.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = fs::read_dir(path) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_writable(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::worker::testutil::TestRepo;

    fn pool(repo: &TestRepo, size: usize, keep: &[&str]) -> Pool {
        let keep: Vec<PathBuf> = keep.iter().map(PathBuf::from).collect();
        Pool::new(&repo.work.join(".git"), size, &keep)
    }

    /// A worker's worktree on `branch`, retired into the pool; returns the
    /// pooled path.
    fn pooled(repo: &TestRepo, pool: &Pool, branch: &str) -> PathBuf {
        let wt = repo.path(&format!("wt/{branch}"));
        pool.add(&repo.git, &wt, branch, "main").unwrap();
        match pool.retire(&repo.git, &wt).unwrap() {
            Retired::Pooled(p) => p,
            other => panic!("not pooled: {other:?}"),
        }
    }

    fn commit_file(repo: &TestRepo, name: &str) -> String {
        std::fs::write(repo.work.join(name), "x\n").unwrap();
        repo.git.run(&["add", name]).unwrap();
        repo.git.run(&["commit", "--quiet", "-m", name]).unwrap();
        repo.git
            .run(&["rev-parse", "HEAD"])
            .unwrap()
            .trim()
            .to_owned()
    }

    #[test]
    fn regression_a_worktree_whose_setup_ran_was_never_pooled() {
        // The setup mark in the admin directory read as a stranger's file,
        // so every sprint task's worktree was discarded instead of pooled;
        // now the mark goes, and the next task runs setup again.
        let repo = TestRepo::new();
        let pool = pool(&repo, 2, &[]);
        let wt = repo.path("wt/a");
        pool.add(&repo.git, &wt, "a", "main").unwrap();
        let admin = admin_of(&wt).unwrap();
        std::fs::write(admin.join(SETUP_DONE), "").unwrap();
        let Retired::Pooled(at) = pool.retire(&repo.git, &wt).unwrap() else {
            panic!("a worktree whose setup ran was not pooled")
        };
        assert!(!admin_of(&at).unwrap().join(SETUP_DONE).exists());
    }

    #[test]
    fn retired_worktree_is_reused_clean_on_a_new_branch_at_the_new_tip() {
        let repo = TestRepo::new();
        let pool = pool(&repo, 2, &["target"]);
        let wt = repo.path("wt/a");
        assert_eq!(
            pool.add(&repo.git, &wt, "a", "main").unwrap(),
            Origin::Added
        );
        std::fs::create_dir_all(wt.join("target")).unwrap();
        std::fs::write(wt.join("target/built"), "cache\n").unwrap();
        std::fs::write(wt.join("leftover.txt"), "agent junk\n").unwrap();
        std::fs::write(wt.join("README.md"), "changed\n").unwrap();
        let inode = std::fs::metadata(&wt).unwrap().ino();
        let Retired::Pooled(at) = pool.retire(&repo.git, &wt).unwrap() else {
            panic!("not pooled")
        };
        assert!(!wt.exists() && at.starts_with(pool.dir()));
        // Detached: the branch is free.
        repo.git.run(&["branch", "-D", "a"]).unwrap();

        let tip = commit_file(&repo, "new.txt");
        let wt2 = repo.path("wt/b");
        assert_eq!(
            pool.add(&repo.git, &wt2, "b", "main").unwrap(),
            Origin::Pooled
        );
        assert_eq!(std::fs::metadata(&wt2).unwrap().ino(), inode);
        assert!(pool.entries().is_empty());
        let here = repo.git.at(&wt2);
        assert_eq!(here.run(&["rev-parse", "HEAD"]).unwrap().trim(), tip);
        assert_eq!(
            here.run(&["symbolic-ref", "HEAD"]).unwrap().trim(),
            "refs/heads/b"
        );
        assert!(!wt2.join("leftover.txt").exists());
        assert_eq!(
            std::fs::read_to_string(wt2.join("README.md")).unwrap(),
            "hello\n"
        );
        assert!(wt2.join("new.txt").is_file());
        assert_eq!(
            std::fs::read_to_string(wt2.join("target/built")).unwrap(),
            "cache\n"
        );
        // git knows it at its new place.
        let list = repo.git.run(&["worktree", "list", "--porcelain"]).unwrap();
        assert!(
            list.contains(&format!(
                "worktree {}",
                wt2.canonicalize().unwrap().display()
            )),
            "{list}"
        );
        // And it goes back again.
        assert!(matches!(
            pool.retire(&repo.git, &wt2).unwrap(),
            Retired::Pooled(_)
        ));
    }

    #[test]
    fn an_existing_branch_is_checked_out_as_it_is() {
        let repo = TestRepo::new();
        let pool = pool(&repo, 1, &[]);
        pooled(&repo, &pool, "a");
        let before = commit_file(&repo, "later.txt");
        repo.git.run(&["branch", "keep-me", "HEAD~1"]).unwrap();
        let wt = repo.path("wt/k");
        assert_eq!(
            pool.add(&repo.git, &wt, "keep-me", "main").unwrap(),
            Origin::Pooled
        );
        let head = repo.git.at(&wt).run(&["rev-parse", "HEAD"]).unwrap();
        assert_ne!(head.trim(), before);
        assert!(!wt.join("later.txt").exists());
    }

    #[test]
    fn the_pool_keeps_at_most_its_size_and_size_zero_is_off() {
        let repo = TestRepo::new();
        let pool = pool(&repo, 2, &[]);
        for b in ["a", "b", "c"] {
            pool.add(&repo.git, &repo.path(b), b, "main").unwrap();
        }
        let r: Vec<Retired> = ["a", "b", "c"]
            .iter()
            .map(|b| pool.retire(&repo.git, &repo.path(b)).unwrap())
            .collect();
        assert!(matches!(r[0], Retired::Pooled(_)) && matches!(r[1], Retired::Pooled(_)));
        assert_eq!(r[2], Retired::Removed);
        assert_eq!(pool.entries().len(), 2);
        let list = repo.git.run(&["worktree", "list"]).unwrap();
        assert_eq!(list.lines().count(), 3, "{list}");

        let off = Pool::off(&repo.work.join(".git"));
        let wt = repo.path("d");
        assert_eq!(off.add(&repo.git, &wt, "d", "main").unwrap(), Origin::Added);
        assert_eq!(off.retire(&repo.git, &wt).unwrap(), Retired::Removed);
        assert!(!wt.exists());
    }

    #[test]
    fn discarding_a_worktree_pointed_at_another_ones_admin_directory_spares_the_other() {
        let repo = TestRepo::new();
        let pool = pool(&repo, 2, &[]);
        let (a, b) = (repo.path("wt/a"), repo.path("wt/b"));
        pool.add(&repo.git, &a, "a", "main").unwrap();
        pool.add(&repo.git, &b, "b", "main").unwrap();
        let b_admin = admin_of(&b).unwrap();
        // An agent in `a` points its .git at `b`'s admin directory.
        std::fs::write(a.join(".git"), format!("gitdir: {}\n", b_admin.display())).unwrap();
        pool.discard(&repo.git, &a);
        assert!(!a.exists());
        assert!(
            b_admin.join("HEAD").exists(),
            "b's admin directory was removed"
        );
        assert_eq!(
            repo.git
                .at(&b)
                .run(&["symbolic-ref", "HEAD"])
                .unwrap()
                .trim(),
            "refs/heads/b"
        );
        // `a`'s own record, abandoned, went with git's prune.
        let listed = repo.git.run(&["worktree", "list", "--porcelain"]).unwrap();
        assert!(!listed.contains("wt/a"), "{listed}");
    }

    #[test]
    fn a_rewritten_dot_git_file_is_discarded_not_followed() {
        let repo = TestRepo::new();
        let pool = pool(&repo, 2, &[]);
        let at = pooled(&repo, &pool, "a");
        // Pointing at the main repository's git dir: our checkout would
        // move the main worktree's HEAD, and clean would run against it.
        std::fs::write(
            at.join(".git"),
            format!("gitdir: {}\n", repo.work.join(".git").display()),
        )
        .unwrap();
        let wt = repo.path("wt/b");
        assert_eq!(
            pool.add(&repo.git, &wt, "b", "main").unwrap(),
            Origin::Added
        );
        assert!(!at.exists(), "the bad worktree stays in the pool");
        // The main worktree is untouched.
        assert_eq!(
            repo.git.run(&["symbolic-ref", "HEAD"]).unwrap().trim(),
            "refs/heads/main"
        );
        assert!(!repo.work.join(".git/gitdir").exists());
        assert_eq!(
            repo.git
                .at(&wt)
                .run(&["symbolic-ref", "HEAD"])
                .unwrap()
                .trim(),
            "refs/heads/b"
        );
    }

    #[test]
    fn a_worktree_config_with_fsmonitor_or_hooks_path_is_discarded_before_git_runs() {
        let repo = TestRepo::new();
        repo.git
            .run(&["config", "extensions.worktreeConfig", "true"])
            .unwrap();
        let pool = pool(&repo, 2, &[]);
        let at = pooled(&repo, &pool, "a");
        let admin = admin_of(&at).unwrap();
        let marker = repo.path("fsmonitor-ran");
        let hooks = repo.path("evil-hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        let hook = hooks.join("post-checkout");
        std::fs::write(
            &hook,
            format!("#!/bin/sh\ntouch {}.hook\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&hook, fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            admin.join("config.worktree"),
            format!(
                "[core]\n\tfsmonitor = touch {}\n\thooksPath = {}\n",
                marker.display(),
                hooks.display()
            ),
        )
        .unwrap();
        let wt = repo.path("wt/b");
        assert_eq!(
            pool.add(&repo.git, &wt, "b", "main").unwrap(),
            Origin::Added
        );
        assert!(!marker.exists(), "core.fsmonitor ran");
        assert!(!repo.path("fsmonitor-ran.hook").exists(), "the hook ran");
        assert!(!at.exists() && !admin.exists());
    }

    #[test]
    fn untracked_and_ignored_secrets_are_cleaned_and_links_in_keep_paths_removed() {
        let repo = TestRepo::new();
        std::fs::write(repo.work.join(".gitignore"), "*.secret\n").unwrap();
        repo.git.run(&["add", ".gitignore"]).unwrap();
        repo.git
            .run(&["commit", "--quiet", "-m", "ignore"])
            .unwrap();
        let pool = pool(&repo, 2, &["node_modules"]);
        let wt = repo.path("wt/a");
        pool.add(&repo.git, &wt, "a", "main").unwrap();
        std::fs::write(wt.join("token.secret"), "hunter2\n").unwrap();
        std::fs::create_dir_all(wt.join("deep/dir")).unwrap();
        std::fs::write(wt.join("deep/dir/notes"), "x\n").unwrap();
        let outside = repo.path("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, wt.join("node_modules")).unwrap();
        pool.retire(&repo.git, &wt).unwrap();
        let wt2 = repo.path("wt/b");
        assert_eq!(
            pool.add(&repo.git, &wt2, "b", "main").unwrap(),
            Origin::Pooled
        );
        assert!(!wt2.join("token.secret").exists());
        assert!(!wt2.join("deep").exists());
        assert!(fs::symlink_metadata(wt2.join("node_modules")).is_err());
        assert!(outside.is_dir());
    }

    #[test]
    fn read_only_leftovers_make_the_worktree_go_not_fail_the_spawn() {
        let repo = TestRepo::new();
        let pool = pool(&repo, 2, &[]);
        let at = pooled(&repo, &pool, "a");
        std::fs::create_dir_all(at.join("locked/in")).unwrap();
        std::fs::write(at.join("locked/in/f"), "x\n").unwrap();
        std::fs::set_permissions(at.join("locked"), fs::Permissions::from_mode(0o500)).unwrap();
        let wt = repo.path("wt/b");
        let origin = pool.add(&repo.git, &wt, "b", "main").unwrap();
        // Root ignores permissions and cleans it; anyone else discards it.
        assert!(!at.exists());
        assert!(!wt.join("locked").exists() || origin == Origin::Added);
        assert_eq!(
            repo.git
                .at(&wt)
                .run(&["symbolic-ref", "HEAD"])
                .unwrap()
                .trim(),
            "refs/heads/b"
        );
    }
}
