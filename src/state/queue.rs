//! The offline queue: with a state remote that cannot be reached, a write
//! is committed to the local `refs/ai-sprint` anyway and replayed on the
//! remote once it answers again.
//!
//! The queue is nothing but the local ref and its commits, so a crash at
//! any point loses nothing: a queued commit carries a `Sprint-Offline:`
//! trailer, and the queue is the run of such commits at the tip (first
//! parents); the commit below them is the remote state they were made on.
//! One ref, so no reader ever sees half of an update (a second ref naming
//! the base could be read torn against the first). A fetch lands in
//! [`FETCHED_REF`], never on the local ref: with nothing queued the local
//! ref follows it, otherwise the queue is drained first.
//!
//! Draining replays each queued commit, oldest first, onto the remote's
//! tip: the files it changed (against its parent) are applied there, with
//! its message, author and trailers kept (`Sprint-Offline:` aside) and a
//! `Sprint-Queued:` trailer naming it added. Its precondition is that none
//! of those files changed on the remote since the queue's base (nor in a
//! queued commit dropped before it). A commit whose precondition fails is
//! dropped, and the drop is a state commit of its own (`Sprint-Dropped:`,
//! also with `Sprint-Queued:`) so `git sprint log` shows it. The replays go to the remote in one push
//! with a lease, like any write; a lost race re-fetches and checks again.
//! A replay or drop already on the remote (a drain that crashed after its
//! push) is recognised by its `Sprint-Queued:` trailer and not made twice.

use std::collections::{BTreeMap, HashMap, HashSet};

use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;
use serde::Serialize;

use super::backup::BACKUP_REF;
use super::error::StateError;
use super::remote::{Pushed, Remote};
use super::store::{signature, Actor, STATE_REF};

/// The remote's state as the last fetch found it.
pub(crate) const FETCHED_REF: &str = "refs/ai-sprint-remote/fetched";

/// The trailer of a commit queued on this clone, waiting for the remote.
const OFFLINE_TRAILER: &str = "Sprint-Offline";

/// The trailer a replayed or dropped transition carries: the id of the
/// queued commit it stands for.
const QUEUED_TRAILER: &str = "Sprint-Queued";

/// A trailer of a drop record per file the dropped transition changed.
const DROPPED_FILE_TRAILER: &str = "Sprint-Dropped-File";

/// Attempts at pushing the replays before giving up.
const MAX_ATTEMPTS: u32 = 100;

/// Transitions committed on this clone while the remote did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Queued {
    /// How many state commits wait for the remote.
    pub count: usize,
    /// When the oldest of them was made (Unix seconds).
    pub(crate) since: i64,
}

/// A queued transition that was not replayed because what it changed had
/// changed on the remote meanwhile (say, its task was taken over).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The queued commit.
    pub(crate) commit: String,
    pub subject: String,
    /// Who made it (its `Sprint-Actor:`).
    pub actor: String,
    /// The file whose change on the remote made it stale.
    pub path: String,
    /// Every file it changed: its agents' and tasks' records
    /// (`agents/<id>.yaml`, `features/<f>/tasks/<t>.yaml`) say whose work
    /// it was.
    pub paths: Vec<String>,
}

impl Dropped {
    /// The ids of the agents whose records it changed (`agents/<id>.yaml`):
    /// whose work goes to a side branch.
    #[cfg(test)]
    pub(crate) fn agents(&self) -> Vec<&str> {
        self.paths
            .iter()
            .filter_map(|p| p.strip_prefix("agents/")?.strip_suffix(".yaml"))
            .filter(|id| !id.contains('/'))
            .collect()
    }

    /// The tasks whose records it changed, as `feature/id`.
    #[cfg(test)]
    pub(crate) fn tasks(&self) -> Vec<String> {
        self.paths
            .iter()
            .filter_map(|p| {
                let rest = p.strip_prefix("features/")?.strip_suffix(".yaml")?;
                let (feature, id) = rest.split_once("/tasks/")?;
                (!feature.contains('/') && !id.contains('/')).then(|| format!("{feature}/{id}"))
            })
            .collect()
    }
}

/// A file's content in a tree: its kind and object, `None` when absent.
type Content = Option<(EntryKind, ObjectId)>;

/// The queue of this clone: the base (the remote state it was made on)
/// and the queued commits, oldest first; `None` when nothing is queued.
pub(crate) fn queue(
    repo: &gix::Repository,
) -> Result<Option<(ObjectId, Vec<ObjectId>)>, StateError> {
    match find(repo, STATE_REF)? {
        Some(local) => queue_at(repo, local),
        None => Ok(None),
    }
}

/// [`queue`] with the local ref at `local`.
fn queue_at(
    repo: &gix::Repository,
    local: ObjectId,
) -> Result<Option<(ObjectId, Vec<ObjectId>)>, StateError> {
    let mut out = Vec::new();
    let mut next = Some(local);
    while let Some(id) = next {
        if trailer(&message_of(repo, id)?, OFFLINE_TRAILER).is_none() {
            if out.is_empty() {
                return Ok(None);
            }
            out.reverse();
            return Ok(Some((id, out)));
        }
        out.push(id);
        next = parent(repo, id)?;
    }
    // Queued onto no state at all cannot happen (an offline write needs a
    // state to build on); a history of queued commits only has no base.
    Ok(None)
}

fn message_of(repo: &gix::Repository, id: ObjectId) -> Result<String, StateError> {
    let commit = repo
        .find_commit(id)
        .map_err(|e| StateError::git("reading a state commit", e))?;
    let message = commit
        .message_raw()
        .map_err(|e| StateError::git("reading a state commit", e))?
        .to_str_lossy()
        .into_owned();
    Ok(message)
}

/// What [`queue`] holds, for `git sprint status`; `None` when empty.
pub(crate) fn queued(repo: &gix::Repository) -> Result<Option<Queued>, StateError> {
    let Some((_, queue)) = queue(repo)? else {
        return Ok(None);
    };
    let first = &queue[0];
    let since = repo
        .find_commit(*first)
        .and_then(|c| c.time())
        .map_err(|e| StateError::git("reading a queued state commit", e))?
        .seconds;
    Ok(Some(Queued {
        count: queue.len(),
        since,
    }))
}

/// Fetches the remote's state and brings the local ref to it: directly
/// when nothing is queued, else by draining the queue. Returns whether the
/// remote has state, and what the drain dropped.
pub(crate) fn sync(
    repo: &gix::Repository,
    remote: &Remote,
    actor: &Actor,
) -> Result<(bool, Vec<Dropped>), StateError> {
    // Read once: the follow below is a compare-and-swap on this value, so
    // a commit queued after it is never overwritten.
    let local = find(repo, STATE_REF)?;
    if let Some(l) = local {
        if queue_at(repo, l)?.is_some() {
            let dropped = drain(repo, remote, actor)?;
            return Ok((true, dropped));
        }
    }
    if !remote.fetch()? {
        return Ok((false, Vec::new()));
    }
    let Some(fetched) = find(repo, FETCHED_REF)? else {
        return Ok((true, Vec::new()));
    };
    if local != Some(fetched) {
        // Fails only when a writer of this clone moved the local ref
        // meanwhile: to a commit the remote has (it pushed first) or to
        // one it queued; the next sync follows or drains from there.
        if let Err(err) = follow(repo, actor, local, fetched) {
            tracing::debug!(error = %err, "local state ref moved meanwhile");
        }
    }
    Ok((true, Vec::new()))
}

/// Moves the local ref (if it is still `expected`) and its backup to
/// `new`, a commit the remote has.
pub(crate) fn follow(
    repo: &gix::Repository,
    actor: &Actor,
    expected: Option<ObjectId>,
    new: ObjectId,
) -> Result<(), gix::Error> {
    let state = edit(
        STATE_REF,
        match expected {
            Some(old) => PreviousValue::MustExistAndMatch(Target::Object(old)),
            None => PreviousValue::MustNotExist,
        },
        new,
        "git-sprint: follow the remote",
    );
    let backup = edit(BACKUP_REF, PreviousValue::Any, new, "git-sprint: backup");
    let sig = signature(actor);
    let mut buf = gix::date::parse::TimeBuf::default();
    repo.edit_references_as([state, backup], Some(sig.to_ref(&mut buf)))?;
    Ok(())
}

/// Commits `made` (a state commit on `expected`, not on any ref yet) to
/// the local ref alone, queued for the remote: as a copy of it with a
/// `Sprint-Offline:` trailer, whose id is returned.
pub(crate) fn commit_offline(
    repo: &gix::Repository,
    actor: &Actor,
    expected: ObjectId,
    made: ObjectId,
    remote: &str,
) -> Result<ObjectId, CommitOffline> {
    let commit = repo
        .find_commit(made)
        .map_err(|e| CommitOffline::State(StateError::git("reading the state commit", e)))?;
    let author = commit
        .author()
        .and_then(|a| a.to_owned())
        .map_err(|e| CommitOffline::State(StateError::git("reading the state commit", e)))?;
    let mut message = message_of(repo, made).map_err(CommitOffline::State)?;
    if !message.ends_with('\n') {
        message.push('\n');
    }
    message.push_str(&format!(
        "{OFFLINE_TRAILER}: queued while '{remote}' did not answer\n"
    ));
    let queued = new_commit(
        repo,
        &author,
        &author,
        &message,
        tree_of(repo, made).map_err(CommitOffline::State)?,
        expected,
    )
    .map_err(CommitOffline::State)?;
    let subject = message.lines().next().unwrap_or_default();
    let edits = [
        edit(
            STATE_REF,
            PreviousValue::MustExistAndMatch(Target::Object(expected)),
            queued,
            &format!("git-sprint (queued): {subject}"),
        ),
        edit(BACKUP_REF, PreviousValue::Any, queued, "git-sprint: backup"),
    ];
    let sig = signature(actor);
    let mut buf = gix::date::parse::TimeBuf::default();
    repo.edit_references_as(edits, Some(sig.to_ref(&mut buf)))
        .map_err(CommitOffline::Ref)?;
    Ok(queued)
}

/// Why [`commit_offline`] did not commit.
#[derive(Debug)]
pub(crate) enum CommitOffline {
    /// The ref update failed (a race or a lock: the caller tells).
    Ref(gix::Error),
    State(StateError),
}

fn edit(name: &str, expected: PreviousValue, new: ObjectId, message: &str) -> RefEdit {
    RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: name == STATE_REF,
                message: message.into(),
            },
            expected,
            new: Target::Object(new),
        },
        name: name.try_into().expect("valid ref name"),
        deref: false,
    }
}

/// Replays the queue onto the remote (see the module doc) and moves the
/// local ref to the result. Returns the transitions it dropped. An
/// unreachable remote is [`StateError::Unreachable`], with the queue kept.
pub(crate) fn drain(
    repo: &gix::Repository,
    remote: &Remote,
    actor: &Actor,
) -> Result<Vec<Dropped>, StateError> {
    let mut all_dropped = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let local = find(repo, STATE_REF)?;
        // The queue is read from the ref once more: what `local` names.
        let Some(local) = local else {
            return Ok(all_dropped);
        };
        let Some((seen, queue)) = queue_at(repo, local)? else {
            return Ok(all_dropped);
        };
        let fetched = if remote.fetch()? {
            find(repo, FETCHED_REF)?
        } else {
            None
        };
        let replay = plan(repo, seen, fetched, &queue, actor)?;
        if replay.tip != fetched {
            let tip = replay.tip.expect("a replay makes a commit");
            match remote.push(fetched, tip)? {
                Pushed::Done => {}
                Pushed::Stale => {
                    tracing::debug!(attempt, "remote state moved while replaying; again");
                    // Writers that lost spread out a little.
                    let ms = 5 * u64::from(attempt.min(20) + 1);
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    continue;
                }
            }
        }
        let Some(tip) = replay.tip else {
            // The remote has no state and nothing was queued onto it.
            return Ok(all_dropped);
        };
        all_dropped.extend(replay.dropped);
        match follow(repo, actor, Some(local), tip) {
            Ok(()) => {
                tracing::info!(
                    replayed = queue.len(),
                    dropped = all_dropped.len(),
                    "queued sprint state transitions went to the remote"
                );
                return Ok(all_dropped);
            }
            // Another writer of this clone queued more meanwhile: the
            // next round replays only those (the rest carry their mark).
            Err(err) => tracing::debug!(error = %err, "local state moved while draining"),
        }
    }
    Err(StateError::Busy {
        attempts: MAX_ATTEMPTS,
    })
}

/// The commits a drain would push: [`Replay::tip`] is the new remote tip
/// (`fetched` itself when every queued commit is already there).
#[derive(Debug)]
struct Replay {
    tip: Option<ObjectId>,
    dropped: Vec<Dropped>,
}

/// Replays `queue` (made on `seen`) onto `fetched`, the remote's tip, as
/// new commits; nothing is pushed or moved.
fn plan(
    repo: &gix::Repository,
    seen: ObjectId,
    fetched: Option<ObjectId>,
    queue: &[ObjectId],
    actor: &Actor,
) -> Result<Replay, StateError> {
    let Some(fetched) = fetched else {
        // The remote lost its state: this clone's is the best there is.
        return Ok(Replay {
            tip: queue.last().copied(),
            dropped: Vec::new(),
        });
    };
    let ours: HashSet<ObjectId> = queue.iter().copied().collect();
    let since = remote_since(repo, seen, fetched, &ours)?;
    // Files that a queued commit may not touch, and why.
    let mut stale: HashMap<String, String> = since.changed;
    let mut tip = fetched;
    let mut dropped = Vec::new();
    for &id in queue {
        let commit = repo
            .find_commit(id)
            .map_err(|e| StateError::git("reading a queued state commit", e))?;
        let message = commit
            .message_raw()
            .map_err(|e| StateError::git("reading a queued state commit", e))?
            .to_str_lossy()
            .into_owned();
        let subject = message.lines().next().unwrap_or_default().to_owned();
        let changes = diff(
            repo,
            parent(repo, id)?.map(|p| tree_of(repo, p)).transpose()?,
            Some(tree_of(repo, id)?),
        )?;
        let poison = |stale: &mut HashMap<String, String>| {
            for path in changes.keys() {
                stale
                    .entry(path.clone())
                    .or_insert_with(|| format!("the dropped '{subject}'"));
            }
        };
        match since.handled.get(&id) {
            Some(true) => {
                poison(&mut stale);
                continue;
            }
            Some(false) => continue,
            None => {}
        }
        let conflict = changes
            .keys()
            .find_map(|p| stale.get(p).map(|by| (p.clone(), by.clone())));
        if let Some((path, by)) = conflict {
            let record = Dropped {
                commit: id.to_string(),
                subject: subject.clone(),
                actor: trailer(&message, "Sprint-Actor").unwrap_or_default(),
                path: path.clone(),
                paths: changes.keys().cloned().collect(),
            };
            // Every file it changed, so any machine can tell from the log
            // whose work it was (the queued commit never leaves this clone).
            let files: String = record
                .paths
                .iter()
                .map(|p| format!("{DROPPED_FILE_TRAILER}: {p}\n"))
                .collect();
            let msg = format!(
                "sprint: dropped queued '{subject}' ({path} changed meanwhile)\n\n\
                 Sprint-Dropped: {subject} (by {}; {path} changed by {by})\n\
                 {files}{QUEUED_TRAILER}: {id}\nSprint-Actor: {}\n",
                record.actor, actor.name
            );
            let tree = tree_of(repo, tip)?;
            let sig = signature(actor);
            tip = new_commit(repo, &sig, &sig, &msg, tree, tip)?;
            poison(&mut stale);
            dropped.push(record);
            continue;
        }
        let tree = apply(repo, tree_of(repo, tip)?, &changes)?;
        let author = commit
            .author()
            .map_err(|e| StateError::git("reading a queued state commit", e))?
            .to_owned()
            .map_err(|e| StateError::git("reading a queued state commit", e))?;
        let committer = gix::actor::Signature {
            time: gix::date::Time::new(crate::clock::now(), 0),
            ..author.clone()
        };
        let mut msg: String = message
            .lines()
            .filter(|l| !l.starts_with(&format!("{OFFLINE_TRAILER}: ")))
            .flat_map(|l| [l, "\n"])
            .collect();
        msg.push_str(&format!("{QUEUED_TRAILER}: {id}\n"));
        tip = new_commit(repo, &committer, &author, &msg, tree, tip)?;
    }
    Ok(Replay {
        tip: Some(tip),
        dropped,
    })
}

/// What happened on the remote between `seen` and `fetched`.
struct Since {
    /// Files that writers other than this queue changed, with the subject
    /// of the commit that did.
    changed: HashMap<String, String>,
    /// Queued commits already replayed (false) or dropped (true) there.
    handled: HashMap<ObjectId, bool>,
}

fn remote_since(
    repo: &gix::Repository,
    seen: ObjectId,
    fetched: ObjectId,
    ours: &HashSet<ObjectId>,
) -> Result<Since, StateError> {
    let mut since = Since {
        changed: HashMap::new(),
        handled: HashMap::new(),
    };
    let mut chain = Vec::new();
    let mut next = Some(fetched);
    while let Some(id) = next {
        if id == seen {
            break;
        }
        chain.push(id);
        next = parent(repo, id)?;
    }
    if next.is_none() {
        // The remote's history was rewritten past `seen`: everything that
        // differs from it counts as changed elsewhere.
        let changes = diff(
            repo,
            Some(tree_of(repo, seen)?),
            Some(tree_of(repo, fetched)?),
        )?;
        for path in changes.into_keys() {
            since
                .changed
                .insert(path, "a rewrite of the remote's state".into());
        }
        return Ok(since);
    }
    for &id in chain.iter().rev() {
        let commit = repo
            .find_commit(id)
            .map_err(|e| StateError::git("reading a remote state commit", e))?;
        let message = commit
            .message_raw()
            .map_err(|e| StateError::git("reading a remote state commit", e))?
            .to_str_lossy()
            .into_owned();
        let mark = trailer(&message, QUEUED_TRAILER)
            .and_then(|hex| ObjectId::from_hex(hex.as_bytes()).ok())
            .filter(|q| ours.contains(q));
        if let Some(queued) = mark {
            since
                .handled
                .insert(queued, trailer(&message, "Sprint-Dropped").is_some());
            continue;
        }
        let subject = message.lines().next().unwrap_or_default().to_owned();
        let changes = diff(
            repo,
            parent(repo, id)?.map(|p| tree_of(repo, p)).transpose()?,
            Some(tree_of(repo, id)?),
        )?;
        for path in changes.into_keys() {
            since.changed.insert(path, format!("'{subject}'"));
        }
    }
    Ok(since)
}

/// The value of the last `key: value` trailer line of `message`.
fn trailer(message: &str, key: &str) -> Option<String> {
    message
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
        .map(str::to_owned)
}

fn new_commit(
    repo: &gix::Repository,
    committer: &gix::actor::Signature,
    author: &gix::actor::Signature,
    message: &str,
    tree: ObjectId,
    parent: ObjectId,
) -> Result<ObjectId, StateError> {
    let (mut a, mut b) = Default::default();
    let id = repo
        .new_commit_as(
            committer.to_ref(&mut a),
            author.to_ref(&mut b),
            message,
            tree,
            [parent],
        )
        .map_err(|e| StateError::git("writing a replayed state commit", e))?
        .id;
    Ok(id)
}

/// The files that differ between trees `a` and `b` (either may be
/// absent), with their content in `b`. Paths are of files, never trees.
pub(crate) fn diff(
    repo: &gix::Repository,
    a: Option<ObjectId>,
    b: Option<ObjectId>,
) -> Result<BTreeMap<String, Content>, StateError> {
    let mut out = BTreeMap::new();
    diff_into(repo, a, b, "", &mut out)?;
    Ok(out)
}

fn diff_into(
    repo: &gix::Repository,
    a: Option<ObjectId>,
    b: Option<ObjectId>,
    prefix: &str,
    out: &mut BTreeMap<String, Content>,
) -> Result<(), StateError> {
    if a == b {
        return Ok(());
    }
    let (ea, eb) = (entries(repo, a)?, entries(repo, b)?);
    let names: std::collections::BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    for name in names {
        let (x, y) = (ea.get(name).copied(), eb.get(name).copied());
        if x == y {
            continue;
        }
        let path = format!("{prefix}{name}");
        let sub = |e: Content| e.filter(|(k, _)| *k == EntryKind::Tree).map(|(_, id)| id);
        let file = |e: Content| e.filter(|(k, _)| *k != EntryKind::Tree);
        if sub(x).is_some() || sub(y).is_some() {
            diff_into(repo, sub(x), sub(y), &format!("{path}/"), out)?;
        }
        if file(x).is_some() || file(y).is_some() {
            out.insert(path, file(y));
        }
    }
    Ok(())
}

fn entries(
    repo: &gix::Repository,
    tree: Option<ObjectId>,
) -> Result<BTreeMap<String, (EntryKind, ObjectId)>, StateError> {
    let Some(tree) = tree else {
        return Ok(BTreeMap::new());
    };
    let tree = repo
        .find_tree(tree)
        .map_err(|e| StateError::git("reading a state tree", e))?;
    let decoded = tree
        .decode()
        .map_err(|e| StateError::git("decoding a state tree", e))?;
    Ok(decoded
        .entries
        .iter()
        .map(|e| {
            (
                e.filename.to_str_lossy().into_owned(),
                (e.mode.kind(), e.oid.to_owned()),
            )
        })
        .collect())
}

/// Tree `base` with `changes` applied.
fn apply(
    repo: &gix::Repository,
    base: ObjectId,
    changes: &BTreeMap<String, Content>,
) -> Result<ObjectId, StateError> {
    let mut editor = repo
        .edit_tree(base)
        .map_err(|e| StateError::git("editing the state tree", e))?;
    for (path, content) in changes {
        match content {
            Some((kind, id)) => editor
                .upsert(path.as_str(), *kind, *id)
                .map_err(|e| StateError::git(format!("staging '{path}'"), e))?,
            None => editor
                .remove(path.as_str())
                .map_err(|e| StateError::git(format!("removing '{path}'"), e))?,
        };
    }
    Ok(editor
        .write()
        .map_err(|e| StateError::git("writing the state tree", e))?
        .detach())
}

fn find(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>, StateError> {
    let reference = repo
        .try_find_reference(name)
        .map_err(|e| StateError::git(format!("reading {name}"), e))?;
    match reference {
        None => Ok(None),
        Some(mut r) => Ok(Some(
            r.peel_to_id()
                .map_err(|e| StateError::git(format!("resolving {name}"), e))?
                .detach(),
        )),
    }
}

fn parent(repo: &gix::Repository, id: ObjectId) -> Result<Option<ObjectId>, StateError> {
    let commit = repo
        .find_commit(id)
        .map_err(|e| StateError::git("reading a state commit", e))?;
    let first = commit.parent_ids().next().map(|p| p.detach());
    Ok(first)
}

fn tree_of(repo: &gix::Repository, id: ObjectId) -> Result<ObjectId, StateError> {
    let commit = repo
        .find_commit(id)
        .map_err(|e| StateError::git("reading a state commit", e))?;
    Ok(commit
        .tree_id()
        .map_err(|e| StateError::git("reading a state commit's tree", e))?
        .detach())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{ops, Store, TaskStatus};

    fn who() -> Actor {
        Actor::named("tester")
    }

    fn add(store: &Store, id: &str) -> ObjectId {
        store.add_test_task(id)
    }

    fn to(store: &Store, id: &str, status: TaskStatus) -> ObjectId {
        let r = ops::TaskRef::new("f", id);
        store
            .transact(&who(), |txn| ops::move_task(txn, &r, status, None, true))
            .unwrap()
            .commit
            .unwrap()
    }

    fn set(store: &Store, name: &str, id: ObjectId) {
        let sig = signature(&who());
        let mut buf = gix::date::parse::TimeBuf::default();
        store
            .repo()
            .edit_references_as(
                [edit(name, PreviousValue::Any, id, "test")],
                Some(sig.to_ref(&mut buf)),
            )
            .unwrap();
    }

    fn message(store: &Store, id: ObjectId) -> String {
        let c = store.repo().find_commit(id).unwrap();
        c.message_raw().unwrap().to_str_lossy().into_owned()
    }

    fn status_at(store: &Store, commit: ObjectId, id: &str) -> Option<TaskStatus> {
        store
            .read_at(commit, |txn| txn.task("f", id))
            .unwrap()
            .map(|t| t.status)
    }

    /// A state `seen` (T1, T2), a remote that moved T1 on from it, and a
    /// queue on `seen` that moved T1 too and then added T3.
    struct Split {
        seen: ObjectId,
        remote: ObjectId,
        queue: Vec<ObjectId>,
    }

    /// `made`, just committed on the local ref, replaced there by its
    /// queued copy (as a write while the remote does not answer makes).
    fn offline(store: &Store, made: ObjectId) -> ObjectId {
        let base = parent(store.repo(), made).unwrap().unwrap();
        set(store, STATE_REF, base);
        commit_offline(store.repo(), &who(), base, made, "origin").unwrap()
    }

    fn split(store: &Store) -> Split {
        add(store, "T1");
        let seen = add(store, "T2");
        let remote = to(store, "T1", TaskStatus::InProgress);
        set(store, STATE_REF, seen);
        let moved = offline(store, to(store, "T1", TaskStatus::Done));
        let added = offline(store, add(store, "T3"));
        Split {
            seen,
            remote,
            queue: vec![moved, added],
        }
    }

    #[test]
    fn the_queue_is_the_run_of_offline_commits_at_the_tip_oldest_first() {
        let (_dir, store) = Store::temp();
        assert_eq!(queue(store.repo()).unwrap(), None, "no state yet");
        add(&store, "T0");
        assert_eq!(queue(store.repo()).unwrap(), None, "online commits only");
        let s = split(&store);
        assert_eq!(
            queue(store.repo()).unwrap(),
            Some((s.seen, s.queue.clone()))
        );
        assert_eq!(queued(store.repo()).unwrap().unwrap().count, 2);
        let queued_msg = message(&store, s.queue[0]);
        assert!(
            queued_msg.ends_with("Sprint-Offline: queued while 'origin' did not answer\n"),
            "{queued_msg}"
        );
        // What the remote has (the tip after a drain) queues nothing.
        set(&store, STATE_REF, s.remote);
        assert_eq!(queue(store.repo()).unwrap(), None);
    }

    #[test]
    fn a_queued_transition_whose_file_changed_on_the_remote_is_dropped_and_the_rest_replayed() {
        let (_dir, store) = Store::temp();
        let s = split(&store);
        let repo = store.repo();
        let replay = plan(repo, s.seen, Some(s.remote), &s.queue, &who()).unwrap();
        let tip = replay.tip.unwrap();
        assert_eq!(replay.dropped.len(), 1, "{:?}", replay.dropped);
        let d = &replay.dropped[0];
        assert_eq!(d.commit, s.queue[0].to_string());
        assert_eq!(d.path, "features/f/tasks/T1.yaml");
        assert!(d.paths.contains(&d.path), "{:?}", d.paths);
        assert_eq!(d.actor, "tester");
        // The remote's T1 stands, the queued T3 is there.
        assert_eq!(status_at(&store, tip, "T1"), Some(TaskStatus::InProgress));
        assert_eq!(status_at(&store, tip, "T3"), Some(TaskStatus::Todo));
        // Replay keeps the message and marks the queued commit; the drop
        // record names the transition, its actor and the changed file.
        let replayed = message(&store, tip);
        let original = message(&store, s.queue[1]);
        let original = original.split("Sprint-Offline:").next().unwrap();
        assert!(replayed.starts_with(original), "{replayed}");
        assert!(!replayed.contains("Sprint-Offline"), "{replayed}");
        assert!(replayed.ends_with(&format!("Sprint-Queued: {}\n", s.queue[1])));
        let drop_record = parent(repo, tip).unwrap().unwrap();
        assert_eq!(parent(repo, drop_record).unwrap(), Some(s.remote));
        let record = message(&store, drop_record);
        assert!(
            record.contains("Sprint-Dropped: f/T1: todo -> done (by tester; features/f/tasks/T1.yaml changed by 'f/T1: todo -> in_progress')"),
            "{record}"
        );
        assert!(record.contains(&format!("Sprint-Queued: {}", s.queue[0])));
        assert!(
            record.contains("\nSprint-Dropped-File: features/f/tasks/T1.yaml\n"),
            "{record}"
        );
    }

    #[test]
    fn a_replay_already_on_the_remote_is_not_made_twice() {
        let (_dir, store) = Store::temp();
        let s = split(&store);
        let first = plan(store.repo(), s.seen, Some(s.remote), &s.queue, &who()).unwrap();
        let pushed = first.tip.unwrap();
        // A drain that crashed after its push: the same queue, the remote
        // now at what it pushed.
        let again = plan(store.repo(), s.seen, Some(pushed), &s.queue, &who()).unwrap();
        assert_eq!(again.tip, Some(pushed), "nothing new to push");
        assert!(again.dropped.is_empty());
    }

    #[test]
    fn a_queued_transition_on_a_file_a_dropped_one_changed_is_dropped_too() {
        let (_dir, store) = Store::temp();
        let s = split(&store);
        let later = to(&store, "T1", TaskStatus::Todo);
        let queue = [s.queue.clone(), vec![later]].concat();
        let replay = plan(store.repo(), s.seen, Some(s.remote), &queue, &who()).unwrap();
        let dropped: Vec<_> = replay.dropped.iter().map(|d| d.commit.clone()).collect();
        assert_eq!(dropped, [s.queue[0].to_string(), later.to_string()]);
        let tip = replay.tip.unwrap();
        assert_eq!(status_at(&store, tip, "T1"), Some(TaskStatus::InProgress));
        let record = message(&store, tip);
        assert!(
            record.contains("Sprint-Dropped: f/T1: done -> todo"),
            "{record}"
        );
    }

    fn put_agent(store: &Store, id: &str, state: &str) -> ObjectId {
        let agent: crate::state::Agent = serde_yaml::from_str(&format!(
            "id: {id}\nrole: developer\nstate: {state}\ntask: f/T1\n"
        ))
        .unwrap();
        store
            .transact(&who(), |txn| {
                txn.put_agent(&agent)?;
                txn.subject(format!("agent {id}: {state}"));
                Ok(())
            })
            .unwrap()
            .commit
            .unwrap()
    }

    /// An agent's record written only by a transition that was dropped:
    /// the queued update of that record depends on it, so it goes too
    /// (the record is never half there).
    #[test]
    fn a_queued_transition_that_depends_on_a_dropped_one_is_dropped_too() {
        // The claim writes the agent's record and moves T1, which the
        // remote moved too; the agent's end touches only its record.
        let (_dir, store) = Store::temp();
        add(&store, "T1");
        let seen = add(&store, "T2");
        let remote = to(&store, "T1", TaskStatus::InProgress);
        set(&store, STATE_REF, seen);
        let agent: crate::state::Agent =
            serde_yaml::from_str("id: a1\nrole: developer\nstate: running\ntask: f/T1\n").unwrap();
        let r = ops::TaskRef::new("f", "T1");
        let claimed = store
            .transact(&who(), |txn| {
                txn.put_agent(&agent)?;
                ops::move_task(txn, &r, TaskStatus::InProgress, None, true)
            })
            .unwrap()
            .commit
            .unwrap();
        let ended = put_agent(&store, "a1", "exited");
        let queue = [claimed, ended];
        let replay = plan(store.repo(), seen, Some(remote), &queue, &who()).unwrap();
        let dropped: Vec<_> = replay.dropped.iter().map(|d| d.commit.clone()).collect();
        assert_eq!(dropped, [claimed.to_string(), ended.to_string()]);
        assert_eq!(replay.dropped[1].path, "agents/a1.yaml");
        assert_eq!(replay.dropped[0].agents(), ["a1"]);
        assert_eq!(replay.dropped[0].tasks(), ["f/T1"]);
        assert!(replay.dropped[1].tasks().is_empty());
        let tip = replay.tip.unwrap();
        assert_eq!(store.read_at(tip, |txn| txn.agent("a1")).unwrap(), None);
        let record = message(&store, tip);
        assert!(
            record.contains("agents/a1.yaml changed by the dropped 'f/T1: todo -> in_progress'"),
            "{record}"
        );
    }

    #[test]
    fn with_no_change_on_the_remote_every_queued_transition_applies_in_order() {
        let (_dir, store) = Store::temp();
        let s = split(&store);
        let replay = plan(store.repo(), s.seen, Some(s.seen), &s.queue, &who()).unwrap();
        assert!(replay.dropped.is_empty());
        let tip = replay.tip.unwrap();
        assert_eq!(
            tree_of(store.repo(), tip).unwrap(),
            tree_of(store.repo(), s.queue[1]).unwrap(),
            "the same state as the queue made"
        );
        assert_eq!(
            parent(store.repo(), tip)
                .unwrap()
                .map(|p| parent(store.repo(), p).unwrap()),
            Some(Some(s.seen))
        );
    }

    #[test]
    fn the_diff_names_changed_added_and_removed_files_never_trees() {
        let (_dir, store) = Store::temp();
        let repo = store.repo();
        let a = add(&store, "T1");
        let b = add(&store, "T2");
        let (ta, tb) = (tree_of(repo, a).unwrap(), tree_of(repo, b).unwrap());
        let forward = diff(repo, Some(ta), Some(tb)).unwrap();
        assert!(
            forward.keys().any(|p| p == "features/f/tasks/T2.yaml"),
            "{forward:?}"
        );
        assert!(forward.values().all(Option::is_some));
        let back = diff(repo, Some(tb), Some(ta)).unwrap();
        assert_eq!(back.get("features/f/tasks/T2.yaml"), Some(&None));
        assert!(diff(repo, Some(ta), Some(ta)).unwrap().is_empty());
        let all = diff(repo, None, Some(ta)).unwrap();
        assert!(all.contains_key("sprint.yaml") && all.contains_key("features/f/tasks/T1.yaml"));
        assert!(!all.contains_key("features"), "{all:?}");
    }
}
