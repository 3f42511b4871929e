//! The state through a git remote: with `sprint.remote` set, the remote's
//! `refs/ai-sprint` is the state and the local ref a copy that follows it.
//!
//! A write fetches the remote's ref into the local one, applies the
//! operation there, and pushes the new commit with a lease on the value it
//! started from (`git push --atomic --force-with-lease`). The remote's
//! atomic ref update is the compare-and-swap: a rejected push means another
//! machine wrote first, and the store fetches and re-applies, exactly as it
//! does after losing a local race. No service runs besides the remote
//! itself, which may be any git host, a bare repository over ssh, or a path.
//!
//! Git itself does the transport (the user's remotes, credentials and ssh
//! configuration apply); every call has a deadline so that a remote that
//! hangs becomes an error instead of a stuck orchestrator.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use gix::ObjectId;

use super::error::StateError;
use super::queue::FETCHED_REF;

/// The git config key naming the remote (`git config sprint.remote origin`).
pub(crate) const REMOTE_KEY: &str = "sprint.remote";

/// Where the state lives on the remote. Not `refs/ai-sprint` itself: a
/// receiving git refuses a ref with one level under `refs/` ("funny
/// refname"). Fetched into the local [`STATE_REF`].
pub(crate) const REMOTE_STATE_REF: &str = "refs/ai-sprint-shared/state";

/// The longest a fetch or push may take before it counts as unreachable.
const DEADLINE: Duration = Duration::from_secs(60);

/// A remote that holds the state, as the store talks to it.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// The remote's name or URL, as given to `git fetch`/`git push`.
    pub(crate) name: String,
    /// The repository's git dir, for `git --git-dir`.
    git_dir: PathBuf,
    /// Extra environment for the git processes (tests isolate their
    /// configuration with it).
    env: Vec<(OsString, OsString)>,
}

/// What a push with a lease did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The remote's ref is now the new commit.
    Done,
    /// The remote's ref was not the leased value: another machine wrote.
    Stale,
}

impl Remote {
    /// The remote `sprint.remote` names in the repository's git config, if
    /// any (an empty value means none).
    pub(crate) fn configured(repo: &gix::Repository) -> Option<Remote> {
        let config = repo.config_snapshot();
        let name = config.string(REMOTE_KEY)?;
        Remote::named(repo, name.to_string().trim())
    }

    /// The remote `name` (a remote's name or a URL) of `repo`; none for "".
    pub(crate) fn named(repo: &gix::Repository, name: &str) -> Option<Remote> {
        if name.is_empty() {
            return None;
        }
        Some(Remote {
            name: name.to_owned(),
            git_dir: repo.git_dir().to_owned(),
            env: Vec::new(),
        })
    }

    pub(crate) fn set_env(&mut self, env: Vec<(OsString, OsString)>) {
        self.env = env;
    }

    /// `git fetch` of one refspec from the remote, quietly and touching
    /// nothing else (no tags, no FETCH_HEAD, no submodules).
    fn fetch_refspec(&self, refspec: &str) -> Result<std::process::Output, StateError> {
        self.git(
            "fetching",
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--no-recurse-submodules",
                &self.name,
                refspec,
            ],
        )
    }

    /// Brings the remote's state commit into [`FETCHED_REF`], whatever that
    /// was; the store decides what the local `refs/ai-sprint` makes of it
    /// (follows it, or replays its queued transitions onto it). Returns
    /// false when the remote has no state yet.
    pub(crate) fn fetch(&self) -> Result<bool, StateError> {
        let out = self.fetch_refspec(&format!("+{REMOTE_STATE_REF}:{FETCHED_REF}"))?;
        if out.status.success() {
            return Ok(true);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("couldn't find remote ref") {
            return Ok(false);
        }
        if is_lock_conflict(&stderr) {
            // Another process of this clone is moving the local ref: it
            // follows the remote too, so what it leaves is as good.
            return Ok(true);
        }
        Err(self.failed("fetching", &stderr))
    }

    /// Pushes `new` to the remote's `refs/ai-sprint` if that is still
    /// `old` (`None`: if the remote has no state yet).
    pub(crate) fn push(&self, old: Option<ObjectId>, new: ObjectId) -> Result<Pushed, StateError> {
        let lease = format!(
            "--force-with-lease={REMOTE_STATE_REF}:{}",
            old.map(|o| o.to_string()).unwrap_or_default()
        );
        let refspec = format!("{new}:{REMOTE_STATE_REF}");
        let out = self.git(
            "pushing to",
            &[
                "push",
                "--quiet",
                "--porcelain",
                "--atomic",
                "--no-verify",
                &lease,
                &self.name,
                &refspec,
            ],
        )?;
        if out.status.success() {
            return Ok(Pushed::Done);
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `--porcelain` prints one line per ref. `[rejected]` is the lease
        // ("stale info") or the missing base ("fetch first"), and a
        // `[remote rejected]` for a ref lock the remote could not take is
        // a push that met another one there: either way another writer
        // moved the ref first. Any other refusal (a hook, permissions) is
        // not changed by retrying.
        let ours = |l: &&str| l.starts_with('!') && l.contains(REMOTE_STATE_REF);
        let raced = stdout.lines().filter(ours).any(|l| {
            l.contains("\t[rejected]")
                || (l.contains("\t[remote rejected]") && stderr.contains("cannot lock ref"))
        });
        if raced {
            return Ok(Pushed::Stale);
        }
        let why = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        Err(self.failed("pushing to", &why))
    }

    /// The remote's state commit, asked without fetching anything (`git
    /// ls-remote`): the cheap question of whether another machine wrote.
    pub(crate) fn remote_tip(&self) -> Result<Option<ObjectId>, StateError> {
        let out = self.git("asking", &["ls-remote", &self.name, REMOTE_STATE_REF])?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(self.failed("asking", &stderr));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(stdout.lines().find_map(|line| {
            let (id, name) = line.split_once('\t')?;
            (name == REMOTE_STATE_REF)
                .then(|| ObjectId::from_hex(id.as_bytes()).ok())
                .flatten()
        }))
    }

    /// Sets the remote's `refname` to `id` whatever it was: for refs with
    /// one writer, such as a machine's heartbeat.
    pub(crate) fn push_forced(&self, refname: &str, id: ObjectId) -> Result<(), StateError> {
        let refspec = format!("+{id}:{refname}");
        let out = self.git(
            "pushing to",
            &["push", "--quiet", "--no-verify", &self.name, &refspec],
        )?;
        if out.status.success() {
            return Ok(());
        }
        Err(self.failed("pushing to", &String::from_utf8_lossy(&out.stderr)))
    }

    /// Fetches the remote's refs matching `pattern` (one `*`) into the
    /// same names here, forced.
    pub(crate) fn fetch_refs(&self, pattern: &str) -> Result<(), StateError> {
        let out = self.fetch_refspec(&format!("+{pattern}:{pattern}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || is_lock_conflict(&stderr) {
            return Ok(());
        }
        Err(self.failed("fetching", &stderr))
    }

    /// The error for git's complaint `detail`: [`StateError::Unreachable`]
    /// when it says the remote could not be reached at all, so the store
    /// may queue the write; any other failure (a refusal, a missing
    /// repository, bad credentials) is not changed by waiting.
    fn failed(&self, action: &str, detail: &str) -> StateError {
        let (remote, action, detail) = (self.name.clone(), action.to_owned(), last_lines(detail));
        if is_unreachable(&detail) {
            StateError::Unreachable {
                remote,
                action,
                detail,
            }
        } else {
            StateError::Remote {
                remote,
                action,
                detail,
            }
        }
    }

    /// Runs git on this repository with a deadline; a git that cannot be
    /// started or does not finish is an error, a git that fails is not.
    fn git(&self, action: &str, args: &[&str]) -> Result<Output, StateError> {
        let mut cmd = Command::new("git");
        cmd.arg("--git-dir")
            .arg(&self.git_dir)
            .args(args)
            .env_remove("GIT_WORK_TREE")
            .env_remove("GIT_INDEX_FILE")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        run_timed(cmd, DEADLINE).map_err(|detail| match detail {
            Ran::Late(detail) => StateError::Unreachable {
                remote: self.name.clone(),
                action: action.to_owned(),
                detail,
            },
            Ran::Failed(detail) => self.failed(action, &detail),
        })
    }
}

/// Whether git's complaint says the remote could not be reached (the
/// connection, not the repository or the push, failed). Git and ssh word
/// these themselves; `LC_ALL=C` keeps them in English.
fn is_unreachable(stderr: &str) -> bool {
    const SIGNS: [&str; 11] = [
        "unable to connect",
        "Connection refused",
        "Connection timed out",
        "Connection reset",
        "Could not resolve host",
        "Network is unreachable",
        "No route to host",
        "Failed to connect",
        "Operation timed out",
        "remote end hung up unexpectedly",
        "no answer within",
    ];
    SIGNS.iter().any(|s| stderr.contains(s))
}

/// Why [`run_timed`] has no output to give.
enum Ran {
    /// Git did not finish within the deadline.
    Late(String),
    /// Git could not be started or waited for.
    Failed(String),
}

/// Whether git failed only because another process held a ref lock.
fn is_lock_conflict(stderr: &str) -> bool {
    stderr.contains("cannot lock ref")
        || stderr.contains("Unable to create") && stderr.contains(".lock")
}

/// The last few lines of git's complaint: enough to say why, short enough
/// for one error message.
fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let from = lines.len().saturating_sub(3);
    lines[from..].join("; ")
}

/// Runs `cmd` in a process group of its own, killed with its children (ssh,
/// a credential helper) when it outlives `limit`.
pub(crate) fn run_with_deadline(cmd: Command, limit: Duration) -> Result<Output, String> {
    run_timed(cmd, limit).map_err(|ran| match ran {
        Ran::Late(detail) | Ran::Failed(detail) => detail,
    })
}

/// [`run_with_deadline`], saying whether git was late or failed to run.
fn run_timed(mut cmd: Command, limit: Duration) -> Result<Output, Ran> {
    use std::os::unix::process::CommandExt;
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| Ran::Failed(format!("cannot run git: {e}")))?;
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result.map_err(|e| Ran::Failed(format!("waiting for git: {e}"))),
        Err(_) => {
            // SAFETY: kill(2) on the group this child leads; no memory involved.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = rx.recv();
            Err(Ran::Late(format!("no answer within {}s", limit.as_secs())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_last_lines_of_a_complaint_are_kept() {
        assert_eq!(
            last_lines("a\n\n b \nc\nfatal: d\n"),
            "b; c; fatal: d".to_owned()
        );
    }

    #[test]
    fn a_command_past_its_deadline_is_killed() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let Err(Ran::Late(err)) = run_timed(cmd, Duration::from_millis(200)) else {
            panic!("a command past its deadline was not reported late");
        };
        assert!(err.contains("no answer within"), "{err}");
    }

    #[test]
    fn a_refused_connection_is_unreachable_and_a_refused_push_is_not() {
        assert!(is_unreachable(
            "fatal: unable to connect to 127.0.0.1:\n127.0.0.1[0: 127.0.0.1]: errno=Connection refused"
        ));
        assert!(is_unreachable(
            "ssh: connect to host example.com port 22: Network is unreachable"
        ));
        assert!(!is_unreachable(
            "! [remote rejected] main (pre-receive hook declined)"
        ));
        assert!(!is_unreachable(
            "fatal: '/nowhere.git' does not appear to be a git repository"
        ));
        assert!(!is_unreachable(
            "git@example.com: Permission denied (publickey)."
        ));
    }
}
