//! The task primitives: operations over a [`Txn`] that every command and
//! stage uses to change a task. Each checks the state it reads and refuses
//! with a [`Refusal`] rather than write something inconsistent.

use super::error::{Refusal, StateError};
use super::model::{
    check_name, AgentState, Cause, Claim, Feature, FeatureStatus, Task, TaskStatus,
};
use super::store::{Transition, Txn};
use crate::clock;

/// A task named on the command line: `feature/T003`, or `T003` alone when
/// only one feature has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRef {
    /// The feature (`specs/<feature>/`).
    pub feature: String,
    /// The task's id (`T003`).
    pub id: String,
}

impl TaskRef {
    /// The task `id` of `feature`.
    pub fn new(feature: &str, id: &str) -> TaskRef {
        TaskRef {
            feature: feature.to_owned(),
            id: id.to_owned(),
        }
    }
}

impl std::fmt::Display for TaskRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.feature, self.id)
    }
}

/// Finds the task `name` refers to.
pub(crate) fn resolve(txn: &Txn<'_>, name: &str) -> Result<TaskRef, StateError> {
    if let Some((feature, id)) = name.split_once('/') {
        if txn.feature(feature)?.is_none() {
            return Err(Refusal::UnknownFeature {
                name: feature.to_owned(),
                known: txn.feature_names()?,
            }
            .into());
        }
        // By the file, not its content: a record that does not parse is
        // still a task a person can name (to repair it).
        if !txn.task_ids(feature)?.iter().any(|i| i == id) {
            return Err(Refusal::UnknownTask {
                name: name.to_owned(),
                known: txn.task_ids(feature)?,
            }
            .into());
        }
        return Ok(TaskRef::new(feature, id));
    }
    let mut found = Vec::new();
    let mut known = Vec::new();
    for feature in txn.feature_names()? {
        let ids = txn.task_ids(&feature)?;
        if ids.iter().any(|i| i == name) {
            found.push(feature.clone());
        }
        known.extend(ids.into_iter().map(|i| format!("{feature}/{i}")));
    }
    match found.len() {
        1 => Ok(TaskRef {
            feature: found.remove(0),
            id: name.to_owned(),
        }),
        0 => Err(Refusal::UnknownTask {
            name: name.to_owned(),
            known,
        }
        .into()),
        _ => Err(Refusal::AmbiguousTask {
            name: name.to_owned(),
            features: found,
        }
        .into()),
    }
}

pub(crate) fn load(txn: &Txn<'_>, r: &TaskRef) -> Result<Task, StateError> {
    txn.task(&r.feature, &r.id)?.ok_or_else(|| {
        Refusal::UnknownTask {
            name: r.to_string(),
            known: Vec::new(),
        }
        .into()
    })
}

/// Creates the feature record if it does not exist yet.
pub(crate) fn ensure_feature(txn: &mut Txn<'_>, name: &str) -> Result<Feature, StateError> {
    check_name("feature", name).map_err(Refusal::InvalidName)?;
    if let Some(f) = txn.feature(name)? {
        return Ok(f);
    }
    let feature = Feature::new(name, &clock::now_rfc3339());
    txn.put_feature(&feature)?;
    txn.record(Transition {
        task: name.to_owned(),
        from: "none".into(),
        to: FeatureStatus::Planned.to_string(),
        ..Default::default()
    });
    Ok(feature)
}

/// What `git sprint add` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// The id to give; the next free one when none.
    pub id: Option<String>,
    /// The task's title.
    pub title: String,
    /// The user story it belongs to.
    pub story: Option<String>,
    /// Ids of the tasks it waits for.
    pub deps: Vec<String>,
    /// Paths it touches, for conflict planning.
    pub paths: Vec<String>,
    /// Higher runs first.
    pub priority: i64,
}

/// Adds a task by hand; a missing feature is created. Without an id, the
/// next free `T<nnn>` of the feature is used.
pub fn add_task(txn: &mut Txn<'_>, feature: &str, new: &NewTask) -> Result<Task, StateError> {
    ensure_feature(txn, feature)?;
    let existing = txn.task_ids(feature)?;
    let id = match &new.id {
        Some(id) => id.clone(),
        None => next_id(&existing),
    };
    check_name("task", &id).map_err(Refusal::InvalidName)?;
    if existing.contains(&id) {
        return Err(Refusal::TaskExists {
            task: format!("{feature}/{id}"),
        }
        .into());
    }
    for dep in &new.deps {
        if !existing.contains(dep) {
            return Err(Refusal::UnknownTask {
                name: format!("{feature}/{dep}"),
                known: existing.clone(),
            }
            .into());
        }
    }
    let mut task = Task::new(&id, &new.title, &clock::now_rfc3339());
    task.story = new.story.clone();
    task.convoy = new.story.clone();
    task.deps = new.deps.clone();
    task.paths = new.paths.clone();
    task.priority = new.priority;
    txn.put_task(feature, &task)?;
    txn.subject(format!("{feature}/{id}: none -> todo"));
    txn.record(Transition {
        task: format!("{feature}/{id}"),
        from: "none".into(),
        to: TaskStatus::Todo.to_string(),
        reason: Some(format!("added: {}", new.title)),
        policy: None,
    });
    Ok(task)
}

fn next_id(existing: &[String]) -> String {
    let max = existing
        .iter()
        .filter_map(|id| id.strip_prefix('T'))
        .filter_map(|n| n.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("T{:03}", max + 1)
}

/// Dependencies of `task` that are not done yet, as `T001 (todo)`.
pub(crate) fn waiting_on(
    txn: &Txn<'_>,
    feature: &str,
    task: &Task,
) -> Result<Vec<String>, StateError> {
    let mut waiting = Vec::new();
    for dep in &task.deps {
        match txn.task(feature, dep)? {
            Some(d) if d.status == TaskStatus::Done => {}
            Some(d) => waiting.push(format!("{} ({})", d.id, d.status)),
            None => waiting.push(format!("{dep} (missing)")),
        }
    }
    Ok(waiting)
}

/// Takes a lease on a task: `todo` → `in_progress`, or takes over an
/// `in_progress` task whose lease expired. Refuses while someone else holds
/// a live lease, or while dependencies are not done.
pub fn claim(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    holder: &str,
    ttl_secs: u64,
) -> Result<Task, StateError> {
    let mut task = load(txn, r)?;
    let now = clock::now();
    let from = task.status;
    match (task.status, &task.claim) {
        (TaskStatus::Todo, _) => {}
        (TaskStatus::InProgress, Some(c)) if c.holder == holder || c.expires <= now => {}
        (TaskStatus::InProgress, None) => {}
        (TaskStatus::InProgress, Some(c)) => {
            return Err(Refusal::Held {
                task: r.to_string(),
                holder: c.holder.clone(),
                until: clock::rfc3339(c.expires),
            }
            .into())
        }
        (status, _) => {
            return Err(Refusal::NotClaimable {
                task: r.to_string(),
                status,
            }
            .into())
        }
    }
    let waiting = waiting_on(txn, &r.feature, &task)?;
    if !waiting.is_empty() {
        return Err(Refusal::Waiting {
            task: r.to_string(),
            waiting,
        }
        .into());
    }
    let previous = task.claim.as_ref().map(|c| c.holder.clone());
    let reason = match &previous {
        Some(p) if p != holder => format!("claimed by {holder}, taking over {p}'s expired lease"),
        _ => format!("claimed by {holder} for {}", ttl_text(ttl_secs)),
    };
    // A new holder is a new attempt; a holder renewing its own claim is not.
    if task.claim.as_ref().map(|c| c.holder.as_str()) != Some(holder) {
        task.attempts += 1;
    }
    task.status = TaskStatus::InProgress;
    task.claim = Some(Claim {
        holder: holder.to_owned(),
        since: clock::rfc3339(now),
        expires: now + ttl_secs as i64,
        ttl: ttl_secs,
    });
    task.updated = clock::rfc3339(now);
    txn.put_task(&r.feature, &task)?;
    txn.record(Transition {
        task: r.to_string(),
        from: from.to_string(),
        to: task.status.to_string(),
        reason: Some(reason),
        policy: None,
    });
    Ok(task)
}

fn ttl_text(secs: u64) -> String {
    clock::short_age(secs as i64)
}

/// Moves a task along the state machine (or anywhere, with `force`).
pub fn move_task(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    to: TaskStatus,
    reason: Option<&str>,
    force: bool,
) -> Result<Task, StateError> {
    let mut task = load(txn, r)?;
    let from = task.status;
    if from == to {
        return Ok(task);
    }
    if !force && !from.can_move_to(to) {
        return Err(Refusal::IllegalTransition {
            task: r.to_string(),
            from,
            to,
        }
        .into());
    }
    task.status = to;
    if to != TaskStatus::InProgress {
        task.claim = None;
    }
    // An AI review belongs to one stay in review: entering starts afresh,
    // leaving (by any path, `move` included) ends it.
    if from == TaskStatus::InReview || to == TaskStatus::InReview {
        task.review = None;
    }
    if from == TaskStatus::Todo && to == TaskStatus::InProgress {
        task.attempts += 1;
    }
    if let Some(reason) = reason {
        task.reason = Some(reason.to_owned());
    }
    task.updated = clock::now_rfc3339();
    txn.put_task(&r.feature, &task)?;
    txn.record(Transition {
        task: r.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        reason: reason.map(str::to_owned),
        policy: force.then(|| "forced past the state machine".to_owned()),
    });
    Ok(task)
}

/// Closes a task that needs no change: `done` with nothing merged, as
/// `person`'s recorded decision. Refuses a task already done or cancelled,
/// and one an agent holds a live lease on. Returns the status it left.
pub(crate) fn close_without_change(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    person: &str,
    reason: &str,
) -> Result<TaskStatus, StateError> {
    let mut task = load(txn, r)?;
    let from = task.status;
    let refuse = |why: String| -> Result<TaskStatus, StateError> {
        Err(Refusal::NeedsChange {
            task: r.to_string(),
            why,
        }
        .into())
    };
    match (from, &task.claim) {
        (TaskStatus::Done, _) => return refuse("it is done already".into()),
        (TaskStatus::Cancelled, _) => {
            return refuse("it is cancelled; 'git sprint retry' brings it back first".into())
        }
        (_, Some(c)) if c.expires > clock::now() => {
            return refuse(format!(
                "{} is working on it until {}; release or stop it first",
                c.holder,
                clock::rfc3339(c.expires)
            ))
        }
        _ => {}
    }
    task.status = TaskStatus::Done;
    task.claim = None;
    task.cause = None;
    task.reason = Some(format!("no change needed: {reason}"));
    task.updated = clock::now_rfc3339();
    txn.put_task(&r.feature, &task)?;
    txn.record(Transition {
        task: r.to_string(),
        from: from.to_string(),
        to: TaskStatus::Done.to_string(),
        reason: Some(format!("no change needed: {reason} (closed by {person})")),
        policy: Some("closed without a change by a person: nothing was merged".into()),
    });
    Ok(from)
}

/// Renews the holder's lease by its TTL.
pub(crate) fn heartbeat(txn: &mut Txn<'_>, r: &TaskRef, holder: &str) -> Result<Task, StateError> {
    let mut task = load(txn, r)?;
    let now = clock::now();
    match &mut task.claim {
        Some(c) if c.holder == holder => {
            c.expires = now + c.ttl as i64;
        }
        other => {
            return Err(Refusal::NotHolder {
                task: r.to_string(),
                you: holder.to_owned(),
                holder: other.as_ref().map(|c| c.holder.clone()),
            }
            .into())
        }
    }
    task.updated = clock::rfc3339(now);
    txn.put_task(&r.feature, &task)?;
    txn.subject(format!("{r}: heartbeat from {holder}"));
    Ok(task)
}

/// Gives a claimed task back: `in_progress` → `todo`, lease cleared. With a
/// holder, refuses when someone else holds it.
pub(crate) fn release(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    holder: Option<&str>,
    reason: Option<&str>,
) -> Result<Task, StateError> {
    let mut task = load(txn, r)?;
    if let (Some(me), Some(c)) = (holder, &task.claim) {
        if c.holder != me {
            return Err(Refusal::NotHolder {
                task: r.to_string(),
                you: me.to_owned(),
                holder: Some(c.holder.clone()),
            }
            .into());
        }
    }
    if task.status != TaskStatus::InProgress {
        return Err(Refusal::IllegalTransition {
            task: r.to_string(),
            from: task.status,
            to: TaskStatus::Todo,
        }
        .into());
    }
    let who = task.claim.take().map(|c| c.holder);
    task.status = TaskStatus::Todo;
    task.updated = clock::now_rfc3339();
    txn.put_task(&r.feature, &task)?;
    txn.record(Transition {
        task: r.to_string(),
        from: TaskStatus::InProgress.to_string(),
        to: TaskStatus::Todo.to_string(),
        reason: Some(reason.map(str::to_owned).unwrap_or_else(|| match who {
            Some(w) => format!("released by {w}"),
            None => "released".to_owned(),
        })),
        policy: None,
    });
    Ok(task)
}

/// Stops (or resumes) scheduling new work; running agents go on.
pub fn set_paused(
    txn: &mut Txn<'_>,
    paused: bool,
    reason: Option<&str>,
) -> Result<bool, StateError> {
    let mut meta = txn
        .meta()?
        .unwrap_or_else(|| super::model::SprintMeta::new(&clock::now_rfc3339()));
    if meta.paused == paused {
        return Ok(false);
    }
    meta.paused = paused;
    txn.put_meta(&meta)?;
    let (from, to) = if paused {
        ("running", "paused")
    } else {
        ("paused", "running")
    };
    txn.record(Transition {
        task: String::new(),
        from: from.into(),
        to: to.into(),
        reason: reason.map(str::to_owned),
        policy: None,
    });
    Ok(true)
}

/// Gives a failed, blocked or cancelled task a fresh start: `todo` with its
/// attempts reset and no backoff; dependants blocked because of it are
/// unblocked too. The next run gets a new agent id (`runs` is never reset),
/// and the old gate output leaves the prompt (it stays in `history`).
pub(crate) fn retry(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    reason: Option<&str>,
) -> Result<Vec<String>, StateError> {
    let mut task = load(txn, r)?;
    if !matches!(
        task.status,
        TaskStatus::Failed | TaskStatus::Blocked | TaskStatus::Cancelled
    ) {
        return Err(Refusal::NotRetryable {
            task: r.to_string(),
            status: task.status,
        }
        .into());
    }
    let from = task.status;
    task.status = TaskStatus::Todo;
    task.attempts = 0;
    task.claim = None;
    task.tester = None;
    task.review = None;
    task.retry_after = None;
    task.infra_failures = 0;
    task.cause = None;
    task.manual_cancel = false;
    task.feedback.clear();
    task.reason = reason.map(str::to_owned);
    task.updated = clock::now_rfc3339();
    txn.put_task(&r.feature, &task)?;
    txn.record(Transition {
        task: r.to_string(),
        from: from.to_string(),
        to: TaskStatus::Todo.to_string(),
        reason: Some(reason.unwrap_or("retried").to_owned()),
        policy: None,
    });
    let mut unblocked = Vec::new();
    for dep in dependants(txn, &r.feature, &r.id)? {
        let Some(mut d) = txn.task(&r.feature, &dep)? else {
            continue;
        };
        if d.status == TaskStatus::Blocked {
            d.status = TaskStatus::Todo;
            d.reason = None;
            d.updated = clock::now_rfc3339();
            txn.put_task(&r.feature, &d)?;
            txn.record(Transition {
                task: format!("{}/{dep}", r.feature),
                from: TaskStatus::Blocked.to_string(),
                to: TaskStatus::Todo.to_string(),
                reason: Some(format!("{} is being retried", r.id)),
                policy: None,
            });
            unblocked.push(dep);
        }
    }
    Ok(unblocked)
}

/// Takes a task out of the sprint (`cancelled`) by a person's decision; its
/// history stays, and re-ingesting tasks.md keeps it cancelled until its
/// line changes or it is retried. Its waiting dependants are blocked.
pub(crate) fn cancel(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    reason: Option<&str>,
) -> Result<Task, StateError> {
    let mut task = load(txn, r)?;
    if task.status == TaskStatus::Done {
        return Err(Refusal::IllegalTransition {
            task: r.to_string(),
            from: task.status,
            to: TaskStatus::Cancelled,
        }
        .into());
    }
    task.manual_cancel = true;
    txn.put_task(&r.feature, &task)?;
    let task = move_task(
        txn,
        r,
        TaskStatus::Cancelled,
        Some(reason.unwrap_or("cancelled")),
        false,
    )?;
    block_dependants(txn, r, &format!("blocked: {} was cancelled", r.id))?;
    Ok(task)
}

/// Accounts a finished agent run to its profile's circuit breaker: an
/// infrastructure failure counts, a run that ended well closes it. Called
/// in the transaction that records the run's end.
pub(crate) fn account_run(
    txn: &mut Txn<'_>,
    profile: &str,
    agent: &str,
    ok: bool,
    cause: Option<super::model::Cause>,
    error: Option<&str>,
) -> Result<(), StateError> {
    if profile.is_empty() {
        return Ok(());
    }
    let Some(mut meta) = txn.meta()? else {
        return Ok(());
    };
    match cause.filter(|c| c.trips_breaker()) {
        Some(c) => {
            let b = meta.breakers.entry(profile.to_owned()).or_default();
            b.failures += 1;
            b.last_failure = clock::now();
            b.cause = Some(c);
            b.error = error.unwrap_or_default().chars().take(500).collect();
        }
        None if ok => {
            let Some(b) = meta.breakers.remove(profile) else {
                return Ok(());
            };
            if b.open_since.is_some() {
                txn.record(Transition {
                    task: format!("breaker/{profile}"),
                    from: "open".into(),
                    to: "closed".into(),
                    reason: Some(format!("{agent} ran without an infrastructure failure")),
                    policy: Some("circuit breaker closed".into()),
                });
            }
        }
        None => return Ok(()),
    }
    txn.put_meta(&meta)?;
    Ok(())
}

/// `git sprint resume` for breakers: every open one lets one probe start now.
pub(crate) fn half_open_breakers(txn: &mut Txn<'_>) -> Result<Vec<String>, StateError> {
    let Some(mut meta) = txn.meta()? else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for (name, b) in meta.breakers.iter_mut() {
        if b.open_since.is_some() && !b.half_open {
            b.half_open = true;
            b.probe = None;
            names.push(name.clone());
        }
    }
    if !names.is_empty() {
        txn.put_meta(&meta)?;
        for n in &names {
            txn.record(Transition {
                task: format!("breaker/{n}"),
                from: "open".into(),
                to: "half_open".into(),
                reason: Some("resumed by hand: one probe run may start".into()),
                policy: Some("circuit breaker: resumed".into()),
            });
        }
    }
    Ok(names)
}

/// Marks a task `failed` and every task that (transitively) depends on it
/// and has not started `blocked`, each with the reason.
pub(crate) fn fail(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    reason: &str,
) -> Result<Vec<String>, StateError> {
    move_task(txn, r, TaskStatus::Failed, Some(reason), true)?;
    block_dependants(txn, r, &format!("blocked: {} failed ({reason})", r.id))
}

/// Blocks every `todo` task that (transitively) depends on `r`, with `why`
/// (which starts with "blocked: ", so the Manager may lift it later).
fn block_dependants(txn: &mut Txn<'_>, r: &TaskRef, why: &str) -> Result<Vec<String>, StateError> {
    let mut blocked = Vec::new();
    for dep in dependants(txn, &r.feature, &r.id)? {
        let Some(d) = txn.task(&r.feature, &dep)? else {
            continue;
        };
        if d.status == TaskStatus::Todo {
            let dr = TaskRef {
                feature: r.feature.clone(),
                id: dep.clone(),
            };
            move_task(txn, &dr, TaskStatus::Blocked, Some(why), false)?;
            blocked.push(dep);
        }
    }
    Ok(blocked)
}

/// Tasks of `feature` that depend on `id`, directly or through others.
pub(crate) fn dependants(
    txn: &Txn<'_>,
    feature: &str,
    id: &str,
) -> Result<Vec<String>, StateError> {
    let tasks = txn.tasks(feature)?;
    let mut found: Vec<String> = Vec::new();
    let mut frontier = vec![id.to_owned()];
    while let Some(cur) = frontier.pop() {
        for t in &tasks {
            if t.deps.contains(&cur) && !found.contains(&t.id) && t.id != id {
                found.push(t.id.clone());
                frontier.push(t.id.clone());
            }
        }
    }
    Ok(found)
}

/// The one "agent died" path (lost session, hung and stopped, a session that
/// never started, a wrapper that vanished): a running agent's record becomes
/// `dead` with its cause and error, always as a transition
/// `<agent>: <state> -> dead` with the reason. An agent that already ended
/// (its wrapper recorded the end as it was stopped) keeps its state; a cause
/// it lacks is still ours to say, recorded as a transition that names it.
/// Returns whether anything changed.
pub(crate) fn agent_dead(
    txn: &mut Txn<'_>,
    id: &str,
    cause: Cause,
    reason: &str,
) -> Result<bool, StateError> {
    let Some(mut a) = txn.agent(id)? else {
        return Ok(false);
    };
    let from = a.state;
    if super::liveness::is_running(&a) {
        a.state = AgentState::Dead;
        a.ended = Some(clock::now());
    } else if a.cause.is_some() {
        return Ok(false);
    }
    a.cause.get_or_insert(cause);
    if a.error.is_none() {
        a.error = Some(reason.to_owned());
    }
    txn.put_agent(&a)?;
    txn.record(Transition {
        task: id.to_owned(),
        from: from.to_string(),
        to: a.state.to_string(),
        reason: Some(format!("{reason} [{cause}]")),
        policy: None,
    });
    Ok(true)
}
