//! The whole state read at once, for the commands that show all of it and
//! for the orchestrator's reconcile.
//!
//! The read is tolerant: a record that does not parse is left out and
//! listed in [`Snapshot::quarantined`] with its path and error, so one broken
//! file stops only itself (its dependants wait, as on any unfinished task).

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::StateError;
use super::model::{Agent, Convoy, Feature, SprintMeta, Task};
use super::repair::Quarantined;
use super::store::{task_path, Txn};

#[derive(Debug, Clone, Serialize)]
pub struct FeatureState {
    pub feature: Feature,
    pub convoys: Vec<Convoy>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub meta: Option<SprintMeta>,
    pub features: Vec<FeatureState>,
    pub agents: Vec<Agent>,
    /// Records that do not parse: not in the lists above.
    pub quarantined: Vec<Quarantined>,
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

impl Snapshot {
    pub fn read(txn: &Txn<'_>) -> Result<Self, StateError> {
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

    pub fn feature(&self, name: &str) -> Option<&FeatureState> {
        self.features.iter().find(|f| f.feature.name == name)
    }

    /// Whether task `id` of `feature` is quarantined (its record does not
    /// parse): it is not done, whatever it was.
    pub fn is_quarantined(&self, feature: &str, id: &str) -> bool {
        let name = format!("{feature}/{id}");
        self.quarantined
            .iter()
            .any(|q| q.kind == "task" && q.name == name)
    }

    /// Whether any task of `feature` is quarantined.
    pub fn has_quarantined_tasks(&self, feature: &str) -> bool {
        let prefix = format!("{feature}/");
        self.quarantined
            .iter()
            .any(|q| q.kind == "task" && q.name.starts_with(&prefix))
    }
}

impl FeatureState {
    /// Task counts per status, in the order of the task life.
    pub fn counts(&self) -> BTreeMap<super::model::TaskStatus, usize> {
        let mut counts = BTreeMap::new();
        for t in &self.tasks {
            *counts.entry(t.status).or_insert(0) += 1;
        }
        counts
    }
}
