//! One task as `git sprint show` and the board's `/api/v1/tasks/F/ID` see
//! it: its record, every state commit that concerns it, and its policy
//! decision records.
//!
//! Gathered here once, so the command's text, its `--json` and the board's
//! answer are all renderings of the same [`TaskView`].

use serde::Serialize;

use crate::state::log::{decisions, history, Entry, LoggedDecision};
use crate::state::{ops, StateError, Store, Task};

/// One task and its history.
#[derive(Debug)]
pub(crate) struct TaskView {
    /// `<feature>/<id>`, resolved.
    pub(crate) name: String,
    pub(crate) feature: String,
    pub(crate) task: Task,
    /// Every state commit that concerns the task, newest first.
    pub(crate) history: Vec<Entry>,
}

impl TaskView {
    /// The task's policy decision records, newest first.
    pub(crate) fn decisions(&self) -> Vec<LoggedDecision<'_>> {
        decisions(&self.history)
            .into_iter()
            .filter(|d| d.decision.subject == self.name)
            .collect()
    }
}

/// The JSON shape: the decisions are derived from the history, so they are
/// computed when written rather than stored twice.
#[derive(Serialize)]
struct TaskJson<'a> {
    feature: &'a str,
    task: &'a Task,
    history: &'a [Entry],
    /// The task's policy decision records, newest first.
    decisions: Vec<LoggedDecision<'a>>,
}

impl Serialize for TaskView {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        TaskJson {
            feature: &self.feature,
            task: &self.task,
            history: &self.history,
            decisions: self.decisions(),
        }
        .serialize(s)
    }
}

/// The task `name` (`<feature>/<id>`, or `<id>` when only one feature has it).
pub(crate) fn show(store: &Store, name: &str) -> Result<TaskView, StateError> {
    let (r, task) = store.read(|txn| {
        let r = ops::resolve(txn, name)?;
        let task = ops::load(txn, &r)?;
        Ok((r, task))
    })?;
    let name = r.to_string();
    let history = history(store, None, |e| e.concerns(&name))?;
    Ok(TaskView {
        name,
        feature: r.feature,
        task,
        history,
    })
}
