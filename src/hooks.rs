//! Installing and removing the git hook shims, and what a hook does when git
//! runs it.
//!
//! A shim (`hooks/shim` in this repository, embedded in the binary) calls
//! `git sprint hook <name>` through the absolute path of the binary that
//! installed it, so hooks work under `cargo run` and without PATH changes. A
//! user's hook is never lost: it is renamed to `<name>.git-sprint-orig`, the
//! shim runs it first, and `git sprint uninstall` renames it back.
//!
//! Hooks go only into this repository's own hooks directory: a
//! `core.hooksPath` outside it is usually shared by many repositories, and a
//! shim there would run for all of them, so installing there (or removing
//! from there) needs `--shared-hooks` ([`check_location`]). Every call of the
//! binary is bounded ([`timeout`]): a hook must never hold up git.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hint::Hint;

/// The shim installed for every hook but `prepare-commit-msg`; `@HOOK@`
/// and `@GIT_SPRINT_BIN@` are filled in.
const SHIM: &str = include_str!("../hooks/shim");

/// `prepare-commit-msg`: only in an agent's commit, and the hook it
/// replaced may still refuse the commit.
const PREPARE_SHIM: &str = include_str!("../hooks/prepare-commit-msg");

/// The hooks git-sprint installs: every way a commit lands on a branch —
/// `post-commit` (commits, amends, cherry-picks), `post-merge` (merges,
/// pulls), `post-applypatch` (`git am`) and `post-rewrite` (rebases) — and
/// `prepare-commit-msg`, which adds the `Sprint-Agent:` trailer to an
/// agent's commits (`--no-verify` skips `commit-msg`, not this one).
/// DESIGN.md explains why not `reference-transaction`.
pub(crate) const HOOKS: [&str; 5] = [
    "post-commit",
    "post-merge",
    "post-applypatch",
    "post-rewrite",
    "prepare-commit-msg",
];

/// How long a hook may take when `GIT_SPRINT_HOOK_TIMEOUT` does not say.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const MARKER: &str = "# BEGIN git-sprint";
const ORIG_SUFFIX: &str = ".git-sprint-orig";

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// `core.hooksPath` points outside this repository.
    #[error("core.hooksPath points to {}, outside this repository: hooks there run for every repository that shares the directory", dir.display())]
    Shared { dir: PathBuf },
    #[error("cannot find the hooks directory of {}", repo.display())]
    HooksDir {
        repo: PathBuf,
        #[source]
        source: crate::worker::worktree::WorktreeError,
    },
    #[error("cannot write hook {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What happened to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Installed {
    /// Freshly installed; there was no hook.
    New,
    /// Installed; the user's hook was kept and runs first.
    Chained,
    /// Already installed; refreshed in place.
    Updated,
    /// Already installed and identical.
    Unchanged,
}

// `Removed::Removed` names the outcome `uninstall` prints ("removed"); the
// lint only fires now that the type is crate-private.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Removed {
    /// Removed; the user's hook is back in its place.
    Restored,
    Removed,
    NotInstalled,
}

impl Hint for HookError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            HookError::Shared { .. } => "pass --shared-hooks to use that directory anyway, or --no-hooks to run without hooks (a sprint still works; agents' commits then renew leases only through their output)".into(),
            _ => "check the permissions of the repository's hooks directory".into(),
        })
    }
}

/// How long one run of a hook may take: `GIT_SPRINT_HOOK_TIMEOUT` seconds,
/// else [`DEFAULT_TIMEOUT`]. The shim reads the same variable.
pub(crate) fn timeout() -> Duration {
    std::env::var("GIT_SPRINT_HOOK_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// Refuses a hooks directory outside every one of `inside` (the repository's
/// common directory and its worktrees) unless `shared` is set.
pub(crate) fn check_location(dir: &Path, inside: &[&Path], shared: bool) -> Result<(), HookError> {
    if shared {
        return Ok(());
    }
    let dir = resolved(dir);
    if inside.iter().any(|root| dir.starts_with(resolved(root))) {
        Ok(())
    } else {
        Err(HookError::Shared { dir })
    }
}

/// `path` with symlinks resolved as far as it exists (a hooks directory may
/// not exist yet), so a link cannot make an outside directory look inside.
fn resolved(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        if let Ok(real) = cur.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (cur.file_name().map(|n| n.to_owned()), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                cur = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The hooks directory git uses for `worktree`: honours `core.hooksPath`.
pub(crate) fn hooks_dir(worktree: &Path) -> Result<PathBuf, HookError> {
    let out = crate::worker::worktree::Git::new(worktree)
        .run(&["rev-parse", "--path-format=absolute", "--git-path", "hooks"])
        .map_err(|source| HookError::HooksDir {
            repo: worktree.to_owned(),
            source,
        })?;
    Ok(PathBuf::from(out.trim_end_matches(['\n', '\r'])))
}

/// The shim for `name`, calling `bin`.
pub(crate) fn shim(name: &str, bin: &Path) -> String {
    // Single-quoted in sh: escape any single quote in the path.
    let quoted = bin.display().to_string().replace('\'', r"'\''");
    let template = if name == "prepare-commit-msg" {
        PREPARE_SHIM
    } else {
        SHIM
    };
    template
        .replace("@GIT_SPRINT_BIN@", &quoted)
        .replace("@HOOK@", name)
}

fn write_executable(path: &Path, content: &str) -> Result<(), HookError> {
    let err = |source| HookError::Write {
        path: path.to_owned(),
        source,
    };
    // Write beside and rename, so git never runs a half-written hook.
    let tmp = path.with_extension("git-sprint-tmp");
    std::fs::write(&tmp, content).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// Installs every shim in `dir`, keeping any hook that is already there.
pub(crate) fn install(dir: &Path, bin: &Path) -> Result<Vec<(&'static str, Installed)>, HookError> {
    std::fs::create_dir_all(dir).map_err(|source| HookError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut done = Vec::new();
    for name in HOOKS {
        let path = dir.join(name);
        let content = shim(name, bin);
        let existing = std::fs::read_to_string(&path).ok();
        let outcome = match existing {
            Some(old) if old == content => Installed::Unchanged,
            Some(old) if old.contains(MARKER) => {
                write_executable(&path, &content)?;
                Installed::Updated
            }
            Some(_) => {
                let orig = dir.join(format!("{name}{ORIG_SUFFIX}"));
                std::fs::rename(&path, &orig).map_err(|source| HookError::Write {
                    path: orig.clone(),
                    source,
                })?;
                write_executable(&path, &content)?;
                Installed::Chained
            }
            None => {
                write_executable(&path, &content)?;
                Installed::New
            }
        };
        done.push((name, outcome));
    }
    Ok(done)
}

/// Removes the shims and puts back the hooks they replaced.
pub(crate) fn uninstall(dir: &Path) -> Result<Vec<(&'static str, Removed)>, HookError> {
    let mut done = Vec::new();
    for name in HOOKS {
        let path = dir.join(name);
        let orig = dir.join(format!("{name}{ORIG_SUFFIX}"));
        let ours = std::fs::read_to_string(&path).is_ok_and(|c| c.contains(MARKER));
        let err = |source| HookError::Write {
            path: path.clone(),
            source,
        };
        let outcome = if !ours {
            Removed::NotInstalled
        } else if orig.exists() {
            std::fs::rename(&orig, &path).map_err(err)?;
            Removed::Restored
        } else {
            std::fs::remove_file(&path).map_err(err)?;
            Removed::Removed
        };
        done.push((name, outcome));
    }
    Ok(done)
}

/// Whether hooks are turned off for this process (`GIT_SPRINT_HOOKS=0`).
pub(crate) fn disabled() -> bool {
    std::env::var("GIT_SPRINT_HOOKS").is_ok_and(|v| v.trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_git_names_its_command_line_and_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = hooks_dir(dir.path()).unwrap_err();
        let mut text = err.to_string();
        let mut cur = std::error::Error::source(&err);
        while let Some(c) = cur {
            text.push_str(&format!(": {c}"));
            cur = c.source();
        }
        assert!(
            text.contains("`git rev-parse --path-format=absolute --git-path hooks` failed in"),
            "{text}"
        );
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
        assert!(text.contains("not a git repository"), "{text}");
    }

    #[test]
    fn shim_quotes_the_binary_path() {
        let s = shim("post-commit", Path::new("/opt/it's here/git-sprint"));
        assert!(s.contains(r"sprint='/opt/it'\''s here/git-sprint'"), "{s}");
        assert!(s.contains("hook post-commit \"$@\""));
        assert!(!s.contains("@HOOK@") && !s.contains("@GIT_SPRINT_BIN@"));
    }

    #[test]
    fn install_keeps_a_user_hook_and_uninstall_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let user = "#!/bin/sh\necho mine\n";
        std::fs::write(dir.path().join("post-commit"), user).unwrap();
        let bin = Path::new("/usr/bin/git-sprint");
        let first = install(dir.path(), bin).unwrap();
        assert_eq!(
            first,
            vec![
                ("post-commit", Installed::Chained),
                ("post-merge", Installed::New),
                ("post-applypatch", Installed::New),
                ("post-rewrite", Installed::New),
                ("prepare-commit-msg", Installed::New)
            ]
        );
        let again = install(dir.path(), bin).unwrap();
        assert!(again.iter().all(|(_, o)| *o == Installed::Unchanged));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("post-commit.git-sprint-orig")).unwrap(),
            user
        );
        let removed = uninstall(dir.path()).unwrap();
        assert_eq!(
            removed,
            vec![
                ("post-commit", Removed::Restored),
                ("post-merge", Removed::Removed),
                ("post-applypatch", Removed::Removed),
                ("post-rewrite", Removed::Removed),
                ("prepare-commit-msg", Removed::Removed)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("post-commit")).unwrap(),
            user
        );
        assert!(!dir.path().join("post-merge").exists());
        assert!(uninstall(dir.path())
            .unwrap()
            .iter()
            .all(|(_, r)| *r == Removed::NotInstalled));
    }

    #[test]
    fn a_hooks_directory_outside_the_repository_needs_shared() {
        let repo = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let git = repo.path().join(".git");
        let inside = [git.as_path(), repo.path()];
        check_location(&git.join("hooks"), &inside, false).unwrap();
        check_location(&repo.path().join(".githooks/not-yet"), &inside, false).unwrap();
        let err = check_location(elsewhere.path(), &inside, false).unwrap_err();
        assert!(matches!(err, HookError::Shared { .. }), "{err}");
        assert!(err.to_string().contains("outside this repository"), "{err}");
        check_location(elsewhere.path(), &inside, true).unwrap();
        // A link inside the repository to a shared directory is outside.
        std::os::unix::fs::symlink(elsewhere.path(), repo.path().join("hooks-link")).unwrap();
        let err = check_location(&repo.path().join("hooks-link"), &inside, false).unwrap_err();
        assert!(matches!(err, HookError::Shared { .. }), "{err}");
        // So is a climb out with `..`.
        let climb = repo
            .path()
            .join("..")
            .join(elsewhere.path().file_name().unwrap());
        assert!(check_location(&climb, &inside, false).is_err());
    }
}
