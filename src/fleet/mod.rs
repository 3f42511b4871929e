//! The fleet: workers (an agent in its own worktree and tmux session) started,
//! listed and stopped directly, and the wrapper that runs in each pane.
//!
//! This module composes the `worker` machinery with the state store. A worker
//! is `agents/<id>.yaml` on `refs/ai-sprint`, a worktree under
//! `$GIT_COMMON_DIR/sprint/worktrees/<id>`, a log under `sprint/logs/<id>.log`
//! and one session on the repository's tmux server. The sprint engine starts
//! its Developer and Tester workers through the same [`Fleet::spawn`] with a
//! [`WorkerSpec`] naming the task, and [`run::agent_run`] records their end.
//!
//! Reality wins over records: [`Fleet::reconcile`] compares `starting` and
//! `running` records with tmux and `/proc`, and records a worker whose session
//! and wrapper are both gone as `dead`, once. A spawn that fails part way
//! undoes what it made, in reverse order.
//!
//! An agent starts with the environment of the command that scheduled it
//! ([`env`]) and commits as itself: author `<agent-id>`, committer the user,
//! a `Sprint-Agent:` trailer. Its log outlives it: `kill` keeps it, and it
//! goes when its feature is done or with `git sprint logs --prune`.
//!
//! One file per job: [`spawn`](Fleet::spawn) starts workers, `records`
//! reconciles and measures them for `list`, `kill` stops them and prunes
//! logs, `names` makes session names and slugs; this file holds what they
//! share (the error, the paths of a worker's places, the records).

pub(crate) mod contain;
pub mod env;
mod kill;
mod names;
mod output;
mod records;
pub(crate) mod run;
mod spawn;
pub(crate) mod sys;
pub(crate) mod terminal_text;

pub(crate) use names::{session_name, slug, with_agent_trailer, AGENT_TRAILER};
pub(crate) use records::{describe, WorkerStatus};

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hint::Hint;
use crate::state::{Agent, StateError, Store};
use crate::worker::pool::Pool;
use crate::worker::procstat;
use crate::worker::profile::{AgentProfile, ProfileError};
use crate::worker::reap;
use crate::worker::tmux::{Tmux, TmuxError};
use crate::worker::worktree::{Git, Identity, WorktreeError};
use env::EnvError;

/// Overrides the tmux socket name (`tmux -L`) of the repository's server;
/// tests give each case its own server with it.
pub(crate) const SOCKET_ENV: &str = "GIT_SPRINT_TMUX_SOCKET";

/// What went wrong running the fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Tmux(#[from] TmuxError),
    #[error(transparent)]
    Worktree(#[from] WorktreeError),
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("agent profile for worker '{worker}'")]
    Profile {
        worker: String,
        #[source]
        source: ProfileError,
    },
    #[error("sandbox for worker '{worker}'")]
    Sandbox {
        worker: String,
        #[source]
        source: crate::worker::sandbox::SandboxError,
    },
    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no worker '{id}'")]
    UnknownWorker { id: String, known: Vec<String> },
    #[error("worker '{id}' is not running (it is {state})")]
    NotRunning { id: String, state: String },
    #[error("{0}")]
    Invalid(String),
    /// A spawn failed and what it had made was removed again.
    #[error("starting worker '{id}' failed; nothing was left behind")]
    RolledBack {
        id: String,
        #[source]
        source: Box<FleetError>,
    },
}

impl Hint for FleetError {
    fn hint(&self) -> Option<String> {
        match self {
            FleetError::State(e) => e.hint(),
            FleetError::RolledBack { source, .. } => source.hint(),
            FleetError::UnknownWorker { known, .. } if !known.is_empty() => {
                Some(format!("known workers: {}", known.join(", ")))
            }
            FleetError::UnknownWorker { .. } => {
                Some("start one with 'git sprint spawn <name> --prompt TEXT'".into())
            }
            FleetError::NotRunning { id, .. } => Some(format!(
                "see its output with 'git sprint logs {id}', remove it with 'git sprint kill {id}'"
            )),
            FleetError::Tmux(TmuxError::NotInstalled { .. } | TmuxError::TooOld { .. }) => {
                Some("install tmux 3.2 or newer (apt install tmux, brew install tmux)".into())
            }
            FleetError::Worktree(WorktreeError::GitMissing { .. }) => {
                Some("install git 2.20 or newer".into())
            }
            FleetError::Env(e) => e.hint(),
            _ => None,
        }
    }
}

impl FleetError {
    /// Whether this is a mistake in what was asked (exit 2).
    pub(crate) fn is_usage(&self) -> bool {
        match self {
            FleetError::UnknownWorker { .. } | FleetError::Invalid(_) => true,
            FleetError::State(e) => e.is_usage(),
            _ => false,
        }
    }
}

pub(crate) type Result<T, E = FleetError> = std::result::Result<T, E>;

/// One worker to start.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    /// The worker id: record name, session name, worktree directory.
    pub(crate) id: String,
    /// The branch to create (fleet: the id; sprint: `sprint/<feature>/<task>`).
    pub(crate) branch: String,
    /// `developer`, `tester`, `librarian`, or `fleet` for direct workers.
    pub(crate) role: String,
    /// `<feature>/<task>` for sprint workers.
    pub(crate) task: Option<String>,
    /// Files the task names (`SPRINT_PATHS`).
    pub(crate) paths: Vec<String>,
    /// The full prompt the agent gets.
    pub(crate) prompt: String,
    /// The profile's name, for people (`claude`, `command`).
    pub(crate) profile_name: String,
    pub(crate) profile: AgentProfile,
    pub(crate) model: Option<String>,
    /// The revision to start from.
    pub(crate) from: String,
}

/// The sprint state plus the repository's worker places and tmux server.
pub(crate) struct Fleet {
    pub(crate) store: Store,
    /// The repository's common directory, absolute and canonical.
    pub(crate) common_dir: PathBuf,
    pub(crate) tmux: Tmux,
    /// git, run in the directory the fleet was opened from.
    pub(crate) git: Git,
    /// How agents' author emails are made (`identity` in the config);
    /// whoever loads the config sets it, the default otherwise.
    pub(crate) identity: crate::config::Identity,
    /// Whose environment the agents this fleet starts get.
    pub(crate) env_from: EnvFrom,
    /// Finished workers' worktrees kept for new ones (`worktrees` in the
    /// config); whoever loads the config sets it with
    /// [`Fleet::configure_pool`], the default otherwise.
    pub(crate) pool: Pool,
}

/// Whose environment a new agent gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvFrom {
    /// This process's: a fleet command hands over its caller's.
    ThisProcess,
    /// What the last `git sprint start` or `resume` saved (the
    /// orchestrator's agents), else this process's.
    SprintStart,
}

fn pool_of(common_dir: &Path, worktrees: &crate::config::Worktrees) -> Pool {
    Pool::new(common_dir, worktrees.pool, &worktrees.keep)
}

pub(crate) fn alive(pid: u32) -> bool {
    procstat::is_alive(pid)
}

/// Whether `pid` is the `agent-run` wrapper of worker `id` (Linux `/proc`).
pub(crate) fn is_runner_of(pid: u32, id: &str) -> bool {
    if pid == std::process::id() {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.windows(2)
        .any(|w| w[0] == b"agent-run" && w[1] == id.as_bytes())
}

/// Blocks until process `pid` exits or `timeout` passes; true when it exited.
pub fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    sys::wait_exit(pid, timeout)
}

impl Fleet {
    /// The fleet of the repository containing `cwd`.
    pub(crate) fn open(cwd: &Path) -> Result<Fleet> {
        let store = Store::discover(cwd)?;
        let common = store.repo().common_dir().to_owned();
        let common = if common.is_absolute() {
            common
        } else {
            cwd.join(common)
        };
        let common_dir = common.canonicalize().map_err(|source| FleetError::Io {
            action: "resolving",
            path: common.clone(),
            source,
        })?;
        let tmux = match std::env::var(SOCKET_ENV) {
            Ok(socket) if !socket.trim().is_empty() => Tmux::new(socket.trim()),
            _ => Tmux::for_repo(&common_dir)?,
        };
        Ok(Fleet {
            store,
            tmux,
            git: Git::new(cwd),
            identity: crate::config::Identity::default(),
            env_from: EnvFrom::ThisProcess,
            pool: pool_of(&common_dir, &crate::config::Worktrees::default()),
            common_dir,
        })
    }

    /// Sizes the worktree pool as the config's `worktrees` section says.
    pub(crate) fn configure_pool(&mut self, worktrees: &crate::config::Worktrees) {
        self.pool = pool_of(&self.common_dir, worktrees);
    }

    /// The identity agent `id` authors commits as: its id, and the
    /// configured email with `{agent}` replaced.
    pub(crate) fn author(&self, id: &str) -> Identity {
        Identity {
            name: id.to_owned(),
            email: self.identity.email.replace("{agent}", id),
        }
    }

    /// Commits whatever agent `id` left uncommitted in `worktree` as a WIP
    /// commit authored by the agent, with its trailer; `None` when clean.
    pub(crate) fn save_wip(
        &self,
        worktree: &Path,
        id: &str,
        message: &str,
    ) -> Result<Option<String>, WorktreeError> {
        self.git
            .at(worktree)
            .commit_wip(&with_agent_trailer(message, id), &self.author(id))
    }

    fn dir(&self, kind: &str) -> PathBuf {
        self.common_dir.join("sprint").join(kind)
    }

    pub(crate) fn worktree_path(&self, id: &str) -> PathBuf {
        self.dir("worktrees").join(id)
    }

    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.dir("logs").join(format!("{id}.log"))
    }

    pub(crate) fn prompt_path(&self, id: &str) -> PathBuf {
        self.dir("prompts").join(format!("{id}.md"))
    }

    /// The mark (`GIT_SPRINT_MARK`) every process of worker `id` carries:
    /// it names the repository too, since worker ids repeat across them.
    pub(crate) fn process_mark(&self, id: &str) -> String {
        format!("agent:{}:{id}", self.common_dir.display())
    }

    /// Kills every process still carrying worker `id`'s mark (a wrapper
    /// that was itself killed could not); returns how many.
    pub(crate) fn kill_leftovers(&self, id: &str) -> usize {
        let mark = self.process_mark(id);
        reap::terminate(|| reap::marked(&mark), reap::GRACE)
    }

    /// The environment handed to the process of session `session` (it
    /// deletes the file as it starts).
    pub(crate) fn handoff_path(&self, session: &str) -> PathBuf {
        self.dir("env").join(session)
    }

    /// The main worktree (where the config and files to copy live).
    pub(crate) fn main_worktree(&self) -> Result<PathBuf> {
        self.git.main_worktree()?.ok_or_else(|| {
            FleetError::Invalid(format!(
                "{} is a bare repository: workers need a main worktree to copy setup files from",
                self.common_dir.display()
            ))
        })
    }

    /// All worker records, by id.
    pub(crate) fn agents(&self) -> Result<Vec<Agent>> {
        Ok(self.store.read(|txn| {
            let mut out = Vec::new();
            for id in txn.agent_ids()? {
                if let Some(a) = txn.agent(&id)? {
                    out.push(a);
                }
            }
            Ok(out)
        })?)
    }

    /// Every worker record, archived ones (finished sprint agents) too, by id.
    pub(crate) fn all_agents(&self) -> Result<Vec<Agent>> {
        Ok(self.store.read(|txn| txn.all_agents())?)
    }

    /// The record of `id`, or an error listing the known ids.
    pub(crate) fn agent(&self, id: &str) -> Result<Agent> {
        let agents = self.agents()?;
        let known: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
        agents
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| FleetError::UnknownWorker {
                id: id.to_owned(),
                known,
            })
    }
}
