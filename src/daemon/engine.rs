//! Carries out what the stages say is owed.
//!
//! One reconcile reads the whole state, looks at tmux (which sessions live,
//! when each pane last printed), asks [`crate::stages::owed`] for the debts
//! and pays them. Every change goes through a state transaction that checks
//! the task is still where the stage saw it, so a stale action is a no-op,
//! and a crash at any point leaves a state the next reconcile can finish.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use super::record::{self, orchestrator, AttemptPolicy};
use super::watch::Wake;
use crate::clock;
use crate::config::Config;
use crate::fleet::{session_name, Fleet};
use crate::gates::{self, Gate};
use crate::prompt;
use crate::refinery::Verdict;
use crate::stages::{
    self, agent_id, librarian, task_branch, Action, BreakerGate, GateStage, Limits, Profiles, World,
};
use crate::state::{
    liveness, ops, Actor, Agent, AgentState, Cause, ConvoyStatus, FeatureStatus, Snapshot,
    StateError, Task, TaskRef, TaskStatus, Transition,
};

pub struct Engine {
    pub fleet: Fleet,
    pub config: Config,
    exe: PathBuf,
    root: PathBuf,
    /// Tasks whose gates run on a thread of ours right now.
    busy: Arc<Mutex<HashSet<String>>>,
    wake: UnboundedSender<Wake>,
}

impl Engine {
    pub fn new(
        fleet: Fleet,
        config: Config,
        exe: PathBuf,
        wake: UnboundedSender<Wake>,
    ) -> Result<Self, crate::fleet::FleetError> {
        let root = fleet.main_worktree()?;
        let config = with_gate_timeouts(config);
        Ok(Engine {
            fleet,
            config,
            exe,
            root,
            busy: Arc::default(),
            wake,
        })
    }

    /// Runs with `config` from now on (the base branch's committed file or
    /// a `git config sprint.*` override changed while running).
    pub fn set_config(&mut self, config: Config) {
        self.config = with_gate_timeouts(config);
    }

    /// A sender for wake-ups into the orchestrator's loop.
    pub fn wake(&self) -> UnboundedSender<Wake> {
        self.wake.clone()
    }

    pub fn limits(&self) -> Limits {
        Limits {
            developers: self.config.roles.developer.count as usize,
            testers: self.config.roles.tester.count as usize,
            librarians: if self.config.docs.is_empty() {
                0
            } else {
                self.config.roles.librarian.count as usize
            },
            max_attempts: self.config.policy.max_attempts,
            lease_secs: self.config.timeouts.lease.0.as_secs(),
            hung_secs: self.config.timeouts.hung.0.as_secs(),
            breaker_cooldown_secs: self.config.policy.breaker_cooldown.0.as_secs(),
            breaker_threshold: self.config.policy.breaker_threshold,
        }
    }

    fn attempt_policy(&self) -> AttemptPolicy {
        AttemptPolicy {
            max_attempts: self.config.policy.max_attempts,
            backoff_secs: self.config.policy.retry_backoff.0.as_secs(),
        }
    }

    fn profiles(&self) -> Profiles {
        let roles = &self.config.roles;
        Profiles {
            developer: roles.developer.agent.clone(),
            tester: roles.tester.agent.clone(),
            librarian: roles.librarian.agent.clone(),
        }
    }

    /// One pass: read, observe, pay what is owed. Returns when the next
    /// lease runs out (unix seconds), and whether an action failed (then
    /// the caller reconciles again after a backoff: a failure changes no
    /// state, so no event would come to retry it).
    pub fn reconcile(&self) -> Result<(Option<i64>, bool), StateError> {
        // Sessions first, state second: a wrapper records its agent's end
        // before its session closes, so an agent whose session is gone here
        // shows as ended in the state read after — never as a false death.
        let sessions: HashSet<String> = self
            .fleet
            .tmux
            .list_sessions()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let snapshot = self.fleet.store.read(Snapshot::read)?;
        let mut live = HashSet::new();
        let mut activity = HashMap::new();
        for a in &snapshot.agents {
            if liveness::is_running(a) && sessions.contains(&a.session) {
                live.insert(a.id.clone());
                if let Ok(t) = self.fleet.tmux.pane_activity(&a.session) {
                    activity.insert(a.id.clone(), t as i64);
                }
            }
        }
        let busy = self.busy_set();
        let profiles = self.profiles();
        let behind: HashSet<String> = snapshot
            .features
            .iter()
            .filter(|f| {
                !matches!(
                    f.feature.status,
                    FeatureStatus::Done | FeatureStatus::Cancelled
                )
            })
            .filter(|f| crate::sync::behind(&self.fleet.store, &f.feature))
            .map(|f| f.feature.name.clone())
            .collect();
        let world = World {
            snapshot: &snapshot,
            now: clock::now(),
            live: &live,
            activity: &activity,
            busy: &busy,
            limits: self.limits(),
            budget: &self.config.budget,
            profiles: &profiles,
            behind: &behind,
        };
        let mut failed = false;
        for action in stages::owed(&world) {
            tracing::info!(?action, "owed");
            if let Err(e) = self.execute(&snapshot, &action) {
                tracing::warn!(?action, error = %e, "action failed");
                failed = true;
            }
        }
        Ok((self.next_deadline(&snapshot, &activity), failed))
    }

    /// Marks `key` as worked on by a thread of ours; false when it already is.
    fn take_busy(&self, key: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_owned())
    }

    /// The tasks whose gates or merge run on a thread now. A poisoned lock
    /// (a panic on such a thread) still holds a usable set.
    fn busy_set(&self) -> HashSet<String> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// When the next timer-driven look is due: a lease running out, an agent
    /// going quiet for `timeouts.hung`, a backoff ending, a breaker cooling.
    fn next_deadline(&self, snapshot: &Snapshot, activity: &HashMap<String, i64>) -> Option<i64> {
        let limits = self.limits();
        let mut at: Vec<i64> = Vec::new();
        for fs in &snapshot.features {
            for t in &fs.tasks {
                if let (TaskStatus::InProgress, Some(c)) = (t.status, &t.claim) {
                    at.push(c.expires);
                }
                if let Some(r) = t.retry_after {
                    if matches!(
                        t.status,
                        TaskStatus::Todo | TaskStatus::InProgress | TaskStatus::InTests
                    ) {
                        at.push(r);
                    }
                }
            }
        }
        for a in snapshot.agents.iter().filter(|a| liveness::is_running(a)) {
            let claim = liveness::claim_of(snapshot, a);
            at.push(liveness::hung_at(
                a,
                claim,
                activity.get(&a.id).copied(),
                limits.hung_secs,
            ));
        }
        if let Some(meta) = &snapshot.meta {
            for b in meta.breakers.values().filter(|b| b.open_since.is_some()) {
                at.push(b.last_failure + limits.breaker_cooldown_secs as i64);
            }
        }
        let now = clock::now();
        // Deadlines already past were acted on (or wait for an event).
        at.into_iter().filter(|t| *t > now).min()
    }

    fn execute(&self, snapshot: &Snapshot, action: &Action) -> Result<(), EngineError> {
        match action {
            Action::StartDeveloper {
                feature,
                task,
                attempt,
            } => self.start_developer(snapshot, feature, task, *attempt),
            Action::DeveloperDone {
                feature,
                task,
                agent,
            } => {
                let r = task_ref(feature, task);
                let changed = self.developer_changed(snapshot, agent);
                record::developer_done(
                    &self.fleet.store,
                    &r,
                    agent,
                    changed,
                    self.attempt_policy(),
                )?;
                Ok(())
            }
            Action::StartTester {
                feature,
                task,
                attempt,
            } => self.start_tester(snapshot, feature, task, *attempt),
            Action::RunGates {
                feature,
                task,
                stage,
            } => self.run_gates(feature, task, *stage),
            Action::Retry {
                feature,
                task,
                agent,
                cause,
                reason,
            } => self.retry(snapshot, feature, task, agent.as_deref(), *cause, reason),
            Action::RestartTester {
                feature,
                task,
                agent,
                cause,
            } => {
                let r = task_ref(feature, task);
                record::restart_tester(
                    &self.fleet.store,
                    &r,
                    agent,
                    *cause,
                    self.attempt_policy(),
                )?;
                Ok(())
            }
            Action::Block {
                feature,
                task,
                reason,
            } => {
                record::block(&self.fleet.store, &task_ref(feature, task), reason)?;
                Ok(())
            }
            Action::Unblock { feature, task } => {
                record::unblock(&self.fleet.store, &task_ref(feature, task))?;
                Ok(())
            }
            Action::OpenBreaker { profile } => {
                record::open_breaker(&self.fleet.store, profile, self.limits().breaker_threshold)?;
                Ok(())
            }
            Action::RecordBudgets { stops } => {
                record::record_budgets(&self.fleet.store, stops)?;
                Ok(())
            }
            Action::Merge { feature, task } => self.merge(snapshot, feature, task),
            Action::CloseConvoy { feature, convoy } => self.close_convoy(feature, convoy),
            Action::CloseFeature { feature } => self.close_feature(snapshot, feature),
            Action::StartLibrarian {
                feature,
                convoy,
                attempt,
            } => self.start_librarian(snapshot, feature, convoy, *attempt),
            Action::MergeDocs { feature, convoy } => self.merge_docs(snapshot, feature, convoy),
            Action::SyncBase { feature } => {
                self.sync_base(feature);
                Ok(())
            }
            Action::MarkDead {
                agent,
                cause,
                reason,
            } => {
                if let Some(a) = stages::agent(snapshot, agent) {
                    // A hung one still has a session: stop it (its wrapper
                    // saves its work) before the record says it is dead.
                    self.stop_agent(a, reason);
                }
                record::mark_dead(&self.fleet.store, agent, *cause, reason)?;
                Ok(())
            }
        }
    }

    fn task_worktree(&self, feature: &str, task: &str) -> PathBuf {
        self.fleet.worktree_path(&format!("{feature}.{task}"))
    }

    /// The task's worktree on `sprint/<feature>/<task>`, made from the
    /// integration branch the first time and kept across attempts.
    fn ensure_worktree(
        &self,
        feature: &str,
        task: &str,
        integration: &str,
    ) -> Result<PathBuf, EngineError> {
        let path = self.task_worktree(feature, task);
        if path.join(".git").exists() {
            return Ok(path);
        }
        let branch = task_branch(feature, task);
        let git = &self.fleet.git;
        if path.exists() {
            // Half made when an orchestrator died: the branch keeps any
            // commits; the directory holds nothing git tracks.
            let _ = std::fs::remove_dir_all(&path);
        }
        let _ = git.command(["worktree", "prune"]).output();
        if !git.branch_exists(integration)? {
            let base = crate::ingest::base_branch(self.fleet.store.repo())
                .unwrap_or_else(|| "HEAD".into());
            crate::ingest::ensure_branch(self.fleet.store.repo(), integration, &base)?;
        }
        if git.branch_exists(&branch)? {
            let out = git
                .command(["worktree", "add", "--quiet"])
                .arg(&path)
                .arg(&branch)
                .output()
                .map_err(|e| EngineError::Other(format!("running git worktree add: {e}")))?;
            if !out.status.success() {
                return Err(EngineError::Other(format!(
                    "git worktree add {} {branch}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        } else {
            git.add_worktree(&path, &branch, integration)?;
        }
        let setup = crate::worker::worktree::setup(
            &self.root,
            &path,
            &self.config.setup.copy,
            &self.config.setup.commands,
        );
        match setup {
            Ok(report) => {
                for (file, why) in &report.skipped {
                    tracing::warn!(worktree = %path.display(), file = %file.display(), "setup file not copied: {why}");
                }
                Ok(path)
            }
            Err(e) => {
                // No half-made worktree: the next attempt makes it again and
                // runs setup again; the branch keeps any commits.
                let _ = git.remove_worktree(&path, true);
                let _ = std::fs::remove_dir_all(&path);
                Err(e.into())
            }
        }
    }

    fn prompt_vars(
        &self,
        feature: &str,
        t: &Task,
        integration: &str,
    ) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("feature", feature.to_owned()),
            ("task", t.id.clone()),
            ("title", t.title.clone()),
            ("description", t.description.clone()),
            (
                "paths",
                if t.paths.is_empty() {
                    "(none named)".into()
                } else {
                    t.paths.join(", ")
                },
            ),
            ("branch", task_branch(feature, &t.id)),
            ("integration", integration.to_owned()),
            ("feedback", prompt::feedback(&t.feedback)),
        ])
    }

    fn integration(&self, snapshot: &Snapshot, feature: &str) -> String {
        snapshot
            .feature(feature)
            .and_then(|f| f.feature.integration_branch.clone())
            .unwrap_or_else(|| stages::integration_branch(feature))
    }

    fn start_developer(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        _attempt: u32,
    ) -> Result<(), EngineError> {
        let role = &self.config.roles.developer;
        let profile = self.config.agent(&role.agent).map_err(EngineError::Other)?;
        let integration = self.integration(snapshot, feature);
        let r = task_ref(feature, task);
        let worktree = match self.ensure_worktree(feature, task, &integration) {
            Ok(w) => w,
            Err(e) => {
                // A worktree that cannot be prepared is a failed attempt
                // (cause `setup`), so a broken setup cannot loop for ever.
                self.setup_failed(&r, &e.to_string())?;
                return Err(e);
            }
        };
        let base_commit = self.branch_tip(&task_branch(feature, task));
        let lease = self.limits().lease_secs;
        let limits = self.limits();
        let agent = self.fleet.store.transact(&orchestrator(), |txn| {
            let Some(t) = txn.task(feature, task)? else {
                return Ok(None);
            };
            // Still waiting for a developer, exactly as the Manager saw it?
            let waiting = t.status == TaskStatus::Todo
                || (t.status == TaskStatus::InProgress && t.claim.is_none());
            if !waiting {
                return Ok(None);
            }
            // Each run gets an id never used before, whatever `retry` did
            // to the attempt count.
            let mut run = t.runs.max(t.attempts) + 1;
            while txn
                .agent(&agent_id(feature, task, "developer", run))?
                .is_some()
            {
                run += 1;
            }
            let id = agent_id(feature, task, "developer", run);
            if !self.breaker_admits(txn, &role.agent, &id, &limits)? {
                return Ok(None);
            }
            let mut t = ops::claim(txn, &r, &id, lease)?;
            t.runs = run;
            t.retry_after = None;
            t.branch = Some(task_branch(feature, task));
            t.worktree = Some(worktree.display().to_string());
            txn.put_task(feature, &t)?;
            if let Some(mut f) = txn.feature(feature)? {
                if f.status == FeatureStatus::Planned {
                    f.status = FeatureStatus::Active;
                    txn.put_feature(&f)?;
                }
            }
            let vars = self.prompt_vars(feature, &t, &integration);
            let mut agent = self.agent_record(
                &id,
                "developer",
                &r,
                &worktree,
                &integration,
                &role.agent,
                &profile,
                &t,
                prompt::render(&prompt::template(&self.root, "developer"), &vars),
            );
            agent.base_commit = base_commit.clone();
            txn.put_agent(&agent)?;
            Ok(Some(agent))
        })?;
        let Some(agent) = agent.value else {
            return Ok(());
        };
        if let Err(e) = self.launch(&agent) {
            let why = format!("could not start developer {}: {e}", agent.id);
            record::lost_attempt(
                &self.fleet.store,
                &r,
                Some(&agent.id),
                Cause::Setup,
                &why,
                self.attempt_policy(),
            )?;
            return Err(e);
        }
        Ok(())
    }

    /// Counts a worktree that could not be prepared as a failed attempt.
    fn setup_failed(&self, r: &TaskRef, error: &str) -> Result<(), EngineError> {
        let policy = self.attempt_policy();
        self.fleet.store.transact(&orchestrator(), |txn| {
            let Some(mut t) = txn.task(&r.feature, &r.id)? else {
                return Ok(());
            };
            let waiting = t.status == TaskStatus::Todo
                || (t.status == TaskStatus::InProgress && t.claim.is_none());
            if !waiting {
                return Ok(());
            }
            t.attempts += 1;
            txn.put_task(&r.feature, &t)?;
            let note = format!("preparing the worktree failed: {error}");
            record::end_attempt(
                txn,
                r,
                None,
                Cause::Setup,
                &note,
                None,
                policy,
                TaskStatus::Todo,
            )
        })?;
        Ok(())
    }

    /// Whether the breaker of `profile` lets agent `id` start; a probe run
    /// is recorded as such.
    fn breaker_admits(
        &self,
        txn: &mut crate::state::Txn<'_>,
        profile: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<bool, StateError> {
        let Some(mut meta) = txn.meta()? else {
            return Ok(true);
        };
        let snapshot_agents = Snapshot {
            meta: None,
            features: Vec::new(),
            agents: match meta.breakers.get(profile).and_then(|b| b.probe.clone()) {
                Some(p) => txn.agent(&p)?.into_iter().collect(),
                None => Vec::new(),
            },
            quarantined: Vec::new(),
        };
        match stages::breaker_gate(
            meta.breakers.get(profile),
            &snapshot_agents,
            limits,
            clock::now(),
        ) {
            BreakerGate::Closed => Ok(true),
            BreakerGate::Open => Ok(false),
            BreakerGate::Probe => {
                if let Some(b) = meta.breakers.get_mut(profile) {
                    b.probe = Some(id.to_owned());
                    b.half_open = false;
                }
                txn.put_meta(&meta)?;
                txn.record(Transition {
                    task: format!("breaker/{profile}"),
                    from: "open".into(),
                    to: "half_open".into(),
                    reason: Some(format!("{id} probes whether the agent works again")),
                    policy: Some("circuit breaker: one probe run".into()),
                });
                Ok(true)
            }
        }
    }

    fn start_tester(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        attempt: u32,
    ) -> Result<(), EngineError> {
        let role = &self.config.roles.tester;
        let profile = self.config.agent(&role.agent).map_err(EngineError::Other)?;
        let integration = self.integration(snapshot, feature);
        let worktree = self.ensure_worktree(feature, task, &integration)?;
        let r = task_ref(feature, task);
        let limits = self.limits();
        let agent = self.fleet.store.transact(&orchestrator(), |txn| {
            let Some(mut t) = txn.task(feature, task)? else {
                return Ok(None);
            };
            if t.status != TaskStatus::InTests {
                return Ok(None);
            }
            let id = match &t.tester {
                // Named before the orchestrator stopped, never started.
                Some(id) if txn.agent(id)?.is_none() => id.clone(),
                Some(_) => return Ok(None),
                None => {
                    let base = agent_id(feature, task, "tester", t.runs.max(attempt).max(1));
                    let mut id = base.clone();
                    let mut k = 1;
                    while txn.agent(&id)?.is_some() {
                        k += 1;
                        id = format!("{base}-{k}");
                    }
                    id
                }
            };
            if !self.breaker_admits(txn, &role.agent, &id, &limits)? {
                return Ok(None);
            }
            t.tester = Some(id.clone());
            t.retry_after = None;
            txn.put_task(feature, &t)?;
            let vars = self.prompt_vars(feature, &t, &integration);
            let agent = self.agent_record(
                &id,
                "tester",
                &r,
                &worktree,
                &integration,
                &role.agent,
                &profile,
                &t,
                prompt::render(&prompt::template(&self.root, "tester"), &vars),
            );
            txn.put_agent(&agent)?;
            txn.subject(format!("{r}: tester {id} starting"));
            Ok(Some(agent))
        })?;
        let Some(agent) = agent.value else {
            return Ok(());
        };
        self.launch(&agent)
    }

    /// Starts the agent's tmux session; if that fails, the record says the
    /// agent is dead, so nothing waits for it.
    fn launch(&self, agent: &Agent) -> Result<(), EngineError> {
        let Err(e) = self.fleet.start_session(&self.exe, agent) else {
            return Ok(());
        };
        record::mark_dead(
            &self.fleet.store,
            &agent.id,
            Cause::Setup,
            &format!("its tmux session could not start: {e}"),
        )?;
        Err(e.into())
    }

    #[allow(clippy::too_many_arguments)]
    fn agent_record(
        &self,
        id: &str,
        role: &str,
        r: &TaskRef,
        worktree: &Path,
        integration: &str,
        profile_name: &str,
        profile: &crate::worker::profile::AgentProfile,
        t: &Task,
        prompt: String,
    ) -> Agent {
        Agent {
            id: id.to_owned(),
            role: role.to_owned(),
            state: AgentState::Starting,
            task: Some(r.to_string()),
            batch: None,
            profile: profile_name.to_owned(),
            session: session_name(id),
            pid: None,
            worktree: worktree.display().to_string(),
            branch: task_branch(&r.feature, &r.id),
            base: integration.to_owned(),
            prompt,
            started: clock::now(),
            heartbeat: 0,
            ended: None,
            exit_status: None,
            wip_commit: None,
            runner_pid: None,
            base_commit: None,
            end_commit: None,
            launch: Some(profile.clone()),
            model: None,
            paths: t.paths.clone(),
            signal: None,
            followups: Vec::new(),
            usage: None,
            cause: None,
            error: None,
        }
    }

    /// Runs a gate stage on a thread; the verdict is a state commit, which
    /// wakes the orchestrator again.
    fn run_gates(&self, feature: &str, task: &str, stage: GateStage) -> Result<(), EngineError> {
        let key = format!("{feature}/{task}");
        if !self.take_busy(&key) {
            return Ok(());
        }
        let gates: Vec<Gate> = match stage {
            GateStage::Review => self.config.gates.review.clone(),
            GateStage::Test => self.config.gates.test.clone(),
        };
        let worktree = self.task_worktree(feature, task);
        let store_dir = self.root.clone();
        let policy = self.attempt_policy();
        let (feature, task) = (feature.to_owned(), task.to_owned());
        let busy = self.busy.clone();
        let wake = self.wake.clone();
        std::thread::spawn(move || {
            let outcome = gates::run_stage(
                &gates,
                &worktree,
                &[("SPRINT_TASK".to_owned(), key.clone())],
            );
            let result = crate::state::Store::discover(&store_dir).and_then(|store| {
                record::record_verdict(&store, &feature, &task, stage, &outcome, policy)
            });
            if let Err(e) = result {
                tracing::warn!(task = %key, error = %e, "recording the gate verdict failed");
            }
            busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            let _ = wake.send(Wake::GatesDone);
        });
        Ok(())
    }

    /// Stops a running agent's session and waits for its wrapper to save
    /// the work; if the wrapper died too (kill -9), saves it here.
    fn stop_agent(&self, a: &Agent, reason: &str) {
        if self.fleet.tmux.kill_session(&a.session).unwrap_or(false) {
            if let Some(pid) = a.runner_pid {
                crate::fleet::wait_for_exit(pid, std::time::Duration::from_secs(10));
            }
        }
        let wt = crate::worker::worktree::Git::new(&a.worktree);
        if Path::new(&a.worktree).exists() && wt.is_dirty().unwrap_or(false) {
            let _ = self.fleet.save_wip(
                Path::new(&a.worktree),
                &a.id,
                &format!("WIP: {} ({reason})", a.id),
            );
        }
    }

    /// A lost attempt: stop the agent (its work is kept), then retry the
    /// task after a backoff, or fail it past the attempt limit.
    fn retry(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        agent: Option<&str>,
        cause: Cause,
        reason: &str,
    ) -> Result<(), EngineError> {
        if let Some(a) = agent.and_then(|id| stages::agent(snapshot, id)) {
            if liveness::is_running(a) {
                self.stop_agent(a, reason);
            }
        }
        let r = task_ref(feature, task);
        record::lost_attempt(
            &self.fleet.store,
            &r,
            agent,
            cause,
            reason,
            self.attempt_policy(),
        )?;
        Ok(())
    }

    /// Whether a developer left a commit beyond where its run started (the
    /// wrapper's WIP commit counts). Unknown start: assume it did.
    fn developer_changed(&self, snapshot: &Snapshot, agent: &str) -> bool {
        let Some(a) = stages::agent(snapshot, agent) else {
            return true;
        };
        let Some(start) = a.base_commit.as_deref() else {
            return true;
        };
        match self.branch_tip(&a.branch) {
            Some(tip) => tip != start,
            None => true,
        }
    }

    /// The commit `branch` points at, read in-process.
    fn branch_tip(&self, branch: &str) -> Option<String> {
        self.fleet.branch_tip(branch).map(|id| id.to_string())
    }
}

/// `timeouts.gate` bounds every gate that names no timeout of its own.
fn with_gate_timeouts(mut config: Config) -> Config {
    let default = config.timeouts.gate.to_string();
    let gates = &mut config.gates;
    for g in gates
        .review
        .iter_mut()
        .chain(gates.test.iter_mut())
        .chain(gates.security.iter_mut())
        .chain(gates.post_merge.iter_mut())
    {
        g.timeout.get_or_insert_with(|| default.clone());
    }
    config
}

fn task_ref(feature: &str, task: &str) -> TaskRef {
    TaskRef {
        feature: feature.to_owned(),
        id: task.to_owned(),
    }
}

impl Engine {
    fn close_convoy(&self, feature: &str, convoy: &str) -> Result<(), EngineError> {
        self.fleet
            .store
            .transact(&Actor::named("refinery"), |txn| {
                let Some(mut c) = txn.convoy(feature, convoy)? else {
                    return Ok(());
                };
                if c.status == ConvoyStatus::Done {
                    return Ok(());
                }
                let from = c.status;
                c.status = ConvoyStatus::Done;
                txn.put_convoy(feature, &c)?;
                txn.record(Transition {
                    task: format!("{feature}/{convoy}"),
                    from: from.to_string(),
                    to: c.status.to_string(),
                    reason: Some("every task merged".into()),
                    policy: None,
                });
                Ok(())
            })?;
        Ok(())
    }

    /// Marks the feature done, deletes the branches of its merged tasks, and
    /// with `merge.auto` merges it into its base branch.
    fn close_feature(&self, snapshot: &Snapshot, feature: &str) -> Result<(), EngineError> {
        let closed = self
            .fleet
            .store
            .transact(&Actor::named("refinery"), |txn| {
                let Some(mut f) = txn.feature(feature)? else {
                    return Ok(None);
                };
                if f.status == FeatureStatus::Done {
                    return Ok(None);
                }
                let from = f.status;
                f.status = FeatureStatus::Done;
                txn.put_feature(&f)?;
                let branch = f.integration_branch.clone().unwrap_or_default();
                txn.record(Transition {
                    task: feature.to_owned(),
                    from: from.to_string(),
                    to: f.status.to_string(),
                    reason: Some(format!("every convoy done; {branch} is ready to merge")),
                    policy: None,
                });
                Ok(Some(f))
            })?;
        let Some(f) = closed.value else {
            return Ok(());
        };
        // The agents' logs were kept for their failures; the work is merged.
        if let Err(e) = self.fleet.remove_feature_logs(feature) {
            tracing::warn!(feature, error = %e, "removing the agents' logs failed");
        }
        let integration = self.integration(snapshot, feature);
        // Their work is in the integration branch; a branch with anything
        // more is kept.
        if let Some(fs) = snapshot.feature(feature) {
            let names = fs
                .tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Done)
                .map(|t| t.id.clone())
                .chain(fs.convoys.iter().map(|c| librarian::docs_task(&c.id)));
            for name in names {
                let _ = self.fleet.git.delete_branch_if_merged(
                    &task_branch(feature, &name),
                    &integration,
                    false,
                );
            }
        }
        if !self.config.merge.auto {
            return Ok(());
        }
        let base = f
            .base_branch
            .clone()
            .or_else(|| crate::ingest::base_branch(self.fleet.store.repo()))
            .unwrap_or_else(|| "main".into());
        let verdict = crate::refinery::merge_into_base(
            &self.fleet.common_dir,
            &self.root,
            &integration,
            &base,
            self.config.merge.mode,
            &self.config.gates.post_merge,
        );
        use crate::refinery::BaseVerdict;
        let note = match verdict {
            Ok(BaseVerdict::Merged { commit }) => {
                format!("merged into {base} at {}", &commit[..commit.len().min(12)])
            }
            Ok(BaseVerdict::AlreadyMerged) => format!("already in {base}"),
            Ok(BaseVerdict::NotFastForward) => format!(
                "not merged: {base} moved on; merge {integration} by hand or use merge.mode: merge"
            ),
            Ok(BaseVerdict::Dirty { worktree }) => format!(
                "not merged: {base} is checked out with uncommitted changes in {}",
                worktree.display()
            ),
            Ok(BaseVerdict::Conflict { files }) => {
                format!("not merged: conflicts with {base} in {}", files.join(", "))
            }
            Ok(BaseVerdict::GatesFailed { outcome }) => format!(
                "not merged: the post-merge gates failed on the merge into {base}:\n{}",
                outcome.feedback()
            ),
            Err(e) => format!("not merged: {e}"),
        };
        self.fleet
            .store
            .transact(&Actor::named("refinery"), |txn| {
                let Some(mut f) = txn.feature(feature)? else {
                    return Ok(());
                };
                f.note = Some(note.clone());
                txn.put_feature(&f)?;
                txn.subject(format!(
                    "{feature}: {}",
                    note.lines().next().unwrap_or_default()
                ));
                Ok(())
            })?;
        Ok(())
    }

    /// Merges a task on a thread; the verdict is a state commit.
    fn merge(&self, snapshot: &Snapshot, feature: &str, task: &str) -> Result<(), EngineError> {
        let title = snapshot
            .feature(feature)
            .and_then(|f| f.tasks.iter().find(|t| t.id == task))
            .map(|t| t.title.clone())
            .unwrap_or_default();
        let integration = self.integration(snapshot, feature);
        let security = self.config.gates.security.clone();
        let policy = self.attempt_policy();
        let (f, t, i) = (feature.to_owned(), task.to_owned(), integration.clone());
        self.spawn_merge(
            feature,
            task,
            title,
            integration,
            security,
            move |store, v| record::record_merge(store, &f, &t, &i, v, policy),
        );
        Ok(())
    }

    /// Merges a convoy's docs branch; the convoy is done once they are in.
    fn merge_docs(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        convoy: &str,
    ) -> Result<(), EngineError> {
        let integration = self.integration(snapshot, feature);
        let (f, c, i) = (feature.to_owned(), convoy.to_owned(), integration.clone());
        let max = self.limits().max_attempts;
        self.spawn_merge(
            feature,
            &librarian::docs_task(convoy),
            format!("docs for convoy {convoy}"),
            integration,
            Vec::new(),
            move |store, v| record::record_docs(store, &f, &c, &i, v, max),
        );
        Ok(())
    }

    /// Merges the base's new commits into the feature's integration branch
    /// on a thread (the Refinery's lock keeps it apart from task merges);
    /// the result is a state commit, which wakes the loop.
    fn sync_base(&self, feature: &str) {
        let key = format!("{feature}/base");
        if !self.take_busy(&key) {
            return;
        }
        let (common, root) = (self.fleet.common_dir.clone(), self.root.clone());
        let post_merge = self.config.gates.post_merge.clone();
        let feature = feature.to_owned();
        let (busy, wake) = (self.busy.clone(), self.wake.clone());
        std::thread::spawn(move || {
            let result = crate::state::Store::discover(&root)
                .map_err(crate::sync::SyncError::from)
                .and_then(|store| {
                    crate::sync::sync_feature(&store, &common, &root, &feature, &post_merge)
                });
            busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            match result {
                Ok(synced) => {
                    tracing::info!(%feature, ?synced, "base synced");
                    let _ = wake.send(Wake::GatesDone);
                }
                // Nothing changed, so no wake-up: the next event tries again
                // (a wake here would retry in a tight loop).
                Err(e) => tracing::warn!(%feature, error = %e, "syncing the base failed"),
            }
        });
    }

    /// Runs one Refinery merge of `sprint/<feature>/<task>` on a thread (the
    /// Refinery's lock makes merges serial across processes), then records
    /// the verdict and wakes the loop.
    fn spawn_merge(
        &self,
        feature: &str,
        task: &str,
        title: String,
        integration: String,
        security: Vec<Gate>,
        record: impl FnOnce(&crate::state::Store, &Verdict) -> Result<(), StateError> + Send + 'static,
    ) {
        let key = format!("{feature}/{task}");
        if !self.take_busy(&key) {
            return;
        }
        let (common, root) = (self.fleet.common_dir.clone(), self.root.clone());
        let task_wt = self.task_worktree(feature, task);
        let post_merge = self.config.gates.post_merge.clone();
        let branch = task_branch(feature, task);
        let busy = self.busy.clone();
        let wake = self.wake.clone();
        std::thread::spawn(move || {
            let verdict = crate::refinery::merge(&crate::refinery::Merge {
                common_dir: &common,
                root: &root,
                task: &key,
                title: &title,
                task_branch: &branch,
                task_worktree: &task_wt,
                integration: &integration,
                security: &security,
                post_merge: &post_merge,
            });
            let recorded = verdict.map_err(|e| e.to_string()).and_then(|v| {
                crate::state::Store::discover(&root)
                    .and_then(|store| record(&store, &v))
                    .map_err(|e| e.to_string())?;
                if matches!(v, Verdict::Merged { .. } | Verdict::AlreadyMerged { .. }) {
                    // The work is in; its worktree goes, its branch stays.
                    let _ =
                        crate::worker::worktree::Git::new(&root).remove_worktree(&task_wt, true);
                }
                Ok(())
            });
            if let Err(e) = recorded {
                tracing::warn!(task = %key, error = %e, "merge failed");
            }
            busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&key);
            let _ = wake.send(Wake::GatesDone);
        });
    }

    fn start_librarian(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        convoy: &str,
        attempt: u32,
    ) -> Result<(), EngineError> {
        let role = &self.config.roles.librarian;
        let profile = self.config.agent(&role.agent).map_err(EngineError::Other)?;
        let integration = self.integration(snapshot, feature);
        let docs = librarian::docs_task(convoy);
        let worktree = self.ensure_worktree(feature, &docs, &integration)?;
        let id = agent_id(feature, &docs, "librarian", attempt);
        let fs = snapshot.feature(feature);
        let Some(c) = fs.and_then(|f| f.convoys.iter().find(|c| c.id == convoy)) else {
            return Ok(());
        };
        let tasks: Vec<String> = c
            .tasks
            .iter()
            .filter_map(|id| fs?.tasks.iter().find(|t| &t.id == id))
            .map(|t| format!("- {}: {}", t.id, t.title))
            .collect();
        let mut feedback = Vec::new();
        feedback.extend(c.reason.clone());
        // What the convoy changed, as a summary for the docs.
        let base = snapshot
            .feature(feature)
            .and_then(|f| f.feature.base_branch.clone())
            .unwrap_or_else(|| "HEAD".into());
        let diffstat = self
            .fleet
            .git
            .command([
                "diff",
                "--stat=100",
                &format!("{base}...{integration}"),
                "--",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let vars = BTreeMap::from([
            ("feature", feature.to_owned()),
            ("convoy", convoy.to_owned()),
            ("integration", integration.clone()),
            ("tasks", tasks.join("\n")),
            ("docs", self.config.docs.join(", ")),
            ("diffstat", diffstat),
            ("feedback", prompt::feedback(&feedback)),
        ]);
        let prompt_text = prompt::render(&prompt::template(&self.root, "librarian"), &vars);
        let r = TaskRef {
            feature: feature.to_owned(),
            id: docs.clone(),
        };
        let agent = self.fleet.store.transact(&orchestrator(), |txn| {
            let Some(mut c) = txn.convoy(feature, convoy)? else {
                return Ok(None);
            };
            if c.status == ConvoyStatus::Done || txn.agent(&id)?.is_some() {
                return Ok(None);
            }
            if !self.breaker_admits(txn, &role.agent, &id, &self.limits())? {
                return Ok(None);
            }
            let from = c.status;
            c.status = ConvoyStatus::InDocs;
            c.attempts = attempt;
            txn.put_convoy(feature, &c)?;
            let mut a = self.agent_record(
                &id,
                "librarian",
                &r,
                &worktree,
                &integration,
                &role.agent,
                &profile,
                &Task::new(&docs, "", ""),
                prompt_text.clone(),
            );
            a.paths = self.config.docs.clone();
            txn.put_agent(&a)?;
            txn.record(Transition {
                task: format!("{feature}/{convoy}"),
                from: from.to_string(),
                to: c.status.to_string(),
                reason: Some(format!("librarian {id} updates the docs")),
                policy: None,
            });
            Ok(Some(a))
        })?;
        let Some(agent) = agent.value else {
            return Ok(());
        };
        self.launch(&agent)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    #[error(transparent)]
    Worktree(#[from] crate::worker::worktree::WorktreeError),
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
    #[error("{0}")]
    Other(String),
}
