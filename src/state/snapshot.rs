//! The whole state read at once, for the commands that show all of it and
//! for the orchestrator's reconcile.
//!
//! The read is tolerant: a record that does not parse is left out and
//! listed in [`Snapshot::quarantined`] with its path and error, so one broken
//! file stops only itself (its dependants wait, as on any unfinished task).
//!
//! The read is incremental: the store keeps a [`SnapshotCache`] of what its
//! last read parsed, keyed by tree and blob id (content addresses, so a hit
//! is always right), and a feature whose subtree did not change is reused
//! whole; in one that did, only the changed records are parsed again. A
//! reconcile after one transition costs what changed, not the whole state.

use std::collections::{BTreeMap, HashMap};

use gix::ObjectId;

use serde::Serialize;

use super::error::StateError;
use super::model::{Agent, Convoy, Feature, SprintMeta, Task};
use super::model::{AgentState, TaskStatus};
use super::repair::Quarantined;
use super::store::{sort_tasks, task_path, Txn, ARCHIVED_AGENTS};

/// One feature with its convoys and tasks, as the state holds them.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureState {
    pub(crate) feature: Feature,
    pub(crate) convoys: Vec<Convoy>,
    /// The feature's tasks, in natural id order.
    pub tasks: Vec<Task>,
}

/// The whole sprint state read at one commit: features, tasks and agents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub(crate) meta: Option<SprintMeta>,
    /// Every feature in the state.
    pub features: Vec<FeatureState>,
    /// Every agent in the state.
    pub agents: Vec<Agent>,
    /// Records that do not parse: not in the lists above.
    pub(crate) quarantined: Vec<Quarantined>,
}

/// `Ok(Some(value))`, or `Ok(None)` with the record quarantined when it
/// does not parse; other errors (git) stay errors.
fn tolerate<T>(
    read: Result<Option<T>, StateError>,
    quarantined: &mut Vec<Quarantined>,
    path: String,
    kind: &'static str,
    name: String,
) -> Result<Option<T>, StateError> {
    match read {
        Err(e @ StateError::Yaml { .. }) => {
            tracing::warn!(%path, error = %e, "quarantined a state record that does not parse");
            quarantined.push(Quarantined::new(&path, kind, name, &e));
            Ok(None)
        }
        other => other,
    }
}

/// Records parsed by the last snapshot read of a store. Only what that read
/// used is kept, so the cache holds at most one state's records.
#[derive(Default)]
pub(crate) struct SnapshotCache {
    features: HashMap<ObjectId, FeatureEntry>,
    tasks: HashMap<ObjectId, Task>,
    convoys: HashMap<ObjectId, Convoy>,
    agents: HashMap<ObjectId, Agent>,
    /// Feature subtrees parsed (not reused), for tests.
    #[cfg(test)]
    pub(crate) feature_parses: usize,
}

/// One feature subtree as read: the feature (none when `feature.yaml` is
/// missing or broken), the quarantined records found in it, and the blobs
/// of its parsed tasks and convoys (kept cached while the subtree is reused,
/// so a later change to it re-parses only the changed records).
#[derive(Clone)]
struct FeatureEntry {
    state: Option<FeatureState>,
    quarantined: Vec<Quarantined>,
    task_blobs: Vec<ObjectId>,
    convoy_blobs: Vec<ObjectId>,
}

/// The caches a read fills: the next read's cache.
#[derive(Default)]
struct Fresh {
    features: HashMap<ObjectId, FeatureEntry>,
    tasks: HashMap<ObjectId, Task>,
    convoys: HashMap<ObjectId, Convoy>,
    agents: HashMap<ObjectId, Agent>,
}

/// The record in blob `id`, from `old` or parsed; kept in `new`. A record
/// that does not parse is never cached (it is rare, and read again).
fn cached<T: Clone + serde::de::DeserializeOwned>(
    txn: &Txn<'_>,
    old: &HashMap<ObjectId, T>,
    new: &mut HashMap<ObjectId, T>,
    id: ObjectId,
    path: &str,
) -> Result<T, StateError> {
    if let Some(hit) = new.get(&id).or_else(|| old.get(&id)) {
        let hit = hit.clone();
        new.insert(id, hit.clone());
        return Ok(hit);
    }
    let value: T = txn.decode_blob(id, path)?;
    new.insert(id, value.clone());
    Ok(value)
}

/// `(name, id)` of the `.yaml` blobs among `entries`, by name.
fn yaml_blobs(entries: Vec<(String, ObjectId, bool)>) -> BTreeMap<String, ObjectId> {
    entries
        .into_iter()
        .filter(|(_, _, is_tree)| !is_tree)
        .filter_map(|(name, id, _)| Some((name.strip_suffix(".yaml")?.to_owned(), id)))
        .collect()
}

impl Snapshot {
    /// Reads the whole state at the transaction's commit.
    pub fn read(txn: &Txn<'_>) -> Result<Self, StateError> {
        // The cache describes committed trees: with staged writes, or
        // outside a store's read, read the plain way.
        match txn.snapshot_cache() {
            Some(cache) if txn.is_empty() => {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                Self::read_cached(txn, &mut cache)
            }
            _ => Self::read_plain(txn),
        }
    }

    fn read_cached(txn: &Txn<'_>, cache: &mut SnapshotCache) -> Result<Self, StateError> {
        let mut fresh = Fresh::default();
        let mut quarantined = Vec::new();
        let mut features = Vec::new();
        let mut dirs: Vec<(String, ObjectId)> = txn
            .entries_at_root("features")?
            .into_iter()
            .filter(|(_, _, is_tree)| *is_tree)
            .map(|(name, id, _)| (name, id))
            .collect();
        dirs.sort();
        for (name, id) in dirs {
            let entry = match cache.features.remove(&id) {
                Some(hit) => {
                    for blob in &hit.task_blobs {
                        if let Some(t) = cache.tasks.remove(blob) {
                            fresh.tasks.insert(*blob, t);
                        }
                    }
                    for blob in &hit.convoy_blobs {
                        if let Some(c) = cache.convoys.remove(blob) {
                            fresh.convoys.insert(*blob, c);
                        }
                    }
                    hit
                }
                None => {
                    #[cfg(test)]
                    {
                        cache.feature_parses += 1;
                    }
                    Self::read_feature(txn, cache, &mut fresh, &name, id)?
                }
            };
            features.extend(entry.state.clone());
            quarantined.extend(entry.quarantined.iter().cloned());
            fresh.features.insert(id, entry);
        }
        let mut agents = Vec::new();
        for (id, blob) in yaml_blobs(txn.entries_at_root("agents")?) {
            let path = format!("agents/{id}.yaml");
            let read = cached(txn, &cache.agents, &mut fresh.agents, blob, &path).map(Some);
            agents.extend(tolerate(read, &mut quarantined, path, "agent", id)?);
        }
        cache.features = fresh.features;
        cache.tasks = fresh.tasks;
        cache.convoys = fresh.convoys;
        cache.agents = fresh.agents;
        Ok(Snapshot {
            meta: txn.meta()?,
            features,
            agents,
            quarantined,
        })
    }

    /// One feature's subtree `id`, parsing only records not in `cache`.
    fn read_feature(
        txn: &Txn<'_>,
        cache: &SnapshotCache,
        fresh: &mut Fresh,
        name: &str,
        id: ObjectId,
    ) -> Result<FeatureEntry, StateError> {
        let mut quarantined = Vec::new();
        let mut task_blobs = Vec::new();
        let mut convoy_blobs = Vec::new();
        let nothing = |quarantined| FeatureEntry {
            state: None,
            quarantined,
            task_blobs: Vec::new(),
            convoy_blobs: Vec::new(),
        };
        let dir = format!("features/{name}");
        let mut files = BTreeMap::new();
        let mut subtrees = BTreeMap::new();
        for (entry, oid, is_tree) in txn.tree_entries(id, &dir)? {
            if is_tree {
                subtrees.insert(entry, oid);
            } else {
                files.insert(entry, oid);
            }
        }
        let Some(&blob) = files.get("feature.yaml") else {
            return Ok(nothing(quarantined));
        };
        let path = format!("{dir}/feature.yaml");
        let read = txn.decode_blob::<Feature>(blob, &path).map(Some);
        let Some(feature) = tolerate(read, &mut quarantined, path, "feature", name.to_owned())?
        else {
            return Ok(nothing(quarantined));
        };
        let mut convoys = Vec::new();
        if let Some(&tree) = subtrees.get("convoys") {
            let sub = format!("{dir}/convoys");
            for (cid, blob) in yaml_blobs(txn.tree_entries(tree, &sub)?) {
                let path = format!("{sub}/{cid}.yaml");
                let read = cached(txn, &cache.convoys, &mut fresh.convoys, blob, &path).map(Some);
                convoy_blobs.push(blob);
                convoys.extend(tolerate(
                    read,
                    &mut quarantined,
                    path,
                    "convoy",
                    format!("{name}/{cid}"),
                )?);
            }
        }
        let mut tasks = Vec::new();
        if let Some(&tree) = subtrees.get("tasks") {
            let sub = format!("{dir}/tasks");
            for (tid, blob) in yaml_blobs(txn.tree_entries(tree, &sub)?) {
                let path = task_path(name, &tid);
                match cached(txn, &cache.tasks, &mut fresh.tasks, blob, &path) {
                    Ok(t) => {
                        tasks.push(t);
                        task_blobs.push(blob);
                    }
                    Err(e @ StateError::Yaml { .. }) => {
                        tracing::warn!(%path, error = %e, "quarantined a task record that does not parse");
                        quarantined.push(Quarantined::new(
                            &path,
                            "task",
                            format!("{name}/{tid}"),
                            &e,
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        sort_tasks(&mut tasks);
        Ok(FeatureEntry {
            state: Some(FeatureState {
                feature,
                convoys,
                tasks,
            }),
            quarantined,
            task_blobs,
            convoy_blobs,
        })
    }

    /// The whole state through the transaction's own reads (staged writes
    /// included), parsing every record.
    fn read_plain(txn: &Txn<'_>) -> Result<Self, StateError> {
        let mut quarantined = Vec::new();
        let mut features = Vec::new();
        for name in txn.feature_names()? {
            let path = format!("features/{name}/feature.yaml");
            let read = txn.feature(&name);
            let Some(feature) = tolerate(read, &mut quarantined, path, "feature", name.clone())?
            else {
                continue;
            };
            let mut convoys = Vec::new();
            for id in txn.convoy_ids(&name)? {
                let path = format!("features/{name}/convoys/{id}.yaml");
                let read = txn.convoy(&name, &id);
                convoys.extend(tolerate(
                    read,
                    &mut quarantined,
                    path,
                    "convoy",
                    format!("{name}/{id}"),
                )?);
            }
            let (tasks, broken) = txn.tasks_and_quarantined(&name)?;
            for (id, e) in broken {
                let path = task_path(&name, &id);
                tracing::warn!(%path, error = %e, "quarantined a task record that does not parse");
                quarantined.push(Quarantined::new(&path, "task", format!("{name}/{id}"), &e));
            }
            features.push(FeatureState {
                feature,
                convoys,
                tasks,
            });
        }
        let mut agents = Vec::new();
        for id in txn.agent_ids()? {
            let path = format!("agents/{id}.yaml");
            let read = txn.agent(&id);
            agents.extend(tolerate(read, &mut quarantined, path, "agent", id)?);
        }
        Ok(Snapshot {
            meta: txn.meta()?,
            features,
            agents,
            quarantined,
        })
    }

    /// The whole state with the archived agents too: `agents` holds every
    /// agent ever recorded (live and archived, by id), for views of the
    /// whole history (`status --json`, `list --all`). Reading the archive
    /// costs what the history holds; the orchestrator never does it.
    pub(crate) fn read_with_archive(txn: &Txn<'_>) -> Result<Self, StateError> {
        let mut snapshot = Self::read(txn)?;
        let live: std::collections::HashSet<String> =
            snapshot.agents.iter().map(|a| a.id.clone()).collect();
        for id in txn.archived_agent_ids()? {
            if live.contains(&id) {
                continue;
            }
            let path = format!("{ARCHIVED_AGENTS}/{id}.yaml");
            let read = txn.archived_agent(&id);
            snapshot.agents.extend(tolerate(
                read,
                &mut snapshot.quarantined,
                path,
                "agent",
                id,
            )?);
        }
        snapshot.agents.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(snapshot)
    }

    /// Live agents that are finished for good: ended, and their task done
    /// or cancelled. [`archive_finished_agents`] moves them to the archive.
    pub(crate) fn archivable(&self) -> Vec<&Agent> {
        self.agents
            .iter()
            .filter(|a| is_finished(self, a))
            .collect()
    }

    /// The feature named `name`, if the state has it.
    pub fn feature(&self, name: &str) -> Option<&FeatureState> {
        self.features.iter().find(|f| f.feature.name == name)
    }

    /// Whether task `id` of `feature` is quarantined (its record does not
    /// parse): it is not done, whatever it was.
    pub(crate) fn is_quarantined(&self, feature: &str, id: &str) -> bool {
        let name = format!("{feature}/{id}");
        self.quarantined
            .iter()
            .any(|q| q.kind == "task" && q.name == name)
    }

    /// Whether any task of `feature` is quarantined.
    pub(crate) fn has_quarantined_tasks(&self, feature: &str) -> bool {
        let prefix = format!("{feature}/");
        self.quarantined
            .iter()
            .any(|q| q.kind == "task" && q.name.starts_with(&prefix))
    }
}

impl FeatureState {
    /// Task counts per status, in the order of the task life.
    pub(crate) fn counts(&self) -> BTreeMap<super::model::TaskStatus, usize> {
        let mut counts = BTreeMap::new();
        for t in &self.tasks {
            *counts.entry(t.status).or_insert(0) += 1;
        }
        counts
    }
}

/// Whether `a` is ended and its task (a task record) done or cancelled, so
/// nothing will touch its record again. Agents of no task record (fleet
/// workers, Librarians) stay live: `list` shows them, and the budget sums
/// a Librarian's spend from its record.
fn is_finished(snapshot: &Snapshot, a: &Agent) -> bool {
    if matches!(a.state, AgentState::Starting | AgentState::Running) || a.ended.is_none() {
        return false;
    }
    let Some((feature, id)) = a.task.as_deref().and_then(|t| t.split_once('/')) else {
        return false;
    };
    snapshot.feature(feature).is_some_and(|f| {
        f.tasks
            .iter()
            .any(|t| t.id == id && matches!(t.status, TaskStatus::Done | TaskStatus::Cancelled))
    })
}

/// Moves the live agents that are finished for good ([`Snapshot::archivable`]
/// at this transaction's state) to `archive/agents/`, in one commit; returns
/// their ids. Their records stay in `git log refs/ai-sprint` and in
/// [`Snapshot::read_with_archive`].
pub(crate) fn archive_finished_agents(txn: &mut Txn<'_>) -> Result<Vec<String>, StateError> {
    let snapshot = Snapshot::read(txn)?;
    let finished: Vec<Agent> = snapshot.archivable().into_iter().cloned().collect();
    for a in &finished {
        txn.archive_agent(a)?;
    }
    if !finished.is_empty() {
        txn.subject(format!(
            "archive {} finished agent{}",
            finished.len(),
            if finished.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(finished.into_iter().map(|a| a.id).collect())
}

/// Archives the ended agents of task `feature/id`, in the transaction that
/// moves the task to done: folded in there, archiving costs no commit of
/// its own, and so no reconcile woken by one. An agent of the task still
/// running stays live ([`archive_finished_agents`] takes it later).
pub(crate) fn archive_agents_of_task(
    txn: &mut Txn<'_>,
    feature: &str,
    id: &str,
) -> Result<usize, StateError> {
    let task = format!("{feature}/{id}");
    // Agent ids start with `<feature>.<task>.` (stages::agent_id); reading
    // only those keeps this from growing with the sprint.
    let prefix = format!("{feature}.{id}.");
    let mut n = 0;
    for agent_id in txn.agent_ids()? {
        if !agent_id.starts_with(&prefix) {
            continue;
        }
        let Ok(Some(a)) = txn.agent(&agent_id) else {
            continue;
        };
        if a.task.as_deref() != Some(task.as_str())
            || matches!(a.state, AgentState::Starting | AgentState::Running)
            || a.ended.is_none()
        {
            continue;
        }
        txn.archive_agent(&a)?;
        n += 1;
    }
    Ok(n)
}
