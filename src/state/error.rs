//! Errors of the state store: failures (git, YAML, a newer schema) and
//! refusals (an operation that does not apply to the current state).

use std::path::PathBuf;

use crate::hint::Hint;

use super::model::TaskStatus;

/// Why reading or writing the sprint state failed (or was refused).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("not a git repository: {}", path.display())]
    NotARepo {
        path: PathBuf,
        #[source]
        source: Box<gix::Error>,
    },

    #[error("{what}")]
    Git {
        what: String,
        #[source]
        source: Box<gix::Error>,
    },

    #[error("state file '{path}' on refs/ai-sprint is not valid")]
    Yaml {
        path: String,
        #[source]
        source: serde_yaml::Error,
    },

    #[error(
        "refs/ai-sprint has schema version {found}, newer than this git-sprint understands ({supported})"
    )]
    TooNew { found: u32, supported: u32 },

    #[error("refs/ai-sprint kept changing under us: gave up after {attempts} attempts")]
    Busy { attempts: u32 },

    /// Writes kept meeting a lock too young to call stale.
    #[error("refs/ai-sprint is locked: {} has been held for {age_secs}s", path.display())]
    Locked { path: PathBuf, age_secs: u64 },

    /// A lock old enough to be stale that could not be moved out of the way.
    #[error("cannot remove the stale lock {} ({age_secs}s old)", path.display())]
    StaleLock {
        path: PathBuf,
        age_secs: u64,
        #[source]
        source: std::io::Error,
    },

    /// The state ref is gone but the repository shows it had one: writing
    /// now would start a new sprint over the old one's branches.
    #[error("refs/ai-sprint is missing, but this repository had sprint state: {evidence}")]
    Lost { evidence: String },

    /// A commit offered as sprint state has no readable `sprint.yaml`.
    #[error("commit {commit} is not sprint state: it has no sprint.yaml")]
    NotState { commit: String },

    /// The remote that holds the state (`sprint.remote`) did not take or
    /// give the state: unreachable, refused, or too slow.
    #[error("{action} the sprint remote '{remote}' failed: {detail}")]
    Remote {
        remote: String,
        action: String,
        detail: String,
    },

    /// The remote that holds the state did not answer at all (no
    /// connection, or no answer within the deadline): a write made now is
    /// queued on this clone and replayed when the remote answers again.
    #[error("{action} the sprint remote '{remote}' failed: it does not answer: {detail}")]
    Unreachable {
        remote: String,
        action: String,
        detail: String,
    },

    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl Hint for StateError {
    fn hint(&self) -> Option<String> {
        match self {
            StateError::NotARepo { .. } => {
                Some("run git sprint inside a git repository (git init creates one)".into())
            }
            StateError::TooNew { .. } => {
                Some("install a newer git-sprint; nothing was written".into())
            }
            StateError::Busy { .. } => {
                Some("another process is writing the sprint state heavily; try again".into())
            }
            StateError::Yaml { path, .. } => Some(match super::repair::task_of_path(path) {
                Some((feature, task)) => format!(
                    "'git sprint repair {feature}/{task}' rewrites it (see it with 'git show refs/ai-sprint:{path}')"
                ),
                None => format!(
                    "see it with 'git show refs/ai-sprint:{path}'; 'git log refs/ai-sprint -- {path}' lists earlier versions"
                ),
            }),
            StateError::Locked { path, .. } | StateError::StaleLock { path, .. } => Some(format!(
                "once no git-sprint or git process is running in this repository, remove it: rm {}",
                path.display()
            )),
            StateError::Lost { .. } => Some(
                "'git sprint recover' restores the last state recorded; nothing was written".into(),
            ),
            StateError::Remote { remote, .. } => Some(format!(
                "check that 'git fetch {remote}' works from here; nothing was written. \
                 'git config --unset sprint.remote' works on this clone alone"
            )),
            StateError::Unreachable { remote, .. } => Some(format!(
                "check that 'git fetch {remote}' works from here; writes are queued on this \
                 clone meanwhile and replayed when the remote answers"
            )),
            StateError::Refused(r) => r.hint(),
            StateError::Git { .. } | StateError::NotState { .. } => None,
        }
    }
}

impl StateError {
    pub(crate) fn git(what: impl Into<String>, source: impl Into<gix::Error>) -> Self {
        StateError::Git {
            what: what.into(),
            source: Box::new(source.into()),
        }
    }

    /// Usage mistakes (a name that does not exist) exit 2, refusals and
    /// failures exit 1.
    pub(crate) fn is_usage(&self) -> bool {
        matches!(
            self,
            StateError::Refused(
                Refusal::UnknownTask { .. }
                    | Refusal::AmbiguousTask { .. }
                    | Refusal::UnknownFeature { .. }
                    | Refusal::InvalidName(_)
                    | Refusal::UnknownAgent { .. }
            )
        )
    }
}

/// An operation that was valid input but does not apply to the current state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("no task '{name}'")]
    UnknownTask { name: String, known: Vec<String> },

    #[error("task '{name}' is ambiguous: it exists in {}", features.join(", "))]
    AmbiguousTask { name: String, features: Vec<String> },

    #[error("no feature '{name}'")]
    UnknownFeature { name: String, known: Vec<String> },

    #[error("no agent '{name}'")]
    UnknownAgent { name: String },

    #[error("{0}")]
    InvalidName(String),

    #[error("a worker named '{name}' exists already")]
    AgentExists { name: String },

    #[error("task {task} already exists")]
    TaskExists { task: String },

    #[error("{task} is claimed by {holder} until {until}")]
    Held {
        task: String,
        holder: String,
        until: String,
    },

    #[error("{task} cannot move from {from} to {to}")]
    IllegalTransition {
        task: String,
        from: TaskStatus,
        to: TaskStatus,
    },

    #[error("{task} is {status}, not claimable")]
    NotClaimable { task: String, status: TaskStatus },

    #[error("{task} is {status}: only failed, blocked or cancelled tasks can be retried")]
    NotRetryable { task: String, status: TaskStatus },

    #[error("{task} waits for {}", waiting.join(", "))]
    Waiting { task: String, waiting: Vec<String> },

    #[error("{task} is {status}, not awaiting_approval: nothing to approve or reject")]
    NotAwaitingApproval { task: String, status: TaskStatus },

    #[error("{task}'s record reads fine: there is nothing to repair")]
    NotBroken { task: String },

    #[error("{task} cannot be closed without a change: {why}")]
    NeedsChange { task: String, why: String },

    #[error("{task} is not claimed by {you}{}", holder.as_ref().map(|h| format!(" (it is claimed by {h})")).unwrap_or_else(|| " (nobody holds it)".into()))]
    NotHolder {
        task: String,
        you: String,
        holder: Option<String>,
    },
}

impl Hint for Refusal {
    fn hint(&self) -> Option<String> {
        match self {
            Refusal::UnknownTask { known, .. } if !known.is_empty() => {
                Some(format!("known tasks: {}", summarize(known)))
            }
            Refusal::UnknownTask { .. } => {
                Some("add one with 'git sprint add <feature> <title>' or commit a tasks.md".into())
            }
            Refusal::AmbiguousTask { name, features } => Some(format!(
                "name it with its feature, e.g. {}/{name}",
                features[0]
            )),
            Refusal::UnknownFeature { known, .. } if !known.is_empty() => {
                Some(format!("known features: {}", summarize(known)))
            }
            Refusal::Held { .. } => {
                Some("wait for the lease to expire, or ask its holder to release it".into())
            }
            Refusal::IllegalTransition { from, .. } => {
                let next: Vec<_> = from.next_states().iter().map(|s| s.as_str()).collect();
                Some(if next.is_empty() {
                    format!("{from} is final; --force overrides the state machine")
                } else {
                    format!(
                        "from {from} it can move to: {} (or use --force)",
                        next.join(", ")
                    )
                })
            }
            Refusal::Waiting { .. } => {
                Some("finish those first, or move this task by hand with --force".into())
            }
            Refusal::NotHolder { .. } => Some("pass the holder's name with --as".into()),
            Refusal::NotAwaitingApproval { .. } => {
                Some("'git sprint status' lists the tasks awaiting approval".into())
            }
            Refusal::NotRetryable { .. } => {
                Some("'git sprint move' changes the status of a task in flight".into())
            }
            Refusal::NotBroken { task } => Some(format!(
                "'git sprint move {task} <status>' changes its status"
            )),
            Refusal::AgentExists { name } => Some(format!(
                "pick another name, or remove it first with 'git sprint kill {name}'"
            )),
            _ => None,
        }
    }
}

fn summarize(names: &[String]) -> String {
    const SHOWN: usize = 8;
    if names.len() <= SHOWN {
        names.join(", ")
    } else {
        format!(
            "{}, … ({} more)",
            names[..SHOWN].join(", "),
            names.len() - SHOWN
        )
    }
}
