//! The orchestrator: one per repository, woken by inotify, reconciling the
//! sprint state with what runs (DESIGN.md principle 2).
//!
//! `git sprint start` runs it in a tmux session of the repository's server
//! (or in the foreground). The loop sleeps until a watched file changes, a
//! gate run ends, a lease runs out, or it is told to stop; bursts of events
//! are coalesced into one reconcile. Nothing polls: idle, it uses no CPU.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::hint::Hint;

pub(crate) mod busy;
pub(crate) mod engine;
mod follow;
mod jobs;
mod launch;
pub mod lock;
pub(crate) mod record;
mod review;
mod share;
pub(crate) mod watch;

use engine::Engine;
use watch::Wake;

/// The tmux session the orchestrator runs in.
pub(crate) const SESSION: &str = "orchestrator";

/// How long to wait for more events before reconciling: one commit moves a
/// ref, writes a reflog and a lock file; they should make one wake-up.
const COALESCE: Duration = Duration::from_millis(40);

/// Why the orchestrator could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error("starting the orchestrator's runtime")]
    Runtime(#[source] std::io::Error),
}

impl Hint for DaemonError {
    fn hint(&self) -> Option<String> {
        match self {
            DaemonError::Lock(lock::LockError::Held { .. }) => {
                Some("'git sprint stop' stops it; 'git sprint health' shows what it does".into())
            }
            DaemonError::Fleet(e) => e.hint(),
            DaemonError::Config(e) => e.hint(),
            DaemonError::State(e) => e.hint(),
            DaemonError::Policy(e) => e.hint(),
            _ => None,
        }
    }
}

/// Runs the orchestrator in this process until SIGTERM/SIGINT.
pub(crate) fn run(cwd: &Path, exe: PathBuf) -> Result<(), DaemonError> {
    // Only the signals stop it: the sender lives as long as the loop.
    let (_never, stop) = tokio::sync::watch::channel(false);
    run_until(cwd, exe, stop)
}

/// Runs the orchestrator in this process until `stop` turns true (or its
/// sender goes away), or SIGTERM/SIGINT. For callers that run it on a
/// thread of their own, such as `git sprint demo`.
pub(crate) fn run_until(
    cwd: &Path,
    exe: PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), DaemonError> {
    let mut fleet = crate::fleet::Fleet::open(cwd)?;
    let _lock = lock::acquire(&fleet.common_dir)?;
    let gates = GateLedger::open(&fleet.common_dir);
    let root = fleet.main_worktree()?;
    let loaded = crate::config::load_from(fleet.store.repo(), Some(&root))?;
    tracing::info!(from = %loaded.origin(), "configuration loaded");
    if let Some(notice) = loaded.notice() {
        tracing::warn!("{notice}");
    }
    let config = loaded.config;
    // An invalid policy starts nothing: rules nobody can read enforce nothing.
    let policy = crate::policy::load(fleet.store.repo())?;
    tracing::info!(layers = policy.layers.len(), "policy loaded");
    // Agents get the environment of the last `start` (or `resume`), not ours.
    fleet.env_from = crate::fleet::EnvFrom::SprintStart;
    fleet.identity = config.identity.clone();
    fleet.configure_pool(&config.worktrees);
    let common = fleet.common_dir.clone();
    record_settings(&fleet.store, &config)?;
    // With the state shared through a remote: who this machine is, and its
    // heartbeat, for the other clones (`list --machines`). A clone alone
    // has no one to tell.
    let _beating = fleet.store.remote_name().is_some().then(|| {
        let machine = crate::machines::name(config.machine.as_deref());
        let described = crate::machines::describe(
            &machine,
            config.roles.developer.count,
            &config.machine_labels,
        );
        if let Err(e) = crate::machines::record(&fleet.store, &described) {
            tracing::warn!(error = %e, %machine, "recording this machine failed");
        }
        // The others' beats as they are now, before the first judgement of
        // who is lost: a machine not yet fetched is not a machine lost.
        if let Err(e) = fleet
            .store
            .fetch_refs(&format!("{}*", crate::machines::HEARTBEAT_REFS))
        {
            tracing::warn!(error = %e, "fetching the other machines' heartbeats failed");
        }
        let every = crate::machines::beat_every(config.timeouts.machine.0);
        crate::machines::start_beating(&root, machine, every)
    });
    tracing::info!(pid = std::process::id(), "orchestrator started");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    rt.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut watching = watch::start(&common, &root, tx.clone())?;
        // Other machines' writes arrive as local ref moves (watched above).
        let _follow = follow::start(&root);
        // A draft saved before the watch began sent no event: check now.
        report_drafts(&root);
        let mut engine = Engine::new(fleet, config, exe, tx, gates.0.clone())?;
        engine.set_policy(policy);
        // Off the loop: each receiver delivers on a thread of its own.
        let mut notifier =
            crate::notify::Notifier::open(&common, &root, engine.config.notify.clone());
        let mut seen = config_fingerprint(&engine.fleet.store, &common, &engine.config.base_branch);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(DaemonError::Runtime)?;
        // The wait after the last failed reconcile, while they keep failing.
        let mut backoff: Option<Duration> = None;
        loop {
            // The config follows the base branch and git config while running:
            // a raised budget or a fixed gate takes effect without a restart.
            let now = config_fingerprint(&engine.fleet.store, &common, &engine.config.base_branch);
            if now != seen {
                seen = now;
                match crate::config::load(&root, &common) {
                    Ok(loaded) => {
                        if loaded.config != engine.config {
                            tracing::info!("configuration changed; running with the new one");
                            if let Err(e) = record_settings(&engine.fleet.store, &loaded.config) {
                                tracing::warn!(error = %e, "recording the new settings failed");
                            }
                            notifier.set_receivers(loaded.config.notify.clone());
                            engine.set_config(loaded.config);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "the changed configuration is invalid; keeping the one in use"),
                }
                match crate::policy::load(engine.fleet.store.repo()) {
                    Ok(policy) => engine.set_policy(policy),
                    Err(e) => tracing::warn!(error = %e, "the changed policy is invalid; keeping the one in use"),
                }
            }
            let (deadline, failed) = match engine.reconcile() {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "reconcile failed");
                    (None, true)
                }
            };
            // The commits this reconcile made, and any made since the last;
            // in a shared sprint the leader tells, once for all machines.
            if engine.leads() {
                notifier.observe(&engine.fleet.store);
            } else {
                notifier.pass(&engine.fleet.store);
            }
            // After a failure, look again later even if nothing changes;
            // otherwise sleep until an event or the next lease deadline.
            backoff = failed.then(|| busy::next_wait(backoff));
            let lease = deadline.map(|at| {
                // One second past the deadline, so the lease has run out.
                Duration::from_secs((at - crate::clock::now()).max(0) as u64 + 1)
            });
            let wait = match (lease, backoff) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                wake = rx.recv() => {
                    let Some(wake) = wake else { break };
                    tracing::debug!(?wake, "woken");
                    tokio::time::sleep(COALESCE).await;
                    let mut specs = matches!(wake, Wake::Specs(_));
                    while let Ok(more) = rx.try_recv() {
                        specs |= matches!(more, Wake::Specs(_));
                    }
                    // A draft tasks.md is checked as soon as it is saved, so
                    // a mistake shows before it is committed.
                    if specs && !watching.watching_specs && root.join("specs").is_dir() {
                        // specs/ was just made: watch inside it from now on.
                        watching = watch::start(&common, &root, engine.wake())?;
                    }
                    if specs {
                        report_drafts(&root);
                    }
                }
                _ = sleep => tracing::debug!("lease deadline"),
                _ = tokio::signal::ctrl_c() => break,
                _ = stop.wait_for(|stop| *stop) => break,
                _ = term.recv() => break,
            }
        }
        tracing::info!("orchestrator stopping");
        // Another machine need not wait out `timeouts.machine` to lead.
        if let Some(machine) = engine.machine() {
            if let Err(e) = crate::machines::lease::release(&engine.fleet.store, machine) {
                tracing::warn!(error = %e, "giving up the leader lease failed");
            }
        }
        Ok(())
    })
}

/// Logs each tasks.md in the working tree that does not parse.
fn report_drafts(root: &Path) {
    for d in crate::ingest::check_drafts(root) {
        tracing::warn!(path = %d.path, error = %d.error, "tasks.md in the working tree does not parse");
    }
}

/// The orchestrator's record of running gates, `<common>/sprint/gates/`.
/// Opening it kills what gates of an orchestrator that died (`kill -9`) left
/// running, since none can be running now that the lock is held; dropping it
/// kills this orchestrator's own gates still running.
struct GateLedger(crate::worker::reap::Ledger);

impl GateLedger {
    fn open(common: &Path) -> GateLedger {
        let ledger = crate::worker::reap::Ledger::new(common.join("sprint").join("gates"));
        for swept in ledger.sweep().into_iter().filter(|s| s.killed > 0) {
            tracing::warn!(
                command = %swept.command,
                killed = swept.killed,
                "killed processes left by a gate of an orchestrator that did not stop cleanly"
            );
        }
        GateLedger(ledger)
    }
}

impl Drop for GateLedger {
    fn drop(&mut self) {
        self.0.sweep();
    }
}

/// What the configuration is read from: the base branch's tip (its
/// committed `.git-sprint.yaml`) and the repository's git config file. Cheap
/// (a ref lookup and a stat), so it is checked before every reconcile.
fn config_fingerprint(
    store: &crate::state::Store,
    common: &Path,
    base: &str,
) -> (Option<String>, Option<std::time::SystemTime>) {
    let tip = store
        .repo()
        .try_find_reference(format!("refs/heads/{base}").as_str())
        .ok()
        .flatten()
        .and_then(|mut r| r.peel_to_id().ok().map(|id| id.to_string()));
    let modified = std::fs::metadata(common.join("config"))
        .and_then(|m| m.modified())
        .ok();
    (tip, modified)
}

/// Snapshots the settings this orchestrator runs with into `sprint.yaml`,
/// so the audit trail shows which configuration made which decisions.
fn record_settings(
    store: &crate::state::Store,
    config: &crate::config::Config,
) -> Result<(), crate::state::StateError> {
    let settings: std::collections::BTreeMap<String, serde_json::Value> =
        crate::config::values(config).into_iter().collect();
    store.transact(&crate::state::Actor::named("orchestrator"), |txn| {
        let mut meta = txn
            .meta()?
            .unwrap_or_else(|| crate::state::SprintMeta::new(&crate::clock::now_rfc3339()));
        if meta.settings == settings {
            return Ok(());
        }
        meta.settings = settings.clone();
        txn.put_meta(&meta)?;
        txn.subject("sprint: settings changed");
        Ok(())
    })?;
    Ok(())
}
