//! The policy engine: rules a team writes in `.git-sprint/policy.yaml`
//! (layered over the user's own file, with sections per role and per agent
//! profile), judged on each task's diff after the Developer, and a decision
//! record for every decision the sprint enforces.
//!
//! [`file`] reads and merges the layers, [`rules`] compiles and judges
//! rules, [`take`] says who may take which work, [`diff`] asks git what a
//! task changed, [`decision`] is the record
//! written into the state commit that acted, and [`approval`] is the
//! person's side: `approve` and `reject`.

pub(crate) mod approval;
pub(crate) mod decision;
pub(crate) mod diff;
pub(crate) mod file;
pub(crate) mod rules;
pub(crate) mod take;

pub(crate) use decision::{Decision, Verdict};
pub(crate) use file::{load, load_working, user_file, Policy, PolicyError, FILE_NAME};
pub(crate) use rules::{Finding, Rule, RuleAction, RuleSpec};
pub(crate) use take::Take;

/// A task's diff judged by the policy: what matched, and which committed
/// policy said so.
#[derive(Debug, Clone, Default)]
pub(crate) struct Judgement {
    /// `feature/task`.
    pub(crate) subject: String,
    pub(crate) findings: Vec<Finding>,
    /// The blob id of the committed policy file.
    pub(crate) blob: Option<String>,
}

impl Judgement {
    /// Judges branch `tip`'s change against `base` (asked of git in `git`'s
    /// directory) with the rules for `role` / `profile`.
    pub(crate) fn of_branch(
        policy: &Policy,
        git: &crate::worker::worktree::Git,
        base: &str,
        tip: &str,
        subject: &str,
        (role, profile): (&str, &str),
        task_paths: &[String],
    ) -> Result<Judgement, crate::worker::worktree::WorktreeError> {
        let findings = if policy.rules_for(role, profile).is_empty() {
            Vec::new()
        } else {
            let files = diff::branch_change(git, base, tip)?;
            policy.judge(role, profile, &files, task_paths)
        };
        Ok(Judgement {
            subject: subject.to_owned(),
            findings,
            blob: policy.blob.clone(),
        })
    }

    /// The findings of rules with `action`.
    pub(crate) fn with(&self, action: RuleAction) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.action == action)
    }

    pub(crate) fn denied(&self) -> bool {
        self.with(RuleAction::Deny).next().is_some()
    }

    /// The approval the merge must wait for, if a rule asks for one.
    pub(crate) fn approval(&self) -> Option<crate::state::Approval> {
        let wanting: Vec<&Finding> = self.with(RuleAction::RequireApproval).collect();
        if wanting.is_empty() {
            return None;
        }
        Some(crate::state::Approval {
            rules: wanting.iter().map(|f| f.rule.clone()).collect(),
            matched: wanting.iter().flat_map(|f| f.matched.clone()).collect(),
            by: None,
            reason: None,
        })
    }

    /// A decision record per finding, acted on by `actor`.
    pub(crate) fn decisions(&self, actor: &str) -> Vec<Decision> {
        self.findings
            .iter()
            .map(|f| {
                let verdict = match f.action {
                    RuleAction::Deny => Verdict::Deny,
                    RuleAction::RequireApproval => Verdict::ApprovalRequired,
                    RuleAction::Warn | RuleAction::Off => Verdict::Warn,
                };
                let mut d = Decision::new(&f.rule, &self.subject, verdict, actor);
                d.policy = self.blob.clone();
                d.inputs = f.inputs.clone();
                d.inputs.insert(
                    "rule_at".into(),
                    serde_json::Value::String(f.origin.clone()),
                );
                d
            })
            .collect()
    }

    /// The feedback for the Developer's next attempt: each denying rule,
    /// where it is written and what matched.
    pub(crate) fn feedback(&self) -> String {
        let mut out = String::from("The policy refused this change:\n");
        for f in self.with(RuleAction::Deny) {
            out.push_str(&format!("- {} (rule at {})\n", f.line(), f.origin));
        }
        out.push_str("Change the work so that no denied path, content or limit is hit.\n");
        out
    }

    /// The one-line note of a denial, for the attempt's history.
    pub(crate) fn denial_note(&self) -> String {
        let lines: Vec<String> = self.with(RuleAction::Deny).map(Finding::line).collect();
        lines.join("; ")
    }
}
