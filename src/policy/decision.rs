//! Policy decision records: one per enforced decision (a warning let
//! through, a denial, an approval asked for, given or refused, a `--force`,
//! a budget stop), written as a `Sprint-Decision:` trailer of the very state
//! commit that acted on it, so `git log refs/ai-sprint` holds the decision
//! and its effect together and neither can exist without the other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// Allowed, with a warning on the record.
    Warn,
    /// Refused: the task goes back with the rule as feedback.
    Deny,
    /// Allowed on the condition that a person approves before the merge.
    ApprovalRequired,
    ApprovalGranted,
    ApprovalRejected,
    /// A person overrode the rules (`move --force`).
    Override,
    /// A budget was reached: no new agents in its scope.
    BudgetStop,
    /// A budget stop was lifted (the limit was raised or the scope ended).
    BudgetResumed,
}

impl Verdict {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Warn => "warn",
            Verdict::Deny => "deny",
            Verdict::ApprovalRequired => "approval_required",
            Verdict::ApprovalGranted => "approval_granted",
            Verdict::ApprovalRejected => "approval_rejected",
            Verdict::Override => "override",
            Verdict::BudgetStop => "budget_stop",
            Verdict::BudgetResumed => "budget_resumed",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One policy decision record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Decision {
    /// The rule's id; `force` for an override, `budget` for a budget stop.
    pub(crate) rule: String,
    /// The blob id of the committed `.git-sprint/policy.yaml` the rule came
    /// from, when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) policy: Option<String>,
    /// What was judged: `feature/task`, or a budget's scope.
    pub(crate) subject: String,
    pub(crate) verdict: Verdict,
    /// What the rule saw: matched paths, sizes, limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) inputs: BTreeMap<String, serde_json::Value>,
    /// Who acted on it: `cab`, `refinery`, `budget`, or a person.
    pub(crate) actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl Decision {
    /// A record with no inputs and no reason.
    pub(crate) fn new(rule: &str, subject: &str, verdict: Verdict, actor: &str) -> Decision {
        Decision {
            rule: rule.to_owned(),
            policy: None,
            subject: subject.to_owned(),
            verdict,
            inputs: BTreeMap::new(),
            actor: actor.to_owned(),
            reason: None,
        }
    }

    /// The record as the one line of JSON its trailer holds.
    pub(crate) fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A trailer's record; `None` when it is not one this binary reads.
    pub(crate) fn from_line(line: &str) -> Option<Decision> {
        serde_json::from_str(line).ok()
    }

    /// One line for people: `deny no-migrations on 001-auth/T003 by cab: migrations/001.sql`.
    pub(crate) fn summary(&self) -> String {
        let mut s = format!(
            "{} {} on {} by {}",
            self.verdict, self.rule, self.subject, self.actor
        );
        if let Some(m) = self.inputs.get("matched").and_then(|v| v.as_array()) {
            let items: Vec<String> = m
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            if !items.is_empty() {
                s.push_str(&format!(": {}", items.join(", ")));
            }
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(" ({r})"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_and_reads_back() {
        let mut d = Decision::new("no-migrations", "f/T1", Verdict::Deny, "cab");
        d.inputs.insert(
            "matched".into(),
            serde_json::json!(["migrations/001.sql\nx"]),
        );
        d.policy = Some("abc".into());
        let line = d.to_line();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(Decision::from_line(&line), Some(d.clone()));
        assert!(d
            .summary()
            .starts_with("deny no-migrations on f/T1 by cab: "));
        assert_eq!(Decision::from_line("{not json"), None);
    }
}
