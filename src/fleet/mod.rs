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

pub(crate) mod contain;
pub mod env;
mod output;
pub mod run;
pub mod sys;
pub mod terminal_text;

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::clock;
use crate::config::Setup;
use crate::state::{check_name, Actor, Agent, AgentState, Refusal, StateError, Store, Transition};
use crate::worker::procstat::{self, Snapshot};
use crate::worker::profile::{AgentProfile, ProfileError};
use crate::worker::reap;
use crate::worker::tmux::{Tmux, TmuxError};
use crate::worker::worktree::{BranchDeletion, Git, Identity, WorktreeError};
use env::{EnvError, Environment, HANDOFF_ENV};

/// Overrides the tmux socket name (`tmux -L`) of the repository's server;
/// tests give each case its own server with it.
pub const SOCKET_ENV: &str = "GIT_SPRINT_TMUX_SOCKET";

/// How long `kill` waits for a wrapper to save work after its session ends.
const KILL_GRACE: Duration = Duration::from_secs(10);

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

impl FleetError {
    pub fn hint(&self) -> Option<String> {
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

    /// Whether this is a mistake in what was asked (exit 2).
    pub fn is_usage(&self) -> bool {
        match self {
            FleetError::UnknownWorker { .. } | FleetError::Invalid(_) => true,
            FleetError::State(e) => e.is_usage(),
            _ => false,
        }
    }
}

pub type Result<T, E = FleetError> = std::result::Result<T, E>;

/// One worker to start.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// The worker id: record name, session name, worktree directory.
    pub id: String,
    /// The branch to create (fleet: the id; sprint: `sprint/<feature>/<task>`).
    pub branch: String,
    /// `developer`, `tester`, `librarian`, or `fleet` for direct workers.
    pub role: String,
    /// `<feature>/<task>` for sprint workers.
    pub task: Option<String>,
    /// Files the task names (`SPRINT_PATHS`).
    pub paths: Vec<String>,
    /// The full prompt the agent gets.
    pub prompt: String,
    /// The profile's name, for people (`claude`, `command`).
    pub profile_name: String,
    pub profile: AgentProfile,
    pub model: Option<String>,
    /// The revision to start from.
    pub from: String,
}

/// The sprint state plus the repository's worker places and tmux server.
pub struct Fleet {
    pub store: Store,
    /// The repository's common directory, absolute and canonical.
    pub common_dir: PathBuf,
    pub tmux: Tmux,
    /// git, run in the directory the fleet was opened from.
    pub git: Git,
    /// How agents' author emails are made (`identity` in the config);
    /// whoever loads the config sets it, the default otherwise.
    pub identity: crate::config::Identity,
    /// Whose environment the agents this fleet starts get.
    pub env_from: EnvFrom,
}

/// Whose environment a new agent gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvFrom {
    /// This process's: a fleet command hands over its caller's.
    ThisProcess,
    /// What the last `git sprint start` or `resume` saved (the
    /// orchestrator's agents), else this process's.
    SprintStart,
}

/// The trailer naming the agent in its commits.
pub const AGENT_TRAILER: &str = "Sprint-Agent";

/// The tmux session name of worker `id`: tmux mangles `.` and non-ASCII.
pub fn session_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `message` with the `Sprint-Agent: <id>` trailer, for commits git-sprint
/// makes of an agent's work (the agent's own get it from the
/// `prepare-commit-msg` hook).
pub fn with_agent_trailer(message: &str, id: &str) -> String {
    format!("{}\n\n{AGENT_TRAILER}: {id}\n", message.trim_end())
}

pub(crate) fn alive(pid: u32) -> bool {
    procstat::is_alive(pid)
}

/// Whether `pid` is the `agent-run` wrapper of worker `id` (Linux `/proc`).
pub fn is_runner_of(pid: u32, id: &str) -> bool {
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
    pub fn open(cwd: &Path) -> Result<Fleet> {
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
            common_dir,
            tmux,
            git: Git::new(cwd),
            identity: crate::config::Identity::default(),
            env_from: EnvFrom::ThisProcess,
        })
    }

    /// The identity agent `id` authors commits as: its id, and the
    /// configured email with `{agent}` replaced.
    pub fn author(&self, id: &str) -> Identity {
        Identity {
            name: id.to_owned(),
            email: self.identity.email.replace("{agent}", id),
        }
    }

    /// Commits whatever agent `id` left uncommitted in `worktree` as a WIP
    /// commit authored by the agent, with its trailer; `None` when clean.
    pub fn save_wip(
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

    pub fn worktree_path(&self, id: &str) -> PathBuf {
        self.dir("worktrees").join(id)
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir("logs").join(format!("{id}.log"))
    }

    pub fn prompt_path(&self, id: &str) -> PathBuf {
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
    pub fn handoff_path(&self, session: &str) -> PathBuf {
        self.dir("env").join(session)
    }

    /// The main worktree (where the config and files to copy live).
    pub fn main_worktree(&self) -> Result<PathBuf> {
        self.git.main_worktree()?.ok_or_else(|| {
            FleetError::Invalid(format!(
                "{} is a bare repository: workers need a main worktree to copy setup files from",
                self.common_dir.display()
            ))
        })
    }

    /// All worker records, by id.
    pub fn agents(&self) -> Result<Vec<Agent>> {
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
    pub fn all_agents(&self) -> Result<Vec<Agent>> {
        Ok(self.store.read(|txn| txn.all_agents())?)
    }

    /// The record of `id`, or an error listing the known ids.
    pub fn agent(&self, id: &str) -> Result<Agent> {
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

    /// Starts every worker of `specs` (one batch when `batch` is set): their
    /// worktrees (in parallel), setup, one state commit for all records, then
    /// one tmux session each running `exe agent-run <id>`.
    ///
    /// All or nothing: on any failure, every session, record, worktree and
    /// branch this call made is removed again and the first error returned.
    pub fn spawn(
        &self,
        actor: &Actor,
        exe: &Path,
        specs: &[WorkerSpec],
        batch: Option<&str>,
        setup: &Setup,
    ) -> Result<Vec<Agent>> {
        // Check everything that can be checked before anything is made.
        let mut seen = HashSet::new();
        for spec in specs {
            check_name("worker", &spec.id).map_err(FleetError::Invalid)?;
            if !seen.insert(session_name(&spec.id)) {
                return Err(FleetError::Invalid(format!(
                    "worker '{}' is named twice (or clashes with another after tmux's renaming)",
                    spec.id
                )));
            }
            spec.profile
                .validate()
                .map_err(|source| FleetError::Profile {
                    worker: spec.id.clone(),
                    source,
                })?;
        }
        self.tmux.check()?;
        let existing = self.agents()?;
        if let Some(dup) = specs.iter().find(|s| existing.iter().any(|a| a.id == s.id)) {
            return Err(StateError::from(Refusal::AgentExists {
                name: dup.id.clone(),
            })
            .into());
        }
        let root = self.main_worktree()?;
        let mut bases = BTreeMap::new();
        for spec in specs {
            if !bases.contains_key(&spec.from) {
                let sha = self.resolve_commit(&spec.from)?;
                bases.insert(spec.from.clone(), sha);
            }
            if self.git.branch_exists(&spec.branch)? {
                return Err(WorktreeError::BranchExists {
                    branch: spec.branch.clone(),
                    repo: root.clone(),
                }
                .into());
            }
        }

        // Worktrees and setup, a few at a time: git and setup commands are
        // mostly waiting on the disk.
        let made: Vec<Result<()>> = {
            let results = std::sync::Mutex::new(Vec::new());
            let next = std::sync::atomic::AtomicUsize::new(0);
            let workers = specs.len().clamp(1, 4);
            // Fleet holds a gix repository, which is not Sync; git is.
            let git = &self.git;
            // Concurrent `git worktree add`s read each other's half-made
            // administrative dirs and fail; setup commands may overlap.
            let add_lock = std::sync::Mutex::new(());
            let paths: Vec<PathBuf> = specs.iter().map(|s| self.worktree_path(&s.id)).collect();
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(spec) = specs.get(i) else { break };
                        let r = make_worktree(
                            git,
                            &add_lock,
                            &root,
                            &paths[i],
                            spec,
                            &bases[&spec.from],
                            setup,
                        );
                        results.lock().expect("no panics").push((i, r));
                    });
                }
            });
            let mut results = results.into_inner().expect("no panics");
            results.sort_by_key(|(i, _)| *i);
            results.into_iter().map(|(_, r)| r).collect()
        };
        let failed = made.iter().position(|r| r.is_err());
        if let Some(i) = failed {
            for (spec, r) in specs.iter().zip(&made) {
                if r.is_ok() {
                    self.remove_worktree_and_branch(spec);
                }
            }
            let err = made.into_iter().nth(i).expect("index").unwrap_err();
            return Err(rolled_back(&specs[i].id, err));
        }

        // One commit for every record.
        let now = clock::now();
        let me = std::process::id();
        let agents: Vec<Agent> = specs
            .iter()
            .map(|spec| Agent {
                id: spec.id.clone(),
                role: spec.role.clone(),
                state: AgentState::Starting,
                task: spec.task.clone(),
                batch: batch.map(str::to_owned),
                profile: spec.profile_name.clone(),
                session: session_name(&spec.id),
                pid: None,
                worktree: self.worktree_path(&spec.id).display().to_string(),
                branch: spec.branch.clone(),
                base: spec.from.clone(),
                prompt: spec.prompt.clone(),
                started: now,
                heartbeat: 0,
                ended: None,
                exit_status: None,
                wip_commit: None,
                runner_pid: Some(me),
                base_commit: Some(bases[&spec.from].clone()),
                end_commit: None,
                launch: Some(spec.profile.clone()),
                model: spec.model.clone(),
                paths: spec.paths.clone(),
                signal: None,
                followups: Vec::new(),
                usage: None,
                cause: None,
                error: None,
            })
            .collect();
        let subject = match (specs.len(), batch) {
            (1, None) => format!("fleet: spawn {}", specs[0].id),
            (n, Some(b)) => format!("fleet: spawn batch {b} ({n} workers)"),
            (n, None) => format!("fleet: spawn {n} workers"),
        };
        let recorded = self.store.transact(actor, |txn| {
            for a in &agents {
                if txn.agent(&a.id)?.is_some() {
                    return Err(Refusal::AgentExists { name: a.id.clone() }.into());
                }
                txn.put_agent(a)?;
                txn.record(Transition {
                    task: a.id.clone(),
                    from: "none".into(),
                    to: "starting".into(),
                    reason: batch.map(|b| format!("batch {b}")),
                    policy: None,
                });
            }
            txn.subject(subject.clone());
            Ok(())
        });
        if let Err(e) = recorded {
            for spec in specs {
                self.remove_worktree_and_branch(spec);
            }
            return Err(rolled_back(&specs[0].id, e.into()));
        }

        // Sessions last: the wrapper in each reads the record just written.
        for (i, a) in agents.iter().enumerate() {
            if let Err(e) = self.start_session(exe, a) {
                let started: Vec<&Agent> = agents[..i].iter().collect();
                for s in &started {
                    let _ = self.tmux.kill_session(&s.session);
                    let runner = self.agent(&s.id).ok().and_then(|a| a.runner_pid);
                    if let Some(pid) = runner.filter(|p| is_runner_of(*p, &s.id)) {
                        sys::wait_exit(pid, KILL_GRACE);
                    }
                }
                for spec in specs {
                    self.remove_worktree_and_branch(spec);
                }
                let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
                let _ = self.store.transact(actor, |txn| {
                    for id in &ids {
                        txn.remove_agent(id);
                    }
                    txn.subject(format!("fleet: spawn of {} rolled back", ids.join(", ")));
                    Ok(())
                });
                return Err(rolled_back(&a.id, e));
            }
        }
        Ok(agents)
    }

    fn resolve_commit(&self, rev: &str) -> Result<String> {
        if !self.git.is_commit(rev)? {
            return Err(WorktreeError::BadRevision {
                rev: rev.to_owned(),
                repo: self.common_dir.clone(),
            }
            .into());
        }
        let out = self
            .git
            .command(["rev-parse", "--verify", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}"))
            .output()
            .map_err(|source| WorktreeError::GitMissing {
                dir: self.git.dir().to_owned(),
                source,
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Best-effort removal during a rollback: the first error is what matters.
    fn remove_worktree_and_branch(&self, spec: &WorkerSpec) {
        let path = self.worktree_path(&spec.id);
        let _ = self.git.remove_worktree(&path, true);
        let _ = std::fs::remove_dir_all(&path);
        let _ = self.git.delete_branch_if_merged(&spec.branch, "HEAD", true);
        let _ = std::fs::remove_file(self.log_path(&spec.id));
        let _ = std::fs::remove_file(self.prompt_path(&spec.id));
    }

    /// Starts the tmux session of agent `a`, running the wrapper with the
    /// environment of whoever scheduled it (see [`EnvFrom`]) and the agent's
    /// author identity.
    pub fn start_session(&self, exe: &Path, a: &Agent) -> Result<()> {
        let log = self.log_path(&a.id);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
                action: "creating",
                path: dir.to_owned(),
                source,
            })?;
        }
        let argv: Vec<OsString> = vec![
            exe.as_os_str().to_owned(),
            "agent-run".into(),
            a.id.clone().into(),
        ];
        // A log left by an earlier worker of this name (`kill` keeps logs)
        // is not this one's.
        let _ = std::fs::remove_file(&log);
        let base = match self.env_from {
            EnvFrom::ThisProcess => None,
            EnvFrom::SprintStart => Environment::saved_for_sprint(&self.common_dir)?,
        };
        let env = base
            .unwrap_or_else(Environment::of_this_process)
            .for_agent(&self.author(&a.id));
        self.start_handed_over(&a.session, Path::new(&a.worktree), &argv, &env, &log)
    }

    /// Starts session `session` in `cwd` running `argv` with exactly `env`
    /// (plus the pane's own terminal variables), its output appended to `log`.
    pub fn start_handed_over(
        &self,
        session: &str,
        cwd: &Path,
        argv: &[OsString],
        env: &Environment,
        log: &Path,
    ) -> Result<()> {
        let handoff = self.handoff_path(session);
        env.write(&handoff)?;
        // The process finds the socket the same way we did.
        let mut pane_env = vec![(HANDOFF_ENV.to_owned(), handoff.display().to_string())];
        if let Ok(socket) = std::env::var(SOCKET_ENV) {
            pane_env.push((SOCKET_ENV.to_owned(), socket));
        }
        let started = self
            .tmux
            .new_session_logged(session, cwd, argv, &pane_env, log);
        if started.is_err() {
            let _ = std::fs::remove_file(&handoff);
        }
        Ok(started?)
    }

    /// Compares the records with tmux and `/proc`: a `starting` or `running`
    /// worker whose session is gone and whose wrapper is not alive is
    /// recorded `dead` (one commit for all, only when something changed).
    /// Returns the records as they are after that, and the live session names.
    /// Worker `id` as reality has it (see [`Fleet::reconcile`]), and whether
    /// its session is alive.
    pub fn worker(&self, actor: &Actor, id: &str) -> Result<(Agent, bool)> {
        let (agents, sessions) = self.reconcile(actor)?;
        let known = || agents.iter().map(|a| a.id.clone()).collect();
        // A finished sprint agent is archived: still a known worker.
        if !agents.iter().any(|a| a.id == id) {
            if let Some(a) = self.store.read(|txn| txn.archived_agent(id))? {
                return Ok((a, false));
            }
        }
        let a = agents
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| FleetError::UnknownWorker {
                id: id.to_owned(),
                known: known(),
            })?;
        let live = sessions.contains(&a.session);
        Ok((a.clone(), live))
    }

    /// Worker `id`, refusing when its session is not running.
    pub fn running_worker(&self, actor: &Actor, id: &str) -> Result<Agent> {
        match self.worker(actor, id)? {
            (a, true) => Ok(a),
            (a, false) => Err(FleetError::NotRunning {
                id: a.id.clone(),
                state: describe(&a),
            }),
        }
    }

    pub fn reconcile(&self, actor: &Actor) -> Result<(Vec<Agent>, HashSet<String>)> {
        let agents = self.agents()?;
        let sessions: HashSet<String> = self.tmux.list_sessions()?.into_iter().collect();
        let gone = |a: &Agent| {
            crate::state::liveness::is_running(a)
                && !sessions.contains(&a.session)
                && !a.runner_pid.is_some_and(|p| match a.state {
                    // The wrapper, unless its pid went to another process.
                    AgentState::Running => is_runner_of(p, &a.id),
                    // The spawner, still making the session.
                    _ => alive(p),
                })
        };
        if !agents.iter().any(gone) {
            return Ok((agents, sessions));
        }
        let done = self.store.transact(actor, |txn| {
            let mut dead = Vec::new();
            for id in txn.agent_ids()? {
                let Some(a) = txn.agent(&id)? else {
                    continue;
                };
                if !gone(&a) {
                    continue;
                }
                crate::state::ops::agent_dead(
                    txn,
                    &id,
                    crate::state::Cause::Crash,
                    "tmux session gone and no wrapper process",
                )?;
                dead.push(a.id.clone());
            }
            if !dead.is_empty() {
                txn.subject(format!(
                    "fleet: {} dead (tmux session gone)",
                    dead.join(", ")
                ));
            }
            Ok(())
        })?;
        let _ = done;
        Ok((self.agents()?, sessions))
    }

    /// Everything `list` shows, after reconciling. CPU is measured over
    /// `interval`, only when some agent is running.
    pub fn status(&self, actor: &Actor, interval: Duration) -> Result<Vec<WorkerStatus>> {
        let (_, sessions) = self.reconcile(actor)?;
        // Archived (finished) sprint agents are listed too, as before the
        // archive; a live-only view leaves out `Txn::archived_agent_ids`.
        let agents = self.all_agents()?;
        let now = clock::now();
        let progress = self.progress(&agents);
        let running: Vec<u32> = agents
            .iter()
            .filter(|a| crate::state::liveness::is_running(a))
            .filter_map(|a| a.runner_pid.filter(|p| alive(*p)))
            .collect();
        let usage: BTreeMap<u32, procstat::TreeUsage> = if running.is_empty() {
            BTreeMap::new()
        } else {
            let before = Snapshot::take().ok();
            std::thread::sleep(interval);
            let after = Snapshot::take().ok();
            match (before, after) {
                (Some(b), Some(a)) => running
                    .iter()
                    .filter_map(|p| procstat::usage(&b, &a, *p).map(|u| (*p, u)))
                    .collect(),
                _ => BTreeMap::new(),
            }
        };
        Ok(agents
            .into_iter()
            .zip(progress)
            .map(|(a, (ahead, files))| {
                let u = a.runner_pid.and_then(|p| usage.get(&p));
                WorkerStatus {
                    state: describe(&a),
                    session: sessions.contains(&a.session),
                    age_secs: now - a.started,
                    ahead,
                    files_changed: files,
                    cpu_percent: u.map(|u| (u.cpu_percent * 10.0).round() / 10.0),
                    rss_bytes: u.map(|u| u.rss_bytes),
                    log: self.log_path(&a.id).display().to_string(),
                    agent: a,
                }
            })
            .collect())
    }

    /// The commit branch `branch` points at, if it exists.
    pub fn branch_tip(&self, branch: &str) -> Option<gix::ObjectId> {
        self.store
            .repo()
            .try_find_reference(format!("refs/heads/{branch}").as_str())
            .ok()
            .flatten()
            .and_then(|mut r| r.peel_to_id().ok().map(|id| id.detach()))
    }

    /// Commits ahead of the base and files changed, per agent: one revision
    /// walk in-process each, and one `git diff-tree --stdin` for all.
    fn progress(&self, agents: &[Agent]) -> Vec<(Option<usize>, Option<usize>)> {
        let repo = self.store.repo();
        let mut tips = Vec::new();
        for a in agents {
            // An agent that ended is measured at its end: the branch may have
            // moved on (a Tester after a Developer) or be gone (merged).
            let end = a
                .end_commit
                .as_deref()
                .and_then(|c| gix::ObjectId::from_hex(c.as_bytes()).ok());
            let tip = end.or_else(|| self.branch_tip(&a.branch));
            let base = a
                .base_commit
                .as_deref()
                .and_then(|b| gix::ObjectId::from_hex(b.as_bytes()).ok());
            tips.push(tip.zip(base));
        }
        let ahead: Vec<Option<usize>> = tips
            .iter()
            .map(|pair| {
                let (tip, base) = (*pair)?;
                if tip == base {
                    return Some(0);
                }
                let walk = repo.rev_walk([tip]).with_hidden([base]).all().ok()?;
                Some(walk.filter(|c| c.is_ok()).count())
            })
            .collect();
        let files = self.files_changed(&tips);
        ahead.into_iter().zip(files).collect()
    }

    fn files_changed(
        &self,
        pairs: &[Option<(gix::ObjectId, gix::ObjectId)>],
    ) -> Vec<Option<usize>> {
        let mut out: Vec<Option<usize>> = pairs
            .iter()
            .map(|p| {
                p.map(|(t, b)| if t == b { Some(0) } else { None })
                    .unwrap_or(None)
            })
            .collect();
        // Lines `<tip> <base>`: diff-tree prints `<tip>` and then the names,
        // for each pair with a difference, in input order.
        let todo: Vec<usize> = (0..pairs.len())
            .filter(|i| pairs[*i].is_some() && out[*i].is_none())
            .collect();
        if todo.is_empty() {
            return out;
        }
        let mut input = String::new();
        for &i in &todo {
            let (t, b) = pairs[i].expect("filtered");
            input.push_str(&format!("{t} {b}\n"));
        }
        let result = (|| -> std::io::Result<String> {
            use std::io::Write;
            let mut child = self
                .git
                .command(["diff-tree", "--stdin", "-r", "--name-only", "--no-renames"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let mut stdin = child.stdin.take().expect("piped");
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
            let output = child.wait_with_output()?;
            let _ = writer.join();
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        })();
        let Ok(text) = result else { return out };
        for &i in &todo {
            out[i] = Some(0);
        }
        let mut k = 0;
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let parsed = gix::ObjectId::from_hex(line.as_bytes()).ok();
            // Advance to the next pending pair whose tip this header names.
            let header = todo[k..]
                .iter()
                .position(|&i| pairs[i].is_some_and(|(t, _)| Some(t) == parsed));
            if let Some(off) = header {
                current = Some(todo[k + off]);
                k += off + 1;
                continue;
            }
            if let Some(i) = current {
                if !line.is_empty() {
                    out[i] = Some(out[i].unwrap_or(0) + 1);
                }
            }
        }
        out
    }

    /// Stops workers: ends the session (the wrapper saves uncommitted work and
    /// records the end), saves anything still uncommitted, removes the
    /// worktree, deletes the branch when all its commits are in the base (or
    /// with `force`), removes the prompt, and removes the records in one
    /// commit. The branch is what remains of a worker's work; the record's
    /// history stays in `git log refs/ai-sprint`, and its log stays for
    /// `git sprint logs <id>` until [`Fleet::prune_logs`].
    pub fn kill(&self, actor: &Actor, ids: &[String], force: bool) -> Result<Vec<Killed>> {
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
    pub fn prune_logs(&self, actor: &Actor, ended: bool) -> Result<Vec<String>> {
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
    pub fn remove_feature_logs(&self, feature: &str) -> Result<usize> {
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
            wip = self
                .save_wip(
                    &path,
                    &a.id,
                    &format!("WIP: {} (saved by git sprint kill)", a.id),
                )
                .ok()
                .flatten();
            self.git.remove_worktree(&path, true)?;
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

fn make_worktree(
    git: &Git,
    add_lock: &std::sync::Mutex<()>,
    root: &Path,
    path: &Path,
    spec: &WorkerSpec,
    base: &str,
    setup: &Setup,
) -> Result<()> {
    {
        let _serial = add_lock.lock().unwrap_or_else(|e| e.into_inner());
        git.add_worktree(path, &spec.branch, base)?;
    }
    match crate::worker::worktree::setup(root, path, &setup.copy, &setup.commands, setup.timeout.0)
    {
        Ok(report) => {
            for (file, why) in &report.skipped {
                tracing::warn!(
                    "{}: setup file {} not copied: {why}",
                    spec.id,
                    file.display()
                );
            }
            Ok(())
        }
        Err(e) => {
            let _ = git.remove_worktree(path, true);
            let _ = std::fs::remove_dir_all(path);
            let _ = git.delete_branch_if_merged(&spec.branch, "HEAD", true);
            Err(e.into())
        }
    }
}

fn rolled_back(id: &str, e: FleetError) -> FleetError {
    FleetError::RolledBack {
        id: id.to_owned(),
        source: Box::new(e),
    }
}

/// `running`, `exited 0`, `killed (SIGHUP)`, `dead`, `starting`.
pub fn describe(a: &Agent) -> String {
    match a.state {
        AgentState::Exited | AgentState::Killed => match (a.signal, a.exit_status) {
            (Some(sig), _) => format!("{} (signal {sig})", a.state),
            (None, Some(code)) => format!("{} {code}", a.state),
            (None, None) => a.state.to_string(),
        },
        s => s.to_string(),
    }
}

/// One row of `list`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStatus {
    #[serde(flatten)]
    pub agent: Agent,
    /// `running`, `exited 0`, `dead`, …
    #[serde(rename = "status")]
    pub state: String,
    /// Whether its tmux session exists.
    #[serde(rename = "session_alive")]
    pub session: bool,
    pub age_secs: i64,
    pub ahead: Option<usize>,
    pub files_changed: Option<usize>,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    pub log: String,
}

/// What `kill` did to one worker.
#[derive(Debug, Clone, Serialize)]
pub struct Killed {
    pub id: String,
    pub had_session: bool,
    pub wip_commit: Option<String>,
    pub branch: String,
    pub branch_deleted: bool,
    /// Commits kept on the branch because they are not in `into`.
    pub kept_commits: Option<usize>,
    pub into: String,
}

/// A worker-name slug from the first words of a prompt (`fanout` when none).
pub fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for word in prompt.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            if out.len() + 1 + word.len() > 24 {
                break;
            }
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
        if out.len() >= 24 {
            out.truncate(24);
            break;
        }
    }
    if out.is_empty() {
        "fanout".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(session_name("fix.auth-1"), "fix_auth-1");
        assert_eq!(
            slug("Refactor the auth module, please!"),
            "refactor-the-auth-module"
        );
        assert_eq!(slug("!!!"), "fanout");
        assert!(check_name("worker", &slug("Ünïcode things")).is_ok());
    }
}
