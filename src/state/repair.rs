//! Quarantine and repair of state records that do not parse.
//!
//! A hand-edited or half-written record must not stop the sprint: reads of
//! the whole state leave it out and report it ([`Quarantined`]), so the
//! other tasks run on, and its dependants wait as for any unfinished task.
//! [`repair_task`] rewrites a broken task record from what can still be
//! read of it: the YAML as a loose value, field by field, with the caller's
//! overlay (tasks.md's title, dependencies and paths) on top. It is one
//! recorded transition, so the audit trail says what was kept and dropped.

use serde::Serialize;

use super::error::{Refusal, StateError};
use super::model::{Task, TaskStatus};
use super::ops::TaskRef;
use super::store::{task_path, Transition, Txn};
use crate::clock;

/// A record left out of a read because it does not parse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Quarantined {
    /// Its path in the state tree.
    pub(crate) path: String,
    /// `task`, `feature`, `convoy` or `agent`.
    pub(crate) kind: &'static str,
    /// `feature/T003`, the feature or convoy name, or the agent id.
    pub(crate) name: String,
    /// Why it does not parse, with line and column.
    pub(crate) error: String,
    /// The command that fixes it.
    pub(crate) fix: String,
}

impl Quarantined {
    pub(crate) fn new(path: &str, kind: &'static str, name: String, err: &StateError) -> Self {
        let error = match err {
            StateError::Yaml { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        let fix = match kind {
            "task" => format!("git sprint repair {name}"),
            _ => format!(
                "restore it from an earlier state commit (git log refs/ai-sprint -- {path})"
            ),
        };
        Quarantined {
            path: path.to_owned(),
            kind,
            name,
            error,
            fix,
        }
    }
}

/// `(feature, task)` for a task record's path in the state tree.
pub(crate) fn task_of_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("features/")?;
    let (feature, rest) = rest.split_once("/tasks/")?;
    let id = rest.strip_suffix(".yaml")?;
    (!feature.contains('/') && !id.contains('/')).then_some((feature, id))
}

/// Whether the task's record exists but does not parse.
pub(crate) fn is_broken(txn: &Txn<'_>, r: &TaskRef) -> Result<bool, StateError> {
    match txn.task(&r.feature, &r.id) {
        Ok(_) => Ok(false),
        Err(StateError::Yaml { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

/// What [`repair_task`] made of a broken record.
#[derive(Debug, Clone)]
pub(crate) struct Repaired {
    pub(crate) task: Task,
    /// Fields of the old record that were kept.
    pub(crate) kept: Vec<String>,
    /// Fields of the old record that could not be read, and were dropped.
    pub(crate) dropped: Vec<String>,
}

/// Rewrites the broken record of `r` with status `status`: every field of
/// the old record that still reads is kept, `overlay` (given the feature)
/// then sets what the spec says (title, dependencies, paths), the claim is cleared. Refuses a
/// record that parses (`git sprint move` changes those).
pub(crate) fn repair_task(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    status: TaskStatus,
    reason: Option<&str>,
    overlay: &dyn Fn(&Txn<'_>, &str, &mut Task),
) -> Result<Repaired, StateError> {
    let path = task_path(&r.feature, &r.id);
    let Some(raw) = txn.read_raw(&path)? else {
        return Err(Refusal::UnknownTask {
            name: r.to_string(),
            known: txn.task_ids(&r.feature)?,
        }
        .into());
    };
    if !is_broken(txn, r)? {
        return Err(Refusal::NotBroken {
            task: r.to_string(),
        }
        .into());
    }
    let now = clock::now_rfc3339();
    let (mut task, kept, dropped) = salvage(&raw, &r.id, &now);
    overlay(txn, &r.feature, &mut task);
    task.id = r.id.clone();
    task.status = status;
    task.claim = None;
    task.reason = Some(
        reason
            .map(str::to_owned)
            .unwrap_or_else(|| "record repaired".to_owned()),
    );
    task.updated = now;
    txn.put_task(&r.feature, &task)?;
    let mut why = format!("repaired an unreadable record as {status}");
    if !dropped.is_empty() {
        why.push_str(&format!("; dropped {}", dropped.join(", ")));
    }
    if let Some(reason) = reason {
        why.push_str(&format!(": {reason}"));
    }
    txn.record(Transition {
        task: r.to_string(),
        from: "quarantined".into(),
        to: status.to_string(),
        reason: Some(why),
        policy: Some("record rewritten by repair".into()),
    });
    Ok(Repaired {
        task,
        kept,
        dropped,
    })
}

/// A task from whatever of `raw` still reads: each top-level field of the
/// old record is tried on its own on top of a blank task, and kept if the
/// task still deserializes with it.
fn salvage(raw: &[u8], id: &str, now: &str) -> (Task, Vec<String>, Vec<String>) {
    use serde_yaml::Value;
    let blank = Task::new(id, id, now);
    let mut value = serde_yaml::to_value(&blank).expect("a task serializes");
    let (mut kept, mut dropped) = (Vec::new(), Vec::new());
    let loose: Value = serde_yaml::from_slice(raw).unwrap_or(Value::Null);
    let Value::Mapping(fields) = loose else {
        return (blank, kept, vec!["the whole record (not YAML)".to_owned()]);
    };
    for (key, field) in fields {
        let name = match &key {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .unwrap_or_default()
                .trim()
                .to_owned(),
        };
        let mut candidate = value.clone();
        if let Value::Mapping(m) = &mut candidate {
            m.insert(key, field);
        }
        if serde_yaml::from_value::<Task>(candidate.clone()).is_ok() {
            value = candidate;
            kept.push(name);
        } else {
            dropped.push(name);
        }
    }
    let task = serde_yaml::from_value(value).unwrap_or(blank);
    (task, kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_keeps_what_reads_and_drops_the_rest() {
        let raw = b"id: T003\ntitle: Three\nstatus: flying\nattempts: lots\ndeps: [T001]\n";
        let (task, kept, dropped) = salvage(raw, "T003", "now");
        assert_eq!(task.title, "Three");
        assert_eq!(task.deps, vec!["T001".to_owned()]);
        assert_eq!(task.attempts, 0);
        assert_eq!(kept, vec!["id", "title", "deps"]);
        assert_eq!(dropped, vec!["status", "attempts"]);
    }

    #[test]
    fn salvage_of_something_that_is_not_yaml_is_a_blank_task() {
        let (task, kept, dropped) = salvage(b"{{{ not: [yaml", "T9", "now");
        assert_eq!(task.id, "T9");
        assert!(kept.is_empty());
        assert_eq!(dropped.len(), 1);
    }

    #[test]
    fn task_paths_name_their_task() {
        assert_eq!(
            task_of_path("features/001-auth/tasks/T003.yaml"),
            Some(("001-auth", "T003"))
        );
        assert_eq!(task_of_path("agents/x.yaml"), None);
        assert_eq!(task_of_path("features/f/convoys/US1.yaml"), None);
    }
}
