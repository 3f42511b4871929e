//! The shared-files guard: what an agent must not change, checked around
//! every run whether or not the sandbox held.
//!
//! Some files make git run commands for everyone who uses the repository:
//! the shared `.git/config` (`core.fsmonitor`, `core.pager`, aliases,
//! filters), the hooks (and a `core.hooksPath` directory), `info/attributes`
//! and `info/exclude`; and some tie the agent's worktree to a repository (its
//! `.git` file, its admin directory's `commondir`, `gitdir` and
//! `config.worktree`), which the orchestrator's own git commands in that
//! worktree trust. Before the agent starts, [`Guard::take`] saves their bytes;
//! after it ends, [`Guard::restore`] compares and puts back whatever changed,
//! and reports each change, so the run can fail with cause `policy`. The
//! sandbox keeps a confined agent out of them; the guard also catches an
//! unconfined agent, and one that got another process (the tmux server, say)
//! to write for it.
//!
//! Separately, [`config_changes`] lists the sprint's own configuration files
//! (`.git-sprint.yaml`, `.git-sprint/`) an agent's commits changed: those are
//! policy too, unless the task names them.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::worktree::Git;

/// Files the agent's commits may change only when its task names them.
pub(crate) const SPRINT_CONFIG: &[&str] = &[".git-sprint.yaml", ".git-sprint/"];

/// A file's saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Saved {
    Missing,
    File { bytes: Vec<u8>, mode: u32 },
    Link(PathBuf),
    Dir,
}

impl Saved {
    fn read(path: &Path) -> Saved {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Saved::Missing;
        };
        if meta.file_type().is_symlink() {
            return std::fs::read_link(path).map_or(Saved::Missing, Saved::Link);
        }
        if meta.is_dir() {
            return Saved::Dir;
        }
        match std::fs::read(path) {
            Ok(bytes) => Saved::File {
                bytes,
                mode: meta.permissions().mode() & 0o7777,
            },
            Err(_) => Saved::Missing,
        }
    }
}

/// How a guarded file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Created,
    Modified,
    Removed,
}

/// One change the guard found (and undid, unless `undo_failed` says why not).
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) path: PathBuf,
    pub(crate) kind: ChangeKind,
    pub(crate) undo_failed: Option<io::Error>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ChangeKind::Created => "created",
            ChangeKind::Modified => "changed",
            ChangeKind::Removed => "removed",
        };
        write!(f, "{} {what}", self.path.display())?;
        match &self.undo_failed {
            None => write!(f, " (reverted)"),
            Some(e) => write!(f, " (could NOT be reverted: {e})"),
        }
    }
}

/// The saved state of every guarded file of one agent's run.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Path → what it was. Directories are walked: every file under a
    /// guarded directory has an entry, so a new file shows as created.
    files: BTreeMap<PathBuf, Saved>,
    /// Guarded directories, walked again after the run.
    dirs: Vec<PathBuf>,
}

impl Guard {
    /// Saves the shared files of `common_dir` and the ties of `worktree`.
    /// `hooks_path` is `core.hooksPath` resolved, when set.
    pub(crate) fn take(common_dir: &Path, worktree: &Path, hooks_path: Option<&Path>) -> Guard {
        let mut files = vec![
            common_dir.join("config"),
            common_dir.join("info").join("attributes"),
            common_dir.join("info").join("exclude"),
            worktree.join(".git"),
        ];
        if let Some(admin) = admin_dir_of(worktree) {
            for name in ["commondir", "gitdir", "config.worktree"] {
                files.push(admin.join(name));
            }
        }
        let mut dirs = vec![common_dir.join("hooks")];
        // A hooks path inside the worktree is the agent's own tree, not shared.
        if let Some(h) = hooks_path.filter(|h| !h.starts_with(worktree)) {
            dirs.push(h.to_owned());
        }
        let mut guard = Guard {
            files: BTreeMap::new(),
            dirs,
        };
        for f in files {
            let saved = Saved::read(&f);
            guard.files.insert(f, saved);
        }
        for d in guard.dirs.clone() {
            for f in walk(&d) {
                let saved = Saved::read(&f);
                guard.files.insert(f, saved);
            }
        }
        guard
    }

    /// Compares every guarded file with what was saved and puts back the
    /// saved state; returns the changes, oldest path first.
    pub(crate) fn restore(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        // New files under guarded directories.
        for d in &self.dirs {
            for f in walk(d) {
                if !self.files.contains_key(&f) {
                    let undo = remove(&f).err();
                    changes.push(Change {
                        path: f,
                        kind: ChangeKind::Created,
                        undo_failed: undo,
                    });
                }
            }
        }
        for (path, saved) in &self.files {
            let now = Saved::read(path);
            if now == *saved {
                continue;
            }
            let kind = match (saved, &now) {
                (Saved::Missing, _) => ChangeKind::Created,
                (_, Saved::Missing) => ChangeKind::Removed,
                _ => ChangeKind::Modified,
            };
            let undo = put_back(path, saved).err();
            changes.push(Change {
                path: path.clone(),
                kind,
                undo_failed: undo,
            });
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        changes
    }
}

/// `core.hooksPath` as git resolves it for the main worktree `root`.
pub(crate) fn hooks_path(git: &Git, root: &Path) -> Option<PathBuf> {
    let out = git
        .command(["config", "--type=path", "--get", "core.hooksPath"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || text.is_empty() {
        return None;
    }
    let path = PathBuf::from(text);
    Some(if path.is_absolute() {
        path
    } else {
        root.join(path)
    })
}

/// The sprint configuration files changed between `base` and `tip` that
/// `named` (the task's paths) does not name.
pub(crate) fn config_changes(
    git: &Git,
    base: &str,
    tip: &str,
    named: &[String],
) -> Result<Vec<String>, super::worktree::WorktreeError> {
    let changed = git.files_changed(tip, base)?;
    Ok(changed
        .into_iter()
        .filter(|f| is_sprint_config(f))
        .filter(|f| !names(named, f))
        .collect())
}

fn is_sprint_config(file: &str) -> bool {
    SPRINT_CONFIG.iter().any(|c| match c.strip_suffix('/') {
        Some(dir) => file.starts_with(c) || file == dir,
        None => file == *c,
    })
}

/// Whether one of `named` is `file` or a directory holding it.
fn names(named: &[String], file: &str) -> bool {
    named.iter().any(|n| {
        let n = n.trim_start_matches("./").trim_end_matches('/');
        !n.is_empty() && (file == n || file.strip_prefix(n).is_some_and(|r| r.starts_with('/')))
    })
}

/// The admin directory a worktree's `.git` file points at (no checks: used
/// only to read, before the agent runs).
fn admin_dir_of(worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let dir = text.trim().strip_prefix("gitdir:")?.trim();
    Some(worktree.join(dir))
}

/// Every non-directory path under `dir`, recursively (symlinks not followed).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                _ => out.push(p),
            }
        }
    }
    out.sort();
    out
}

fn remove(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn put_back(path: &Path, saved: &Saved) -> io::Result<()> {
    match saved {
        Saved::Missing => remove(path),
        // A directory where a file was expected: its contents were saved as
        // files of their own; only a replacement is undone.
        Saved::Dir => {
            if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
                remove(path)?;
                std::fs::create_dir_all(path)?;
            }
            Ok(())
        }
        Saved::Link(target) => {
            remove(path)?;
            std::os::unix::fs::symlink(target, path)
        }
        Saved::File { bytes, mode } => {
            // Write beside it and rename: a reader never sees half a config.
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() || m.is_symlink()) {
                remove(path)?;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = path.with_file_name(format!(".{name}.git-sprint-restore"));
            std::fs::write(&tmp, bytes)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))?;
            std::fs::rename(&tmp, path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let common = dir.path().join("repo/.git");
        let wt = dir.path().join("wt");
        let admin = common.join("worktrees/wt");
        std::fs::create_dir_all(common.join("hooks")).unwrap();
        std::fs::create_dir_all(&admin).unwrap();
        std::fs::create_dir_all(&wt).unwrap();
        std::fs::write(common.join("config"), "[core]\n\tbare = false\n").unwrap();
        std::fs::write(common.join("hooks/post-commit"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(
            common.join("hooks/post-commit"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(wt.join(".git"), format!("gitdir: {}\n", admin.display())).unwrap();
        std::fs::write(admin.join("commondir"), "../..\n").unwrap();
        (dir, common, wt)
    }

    #[test]
    fn an_unchanged_repository_shows_no_change() {
        let (_d, common, wt) = setup();
        let g = Guard::take(&common, &wt, None);
        assert!(g.restore().is_empty());
    }

    #[test]
    fn config_hooks_and_worktree_ties_are_put_back() {
        let (_d, common, wt) = setup();
        let g = Guard::take(&common, &wt, None);
        let config = std::fs::read(common.join("config")).unwrap();
        std::fs::write(
            common.join("config"),
            "[core]\n\tbare = false\n\tfsmonitor = touch pwned\n",
        )
        .unwrap();
        std::fs::write(common.join("hooks/post-commit"), "#!/bin/sh\ntouch pwned\n").unwrap();
        std::fs::write(common.join("hooks/pre-push"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(common.join("info")).unwrap();
        std::fs::write(common.join("info/exclude"), "*\n").unwrap();
        std::fs::write(common.join("worktrees/wt/commondir"), "/elsewhere\n").unwrap();

        let changes = g.restore();
        let text: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(changes.len(), 5, "{text:#?}");
        assert!(changes.iter().all(|c| c.undo_failed.is_none()), "{text:#?}");
        assert!(
            text.iter()
                .any(|t| t.ends_with("config changed (reverted)")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|t| t.contains("pre-push created")),
            "{text:#?}"
        );
        assert_eq!(std::fs::read(common.join("config")).unwrap(), config);
        assert_eq!(
            std::fs::read_to_string(common.join("hooks/post-commit")).unwrap(),
            "#!/bin/sh\nexit 0\n"
        );
        let mode = std::fs::metadata(common.join("hooks/post-commit"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!common.join("hooks/pre-push").exists());
        assert!(!common.join("info/exclude").exists());
        assert_eq!(
            std::fs::read_to_string(common.join("worktrees/wt/commondir")).unwrap(),
            "../..\n"
        );
        assert!(g.restore().is_empty(), "all put back");
    }

    #[test]
    fn a_config_replaced_by_a_symlink_or_removed_comes_back() {
        let (d, common, wt) = setup();
        let g = Guard::take(&common, &wt, None);
        let evil = d.path().join("evil-config");
        std::fs::write(&evil, "[core]\n\tfsmonitor = x\n").unwrap();
        std::fs::remove_file(common.join("config")).unwrap();
        std::os::unix::fs::symlink(&evil, common.join("config")).unwrap();
        std::fs::remove_file(common.join("hooks/post-commit")).unwrap();
        let changes = g.restore();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(!std::fs::symlink_metadata(common.join("config"))
            .unwrap()
            .is_symlink());
        assert!(common.join("hooks/post-commit").is_file());
    }

    #[test]
    fn sprint_config_paths_are_recognised_and_named() {
        assert!(is_sprint_config(".git-sprint.yaml"));
        assert!(is_sprint_config(".git-sprint/developer.md"));
        assert!(!is_sprint_config("src/.git-sprint.yaml"));
        assert!(!is_sprint_config(".git-sprint.yaml.bak"));
        let named = vec!["./.git-sprint/".to_owned(), "src/a.rs".to_owned()];
        assert!(names(&named, ".git-sprint/developer.md"));
        assert!(!names(&named, ".git-sprint.yaml"));
        assert!(names(&[".git-sprint.yaml".to_owned()], ".git-sprint.yaml"));
        assert!(!names(&["".to_owned()], ".git-sprint.yaml"));
    }
}
