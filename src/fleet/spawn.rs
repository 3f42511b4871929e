//! Starting workers: every worktree (in parallel), setup, one state commit
//! for all records, then one tmux session each; all or nothing, so a spawn
//! that fails part way removes what it made, in reverse order.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::env::{Environment, HANDOFF_ENV};
use super::{
    is_runner_of, session_name, sys, EnvFrom, Fleet, FleetError, Result, WorkerSpec, SOCKET_ENV,
};
use crate::clock;
use crate::config::Setup;
use crate::state::{check_name, Actor, Agent, AgentState, Refusal, StateError, Transition};
use crate::worker::pool::Pool;
use crate::worker::worktree::{Git, WorktreeError};

impl Fleet {
    /// Starts every worker of `specs` (one batch when `batch` is set): their
    /// worktrees (in parallel), setup, one state commit for all records, then
    /// one tmux session each running `exe agent-run <id>`.
    ///
    /// All or nothing: on any failure, every session, record, worktree and
    /// branch this call made is removed again and the first error returned.
    pub(crate) fn spawn(
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
            // Concurrent `git worktree add`s read each other's half-made
            // administrative dirs and fail; setup commands may overlap.
            let add_lock = std::sync::Mutex::new(());
            let maker = Maker {
                git: &self.git,
                pool: &self.pool,
                add_lock: &add_lock,
                root: &root,
                setup,
            };
            let paths: Vec<PathBuf> = specs.iter().map(|s| self.worktree_path(&s.id)).collect();
            std::thread::scope(|s| {
                for _ in 0..workers {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let Some(spec) = specs.get(i) else { break };
                        let r = maker.make(&paths[i], spec, &bases[&spec.from]);
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
                launch: Some(crate::state::AgentLaunch::from(&spec.profile)),
                model: spec.model.clone(),
                paths: spec.paths.clone(),
                signal: None,
                followups: Vec::new(),
                usage: None,
                cause: None,
                error: None,
                skills: Vec::new(),
                route: None,
                machine: None,
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
                        sys::wait_exit(pid, super::kill::KILL_GRACE);
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
        match self.git.commit_id(rev)? {
            Some(id) => Ok(id),
            None => Err(WorktreeError::BadRevision {
                rev: rev.to_owned(),
                repo: self.common_dir.clone(),
            }
            .into()),
        }
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
    pub(crate) fn start_session(&self, exe: &Path, a: &Agent) -> Result<()> {
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
    pub(crate) fn start_handed_over(
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
}

/// What every worktree of one spawn is made with.
struct Maker<'a> {
    /// Fleet holds a gix repository, which is not Sync; git is.
    git: &'a Git,
    pool: &'a Pool,
    add_lock: &'a std::sync::Mutex<()>,
    root: &'a Path,
    setup: &'a Setup,
}

impl Maker<'_> {
    /// Worker `spec`'s worktree at `path` from `base`, set up; removed
    /// again when setup fails.
    fn make(&self, path: &Path, spec: &WorkerSpec, base: &str) -> Result<()> {
        let Maker {
            git,
            pool,
            add_lock,
            root,
            setup,
        } = *self;
        // A pooled worktree needs no lock: taking one is a rename, and each
        // re-pointing checkout works in its own worktree.
        if !pool.take(git, path, &spec.branch, base)? {
            let _serial = add_lock.lock().unwrap_or_else(|e| e.into_inner());
            git.add_worktree(path, &spec.branch, base)?;
        }
        match crate::worker::worktree::setup(
            root,
            path,
            &setup.copy,
            &setup.commands,
            setup.timeout.0,
        ) {
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
}

fn rolled_back(id: &str, e: FleetError) -> FleetError {
    FleetError::RolledBack {
        id: id.to_owned(),
        source: Box::new(e),
    }
}
