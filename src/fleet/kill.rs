//! Stopping workers: end the session, save what the agent left
//! uncommitted, remove the worktree, keep a branch with unmerged commits, and
//! drop the records; and pruning the logs of agents that are gone.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::{is_runner_of, sys, Fleet, FleetError, Result};
use crate::state::{Actor, Agent, Transition};
use crate::worker::pool::Retired;
use crate::worker::worktree::BranchDeletion;

/// How long `kill` waits for a wrapper to save work after its session ends.
pub(super) const KILL_GRACE: Duration = Duration::from_secs(10);

impl Fleet {
    /// Stops workers: ends the session (the wrapper saves uncommitted work and
    /// records the end), saves anything still uncommitted, removes the
    /// worktree, deletes the branch when all its commits are in the base (or
    /// with `force`), removes the prompt, and removes the records in one
    /// commit. The branch is what remains of a worker's work; the record's
    /// history stays in `git log refs/ai-sprint`, and its log stays for
    /// `git sprint logs <id>` until [`Fleet::prune_logs`].
    pub(crate) fn kill(&self, actor: &Actor, ids: &[String], force: bool) -> Result<Vec<Killed>> {
        let mut out = Vec::new();
        for id in ids {
            let a = self.agent(id)?;
            out.push(self.stop_one(&a, force)?);
        }
        let ids = ids.to_vec();
        self.store.transact(actor, |txn| {
            for id in &ids {
                if let Some(a) = txn.agent(id)? {
                    txn.remove_agent(id);
                    txn.record(Transition {
                        task: id.clone(),
                        from: a.state.to_string(),
                        to: "removed".into(),
                        reason: Some("git sprint kill".into()),
                        policy: None,
                    });
                }
            }
            txn.subject(if ids.len() == 1 {
                format!("fleet: kill {}", ids[0])
            } else {
                format!("fleet: kill {} workers", ids.len())
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Removes the logs of agents that no longer run: those no record names
    /// any more (`kill` keeps their logs), and with `ended` also those whose
    /// record says they ended. The logs of running agents and the
    /// orchestrator's stay. Returns the ids whose logs were removed, sorted.
    pub(crate) fn prune_logs(&self, actor: &Actor, ended: bool) -> Result<Vec<String>> {
        self.reconcile(actor)?;
        // An archived record still names its agent.
        let agents = self.all_agents()?;
        let dir = self.dir("logs");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(FleetError::Io {
                    action: "listing",
                    path: dir,
                    source,
                })
            }
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
                continue;
            };
            if id == crate::daemon::SESSION {
                continue;
            }
            let gone = match agents.iter().find(|a| a.id == id) {
                None => true,
                Some(a) => ended && !crate::state::liveness::is_running(a),
            };
            if gone {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|source| FleetError::Io {
                    action: "removing",
                    path,
                    source,
                })?;
                removed.push(id.to_owned());
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Removes the logs of feature `feature`'s agents, once it is done.
    /// Returns how many there were.
    pub(crate) fn remove_feature_logs(&self, feature: &str) -> Result<usize> {
        let prefix = format!("{feature}/");
        let mut n = 0;
        for a in self.all_agents()? {
            if a.task.as_deref().is_some_and(|t| t.starts_with(&prefix))
                && std::fs::remove_file(self.log_path(&a.id)).is_ok()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    fn stop_one(&self, a: &Agent, force: bool) -> Result<Killed> {
        let had_session = self.tmux.kill_session(&a.session)?;
        // The wrapper got SIGHUP: let it save the work and record the end.
        // Only a pid that is still this worker's wrapper: pids get reused.
        if let Some(pid) = a.runner_pid.filter(|p| is_runner_of(*p, &a.id)) {
            if !sys::wait_exit(pid, KILL_GRACE) {
                sys::signal(pid, sys::SIGKILL);
                sys::wait_exit(pid, Duration::from_secs(2));
            }
        }
        // The wrapper kills the agent's tree; this catches what a wrapper
        // that was itself killed (or never ran) could not.
        self.kill_leftovers(&a.id);
        let path = PathBuf::from(&a.worktree);
        let mut wip = None;
        if path.is_dir() {
            let saved = self.save_wip(
                &path,
                &a.id,
                &format!("WIP: {} (saved by git sprint kill)", a.id),
            );
            match saved {
                // The work is on the branch: the directory may be reused.
                Ok(commit) => {
                    wip = commit;
                    if let Retired::Discarded(why) = self.pool.retire(&self.git, &path)? {
                        tracing::warn!(worker = %a.id, "worktree not pooled: {why}");
                    }
                }
                Err(_) => self.git.remove_worktree(&path, true)?,
            }
        } else {
            self.git.remove_worktree(&path, true)?;
        }
        let into = if self.git.is_commit(&a.base)? {
            a.base.clone()
        } else {
            a.base_commit.clone().unwrap_or_else(|| "HEAD".into())
        };
        let ahead = a.base_commit.as_deref().and_then(|b| {
            self.git
                .commits_ahead(&format!("refs/heads/{}", a.branch), b)
                .ok()
        });
        let branch = self.git.delete_branch_if_merged(&a.branch, &into, force)?;
        // The log stays: it may hold the only copy of why the agent failed.
        let _ = std::fs::remove_file(self.prompt_path(&a.id));
        let _ = std::fs::remove_file(self.handoff_path(&a.session));
        Ok(Killed {
            id: a.id.clone(),
            had_session,
            wip_commit: wip.or_else(|| self.agent(&a.id).ok().and_then(|r| r.wip_commit)),
            branch: a.branch.clone(),
            branch_deleted: branch == BranchDeletion::Deleted,
            kept_commits: if branch == BranchDeletion::KeptUnmerged {
                ahead
            } else {
                None
            },
            into,
        })
    }
}

/// What `kill` did to one worker.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Killed {
    pub(crate) id: String,
    pub(crate) had_session: bool,
    pub(crate) wip_commit: Option<String>,
    pub(crate) branch: String,
    pub(crate) branch_deleted: bool,
    /// Commits kept on the branch because they are not in `into`.
    pub(crate) kept_commits: Option<usize>,
    pub(crate) into: String,
}
