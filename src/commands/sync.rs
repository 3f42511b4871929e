//! `git sprint sync`: bring commits made on the base branch into the
//! features' integration branches now (the orchestrator does it by itself
//! when the base moves).

use super::{CommandError, Ctx, Result};
use crate::state::{FeatureStatus, Snapshot};
use crate::sync::{sync_feature, Synced};

/// Merge new base-branch commits into each feature's integration branch
///
/// For every feature in progress (or those named), the Refinery merges the
/// base branch into sprint/<feature>/integration behind the post-merge
/// gates, then reads tasks.md again from the base. A conflict is recorded
/// on the feature and stops its task merges: resolve it by merging the base
/// into the integration branch by hand, then run this again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Features to sync (default: every feature not done or cancelled)
    pub(crate) features: Vec<String>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(serde::Serialize)]
struct Row {
    feature: String,
    #[serde(flatten)]
    synced: Synced,
}

/// Runs `git sprint sync`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let snapshot = store.read(Snapshot::read)?;
    let names: Vec<String> = snapshot
        .features
        .iter()
        .filter(|f| {
            if args.features.is_empty() {
                !matches!(
                    f.feature.status,
                    FeatureStatus::Done | FeatureStatus::Cancelled
                )
            } else {
                args.features.contains(&f.feature.name)
            }
        })
        .map(|f| f.feature.name.clone())
        .collect();
    for wanted in &args.features {
        if !names.contains(wanted) {
            return Err(CommandError::Usage {
                message: format!("no feature '{wanted}' in the sprint state"),
                hint: Some("'git sprint status' lists the features".into()),
            });
        }
    }
    let root = store
        .repo()
        .workdir()
        .map(|p| p.to_owned())
        .unwrap_or_else(|| ctx.cwd.clone());
    let config = crate::config::load(&root, &root)?.config;
    // The post-merge gates run the agents' code: confined as in the sprint.
    let common_dir = store.repo().common_dir();
    let gates = crate::gates::Runner::new(
        None,
        crate::gates::Confinement::of_sprint(common_dir, &root, &config.sandbox),
    );
    let mut rows = Vec::new();
    let mut conflicts = 0;
    for name in names {
        let synced = sync_feature(
            &store,
            common_dir,
            &root,
            &name,
            &config.gates.post_merge,
            &gates,
        )
        .map_err(|e| CommandError::Failed {
            message: format!("syncing {name}: {e}"),
            hint: None,
        })?;
        if matches!(synced, Synced::Conflict { .. }) {
            conflicts += 1;
        }
        rows.push(Row {
            feature: name,
            synced,
        });
    }
    if args.json {
        super::write_json(ctx.out, &rows)?;
    } else {
        for r in &rows {
            match &r.synced {
                Synced::UpToDate => writeln!(ctx.out, "{}: up to date", r.feature)?,
                Synced::Merged { base_tip, commit } => writeln!(
                    ctx.out,
                    "{}: merged the base at {} as {}",
                    r.feature,
                    super::short(base_tip),
                    super::short(commit)
                )?,
                Synced::Conflict { what, .. } => {
                    writeln!(ctx.out, "{}: not merged: {what}", r.feature)?
                }
            }
        }
    }
    if conflicts > 0 {
        return Err(CommandError::Failed {
            message: format!("{conflicts} feature(s) could not take the base"),
            hint: Some("merge the base into the integration branch by hand, commit, then run 'git sprint sync' again".into()),
        });
    }
    Ok(())
}
