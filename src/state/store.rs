//! Reading and writing `refs/ai-sprint`: a commit whose tree holds one YAML
//! file per entity, never checked out.
//!
//! A write is an *operation*: a closure over a [`Txn`] that reads what it
//! needs and stages new files. The store turns the staged files into a tree
//! (only the trees on the changed paths are rewritten), a commit and a
//! compare-and-swap ref update. If another process moved the ref first, the
//! operation runs again on the new tip, so it may refuse then (say, the task
//! it wanted to claim is no longer `todo`). No update is ever lost.
//!
//! Every write also goes into the backup ([`super::backup`]): the state
//! survives `git update-ref -d refs/ai-sprint` (which deletes the ref's
//! reflog too) and its commits stay reachable for `git gc`, so
//! `git sprint recover` can restore it. While the backup (or a reflog) shows
//! a state existed, no write starts a new one in its place.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::object::Kind;
use gix::objs::{Write as _, WriteTo};
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::backup::{self, BACKUP_REF};
use super::error::StateError;
use super::kept::Kept;
use super::lock;
use super::model::{Agent, Convoy, Feature, SprintMeta, Task, SCHEMA_VERSION};
use super::queue::{self, Dropped, Queued};
use super::remote::{Pushed, Remote};
use super::snapshot::SnapshotCache;
use super::writers;
use crate::clock;

/// The ref that holds all sprint state.
pub(crate) const STATE_REF: &str = "refs/ai-sprint";

/// Attempts at a compare-and-swap before giving up. Each attempt backs off
/// with jitter, so 16 writers on one ref settle well within this.
const MAX_ATTEMPTS: u32 = 400;

/// Who did something: the author and committer of a state commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub(crate) name: String,
    pub(crate) email: String,
}

impl Actor {
    /// A tool role or agent, such as `cab` or `dev-2`.
    pub fn named(name: &str) -> Self {
        Actor {
            name: name.to_owned(),
            email: format!("{name}@git-sprint"),
        }
    }
}

/// One state transition, written as trailers of the commit that made it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transition {
    /// `feature/task`, or empty for a transition of the sprint itself.
    pub(crate) task: String,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) reason: Option<String>,
    pub(crate) policy: Option<String>,
}

/// A staged change to the state, applied atomically by [`Store::transact`].
pub struct Txn<'r> {
    repo: &'r gix::Repository,
    root: Option<ObjectId>,
    /// Parsed records of the store's last snapshot read, reused by
    /// [`Snapshot::read`](super::Snapshot::read) for unchanged subtrees.
    cache: Option<&'r std::sync::Mutex<SnapshotCache>>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// Files read at `root`, so an operation may read freely.
    read_cache: std::cell::RefCell<std::collections::HashMap<String, Option<Vec<u8>>>>,
    subject: Option<String>,
    transitions: Vec<Transition>,
    /// Repairs of the store itself (a stale lock removed, the ref restored),
    /// written as `Sprint-Repair:` trailers; a commit is made for them even
    /// when no file changed.
    repairs: Vec<String>,
    /// Policy decision records, one JSON line each (`Sprint-Decision:`).
    decisions: Vec<String>,
}

impl<'r> Txn<'r> {
    fn new(repo: &'r gix::Repository, root: Option<ObjectId>) -> Self {
        Txn {
            repo,
            root,
            cache: None,
            writes: BTreeMap::new(),
            read_cache: Default::default(),
            subject: None,
            transitions: Vec::new(),
            repairs: Vec::new(),
            decisions: Vec::new(),
        }
    }

    /// The repository the state lives in (for reading blobs it names).
    pub(crate) fn repo(&self) -> &'r gix::Repository {
        self.repo
    }

    /// The snapshot cache of the store, when this is a read at its tip.
    pub(crate) fn snapshot_cache(&self) -> Option<&'r std::sync::Mutex<SnapshotCache>> {
        self.cache
    }

    /// The raw bytes at `path`, for records that do not parse.
    pub(crate) fn read_raw(&self, path: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.raw(path)
    }

    /// The raw bytes at `path` as this transaction sees them.
    fn raw(&self, path: &str) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(staged) = self.writes.get(path) {
            return Ok(staged.clone());
        }
        if let Some(cached) = self.read_cache.borrow().get(path) {
            return Ok(cached.clone());
        }
        let bytes = self.raw_at_root(path)?;
        self.read_cache
            .borrow_mut()
            .insert(path.to_owned(), bytes.clone());
        Ok(bytes)
    }

    /// The id of the blob at `path` in the state this transaction started
    /// from, if there is one.
    fn blob_id(&self, path: &str) -> Result<Option<ObjectId>, StateError> {
        let Some(root) = self.root else {
            return Ok(None);
        };
        let tree = self
            .repo
            .find_tree(root)
            .map_err(|e| StateError::git("reading the state tree", e))?;
        let entry = tree
            .lookup_entry_by_path(path)
            .map_err(|e| StateError::git(format!("looking up '{path}' in the state"), e))?;
        Ok(entry.map(|e| e.object_id()))
    }

    fn raw_at_root(&self, path: &str) -> Result<Option<Vec<u8>>, StateError> {
        let Some(id) = self.blob_id(path)? else {
            return Ok(None);
        };
        let blob = self
            .repo
            .find_object(id)
            .map_err(|e| StateError::git(format!("reading '{path}' from the state"), e))?;
        Ok(Some(blob.detach().data))
    }

    pub(crate) fn read<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, StateError> {
        match self.raw(path)? {
            None => Ok(None),
            Some(bytes) => decode(path, &bytes).map(Some),
        }
    }

    pub(crate) fn write<T: Serialize>(&mut self, path: &str, value: &T) -> Result<(), StateError> {
        let yaml = serde_yaml::to_string(value).map_err(|source| StateError::Yaml {
            path: path.to_owned(),
            source,
        })?;
        self.writes.insert(path.to_owned(), Some(yaml.into_bytes()));
        Ok(())
    }

    pub(crate) fn remove(&mut self, path: &str) {
        self.writes.insert(path.to_owned(), None);
    }

    /// Names of the `.yaml` files (without extension) or subtrees in `dir`.
    pub(crate) fn list(&self, dir: &str) -> Result<Vec<String>, StateError> {
        let mut names = std::collections::BTreeSet::new();
        if let Some(root) = self.root {
            let tree = self
                .repo
                .find_tree(root)
                .map_err(|e| StateError::git("reading the state tree", e))?;
            let sub = if dir.is_empty() {
                Some(tree)
            } else {
                match tree
                    .lookup_entry_by_path(dir)
                    .map_err(|e| StateError::git(format!("looking up '{dir}' in the state"), e))?
                {
                    Some(entry) if entry.mode().is_tree() => Some(
                        entry
                            .object()
                            .map_err(|e| StateError::git(format!("reading '{dir}'"), e))?
                            .into_tree(),
                    ),
                    _ => None,
                }
            };
            if let Some(sub) = sub {
                let decoded = sub
                    .decode()
                    .map_err(|e| StateError::git(format!("decoding '{dir}'"), e))?;
                for entry in decoded.entries {
                    let name = entry.filename.to_str_lossy();
                    names.insert(name.strip_suffix(".yaml").unwrap_or(&name).to_owned());
                }
            }
        }
        // Staged writes and removals below `dir` count too.
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        for (path, content) in &self.writes {
            if let Some(rest) = path.strip_prefix(&prefix) {
                let first = rest.split('/').next().unwrap_or(rest);
                let name = first.strip_suffix(".yaml").unwrap_or(first).to_owned();
                if content.is_some() {
                    names.insert(name);
                } else if !rest.contains('/') {
                    names.remove(&name);
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Sets the commit subject; without it, one is made from the transitions.
    pub(crate) fn subject(&mut self, subject: impl Into<String>) {
        self.subject = Some(subject.into());
    }

    pub(crate) fn record(&mut self, transition: Transition) {
        self.transitions.push(transition);
    }

    /// The last transition recorded for `task` in this transaction, to add
    /// to its reason.
    pub(crate) fn transition_mut(&mut self, task: &str) -> Option<&mut Transition> {
        self.transitions.iter_mut().rev().find(|t| t.task == task)
    }

    /// Marks the last transition of `task` (`feature/id`) in this commit as
    /// a policy decision (`Sprint-Policy:`), e.g. a merge held for approval.
    pub(crate) fn record_policy_note(&mut self, task: &str, note: &str) {
        if let Some(t) = self.transitions.iter_mut().rev().find(|t| t.task == task) {
            t.policy = Some(note.to_owned());
        }
    }

    /// Records a policy decision in the commit that acts on it
    /// (`Sprint-Decision:`, the record as one line of JSON).
    pub(crate) fn decide(&mut self, record: &crate::policy::Decision) {
        self.decisions.push(record.to_line());
    }

    /// Records a repair of the store in the commit (`Sprint-Repair:`).
    pub(crate) fn repair(&mut self, what: impl Into<String>) {
        self.repairs.push(what.into());
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The entries of the tree at `dir` in the state this transaction
    /// started from (staged writes not included): name, id, and whether it
    /// is a tree. Empty when `dir` is not a tree there.
    pub(crate) fn entries_at_root(
        &self,
        dir: &str,
    ) -> Result<Vec<(String, ObjectId, bool)>, StateError> {
        let Some(root) = self.root else {
            return Ok(Vec::new());
        };
        let id = if dir.is_empty() {
            root
        } else {
            let tree = self
                .repo
                .find_tree(root)
                .map_err(|e| StateError::git("reading the state tree", e))?;
            match tree
                .lookup_entry_by_path(dir)
                .map_err(|e| StateError::git(format!("looking up '{dir}' in the state"), e))?
            {
                Some(entry) if entry.mode().is_tree() => entry.object_id(),
                _ => return Ok(Vec::new()),
            }
        };
        self.tree_entries(id, dir)
    }

    /// The entries of tree `id` (found at `dir`, for messages).
    pub(crate) fn tree_entries(
        &self,
        id: ObjectId,
        dir: &str,
    ) -> Result<Vec<(String, ObjectId, bool)>, StateError> {
        let tree = self
            .repo
            .find_tree(id)
            .map_err(|e| StateError::git(format!("reading '{dir}'"), e))?;
        let decoded = tree
            .decode()
            .map_err(|e| StateError::git(format!("decoding '{dir}'"), e))?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| {
                (
                    e.filename.to_str_lossy().into_owned(),
                    e.oid.to_owned(),
                    e.mode.is_tree(),
                )
            })
            .collect())
    }

    /// The record in blob `id` (found at `path`, for messages).
    pub(crate) fn decode_blob<T: DeserializeOwned>(
        &self,
        id: ObjectId,
        path: &str,
    ) -> Result<T, StateError> {
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|e| StateError::git(format!("reading '{path}' from the state"), e))?;
        decode(path, &blob.data)
    }

    // Typed accessors: the layout of DESIGN.md lives here and nowhere else.

    pub(crate) fn meta(&self) -> Result<Option<SprintMeta>, StateError> {
        self.read("sprint.yaml")
    }
    pub(crate) fn put_meta(&mut self, meta: &SprintMeta) -> Result<(), StateError> {
        self.write("sprint.yaml", meta)
    }
    pub(crate) fn feature_names(&self) -> Result<Vec<String>, StateError> {
        self.list("features")
    }
    pub(crate) fn feature(&self, name: &str) -> Result<Option<Feature>, StateError> {
        self.read(&format!("features/{name}/feature.yaml"))
    }
    pub(crate) fn put_feature(&mut self, feature: &Feature) -> Result<(), StateError> {
        self.write(&format!("features/{}/feature.yaml", feature.name), feature)
    }
    pub(crate) fn task_ids(&self, feature: &str) -> Result<Vec<String>, StateError> {
        self.list(&format!("features/{feature}/tasks"))
    }
    /// The task `id` of `feature`, if recorded.
    pub fn task(&self, feature: &str, id: &str) -> Result<Option<Task>, StateError> {
        self.read(&task_path(feature, id))
    }
    /// Writes `task` under `feature`, replacing any earlier record.
    pub(crate) fn put_task(&mut self, feature: &str, task: &Task) -> Result<(), StateError> {
        self.write(&task_path(feature, &task.id), task)
    }
    /// All readable tasks of a feature, in tasks.md order (hand-added ones
    /// last, by id). A record that does not parse is quarantined: left out
    /// here (see [`Txn::tasks_and_quarantined`]), so one broken file does not
    /// stop the rest of the feature.
    pub fn tasks(&self, feature: &str) -> Result<Vec<Task>, StateError> {
        Ok(self.tasks_and_quarantined(feature)?.0)
    }

    /// The readable tasks, and the id and error of each that is not.
    pub(crate) fn tasks_and_quarantined(
        &self,
        feature: &str,
    ) -> Result<(Vec<Task>, Vec<Unreadable>), StateError> {
        let mut tasks = Vec::new();
        let mut broken = Vec::new();
        for id in self.task_ids(feature)? {
            match self.task(feature, &id) {
                Ok(Some(t)) => tasks.push(t),
                Ok(None) => {}
                Err(e @ StateError::Yaml { .. }) => broken.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        sort_tasks(&mut tasks);
        Ok((tasks, broken))
    }
    pub(crate) fn convoy_ids(&self, feature: &str) -> Result<Vec<String>, StateError> {
        self.list(&format!("features/{feature}/convoys"))
    }
    pub(crate) fn convoy(&self, feature: &str, id: &str) -> Result<Option<Convoy>, StateError> {
        self.read(&format!("features/{feature}/convoys/{id}.yaml"))
    }
    pub(crate) fn put_convoy(&mut self, feature: &str, convoy: &Convoy) -> Result<(), StateError> {
        self.write(
            &format!("features/{feature}/convoys/{}.yaml", convoy.id),
            convoy,
        )
    }
    /// Ids of the live agents: those under `agents/` (finished agents of
    /// finished tasks move to `archive/agents/`, see [`Txn::archive_agent`]).
    pub(crate) fn agent_ids(&self) -> Result<Vec<String>, StateError> {
        self.list("agents")
    }
    /// Ids of the archived agents.
    pub(crate) fn archived_agent_ids(&self) -> Result<Vec<String>, StateError> {
        self.list(ARCHIVED_AGENTS)
    }
    /// An archived agent's record.
    pub(crate) fn archived_agent(&self, id: &str) -> Result<Option<Agent>, StateError> {
        self.read(&format!("{ARCHIVED_AGENTS}/{id}.yaml"))
    }
    /// Every agent record, live and archived, by id. Records that do not
    /// parse are left out, as in a [`Snapshot`](super::Snapshot).
    pub(crate) fn all_agents(&self) -> Result<Vec<Agent>, StateError> {
        let mut out = Vec::new();
        for id in self.agent_ids()? {
            if let Ok(Some(a)) = self.agent(&id) {
                out.push(a);
            }
        }
        for id in self.archived_agent_ids()? {
            if let Ok(Some(a)) = self.archived_agent(&id) {
                out.push(a);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }
    /// Moves a live agent's record to the archive: out of what a snapshot
    /// reads, still in `git log refs/ai-sprint` and [`Txn::all_agents`].
    /// Agent ids never repeat, so an archived id is never live again. The
    /// run is added to its profile's tally in `sprint.yaml` here, whoever
    /// archives it, so `git sprint agents` counts every run once.
    pub(crate) fn archive_agent(&mut self, agent: &Agent) -> Result<(), StateError> {
        self.write(&format!("{ARCHIVED_AGENTS}/{}.yaml", agent.id), agent)?;
        self.remove_agent(&agent.id);
        if let Some(mut meta) = self.meta()? {
            meta.profiles
                .entry(agent.profile.clone())
                .or_default()
                .add(agent);
            self.put_meta(&meta)?;
        }
        Ok(())
    }
    pub(crate) fn agent(&self, id: &str) -> Result<Option<Agent>, StateError> {
        self.read(&format!("agents/{id}.yaml"))
    }
    pub(crate) fn put_agent(&mut self, agent: &Agent) -> Result<(), StateError> {
        self.write(&format!("agents/{}.yaml", agent.id), agent)
    }
    pub(crate) fn remove_agent(&mut self, id: &str) {
        self.remove(&format!("agents/{id}.yaml"));
    }

    fn message(&self, actor: &Actor) -> String {
        let subject = self
            .subject
            .clone()
            .unwrap_or_else(|| match self.transitions.as_slice() {
                [] if !self.repairs.is_empty() => format!("sprint: {}", self.repairs[0]),
                [] => {
                    // Every commit on the ref is one readable transition; a
                    // write that says nothing about itself is a bug in its
                    // caller. Release builds still name what changed.
                    let paths: Vec<&str> = self
                        .writes
                        .keys()
                        .map(|p| p.strip_suffix(".yaml").unwrap_or(p))
                        .filter(|p| *p != "sprint")
                        .collect();
                    debug_assert!(
                        false,
                        "a state transaction with no subject and no transition wrote {paths:?}"
                    );
                    format!("sprint: {} changed", paths.join(", "))
                }
                [t] if t.task.is_empty() => format!("sprint: {} -> {}", t.from, t.to),
                [t] => format!("{}: {} -> {}", t.task, t.from, t.to),
                [t, rest @ ..] => format!(
                    "{}: {} -> {} (+{} more)",
                    if t.task.is_empty() { "sprint" } else { &t.task },
                    t.from,
                    t.to,
                    rest.len()
                ),
            });
        let mut msg = subject;
        msg.push_str("\n\n");
        for t in &self.transitions {
            if !t.task.is_empty() {
                msg.push_str(&format!("Sprint-Task: {}\n", t.task));
            }
            msg.push_str(&format!("Sprint-From: {}\nSprint-To: {}\n", t.from, t.to));
            if let Some(reason) = &t.reason {
                msg.push_str(&format!("Sprint-Reason: {}\n", one_line(reason)));
            }
            if let Some(policy) = &t.policy {
                msg.push_str(&format!("Sprint-Policy: {}\n", one_line(policy)));
            }
        }
        for r in &self.repairs {
            msg.push_str(&format!("Sprint-Repair: {}\n", one_line(r)));
        }
        for d in &self.decisions {
            // One line of JSON already (newlines are escaped in it); left
            // as it is, so the record reads back exactly.
            msg.push_str(&format!("Sprint-Decision: {d}\n"));
        }
        msg.push_str(&format!("Sprint-Actor: {}\n", actor.name));
        msg
    }
}

/// Where archived agent records live.
pub(crate) const ARCHIVED_AGENTS: &str = "archive/agents";

/// A task record that does not parse: its id and the error.
pub(crate) type Unreadable = (String, StateError);

/// The tree path of task `id` of `feature` on the state ref.
pub(crate) fn task_path(feature: &str, id: &str) -> String {
    format!("features/{feature}/tasks/{id}.yaml")
}

/// tasks.md order first; tasks added by hand (line 0) after, by id.
pub(crate) fn sort_tasks(tasks: &mut [Task]) {
    tasks.sort_by(|a, b| {
        let key = |t: &Task| (t.line == 0, t.line, natural_key(&t.id));
        key(a).cmp(&key(b))
    });
}

/// `T2` before `T10`: digits compare as numbers.
pub(crate) fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut digits = String::new();
    let mut text = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !text.is_empty() {
                out.push((u64::MAX, std::mem::take(&mut text)));
            }
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
                digits.clear();
            }
            text.push(c);
        }
    }
    if !digits.is_empty() {
        out.push((digits.parse().unwrap_or(u64::MAX), String::new()));
    }
    if !text.is_empty() {
        out.push((u64::MAX, text));
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, StateError> {
    serde_yaml::from_slice(bytes).map_err(|source| StateError::Yaml {
        path: path.to_owned(),
        source,
    })
}

/// The result of a transaction: what the operation returned, and the state
/// commit it made (none when it changed nothing).
#[derive(Debug)]
pub struct Committed<T> {
    pub(crate) value: T,
    /// The state commit made, if any.
    pub commit: Option<ObjectId>,
}

/// The sprint state of one repository, shared by all its worktrees.
pub struct Store {
    repo: gix::Repository,
    /// The repository's object cache, fed with what this store writes.
    kept: Kept,
    /// What the last [`Snapshot::read`](super::Snapshot::read) parsed, by
    /// tree and blob id, so the next read parses only what changed.
    cache: std::sync::Mutex<SnapshotCache>,
    /// The remote that holds the state (`sprint.remote`), if any: writes go
    /// through it and the local ref follows it.
    remote: Option<Remote>,
    /// How names in a state tree are checked (git's `core.protect*`).
    protect: gix::validate::path::component::Options,
    /// The last `sprint.yaml` blob found to be a readable record of a
    /// schema this build reads, so a transaction on an unchanged one does
    /// not parse it again.
    meta_ok: std::sync::Mutex<Option<ObjectId>>,
    /// Queued transitions dropped on replay, until [`Store::take_dropped`].
    dropped: std::sync::Mutex<Vec<Dropped>>,
}

/// The actor of the commits a drain outside any write makes (drop records).
const DRAINER: &str = "sprint";

impl Store {
    /// Opens the repository containing `dir`.
    pub fn discover(dir: &Path) -> Result<Self, StateError> {
        let repo = gix::discover(dir).map_err(|e| StateError::NotARepo {
            path: dir.to_owned(),
            source: Box::new(e),
        })?;
        let mut store = Store::from_repo(repo);
        if store.remote.is_none() {
            // `remote:` in the committed .git-sprint.yaml, for every clone.
            store.remote = crate::config::state_remote(&store.repo)
                .and_then(|name| Remote::named(&store.repo, &name));
        }
        Ok(store)
    }

    /// A store over an already opened repository.
    pub fn from_repo(mut repo: gix::Repository) -> Self {
        // A transaction reads the same few trees several times (path lookups,
        // the schema check, the re-read after a lost race) and the ones the
        // last transaction wrote: keep them decoded.
        let kept = Kept::install(&mut repo);
        let remote = Remote::configured(&repo);
        let protect = protect_options(&repo);
        Store {
            repo,
            kept,
            cache: Default::default(),
            remote,
            protect,
            meta_ok: Default::default(),
            dropped: Default::default(),
        }
    }

    /// The remote that holds the state (`sprint.remote`), if one is set.
    pub fn remote_name(&self) -> Option<&str> {
        self.remote.as_ref().map(|r| r.name.as_str())
    }

    /// Extra environment for the git processes that talk to the remote.
    /// Tests and benches use it to keep git off the user's configuration.
    #[doc(hidden)]
    pub fn set_remote_env(&mut self, env: Vec<(std::ffi::OsString, std::ffi::OsString)>) {
        if let Some(r) = &mut self.remote {
            r.set_env(env);
        }
    }

    /// Sets `refname` to `id` here and, with a remote, on the remote too
    /// (forced: for refs with a single writer, never the state).
    pub(crate) fn publish_ref(
        &self,
        refname: &str,
        id: ObjectId,
        why: &str,
    ) -> Result<(), StateError> {
        debug_assert!(refname != STATE_REF && refname != BACKUP_REF);
        self.repo
            .reference(refname, id, PreviousValue::Any, why)
            .map_err(|e| StateError::git(format!("updating {refname}"), e))?;
        if let Some(remote) = &self.remote {
            remote.push_forced(refname, id)?;
        }
        Ok(())
    }

    /// Brings the refs matching `pattern` (one `*`) from the remote, when
    /// there is one.
    pub(crate) fn fetch_refs(&self, pattern: &str) -> Result<(), StateError> {
        match &self.remote {
            Some(remote) => remote.fetch_refs(pattern),
            None => Ok(()),
        }
    }

    /// Whether the remote's state differs from the local copy, asked
    /// without fetching (false without a remote).
    pub(crate) fn remote_moved(&self) -> Result<bool, StateError> {
        let Some(remote) = &self.remote else {
            return Ok(false);
        };
        Ok(remote.remote_tip()? != self.tip()?)
    }

    /// Brings the local copy up to the remote's state (a no-op without a
    /// remote): reads see what other machines wrote. Transitions queued
    /// while the remote did not answer are replayed there first, never
    /// overwritten. Returns whether the local tip moved.
    pub fn refresh(&self) -> Result<bool, StateError> {
        let Some(remote) = &self.remote else {
            return Ok(false);
        };
        let before = self.tip()?;
        self.sync(remote, &Actor::named(DRAINER))?;
        Ok(self.tip()? != before)
    }

    pub(crate) fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// The current state commit, if the ref exists.
    pub(crate) fn tip(&self) -> Result<Option<ObjectId>, StateError> {
        let reference = self
            .repo
            .try_find_reference(STATE_REF)
            .map_err(|e| StateError::git("reading refs/ai-sprint", e))?;
        let Some(mut r) = reference else {
            return Ok(None);
        };
        // A direct ref, as the store writes it, is read without peeling:
        // peeling reads the commit object only to learn it is no tag.
        if let Some(id) = r.target().try_id() {
            return Ok(Some(id.to_owned()));
        }
        let id = r
            .peel_to_id()
            .map_err(|e| StateError::git("resolving refs/ai-sprint", e))?;
        Ok(Some(id.detach()))
    }

    fn root_of(&self, commit: ObjectId) -> Result<ObjectId, StateError> {
        let commit = self
            .repo
            .find_commit(commit)
            .map_err(|e| StateError::git("reading the state commit", e))?;
        let tree = commit
            .tree_id()
            .map_err(|e| StateError::git("reading the state commit's tree", e))?;
        Ok(tree.detach())
    }

    /// Runs a read-only operation on the state at the tip.
    ///
    /// A repository without `refs/ai-sprint` reads as empty state, unless
    /// it shows that it had one ([`StateError::Lost`]).
    pub fn read<T>(
        &self,
        op: impl FnOnce(&Txn<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let tip = self.tip()?;
        if tip.is_none() {
            self.refuse_if_lost()?;
        }
        let root = tip.map(|c| self.root_of(c)).transpose()?;
        let mut txn = Txn::new(&self.repo, root);
        txn.cache = Some(&self.cache);
        self.check_schema(&txn)?;
        op(&txn)
    }

    /// Runs a read-only operation on the state at `commit` (not the tip).
    pub(crate) fn read_at<T>(
        &self,
        commit: ObjectId,
        op: impl FnOnce(&Txn<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let root = self.root_of(commit)?;
        let txn = Txn::new(&self.repo, Some(root));
        self.check_schema(&txn)?;
        op(&txn)
    }

    /// Applies `op` to the current state as one commit on `refs/ai-sprint`.
    ///
    /// `op` may run several times: after a lost race it is re-applied to the
    /// new tip, so it must be a function of the state it reads. A refusal
    /// from `op` ends the transaction at once, with nothing written.
    ///
    /// A lock on the ref older than any live write is removed and the
    /// removal recorded in this commit; with `refs/ai-sprint` missing but a
    /// backup or reflog left, nothing is written ([`StateError::Lost`]).
    pub fn transact<T>(
        &self,
        actor: &Actor,
        op: impl FnMut(&mut Txn<'_>) -> Result<T, StateError>,
    ) -> Result<Committed<T>, StateError> {
        self.transact_with(actor, false, op)
    }

    /// Like [`Store::transact`], but may start a new state where one is
    /// lost: `git sprint recover --fresh`, a person's explicit choice.
    pub(crate) fn transact_over_lost<T>(
        &self,
        actor: &Actor,
        op: impl FnMut(&mut Txn<'_>) -> Result<T, StateError>,
    ) -> Result<Committed<T>, StateError> {
        self.transact_with(actor, true, op)
    }

    fn transact_with<T>(
        &self,
        actor: &Actor,
        over_lost: bool,
        mut op: impl FnMut(&mut Txn<'_>) -> Result<T, StateError>,
    ) -> Result<Committed<T>, StateError> {
        if let Some(remote) = &self.remote {
            return self.transact_remote(remote, actor, over_lost, op);
        }
        let mut rng = Jitter::seeded();
        // Stale locks this write removed: recorded in the commit it makes.
        let mut repairs: Vec<String> = Vec::new();
        let mut last_lock: Option<lock::Held> = None;
        let _turn = writers::turn(self.repo.common_dir(), |n| rng.backoff(n));
        for attempt in 0..MAX_ATTEMPTS {
            let tip = self.tip()?;
            if tip.is_none() && !over_lost {
                self.refuse_if_lost()?;
            }
            let root = tip.map(|c| self.root_of(c)).transpose()?;
            let mut txn = Txn::new(&self.repo, root);
            txn.cache = Some(&self.cache);
            self.check_schema(&txn)?;
            let value = op(&mut txn)?;
            txn.repairs.extend(repairs.iter().cloned());
            if txn.is_empty() && txn.repairs.is_empty() {
                return Ok(Committed {
                    value,
                    commit: None,
                });
            }
            if !self.has_meta(&txn)? {
                txn.put_meta(&SprintMeta::new(&clock::now_rfc3339()))?;
            }
            let tree = self.write_tree(root, &txn)?;
            let changed = Some(tree) != root;
            if !changed && txn.repairs.is_empty() {
                return Ok(Committed {
                    value,
                    commit: None,
                });
            }
            let commit = self.write_commit(actor, &txn, tree, tip)?;
            let err = match self.swap(actor, tip, commit, &txn) {
                Ok(()) => {
                    return Ok(Committed {
                        value,
                        // A commit that only records a repair changed nothing
                        // the operation asked for.
                        commit: changed.then_some(commit),
                    });
                }
                Err(err) => err,
            };
            match classify(&err) {
                SwapFailure::Raced => {}
                SwapFailure::Locked => {
                    last_lock = None;
                    for path in self.lock_paths() {
                        let aside = self.repo.common_dir();
                        if let Some(gone) = lock::clear_if_stale(&path, lock::STALE_AFTER, aside)? {
                            repairs.push(format!(
                                "removed stale lock {} ({}s old; its writer is gone)",
                                self.display_in_repo(&gone.path),
                                gone.age.as_secs()
                            ));
                        } else if let Some(h) = lock::held(&path) {
                            last_lock = Some(h);
                        }
                    }
                }
                // Anything else is real, unless the tip moved meanwhile (then
                // the failure may be the race itself, and a retry tells).
                SwapFailure::Other if self.tip()? != tip => {}
                SwapFailure::Other => {
                    return Err(StateError::git("updating refs/ai-sprint", err));
                }
            }
            tracing::debug!(attempt, error = %err, "state write raced; retrying");
            std::thread::sleep(rng.backoff(attempt));
        }
        Err(match last_lock {
            Some(held) => StateError::Locked {
                path: held.path,
                age_secs: held.age.as_secs(),
            },
            None => StateError::Busy {
                attempts: MAX_ATTEMPTS,
            },
        })
    }

    /// [`Store::transact`] through the remote: apply, push with a lease on
    /// the value applied to; a rejected push is a lost race, so the remote
    /// is fetched and the operation runs again on what it has now.
    ///
    /// The first attempt applies to the local copy without asking the
    /// remote (the lease checks it anyway), so an uncontended write costs
    /// one push. Only an answer that did not go through a lease — a refusal
    /// or a no-op — is checked against a fresh fetch before it is given.
    ///
    /// A remote that does not answer does not stop the write: it is
    /// committed to the local ref and queued (see [`super::queue`]), and
    /// transitions queued earlier are replayed first whenever it answers.
    fn transact_remote<T>(
        &self,
        remote: &Remote,
        actor: &Actor,
        over_lost: bool,
        mut op: impl FnMut(&mut Txn<'_>) -> Result<T, StateError>,
    ) -> Result<Committed<T>, StateError> {
        let mut rng = Jitter::seeded();
        // `None` until fetched: then whether the remote has state at all.
        let mut fetched: Option<bool> = None;
        // Set once the remote did not answer in this write: later attempts
        // (local races) do not wait for it again.
        let mut offline: Option<StateError> = None;
        if queue::queue(&self.repo)?.is_some() {
            match self.sync(remote, actor) {
                Ok(has) => fetched = Some(has),
                Err(err @ StateError::Unreachable { .. }) => offline = Some(err),
                Err(err) => return Err(err),
            }
        }
        for attempt in 0..MAX_ATTEMPTS {
            let tip = self.tip()?;
            if tip.is_none() && !over_lost {
                self.refuse_if_lost()?;
            }
            let root = tip.map(|c| self.root_of(c)).transpose()?;
            let mut txn = Txn::new(&self.repo, root);
            txn.cache = Some(&self.cache);
            self.check_schema(&txn)?;
            let value = match op(&mut txn) {
                Ok(value) => value,
                Err(_) if fetched.is_none() && offline.is_none() => {
                    match self.sync(remote, actor) {
                        Ok(has) => fetched = Some(has),
                        Err(err @ StateError::Unreachable { .. }) => offline = Some(err),
                        Err(err) => return Err(err),
                    }
                    continue;
                }
                // Offline, the local copy is the best answer there is.
                Err(err) => return Err(err),
            };
            if !self.has_meta(&txn)? && !txn.is_empty() {
                txn.put_meta(&SprintMeta::new(&clock::now_rfc3339()))?;
            }
            let tree = if txn.is_empty() {
                root
            } else {
                Some(self.write_tree(root, &txn)?)
            };
            if tree == root {
                if fetched.is_none() && offline.is_none() {
                    match self.sync(remote, actor) {
                        Ok(has) => fetched = Some(has),
                        Err(err @ StateError::Unreachable { .. }) => offline = Some(err),
                        Err(err) => return Err(err),
                    }
                    continue;
                }
                return Ok(Committed {
                    value,
                    commit: None,
                });
            }
            let tree = tree.expect("a changed tree exists");
            let commit = self.write_commit(actor, &txn, tree, tip)?;
            if let Some(err) = offline.take() {
                // A clone that never had state has nothing to queue onto.
                let Some(tip) = tip else {
                    return Err(err);
                };
                match queue::commit_offline(&self.repo, actor, tip, commit, &remote.name) {
                    Ok(queued) => {
                        tracing::warn!(error = %err, "the sprint remote does not answer; transition queued on this clone");
                        return Ok(Committed {
                            value,
                            commit: Some(queued),
                        });
                    }
                    Err(queue::CommitOffline::Ref(e))
                        if classify(&e) != SwapFailure::Other || self.tip()? != Some(tip) =>
                    {
                        tracing::debug!(attempt, error = %e, "queued write raced; retrying");
                        offline = Some(err);
                        std::thread::sleep(rng.backoff(attempt));
                        continue;
                    }
                    Err(queue::CommitOffline::Ref(e)) => {
                        return Err(StateError::git("updating refs/ai-sprint", e))
                    }
                    Err(queue::CommitOffline::State(e)) => return Err(e),
                }
            }
            // Without state on the remote the local state (if any) is the
            // base, and the lease is that the remote still has none.
            let lease = if fetched == Some(false) { None } else { tip };
            match remote.push(lease, commit) {
                Ok(Pushed::Done) => {
                    // The local ref follows; a process of this clone that
                    // fetched meanwhile already moved it there or beyond.
                    if let Err(err) = queue::follow(&self.repo, actor, tip, commit) {
                        tracing::debug!(error = %err, "local state ref already moved on");
                    }
                    return Ok(Committed {
                        value,
                        commit: Some(commit),
                    });
                }
                Ok(Pushed::Stale) => {
                    tracing::debug!(attempt, remote = %remote.name, "remote state moved; re-applying");
                    if attempt > 0 {
                        std::thread::sleep(rng.remote_backoff(attempt));
                    }
                    match self.sync(remote, actor) {
                        Ok(has) => fetched = Some(has),
                        Err(err @ StateError::Unreachable { .. }) => offline = Some(err),
                        Err(err) => return Err(err),
                    }
                }
                Err(err @ StateError::Unreachable { .. }) => offline = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(StateError::Busy {
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Refuses a state written by a newer schema than this build reads.
    ///
    /// `sprint.yaml` is parsed once per blob: transitions rarely change it,
    /// and parsing it twice per transaction (here and for
    /// [`Store::has_meta`]) was over a tenth of a transition's time.
    fn check_schema(&self, txn: &Txn<'_>) -> Result<(), StateError> {
        let id = txn.blob_id("sprint.yaml")?;
        if id.is_some() && *self.meta_ok() == id {
            return Ok(());
        }
        check_schema(txn)?;
        // Remembered only when the whole record reads; otherwise each
        // transaction reads it again and fails where it did before.
        if txn.meta().is_ok() {
            *self.meta_ok() = id;
        }
        Ok(())
    }

    /// Whether `txn`'s state has its `sprint.yaml`, as `txn.meta()` would
    /// say (and failing where it would), without parsing an unchanged one.
    fn has_meta(&self, txn: &Txn<'_>) -> Result<bool, StateError> {
        if !txn.writes.contains_key("sprint.yaml") {
            let id = txn.blob_id("sprint.yaml")?;
            if id.is_some() && *self.meta_ok() == id {
                return Ok(true);
            }
        }
        Ok(txn.meta()?.is_some())
    }

    fn meta_ok(&self) -> std::sync::MutexGuard<'_, Option<ObjectId>> {
        self.meta_ok.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetches the remote's state into the local copy, replaying queued
    /// transitions first (their drops are kept for [`Store::take_dropped`]).
    /// Returns whether the remote has state.
    fn sync(&self, remote: &Remote, actor: &Actor) -> Result<bool, StateError> {
        let (has, dropped) = queue::sync(&self.repo, remote, actor)?;
        if !dropped.is_empty() {
            for d in &dropped {
                tracing::warn!(subject = %d.subject, path = %d.path, "a queued transition was dropped: what it changed changed on the remote meanwhile");
            }
            self.dropped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(dropped);
        }
        Ok(has)
    }

    /// The transitions committed on this clone while the state remote did
    /// not answer, waiting to be replayed there; `None` when there are none
    /// (always without a remote).
    pub fn queued(&self) -> Result<Option<Queued>, StateError> {
        if self.remote.is_none() {
            return Ok(None);
        }
        queue::queued(&self.repo)
    }

    /// Replays the queued transitions on the remote now, if there are any
    /// and it answers ([`StateError::Unreachable`] if not; the queue stays).
    /// What was dropped is kept for [`Store::take_dropped`] too.
    pub fn drain(&self) -> Result<Vec<Dropped>, StateError> {
        let Some(remote) = &self.remote else {
            return Ok(Vec::new());
        };
        if queue::queue(&self.repo)?.is_none() {
            return Ok(Vec::new());
        }
        let before = self.dropped.lock().unwrap_or_else(|e| e.into_inner()).len();
        self.sync(remote, &Actor::named(DRAINER))?;
        let dropped = self.dropped.lock().unwrap_or_else(|e| e.into_inner());
        Ok(dropped[before..].to_vec())
    }

    /// The queued transitions this store dropped while replaying them
    /// (in any write, refresh or drain) since the last call: their work
    /// belongs on a side branch. Each is recorded on the remote as well
    /// (`Sprint-Dropped:`).
    pub fn take_dropped(&self) -> Vec<Dropped> {
        std::mem::take(&mut *self.dropped.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The lock files a state write takes: its refs', and `packed-refs`'s,
    /// which gix takes whenever that lock exists. Any git deleting a ref
    /// takes it (`git branch -D`, even with no packed-refs file), so one
    /// killed meanwhile left every state write failing after it.
    fn lock_paths(&self) -> [std::path::PathBuf; 3] {
        let common = self.repo.common_dir();
        [
            lock::lock_path(&common.join(STATE_REF)),
            lock::lock_path(&common.join(BACKUP_REF)),
            lock::lock_path(&common.join("packed-refs")),
        ]
    }

    /// `path` relative to the repository's git dir, for messages.
    fn display_in_repo(&self, path: &Path) -> String {
        path.strip_prefix(self.repo.common_dir())
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The commits `refs/ai-sprint`'s reflog names, newest first (a reflog
    /// outlives its ref when the ref file alone was deleted).
    pub(crate) fn reflog_tips(&self) -> Result<Vec<ObjectId>, StateError> {
        self.reflog_newest(STATE_REF, usize::MAX)
    }

    /// Up to `limit` distinct commits `name`'s reflog moved to, newest first.
    pub(super) fn reflog_newest(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<ObjectId>, StateError> {
        // Room for the longest line: a state commit's subject is in each.
        let mut buf = vec![0u8; 64 * 1024];
        let iter = self
            .repo
            .refs
            .reflog_iter_rev(name, &mut buf)
            .map_err(|e| StateError::git(format!("reading the reflog of {name}"), e))?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for line in iter.into_iter().flatten() {
            let Ok(line) = line else { continue };
            if out.len() == limit {
                break;
            }
            if !line.new_oid.is_null() && seen.insert(line.new_oid) {
                out.push(line.new_oid);
            }
        }
        Ok(out)
    }

    /// With `refs/ai-sprint` missing: refuses when the backup, the reflog
    /// or the tool's branches show that a state existed, so nothing silently
    /// starts over (worktrees do not count here: a first `spawn` makes its
    /// worktree before the state's first commit).
    fn refuse_if_lost(&self) -> Result<(), StateError> {
        let mut evidence = self.evidence()?;
        evidence.worktrees.clear();
        if evidence.is_empty() {
            return Ok(());
        }
        Err(StateError::Lost {
            evidence: evidence.to_string(),
        })
    }

    /// Writes the tree of `root` with `txn`'s writes applied: the new blobs
    /// and every tree on their paths, nothing else.
    ///
    /// gix's checked editor looks up every entry of each tree it writes
    /// (`has_object`, one `stat` of a loose object each): with 100 features
    /// of 100 tasks that was ~210 lookups per transition, the largest part
    /// of its time. The entries of a state tree are known to exist (they
    /// come from the tree they replace, or were written just before), so
    /// the plain editor is used and only the names this transaction adds
    /// are validated, with the repository's own `core.protect*` settings.
    fn write_tree(&self, root: Option<ObjectId>, txn: &Txn<'_>) -> Result<ObjectId, StateError> {
        let base = root.unwrap_or_else(|| ObjectId::empty_tree(self.repo.object_hash()));
        let mut editor = self
            .repo
            .edit_tree(base)
            .map_err(|e| StateError::git("editing the state tree", e))?
            .detach();
        for (path, content) in &txn.writes {
            match content {
                Some(bytes) => {
                    self.validate_path(path)?;
                    let blob = self
                        .write_kept(Kind::Blob, bytes)
                        .map_err(|e| StateError::git(format!("writing '{path}'"), e))?;
                    editor
                        .upsert(path.split('/'), gix::object::tree::EntryKind::Blob, blob)
                        .map_err(|e| StateError::git(format!("staging '{path}'"), e))?;
                }
                None => {
                    editor
                        .remove(path.split('/'))
                        .map_err(|e| StateError::git(format!("removing '{path}'"), e))?;
                }
            }
        }
        editor
            .write(|tree| {
                let mut buf = Vec::new();
                tree.write_to(&mut buf).map_err(gix::Error::from_error)?;
                self.write_kept(Kind::Tree, &buf)
            })
            .map_err(|e| StateError::git("writing the state tree", e))
    }

    /// Writes an object and keeps it in memory, where the next transaction
    /// reads it (see [`Kept`]). Like gix's own writes, an object the
    /// database already has is not written again.
    fn write_kept(&self, kind: Kind, data: &[u8]) -> Result<ObjectId, gix::Error> {
        let id = gix::objs::compute_hash(self.repo.object_hash(), kind, data)
            .map_err(gix::Error::from_error)?;
        if !self.repo.objects.exists_without_refresh(&id) {
            self.repo
                .objects
                .write_buf_with_known_id(kind, data, id)
                .map_err(gix::Error::from_error)?;
        }
        self.kept.keep(id, kind, data);
        Ok(id)
    }

    /// Refuses a path whose names git would refuse in a tree (`..`, `.git`,
    /// an empty name, and on the platforms that need it NTFS/HFS aliases).
    fn validate_path(&self, path: &str) -> Result<(), StateError> {
        let protect = self.protect;
        for name in path.split('/') {
            gix::validate::path::component(name.into(), None, protect).map_err(|e| {
                StateError::git(format!("staging '{path}'"), gix::Error::from_error(e))
            })?;
        }
        Ok(())
    }

    fn write_commit(
        &self,
        actor: &Actor,
        txn: &Txn<'_>,
        tree: ObjectId,
        parent: Option<ObjectId>,
    ) -> Result<ObjectId, StateError> {
        // Written directly rather than with `Repository::new_commit_as`,
        // which reads the commit back from the disk afterwards.
        let commit = commit_object(signature(actor), txn.message(actor), tree, parent);
        let mut buf = Vec::new();
        commit
            .write_to(&mut buf)
            .map_err(|e| StateError::git("writing the state commit", gix::Error::from_error(e)))?;
        self.write_kept(Kind::Commit, &buf)
            .map_err(|e| StateError::git("writing the state commit", e))
    }

    fn swap(
        &self,
        actor: &Actor,
        expected: Option<ObjectId>,
        new: ObjectId,
        txn: &Txn<'_>,
    ) -> Result<(), gix::Error> {
        let sig = signature(actor);
        let mut buf = gix::date::parse::TimeBuf::default();
        let subject = txn.message(actor);
        let subject = subject.lines().next().unwrap_or_default();
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: true,
                    message: format!("git-sprint: {subject}").into(),
                },
                expected: match expected {
                    Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
                    None => PreviousValue::MustNotExist,
                },
                new: Target::Object(new),
            },
            name: STATE_REF.try_into().expect("valid ref name"),
            deref: false,
        };
        // The backup ref moves only once a minute (see `backup`); its reflog
        // gets every tip, after the swap, when the tip is certain.
        let move_backup = backup::ref_is_due(self.repo.common_dir());
        let backup_edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: true,
                    message: "git-sprint: backup of refs/ai-sprint".into(),
                },
                // Locked together with the main ref: writers are serialised
                // by its compare-and-swap, so the backup only moves forward.
                expected: PreviousValue::Any,
                new: Target::Object(new),
            },
            name: BACKUP_REF.try_into().expect("valid ref name"),
            deref: false,
        };
        let edits = if move_backup {
            vec![edit, backup_edit]
        } else {
            vec![edit]
        };
        self.repo
            .edit_references_as(edits, Some(sig.to_ref(&mut buf)))?;
        if !move_backup {
            let message = format!("git-sprint: backup of refs/ai-sprint: {subject}");
            backup::log(self.repo.common_dir(), expected, new, sig, &message);
        }
        Ok(())
    }
}

/// The names git refuses in a tree here: `core.protectNTFS` (on unless
/// turned off), `core.protectHFS` (on on macOS) and
/// `gitoxide.core.protectWindows` (on on Windows), as gix's own editor
/// reads them.
fn protect_options(repo: &gix::Repository) -> gix::validate::path::component::Options {
    let config = repo.config_snapshot();
    gix::validate::path::component::Options {
        protect_windows: config
            .boolean("gitoxide.core.protectWindows")
            .unwrap_or(cfg!(windows)),
        protect_hfs: config
            .boolean("core.protectHFS")
            .unwrap_or(cfg!(target_os = "macos")),
        protect_ntfs: config.boolean("core.protectNTFS").unwrap_or(true),
    }
}

fn check_schema(txn: &Txn<'_>) -> Result<(), StateError> {
    if let Some(raw) = txn.raw("sprint.yaml")? {
        // Read only the version first: a newer schema may not parse as ours.
        #[derive(serde::Deserialize)]
        struct Version {
            schema: u32,
        }
        let v: Version = decode("sprint.yaml", &raw)?;
        if v.schema > SCHEMA_VERSION {
            return Err(StateError::TooNew {
                found: v.schema,
                supported: SCHEMA_VERSION,
            });
        }
    }
    Ok(())
}

/// The state commit of `tree` on `parent`, by `sig` as author and committer:
/// the object `Repository::new_commit_as` writes.
fn commit_object(
    sig: gix::actor::Signature,
    message: String,
    tree: ObjectId,
    parent: Option<ObjectId>,
) -> gix::objs::Commit {
    gix::objs::Commit {
        message: message.into(),
        tree,
        author: sig.clone(),
        committer: sig,
        encoding: None,
        parents: parent.into_iter().collect(),
        extra_headers: Vec::new(),
    }
}

pub(super) fn signature(actor: &Actor) -> gix::actor::Signature {
    gix::actor::Signature {
        name: actor.name.as_str().into(),
        email: actor.email.as_str().into(),
        time: gix::date::Time::new(clock::now(), 0),
    }
}

/// Why a compare-and-swap of the ref failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SwapFailure {
    /// Another writer moved (or created) the ref first.
    Raced,
    /// A `.lock` file was in the way.
    Locked,
    Other,
}

/// gix 0.90 reports errors as a tree: a lost compare-and-swap carries
/// `ReferenceOutOfDate` (or `MustNotExist` when the ref appeared), a held
/// lock the `AlreadyExists` I/O error of creating the `.lock` file.
fn classify(err: &gix::Error) -> SwapFailure {
    use gix::refs::file::transaction::prepare::{MustNotExist, ReferenceOutOfDate};
    if err.downcast_any_ref::<ReferenceOutOfDate>().is_some()
        || err.downcast_any_ref::<MustNotExist>().is_some()
    {
        SwapFailure::Raced
    } else if err
        .downcast_any_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists)
    {
        SwapFailure::Locked
    } else {
        SwapFailure::Other
    }
}

/// Jittered exponential backoff so racing writers spread out.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(1);
        Jitter(nanos ^ ((std::process::id() as u64) << 32) | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: plenty for spreading sleeps.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn backoff(&mut self, attempt: u32) -> Duration {
        let cap_us = (200u64 << attempt.min(7)).min(25_000);
        Duration::from_micros(self.next() % cap_us + 50)
    }

    /// Longer than [`Jitter::backoff`]: a round trip to a remote takes
    /// milliseconds, so writers that lost spread out over a few of them.
    fn remote_backoff(&mut self, attempt: u32) -> Duration {
        let cap_us = (2_000u64 << attempt.min(7)).min(250_000);
        Duration::from_micros(self.next() % cap_us + 100)
    }
}

#[cfg(test)]
impl Store {
    /// A store in a fresh repository that reads no global or system
    /// config, for unit tests; the directory goes when the guard drops.
    pub(crate) fn temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = gix::ThreadSafeRepository::init_opts(
            dir.path(),
            gix::create::Kind::WithWorktree,
            gix::create::Options::default(),
            gix::open::Options::isolated(),
        )
        .expect("a repository in the temp dir")
        .to_thread_local();
        (dir, Store::from_repo(repo))
    }

    /// Adds task `id` to feature `f`, for unit tests; returns the commit.
    pub(crate) fn add_test_task(&self, id: &str) -> ObjectId {
        self.transact(&Actor::named("tester"), |txn| {
            super::ops::add_task(
                txn,
                "f",
                &super::ops::NewTask {
                    id: Some(id.into()),
                    title: format!("task {id}"),
                    ..Default::default()
                },
            )
        })
        .expect("adding a task")
        .commit
        .expect("a commit")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hint::Hint;
    use crate::state::{ops, Snapshot};

    fn store() -> (tempfile::TempDir, Store) {
        Store::temp()
    }

    fn who() -> Actor {
        Actor::named("tester")
    }

    fn add(store: &Store, id: &str) {
        store.add_test_task(id);
    }

    /// Replaces the bytes of `path` in the state, as a hand edit would.
    fn overwrite(store: &Store, path: &str, bytes: &str) {
        store
            .transact(&who(), |txn| {
                txn.writes
                    .insert(path.to_owned(), Some(bytes.as_bytes().to_vec()));
                txn.subject(format!("test: overwrite {path}"));
                Ok(())
            })
            .unwrap();
    }

    /// Regression: a transaction that set no subject and recorded no
    /// transition was committed as "update sprint state", which says nothing
    /// in `git log refs/ai-sprint`.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "no subject and no transition")]
    fn update_sprint_state_commit_without_a_subject_is_refused() {
        let (_dir, store) = store();
        add(&store, "T1");
        let _ = store.transact(&who(), |txn| {
            let mut t = txn.task("f", "T1")?.expect("T1 was added");
            t.title = "renamed".into();
            txn.put_task("f", &t)
        });
    }

    /// The tree is written without gix's checked editor, so the names a
    /// transaction adds are checked here: one git would refuse is an
    /// error and nothing is written.
    #[test]
    fn a_name_git_refuses_in_a_tree_is_not_written() {
        let (_dir, store) = store();
        add(&store, "T1");
        let tip = store.tip().unwrap();
        for path in [
            "features/.git/x.yaml",
            "features/../x.yaml",
            "features//x.yaml",
        ] {
            let err = store
                .transact(&who(), |txn| {
                    txn.writes.insert(path.to_owned(), Some(b"a: 1\n".to_vec()));
                    txn.subject(format!("test: write {path}"));
                    Ok(())
                })
                .expect_err(path);
            assert!(err.to_string().contains(path), "{path}: {err}");
            assert_eq!(store.tip().unwrap(), tip, "{path} moved the state");
        }
    }

    /// Each tree on a written path is replaced and every other entry kept:
    /// `git fsck` finds every object the new trees name.
    #[test]
    fn a_transition_writes_trees_whose_entries_all_exist() {
        let (dir, store) = store();
        add(&store, "T1");
        add(&store, "T2");
        store
            .transact(&who(), |txn| {
                let r = ops::TaskRef::new("f", "T2");
                ops::move_task(txn, &r, crate::state::TaskStatus::InProgress, None, false)
            })
            .unwrap();
        let fsck = std::process::Command::new("git")
            .args(["fsck", "--no-progress", "--strict", "refs/ai-sprint"])
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        assert!(
            fsck.status.success(),
            "{}",
            String::from_utf8_lossy(&fsck.stderr)
        );
        let tasks = store.read(|txn| txn.tasks("f")).unwrap();
        let ids: Vec<_> = tasks.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["T1", "T2"]);
    }

    /// The commit is written directly; it must be the very object gix's
    /// `new_commit_as` writes for the same inputs.
    #[test]
    fn a_state_commit_is_the_object_new_commit_as_writes() {
        let (_dir, store) = store();
        add(&store, "T1");
        let tip = store.tip().unwrap().unwrap();
        let tree = store.root_of(tip).unwrap();
        let sig = signature(&who());
        let message = "f/T1: todo -> in_progress\n\nSprint-Task: f/T1\n".to_owned();
        let ours = store
            .repo
            .write_object(commit_object(sig.clone(), message.clone(), tree, Some(tip)))
            .unwrap()
            .detach();
        let mut buf = gix::date::parse::TimeBuf::default();
        let sig_ref = sig.to_ref(&mut buf);
        let theirs = store
            .repo
            .new_commit_as(sig_ref, sig_ref, message, tree, Some(tip))
            .unwrap()
            .id;
        assert_eq!(ours, theirs);
    }

    #[test]
    fn with_the_state_ref_deleted_no_write_starts_a_new_state() {
        let (_dir, store) = store();
        add(&store, "T1");
        let tip = store.tip().unwrap().unwrap();
        store
            .repo
            .find_reference(STATE_REF)
            .unwrap()
            .delete()
            .unwrap();
        let err = store
            .transact(&who(), |txn| {
                txn.put_meta(&SprintMeta::new("now"))?;
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, StateError::Lost { .. }), "{err}");
        assert!(err.to_string().contains(&tip.to_string()[..7]), "{err}");
        assert!(err.hint().unwrap().contains("git sprint recover"));
        let read = store.read(Snapshot::read).unwrap_err();
        assert!(matches!(read, StateError::Lost { .. }), "{read}");
        assert_eq!(store.tip().unwrap(), None, "nothing was written");
    }

    #[test]
    fn a_stale_lock_is_removed_and_the_removal_recorded_in_the_commit() {
        let (_dir, store) = store();
        add(&store, "T1");
        let lock = lock::lock_path(&store.repo.common_dir().join(STATE_REF));
        std::fs::write(&lock, format!("{}\n", store.tip().unwrap().unwrap())).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&lock)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(120))
            .unwrap();
        // Long past the stale bound: the write removes it and goes on.
        add(&store, "T2");
        assert!(!lock.exists());
        let tip = store.tip().unwrap().unwrap();
        let msg = store
            .repo
            .find_commit(tip)
            .unwrap()
            .message_raw()
            .unwrap()
            .to_string();
        assert!(
            msg.contains("Sprint-Repair: removed stale lock refs/ai-sprint.lock ("),
            "{msg}"
        );
        assert!(msg.starts_with("f/T2: none -> todo"), "{msg}");
    }

    #[test]
    fn a_record_that_does_not_parse_is_quarantined_and_the_rest_reads() {
        let (_dir, store) = store();
        add(&store, "T1");
        add(&store, "T2");
        overwrite(&store, &task_path("f", "T2"), "id: T2\nstatus: flying\n");
        overwrite(&store, "agents/a1.yaml", "{{ not yaml");
        let snapshot = store.read(Snapshot::read).unwrap();
        let ids: Vec<_> = snapshot.features[0].tasks.iter().map(|t| &t.id).collect();
        assert_eq!(ids, ["T1"]);
        assert!(snapshot.is_quarantined("f", "T2"));
        assert!(snapshot.has_quarantined_tasks("f"));
        let q: Vec<_> = snapshot
            .quarantined
            .iter()
            .map(|q| (q.kind, q.path.as_str(), q.fix.as_str()))
            .collect();
        assert_eq!(
            q,
            [
                ("task", "features/f/tasks/T2.yaml", "git sprint repair f/T2"),
                (
                    "agent",
                    "agents/a1.yaml",
                    "restore it from an earlier state commit (git log refs/ai-sprint -- agents/a1.yaml)"
                ),
            ]
        );
        assert!(
            snapshot.quarantined[0].error.contains("flying"),
            "{:?}",
            snapshot.quarantined[0]
        );
        // Reading that one task is still an error, with the fix as hint.
        let err = store.read(|txn| txn.task("f", "T2")).unwrap_err();
        assert!(
            err.hint().unwrap().contains("git sprint repair f/T2"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod snapshot_cache_tests {
    use super::*;
    use crate::state::{archive_finished_agents, ops, AgentState, Snapshot, TaskStatus};

    fn store() -> (tempfile::TempDir, Store) {
        Store::temp()
    }

    fn add(store: &Store, feature: &str, id: &str) {
        store
            .transact(&Actor::named("tester"), |txn| {
                ops::add_task(
                    txn,
                    feature,
                    &ops::NewTask {
                        id: Some(id.into()),
                        title: format!("task {id}"),
                        ..Default::default()
                    },
                )
            })
            .unwrap();
    }

    fn parses(store: &Store) -> usize {
        store.cache.lock().unwrap().feature_parses
    }

    /// What the uncached read makes of the tip, for comparison.
    fn plain(store: &Store) -> String {
        let tip = store.tip().unwrap().unwrap();
        let snapshot = store.read_at(tip, Snapshot::read).unwrap();
        serde_json::to_string(&snapshot).unwrap()
    }

    #[test]
    fn a_second_read_after_a_change_to_one_feature_parses_only_that_feature() {
        let (_dir, store) = store();
        for f in ["a", "b", "c"] {
            add(&store, f, "T1");
            add(&store, f, "T2");
        }
        let first = store.read(Snapshot::read).unwrap();
        assert_eq!(first.features.len(), 3);
        assert_eq!(parses(&store), 3, "the first read parses every feature");
        let again = store.read(Snapshot::read).unwrap();
        assert_eq!(parses(&store), 3, "an unchanged state parses nothing");
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&first).unwrap()
        );

        store
            .transact(&Actor::named("tester"), |txn| {
                let r = ops::TaskRef::new("b", "T2");
                ops::move_task(txn, &r, TaskStatus::InProgress, None, false)
            })
            .unwrap();
        let after = store.read(Snapshot::read).unwrap();
        assert_eq!(parses(&store), 4, "only feature b is parsed again");
        let b = after.feature("b").unwrap();
        assert_eq!(b.tasks[1].status, TaskStatus::InProgress);
        assert_eq!(serde_json::to_string(&after).unwrap(), plain(&store));
    }

    #[test]
    fn a_cached_read_quarantines_like_a_plain_one() {
        let (_dir, store) = store();
        add(&store, "f", "T1");
        add(&store, "f", "T2");
        store.read(Snapshot::read).unwrap();
        store
            .transact(&Actor::named("tester"), |txn| {
                txn.writes.insert(
                    task_path("f", "T2"),
                    Some(b"id: T2\nstatus: flying\n".to_vec()),
                );
                txn.writes
                    .insert("agents/a1.yaml".into(), Some(b"{{ not yaml".to_vec()));
                txn.subject("test: break two records");
                Ok(())
            })
            .unwrap();
        let cached = store.read(Snapshot::read).unwrap();
        assert!(cached.is_quarantined("f", "T2"));
        assert_eq!(cached.quarantined.len(), 2);
        assert_eq!(serde_json::to_string(&cached).unwrap(), plain(&store));
        // Read again from the cache: the same.
        let again = store.read(Snapshot::read).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), plain(&store));
    }

    fn agent(id: &str, task: &str, state: &str, ended: bool) -> Agent {
        let ended = if ended { "ended: 100\n" } else { "" };
        serde_yaml::from_str(&format!(
            "id: {id}\nrole: developer\nstate: {state}\ntask: {task}\n{ended}"
        ))
        .unwrap()
    }

    fn put(store: &Store, agents: &[Agent]) {
        store
            .transact(&Actor::named("tester"), |txn| {
                for a in agents {
                    txn.put_agent(a)?;
                }
                txn.subject("test: put agents");
                Ok(())
            })
            .unwrap();
    }

    fn finish(store: &Store, id: &str) {
        store
            .transact(&Actor::named("tester"), |txn| {
                let r = ops::TaskRef::new("f", id);
                ops::move_task(txn, &r, TaskStatus::Done, None, true)
            })
            .unwrap();
    }

    fn ids(agents: &[Agent]) -> Vec<&str> {
        agents.iter().map(|a| a.id.as_str()).collect()
    }

    #[test]
    fn finished_agents_of_finished_tasks_are_archived_and_still_read_in_full() {
        let (dir, store) = store();
        add(&store, "f", "T1");
        add(&store, "f", "T2");
        // Old state: finished agents in the live tree, as before archiving.
        put(
            &store,
            &[
                agent("f.T1.dev.1", "f/T1", "exited", true),
                agent("f.T1.dev.2", "f/T1", "dead", true),
                agent("f.T2.dev.1", "f/T2", "exited", true),
                agent("f.T2.dev.2", "f/T2", "running", false),
                agent("worker", "f/none", "exited", true),
            ],
        );
        let old = store.read(Snapshot::read).unwrap();
        assert_eq!(old.agents.len(), 5, "an old state still reads whole");
        assert!(old.archivable().is_empty(), "no task is done yet");

        finish(&store, "T1");
        finish(&store, "T2");
        let snapshot = store.read(Snapshot::read).unwrap();
        // T2's running agent is not finished: its task's done does not matter.
        assert_eq!(
            ids(&snapshot
                .archivable()
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()),
            ["f.T1.dev.1", "f.T1.dev.2", "f.T2.dev.1"]
        );
        let moved = store
            .transact(&Actor::named("tester"), archive_finished_agents)
            .unwrap();
        assert_eq!(moved.value, ["f.T1.dev.1", "f.T1.dev.2", "f.T2.dev.1"]);

        let live = store.read(Snapshot::read).unwrap();
        assert_eq!(ids(&live.agents), ["f.T2.dev.2", "worker"]);
        assert!(live.archivable().is_empty());
        let all = store.read(Snapshot::read_with_archive).unwrap();
        assert_eq!(
            ids(&all.agents),
            [
                "f.T1.dev.1",
                "f.T1.dev.2",
                "f.T2.dev.1",
                "f.T2.dev.2",
                "worker"
            ]
        );
        assert_eq!(all.agents[1].state, AgentState::Dead);
        let txn_all = store.read(|txn| txn.all_agents()).unwrap();
        assert_eq!(ids(&txn_all), ids(&all.agents));
        assert_eq!(
            store.read(|txn| txn.agent("f.T1.dev.1")).unwrap(),
            None,
            "not live any more"
        );
        assert!(store
            .read(|txn| txn.archived_agent("f.T1.dev.1"))
            .unwrap()
            .is_some());
        // Nothing left to archive: a second pass makes no commit.
        let again = store
            .transact(&Actor::named("tester"), archive_finished_agents)
            .unwrap();
        assert!(again.value.is_empty() && again.commit.is_none());

        // git log still has the record where it lived.
        let out = std::process::Command::new("git")
            .current_dir(dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir.path())
            .args([
                "log",
                "--format=%s",
                "refs/ai-sprint",
                "--",
                "agents/f.T1.dev.1.yaml",
            ])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{log}");
        assert_eq!(
            log.lines().collect::<Vec<_>>(),
            ["archive 3 finished agents", "test: put agents"],
            "{log}"
        );
    }
}
