//! Installing and removing the git hook shims, and what a hook does when git
//! runs it.
//!
//! A shim (`hooks/<name>` in this repository, embedded in the binary) calls
//! `git sprint hook <name>` through the absolute path of the binary that
//! installed it, so hooks work under `cargo run` and without PATH changes. A
//! user's hook is never lost: it is renamed to `<name>.git-sprint-orig`, the
//! shim runs it first, and `git sprint uninstall` renames it back.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The hooks git-sprint installs. `post-commit` and `post-merge` see every
/// commit that can change a tasks.md or a worker's branch; DESIGN.md explains
/// why not `reference-transaction`. `prepare-commit-msg` adds the
/// `Sprint-Agent:` trailer to an agent's commits (`--no-verify` skips
/// `commit-msg`, not this one).
pub const HOOKS: [(&str, &str); 3] = [
    ("post-commit", include_str!("../hooks/post-commit")),
    ("post-merge", include_str!("../hooks/post-merge")),
    (
        "prepare-commit-msg",
        include_str!("../hooks/prepare-commit-msg"),
    ),
];

const MARKER: &str = "# BEGIN git-sprint";
const ORIG_SUFFIX: &str = ".git-sprint-orig";

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("cannot find the hooks directory of {}", repo.display())]
    HooksDir {
        repo: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git rev-parse --git-path hooks failed in {}: {stderr}", repo.display())]
    GitPath { repo: PathBuf, stderr: String },
    #[error("cannot write hook {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What happened to one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Freshly installed; there was no hook.
    New,
    /// Installed; the user's hook was kept and runs first.
    Chained,
    /// Already installed; refreshed in place.
    Updated,
    /// Already installed and identical.
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// Removed; the user's hook is back in its place.
    Restored,
    Removed,
    NotInstalled,
}

/// The hooks directory git uses for `worktree`: honours `core.hooksPath`.
pub fn hooks_dir(worktree: &Path) -> Result<PathBuf, HookError> {
    let out = Command::new("git")
        .args(["rev-parse", "--path-format=absolute", "--git-path", "hooks"])
        .current_dir(worktree)
        .output()
        .map_err(|source| HookError::HooksDir {
            repo: worktree.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(HookError::GitPath {
            repo: worktree.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim_end_matches(['\n', '\r']),
    ))
}

/// The shim for `name`, calling `bin`.
pub fn shim(name: &str, template: &str, bin: &Path) -> String {
    // Single-quoted in sh: escape any single quote in the path.
    let quoted = bin.display().to_string().replace('\'', r"'\''");
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
pub fn install(dir: &Path, bin: &Path) -> Result<Vec<(&'static str, Installed)>, HookError> {
    std::fs::create_dir_all(dir).map_err(|source| HookError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut done = Vec::new();
    for (name, template) in HOOKS {
        let path = dir.join(name);
        let content = shim(name, template, bin);
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
pub fn uninstall(dir: &Path) -> Result<Vec<(&'static str, Removed)>, HookError> {
    let mut done = Vec::new();
    for (name, _) in HOOKS {
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
pub fn disabled() -> bool {
    std::env::var("GIT_SPRINT_HOOKS").is_ok_and(|v| v.trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shim_quotes_the_binary_path() {
        let s = shim(
            "post-commit",
            HOOKS[0].1,
            Path::new("/opt/it's here/git-sprint"),
        );
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
                ("prepare-commit-msg", Removed::Removed)
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("post-commit")).unwrap(),
            user
        );
        assert!(!dir.path().join("post-merge").exists());
        assert_eq!(
            uninstall(dir.path()).unwrap(),
            vec![
                ("post-commit", Removed::NotInstalled),
                ("post-merge", Removed::NotInstalled),
                ("prepare-commit-msg", Removed::NotInstalled)
            ]
        );
    }
}
