//! Noticing what other machines write: with `sprint.remote` set, a thread
//! asks the remote for its state ref (`git ls-remote`, no objects moved)
//! and fetches when it moved. The fetch moves the local `refs/ai-sprint`,
//! which the inotify watch on refs turns into a wake-up like any local
//! write, so the loop itself never polls.
//!
//! Adaptive: every 2 s while the state keeps changing (work in flight, here
//! or elsewhere), doubling to 30 s while nothing does, jittered so that
//! machines started together do not ask in step.
//!
//! A remote that is a path on this machine (a bare repository, `file://`)
//! is watched instead: inotify on its refs and `packed-refs` fetches as
//! soon as another clone pushes, and the question is asked only every 30 s
//! as a safety net (a watch on a network file system may miss events).
//!
//! A fetch also replays transitions this clone queued while the remote did
//! not answer ([`Store::refresh`]), so the follower is what drains the
//! queue once the remote is back.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::state::Store;

/// The shortest wait between two questions to the remote.
const FAST: Duration = Duration::from_secs(2);
/// The longest, while nothing changes.
const IDLE: Duration = Duration::from_secs(30);

/// What reaches the follower's thread besides its timer.
enum Signal {
    /// The watched remote's refs changed.
    Moved,
}

/// The running follower; it stops when this is dropped.
pub(crate) struct Follower {
    // Dropped together: the thread sees its channel close and ends.
    _stop: Sender<Signal>,
    _watcher: Option<notify::RecommendedWatcher>,
    /// The git dir of a remote on this machine that is watched.
    #[cfg_attr(not(test), allow(dead_code))] // what tests check
    watching: Option<PathBuf>,
    /// Fetches made because the watch saw the remote's refs change.
    #[cfg_attr(not(test), allow(dead_code))]
    watched_fetches: Arc<AtomicUsize>,
}

#[cfg(test)]
impl Follower {
    /// The git dir of the remote being watched, when it is a local path.
    pub(crate) fn watching(&self) -> Option<&Path> {
        self.watching.as_deref()
    }

    /// How many fetches the watch (not the timer) caused so far.
    pub(crate) fn watched_fetches(&self) -> usize {
        self.watched_fetches.load(Ordering::Relaxed)
    }
}

/// Starts following the remote of the repository at `dir`; `None` when no
/// remote is set (nothing to follow).
pub(crate) fn start(dir: &Path) -> Option<Follower> {
    start_with_env(dir, Vec::new())
}

/// [`start`] with extra environment for the git processes that talk to the
/// remote (tests keep them off the user's configuration with it).
pub(crate) fn start_with_env(
    dir: &Path,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
) -> Option<Follower> {
    let store = Store::discover(dir).ok()?;
    let remote = store.remote_name()?.to_owned();
    let (tx, signals) = channel::<Signal>();
    let (watcher, watching) = match local_git_dir(store.repo(), &remote) {
        Some(git_dir) => match watch(&git_dir, tx.clone()) {
            Ok(w) => {
                tracing::info!(%remote, path = %git_dir.display(), "following the sprint state by watching the remote's refs");
                (Some(w), Some(git_dir))
            }
            Err(e) => {
                tracing::warn!(%remote, error = %e, "cannot watch the remote's refs; asking it instead");
                (None, None)
            }
        },
        None => {
            tracing::info!(%remote, "following the sprint state on the remote");
            (None, None)
        }
    };
    let watched = watching.is_some();
    let watched_fetches = Arc::new(AtomicUsize::new(0));
    let counter = watched_fetches.clone();
    let watching_dir = watching.clone();
    let dir = dir.to_owned();
    std::thread::Builder::new()
        .name("sprint-follow".into())
        .spawn(move || {
            // A Store is not Send: the thread opens its own.
            let Ok(mut store) = Store::discover(&dir) else {
                return;
            };
            store.set_remote_env(env);
            let mut wait = if watched { IDLE } else { FAST };
            let mut last_tip = store.tip().ok().flatten();
            loop {
                let moved = match signals.recv_timeout(jittered(wait)) {
                    Ok(Signal::Moved) => {
                        // One fetch for a burst of ref events, and none for
                        // this clone's own pushes (read without a process).
                        while signals.try_recv().is_ok() {}
                        let here = store.tip().ok().flatten();
                        if watching_dir.as_deref().and_then(state_tip_at) == here && here.is_some()
                        {
                            false
                        } else {
                            tracing::debug!("the remote's refs changed; fetching");
                            counter.fetch_add(1, Ordering::Relaxed);
                            fetch(&store)
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => ask_and_fetch(&store),
                    Err(RecvTimeoutError::Disconnected) => return,
                };
                // A local write is work in flight too.
                let tip = store.tip().ok().flatten();
                let changed = moved || tip != last_tip;
                last_tip = tip;
                // A watched remote says when it moves: the timer is only
                // the safety net.
                wait = if watched {
                    IDLE
                } else {
                    next_wait(wait, changed)
                };
            }
        })
        .ok()?;
    Some(Follower {
        _stop: tx,
        _watcher: watcher,
        watching,
        watched_fetches,
    })
}

/// Asks the remote whether it moved and fetches if so; whether the local
/// copy moved.
fn ask_and_fetch(store: &Store) -> bool {
    match store.remote_moved() {
        Ok(true) => fetch(store),
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(error = %e, "the sprint remote does not answer; working from the local copy");
            false
        }
    }
}

fn fetch(store: &Store) -> bool {
    match store.refresh() {
        Ok(moved) => moved,
        Err(e) => {
            tracing::warn!(error = %e, "fetching the sprint state failed");
            false
        }
    }
}

/// The git dir of remote `name` (a remote's name or a URL) when it is a
/// repository on this machine: a path or a `file://` URL, never a host.
fn local_git_dir(repo: &gix::Repository, name: &str) -> Option<PathBuf> {
    let url = repo
        .config_snapshot()
        .string(format!("remote.{name}.url").as_str())
        .map(|u| u.to_string())
        .unwrap_or_else(|| name.to_owned());
    let path = match url.strip_prefix("file://") {
        Some(rest) => PathBuf::from(rest),
        None if url.contains("://") => return None,
        // `host:path` is ssh to git (a colon before any slash).
        None if url
            .find(':')
            .is_some_and(|c| url.find('/').is_none_or(|s| c < s)) =>
        {
            return None
        }
        None => PathBuf::from(&url),
    };
    let path = if path.is_relative() {
        repo.workdir().unwrap_or(repo.git_dir()).join(path)
    } else {
        path
    };
    let git_dir = if path.join(".git").is_dir() {
        path.join(".git")
    } else {
        path
    };
    git_dir
        .join("refs")
        .is_dir()
        .then(|| git_dir.canonicalize().unwrap_or(git_dir))
}

/// The state commit of the repository at `git_dir` (a remote on this
/// machine), read directly.
fn state_tip_at(git_dir: &Path) -> Option<gix::ObjectId> {
    let repo = gix::open_opts(git_dir, gix::open::Options::isolated()).ok()?;
    let mut r = repo
        .try_find_reference(crate::state::REMOTE_STATE_REF)
        .ok()??;
    Some(r.peel_to_id().ok()?.detach())
}

/// Watches the refs of the repository at `git_dir` that can carry the
/// state (`refs/ai-sprint-shared/`, `packed-refs`); each change is a
/// [`Signal::Moved`] on `tx`.
fn watch(git_dir: &Path, tx: Sender<Signal>) -> notify::Result<notify::RecommendedWatcher> {
    let shared = git_dir.join("refs/ai-sprint-shared");
    let packed = git_dir.join("packed-refs");
    let refs = git_dir.join("refs");
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        // Lock files come and go around every ref write; the rename into
        // place is the event that matters.
        let moved = event.paths.iter().any(|p| {
            (p.starts_with(&shared) || p == &packed) && p.extension().is_none_or(|e| e != "lock")
        });
        if moved {
            let _ = tx.send(Signal::Moved);
        }
    })?;
    // All of refs/: refs/ai-sprint-shared/ does not exist until the first
    // state is pushed; events elsewhere are filtered out above.
    watcher.watch(&refs, RecursiveMode::Recursive)?;
    watcher.watch(git_dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Back to [`FAST`] after a change, else twice as long, up to [`IDLE`].
fn next_wait(wait: Duration, changed: bool) -> Duration {
    if changed {
        FAST
    } else {
        (wait * 2).min(IDLE)
    }
}

/// `d` give or take a quarter, from the clock's nanoseconds.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos() as u64)
        .unwrap_or(0);
    let quarter = d.as_millis() as u64 / 4;
    let spread = if quarter == 0 {
        0
    } else {
        nanos % (2 * quarter)
    };
    Duration::from_millis(d.as_millis() as u64 - quarter + spread)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ops, Actor};
    use std::ffi::OsString;
    use std::process::Command;
    use std::time::Instant;

    /// Runs git in `dir` off the user's configuration.
    fn git(home: &Path, dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .current_dir(dir)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .args(args)
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A bare repository and two clones of it, `a` and `b`, whose state
    /// remote is the bare repository's path (`file://` for `b`).
    fn remote_and_clones(tmp: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let home = tmp.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let bare = tmp.join("remote.git");
        git(
            &home,
            tmp,
            &["init", "-q", "--bare", bare.to_str().unwrap()],
        );
        let clone = |name: &str, url: String| {
            let dir = tmp.join(name);
            git(&home, tmp, &["init", "-q", dir.to_str().unwrap()]);
            git(&home, &dir, &["remote", "add", "origin", &url]);
            git(&home, &dir, &["config", "sprint.remote", "origin"]);
            dir
        };
        let a = clone("a", bare.display().to_string());
        let b = clone("b", format!("file://{}", bare.display()));
        (bare, a, b)
    }

    fn env(tmp: &Path) -> Vec<(OsString, OsString)> {
        let home = tmp.join("home");
        vec![
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ]
    }

    #[test]
    fn a_remote_path_or_file_url_is_watched_and_a_host_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let (bare, a, b) = remote_and_clones(tmp.path());
        let bare = bare.canonicalize().unwrap();
        for dir in [&a, &b] {
            let store = Store::discover(dir).unwrap();
            assert_eq!(local_git_dir(store.repo(), "origin"), Some(bare.clone()));
        }
        let store = Store::discover(&a).unwrap();
        for url in [
            "git://127.0.0.1:9418/remote.git",
            "ssh://host/remote.git",
            "git@example.com:team/remote.git",
            "/no/such/repository.git",
        ] {
            assert_eq!(local_git_dir(store.repo(), url), None, "{url}");
        }
    }

    /// The watch, not the 2 s question, brings another clone's write: in
    /// watch mode the timer waits 30 s, and the fetch is counted as the
    /// watch's.
    #[test]
    fn a_write_pushed_to_a_file_remote_reaches_this_clone_through_the_watch() {
        let tmp = tempfile::tempdir().unwrap();
        let (bare, a, b) = remote_and_clones(tmp.path());
        let follower = start_with_env(&a, env(tmp.path())).expect("a remote is set");
        assert_eq!(
            follower.watching(),
            Some(bare.canonicalize().unwrap().as_path())
        );

        let mut writer = Store::discover(&b).unwrap();
        writer.set_remote_env(env(tmp.path()));
        let wrote = writer
            .transact(&Actor::named("b"), |txn| {
                ops::add_task(
                    txn,
                    "f",
                    &ops::NewTask {
                        id: Some("T1".into()),
                        title: "from b".into(),
                        ..Default::default()
                    },
                )
            })
            .unwrap()
            .commit
            .expect("a state commit");

        let here = Store::discover(&a).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while here.tip().unwrap() != Some(wrote) {
            assert!(
                Instant::now() < deadline,
                "b's write did not reach a's refs/ai-sprint within 60s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            follower.watched_fetches() >= 1,
            "the fetch came from the watch, not the timer"
        );
    }

    #[test]
    fn the_wait_doubles_to_the_idle_bound_and_a_change_resets_it() {
        let mut w = FAST;
        let mut seen = vec![];
        for _ in 0..6 {
            w = next_wait(w, false);
            seen.push(w.as_secs());
        }
        assert_eq!(seen, [4, 8, 16, 30, 30, 30]);
        assert_eq!(next_wait(IDLE, true), FAST);
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let j = jittered(FAST);
            assert!(j >= FAST * 3 / 4 && j < FAST * 5 / 4, "{j:?}");
        }
    }
}
