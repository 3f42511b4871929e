//! The orchestrator's senses: inotify on `specs/` and on the repository's
//! ref storage, turned into wake-ups on one channel. Nothing polls.
//!
//! Refs are renamed into place (and may be packed), so the watch is on
//! directories, filtered to what can change the sprint: any ref, and
//! `packed-refs`. The main worktree's index and the like are ignored, so a
//! person's `git add` does not wake the orchestrator.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// Why the orchestrator woke up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wake {
    /// A ref or packed-refs changed (the state, a branch).
    Refs,
    /// Something under specs/ changed in the main worktree.
    Specs(PathBuf),
    /// A job beside the loop (gates, a merge, a base sync, a worktree setup) ended.
    JobDone,
    /// The repository's git config changed (`git config sprint.…`).
    Config,
}

pub(crate) struct Watch {
    _watcher: notify::RecommendedWatcher,
    /// Whether `specs/` existed (and so is watched); until it does, the
    /// worktree's top is watched for its creation.
    pub(crate) watching_specs: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", path.display())]
pub struct WatchError {
    pub(crate) path: PathBuf,
    #[source]
    pub(crate) source: notify::Error,
}

/// Starts watching; events arrive on `tx` until the returned value is dropped.
pub(crate) fn start(
    common_dir: &Path,
    worktree: &Path,
    tx: UnboundedSender<Wake>,
) -> Result<Watch, WatchError> {
    let refs = common_dir.join("refs");
    let packed = common_dir.join("packed-refs");
    let specs = worktree.join("specs");
    let (refs_c, specs_c) = (refs.clone(), specs.clone());
    let config = common_dir.join("config");
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            let wake = if path.starts_with(&refs_c) || path == &packed {
                // Lock files come and go around every ref write; the rename
                // into place is the event that matters.
                if path.extension().is_some_and(|e| e == "lock") {
                    continue;
                }
                Wake::Refs
            } else if path.starts_with(&specs_c) {
                Wake::Specs(path.clone())
            } else if path == &config {
                Wake::Config
            } else {
                continue;
            };
            let _ = tx.send(wake);
        }
    })
    .map_err(|source| WatchError {
        path: refs.clone(),
        source,
    })?;
    let mut add = |path: &Path, mode| {
        watcher.watch(path, mode).map_err(|source| WatchError {
            path: path.to_owned(),
            source,
        })
    };
    add(&refs, RecursiveMode::Recursive)?;
    add(common_dir, RecursiveMode::NonRecursive)?;
    let watching_specs = specs.is_dir();
    if watching_specs {
        add(&specs, RecursiveMode::Recursive)?;
    } else {
        add(worktree, RecursiveMode::NonRecursive)?;
    }
    Ok(Watch {
        _watcher: watcher,
        watching_specs,
    })
}
