//! The entities stored on `refs/ai-sprint`, one YAML file each.
//!
//! Fields that are usually empty are skipped when serialized so a task file
//! stays a handful of lines; every field has a default so older files (and
//! hand-edited ones) still read.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The schema version this binary writes and understands.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// `sprint.yaml`: the schema version and a snapshot of sprint-wide settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SprintMeta {
    pub(crate) schema: u32,
    #[serde(default)]
    pub(crate) created: String,
    /// Set by `git sprint pause`: the Manager starts no new work while true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) paused: bool,
    /// The configuration the orchestrator runs with, by dotted key, each
    /// value typed (`"main"`, `3`, `true`).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "read_settings"
    )]
    pub(crate) settings: BTreeMap<String, serde_json::Value>,
    /// Circuit breakers per agent profile (DESIGN.md "Trust model").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) breakers: BTreeMap<String, Breaker>,
    /// Budgets reached, per scope (`sprint`, `feature <f>`, `task <f>/<T>`):
    /// the line that says so. A scope is here once, when it was reached.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) budget_stops: BTreeMap<String, String>,
    /// Runs of archived agents per agent profile, so a profile's spend and
    /// success rate outlive the records they came from.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) profiles: BTreeMap<String, ProfileTally>,
    /// With the state shared through a remote: the machine whose
    /// orchestrator runs the single-writer stages (ingest verdicts, the
    /// Refinery, the Librarian). Its heartbeats renew the lease; another
    /// machine takes it over once they stop (`timeouts.machine`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) leader: Option<Leader>,
}

/// The leader lease (see [`SprintMeta::leader`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Leader {
    pub(crate) machine: String,
    /// When it took the lease (RFC 3339).
    pub(crate) since: String,
}

/// What an agent profile's finished, archived runs added up to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ProfileTally {
    #[serde(default)]
    pub(crate) runs: u32,
    /// Runs that exited 0 with no cause recorded against them.
    #[serde(default)]
    pub(crate) succeeded: u32,
    #[serde(default)]
    pub(crate) cost_usd: f64,
}

impl ProfileTally {
    /// Counts agent `a`'s run, once it has ended.
    pub(crate) fn add(&mut self, a: &Agent) {
        self.runs += 1;
        if a.cause.is_none() && a.exit_status == Some(0) {
            self.succeeded += 1;
        }
        self.cost_usd += a.usage.as_ref().and_then(|u| u.cost_usd).unwrap_or(0.0);
    }
}

/// `settings` as written now, or as older versions wrote it: every value a
/// string of JSON text (`"\"main\""`, `"3"`). A map is the old kind only
/// when every value is a string that parses as JSON; a current one always
/// holds numbers or booleans (the config has such keys), so the two cannot
/// be confused.
fn read_settings<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, serde_json::Value>, D::Error> {
    let map = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
    let old: Option<BTreeMap<String, serde_json::Value>> = map
        .iter()
        .map(|(k, v)| {
            let parsed = serde_json::from_str(v.as_str()?).ok()?;
            Some((k.clone(), parsed))
        })
        .collect();
    Ok(match old {
        Some(old) if !map.is_empty() => old,
        _ => map,
    })
}

/// A circuit breaker on one agent profile: infrastructure failures in a row
/// open it (`policy.breaker_threshold`), and while open no agent of the
/// profile starts, except one probe run after the cool-down or a `resume`.
/// A run of the profile that ends without an infrastructure failure closes
/// it (the entry goes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Breaker {
    /// Infrastructure failures in a row.
    #[serde(default)]
    pub(crate) failures: u32,
    /// Unix seconds of the last of them.
    #[serde(default)]
    pub(crate) last_failure: i64,
    /// Unix seconds it was recorded open; `None` while closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) open_since: Option<i64>,
    /// Set by `git sprint resume`: one probe may start now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) half_open: bool,
    /// The agent started as the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) probe: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cause: Option<Cause>,
    /// The CLI's own error line from the last failure.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) error: String,
}

impl SprintMeta {
    pub(crate) fn new(now: &str) -> Self {
        SprintMeta {
            schema: SCHEMA_VERSION,
            created: now.to_owned(),
            paused: false,
            settings: BTreeMap::new(),
            breakers: BTreeMap::new(),
            budget_stops: BTreeMap::new(),
            profiles: BTreeMap::new(),
            leader: None,
        }
    }
}

/// Where a task is in its life (DESIGN.md "Task life").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for dependencies, path locks or a free slot.
    Todo,
    /// A Developer holds its lease.
    InProgress,
    /// The review gates run on its worktree.
    InReview,
    /// A Tester works on it.
    InTests,
    /// Security gates, then the Refinery merges it.
    InDocs,
    /// Merged into the integration branch.
    Done,
    /// A task it depends on failed.
    Blocked,
    /// Out of attempts (`policy.max_attempts`).
    Failed,
    /// The task left tasks.md; kept so its history stays readable.
    Cancelled,
    /// Passed its gates; a policy rule wants a person's `approve` (or
    /// `reject`) before the Refinery merges it.
    AwaitingApproval,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub(crate) const ALL: [TaskStatus; 10] = [
        TaskStatus::Todo,
        TaskStatus::InProgress,
        TaskStatus::InReview,
        TaskStatus::InTests,
        TaskStatus::InDocs,
        TaskStatus::Done,
        TaskStatus::Blocked,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::AwaitingApproval,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Todo => "todo",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::InReview => "in_review",
            TaskStatus::InTests => "in_tests",
            TaskStatus::InDocs => "in_docs",
            TaskStatus::Done => "done",
            TaskStatus::Blocked => "blocked",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::AwaitingApproval => "awaiting_approval",
        }
    }

    /// The states a task may move to from this one without `--force`.
    ///
    /// Every gate failure goes back to `in_progress`, so the developer's next
    /// attempt sees the feedback; `todo` from `in_progress` is a release.
    pub(crate) fn next_states(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Todo => &[InProgress, Blocked, Cancelled],
            InProgress => &[InReview, Todo, Blocked, Failed, Cancelled],
            InReview => &[InTests, InProgress, Failed, Cancelled],
            InTests => &[InDocs, AwaitingApproval, InProgress, Failed, Cancelled],
            InDocs => &[Done, InProgress, Failed, Cancelled],
            Done => &[],
            Blocked => &[Todo, Cancelled],
            Failed => &[Todo, Cancelled],
            Cancelled => &[Todo],
            AwaitingApproval => &[InDocs, InProgress, Failed, Cancelled],
        }
    }

    pub(crate) fn can_move_to(self, to: TaskStatus) -> bool {
        self.next_states().contains(&to)
    }

    /// Statuses in which an agent may be working on the task.
    pub(crate) fn is_active(self) -> bool {
        matches!(
            self,
            TaskStatus::InProgress
                | TaskStatus::InReview
                | TaskStatus::InTests
                | TaskStatus::InDocs
                | TaskStatus::AwaitingApproval
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = String;

    /// Accepts `in_progress`, `in-progress` and `inprogress`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect();
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str().replace('_', "") == norm)
            .ok_or_else(|| {
                let all: Vec<_> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status '{s}' (expected one of: {})", all.join(", "))
            })
    }
}

/// A lease on a task: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Who holds the lease (an agent or a person).
    pub holder: String,
    pub(crate) since: String,
    /// Unix seconds; the lease is free for others to take after this.
    pub(crate) expires: i64,
    /// Seconds a heartbeat extends the lease by.
    pub(crate) ttl: u64,
}

/// The outcome of one gate run, kept with the task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct GateResult {
    pub(crate) gate: String,
    pub(crate) stage: String,
    pub(crate) passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) figure: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) output_tail: String,
    pub(crate) at: String,
    /// The command's exit code; absent when it was killed or never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) timed_out: bool,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) duration_ms: u64,
    /// An AI Reviewer's verdict (`APPROVE`, `REQUEST_CHANGES`); absent for
    /// a command gate, and for a Reviewer that gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) verdict: Option<String>,
    /// The Reviewer's comments, which became the developer's feedback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) comments: Vec<ReviewComment>,
    /// The Reviewer agent that judged (agent gates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<String>,
    /// Tokens the Reviewer spent.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) tokens: u64,
    /// US dollars the Reviewer spent.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub(crate) cost_usd: f64,
}

/// One comment of an AI Reviewer: where (when it says) and what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReviewComment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<u64>,
    pub(crate) body: String,
}

/// Where a task's review stands once its command gates passed and AI
/// Reviewers (`kind: agent` gates) are owed, in config order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Review {
    /// Agent gates that approved this attempt's work.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) approved: Vec<String>,
    /// The Reviewer agent of the next gate, once one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reviewer: Option<String>,
}

/// Why a run or an attempt ended badly (DESIGN.md "Trust model").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Cause {
    /// The API refused the key (401/403).
    Auth,
    /// 429: too many requests.
    RateLimit,
    /// 529 or "overloaded": the provider is out of capacity.
    Overloaded,
    /// Any other API error (500, a malformed answer).
    ApiError,
    /// The API could not be reached.
    Network,
    /// The CLI refused to run (e.g. as root without a sandbox, bad flags).
    Refused,
    /// The run went past its time limit.
    Timeout,
    /// No output, event or commit for `timeouts.hung`.
    Hung,
    /// The agent died (signal, lost session, non-zero exit with no better cause).
    Crash,
    /// The run left no commit beyond its start point.
    NoChange,
    /// A review, test or security gate failed.
    Gate,
    /// The merge into the integration branch conflicted.
    Conflict,
    /// Preparing the worktree failed.
    Setup,
    /// The run broke a rule (touched shared config, hooks or protected files).
    Policy,
    /// The machine running it stopped beating (`timeouts.machine`): its
    /// orchestrator, its tmux server or its network died.
    MachineLost,
}

impl Cause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cause::Auth => "auth",
            Cause::RateLimit => "rate_limit",
            Cause::Overloaded => "overloaded",
            Cause::ApiError => "api_error",
            Cause::Network => "network",
            Cause::Refused => "refused",
            Cause::Timeout => "timeout",
            Cause::Hung => "hung",
            Cause::Crash => "crash",
            Cause::NoChange => "no_change",
            Cause::Gate => "gate",
            Cause::Conflict => "conflict",
            Cause::Setup => "setup",
            Cause::Policy => "policy",
            Cause::MachineLost => "machine_lost",
        }
    }

    /// Not the task's fault: the attempt is not counted, nothing goes into
    /// a prompt, and the profile's circuit breaker counts it.
    pub(crate) fn is_infrastructure(self) -> bool {
        matches!(
            self,
            Cause::Auth
                | Cause::RateLimit
                | Cause::Overloaded
                | Cause::Network
                | Cause::MachineLost
        )
    }

    /// Counted against the agent profile's circuit breaker: the provider
    /// failed. A lost machine is not the profile's fault.
    pub(crate) fn trips_breaker(self) -> bool {
        self.is_infrastructure() && self != Cause::MachineLost
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one agent run cost, from the CLI's structured output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Usage {
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) duration_ms: u64,
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) turns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) input_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) output_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) cache_read_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) cache_write_tokens: u64,
    /// US dollars, as the CLI reported or from the config's price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cost_usd: Option<f64>,
}

impl Usage {
    /// Every token the run was billed for.
    pub(crate) fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens
    }
}

/// One attempt's end, kept in the task's history (never in a prompt unless
/// it is gate or review output, which goes to `feedback`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttemptNote {
    pub(crate) attempt: u32,
    pub(crate) at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<String>,
    pub(crate) cause: Cause,
    pub(crate) note: String,
    /// Whether it consumed an attempt (infrastructure failures do not).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) counted: bool,
}

/// What the Refinery merged for a task: the branch tip and the merge commit
/// on the integration branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Merged {
    pub(crate) tip: String,
    pub(crate) commit: String,
}

/// What a task's approval waits on, set when the policy's
/// `require_approval` rules match its diff (after the Developer) and
/// cleared when the diff is judged again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Approval {
    /// The rules that want it.
    pub(crate) rules: Vec<String>,
    /// What they matched (paths, sizes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) matched: Vec<String>,
    /// Who approved, once someone has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

impl Approval {
    /// Whether the merge still waits for a person.
    pub(crate) fn pending(&self) -> bool {
        self.by.is_none()
    }
}

/// `features/<feature>/tasks/<id>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// The task's id in tasks.md (`T003`).
    pub id: String,
    pub(crate) title: String,
    /// Where the task is in its life.
    pub status: TaskStatus,
    /// The task's full text from tasks.md (title, sub-bullets), for prompts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) description: String,
    /// 1-based phase of tasks.md; 0 for a task added by hand.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) phase: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) story: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) convoy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) deps: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub(crate) priority: i64,
    /// Line in tasks.md; 0 for a task added by hand.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) line: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) parallel: bool,
    /// Attempts counted against `policy.max_attempts` (reset by `retry`).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub attempts: u32,
    /// Developer runs ever started on the task, never reset: each run's
    /// agent id is `<feature>.<task>.dev.<run>`, so ids never repeat.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) runs: u32,
    /// The Tester agent of the current attempt, once one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tester: Option<String>,
    /// Set while AI Reviewers judge the work (the command review gates
    /// passed); cleared when the task leaves review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) review: Option<Review>,
    /// The lease on the task, while someone holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) worktree: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) gates: Vec<GateResult>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) feedback: Vec<String>,
    /// Tokens spent on the task by every agent run so far.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub(crate) tokens: u64,
    /// US dollars spent on the task so far.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub(crate) cost_usd: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// Set on a `done` task that no agent ran: a chore git-sprint handles
    /// itself (`handled by git-sprint`). It counts as done for dependants,
    /// progress and feature completion, and never gets gates or a merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) skipped: Option<String>,
    /// The cause of the last attempt that ended badly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cause: Option<Cause>,
    /// Every attempt that ended badly, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) history: Vec<AttemptNote>,
    /// Unix seconds before which no new attempt starts (backoff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after: Option<i64>,
    /// Infrastructure failures in a row (for the backoff between them).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) infra_failures: u32,
    /// What the Refinery merged, once it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) merged: Option<Merged>,
    /// A policy rule on the diff wants a person's approval before the merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) approval: Option<Approval>,
    /// Cancelled by a person: re-ingest keeps it cancelled until its line
    /// in tasks.md changes or it is retried.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) manual_cancel: bool,
    #[serde(default)]
    pub(crate) created: String,
    #[serde(default)]
    pub(crate) updated: String,
}

impl Task {
    pub(crate) fn new(id: &str, title: &str, now: &str) -> Self {
        Task {
            id: id.to_owned(),
            title: title.to_owned(),
            status: TaskStatus::Todo,
            description: String::new(),
            phase: 0,
            story: None,
            convoy: None,
            deps: Vec::new(),
            paths: Vec::new(),
            labels: Vec::new(),
            priority: 0,
            line: 0,
            parallel: false,
            attempts: 0,
            runs: 0,
            tester: None,
            review: None,
            claim: None,
            branch: None,
            worktree: None,
            gates: Vec::new(),
            feedback: Vec::new(),
            tokens: 0,
            cost_usd: 0.0,
            reason: None,
            skipped: None,
            cause: None,
            history: Vec::new(),
            retry_after: None,
            infra_failures: 0,
            merged: None,
            approval: None,
            manual_cancel: false,
            created: now.to_owned(),
            updated: now.to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FeatureStatus {
    Planned,
    Active,
    Done,
    Cancelled,
}

impl fmt::Display for FeatureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FeatureStatus::Planned => "planned",
            FeatureStatus::Active => "active",
            FeatureStatus::Done => "done",
            FeatureStatus::Cancelled => "cancelled",
        })
    }
}

/// `features/<feature>/feature.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Feature {
    pub(crate) name: String,
    pub(crate) status: FeatureStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) integration_branch: Option<String>,
    /// Path of the tasks.md this feature was ingested from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tasks_path: Option<String>,
    /// Blob id of the tasks.md last ingested; re-ingesting it is a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tasks_blob: Option<String>,
    /// What became of the finished feature (merged into its base, or why not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    /// The base branch's tip that could not be merged into the integration
    /// branch, and why; while it is the base's tip, no task merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_conflict: Option<BaseConflict>,
    /// The base branch commit last merged into the integration branch
    /// during the sprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_synced: Option<String>,
    #[serde(default)]
    pub(crate) created: String,
}

impl Feature {
    pub(crate) fn new(name: &str, now: &str) -> Self {
        Feature {
            name: name.to_owned(),
            status: FeatureStatus::Planned,
            base_branch: None,
            integration_branch: None,
            tasks_path: None,
            tasks_blob: None,
            note: None,
            base_conflict: None,
            base_synced: None,
            created: now.to_owned(),
        }
    }
}

/// A base-branch commit the integration branch could not take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BaseConflict {
    pub(crate) base_tip: String,
    /// What went wrong: the conflicting files, or the gate that failed.
    pub(crate) what: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ConvoyStatus {
    Open,
    /// Every task done; waiting for the Librarian's docs to merge.
    InDocs,
    Done,
}

impl fmt::Display for ConvoyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConvoyStatus::Open => "open",
            ConvoyStatus::InDocs => "in_docs",
            ConvoyStatus::Done => "done",
        })
    }
}

/// `features/<feature>/convoys/<id>.yaml`: the tasks of one user story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Convoy {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) title: String,
    pub(crate) status: ConvoyStatus,
    #[serde(default)]
    pub(crate) tasks: Vec<String>,
    /// Librarian attempts at this convoy's docs.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// Librarian runs started, counted as attempts or not: each run gets a
    /// fresh agent id, so one the API failed never blocks the next.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub(crate) runs: u32,
    /// The Librarian at work on the docs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) librarian: Option<String>,
    /// No Librarian starts before this time (unix seconds): the backoff
    /// after an infrastructure failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retry_after: Option<i64>,
}

/// Where an agent's process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Launched; its process is not seen yet.
    Starting,
    /// Its process runs.
    Running,
    /// Its process ended by itself.
    Exited,
    /// Its process went away without recording an end (hung, crashed, lost).
    Dead,
    /// Stopped on purpose (`kill`, a timeout, a cancel).
    Killed,
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AgentState::Starting => "starting",
            AgentState::Running => "running",
            AgentState::Exited => "exited",
            AgentState::Dead => "dead",
            AgentState::Killed => "killed",
        })
    }
}

/// `agents/<id>.yaml`: one worker (an agent in a worktree and a tmux session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub(crate) id: String,
    pub(crate) role: String,
    /// Where the agent's process is in its life.
    pub state: AgentState,
    /// The task the agent works on; none for a fleet agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) batch: Option<String>,
    #[serde(default)]
    pub(crate) profile: String,
    #[serde(default)]
    pub(crate) session: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pid: Option<u32>,
    #[serde(default)]
    pub(crate) worktree: String,
    #[serde(default)]
    pub(crate) branch: String,
    #[serde(default)]
    pub(crate) base: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) prompt: String,
    #[serde(default)]
    pub(crate) started: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub(crate) heartbeat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ended: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) exit_status: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) wip_commit: Option<String>,
    /// The process answerable for the record now: the spawner while
    /// `starting`, then the `agent-run` wrapper (the tmux pane's process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) runner_pid: Option<u32>,
    /// The commit `base` named when the worker started: "ahead" counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_commit: Option<String>,
    /// The branch's tip when the agent ended: what it did is
    /// `base_commit..end_commit`, whatever happens to the branch later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) end_commit: Option<String>,
    /// The agent command, resolved when the worker was spawned, so the
    /// wrapper runs exactly what was asked for whatever the config says now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) launch: Option<AgentLaunch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    /// Files the task names, for `SPRINT_PATHS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) paths: Vec<String>,
    /// The signal that ended the agent, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) signal: Option<i32>,
    /// Prompts typed into the pane after the start (`git sprint prompt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) followups: Vec<String>,
    /// What the run cost, from the CLI's structured output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) usage: Option<Usage>,
    /// Why the run ended badly, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cause: Option<Cause>,
    /// The CLI's own error line (or the wrapper's reason) for `cause`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The skills the agent was given, with their versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) skills: Vec<crate::skills::SkillUse>,
    /// Why this profile runs the task: the router's choice and its rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) route: Option<crate::router::Choice>,
    /// The machine whose orchestrator started it, when the state is shared
    /// through a remote: only that machine can see its tmux session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) machine: Option<String>,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}
/// The agent command an [`Agent`] runs, as resolved when it was spawned: the
/// serialised form of the worker's agent profile. The state layer keeps it as
/// plain data and knows nothing of how it is rendered or run; `worker::profile`
/// converts both ways (an unknown `prompt` or `output` name is an error there,
/// when the agent is launched, not here, where it would make the whole state
/// unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentLaunch {
    /// The argv template, e.g. `["claude", "-p", "{prompt}"]`.
    pub(crate) command: Vec<String>,
    /// Where the agent finds the prompt: `arg`, `stdin`, `file` or `env`.
    #[serde(default = "AgentLaunch::default_prompt")]
    pub(crate) prompt: String,
    /// Extra environment; values may use placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, String>,
    /// The default model, overridable per launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    /// Appended to the argv only when a model is set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) model_args: Vec<String>,
    /// How the agent writes its output: `text`, or a CLI's JSON event stream.
    #[serde(
        default = "AgentLaunch::default_output",
        skip_serializing_if = "AgentLaunch::is_text"
    )]
    pub(crate) output: String,
}

impl AgentLaunch {
    fn default_prompt() -> String {
        "arg".to_owned()
    }

    fn default_output() -> String {
        "text".to_owned()
    }

    fn is_text(output: &String) -> bool {
        output == "text"
    }
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}
fn is_zero_f64(n: &f64) -> bool {
    *n == 0.0
}

/// A validated name for a feature, task, convoy or agent: it becomes a path
/// component in the state tree and part of a branch name, so it must be safe
/// for both.
pub(crate) fn check_name(kind: &'static str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && !name.ends_with(".lock")
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {kind} name '{name}': use letters, digits, '-', '_' and '.', not starting with '.' or '-'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_written_as_json_text_by_older_versions_read_typed() {
        let old = "schema: 1\nsettings:\n  base_branch: '\"main\"'\n  policy.max_attempts: '3'\n  merge.auto: 'false'\n";
        let meta: SprintMeta = serde_yaml::from_str(old).unwrap();
        assert_eq!(meta.settings["base_branch"], serde_json::json!("main"));
        assert_eq!(meta.settings["policy.max_attempts"], serde_json::json!(3));
        assert_eq!(meta.settings["merge.auto"], serde_json::json!(false));
    }

    #[test]
    fn typed_settings_round_trip_and_a_string_stays_a_string() {
        let mut meta = SprintMeta::new("2026-01-01T00:00:00Z");
        meta.settings
            .insert("base_branch".into(), serde_json::json!("5"));
        meta.settings
            .insert("policy.max_attempts".into(), serde_json::json!(3));
        let text = serde_yaml::to_string(&meta).unwrap();
        let back: SprintMeta = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, meta, "{text}");
    }

    #[test]
    fn status_parses_loosely_and_rejects_unknown() {
        assert_eq!("in-progress".parse(), Ok(TaskStatus::InProgress));
        assert_eq!("IN_REVIEW".parse(), Ok(TaskStatus::InReview));
        let err = "doing".parse::<TaskStatus>().unwrap_err();
        assert!(err.contains("'doing'") && err.contains("in_tests"), "{err}");
    }

    #[test]
    fn done_is_final_and_gates_fail_back_to_in_progress() {
        assert!(TaskStatus::Done.next_states().is_empty());
        for st in [
            TaskStatus::InReview,
            TaskStatus::InTests,
            TaskStatus::InDocs,
        ] {
            assert!(st.can_move_to(TaskStatus::InProgress));
        }
        assert!(!TaskStatus::Todo.can_move_to(TaskStatus::Done));
    }

    #[test]
    fn names_that_would_break_paths_or_refs_are_refused() {
        for bad in ["", "a/b", "..", ".x", "-x", "a b", "x.lock", "a..b"] {
            assert!(check_name("task", bad).is_err(), "{bad}");
        }
        for good in ["T001", "T002a", "001-auth", "fix_1.2", "日本"] {
            assert!(check_name("task", good).is_ok(), "{good}");
        }
    }
}
