//! Notifications: telling a person (a desktop, a chat, a pager) when the
//! sprint needs one — a task failed or blocked, an approval waits, a
//! feature is done or stalled, an agent hung, a breaker opened, a budget ran
//! out.
//!
//! Events are read off the state commits on `refs/ai-sprint` (the
//! orchestrator looks after each reconcile, so it sees its own commits and
//! everyone else's), each keyed by the commit that made it. The orchestrator
//! keeps, under `<git common dir>/sprint/notify/`:
//! - `cursor`: the last state commit whose events are queued, so a restart
//!   neither resends nor skips;
//! - `pending/<receiver>/`: one file per event not yet delivered (the queue;
//!   it survives a restart, so a delivery cut short is sent again: at least
//!   once, and once in all but that case);
//! - `deliveries.jsonl`: one line per finished delivery (ok or failed,
//!   attempts, HTTP status or exit code, error), which `git sprint notify
//!   log` prints.
//!
//! Deliveries are recorded there rather than as state commits: they are
//! side effects, not sprint decisions, and a commit per delivery would wake
//! every reconcile and contend with the transitions it reports. Each
//! receiver has a thread of its own that works through its queue, so a slow
//! or failing receiver delays only its own later events and never the
//! orchestrator's loop; the queue is bounded ([`MAX_PENDING`]), dropping
//! the oldest (recorded) when a receiver has been away too long.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use serde::{Deserialize, Serialize};

pub(crate) mod deliver;
pub(crate) mod events;
pub(crate) mod receiver;

pub(crate) use deliver::Outcome;
pub(crate) use events::Event;
pub(crate) use receiver::{EventKind, Receiver};

use crate::state::{Snapshot, Store};

/// Events waiting for one receiver, at most; past it the oldest go.
pub(crate) const MAX_PENDING: usize = 1000;

/// `<common>/sprint/notify`.
pub(crate) fn dir(common: &Path) -> PathBuf {
    common.join("sprint").join("notify")
}

/// One line of `deliveries.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Delivery {
    /// When it ended, RFC 3339.
    pub(crate) at: String,
    pub(crate) receiver: String,
    pub(crate) event: EventKind,
    pub(crate) key: String,
    pub(crate) subject: String,
    #[serde(flatten)]
    pub(crate) outcome: Outcome,
}

impl Delivery {
    /// An event that was never sent to `receiver`, and why.
    fn not_sent(receiver: &str, event: Event, why: String) -> Delivery {
        Delivery {
            at: crate::clock::now_rfc3339(),
            receiver: receiver.to_owned(),
            event: event.event,
            key: event.key,
            subject: event.subject,
            outcome: Outcome {
                ok: false,
                attempts: 0,
                status: None,
                exit: None,
                error: Some(why),
                took_ms: 0,
            },
        }
    }
}

/// Appends `d` to the ledger in `dir`, as one write so concurrent writers
/// (a receiver's thread, `notify test`) never interleave within a line.
pub(crate) fn record(dir: &Path, d: &Delivery) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut line = serde_json::to_vec(d).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("deliveries.jsonl"))?
        .write_all(&line)
}

/// The ledger, oldest first; lines that do not parse are skipped.
pub(crate) fn deliveries(dir: &Path) -> std::io::Result<Vec<Delivery>> {
    match std::fs::read_to_string(dir.join("deliveries.jsonl")) {
        Ok(text) => Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Where secrets and a command's environment come from: the environment
/// the last `git sprint start` saved (the user's shell, with its
/// DBUS_SESSION_BUS_ADDRESS for `notify-send`), else this process's.
#[derive(Clone, Default)]
pub(crate) struct Env {
    pub(crate) vars: Vec<(String, String)>,
}

impl Env {
    pub(crate) fn of_this_process() -> Env {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    pub(crate) fn for_sprint(common: &Path) -> Env {
        match crate::fleet::env::Environment::saved_for_sprint(common) {
            Ok(Some(saved)) => Env {
                vars: saved
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v.to_str()?.to_owned())))
                    .collect(),
            },
            _ => Env::of_this_process(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Sends `event` to one receiver now, on this thread, and records it.
pub(crate) fn send_now(
    dir: &Path,
    name: &str,
    receiver: &Receiver,
    event: &Event,
    env: &Env,
) -> Delivery {
    let outcome = deliver::deliver(receiver, event, &|k| env.get(k), &env.vars);
    let d = Delivery {
        at: crate::clock::now_rfc3339(),
        receiver: name.to_owned(),
        event: event.event,
        key: event.key.clone(),
        subject: event.subject.clone(),
        outcome,
    };
    if let Err(e) = record(dir, &d) {
        tracing::warn!(error = %e, dir = %dir.display(), "recording a notification's delivery failed");
    }
    d
}

type Receivers = Arc<Mutex<BTreeMap<String, Receiver>>>;

/// The orchestrator's side: turns new state commits into queued events and
/// keeps one delivery thread per receiver.
pub(crate) struct Notifier {
    dir: PathBuf,
    repository: String,
    receivers: Receivers,
    env: Arc<Env>,
    workers: HashMap<String, mpsc::Sender<()>>,
    cursor: Option<gix::ObjectId>,
    /// Orders pending files made in the same nanosecond.
    seq: u64,
}

impl Notifier {
    /// Opens the queue in `<common>/sprint/notify` and starts sending what
    /// an earlier orchestrator left in it.
    pub(crate) fn open(
        common: &Path,
        root: &Path,
        receivers: BTreeMap<String, Receiver>,
    ) -> Notifier {
        let dir = dir(common);
        let cursor = std::fs::read_to_string(dir.join("cursor"))
            .ok()
            .and_then(|s| gix::ObjectId::from_hex(s.trim().as_bytes()).ok());
        let mut n = Notifier {
            dir,
            repository: root.display().to_string(),
            receivers: Arc::default(),
            env: Arc::new(Env::for_sprint(common)),
            workers: HashMap::new(),
            cursor,
            seq: 0,
        };
        n.set_receivers(receivers);
        // What waits from before: each receiver's thread picks it up.
        if let Ok(names) = std::fs::read_dir(n.dir.join("pending")) {
            for name in names.flatten() {
                if let Some(name) = name.file_name().to_str() {
                    n.wake(name);
                }
            }
        }
        n
    }

    /// Sends to `receivers` from now on (the configuration changed).
    pub(crate) fn set_receivers(&mut self, receivers: BTreeMap<String, Receiver>) {
        if receivers.is_empty() {
            // Nobody listens: when someone does, they hear from then on,
            // not the history in between.
            let _ = std::fs::remove_file(self.dir.join("cursor"));
            self.cursor = None;
        }
        *self.receivers.lock().unwrap_or_else(|p| p.into_inner()) = receivers;
    }

    fn listening(&self) -> bool {
        !self
            .receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Queues the events of the state commits made since the last look.
    /// Cheap when nothing changed (one ref read); never waits for a
    /// receiver.
    /// Moves past the state's new commits without sending anything: on a
    /// machine that does not lead a shared sprint (the leader sends, once
    /// for all machines).
    pub(crate) fn pass(&mut self, store: &Store) {
        if let (true, Ok(Some(tip))) = (self.listening(), store.tip()) {
            if self.cursor != Some(tip) {
                self.save_cursor(tip);
            }
        }
    }

    pub(crate) fn observe(&mut self, store: &Store) {
        if !self.listening() {
            return;
        }
        let tip = match store.tip() {
            Ok(Some(tip)) => tip,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "notifications: reading the state tip failed");
                return;
            }
        };
        let Some(cursor) = self.cursor else {
            // First look: events from now on.
            self.save_cursor(tip);
            return;
        };
        if cursor == tip {
            return;
        }
        let entries = match crate::state::log::since(store, Some(cursor)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "notifications: reading the state history failed");
                return;
            }
        };
        // `since` walks to the root when the cursor is not on the history.
        if entries
            .first()
            .is_some_and(|e| first_commit(store, &e.commit))
        {
            // The cursor is not on the history any more (the ref was
            // rewritten or recovered): start again from here rather than
            // resend all of it.
            tracing::warn!("notifications: the last state commit seen is gone from refs/ai-sprint; sending from the current one on");
            self.save_cursor(tip);
            return;
        }
        let mut queued = Vec::new();
        for entry in &entries {
            queued.extend(events::of_entry(entry));
        }
        queued.extend(self.stalled(store, &entries));
        for mut event in queued {
            event.repository = self.repository.clone();
            self.enqueue(&event);
        }
        self.save_cursor(tip);
    }

    /// `feature.stalled` for each feature that a commit among `entries`
    /// failed, blocked or cancelled a task of, and that is stalled now;
    /// keyed by the last such commit.
    fn stalled(&self, store: &Store, entries: &[crate::state::log::Entry]) -> Vec<Event> {
        let mut last: BTreeMap<String, &crate::state::log::Entry> = BTreeMap::new();
        for e in entries {
            for t in &e.transitions {
                if matches!(t.to.as_str(), "failed" | "blocked" | "cancelled") {
                    if let Some((feature, _)) = t.task.split_once('/') {
                        if !matches!(feature, "breaker" | "budget") {
                            last.insert(feature.to_owned(), e);
                        }
                    }
                }
            }
        }
        if last.is_empty() {
            return Vec::new();
        }
        let Ok(snapshot) = store.read(Snapshot::read) else {
            return Vec::new();
        };
        let stalled: BTreeSet<&str> = snapshot
            .features
            .iter()
            .filter(|fs| {
                fs.feature.status == crate::state::FeatureStatus::Active
                    && crate::stages::stalled(fs)
            })
            .map(|fs| fs.feature.name.as_str())
            .collect();
        last.into_iter()
            .filter(|(f, _)| stalled.contains(f.as_str()))
            .map(|(f, entry)| {
                let mut e = Event::new(EventKind::FeatureStalled, entry, &f);
                e.feature = Some(f.clone());
                e.message = events::message(EventKind::FeatureStalled, &f, None);
                e
            })
            .collect()
    }

    fn enqueue(&mut self, event: &Event) {
        let names: Vec<String> = self
            .receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, r)| r.wants(event.event))
            .map(|(n, _)| n.clone())
            .collect();
        let Ok(json) = serde_json::to_vec(event) else {
            return;
        };
        for name in names {
            let queue = self.dir.join("pending").join(&name);
            self.seq += 1;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let file = queue.join(format!("{nanos:024}-{:08}.json", self.seq));
            if let Err(e) = write_atomic(&file, &json) {
                tracing::warn!(error = %e, path = %file.display(), "notifications: queueing an event failed");
                continue;
            }
            trim_queue(&self.dir, &name, &queue);
            self.wake(&name);
        }
    }

    fn wake(&mut self, name: &str) {
        if let Some(tx) = self.workers.get(name) {
            if tx.send(()).is_ok() {
                return;
            }
        }
        let (tx, rx) = mpsc::channel();
        let _ = tx.send(());
        let worker = Worker {
            name: name.to_owned(),
            dir: self.dir.clone(),
            receivers: self.receivers.clone(),
            env: self.env.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("notify-{name}"))
            .spawn(move || worker.run(rx));
        match spawned {
            Ok(_) => {
                self.workers.insert(name.to_owned(), tx);
            }
            Err(e) => {
                tracing::warn!(error = %e, "notifications: starting a delivery thread failed")
            }
        }
    }

    fn save_cursor(&mut self, tip: gix::ObjectId) {
        self.cursor = Some(tip);
        if let Err(e) = write_atomic(&self.dir.join("cursor"), tip.to_string().as_bytes()) {
            tracing::warn!(error = %e, "notifications: saving the cursor failed");
        }
    }
}

/// Whether `commit` has no parent (the root of the state history).
fn first_commit(store: &Store, commit: &str) -> bool {
    gix::ObjectId::from_hex(commit.as_bytes())
        .ok()
        .and_then(|id| store.repo().find_commit(id).ok())
        .is_some_and(|c| c.parent_ids().next().is_none())
}

/// Drops the oldest events past [`MAX_PENDING`], recording each.
fn trim_queue(dir: &Path, name: &str, queue: &Path) {
    let files = queued(queue);
    if files.len() <= MAX_PENDING {
        return;
    }
    for f in &files[..files.len() - MAX_PENDING] {
        if let Some(event) = read_event(f) {
            let why = format!("dropped: more than {MAX_PENDING} events waited for this receiver");
            let _ = record(dir, &Delivery::not_sent(name, event, why));
        }
        let _ = std::fs::remove_file(f);
    }
}

fn queued(queue: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(queue)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn read_event(path: &Path) -> Option<Event> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// One receiver's delivery thread.
struct Worker {
    name: String,
    dir: PathBuf,
    receivers: Receivers,
    env: Arc<Env>,
}

impl Worker {
    fn run(self, wake: mpsc::Receiver<()>) {
        let queue = self.dir.join("pending").join(&self.name);
        // Each wake-up works the queue dry; the loop ends with the
        // orchestrator (the sender goes with the Notifier).
        while wake.recv().is_ok() {
            while wake.try_recv().is_ok() {}
            for file in queued(&queue) {
                let receiver = self
                    .receivers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&self.name)
                    .cloned();
                match (read_event(&file), receiver) {
                    (Some(event), Some(r)) => {
                        let d = send_now(&self.dir, &self.name, &r, &event, &self.env);
                        if !d.outcome.ok {
                            tracing::warn!(
                                receiver = %self.name,
                                event = %event.key,
                                error = d.outcome.error.as_deref().unwrap_or_default(),
                                "notification not delivered"
                            );
                        }
                    }
                    (Some(event), None) => {
                        let why = "skipped: the receiver is no longer configured".into();
                        let _ = record(&self.dir, &Delivery::not_sent(&self.name, event, why));
                    }
                    (None, _) => {}
                }
                let _ = std::fs::remove_file(&file);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine that does not lead a shared sprint moves its cursor past
    /// new state commits and queues nothing: the leader tells, once.
    #[test]
    fn passing_moves_the_cursor_and_sends_nothing() {
        let (tmp, store) = Store::temp();
        let common = store.repo().common_dir().to_owned();
        let receiver: Receiver = serde_yaml::from_str("command: [\"true\"]").unwrap();
        let mut n = Notifier::open(
            &common,
            tmp.path(),
            BTreeMap::from([("r".to_owned(), receiver)]),
        );
        let write = |subject: &str| {
            store
                .transact(&crate::state::Actor::named("t"), |txn| {
                    let meta = crate::state::SprintMeta::new(subject);
                    txn.put_meta(&meta)?;
                    txn.subject(subject);
                    Ok(())
                })
                .unwrap()
                .commit
                .unwrap()
        };
        write("one");
        n.observe(&store);
        let tip = write("two");
        n.pass(&store);
        assert_eq!(n.cursor, Some(tip));
        let saved = std::fs::read_to_string(dir(&common).join("cursor")).unwrap();
        assert_eq!(saved.trim(), tip.to_string());
        let pending = std::fs::read_dir(dir(&common).join("pending"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(pending, 0);
    }
}
