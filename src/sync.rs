//! The base moves forward: commits made on a feature's base branch during
//! the sprint reach its integration branch — merged by the Refinery behind
//! the post-merge gates, like any task — and tasks.md is read again from the
//! new base, so agents and gates work from today's tree and today's tasks.
//! A base that cannot be merged (a conflict, a failing gate) is recorded on
//! the feature and stops its task merges until it is resolved; the
//! orchestrator tries again when the base moves, and `git sprint sync` on
//! demand.

use std::path::Path;

use crate::gates::Gate;
use crate::refinery::{self, BaseSync};
use crate::state::{Actor, BaseConflict, StateError, Store, Transition};

/// What a sync of one feature did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub(crate) enum Synced {
    UpToDate,
    Merged { base_tip: String, commit: String },
    Conflict { base_tip: String, what: String },
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    #[error(transparent)]
    Refinery(#[from] refinery::RefineryError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Ingest(#[from] crate::ingest::IngestError),
    #[error("feature {feature} has no base branch to sync from")]
    NoBase { feature: String },
}

/// The base branch and integration branch of `feature`, from its record.
fn branches(store: &Store, feature: &str) -> Result<Option<(String, String)>, SyncError> {
    let Some(f) = store.read(|txn| txn.feature(feature))? else {
        return Ok(None);
    };
    let base = f
        .base_branch
        .clone()
        .or_else(|| crate::ingest::base_branch(store.repo()))
        .ok_or_else(|| SyncError::NoBase {
            feature: feature.to_owned(),
        })?;
    let integration = f
        .integration_branch
        .clone()
        .unwrap_or_else(|| crate::stages::integration_branch(feature));
    Ok(Some((base, integration)))
}

/// The commit `branch` points at.
fn tip(repo: &gix::Repository, branch: &str) -> Option<gix::ObjectId> {
    let mut r = repo
        .try_find_reference(format!("refs/heads/{branch}").as_str())
        .ok()??;
    r.peel_to_id().ok().map(|id| id.detach())
}

/// The tips of `feature`'s base branch (as recorded, else the
/// repository's) and of its integration branch, where they exist.
pub(crate) fn tips(
    repo: &gix::Repository,
    feature: &crate::state::Feature,
) -> (Option<gix::ObjectId>, Option<gix::ObjectId>) {
    let base = feature
        .base_branch
        .clone()
        .or_else(|| crate::ingest::base_branch(repo));
    let integration = feature
        .integration_branch
        .clone()
        .unwrap_or_else(|| crate::stages::integration_branch(&feature.name));
    (base.and_then(|b| tip(repo, &b)), tip(repo, &integration))
}

/// Whether `feature` needs a sync: its base has commits its integration
/// branch lacks (and that tip was not already found unmergeable), or a
/// recorded conflict was resolved. In-process: no git is run.
pub(crate) fn behind(store: &Store, feature: &crate::state::Feature) -> bool {
    let repo = store.repo();
    let (Some(base), Some(integ)) = tips(repo, feature) else {
        return false;
    };
    let contained = base == integ
        || matches!(repo.merge_base(base, integ), Ok(Some(mb)) if mb.detach() == base);
    match &feature.base_conflict {
        // Resolved by hand (the base is in now), or the base moved again:
        // a sync records it or tries again.
        Some(c) => contained || gix::ObjectId::from_hex(c.base_tip.as_bytes()).ok() != Some(base),
        None => !contained,
    }
}

/// Brings `feature`'s base into its integration branch, records the result,
/// and re-reads tasks.md from the base when anything was merged.
pub(crate) fn sync_feature(
    store: &Store,
    common_dir: &Path,
    root: &Path,
    feature: &str,
    post_merge: &[Gate],
    gates: &crate::gates::Runner,
) -> Result<Synced, SyncError> {
    let Some((base, integration)) = branches(store, feature)? else {
        return Ok(Synced::UpToDate);
    };
    let base_tip = tip(store.repo(), &base)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let verdict = refinery::sync_base(common_dir, root, &base, &integration, post_merge, gates)?;
    let synced = match verdict {
        BaseSync::UpToDate => Synced::UpToDate,
        BaseSync::Merged { commit } => Synced::Merged {
            base_tip: base_tip.clone(),
            commit,
        },
        BaseSync::Conflict { files } => Synced::Conflict {
            base_tip: base_tip.clone(),
            what: format!("conflicts in {}", files.join(", ")),
        },
        BaseSync::GatesFailed { outcome } => Synced::Conflict {
            base_tip: base_tip.clone(),
            what: format!("the post-merge gates failed:\n{}", outcome.feedback()),
        },
    };
    let short = crate::names::record_id;
    store.transact(&Actor::named("refinery"), |txn| {
        let Some(mut f) = txn.feature(feature)? else {
            return Ok(());
        };
        let (to, why) = match &synced {
            Synced::UpToDate if f.base_conflict.is_some() => (
                "synced",
                format!("{integration} already holds {base}; the conflict is resolved"),
            ),
            Synced::UpToDate => return Ok(()),
            Synced::Merged { commit, .. } => (
                "synced",
                format!(
                    "merged {base} at {} into {integration} as {}",
                    short(&base_tip),
                    short(commit)
                ),
            ),
            Synced::Conflict { what, .. } => (
                "base_conflict",
                format!(
                    "cannot merge {base} at {} into {integration}: {what}; merge it by hand (git switch {integration} && git merge {base}), then 'git sprint sync'",
                    short(&base_tip),
                ),
            ),
        };
        f.base_conflict = match &synced {
            Synced::Conflict { what, .. } => Some(BaseConflict {
                base_tip: base_tip.clone(),
                what: what.clone(),
            }),
            _ => None,
        };
        if matches!(synced, Synced::Merged { .. }) {
            f.base_synced = Some(base_tip.clone());
        }
        txn.put_feature(&f)?;
        txn.record(Transition {
            task: feature.to_owned(),
            from: "base_moved".into(),
            to: to.into(),
            reason: Some(why),
            policy: None,
        });
        Ok(())
    })?;
    if matches!(synced, Synced::Merged { .. }) {
        reingest(store, feature, &base)?;
    }
    Ok(synced)
}

/// Reads the feature's tasks.md again from `base` (a no-op when unchanged).
fn reingest(store: &Store, feature: &str, base: &str) -> Result<(), SyncError> {
    let repo = store.repo();
    let (rev, commit) = crate::ingest::resolve_rev(repo, Some(base))?;
    let sources = match crate::ingest::sources(repo, &rev, commit, &[feature.to_owned()]) {
        Ok(s) => s,
        // The feature's tasks.md left the base: nothing to re-read here;
        // the next hook-driven ingest decides what that means.
        Err(_) => return Ok(()),
    };
    for source in sources {
        crate::ingest::ingest(store, &Actor::named("refinery"), &source, Some(base))?;
    }
    Ok(())
}
