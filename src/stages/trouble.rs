//! Trouble: what needs a person, read from the state — a quarantined
//! record, an open circuit breaker, a budget reached, a failed or blocked
//! task, a task awaiting approval, a stalled feature.
//! `status` shows it and `health` exits 1 on it, from this one list, each
//! with its cause and the command that helps.

use serde::Serialize;

use crate::state::{Snapshot, TaskStatus};

/// One thing that needs a person.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Trouble {
    /// `quarantined`, `breaker`, `budget`, `failed`, `blocked`, `approval`
    /// or `stalled`; `health` adds `retrying` (a job of the orchestrator
    /// failing again and again, see `daemon::busy`).
    pub(crate) kind: &'static str,
    /// The record, agent profile, budget scope, task (`feature/T001`) or feature.
    pub(crate) subject: String,
    /// The recorded cause, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cause: Option<String>,
    /// What happened, in one line.
    pub(crate) message: String,
    /// The command that helps.
    pub(crate) hint: String,
}

/// Everything in `snapshot` that needs a person, most urgent first.
pub(crate) fn list(snapshot: &Snapshot) -> Vec<Trouble> {
    let mut out = Vec::new();
    // A record that does not parse is out of the sprint until repaired.
    for q in &snapshot.quarantined {
        out.push(Trouble {
            kind: "quarantined",
            subject: q.name.clone(),
            cause: None,
            message: format!("{} does not parse: {}", q.path, q.error),
            hint: q.fix.clone(),
        });
    }
    if let Some(meta) = &snapshot.meta {
        for (profile, b) in &meta.breakers {
            if b.open_since.is_some() {
                out.push(Trouble {
                    kind: "breaker",
                    subject: profile.clone(),
                    cause: b.cause.map(|c| c.to_string()),
                    message: crate::daemon::record::breaker_line(profile, b),
                    hint: "git sprint resume".into(),
                });
            }
        }
        for (scope, line) in &meta.budget_stops {
            out.push(Trouble {
                kind: "budget",
                subject: scope.clone(),
                cause: None,
                message: line.clone(),
                hint: "raise the limit under budget: in .git-sprint.yaml (or git config sprint.budget.*)".into(),
            });
        }
    }
    for fs in &snapshot.features {
        let name = &fs.feature.name;
        if let Some(c) = &fs.feature.base_conflict {
            let integration = fs
                .feature
                .integration_branch
                .clone()
                .unwrap_or_else(|| super::integration_branch(name));
            let base = fs.feature.base_branch.as_deref().unwrap_or("the base");
            out.push(Trouble {
                kind: "base_conflict",
                subject: name.clone(),
                cause: None,
                message: format!(
                    "{integration} cannot take {base} at {}: {}; no task of {name} merges until it does",
                    crate::names::record_id(&c.base_tip),
                    c.what.lines().next().unwrap_or_default()
                ),
                hint: format!("git switch {integration} && git merge {base}, resolve, commit; then git sprint sync"),
            });
        }
        if super::stalled(fs) {
            out.push(Trouble {
                kind: "stalled",
                subject: name.clone(),
                cause: None,
                message: format!(
                    "feature {name} is stalled: nothing left can run until a failed or blocked task is dealt with"
                ),
                hint: format!("git sprint retry {name}/<task>, or git sprint cancel it"),
            });
        }
        for t in &fs.tasks {
            let (kind, hint) = match t.status {
                TaskStatus::Failed => (
                    "failed",
                    format!(
                        "git sprint show {name}/{0}; then git sprint retry {name}/{0}",
                        t.id
                    ),
                ),
                TaskStatus::Blocked => (
                    "blocked",
                    format!(
                        "retry or cancel what it waits for (git sprint show {name}/{})",
                        t.id
                    ),
                ),
                TaskStatus::AwaitingApproval => {
                    let (rules, matched) = t
                        .approval
                        .as_ref()
                        .map(|a| (a.rules.join(", "), a.matched.join(", ")))
                        .unwrap_or_default();
                    out.push(Trouble {
                        kind: "approval",
                        subject: format!("{name}/{}", t.id),
                        cause: None,
                        message: format!(
                            "{name}/{} waits for a person's approval before its merge: rule {rules} matched {matched}",
                            t.id
                        ),
                        hint: format!(
                            "git sprint approve {name}/{0}, or git sprint reject {name}/{0} --reason '<what to change>'",
                            t.id
                        ),
                    });
                    continue;
                }
                _ => continue,
            };
            out.push(Trouble {
                kind,
                subject: format!("{name}/{}", t.id),
                cause: t.cause.map(|c| c.to_string()),
                message: t.reason.clone().unwrap_or_else(|| kind.to_owned()),
                hint,
            });
        }
    }
    out
}
