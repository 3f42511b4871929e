//! Reading and writing `refs/ai-sprint`: a commit whose tree holds one YAML
//! file per entity, never checked out.
//!
//! A write is an *operation*: a closure over a [`Txn`] that reads what it
//! needs and stages new files. The store turns the staged files into a tree
//! (only the trees on the changed paths are rewritten), a commit and a
//! compare-and-swap ref update. If another process moved the ref first, the
//! operation runs again on the new tip, so it may refuse then (say, the task
//! it wanted to claim is no longer `todo`). No update is ever lost.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::StateError;
use super::model::{Agent, Convoy, Feature, SprintMeta, Task, SCHEMA_VERSION};
use crate::clock;

/// The ref that holds all sprint state.
pub const STATE_REF: &str = "refs/ai-sprint";

/// Attempts at a compare-and-swap before giving up. Each attempt backs off
/// with jitter, so 16 writers on one ref settle well within this.
const MAX_ATTEMPTS: u32 = 400;

/// Who did something: the author and committer of a state commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub email: String,
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
    pub task: String,
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub policy: Option<String>,
}

/// A staged change to the state, applied atomically by [`Store::transact`].
pub struct Txn<'r> {
    repo: &'r gix::Repository,
    root: Option<ObjectId>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    /// Files read at `root`, so an operation may read freely.
    read_cache: std::cell::RefCell<std::collections::HashMap<String, Option<Vec<u8>>>>,
    subject: Option<String>,
    transitions: Vec<Transition>,
}

impl<'r> Txn<'r> {
    fn new(repo: &'r gix::Repository, root: Option<ObjectId>) -> Self {
        Txn {
            repo,
            root,
            writes: BTreeMap::new(),
            read_cache: Default::default(),
            subject: None,
            transitions: Vec::new(),
        }
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

    fn raw_at_root(&self, path: &str) -> Result<Option<Vec<u8>>, StateError> {
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
        let Some(entry) = entry else {
            return Ok(None);
        };
        let blob = entry
            .object()
            .map_err(|e| StateError::git(format!("reading '{path}' from the state"), e))?;
        Ok(Some(blob.detach().data))
    }

    pub fn read<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, StateError> {
        match self.raw(path)? {
            None => Ok(None),
            Some(bytes) => decode(path, &bytes).map(Some),
        }
    }

    pub fn write<T: Serialize>(&mut self, path: &str, value: &T) -> Result<(), StateError> {
        let yaml = serde_yaml::to_string(value).map_err(|source| StateError::Yaml {
            path: path.to_owned(),
            source,
        })?;
        self.writes.insert(path.to_owned(), Some(yaml.into_bytes()));
        Ok(())
    }

    pub fn remove(&mut self, path: &str) {
        self.writes.insert(path.to_owned(), None);
    }

    /// Names of the `.yaml` files (without extension) or subtrees in `dir`.
    pub fn list(&self, dir: &str) -> Result<Vec<String>, StateError> {
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
    pub fn subject(&mut self, subject: impl Into<String>) {
        self.subject = Some(subject.into());
    }

    pub fn record(&mut self, transition: Transition) {
        self.transitions.push(transition);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    // Typed accessors: the layout of DESIGN.md lives here and nowhere else.

    pub fn meta(&self) -> Result<Option<SprintMeta>, StateError> {
        self.read("sprint.yaml")
    }
    pub fn put_meta(&mut self, meta: &SprintMeta) -> Result<(), StateError> {
        self.write("sprint.yaml", meta)
    }
    pub fn feature_names(&self) -> Result<Vec<String>, StateError> {
        self.list("features")
    }
    pub fn feature(&self, name: &str) -> Result<Option<Feature>, StateError> {
        self.read(&format!("features/{name}/feature.yaml"))
    }
    pub fn put_feature(&mut self, feature: &Feature) -> Result<(), StateError> {
        self.write(&format!("features/{}/feature.yaml", feature.name), feature)
    }
    pub fn task_ids(&self, feature: &str) -> Result<Vec<String>, StateError> {
        self.list(&format!("features/{feature}/tasks"))
    }
    pub fn task(&self, feature: &str, id: &str) -> Result<Option<Task>, StateError> {
        self.read(&task_path(feature, id))
    }
    pub fn put_task(&mut self, feature: &str, task: &Task) -> Result<(), StateError> {
        self.write(&task_path(feature, &task.id), task)
    }
    /// All tasks of a feature, in tasks.md order (hand-added ones last, by id).
    pub fn tasks(&self, feature: &str) -> Result<Vec<Task>, StateError> {
        let mut tasks = Vec::new();
        for id in self.task_ids(feature)? {
            if let Some(t) = self.task(feature, &id)? {
                tasks.push(t);
            }
        }
        sort_tasks(&mut tasks);
        Ok(tasks)
    }
    pub fn convoy_ids(&self, feature: &str) -> Result<Vec<String>, StateError> {
        self.list(&format!("features/{feature}/convoys"))
    }
    pub fn convoy(&self, feature: &str, id: &str) -> Result<Option<Convoy>, StateError> {
        self.read(&format!("features/{feature}/convoys/{id}.yaml"))
    }
    pub fn put_convoy(&mut self, feature: &str, convoy: &Convoy) -> Result<(), StateError> {
        self.write(
            &format!("features/{feature}/convoys/{}.yaml", convoy.id),
            convoy,
        )
    }
    pub fn agent_ids(&self) -> Result<Vec<String>, StateError> {
        self.list("agents")
    }
    pub fn agent(&self, id: &str) -> Result<Option<Agent>, StateError> {
        self.read(&format!("agents/{id}.yaml"))
    }
    pub fn put_agent(&mut self, agent: &Agent) -> Result<(), StateError> {
        self.write(&format!("agents/{}.yaml", agent.id), agent)
    }
    pub fn remove_agent(&mut self, id: &str) {
        self.remove(&format!("agents/{id}.yaml"));
    }

    fn message(&self, actor: &Actor) -> String {
        let subject = self
            .subject
            .clone()
            .unwrap_or_else(|| match self.transitions.as_slice() {
                [] => "update sprint state".to_owned(),
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
        msg.push_str(&format!("Sprint-Actor: {}\n", actor.name));
        msg
    }
}

pub fn task_path(feature: &str, id: &str) -> String {
    format!("features/{feature}/tasks/{id}.yaml")
}

/// tasks.md order first; tasks added by hand (line 0) after, by id.
pub fn sort_tasks(tasks: &mut [Task]) {
    tasks.sort_by(|a, b| {
        let key = |t: &Task| (t.line == 0, t.line, natural_key(&t.id));
        key(a).cmp(&key(b))
    });
}

/// `T2` before `T10`: digits compare as numbers.
pub fn natural_key(s: &str) -> Vec<(u64, String)> {
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
    pub value: T,
    pub commit: Option<ObjectId>,
}

/// The sprint state of one repository, shared by all its worktrees.
pub struct Store {
    repo: gix::Repository,
}

impl Store {
    /// Opens the repository containing `dir`.
    pub fn discover(dir: &Path) -> Result<Self, StateError> {
        let repo = gix::discover(dir).map_err(|e| StateError::NotARepo {
            path: dir.to_owned(),
            source: Box::new(e),
        })?;
        Ok(Store::from_repo(repo))
    }

    pub fn from_repo(mut repo: gix::Repository) -> Self {
        // A transaction reads the same few trees several times (path lookups,
        // the schema check, the re-read after a lost race): keep them decoded.
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        Store { repo }
    }

    pub fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// The current state commit, if the ref exists.
    pub fn tip(&self) -> Result<Option<ObjectId>, StateError> {
        let reference = self
            .repo
            .try_find_reference(STATE_REF)
            .map_err(|e| StateError::git("reading refs/ai-sprint", e))?;
        match reference {
            None => Ok(None),
            Some(mut r) => {
                let id = r
                    .peel_to_id()
                    .map_err(|e| StateError::git("resolving refs/ai-sprint", e))?;
                Ok(Some(id.detach()))
            }
        }
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
    /// A repository without `refs/ai-sprint` reads as empty state.
    pub fn read<T>(
        &self,
        op: impl FnOnce(&Txn<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let root = self.tip()?.map(|c| self.root_of(c)).transpose()?;
        let txn = Txn::new(&self.repo, root);
        check_schema(&txn)?;
        op(&txn)
    }

    /// Applies `op` to the current state as one commit on `refs/ai-sprint`.
    ///
    /// `op` may run several times: after a lost race it is re-applied to the
    /// new tip, so it must be a function of the state it reads. A refusal
    /// from `op` ends the transaction at once, with nothing written.
    pub fn transact<T>(
        &self,
        actor: &Actor,
        mut op: impl FnMut(&mut Txn<'_>) -> Result<T, StateError>,
    ) -> Result<Committed<T>, StateError> {
        let mut rng = Jitter::seeded();
        for attempt in 0..MAX_ATTEMPTS {
            let tip = self.tip()?;
            let root = tip.map(|c| self.root_of(c)).transpose()?;
            let mut txn = Txn::new(&self.repo, root);
            check_schema(&txn)?;
            let value = op(&mut txn)?;
            if txn.is_empty() {
                return Ok(Committed {
                    value,
                    commit: None,
                });
            }
            if txn.meta()?.is_none() {
                txn.put_meta(&SprintMeta::new(&clock::now_rfc3339()))?;
            }
            let tree = self.write_tree(root, &txn)?;
            if Some(tree) == root {
                return Ok(Committed {
                    value,
                    commit: None,
                });
            }
            let commit = self.write_commit(actor, &txn, tree, tip)?;
            match self.swap(actor, tip, commit, &txn) {
                Ok(()) => {
                    return Ok(Committed {
                        value,
                        commit: Some(commit),
                    })
                }
                Err(err) => {
                    // Lost a race (the tip moved) or met a held lock: both
                    // are retried on the fresh tip; anything else is real.
                    let moved = self.tip()? != tip;
                    let locked = is_lock_error(&err);
                    if !moved && !locked {
                        return Err(StateError::git("updating refs/ai-sprint", err));
                    }
                    tracing::debug!(attempt, moved, "state write raced; retrying");
                    std::thread::sleep(rng.backoff(attempt));
                }
            }
        }
        Err(StateError::Busy {
            attempts: MAX_ATTEMPTS,
        })
    }

    fn write_tree(&self, root: Option<ObjectId>, txn: &Txn<'_>) -> Result<ObjectId, StateError> {
        let base = root.unwrap_or_else(|| ObjectId::empty_tree(self.repo.object_hash()));
        let mut editor = self
            .repo
            .edit_tree(base)
            .map_err(|e| StateError::git("editing the state tree", e))?;
        for (path, content) in &txn.writes {
            match content {
                Some(bytes) => {
                    let blob = self
                        .repo
                        .write_blob(bytes)
                        .map_err(|e| StateError::git(format!("writing '{path}'"), e))?;
                    editor
                        .upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)
                        .map_err(|e| StateError::git(format!("staging '{path}'"), e))?;
                }
                None => {
                    editor
                        .remove(path.as_str())
                        .map_err(|e| StateError::git(format!("removing '{path}'"), e))?;
                }
            }
        }
        let id = editor
            .write()
            .map_err(|e| StateError::git("writing the state tree", e))?;
        Ok(id.detach())
    }

    fn write_commit(
        &self,
        actor: &Actor,
        txn: &Txn<'_>,
        tree: ObjectId,
        parent: Option<ObjectId>,
    ) -> Result<ObjectId, StateError> {
        let sig = signature(actor);
        let mut buf = gix::date::parse::TimeBuf::default();
        let sig_ref = sig.to_ref(&mut buf);
        let commit = self
            .repo
            .new_commit_as(sig_ref, sig_ref, txn.message(actor), tree, parent)
            .map_err(|e| StateError::git("writing the state commit", e))?;
        Ok(commit.id)
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
        self.repo
            .edit_references_as([edit], Some(sig.to_ref(&mut buf)))?;
        Ok(())
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

fn signature(actor: &Actor) -> gix::actor::Signature {
    gix::actor::Signature {
        name: actor.name.as_str().into(),
        email: actor.email.as_str().into(),
        time: gix::date::Time::new(clock::now(), 0),
    }
}

fn is_lock_error(err: &gix::Error) -> bool {
    // gix reports a held `.lock` file as a lock acquisition failure; match on
    // the rendered chain since the concrete type is not exported stably.
    let text = format!("{err:?}").to_lowercase();
    text.contains("lock")
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
}
