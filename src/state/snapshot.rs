//! The whole state read at once, for the commands that show all of it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::StateError;
use super::model::{Agent, Convoy, Feature, SprintMeta, Task};
use super::store::Txn;

#[derive(Debug, Clone, Serialize)]
pub struct FeatureState {
    pub feature: Feature,
    pub convoys: Vec<Convoy>,
    pub tasks: Vec<Task>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub meta: Option<SprintMeta>,
    pub features: Vec<FeatureState>,
    pub agents: Vec<Agent>,
}

impl Snapshot {
    pub fn read(txn: &Txn<'_>) -> Result<Self, StateError> {
        let mut features = Vec::new();
        for name in txn.feature_names()? {
            let Some(feature) = txn.feature(&name)? else {
                continue;
            };
            let mut convoys = Vec::new();
            for id in txn.convoy_ids(&name)? {
                convoys.extend(txn.convoy(&name, &id)?);
            }
            features.push(FeatureState {
                feature,
                convoys,
                tasks: txn.tasks(&name)?,
            });
        }
        let mut agents = Vec::new();
        for id in txn.agent_ids()? {
            agents.extend(txn.agent(&id)?);
        }
        Ok(Snapshot {
            meta: txn.meta()?,
            features,
            agents,
        })
    }

    pub fn feature(&self, name: &str) -> Option<&FeatureState> {
        self.features.iter().find(|f| f.feature.name == name)
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
