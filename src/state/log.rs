//! The audit trail: `refs/ai-sprint`'s history read back as transitions.

use gix::bstr::ByteSlice;
use gix::ObjectId;
use serde::Serialize;

use super::error::StateError;
use super::store::Store;

/// One state commit.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    pub(crate) commit: String,
    pub(crate) time: i64,
    pub(crate) actor: String,
    pub(crate) subject: String,
    pub(crate) transitions: Vec<LoggedTransition>,
    /// The policy decision records the commit carries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) decisions: Vec<crate::policy::Decision>,
}

/// A decision record with the state commit that carries it (`--policy --json`).
#[derive(Serialize)]
pub(crate) struct LoggedDecision<'a> {
    pub(crate) commit: &'a str,
    pub(crate) time: i64,
    #[serde(flatten)]
    pub(crate) decision: &'a crate::policy::Decision,
}

/// The decision records of `entries`, newest first, each with its commit.
pub(crate) fn decisions(entries: &[Entry]) -> Vec<LoggedDecision<'_>> {
    entries
        .iter()
        .flat_map(|e| {
            e.decisions.iter().map(|d| LoggedDecision {
                commit: &e.commit,
                time: e.time,
                decision: d,
            })
        })
        .collect()
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct LoggedTransition {
    pub(crate) task: String,
    pub(crate) from: String,
    pub(crate) to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) policy: Option<String>,
}

impl Entry {
    /// Whether this commit touched `filter`: a feature (`001-auth`) or a task
    /// (`001-auth/T003`).
    pub(crate) fn concerns(&self, filter: &str) -> bool {
        let mention = |t: &str| {
            t == filter
                || t.strip_prefix(filter)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        self.transitions.iter().any(|t| mention(&t.task))
            || (self.transitions.is_empty() && self.subject.starts_with(&format!("{filter}:")))
    }
}

/// Walks the state history newest first, along first parents, keeping the
/// entries `keep` accepts, until `limit` are found.
pub(crate) fn history(
    store: &Store,
    limit: Option<usize>,
    keep: impl Fn(&Entry) -> bool,
) -> Result<Vec<Entry>, StateError> {
    history_from(store, store.tip()?, limit, keep)
}

/// [`history`] from state commit `start` (a tip read earlier) rather than
/// the current tip, so a follower can pick up exactly after it.
pub(crate) fn history_from(
    store: &Store,
    start: Option<ObjectId>,
    limit: Option<usize>,
    keep: impl Fn(&Entry) -> bool,
) -> Result<Vec<Entry>, StateError> {
    let mut out = Vec::new();
    let mut next = start;
    while let Some(id) = next {
        if limit.is_some_and(|n| out.len() >= n) {
            break;
        }
        let (entry, parent) = read_entry(store, id)?;
        next = parent;
        if keep(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// The entries from the tip back to, but not including, `seen` (a tip read
/// earlier), oldest first: what happened since. With `seen` not on the
/// first-parent line (the ref was rewritten), the whole history.
pub(crate) fn since(store: &Store, seen: Option<ObjectId>) -> Result<Vec<Entry>, StateError> {
    let mut out = Vec::new();
    let mut next = store.tip()?;
    while let Some(id) = next {
        if Some(id) == seen {
            break;
        }
        let (entry, parent) = read_entry(store, id)?;
        next = parent;
        out.push(entry);
    }
    out.reverse();
    Ok(out)
}

/// The entry of state commit `id`, and its first parent.
fn read_entry(store: &Store, id: ObjectId) -> Result<(Entry, Option<ObjectId>), StateError> {
    let commit = store
        .repo()
        .find_commit(id)
        .map_err(|e| StateError::git("reading the state history", e))?;
    let decoded = commit
        .decode()
        .map_err(|e| StateError::git("decoding a state commit", e))?;
    let entry = parse_entry(
        id,
        decoded
            .author()
            .map(|a| a.name.to_string())
            .unwrap_or_default(),
        decoded
            .author()
            .ok()
            .and_then(|a| a.time().ok())
            .map(|t| t.seconds)
            .unwrap_or(0),
        &decoded.message.to_str_lossy(),
    );
    let parent = decoded.parents().next();
    Ok((entry, parent))
}

fn parse_entry(id: ObjectId, actor: String, time: i64, message: &str) -> Entry {
    let mut lines = message.lines();
    let subject = lines.next().unwrap_or_default().to_owned();
    let mut transitions: Vec<LoggedTransition> = Vec::new();
    let mut actor = actor;
    let mut decisions = Vec::new();
    for line in lines {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim().to_owned();
        // A `Sprint-Task` starts a transition; a `Sprint-From` without one
        // is a sprint-wide transition.
        match key {
            "Sprint-Task" => transitions.push(LoggedTransition {
                task: value,
                ..Default::default()
            }),
            "Sprint-From" => {
                if transitions.last().is_none_or(|t| !t.from.is_empty()) {
                    transitions.push(LoggedTransition::default());
                }
                if let Some(t) = transitions.last_mut() {
                    t.from = value;
                }
            }
            "Sprint-To" => {
                if let Some(t) = transitions.last_mut() {
                    t.to = value;
                }
            }
            "Sprint-Reason" => {
                if let Some(t) = transitions.last_mut() {
                    t.reason = Some(value);
                }
            }
            "Sprint-Policy" => {
                if let Some(t) = transitions.last_mut() {
                    t.policy = Some(value);
                }
            }
            "Sprint-Actor" => actor = value,
            // A record this binary cannot read (a newer one's) is left out
            // rather than failing the whole log.
            "Sprint-Decision" => decisions.extend(crate::policy::Decision::from_line(&value)),
            _ => {}
        }
    }
    Entry {
        commit: id.to_string(),
        time,
        actor,
        subject,
        transitions,
        decisions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_become_transitions() {
        let msg = "2 transitions\n\nSprint-Task: f/T1\nSprint-From: todo\nSprint-To: in_progress\nSprint-Reason: claimed by dev-1 for 10m\nSprint-Task: f/T2\nSprint-From: none\nSprint-To: todo\nSprint-Actor: dev-1\n";
        let e = parse_entry(ObjectId::null(gix::hash::Kind::Sha1), "x".into(), 0, msg);
        assert_eq!(e.actor, "dev-1");
        assert_eq!(e.transitions.len(), 2);
        assert_eq!(e.transitions[0].to, "in_progress");
        assert_eq!(
            e.transitions[0].reason.as_deref(),
            Some("claimed by dev-1 for 10m")
        );
        assert_eq!(e.transitions[1].from, "none");
        assert!(e.concerns("f") && e.concerns("f/T2") && !e.concerns("f/T3"));
        assert!(!e.concerns("f/T"));
    }

    #[test]
    fn decision_trailers_read_back_and_unknown_ones_are_left_out() {
        let d = crate::policy::Decision::new("mig", "f/T1", crate::policy::Verdict::Deny, "cab");
        let msg = format!(
            "f/T1: in_review -> in_progress\n\nSprint-Task: f/T1\nSprint-From: in_review\nSprint-To: in_progress\nSprint-Decision: {}\nSprint-Decision: {{\"from\":\"a newer binary\"}}\nSprint-Actor: cab\n",
            d.to_line()
        );
        let e = parse_entry(ObjectId::null(gix::hash::Kind::Sha1), "x".into(), 0, &msg);
        assert_eq!(e.decisions, vec![d]);
        assert_eq!(e.transitions.len(), 1);
    }
}
