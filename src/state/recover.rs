//! A lost `refs/ai-sprint`: what shows a sprint was here, and restoring
//! the ref from the last state commit recorded outside it.
//!
//! Every state write also goes into the backup ([`super::backup`]); a ref
//! file deleted by hand may also leave its reflog. `recover` takes the
//! newest of these that is a real state commit (its tree has a readable
//! `sprint.yaml`), puts the ref back by compare-and-swap (only while it is
//! still missing) and records the recovery as a state commit. Starting over
//! instead (`--fresh`) is a person's explicit choice, and keeps the old
//! state under `refs/ai-sprint-abandoned/<time>`.

use std::fmt;

use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::refs::Target;
use gix::ObjectId;
use serde::Serialize;

use super::backup::BACKUP_REF;
use super::error::StateError;
use super::model::SprintMeta;
use super::snapshot::Snapshot;
use super::store::{signature, Actor, Store, Transition, STATE_REF};
use crate::clock;

/// What shows that this repository had sprint state.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Evidence {
    /// The newest state commit the backup holds ([`Store::backup_tip`]).
    pub(crate) backup: Option<String>,
    /// The newest entry of `refs/ai-sprint`'s reflog.
    pub(crate) reflog: Option<String>,
    /// Branches named like the tool's: `sprint/<feature>/<name>`.
    pub(crate) branches: Vec<String>,
    /// Worktrees under `<git dir>/sprint/worktrees/`.
    pub(crate) worktrees: Vec<String>,
}

impl Evidence {
    pub(crate) fn is_empty(&self) -> bool {
        self.backup.is_none()
            && self.reflog.is_none()
            && self.branches.is_empty()
            && self.worktrees.is_empty()
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = &self.backup {
            parts.push(format!("{BACKUP_REF} is at {}", crate::names::short_id(b)));
        }
        if let Some(r) = &self.reflog {
            parts.push(format!(
                "the reflog of {STATE_REF} ends at {}",
                crate::names::short_id(r)
            ));
        }
        let list = |names: &[String]| {
            let mut s = names.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            if names.len() > 3 {
                s.push_str(&format!(", … ({} more)", names.len() - 3));
            }
            s
        };
        if !self.branches.is_empty() {
            parts.push(format!("branches {}", list(&self.branches)));
        }
        if !self.worktrees.is_empty() {
            parts.push(format!("worktrees {}", list(&self.worktrees)));
        }
        f.write_str(&parts.join("; "))
    }
}

/// Where a restored state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Source {
    Backup,
    Reflog,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Backup => f.write_str(BACKUP_REF),
            Source::Reflog => write!(f, "the reflog of {STATE_REF}"),
        }
    }
}

/// What [`recover`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Recovery {
    /// `refs/ai-sprint` exists: nothing to do.
    Present { tip: String },
    /// The ref points at `commit` again, taken from `source`.
    Restored {
        source: Source,
        commit: String,
        /// The state commit that records the recovery.
        recorded: Option<String>,
        features: usize,
        tasks: usize,
        agents: usize,
        /// Candidates passed over because they are not readable state.
        skipped: Vec<String>,
    },
    /// Nothing recorded to restore from.
    Nothing {
        evidence: Evidence,
        skipped: Vec<String>,
    },
}

impl Store {
    /// What shows this repository had sprint state, besides the ref itself.
    pub(crate) fn evidence(&self) -> Result<Evidence, StateError> {
        let repo = self.repo();
        let mut branches = Vec::new();
        let refs = repo
            .references()
            .map_err(|e| StateError::git("listing branches", e))?;
        let all = refs
            .all()
            .map_err(|e| StateError::git("listing branches", e))?;
        for r in all.flatten() {
            let name = r.name().as_bstr().to_string();
            // The tool's branches are sprint/<feature>/<task or
            // integration>; a person's own `sprint/q3` is not evidence.
            if let Some(b) = name.strip_prefix("refs/heads/") {
                if crate::names::is_sprint_branch(b) {
                    branches.push(b.to_owned());
                }
            }
        }
        let mut worktrees: Vec<String> =
            std::fs::read_dir(crate::names::worktrees_dir(repo.common_dir()))
                .map(|dir| {
                    dir.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
        worktrees.sort();
        Ok(Evidence {
            backup: self.backup_tip()?.map(|id| id.to_string()),
            reflog: self.reflog_tips()?.first().map(|id| id.to_string()),
            branches,
            worktrees,
        })
    }

    /// Creates `name` at `commit`, only if it does not exist, by `actor`
    /// (the reflog's committer: no identity from the config is needed).
    fn create_ref(
        &self,
        actor: &Actor,
        name: &str,
        commit: ObjectId,
        message: &str,
    ) -> Result<(), StateError> {
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: true,
                    message: message.into(),
                },
                expected: PreviousValue::MustNotExist,
                new: Target::Object(commit),
            },
            // Our own names (the state ref, refs/ai-sprint-abandoned/<n>).
            name: name.try_into().expect("a valid ref name"),
            deref: false,
        };
        let sig = signature(actor);
        let mut buf = gix::date::parse::TimeBuf::default();
        self.repo()
            .edit_references_as([edit], Some(sig.to_ref(&mut buf)))
            .map_err(|e| StateError::git(format!("creating {name}"), e))?;
        Ok(())
    }

    /// Whether `newer` has `older` among its first parents (state history
    /// is linear: every state commit has the one before it as parent).
    fn descends_from(&self, newer: ObjectId, older: ObjectId) -> bool {
        self.descends_within(newer, older, 1_000_000)
    }

    /// Whether `older` is at most `steps` first parents behind `newer`.
    pub(super) fn descends_within(&self, newer: ObjectId, older: ObjectId, steps: usize) -> bool {
        let mut cur = newer;
        for _ in 0..=steps {
            if cur == older {
                return true;
            }
            let Ok(c) = self.repo().find_commit(cur) else {
                return false;
            };
            let parent = c.parent_ids().next().map(|p| p.detach());
            match parent {
                Some(p) => cur = p,
                None => return false,
            }
        }
        false
    }
}

/// Restores `refs/ai-sprint` from the newest state commit recorded outside
/// it, and records that as a state commit by `actor`.
pub(crate) fn recover(store: &Store, actor: &Actor) -> Result<Recovery, StateError> {
    if let Some(tip) = store.tip()? {
        return Ok(Recovery::Present {
            tip: tip.to_string(),
        });
    }
    // Newest first: the backup and the reflog's newest entry are the same
    // commit unless one of them lags; then take the one that descends.
    let mut candidates: Vec<(Source, ObjectId)> = Vec::new();
    let reflog = store.reflog_tips()?;
    match (store.backup_tip()?, reflog.first().copied()) {
        (Some(b), Some(r)) if b != r && store.descends_from(r, b) => {
            candidates.push((Source::Reflog, r));
            candidates.push((Source::Backup, b));
        }
        (Some(b), _) => candidates.push((Source::Backup, b)),
        (None, _) => {}
    }
    candidates.extend(reflog.into_iter().map(|id| (Source::Reflog, id)));
    let mut seen = Vec::new();
    let mut skipped = Vec::new();
    for (source, commit) in candidates {
        if seen.contains(&commit) {
            continue;
        }
        seen.push(commit);
        let snapshot = match store.read_at(commit, |txn| {
            if txn.meta()?.is_none() {
                return Err(StateError::NotState {
                    commit: commit.to_string(),
                });
            }
            Snapshot::read(txn)
        }) {
            Ok(s) => s,
            Err(e) => {
                skipped.push(format!(
                    "{} ({source}): {e}",
                    crate::names::short_id(&commit)
                ));
                continue;
            }
        };
        let short = crate::names::short_id(&commit);
        // Only while it is still missing: a ref that came back meanwhile wins.
        store.create_ref(
            actor,
            STATE_REF,
            commit,
            &format!("git-sprint: recovered from {source}"),
        )?;
        store.transact(actor, |txn| {
            txn.subject(format!("sprint: recovered from {source} at {short}"));
            txn.repair(format!(
                "restored {STATE_REF} from {source} at {short} after it went missing"
            ));
            txn.record(Transition {
                task: String::new(),
                from: "missing".into(),
                to: "recovered".into(),
                reason: Some(format!("restored from {source} at {short}")),
                policy: None,
            });
            Ok(())
        })?;
        return Ok(Recovery::Restored {
            source,
            commit: commit.to_string(),
            recorded: store.tip()?.map(|t| t.to_string()),
            features: snapshot.features.len(),
            tasks: snapshot.features.iter().map(|f| f.tasks.len()).sum(),
            agents: snapshot.agents.len(),
            skipped,
        });
    }
    Ok(Recovery::Nothing {
        evidence: store.evidence()?,
        skipped,
    })
}

/// What [`start_fresh`] did.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Fresh {
    /// The first commit of the new state.
    pub(crate) commit: String,
    /// Where the old state was kept, if there was one to keep.
    pub(crate) kept_as: Option<String>,
    pub(crate) evidence: Evidence,
}

/// Starts a new, empty state where `refs/ai-sprint` is missing, whatever
/// shows an earlier one: the old state (if a backup names it) is kept under
/// `refs/ai-sprint-abandoned/<unix time>`, and what was left behind is
/// recorded in the new state's first commit.
pub(crate) fn start_fresh(store: &Store, actor: &Actor) -> Result<Option<Fresh>, StateError> {
    if store.tip()?.is_some() {
        return Ok(None);
    }
    let evidence = store.evidence()?;
    let kept_as = match store.backup_tip()? {
        Some(old) => {
            let name = format!("refs/ai-sprint-abandoned/{}", clock::now());
            store.create_ref(
                actor,
                &name,
                old,
                "git-sprint: state abandoned by recover --fresh",
            )?;
            Some(name)
        }
        None => None,
    };
    let reason = if evidence.is_empty() {
        "started fresh".to_owned()
    } else {
        format!("started fresh; left behind: {evidence}")
    };
    let done = store.transact_over_lost(actor, |txn| {
        if txn.meta()?.is_some() {
            return Ok(()); // someone else started one meanwhile
        }
        txn.put_meta(&SprintMeta::new(&clock::now_rfc3339()))?;
        txn.subject("sprint: initialized fresh over a lost state");
        txn.record(Transition {
            task: String::new(),
            from: "missing".into(),
            to: "initialized".into(),
            reason: Some(reason.clone()),
            policy: kept_as
                .as_ref()
                .map(|k| format!("the old state is kept as {k}")),
        });
        Ok(())
    })?;
    Ok(done.commit.map(|c| Fresh {
        commit: c.to_string(),
        kept_as,
        evidence,
    }))
}
