//! Who may take which work, checked at claim: `take` rules (which agent
//! profiles or models may take a role's work on tasks with given labels),
//! `concurrency` caps per profile, and `protected_branches` the Refinery
//! never writes. These are top-level keys of a policy file (not of its role
//! or agent sections); a later layer may narrow them — fewer allowed
//! profiles or models, a lower cap, more protected branches — and may widen a
//! `take` rule only if it is `overridable`.

use serde::{Deserialize, Serialize};

/// The roles a `take` rule may name: the ones that claim a task.
pub(crate) const ROLES: [&str; 2] = ["developer", "tester"];

/// A `take` rule as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TakeSpec {
    pub(crate) id: String,
    /// Tasks with any of these labels; none: every task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    /// The roles it governs; none: developer and tester.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) roles: Vec<String>,
    /// The agent profiles allowed; none: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) agents: Vec<String>,
    /// The models allowed (the profile's `model`); none: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) models: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) overridable: bool,
}

impl TakeSpec {
    /// What is wrong with it, if anything.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(r) = self.roles.iter().find(|r| !ROLES.contains(&r.as_str())) {
            return Err(format!(
                "take rule `{}`: `{r}` is not a role that takes tasks (one of {})",
                self.id,
                ROLES.join(", ")
            ));
        }
        if self.agents.is_empty() && self.models.is_empty() {
            return Err(format!(
                "take rule `{}` allows everyone: name the `agents` or `models` that may take the work",
                self.id
            ));
        }
        Ok(())
    }

    /// Whether `self`, replacing `earlier`, allows no one `earlier` did not
    /// and governs at least the work `earlier` did.
    pub(crate) fn tightens(&self, earlier: &TakeSpec) -> bool {
        let narrower = |new: &[String], old: &[String]| {
            old.is_empty() || (!new.is_empty() && new.iter().all(|n| old.contains(n)))
        };
        let wider = |new: &[String], old: &[String]| {
            new.is_empty() || (!old.is_empty() && old.iter().all(|o| new.contains(o)))
        };
        narrower(&self.agents, &earlier.agents)
            && narrower(&self.models, &earlier.models)
            && wider(&self.labels, &earlier.labels)
            && wider(&self.roles, &earlier.roles)
    }

    /// Whether it governs `role`'s work on a task labelled `labels`.
    fn governs(&self, role: &str, labels: &[String]) -> bool {
        (self.roles.is_empty() || self.roles.iter().any(|r| r == role))
            && (self.labels.is_empty() || self.labels.iter().any(|l| labels.contains(l)))
    }

    /// Why `profile` (running `model`) may not take the work, if it may not.
    pub(crate) fn refuses(
        &self,
        role: &str,
        profile: &str,
        model: Option<&str>,
        labels: &[String],
    ) -> Option<String> {
        if !self.governs(role, labels) {
            return None;
        }
        if !self.agents.is_empty() && !self.agents.iter().any(|a| a == profile) {
            return Some(format!(
                "agent profile {profile} may not take this {role} work (allowed: {})",
                self.agents.join(", ")
            ));
        }
        if !self.models.is_empty() && !model.is_some_and(|m| self.models.iter().any(|x| x == m)) {
            return Some(format!(
                "model {} of {profile} may not take this {role} work (allowed: {})",
                model.unwrap_or("(none set)"),
                self.models.join(", ")
            ));
        }
        None
    }
}

/// A `take` rule with where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Take {
    #[serde(flatten)]
    pub(crate) spec: TakeSpec,
    pub(crate) origin: String,
}

/// A claim the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) rule: String,
    pub(crate) origin: String,
    pub(crate) why: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TakeSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_take_rule_refuses_other_profiles_and_models_for_its_labels_only() {
        let r = spec("{id: sec, labels: [security], agents: [claude], models: [opus]}");
        let sec = vec!["security".to_owned()];
        assert!(r
            .refuses("developer", "claude", Some("opus"), &sec)
            .is_none());
        let why = r.refuses("developer", "codex", None, &sec).unwrap();
        assert!(why.contains("agent profile codex may not take"), "{why}");
        let why = r.refuses("tester", "claude", Some("haiku"), &sec).unwrap();
        assert!(why.contains("model haiku of claude"), "{why}");
        assert!(r.refuses("developer", "codex", None, &[]).is_none());
    }

    #[test]
    fn narrowing_is_tightening_and_an_open_rule_is_refused() {
        let base = spec("{id: a, agents: [claude, codex]}");
        assert!(spec("{id: a, agents: [claude]}").tightens(&base));
        assert!(!spec("{id: a, agents: [claude, gemini]}").tightens(&base));
        assert!(!spec("{id: a, agents: [claude], labels: [x]}").tightens(&base));
        assert!(spec("{id: a}")
            .check()
            .unwrap_err()
            .contains("allows everyone"));
        assert!(spec("{id: a, roles: [librarian], agents: [x]}")
            .check()
            .unwrap_err()
            .contains("not a role that takes tasks"));
    }
}
