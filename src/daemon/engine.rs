//! Carries out what the stages say is owed.
//!
//! One reconcile reads the whole state, looks at tmux (which sessions live,
//! when each pane last printed), asks [`crate::stages::owed`] for the debts
//! and pays them. Every change goes through a state transaction in
//! [`super::record`] that checks the task is still where the stage saw it,
//! so a stale action is a no-op, and a crash at any point leaves a state the
//! next reconcile can finish. Starting agents is [`super::launch`]'s job;
//! what runs beside the loop (gates, merges, syncs) is [`super::jobs`]'.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedSender;

use super::record::{self, AttemptPolicy};
use super::watch::Wake;
use crate::clock;
use crate::config::Config;
use crate::fleet::Fleet;
use crate::gates::Confinement;
use crate::stages::{self, Action, Limits, Profiles, World};
use crate::state::{liveness, FeatureStatus, Snapshot, StateError, TaskRef, TaskStatus};

pub(crate) struct Engine {
    pub(crate) fleet: Fleet,
    pub(crate) config: Config,
    /// The policy (`.git-sprint/policy.yaml` layers) diffs are judged by.
    pub(crate) policy: Arc<crate::policy::Policy>,
    pub(super) exe: PathBuf,
    pub(super) root: PathBuf,
    /// What our job threads work on, and what waits after a failure.
    pub(super) busy: super::busy::Busy,
    pub(super) wake: UnboundedSender<Wake>,
    /// [`Engine::behind`]'s answers by feature, base tip, integration tip
    /// and recorded conflict.
    behind_cache: Mutex<HashMap<BehindKey, bool>>,
    /// This machine, when clones share the sprint through a remote.
    pub(super) here: Option<super::share::Machine>,
    /// Whether the last reconcile found this machine leading (always, for
    /// a sprint of one clone).
    leading: std::sync::atomic::AtomicBool,
    /// How this orchestrator's gates run: in its ledger, confined as the
    /// configuration says.
    pub(super) gates: crate::gates::Runner,
}

type BehindKey = (
    String,
    Option<gix::ObjectId>,
    Option<gix::ObjectId>,
    Option<String>,
);

impl Engine {
    pub(crate) fn new(
        fleet: Fleet,
        config: Config,
        exe: PathBuf,
        wake: UnboundedSender<Wake>,
        ledger: crate::worker::reap::Ledger,
    ) -> Result<Self, crate::fleet::FleetError> {
        let root = fleet.main_worktree()?;
        let config = with_gate_timeouts(config);
        let gates = crate::gates::Runner::new(
            Some(ledger),
            Confinement::of_sprint(&fleet.common_dir, &root, &config.sandbox),
        );
        let here = fleet
            .store
            .remote_name()
            .map(|remote| machine_of(&config, remote));
        let busy = super::busy::Busy::new(wake.clone(), &fleet.common_dir);
        Ok(Engine {
            fleet,
            config,
            policy: Arc::default(),
            exe,
            root,
            busy,
            wake,
            behind_cache: Mutex::default(),
            here,
            leading: std::sync::atomic::AtomicBool::new(true),
            gates,
        })
    }

    /// Runs with `config` from now on (the base branch's committed file or
    /// a `git config sprint.*` override changed while running).
    pub(crate) fn set_config(&mut self, config: Config) {
        self.gates.confine(Confinement::of_sprint(
            &self.fleet.common_dir,
            &self.root,
            &config.sandbox,
        ));
        if let Some(here) = &self.here {
            self.here = Some(machine_of(&config, &here.remote));
        }
        self.config = with_gate_timeouts(config);
    }

    /// This machine's name when the sprint is shared through a remote.
    pub(crate) fn machine(&self) -> Option<&str> {
        self.here.as_ref().map(|h| h.name.as_str())
    }

    /// Whether this orchestrator runs the single-writer work: always for a
    /// sprint of one clone, else while it holds the leader lease (as the
    /// last reconcile found).
    pub(crate) fn leads(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Judges diffs by `policy` from now on.
    pub(crate) fn set_policy(&mut self, policy: crate::policy::Policy) {
        self.policy = Arc::new(policy);
    }

    /// A sender for wake-ups into the orchestrator's loop.
    pub(crate) fn wake(&self) -> UnboundedSender<Wake> {
        self.wake.clone()
    }

    pub(crate) fn limits(&self) -> Limits {
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

    pub(super) fn attempt_policy(&self) -> AttemptPolicy {
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
            reviewers: self
                .config
                .gates
                .review
                .iter()
                .filter(|g| g.kind == crate::gates::GateKind::Agent)
                .map(|g| crate::stages::ReviewerGate {
                    gate: g.name.clone(),
                    profile: g
                        .agent
                        .clone()
                        .unwrap_or_else(|| roles.developer.agent.clone()),
                    timeout_secs: g.timeout().map_or(600, |d| d.as_secs()),
                })
                .collect(),
        }
    }

    /// One pass: read, observe, pay what is owed. Returns when the next
    /// lease runs out (unix seconds), and whether an action failed or tmux
    /// could not be asked (then the caller reconciles again after a
    /// backoff: a failure changes no state, so no event would come to retry
    /// it).
    pub(crate) fn reconcile(&self) -> Result<(Option<i64>, bool), StateError> {
        // Sessions first, state second: a wrapper records its agent's end
        // before its session closes, so an agent whose session is gone here
        // shows as ended in the state read after — never as a false death.
        // One tmux call for every session and its last activity. A call
        // that failed says nothing about which sessions live: this pass
        // takes every running agent for alive and active (no false death),
        // and the loop looks again after a backoff.
        let listed: Option<HashMap<String, Option<u64>>> = match self
            .fleet
            .tmux
            .sessions_with_activity()
        {
            Ok(list) => Some(list.into_iter().collect()),
            Err(e) => {
                tracing::warn!(error = %e, "listing tmux sessions failed: no agent is judged dead or hung until it works");
                None
            }
        };
        let none = HashMap::new();
        let sessions = listed.as_ref().unwrap_or(&none);
        // With a state remote, what other machines write arrives through
        // the follower (daemon/follow.rs), whose fetch moves the local ref
        // and wakes this loop: no fetch here, on every reconcile. Writes
        // are compare-and-swap on the remote, so acting on a copy a moment
        // old never loses or doubles one.
        let snapshot = self.fleet.store.read(Snapshot::read)?;
        record::archive_finished(&self.fleet.store, &snapshot);
        let machines = self.machines(&snapshot);
        self.leading.store(
            machines.as_ref().is_none_or(|m| m.leader),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.stop_orphans(&snapshot, sessions);
        let now = clock::now();
        let mut live = HashSet::new();
        let mut activity = HashMap::new();
        for a in &snapshot.agents {
            if self.elsewhere(a) {
                // Its own machine sees its session and judges it; here it
                // lives for as long as that machine beats.
                let lost = machines
                    .as_ref()
                    .zip(a.machine.as_ref())
                    .is_some_and(|(m, name)| m.lost.contains(name));
                if liveness::is_running(a) && !lost {
                    live.insert(a.id.clone());
                    activity.insert(a.id.clone(), now);
                }
                continue;
            }
            let seen = match &listed {
                Some(sessions) => sessions.get(&a.session).map(|t| t.map(|t| t as i64)),
                None => Some(Some(now)),
            };
            if let Some(seen) = seen.filter(|_| liveness::is_running(a)) {
                live.insert(a.id.clone());
                if let Some(t) = seen {
                    activity.insert(a.id.clone(), t);
                }
            }
        }
        let busy = self.busy.keys();
        let profiles = self.profiles();
        let routing = crate::router::Routing::from_config(&self.config);
        let behind: HashSet<String> = snapshot
            .features
            .iter()
            .filter(|f| {
                !matches!(
                    f.feature.status,
                    FeatureStatus::Done | FeatureStatus::Cancelled
                )
            })
            .filter(|f| self.behind(&f.feature))
            .map(|f| f.feature.name.clone())
            .collect();
        let world = World {
            snapshot: &snapshot,
            now,
            live: &live,
            activity: &activity,
            busy: &busy,
            limits: self.machine_limits(&snapshot, self.limits()),
            budget: &self.config.budget,
            profiles: &profiles,
            behind: &behind,
            routing: &routing,
        };
        let mut failed = false;
        for action in stages::owed(&world) {
            let action = match &machines {
                Some(m) => match self.for_this_machine(&snapshot, m, action) {
                    Some(a) => a,
                    None => continue,
                },
                None => action,
            };
            tracing::info!(?action, "owed");
            if let Err(e) = self.execute(&snapshot, &action) {
                tracing::warn!(?action, error = %e, "action failed");
                failed = true;
            }
        }
        let next = self.next_deadline(&snapshot, &activity);
        let next_loss = machines.and_then(|m| m.next_loss);
        let next = match (next, next_loss) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok((next, failed || listed.is_none()))
    }

    /// Whether `feature`'s base has commits its integration branch lacks,
    /// remembered by the two tips (and the recorded conflict), so a
    /// reconcile walks history only when one of them moved.
    fn behind(&self, feature: &crate::state::Feature) -> bool {
        let (base, integration) = crate::sync::tips(self.fleet.store.repo(), feature);
        let key = (
            feature.name.clone(),
            base,
            integration,
            feature.base_conflict.as_ref().map(|c| c.base_tip.clone()),
        );
        // The lock only guards a cache: a poisoned one holds good entries.
        let mut cache = self.behind_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = cache.get(&key) {
            return *known;
        }
        let behind = crate::sync::behind(&self.fleet.store, feature);
        cache.retain(|k, _| k.0 != feature.name);
        cache.insert(key, behind);
        behind
    }

    /// When the next timer-driven look is due: a lease running out, an agent
    /// going quiet for `timeouts.hung`, a backoff ending (a task's or a
    /// failed job's), a breaker cooling.
    fn next_deadline(&self, snapshot: &Snapshot, activity: &HashMap<String, i64>) -> Option<i64> {
        let limits = self.limits();
        let reviewers = self.profiles().reviewers;
        let mut at: Vec<i64> = self.busy.next_retry().into_iter().collect();
        for fs in &snapshot.features {
            for t in &fs.tasks {
                if let (TaskStatus::InProgress, Some(c)) = (t.status, &t.claim) {
                    at.push(c.expires);
                }
                if let Some(r) = t.retry_after {
                    if matches!(
                        t.status,
                        TaskStatus::Todo | TaskStatus::InProgress | TaskStatus::InTests
                    ) || t.review.is_some()
                    {
                        at.push(r);
                    }
                }
                // A running Reviewer's gate timeout.
                if let Some(v) = &t.review {
                    let running = v
                        .reviewer
                        .as_deref()
                        .and_then(|id| crate::stages::agent(snapshot, id))
                        .filter(|a| liveness::is_running(a));
                    let gate = reviewers.iter().find(|g| !v.approved.contains(&g.gate));
                    if let (Some(a), Some(g)) = (running, gate) {
                        at.push(a.started + g.timeout_secs as i64);
                    }
                }
            }
            at.extend(fs.convoys.iter().filter_map(|c| c.retry_after));
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
        if !self.bring(snapshot, action)? {
            return Ok(());
        }
        match action {
            // The run's id comes from the task record, not the attempt seen.
            Action::StartDeveloper {
                feature,
                task,
                route,
                ..
            } => self.start_developer(snapshot, feature, task, route),
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
                route,
            } => self.start_tester(snapshot, feature, task, *attempt, route),
            Action::RunGates {
                feature,
                task,
                stage,
            } => self.run_gates(snapshot, feature, task, *stage),
            Action::StartReviewer {
                feature,
                task,
                gate,
            } => self.start_reviewer(snapshot, feature, task, gate),
            Action::RestartReviewer {
                feature,
                task,
                agent,
                cause,
            } => {
                let r = task_ref(feature, task);
                record::restart_reviewer(
                    &self.fleet.store,
                    &r,
                    agent,
                    *cause,
                    self.attempt_policy(),
                )?;
                Ok(())
            }
            Action::JudgeReview {
                feature,
                task,
                agent,
                gate,
            } => self.judge_review(snapshot, feature, task, agent, gate),
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
            Action::CloseConvoy { feature, convoy } => {
                record::close_convoy(&self.fleet.store, feature, convoy)?;
                Ok(())
            }
            Action::CloseFeature { feature } => self.close_feature(snapshot, feature),
            Action::StartLibrarian {
                feature,
                convoy,
                attempt,
            } => self.start_librarian(snapshot, feature, convoy, *attempt),
            Action::RestartLibrarian {
                feature,
                convoy,
                agent,
                cause,
            } => {
                record::restart_librarian(
                    &self.fleet.store,
                    feature,
                    convoy,
                    agent,
                    *cause,
                    self.attempt_policy(),
                )?;
                Ok(())
            }
            Action::MergeDocs {
                feature,
                convoy,
                failed,
            } => self.merge_docs(snapshot, feature, convoy, failed.clone()),
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

    pub(super) fn task_worktree(&self, feature: &str, task: &str) -> PathBuf {
        self.fleet.worktree_path(&format!("{feature}.{task}"))
    }

    pub(super) fn integration(&self, snapshot: &Snapshot, feature: &str) -> String {
        snapshot
            .feature(feature)
            .and_then(|f| f.feature.integration_branch.clone())
            .unwrap_or_else(|| stages::integration_branch(feature))
    }
}

/// This machine among the clones sharing the sprint through `remote`.
fn machine_of(config: &Config, remote: &str) -> super::share::Machine {
    super::share::Machine {
        name: crate::machines::name(config.machine.as_deref()),
        labels: config.machine_labels.clone(),
        lost_after_secs: config.timeouts.machine.0.as_secs().max(1) as i64,
        remote: remote.to_owned(),
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

pub(super) fn task_ref(feature: &str, task: &str) -> TaskRef {
    TaskRef::new(feature, task)
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
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
