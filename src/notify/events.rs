//! Sprint events read off state commits: a task moving to `failed`, an
//! agent marked dead for hanging, a breaker opening… Each event is keyed by
//! the state commit that made it, so the same commit never makes two sends,
//! however often (or by however many orchestrator runs) it is looked at.

use serde::{Deserialize, Serialize};

use super::receiver::EventKind;
use crate::state::log::Entry;

/// One event, as receivers get it (JSON on a command's stdin, a webhook's
/// body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) event: EventKind,
    /// `<state commit>/<event>/<subject>`: what makes it one event.
    pub(crate) key: String,
    /// The state commit it came from (`git show <commit>` on refs/ai-sprint).
    pub(crate) commit: String,
    /// When that commit was made, RFC 3339.
    pub(crate) time: String,
    /// What it is about: `<feature>/<task>`, a feature, an agent id,
    /// `breaker/<profile>` or `budget/<scope>`.
    pub(crate) subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) feature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// Who made the transition (`orchestrator`, `cab`, a person).
    pub(crate) actor: String,
    /// One line for a person.
    pub(crate) message: String,
    /// The repository's main worktree.
    #[serde(default)]
    pub(crate) repository: String,
}

impl Event {
    pub(crate) fn new(kind: EventKind, entry: &Entry, subject: &str) -> Event {
        let (feature, task) = match subject.split_once('/') {
            Some((f, t)) if !matches!(f, "breaker" | "budget") => {
                (Some(f.to_owned()), Some(t.to_owned()))
            }
            _ => (None, None),
        };
        Event {
            event: kind,
            key: format!("{}/{kind}/{subject}", entry.commit),
            commit: entry.commit.clone(),
            time: crate::clock::rfc3339(entry.time),
            subject: subject.to_owned(),
            feature,
            task,
            from: None,
            to: None,
            reason: None,
            actor: entry.actor.clone(),
            message: String::new(),
            repository: String::new(),
        }
    }

    /// A sample of `kind` for `git sprint notify test`.
    pub(crate) fn sample(kind: EventKind) -> Event {
        let entry = Entry {
            commit: "0".repeat(40),
            time: crate::clock::now(),
            actor: "git-sprint notify test".into(),
            subject: String::new(),
            transitions: Vec::new(),
            decisions: Vec::new(),
        };
        let subject = match kind {
            EventKind::FeatureDone | EventKind::FeatureStalled => "001-example".to_owned(),
            EventKind::AgentHung => "dev-1".to_owned(),
            EventKind::BreakerOpen => "breaker/claude".to_owned(),
            EventKind::BudgetReached => "budget/sprint".to_owned(),
            _ => "001-example/T001".to_owned(),
        };
        let mut e = Event::new(kind, &entry, &subject);
        e.key = format!("test/{kind}/{}", crate::clock::now());
        if kind == EventKind::FeatureStalled {
            e.feature = Some(subject.clone());
        }
        e.reason = Some("a sample event from 'git sprint notify test'".into());
        e.message = format!("test: {}", message(kind, &subject, e.reason.as_deref()));
        e
    }
}

/// The events one state commit makes (all but `feature.stalled`, which
/// depends on the whole feature: see [`super::Notifier`]).
pub(crate) fn of_entry(entry: &Entry) -> Vec<Event> {
    let mut out = Vec::new();
    for t in &entry.transitions {
        let kind = if let Some(rest) = t.task.strip_prefix("breaker/") {
            (t.to == "open" && !rest.is_empty()).then_some(EventKind::BreakerOpen)
        } else if let Some(rest) = t.task.strip_prefix("budget/") {
            (t.to == "reached" && !rest.is_empty()).then_some(EventKind::BudgetReached)
        } else if t.task.contains('/') {
            match t.to.as_str() {
                "failed" => Some(EventKind::TaskFailed),
                "blocked" => Some(EventKind::TaskBlocked),
                "awaiting_approval" => Some(EventKind::ApprovalNeeded),
                _ => None,
            }
        } else if t.to == "dead" {
            // Agents are the slash-less subjects that die; the cause is the
            // reason's last word (`… [hung]`).
            t.reason
                .as_deref()
                .is_some_and(|r| r.ends_with("[hung]"))
                .then_some(EventKind::AgentHung)
        } else if t.to == "done" && !t.task.is_empty() {
            Some(EventKind::FeatureDone)
        } else {
            None
        };
        let Some(kind) = kind else { continue };
        let mut e = Event::new(kind, entry, &t.task);
        if kind == EventKind::FeatureDone {
            e.feature = Some(t.task.clone());
        }
        e.from = Some(t.from.clone());
        e.to = Some(t.to.clone());
        e.reason = t.reason.clone();
        e.message = message(kind, &t.task, t.reason.as_deref());
        out.push(e);
    }
    out
}

/// The one line a person reads (a desktop notification's body).
pub(crate) fn message(kind: EventKind, subject: &str, reason: Option<&str>) -> String {
    let what = match kind {
        EventKind::TaskFailed => format!("{subject} failed"),
        EventKind::TaskBlocked => format!("{subject} is blocked"),
        EventKind::ApprovalNeeded => format!(
            "{subject} waits for approval: 'git sprint approve {subject}' or 'git sprint reject {subject} --reason ...'"
        ),
        EventKind::FeatureDone => format!("feature {subject} is done"),
        EventKind::FeatureStalled => format!(
            "feature {subject} is stalled: nothing left can run until a failed or blocked task is dealt with"
        ),
        EventKind::AgentHung => format!("agent {subject} hung and was stopped"),
        EventKind::BreakerOpen => format!(
            "agent profile {} paused (circuit breaker open)",
            subject.trim_start_matches("breaker/")
        ),
        EventKind::BudgetReached => format!(
            "budget reached for {}",
            subject.trim_start_matches("budget/")
        ),
    };
    match reason {
        Some(r) if !r.is_empty() && kind != EventKind::ApprovalNeeded => format!("{what}: {r}"),
        _ => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::log::LoggedTransition;

    fn entry(transitions: &[(&str, &str, &str, Option<&str>)]) -> Entry {
        Entry {
            commit: "c0ffee".into(),
            time: 0,
            actor: "orchestrator".into(),
            subject: "s".into(),
            decisions: Vec::new(),
            transitions: transitions
                .iter()
                .map(|(task, from, to, reason)| LoggedTransition {
                    task: (*task).into(),
                    from: (*from).into(),
                    to: (*to).into(),
                    reason: reason.map(str::to_owned),
                    policy: None,
                })
                .collect(),
        }
    }

    fn kinds(e: &Entry) -> Vec<(EventKind, String)> {
        of_entry(e)
            .into_iter()
            .map(|e| (e.event, e.subject))
            .collect()
    }

    #[test]
    fn each_event_comes_from_its_transition_and_no_other() {
        let e = entry(&[
            ("f/T1", "in_progress", "failed", Some("3 attempts")),
            ("f/T2", "todo", "blocked", None),
            ("f/T3", "in_docs", "awaiting_approval", None),
            ("f/T4", "in_docs", "done", None),
            ("f", "active", "done", None),
            (
                "dev-1",
                "running",
                "dead",
                Some("hung: no output for 900s [hung]"),
            ),
            ("dev-2", "running", "dead", Some("session gone [lost]")),
            ("breaker/claude", "closed", "open", None),
            ("breaker/claude", "open", "half_open", None),
            ("budget/sprint", "open", "reached", None),
            ("budget/sprint", "reached", "open", None),
        ]);
        assert_eq!(
            kinds(&e),
            vec![
                (EventKind::TaskFailed, "f/T1".into()),
                (EventKind::TaskBlocked, "f/T2".into()),
                (EventKind::ApprovalNeeded, "f/T3".into()),
                (EventKind::FeatureDone, "f".into()),
                (EventKind::AgentHung, "dev-1".into()),
                (EventKind::BreakerOpen, "breaker/claude".into()),
                (EventKind::BudgetReached, "budget/sprint".into()),
            ]
        );
        let failed = &of_entry(&e)[0];
        assert_eq!(failed.key, "c0ffee/task.failed/f/T1");
        assert_eq!(failed.feature.as_deref(), Some("f"));
        assert_eq!(failed.task.as_deref(), Some("T1"));
        assert_eq!(failed.message, "f/T1 failed: 3 attempts");
    }
}
