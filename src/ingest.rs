//! From a committed `specs/<feature>/tasks.md` to tasks in state.
//!
//! Ingest reads tasks.md *as committed* (never the working tree: what agents
//! build must be what the person committed), plans it with [`crate::spec`],
//! and reconciles the feature's tasks in one state commit: new tasks are
//! added, tasks gone from the file are `cancelled` (kept, so their history
//! stays), changed text and dependencies are updated, and status and attempts
//! of existing tasks are kept. The blob id it ingested is recorded, so
//! re-ingesting the same file changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use gix::bstr::ByteSlice;
use gix::ObjectId;
use serde::Serialize;

use crate::clock;
use crate::config::{ChoreMode, ConfigError, Planning, StoryOrder};
use crate::hint::Hint;
use crate::spec::{self, Plan, SpecError};
use crate::state::{
    check_name, Actor, Convoy, ConvoyStatus, Feature, FeatureStatus, StateError, Store, Task,
    TaskStatus, Transition, Txn,
};

/// Why an ingest could not be read or recorded.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{what}")]
    Git {
        what: String,
        #[source]
        source: Box<gix::Error>,
    },
    #[error("'{rev}' is not a commit in this repository")]
    BadRev { rev: String },
    #[error("no {path} at {rev}")]
    NoSpec { rev: String, path: String },
    #[error("no specs/<feature>/tasks.md at {rev}")]
    NoSpecs { rev: String },
    #[error("{path} at {rev} is not UTF-8 text")]
    NotText { rev: String, path: String },
    #[error("{0}")]
    Name(String),
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("reading the planning settings")]
    Config(#[from] ConfigError),
}

impl Hint for IngestError {
    fn hint(&self) -> Option<String> {
        match self {
            IngestError::NoSpec { .. } | IngestError::NoSpecs { .. } => Some(
                "commit a specs/<feature>/tasks.md on the base branch, or name another commit with --rev"
                    .into(),
            ),
            IngestError::Spec(_) => {
                Some("fix tasks.md and commit it again; nothing was ingested".into())
            }
            IngestError::BadRev { .. } => Some("name a branch, tag or commit id".into()),
            IngestError::State(e) => e.hint(),
            IngestError::Config(e) => e.hint(),
            _ => None,
        }
    }
}

impl IngestError {
    fn git(what: impl Into<String>, source: impl Into<gix::Error>) -> Self {
        IngestError::Git {
            what: what.into(),
            source: Box::new(source.into()),
        }
    }
}

/// One tasks.md as committed.
#[derive(Debug, Clone)]
pub struct Source {
    /// The feature the file belongs to (`specs/<feature>/`).
    pub feature: String,
    /// `specs/<feature>/tasks.md`.
    pub path: String,
    /// The file's blob at the revision.
    pub blob: ObjectId,
    /// The file's text.
    pub text: String,
    /// The revision as the user named it, for messages.
    pub rev: String,
}

impl Source {
    /// The plan of this file under the `planning` settings.
    pub(crate) fn plan(&self, planning: &Planning) -> Result<Plan, SpecError> {
        let options = plan_options(planning, &self.feature);
        spec::plan_with(&spec::parse(&self.path, &self.text)?, &options)
    }
}

pub(crate) fn tasks_path(feature: &str) -> String {
    format!("specs/{feature}/tasks.md")
}

/// The planner's options for `feature` under the `planning` settings:
/// story order, chore patterns (none with `chores: run`), and spec-kit's
/// documents under `specs/<feature>/`.
pub(crate) fn plan_options(planning: &Planning, feature: &str) -> spec::Options {
    let chores = match planning.chores {
        // The patterns compiled when the configuration was read.
        ChoreMode::Skip => {
            spec::Options::chore_patterns(&planning.chore_patterns).unwrap_or_default()
        }
        ChoreMode::Run => Vec::new(),
    };
    spec::Options {
        serial_stories: planning.stories == StoryOrder::Serial,
        chores,
        spec_dir: (!feature.is_empty()).then(|| format!("specs/{feature}")),
    }
}

/// The branch tasks.md is read from and features merge into; see
/// [`crate::config::base_branch`] (never the working tree's config file).
pub(crate) fn base_branch(repo: &gix::Repository) -> Option<String> {
    crate::config::base_branch(repo)
}

/// The commit `rev` names; the default is the base branch, falling back to HEAD.
pub(crate) fn resolve_rev(
    repo: &gix::Repository,
    rev: Option<&str>,
) -> Result<(String, ObjectId), IngestError> {
    let candidates: Vec<String> = match rev {
        Some(r) => vec![r.to_owned()],
        None => base_branch(repo)
            .into_iter()
            .chain(["HEAD".to_owned()])
            .collect(),
    };
    for name in &candidates {
        if let Ok(id) = repo.rev_parse_single(name.as_str()) {
            if let Ok(commit) = id.object().and_then(|o| o.peel_to_commit()) {
                return Ok((name.clone(), commit.id));
            }
        }
    }
    Err(IngestError::BadRev {
        rev: candidates.first().cloned().unwrap_or_else(|| "HEAD".into()),
    })
}

/// Blob ids of every `specs/*/tasks.md` in a commit, by feature.
pub(crate) fn spec_blobs(
    repo: &gix::Repository,
    commit: ObjectId,
) -> Result<BTreeMap<String, ObjectId>, IngestError> {
    let mut out = BTreeMap::new();
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .map_err(|e| IngestError::git("reading the commit's tree", e))?;
    let Some(specs) = tree
        .lookup_entry_by_path("specs")
        .map_err(|e| IngestError::git("looking up specs/", e))?
    else {
        return Ok(out);
    };
    if !specs.mode().is_tree() {
        return Ok(out);
    }
    let specs = specs
        .object()
        .map_err(|e| IngestError::git("reading specs/", e))?
        .into_tree();
    let decoded = specs
        .decode()
        .map_err(|e| IngestError::git("decoding specs/", e))?;
    for entry in decoded.entries {
        if !entry.mode.is_tree() {
            continue;
        }
        let feature = entry.filename.to_str_lossy().into_owned();
        let sub = repo
            .find_tree(entry.oid)
            .map_err(|e| IngestError::git(format!("reading specs/{feature}"), e))?;
        let found = sub
            .decode()
            .map_err(|e| IngestError::git(format!("decoding specs/{feature}"), e))?
            .entries
            .iter()
            .find(|e| e.filename == "tasks.md" && e.mode.is_blob())
            .map(|e| e.oid.to_owned());
        if let Some(blob) = found {
            out.insert(feature, blob);
        }
    }
    Ok(out)
}

/// Features whose tasks.md differs between `old` and `new` (added or changed;
/// a removed tasks.md is left alone: deleting the file is not cancelling the
/// feature).
pub(crate) fn changed_features(
    repo: &gix::Repository,
    new: ObjectId,
    old: Option<ObjectId>,
) -> Result<Vec<String>, IngestError> {
    let now = spec_blobs(repo, new)?;
    let before = match old {
        Some(old) => spec_blobs(repo, old)?,
        None => BTreeMap::new(),
    };
    Ok(now
        .into_iter()
        .filter(|(f, blob)| before.get(f) != Some(blob))
        .map(|(f, _)| f)
        .collect())
}

/// Reads the tasks.md of `features` (all of them when empty) at `commit`.
pub(crate) fn sources(
    repo: &gix::Repository,
    rev: &str,
    commit: ObjectId,
    features: &[String],
) -> Result<Vec<Source>, IngestError> {
    let blobs = spec_blobs(repo, commit)?;
    let wanted: Vec<String> = if features.is_empty() {
        if blobs.is_empty() {
            return Err(IngestError::NoSpecs {
                rev: rev.to_owned(),
            });
        }
        blobs.keys().cloned().collect()
    } else {
        features.to_vec()
    };
    let mut out = Vec::new();
    for feature in wanted {
        check_name("feature", &feature).map_err(IngestError::Name)?;
        let path = tasks_path(&feature);
        let blob = *blobs.get(&feature).ok_or_else(|| IngestError::NoSpec {
            rev: rev.to_owned(),
            path: path.clone(),
        })?;
        let data = repo
            .find_blob(blob)
            .map_err(|e| IngestError::git(format!("reading {path}"), e))?
            .detach()
            .data;
        let text = String::from_utf8(data).map_err(|_| IngestError::NotText {
            rev: rev.to_owned(),
            path: path.clone(),
        })?;
        out.push(Source {
            feature,
            path,
            blob,
            text,
            rev: rev.to_owned(),
        });
    }
    Ok(out)
}

/// What one ingest did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub(crate) feature: String,
    pub(crate) path: String,
    pub(crate) blob: String,
    /// The same blob was ingested before: nothing changed.
    pub(crate) unchanged: bool,
    /// Ids of the tasks the ingest added.
    pub added: Vec<String>,
    pub(crate) updated: Vec<String>,
    pub(crate) cancelled: Vec<String>,
    pub(crate) reinstated: Vec<String>,
    /// Checked off (`[x]`) in tasks.md and so marked done.
    pub(crate) checked_off: Vec<String>,
    /// Chores marked done without an agent (handled by git-sprint).
    pub(crate) skipped: Vec<String>,
    pub(crate) integration_branch: Option<String>,
    #[serde(skip)]
    pub(crate) commit: Option<ObjectId>,
}

impl Outcome {
    pub(crate) fn summary(&self) -> String {
        if self.unchanged {
            return "unchanged".into();
        }
        let mut parts = Vec::new();
        for (n, what) in [
            (self.added.len(), "added"),
            (self.updated.len(), "updated"),
            (self.cancelled.len(), "cancelled"),
            (self.reinstated.len(), "reinstated"),
            (self.checked_off.len(), "checked off"),
            (self.skipped.len(), "skipped (chores)"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if parts.is_empty() {
            "no task changed".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Ingests one tasks.md: plans it, creates the integration branch if it is
/// missing, and reconciles the feature's tasks in one state commit.
pub fn ingest(
    store: &Store,
    actor: &Actor,
    source: &Source,
    base: Option<&str>,
) -> Result<Outcome, IngestError> {
    let planning = crate::config::load_from(store.repo(), None)?
        .config
        .planning;
    let plan = source.plan(&planning)?;
    for t in &plan.tasks {
        check_name("task", &t.id).map_err(IngestError::Name)?;
    }
    for c in &plan.convoys {
        check_name("convoy", &c.name).map_err(IngestError::Name)?;
    }
    let integration = crate::stages::integration_branch(&source.feature);
    let done = store.transact(actor, |txn| {
        reconcile(txn, source, &plan, base, &integration)
    })?;
    let mut outcome = done.value;
    outcome.commit = done.commit;
    if !outcome.unchanged {
        if let Some(base) = base {
            outcome.integration_branch = ensure_branch(store.repo(), &integration, base)?;
        }
    }
    Ok(outcome)
}

/// Creates `refs/heads/<branch>` at `base` unless it exists; returns its name
/// when it was created.
pub(crate) fn ensure_branch(
    repo: &gix::Repository,
    branch: &str,
    base: &str,
) -> Result<Option<String>, IngestError> {
    let full = format!("refs/heads/{branch}");
    if repo
        .try_find_reference(full.as_str())
        .map_err(|e| IngestError::git(format!("reading {full}"), e))?
        .is_some()
    {
        return Ok(None);
    }
    let Ok(target) = repo.rev_parse_single(base) else {
        // An unborn base branch: the engine creates the branch once it exists.
        return Ok(None);
    };
    repo.reference(
        full.as_str(),
        target.detach(),
        gix::refs::transaction::PreviousValue::MustNotExist,
        format!("git-sprint: integration branch from {base}"),
    )
    .map_err(|e| IngestError::git(format!("creating branch {branch}"), e))?;
    Ok(Some(branch.to_owned()))
}

fn reconcile(
    txn: &mut Txn<'_>,
    source: &Source,
    plan: &Plan,
    base: Option<&str>,
    integration: &str,
) -> Result<Outcome, StateError> {
    let name = &source.feature;
    let now = clock::now_rfc3339();
    let mut out = Outcome {
        feature: name.clone(),
        path: source.path.clone(),
        blob: source.blob.to_string(),
        ..Default::default()
    };
    let blob = source.blob.to_string();
    let existing_feature = txn.feature(name)?;
    if existing_feature
        .as_ref()
        .is_some_and(|f| f.tasks_blob.as_deref() == Some(blob.as_str()))
    {
        out.unchanged = true;
        return Ok(out);
    }
    let mut feature = existing_feature
        .clone()
        .unwrap_or_else(|| Feature::new(name, &now));
    feature.tasks_blob = Some(blob.clone());
    feature.tasks_path = Some(source.path.clone());
    if feature.base_branch.is_none() {
        feature.base_branch = base.map(str::to_owned);
    }
    feature.integration_branch = Some(integration.to_owned());
    if existing_feature.is_none() {
        txn.record(Transition {
            task: name.clone(),
            from: "none".into(),
            to: FeatureStatus::Planned.to_string(),
            reason: Some(format!("ingested {} at {}", source.path, source.rev)),
            policy: None,
        });
    }

    let (readable, broken) = txn.tasks_and_quarantined(name)?;
    let mut existing: BTreeMap<String, Task> =
        readable.into_iter().map(|t| (t.id.clone(), t)).collect();
    // A quarantined record is left as it is: re-adding it as new would wipe
    // its progress. 'git sprint repair' rewrites it (with tasks.md's text).
    let broken: BTreeSet<String> = broken.into_iter().map(|(id, _)| id).collect();
    let note = |txn: &mut Txn<'_>, id: &str, from: &str, to: TaskStatus, reason: &str| {
        txn.record(Transition {
            task: format!("{name}/{id}"),
            from: from.to_owned(),
            to: to.to_string(),
            reason: Some(reason.to_owned()),
            policy: None,
        });
    };
    for pt in &plan.tasks {
        if broken.contains(&pt.id) {
            continue;
        }
        let mut task = match existing.remove(&pt.id) {
            Some(t) => t,
            None => {
                let mut t = Task::new(&pt.id, &pt.title, &now);
                t.status = if pt.done || pt.skipped.is_some() {
                    TaskStatus::Done
                } else {
                    TaskStatus::Todo
                };
                t.skipped = pt.skipped.clone();
                apply(&mut t, pt);
                let why = match &pt.skipped {
                    Some(why) => format!("added from tasks.md; skipped: {why}"),
                    None => "added from tasks.md".to_owned(),
                };
                note(txn, &pt.id, "none", t.status, &why);
                txn.put_task(name, &t)?;
                out.added.push(pt.id.clone());
                if pt.skipped.is_some() {
                    out.skipped.push(pt.id.clone());
                }
                continue;
            }
        };
        let before = task.clone();
        apply(&mut task, pt);
        let from = task.status;
        // A person's cancel holds until the task's line says something new.
        let same_line = task.title == before.title
            && task.description == before.description
            && task.deps == before.deps
            && task.paths == before.paths
            && !pt.done;
        if from == TaskStatus::Cancelled && task.manual_cancel && same_line {
            // Stays cancelled.
        } else if from == TaskStatus::Cancelled {
            task.manual_cancel = false;
            task.status = if pt.done {
                TaskStatus::Done
            } else {
                TaskStatus::Todo
            };
            task.reason = None;
            note(txn, &pt.id, from.as_str(), task.status, "back in tasks.md");
            out.reinstated.push(pt.id.clone());
        } else if pt.done
            && matches!(
                from,
                TaskStatus::Todo | TaskStatus::Blocked | TaskStatus::Failed
            )
        {
            task.status = TaskStatus::Done;
            task.claim = None;
            note(
                txn,
                &pt.id,
                from.as_str(),
                TaskStatus::Done,
                "checked off in tasks.md",
            );
            out.checked_off.push(pt.id.clone());
        } else if let (Some(why), true) = (
            &pt.skipped,
            matches!(
                from,
                TaskStatus::Todo | TaskStatus::Blocked | TaskStatus::Failed
            ),
        ) {
            task.status = TaskStatus::Done;
            task.skipped = Some(why.clone());
            task.claim = None;
            note(
                txn,
                &pt.id,
                from.as_str(),
                TaskStatus::Done,
                &format!("skipped: {why}"),
            );
            out.skipped.push(pt.id.clone());
        } else if from == TaskStatus::Done
            && task.skipped.is_some()
            && pt.skipped.is_none()
            && !pt.done
        {
            // No longer a chore (`chores: run`, or its line changed): it gets an agent.
            task.status = TaskStatus::Todo;
            task.skipped = None;
            note(
                txn,
                &pt.id,
                "done",
                TaskStatus::Todo,
                "no longer a chore git-sprint handles",
            );
            out.updated.push(pt.id.clone());
        } else if (Task {
            line: before.line,
            ..task.clone()
        }) != before
        {
            // Moving in the file alone is not worth reporting.
            out.updated.push(pt.id.clone());
        }
        if task != before {
            task.updated = now.clone();
            txn.put_task(name, &task)?;
        }
    }
    for (id, mut task) in existing {
        if matches!(task.status, TaskStatus::Cancelled | TaskStatus::Done) {
            continue;
        }
        let from = task.status;
        task.status = TaskStatus::Cancelled;
        task.claim = None;
        task.reason = Some("removed from tasks.md".into());
        task.updated = now.clone();
        note(
            txn,
            &id,
            from.as_str(),
            TaskStatus::Cancelled,
            "removed from tasks.md",
        );
        txn.put_task(name, &task)?;
        out.cancelled.push(id);
    }

    // Convoys follow the plan; a convoy keeps its status across re-ingests.
    let mut stale: BTreeSet<String> = txn.convoy_ids(name)?.into_iter().collect();
    for c in &plan.convoys {
        stale.remove(&c.name);
        let existing_convoy = txn.convoy(name, &c.name)?;
        let status = existing_convoy
            .as_ref()
            .map(|c| c.status)
            .unwrap_or(ConvoyStatus::Open);
        let title = match (&c.story, c.phase) {
            (Some(story), _) => story.clone(),
            (None, Some(p)) => plan
                .phases
                .iter()
                .find(|ph| ph.index == p)
                .map(|ph| ph.title.clone())
                .unwrap_or_default(),
            (None, None) => String::new(),
        };
        let convoy = Convoy {
            id: c.name.clone(),
            title,
            status,
            tasks: c.tasks.clone(),
            ..existing_convoy.clone().unwrap_or_else(|| Convoy {
                id: String::new(),
                title: String::new(),
                status,
                tasks: Vec::new(),
                attempts: 0,
                reason: None,
                runs: 0,
                librarian: None,
                retry_after: None,
            })
        };
        if txn.convoy(name, &c.name)?.as_ref() != Some(&convoy) {
            txn.put_convoy(name, &convoy)?;
        }
    }
    for id in stale {
        txn.remove(&format!("features/{name}/convoys/{id}.yaml"));
    }
    txn.put_feature(&feature)?;
    txn.subject(format!(
        "{name}: ingested {} ({})",
        source.path,
        out.summary()
    ));
    Ok(out)
}

/// Copies what the feature's last ingested tasks.md says about `task`
/// onto it (for a repaired record); false when there is no such file or
/// task, or it does not parse.
pub(crate) fn overlay_from_spec(
    repo: &gix::Repository,
    feature: &Feature,
    task: &mut Task,
) -> bool {
    let (Some(path), Some(blob)) = (&feature.tasks_path, &feature.tasks_blob) else {
        return false;
    };
    let Ok(id) = ObjectId::from_hex(blob.as_bytes()) else {
        return false;
    };
    let Ok(object) = repo.find_object(id) else {
        return false;
    };
    let Ok(text) = std::str::from_utf8(&object.data) else {
        return false;
    };
    let Ok(plan) = spec::parse(path, text).and_then(|f| spec::plan(&f)) else {
        return false;
    };
    match plan.tasks.iter().find(|pt| pt.id == task.id) {
        Some(pt) => {
            apply(task, pt);
            true
        }
        None => false,
    }
}

/// Copies what tasks.md says about a task onto its record.
fn apply(task: &mut Task, pt: &spec::PlannedTask) {
    task.title = pt.title.clone();
    task.description = if pt.description == pt.title {
        String::new()
    } else {
        pt.description.clone()
    };
    task.story = pt.story.clone();
    task.convoy = Some(pt.convoy.clone());
    task.deps = pt.deps.clone();
    task.paths = pt.paths.clone();
    task.labels = pt.labels.clone();
    task.line = pt.line as u32;
    task.phase = pt.phase as u32;
    task.parallel = pt.parallel;
}

/// A tasks.md in the working tree that does not parse: what `status` and
/// the orchestrator report before anyone commits it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Draft {
    pub(crate) path: String,
    pub(crate) error: String,
}

/// Checks every `specs/*/tasks.md` in the working tree at `root`.
pub(crate) fn check_drafts(root: &std::path::Path) -> Vec<Draft> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(root.join("specs")) else {
        return out;
    };
    let mut paths: Vec<_> = dirs
        .filter_map(|d| d.ok())
        .map(|d| d.path().join("tasks.md"))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let error = match std::fs::read_to_string(&path) {
            Err(e) => Some(e.to_string()),
            Ok(text) => spec::parse(&rel, &text)
                .and_then(|f| spec::plan(&f))
                .err()
                .map(|e| e.to_string()),
        };
        if let Some(error) = error {
            out.push(Draft { path: rel, error });
        }
    }
    out
}
