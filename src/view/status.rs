//! The sprint as `git sprint status` and the board's `/api/v1/status` see
//! it: the state, what it has cost, what needs a person, and the
//! working-tree files that would be rejected if committed.
//!
//! Gathered here once, so the command's text, its `--json` and the board's
//! answer are all renderings of the same [`StatusView`].

use gix::ObjectId;
use serde::Serialize;

use crate::stages::budget::{spend, Spend};
use crate::stages::trouble::Trouble;
use crate::state::{Snapshot, StateError, Store};

/// The whole board.
#[derive(Debug, Serialize)]
pub(crate) struct StatusView {
    /// The state commit this was read at; none before the first one.
    #[serde(serialize_with = "hex")]
    pub(crate) tip: Option<ObjectId>,
    /// US dollars spent, in total and per feature.
    pub(crate) spend: Spend,
    /// What needs a person (quarantined records, open breakers, budgets
    /// reached, failed, blocked and stalled work).
    pub(crate) trouble: Vec<Trouble>,
    /// Working-tree tasks.md files that do not parse.
    pub(crate) drafts: Vec<crate::ingest::Draft>,
    /// Set when the working tree's `.git-sprint.yaml` is not the committed
    /// one the sprint uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) config_notice: Option<String>,
    /// Transitions this clone committed while the state remote did not
    /// answer, waiting to be replayed there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) queued: Option<crate::state::Queued>,
    /// The machines sharing the sprint through a remote, as this clone's
    /// copy of their beats says (none: the sprint is this clone's alone).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) machines: Vec<crate::machines::MachineView>,
    #[serde(flatten)]
    pub(crate) snapshot: Snapshot,
}

fn hex<S: serde::Serializer>(tip: &Option<ObjectId>, s: S) -> Result<S::Ok, S::Error> {
    tip.map(|t| t.to_string()).serialize(s)
}

/// The board of `store`; with `archive`, the archived agents too (the
/// whole record, as `--json` gives it). Without, it reads only the live
/// state, so it costs the same late in a sprint.
pub(crate) fn gather(store: &Store, archive: bool) -> Result<StatusView, StateError> {
    let tip = store.tip()?;
    if tip.is_none() {
        let evidence = store.evidence()?;
        if !evidence.is_empty() {
            return Err(StateError::Lost {
                evidence: evidence.to_string(),
            });
        }
    }
    let snapshot = if archive {
        store.read(Snapshot::read_with_archive)?
    } else {
        store.read(Snapshot::read)?
    };
    let drafts = store
        .repo()
        .workdir()
        .map(crate::ingest::check_drafts)
        .unwrap_or_default();
    let config_notice = store.repo().workdir().and_then(|top| {
        let root = crate::worker::worktree::Git::new(top)
            .main_worktree()
            .ok()
            .flatten()?;
        crate::config::uncommitted_notice(store.repo(), &root)
    });
    let queued = store.queued()?;
    let machines = match store.remote_name() {
        Some(_) => {
            let lost_after = crate::machines::recorded_lost_after(snapshot.meta.as_ref());
            crate::machines::views(store, crate::clock::now(), lost_after)?
        }
        None => Vec::new(),
    };
    Ok(StatusView {
        tip,
        spend: spend(&snapshot),
        trouble: crate::stages::trouble::list(&snapshot),
        drafts,
        config_notice,
        queued,
        machines,
        snapshot,
    })
}
