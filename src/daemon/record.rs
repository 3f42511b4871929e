//! The orchestrator's state transactions: every change the engine makes to
//! `refs/ai-sprint` is one function here, so each rule has one home — above
//! all "an attempt ended badly" ([`end_attempt`]), which every failure path
//! (agent failure, no change, gate, conflict, lost session, setup, policy)
//! goes through. Each checks that the task is still where the stage saw it,
//! so a stale action is a no-op.

use std::collections::BTreeMap;
use std::path::Path;

use crate::clock;
use crate::gates;
use crate::policy::{Decision, Judgement, Verdict as PolicyVerdict};
use crate::refinery::Verdict;
use crate::stages::{self, agent_id, BreakerGate, GateStage, Limits};
use crate::state::{
    ops, Actor, Agent, AttemptNote, Cause, ConvoyStatus, Feature, FeatureStatus, Merged, Snapshot,
    StateError, Store, Task, TaskRef, TaskStatus, Transition, Txn,
};

/// How failed attempts are paid for (from `policy` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptPolicy {
    pub(crate) max_attempts: u32,
    /// The first pause between attempts, in seconds; it doubles each time.
    pub(crate) backoff_secs: u64,
}

/// The pause before attempt `n + 1` (n ≥ 1 failures so far): `base · 2^(n-1)`
/// capped at 32 × base, with ±25 % jitter so tasks that failed together do
/// not all start again in the same second.
pub(crate) fn backoff_secs(base: u64, n: u32, seed: &str) -> u64 {
    if base == 0 {
        return 0;
    }
    let exp = n.saturating_sub(1).min(5);
    let pause = base.saturating_mul(1 << exp);
    use std::hash::BuildHasher;
    let noise = std::collections::hash_map::RandomState::new().hash_one((seed, n, clock::now()));
    let spread = pause / 4;
    if spread == 0 {
        return pause;
    }
    pause - spread + noise % (2 * spread + 1)
}

/// Records that an attempt at `r` ended badly and moves the task on: back to
/// `to` after a backoff, or `failed` (dependants blocked) past
/// `max_attempts`. Infrastructure causes count no attempt and put nothing
/// into the next prompt; `feedback` (gate or review output) does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn end_attempt(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    agent: Option<&str>,
    cause: Cause,
    note: &str,
    feedback: Option<String>,
    policy: AttemptPolicy,
    to: TaskStatus,
) -> Result<(), StateError> {
    let Some(mut t) = txn.task(&r.feature, &r.id)? else {
        return Ok(());
    };
    let now = clock::now();
    let counted = !cause.is_infrastructure();
    let n = if counted {
        t.infra_failures = 0;
        t.attempts
    } else {
        // The claim counted this attempt when it started; it was not the
        // task's fault, so it does not count.
        t.attempts = t.attempts.saturating_sub(1);
        t.infra_failures += 1;
        t.infra_failures
    };
    t.history.push(AttemptNote {
        attempt: t.attempts + u32::from(!counted),
        at: clock::rfc3339(now),
        agent: agent.map(str::to_owned),
        cause,
        note: note.to_owned(),
        counted,
    });
    if counted {
        t.feedback.extend(feedback);
    }
    t.cause = Some(cause);
    t.tester = None;
    t.review = None;
    let pause = backoff_secs(policy.backoff_secs, n.max(1), &r.to_string());
    t.retry_after = Some(now + pause as i64);
    txn.put_task(&r.feature, &t)?;
    let reason = format!("{note} [{cause}]");
    if counted && t.attempts >= policy.max_attempts {
        ops::fail(
            txn,
            r,
            &format!(
                "{reason}; {} of {} attempts used",
                t.attempts, policy.max_attempts
            ),
        )?;
    } else {
        let wait = if pause > 0 {
            format!("; next attempt in {}", clock::short_age(pause as i64))
        } else {
            String::new()
        };
        let spent = if counted {
            format!("; attempt {} of {}", t.attempts, policy.max_attempts)
        } else {
            "; not counted: not the task's fault".to_owned()
        };
        let why = format!("{reason}{spent}{wait}");
        if t.status == to {
            // Nothing moves (a setup failure before the claim), but the
            // attempt is on the record all the same.
            txn.record(Transition {
                task: r.to_string(),
                from: to.to_string(),
                to: to.to_string(),
                reason: Some(why),
                policy: None,
            });
        } else {
            ops::move_task(txn, r, to, Some(&why), false)?;
        }
    }
    Ok(())
}

/// A developer's attempt is over: record its agent `cause`, then the task.
pub(crate) fn lost_attempt(
    store: &Store,
    r: &TaskRef,
    agent: Option<&str>,
    cause: Cause,
    reason: &str,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        if let Some(id) = agent {
            ops::agent_dead(txn, id, cause, reason)?;
        }
        let Some(t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        if t.status != TaskStatus::InProgress {
            return Ok(());
        }
        if let (Some(id), Some(c)) = (agent, &t.claim) {
            if c.holder != id {
                return Ok(()); // a newer attempt already holds it
            }
        }
        end_attempt(txn, r, agent, cause, reason, None, policy, TaskStatus::Todo)
    })?;
    Ok(())
}

/// The orchestrator's own name in the audit trail.
pub(crate) fn orchestrator() -> Actor {
    Actor::named("orchestrator")
}

/// The developer ended well: to review — unless it left no commit beyond
/// where it started (`changed` is false), which fails the attempt.
pub(crate) fn developer_done(
    store: &Store,
    r: &TaskRef,
    agent: &str,
    changed: bool,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        if t.status != TaskStatus::InProgress
            || t.claim.as_ref().map(|c| c.holder.as_str()) != Some(agent)
        {
            return Ok(()); // someone else moved it
        }
        if !changed {
            let why = format!("developer {agent} finished without a commit");
            if let Some(mut a) = txn.agent(agent)? {
                a.cause = Some(Cause::NoChange);
                a.error = Some(why.clone());
                txn.put_agent(&a)?;
            }
            return end_attempt(
                txn,
                r,
                Some(agent),
                Cause::NoChange,
                &why,
                None,
                policy,
                TaskStatus::Todo,
            );
        }
        ops::move_task(
            txn,
            r,
            TaskStatus::InReview,
            Some(&format!("developer {agent} finished")),
            false,
        )?;
        Ok(())
    })?;
    Ok(())
}

/// A Tester met an infrastructure failure: forget it, so another starts
/// after a backoff; no attempt is spent.
pub(crate) fn restart_tester(
    store: &Store,
    r: &TaskRef,
    agent: &str,
    cause: Cause,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(mut t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        if t.status != TaskStatus::InTests || t.tester.as_deref() != Some(agent) {
            return Ok(());
        }
        t.tester = None;
        another_after_outage(txn, r, t, "tester", agent, cause, policy)
    })?;
    Ok(())
}

/// The rest of a helper agent's (Tester's, Reviewer's) infrastructure
/// failure, once the task has forgotten it: a backoff before another, a
/// history note that spends no attempt, the commit's subject.
fn another_after_outage(
    txn: &mut Txn<'_>,
    r: &TaskRef,
    mut t: Task,
    role: &str,
    agent: &str,
    cause: Cause,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    let now = clock::now();
    t.infra_failures += 1;
    let pause = backoff_secs(policy.backoff_secs, t.infra_failures, &r.to_string());
    t.retry_after = Some(now + pause as i64);
    t.cause = Some(cause);
    t.history.push(AttemptNote {
        attempt: t.attempts,
        at: clock::rfc3339(now),
        agent: Some(agent.to_owned()),
        cause,
        note: format!("{role} {agent} failed ({cause}); another starts"),
        counted: false,
    });
    txn.put_task(&r.feature, &t)?;
    txn.subject(format!(
        "{r}: {role} {agent} failed ({cause}); another in {}",
        clock::short_age(pause as i64)
    ));
    Ok(())
}

/// Sends convoy `feature/convoy` back for another Librarian after an
/// infrastructure failure of `agent`: the run spends no attempt and waits
/// out a backoff (the profile's breaker counts the failure).
pub(crate) fn restart_librarian(
    store: &Store,
    feature: &str,
    convoy: &str,
    agent: &str,
    cause: Cause,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(mut c) = txn.convoy(feature, convoy)? else {
            return Ok(());
        };
        let current = c.librarian.as_deref().is_none_or(|id| id == agent);
        if c.status != ConvoyStatus::InDocs || !current {
            return Ok(());
        }
        let key = format!("{feature}/{convoy}");
        let failures = c.runs.saturating_sub(c.attempts).saturating_add(1);
        let pause = backoff_secs(policy.backoff_secs, failures, &key);
        let from = c.status;
        c.status = ConvoyStatus::Open;
        // The claim counted this run; it was not the docs' fault.
        c.attempts = c.attempts.saturating_sub(1);
        c.librarian = None;
        c.retry_after = Some(clock::now() + pause as i64);
        txn.put_convoy(feature, &c)?;
        txn.record(Transition {
            task: key,
            from: from.to_string(),
            to: c.status.to_string(),
            reason: Some(format!(
                "librarian {agent} failed ({cause}); another in {} (no attempt spent)",
                clock::short_age(pause as i64)
            )),
            policy: None,
        });
        Ok(())
    })?;
    Ok(())
}

/// Moves finished agents out of the live state (one commit for all of them),
/// so later reads do not grow with the sprint's history. A failure only
/// leaves them live until the next reconcile.
pub(crate) fn archive_finished(store: &Store, snapshot: &crate::state::Snapshot) {
    if snapshot.archivable().is_empty() {
        return;
    }
    if let Err(e) = store.transact(&orchestrator(), crate::state::archive_finished_agents) {
        tracing::warn!(error = %e, "archiving finished agents failed");
    }
}

/// Records an agent dead (session gone, hung and stopped, or a session
/// that never started) with its cause: always one transition naming the
/// agent and the cause ([`ops::agent_dead`]).
pub(crate) fn mark_dead(
    store: &Store,
    agent: &str,
    cause: Cause,
    reason: &str,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        ops::agent_dead(txn, agent, cause, reason)?;
        Ok(())
    })?;
    Ok(())
}

/// A `todo` task that can never run (its dependency failed or was cancelled).
pub(crate) fn block(store: &Store, r: &TaskRef, reason: &str) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        if t.status != TaskStatus::Todo {
            return Ok(());
        }
        ops::move_task(txn, r, TaskStatus::Blocked, Some(reason), false)?;
        Ok(())
    })?;
    Ok(())
}

/// A claim the policy refuses: a `todo` task is blocked with `why` (a
/// reason the Manager never lifts by itself: the policy or the config must
/// change, then `retry`); a task further on fails. `decision` is recorded
/// with it.
pub(crate) fn refuse_claim(
    store: &Store,
    r: &TaskRef,
    why: &str,
    decision: &Decision,
) -> Result<(), StateError> {
    store.transact(&Actor::named("manager"), |txn| {
        let Some(t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        match t.status {
            TaskStatus::Todo => {
                ops::move_task(txn, r, TaskStatus::Blocked, Some(why), false)?;
            }
            TaskStatus::InTests => {
                ops::fail(txn, r, why)?;
            }
            _ => return Ok(()),
        }
        txn.record_policy_note(&r.to_string(), why);
        txn.decide(decision);
        Ok(())
    })?;
    Ok(())
}

/// A task blocked by its dependencies may run again.
pub(crate) fn unblock(store: &Store, r: &TaskRef) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        if t.status != TaskStatus::Blocked {
            return Ok(());
        }
        ops::move_task(
            txn,
            r,
            TaskStatus::Todo,
            Some("what it waited on is back"),
            false,
        )?;
        Ok(())
    })?;
    Ok(())
}

/// Records an agent profile's breaker open, with the cause and the fix.
pub(crate) fn open_breaker(store: &Store, profile: &str, threshold: u32) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(mut meta) = txn.meta()? else {
            return Ok(());
        };
        let Some(b) = meta.breakers.get_mut(profile) else {
            return Ok(());
        };
        if b.open_since.is_some() || b.failures < threshold.max(1) {
            return Ok(());
        }
        b.open_since = Some(clock::now());
        let cause = b.cause.map(|c| c.to_string()).unwrap_or_default();
        let line = breaker_line(profile, b);
        txn.put_meta(&meta)?;
        txn.record(Transition {
            task: format!("breaker/{profile}"),
            from: "closed".into(),
            to: "open".into(),
            reason: Some(line),
            policy: Some(format!(
                "circuit breaker: {threshold} {cause} failures in a row"
            )),
        });
        Ok(())
    })?;
    Ok(())
}

/// One line on an open breaker: what, why, and what to do.
pub(crate) fn breaker_line(profile: &str, b: &crate::state::Breaker) -> String {
    let cause = b
        .cause
        .map(|c| c.to_string())
        .unwrap_or_else(|| "infrastructure".into());
    let fix = match b.cause {
        Some(Cause::Auth) => "fix the API key in the shell, then 'git sprint start' (it refreshes the agents' environment) and 'git sprint resume'",
        Some(Cause::RateLimit) | Some(Cause::Overloaded) => "it probes again after the cool-down; 'git sprint resume' probes now",
        _ => "check the network and the provider's status; 'git sprint resume' probes now",
    };
    let error = if b.error.is_empty() {
        String::new()
    } else {
        format!(": {}", b.error)
    };
    format!(
        "agent profile {profile}: circuit breaker open after {} {cause} failures in a row{error}; {fix}",
        b.failures
    )
}

/// Records the budgets reached now, one transition per scope that changed.
pub(crate) fn record_budgets(
    store: &Store,
    stops: &BTreeMap<String, String>,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(mut meta) = txn.meta()? else {
            return Ok(());
        };
        if &meta.budget_stops == stops {
            return Ok(());
        }
        for (scope, line) in stops {
            if !meta.budget_stops.contains_key(scope) {
                txn.record(Transition {
                    task: format!("budget/{scope}"),
                    from: "open".into(),
                    to: "reached".into(),
                    reason: Some(line.clone()),
                    policy: Some(format!("budget: no new agents for {scope}")),
                });
                let mut d = Decision::new("budget", scope, PolicyVerdict::BudgetStop, "budget");
                d.reason = Some(line.clone());
                txn.decide(&d);
            }
        }
        for scope in meta.budget_stops.keys() {
            if !stops.contains_key(scope) {
                txn.record(Transition {
                    task: format!("budget/{scope}"),
                    from: "reached".into(),
                    to: "open".into(),
                    reason: Some("the limit was raised".into()),
                    policy: Some(format!("budget: agents may start again for {scope}")),
                });
                let mut d = Decision::new("budget", scope, PolicyVerdict::BudgetResumed, "budget");
                d.reason = Some("the limit was raised".into());
                txn.decide(&d);
            }
        }
        meta.budget_stops = stops.clone();
        txn.put_meta(&meta)?;
        Ok(())
    })?;
    Ok(())
}

/// Records a gate stage's verdict on the task, if it is still waiting for it.
#[cfg(test)]
pub(crate) fn record_verdict(
    store: &Store,
    feature: &str,
    task: &str,
    stage: GateStage,
    outcome: &gates::StageOutcome,
    policy: AttemptPolicy,
    reviewers: &[String],
) -> Result<(), StateError> {
    record_judged_verdict(
        store, feature, task, stage, outcome, policy, reviewers, None,
    )
}

/// Records that the policy denied a task's change in review: the attempt
/// ends with cause `policy`, the denying rules and what they matched as
/// feedback, and a decision record per matching rule in the same commit.
pub(crate) fn record_policy_denial(
    store: &Store,
    feature: &str,
    task: &str,
    stage: GateStage,
    judged: &Judgement,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    let expect = match stage {
        GateStage::Review => TaskStatus::InReview,
        GateStage::Test => TaskStatus::InTests,
    };
    let r = TaskRef::new(feature, task);
    store.transact(&Actor::named("cab"), |txn| {
        let Some(mut t) = txn.task(feature, task)? else {
            return Ok(());
        };
        if t.status != expect {
            return Ok(());
        }
        t.approval = None;
        txn.put_task(feature, &t)?;
        for d in judged.decisions("cab") {
            txn.decide(&d);
        }
        end_attempt(
            txn,
            &r,
            None,
            Cause::Policy,
            &judged.denial_note(),
            Some(judged.feedback()),
            policy,
            TaskStatus::InProgress,
        )
    })?;
    Ok(())
}

/// [`record_verdict`] with the policy's judgement of the change (review
/// only): its warnings and approval requests are recorded with the verdict,
/// and a task whose approval is pending parks in `awaiting_approval` once
/// its tests pass instead of going on to the merge.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_judged_verdict(
    store: &Store,
    feature: &str,
    task: &str,
    stage: GateStage,
    outcome: &gates::StageOutcome,
    policy: AttemptPolicy,
    reviewers: &[String],
    judged: Option<&Judgement>,
) -> Result<(), StateError> {
    let (expect, pass_to, kind) = match stage {
        GateStage::Review => (
            TaskStatus::InReview,
            TaskStatus::InTests,
            gates::Stage::Review,
        ),
        GateStage::Test => (TaskStatus::InTests, TaskStatus::InDocs, gates::Stage::Test),
    };
    let name = kind.as_str();
    let r = TaskRef::new(feature, task);
    store.transact(&Actor::named("cab"), |txn| {
        let Some(mut t) = txn.task(feature, task)? else {
            return Ok(());
        };
        if t.status != expect {
            return Ok(());
        }
        let at = clock::now_rfc3339();
        for (gate, o) in &outcome.results {
            t.gates.push(o.to_result(gate, kind, &at));
        }
        if let Some(judged) = judged {
            // The diff is judged afresh on every review: an approval given
            // to an earlier diff does not carry over to a new one. Before
            // the tests the diff is judged again, and only what is new to
            // the record is recorded (a warning is said once).
            let before = t.approval.take().map(|a| a.rules).unwrap_or_default();
            t.approval = judged.approval();
            for d in judged.decisions("cab") {
                let new = match stage {
                    GateStage::Review => true,
                    GateStage::Test => {
                        d.verdict == PolicyVerdict::ApprovalRequired && !before.contains(&d.rule)
                    }
                };
                if new {
                    txn.decide(&d);
                }
            }
        }
        // AI Reviewers still owed keep the task in review: the CAB starts them.
        let owed = reviewers.iter().find(|g| {
            stage == GateStage::Review && !t.review.as_ref().is_some_and(|r| r.approved.contains(g))
        });
        if let (true, Some(gate)) = (outcome.passed, owed) {
            t.review.get_or_insert_with(Default::default).reviewer = None;
            txn.put_task(feature, &t)?;
            let mut why = if outcome.results.is_empty() {
                "no review command gate had to run".to_owned()
            } else {
                "review command gates passed".to_owned()
            };
            if let Some(note) = outcome.skipped_note() {
                why.push_str(&format!("; {note}"));
            }
            txn.subject(format!("{r}: {why}; AI review gate {gate} next"));
            return Ok(());
        }
        let parks = stage == GateStage::Test && t.approval.as_ref().is_some_and(|a| a.pending());
        if outcome.passed && parks {
            t.tester = None;
            t.review = None;
            txn.put_task(feature, &t)?;
            let rules = t
                .approval
                .as_ref()
                .map(|a| a.rules.join(", "))
                .unwrap_or_default();
            let why = format!("{name} gates passed; the merge waits for a person's approval");
            ops::move_task(txn, &r, TaskStatus::AwaitingApproval, Some(&why), false)?;
            txn.record_policy_note(&r.to_string(), &format!("approval required by {rules}"));
        } else if outcome.passed {
            t.tester = None;
            t.review = None;
            txn.put_task(feature, &t)?;
            let mut why = match (outcome.results.is_empty(), outcome.skipped.is_empty()) {
                (true, true) => format!("no {name} gates configured"),
                (true, false) => format!("no {name} gate had to run"),
                (false, _) => format!("{name} gates passed"),
            };
            // Said in the transition, so `show` and `log` tell why a gate
            // did not run.
            if let Some(note) = outcome.skipped_note() {
                why.push_str(&format!("; {note}"));
            }
            ops::move_task(txn, &r, pass_to, Some(&why), false)?;
        } else {
            txn.put_task(feature, &t)?;
            let failed = outcome
                .results
                .iter()
                .find(|(_, o)| !o.passed)
                .map(|(g, _)| g.as_str())
                .unwrap_or("a gate");
            end_attempt(
                txn,
                &r,
                None,
                Cause::Gate,
                &match outcome.skipped_note() {
                    Some(note) => format!("{name} gate {failed} failed; {note}"),
                    None => format!("{name} gate {failed} failed"),
                },
                Some(outcome.feedback()),
                policy,
                TaskStatus::InProgress,
            )?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Records the Refinery's verdict on a task still waiting in `in_docs`.
pub(crate) fn record_merge(
    store: &Store,
    feature: &str,
    task: &str,
    integration: &str,
    verdict: &Verdict,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    let r = TaskRef::new(feature, task);
    store.transact(&Actor::named("refinery"), |txn| {
        let Some(mut t) = txn.task(feature, task)? else {
            return Ok(());
        };
        if t.status != TaskStatus::InDocs {
            return Ok(());
        }
        let (cause, why) = match verdict {
            Verdict::Merged { commit, tip } | Verdict::AlreadyMerged { commit, tip } => {
                let why = match verdict {
                    Verdict::Merged { .. } => {
                        format!("merged into {integration} as {}", short(commit))
                    }
                    _ => format!(
                        "already merged into {integration} as {} (found by its Sprint-Task trailer)",
                        short(commit)
                    ),
                };
                // What was merged, in the transaction that says it was.
                t.merged = Some(Merged {
                    tip: tip.clone(),
                    commit: commit.clone(),
                });
                txn.put_task(feature, &t)?;
                ops::move_task(txn, &r, TaskStatus::Done, Some(&why), false)?;
                // Its agents are finished for good: archived here rather
                // than by a commit (and a reconcile) of their own.
                crate::state::archive_agents_of_task(txn, feature, task)?;
                return Ok(());
            }
            // Never a merge: the branch adds nothing (no commit, or dropped).
            Verdict::NothingToMerge { tip } => (
                Cause::NoChange,
                format!(
                    "nothing to merge: {} at {} adds no commit to {integration}",
                    crate::stages::task_branch(feature, task),
                    short(tip)
                ),
            ),
            Verdict::NoBranch { branch } => (
                Cause::NoChange,
                format!("nothing to merge: {branch} does not exist and {integration} has no merge of the task"),
            ),
            Verdict::Conflict { files, .. } => (
                Cause::Conflict,
                format!("merge conflict in {}", files.join(", ")),
            ),
            Verdict::GatesFailed { stage, outcome } => {
                t.gates
                    .extend(outcome.to_results(*stage, &clock::now_rfc3339()));
                txn.put_task(feature, &t)?;
                (Cause::Gate, format!("{stage} gates failed on the merge"))
            }
        };
        end_attempt(
            txn,
            &r,
            None,
            cause,
            &why,
            crate::refinery::feedback(verdict, integration),
            policy,
            TaskStatus::InProgress,
        )
    })?;
    Ok(())
}

/// Records the docs merge: the convoy is done, or goes back for another
/// Librarian attempt (done without new docs past the attempt limit).
/// `failed` says how the Librarian's run went badly, if it did: with
/// nothing to merge that is a failed attempt, not "no docs to change".
pub(crate) fn record_docs(
    store: &Store,
    feature: &str,
    convoy: &str,
    integration: &str,
    verdict: &Verdict,
    policy: AttemptPolicy,
    failed: Option<&str>,
) -> Result<(), StateError> {
    let max_attempts = policy.max_attempts;
    store.transact(&Actor::named("refinery"), |txn| {
        let Some(mut c) = txn.convoy(feature, convoy)? else {
            return Ok(());
        };
        if c.status != ConvoyStatus::InDocs {
            return Ok(());
        }
        let (to, why) = match verdict {
            Verdict::Merged { commit, .. } | Verdict::AlreadyMerged { commit, .. } => (
                ConvoyStatus::Done,
                format!("docs merged into {integration} as {}", short(commit)),
            ),
            Verdict::NothingToMerge { .. } if failed.is_none() => (
                ConvoyStatus::Done,
                "the librarian changed no docs: nothing to merge".to_owned(),
            ),
            // A run that failed is no verdict on the docs, and its exit is
            // not something a prompt can fix: nothing goes into `reason`.
            Verdict::NothingToMerge { .. } => {
                let failed = failed.unwrap_or_default();
                if c.attempts >= max_attempts {
                    (
                        ConvoyStatus::Done,
                        format!("docs not written after {} attempts: {failed}", c.attempts),
                    )
                } else {
                    (
                        ConvoyStatus::Open,
                        format!("{failed}; another librarian attempt"),
                    )
                }
            }
            other => {
                let what = crate::refinery::feedback(other, integration).unwrap_or_default();
                c.reason = Some(what);
                if c.attempts >= max_attempts {
                    (
                        ConvoyStatus::Done,
                        format!("docs not merged after {} attempts", c.attempts),
                    )
                } else {
                    (
                        ConvoyStatus::Open,
                        "docs merge failed; another librarian attempt".to_owned(),
                    )
                }
            }
        };
        let from = c.status;
        c.status = to;
        c.librarian = None;
        if to == ConvoyStatus::Open {
            let pause = backoff_secs(
                policy.backoff_secs,
                c.attempts,
                &format!("{feature}/{convoy}"),
            );
            c.retry_after = Some(clock::now() + pause as i64);
        }
        txn.put_convoy(feature, &c)?;
        txn.record(Transition {
            task: format!("{feature}/{convoy}"),
            from: from.to_string(),
            to: to.to_string(),
            reason: Some(why),
            policy: None,
        });
        Ok(())
    })?;
    Ok(())
}

pub(crate) use crate::names::record_id as short;

/// The task `r` as the engine reads it before acting.
#[cfg(test)]
pub(crate) fn task(store: &Store, r: &TaskRef) -> Result<Option<Task>, StateError> {
    store.read(|txn| txn.task(&r.feature, &r.id))
}

/// Counts a worktree that could not be prepared (or a setup command that
/// failed or ran out of time) as a failed attempt of a task still waiting
/// for its developer.
pub(crate) fn setup_failed(
    store: &Store,
    r: &TaskRef,
    error: &str,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(mut t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        if !waits_for_developer(&t) {
            return Ok(());
        }
        t.attempts += 1;
        txn.put_task(&r.feature, &t)?;
        let note = format!("preparing the worktree failed: {error}");
        end_attempt(
            txn,
            r,
            None,
            Cause::Setup,
            &note,
            None,
            policy,
            TaskStatus::Todo,
        )
    })?;
    Ok(())
}

/// Still waiting for a developer, exactly as the Manager saw it?
fn waits_for_developer(t: &Task) -> bool {
    t.status == TaskStatus::Todo || (t.status == TaskStatus::InProgress && t.claim.is_none())
}

/// Whether the breaker of `profile` lets agent `id` start; a probe run is
/// recorded as such (`breaker/<profile>: open -> half_open`).
pub(crate) fn breaker_admits(
    txn: &mut Txn<'_>,
    profile: &str,
    id: &str,
    limits: &Limits,
) -> Result<bool, StateError> {
    let Some(mut meta) = txn.meta()? else {
        return Ok(true);
    };
    let probe_agents = Snapshot {
        meta: None,
        features: Vec::new(),
        agents: match meta.breakers.get(profile).and_then(|b| b.probe.clone()) {
            Some(p) => txn.agent(&p)?.into_iter().collect(),
            None => Vec::new(),
        },
        quarantined: Vec::new(),
    };
    match stages::breaker_gate(
        meta.breakers.get(profile),
        &probe_agents,
        limits,
        clock::now(),
    ) {
        BreakerGate::Closed => Ok(true),
        BreakerGate::Open => Ok(false),
        BreakerGate::Probe => {
            if let Some(b) = meta.breakers.get_mut(profile) {
                b.probe = Some(id.to_owned());
                b.half_open = false;
            }
            txn.put_meta(&meta)?;
            txn.record(Transition {
                task: format!("breaker/{profile}"),
                from: "open".into(),
                to: "half_open".into(),
                reason: Some(format!("{id} probes whether the agent works again")),
                policy: Some("circuit breaker: one probe run".into()),
            });
            Ok(true)
        }
    }
}

/// Claims `r` for a new developer run when it still waits for one and the
/// profile's breaker admits it: the claim (`todo -> in_progress`), the
/// task's branch and worktree, the feature made active, and the agent
/// record `agent(claimed task, new id)` makes. `None`: nothing was owed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn claim_developer(
    store: &Store,
    r: &TaskRef,
    profile: &str,
    limits: &Limits,
    branch: &str,
    worktree: &Path,
    agent: impl Fn(&Task, &str) -> Agent,
) -> Result<Option<Agent>, StateError> {
    let claimed = store.transact(&orchestrator(), |txn| {
        let Some(t) = txn.task(&r.feature, &r.id)? else {
            return Ok(None);
        };
        if !waits_for_developer(&t) {
            return Ok(None);
        }
        // Each run gets an id never used before, whatever `retry` did to
        // the attempt count.
        let mut run = t.runs.max(t.attempts) + 1;
        while txn
            .agent(&agent_id(&r.feature, &r.id, "developer", run))?
            .is_some()
        {
            run += 1;
        }
        let id = agent_id(&r.feature, &r.id, "developer", run);
        if !breaker_admits(txn, profile, &id, limits)? {
            return Ok(None);
        }
        let mut t = ops::claim(txn, r, &id, limits.lease_secs)?;
        t.runs = run;
        t.retry_after = None;
        t.branch = Some(branch.to_owned());
        t.worktree = Some(worktree.display().to_string());
        txn.put_task(&r.feature, &t)?;
        if let Some(mut f) = txn.feature(&r.feature)? {
            if f.status == FeatureStatus::Planned {
                f.status = FeatureStatus::Active;
                txn.put_feature(&f)?;
            }
        }
        let a = agent(&t, &id);
        txn.put_agent(&a)?;
        if let (Some(route), Some(claim)) = (&a.route, txn.transition_mut(&r.to_string())) {
            let routed = format!("routed to {}", route.describe());
            claim.reason = Some(match claim.reason.take() {
                Some(why) => format!("{why}; {routed}"),
                None => routed,
            });
        }
        Ok(Some(a))
    })?;
    Ok(claimed.value)
}

/// The id of a task's helper agent (Tester, Reviewer): the one `named`
/// before the orchestrator stopped and never started, else `base()` made
/// unique against live and archived agents (ids never repeat). `None`
/// while the named one exists: nothing is owed.
fn helper_agent_id(
    txn: &Txn<'_>,
    named: Option<&str>,
    base: impl FnOnce() -> String,
) -> Result<Option<String>, StateError> {
    match named {
        Some(id) if txn.agent(id)?.is_none() => Ok(Some(id.to_owned())),
        Some(_) => Ok(None),
        None => {
            let base = base();
            let mut id = base.clone();
            let mut k = 1;
            while txn.agent(&id)?.is_some() || txn.archived_agent(&id)?.is_some() {
                k += 1;
                id = format!("{base}-{k}");
            }
            Ok(Some(id))
        }
    }
}

/// Names a tester for `r` (in tests, none running) when the profile's
/// breaker admits it, and writes the record `agent(task, id)` makes.
/// `None`: nothing was owed.
pub(crate) fn claim_tester(
    store: &Store,
    r: &TaskRef,
    attempt: u32,
    profile: &str,
    limits: &Limits,
    agent: impl Fn(&Task, &str) -> Agent,
) -> Result<Option<Agent>, StateError> {
    let claimed = store.transact(&orchestrator(), |txn| {
        let Some(mut t) = txn.task(&r.feature, &r.id)? else {
            return Ok(None);
        };
        if t.status != TaskStatus::InTests {
            return Ok(None);
        }
        let base = || agent_id(&r.feature, &r.id, "tester", t.runs.max(attempt).max(1));
        let Some(id) = helper_agent_id(txn, t.tester.as_deref(), base)? else {
            return Ok(None);
        };
        if !breaker_admits(txn, profile, &id, limits)? {
            return Ok(None);
        }
        t.tester = Some(id.clone());
        t.retry_after = None;
        txn.put_task(&r.feature, &t)?;
        let a = agent(&t, &id);
        txn.put_agent(&a)?;
        txn.subject(format!("{r}: tester {id} starting"));
        Ok(Some(a))
    })?;
    Ok(claimed.value)
}

/// Puts convoy `feature/convoy` in docs with librarian `agent` when the
/// convoy is not done, the agent is new and its profile's breaker admits
/// it. Returns whether the librarian should start.
pub(crate) fn claim_librarian(
    store: &Store,
    feature: &str,
    convoy: &str,
    attempt: u32,
    limits: &Limits,
    agent: &Agent,
) -> Result<bool, StateError> {
    let claimed = store.transact(&orchestrator(), |txn| {
        let Some(mut c) = txn.convoy(feature, convoy)? else {
            return Ok(false);
        };
        if c.status == ConvoyStatus::Done || txn.agent(&agent.id)?.is_some() {
            return Ok(false);
        }
        if !breaker_admits(txn, &agent.profile, &agent.id, limits)? {
            return Ok(false);
        }
        let from = c.status;
        c.status = ConvoyStatus::InDocs;
        c.attempts = attempt;
        c.runs += 1;
        c.librarian = Some(agent.id.clone());
        c.retry_after = None;
        txn.put_convoy(feature, &c)?;
        txn.put_agent(agent)?;
        txn.record(Transition {
            task: format!("{feature}/{convoy}"),
            from: from.to_string(),
            to: c.status.to_string(),
            reason: Some(format!("librarian {} updates the docs", agent.id)),
            policy: None,
        });
        Ok(true)
    })?;
    Ok(claimed.value)
}

/// A convoy whose tasks are all merged is done.
pub(crate) fn close_convoy(store: &Store, feature: &str, convoy: &str) -> Result<(), StateError> {
    store.transact(&Actor::named("refinery"), |txn| {
        let Some(mut c) = txn.convoy(feature, convoy)? else {
            return Ok(());
        };
        if c.status == ConvoyStatus::Done {
            return Ok(());
        }
        let from = c.status;
        c.status = ConvoyStatus::Done;
        txn.put_convoy(feature, &c)?;
        txn.record(Transition {
            task: format!("{feature}/{convoy}"),
            from: from.to_string(),
            to: c.status.to_string(),
            reason: Some("every task merged".into()),
            policy: None,
        });
        Ok(())
    })?;
    Ok(())
}

/// A feature whose convoys are all done is done; returns it, or `None` when
/// it already was (or is unknown).
pub(crate) fn close_feature(store: &Store, feature: &str) -> Result<Option<Feature>, StateError> {
    let closed = store.transact(&Actor::named("refinery"), |txn| {
        let Some(mut f) = txn.feature(feature)? else {
            return Ok(None);
        };
        if f.status == FeatureStatus::Done {
            return Ok(None);
        }
        let from = f.status;
        f.status = FeatureStatus::Done;
        txn.put_feature(&f)?;
        let branch = f.integration_branch.clone().unwrap_or_default();
        txn.record(Transition {
            task: feature.to_owned(),
            from: from.to_string(),
            to: f.status.to_string(),
            reason: Some(format!("every convoy done; {branch} is ready to merge")),
            policy: None,
        });
        Ok(Some(f))
    })?;
    Ok(closed.value)
}

/// Notes on the feature what became of merging it into its base branch; the
/// note's first line is the commit's subject.
pub(crate) fn feature_note(store: &Store, feature: &str, note: &str) -> Result<(), StateError> {
    feature_note_with(store, feature, note, None)
}

/// [`feature_note`] for a policy decision, recorded with it.
pub(crate) fn feature_note_decided(
    store: &Store,
    feature: &str,
    note: &str,
    decision: &Decision,
) -> Result<(), StateError> {
    feature_note_with(store, feature, note, Some(decision))
}

fn feature_note_with(
    store: &Store,
    feature: &str,
    note: &str,
    decision: Option<&Decision>,
) -> Result<(), StateError> {
    store.transact(&Actor::named("refinery"), |txn| {
        if let Some(d) = decision {
            txn.decide(d);
        }
        let Some(mut f) = txn.feature(feature)? else {
            return Ok(());
        };
        f.note = Some(note.to_owned());
        txn.put_feature(&f)?;
        txn.subject(format!(
            "{feature}: {}",
            note.lines().next().unwrap_or_default()
        ));
        Ok(())
    })?;
    Ok(())
}

/// Names a Reviewer for `r`'s next AI review gate when the task is in
/// review past its command gates, none runs, and the profile's breaker
/// admits it: `review.reviewer` and the agent record `agent(task, new id)`
/// makes (`<feature>.<task>.review.<run>`). `None`: nothing was owed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn claim_reviewer(
    store: &Store,
    r: &TaskRef,
    gate: &str,
    profile: &str,
    limits: &Limits,
    agent: impl Fn(&Task, &str) -> Agent,
) -> Result<Option<Agent>, StateError> {
    let claimed = store.transact(&Actor::named("cab"), |txn| {
        let Some(mut t) = txn.task(&r.feature, &r.id)? else {
            return Ok(None);
        };
        let Some(review) = t
            .review
            .as_ref()
            .filter(|_| t.status == TaskStatus::InReview)
        else {
            return Ok(None);
        };
        let base = || agent_id(&r.feature, &r.id, "reviewer", t.runs.max(1));
        let Some(id) = helper_agent_id(txn, review.reviewer.as_deref(), base)? else {
            return Ok(None);
        };
        if !breaker_admits(txn, profile, &id, limits)? {
            return Ok(None);
        }
        if let Some(review) = t.review.as_mut() {
            review.reviewer = Some(id.clone());
        }
        t.retry_after = None;
        txn.put_task(&r.feature, &t)?;
        let a = agent(&t, &id);
        txn.put_agent(&a)?;
        txn.subject(format!("{r}: reviewer {id} starting (review gate {gate})"));
        Ok(Some(a))
    })?;
    Ok(claimed.value)
}

/// A Reviewer met an infrastructure failure: forget it, so another starts
/// after a backoff; no attempt is spent.
pub(crate) fn restart_reviewer(
    store: &Store,
    r: &TaskRef,
    agent: &str,
    cause: Cause,
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    store.transact(&orchestrator(), |txn| {
        let Some(mut t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        let Some(review) = t
            .review
            .as_mut()
            .filter(|v| v.reviewer.as_deref() == Some(agent))
        else {
            return Ok(());
        };
        review.reviewer = None;
        another_after_outage(txn, r, t, "reviewer", agent, cause, policy)
    })?;
    Ok(())
}

/// What the CAB made of a Reviewer's run.
#[derive(Debug, Clone)]
pub(crate) struct Judged {
    /// The verdict, or why there is none (a gate failure, never an approval).
    pub(crate) verdict: Result<gates::review::Verdict, String>,
    /// What the Reviewer changed and the CAB put back, said in one line.
    pub(crate) discarded: Option<String>,
}

/// Records Reviewer `agent`'s verdict as review gate `gate`'s result: an
/// approval moves on to the next AI gate or to tests; a request for changes
/// or no usable verdict fails the attempt (cause `gate`), the comments
/// becoming the developer's feedback.
pub(crate) fn record_review(
    store: &Store,
    r: &TaskRef,
    agent: &str,
    gate: &str,
    judged: &Judged,
    reviewers: &[String],
    policy: AttemptPolicy,
) -> Result<(), StateError> {
    use gates::review::Decision;
    store.transact(&Actor::named("cab"), |txn| {
        let Some(mut t) = txn.task(&r.feature, &r.id)? else {
            return Ok(());
        };
        let ours = t.status == TaskStatus::InReview
            && t.review.as_ref().and_then(|v| v.reviewer.as_deref()) == Some(agent);
        if !ours {
            return Ok(());
        }
        let a = txn.agent(agent)?;
        let usage = a.as_ref().and_then(|a| a.usage.clone()).unwrap_or_default();
        let duration_ms = a
            .as_ref()
            .and_then(|a| a.ended.map(|e| (e - a.started).max(0) as u64 * 1000))
            .unwrap_or(0);
        let verdict = judged.verdict.as_ref();
        let passed = verdict.is_ok_and(|v| v.decision == Decision::Approve);
        let mut tail: Vec<String> = Vec::new();
        if let Err(why) = verdict {
            tail.push(format!("[git-sprint] {why}"));
        }
        if let Some(d) = &judged.discarded {
            tail.push(format!("[git-sprint] {d}"));
        }
        t.gates.push(crate::state::GateResult {
            gate: gate.to_owned(),
            stage: gates::Stage::Review.as_str().to_owned(),
            passed,
            figure: None,
            output_tail: tail.join("\n"),
            at: clock::now_rfc3339(),
            exit_code: a.as_ref().and_then(|a| a.exit_status),
            timed_out: a.as_ref().is_some_and(|a| a.cause == Some(Cause::Timeout)),
            duration_ms,
            verdict: verdict.ok().map(|v| v.decision.as_str().to_owned()),
            comments: verdict.map(|v| v.comments.clone()).unwrap_or_default(),
            agent: Some(agent.to_owned()),
            tokens: usage.tokens(),
            cost_usd: usage.cost_usd.unwrap_or(0.0),
        });
        let discarded = judged
            .discarded
            .as_ref()
            .map(|d| format!("; {d}"))
            .unwrap_or_default();
        match verdict {
            Ok(v) if v.decision == Decision::Approve => {
                let review = t.review.get_or_insert_with(Default::default);
                review.reviewer = None;
                review.approved.push(gate.to_owned());
                let next = reviewers.iter().find(|g| !review.approved.contains(g)).cloned();
                let said = format!("reviewer {agent} approved (review gate {gate}){discarded}");
                match next {
                    Some(next) => {
                        txn.put_task(&r.feature, &t)?;
                        txn.subject(format!("{r}: {said}; AI review gate {next} next"));
                    }
                    None => {
                        t.review = None;
                        txn.put_task(&r.feature, &t)?;
                        ops::move_task(
                            txn,
                            r,
                            TaskStatus::InTests,
                            Some(&format!("{said}; review gates passed")),
                            false,
                        )?;
                    }
                }
            }
            Ok(v) => {
                txn.put_task(&r.feature, &t)?;
                end_attempt(
                    txn,
                    r,
                    Some(agent),
                    Cause::Gate,
                    &format!(
                        "review gate {gate}: reviewer {agent} requested changes ({} comments){discarded}",
                        v.comments.len()
                    ),
                    Some(gates::review::feedback(gate, agent, &v.comments)),
                    policy,
                    TaskStatus::InProgress,
                )?;
            }
            Err(why) => {
                txn.put_task(&r.feature, &t)?;
                end_attempt(
                    txn,
                    r,
                    Some(agent),
                    Cause::Gate,
                    &format!("review gate {gate} failed: {why}{discarded}"),
                    None,
                    policy,
                    TaskStatus::InProgress,
                )?;
            }
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AgentState, Convoy};
    use gix::ObjectId;

    fn store() -> (tempfile::TempDir, Store) {
        Store::temp()
    }

    fn r(id: &str) -> TaskRef {
        TaskRef::new("f", id)
    }

    fn policy() -> AttemptPolicy {
        AttemptPolicy {
            max_attempts: 3,
            backoff_secs: 0,
        }
    }

    fn add_task(store: &Store, id: &str) {
        store.add_test_task(id);
    }

    fn agent(id: &str, task: &str, state: AgentState) -> Agent {
        let mut a: Agent = serde_yaml::from_str(&format!(
            "id: {id}\nrole: developer\nstate: {state}\nprofile: scripted\nsession: s-{id}\n"
        ))
        .expect("a minimal agent record parses");
        a.task = Some(task.into());
        a.started = clock::now();
        a
    }

    /// Changes task `id` as a person would, in one commit.
    fn edit_task(store: &Store, id: &str, edit: impl Fn(&mut crate::state::Task)) {
        store
            .transact(&Actor::named("person"), |txn| {
                let mut t = txn.task("f", id)?.expect("the task exists");
                edit(&mut t);
                txn.put_task("f", &t)?;
                txn.subject(format!("f/{id}: edited by the test"));
                Ok(())
            })
            .expect("editing a task");
    }

    fn put_agent(store: &Store, a: &Agent) {
        store
            .transact(&Actor::named("person"), |txn| {
                txn.put_agent(a)?;
                txn.subject(format!("{}: put by the test", a.id));
                Ok(())
            })
            .expect("writing an agent");
    }

    fn tip(store: &Store) -> ObjectId {
        store.tip().expect("reading the tip").expect("a state")
    }

    /// The last commit's message, and whether its parent is `before` (a
    /// compare-and-swap on the tip the write read, not an overwrite).
    fn last_commit(store: &Store, before: ObjectId) -> String {
        let commit = store
            .repo()
            .find_commit(tip(store))
            .expect("the tip is a commit");
        let parents: Vec<ObjectId> = commit.parent_ids().map(|p| p.detach()).collect();
        assert_eq!(parents, vec![before], "one commit on top of the tip read");
        commit.message_raw_sloppy().to_string()
    }

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn claim_developer_records_the_claim_and_the_agent_once() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        let before = tip(&store);
        let claimed = claim_developer(
            &store,
            &r("T1"),
            "scripted",
            &limits(),
            "sprint/f/T1",
            Path::new("/wt"),
            |t, id| agent(id, &format!("f/{}", t.id), AgentState::Starting),
        )
        .expect("claiming")
        .expect("T1 waits for a developer");
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: todo -> in_progress"), "{msg}");
        assert!(msg.contains("Sprint-Actor: orchestrator"), "{msg}");
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(
            t.claim.as_ref().map(|c| c.holder.as_str()),
            Some(claimed.id.as_str())
        );
        assert_eq!(t.branch.as_deref(), Some("sprint/f/T1"));
        assert!(store.read(|txn| txn.agent(&claimed.id)).unwrap().is_some());
        // Stale: the task is no longer waiting, so nothing is written.
        let again = claim_developer(
            &store,
            &r("T1"),
            "scripted",
            &limits(),
            "sprint/f/T1",
            Path::new("/wt"),
            |t, id| agent(id, &format!("f/{}", t.id), AgentState::Starting),
        )
        .unwrap();
        assert!(again.is_none());
        assert_eq!(store.tip().unwrap(), Some(tip(&store)));
    }

    #[test]
    fn a_merge_archives_the_tasks_ended_agents_in_its_own_commit() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        add_task(&store, "T10");
        edit_task(&store, "T1", |t| t.status = TaskStatus::InDocs);
        let mut dev = agent("f.T1.dev.1", "f/T1", AgentState::Exited);
        dev.ended = Some(clock::now());
        put_agent(&store, &dev);
        // Another task's agent, whose id shares the prefix `f.T1`.
        let mut other = agent("f.T10.dev.1", "f/T10", AgentState::Exited);
        other.ended = Some(clock::now());
        put_agent(&store, &other);
        let before = tip(&store);
        let verdict = Verdict::Merged {
            commit: "a".repeat(40),
            tip: "b".repeat(40),
        };
        record_merge(
            &store,
            "f",
            "T1",
            "sprint/f/integration",
            &verdict,
            policy(),
        )
        .unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: in_docs -> done"), "{msg}");
        let live = store.read(|txn| txn.agent_ids()).unwrap();
        assert_eq!(live, vec!["f.T10.dev.1".to_owned()]);
        let archived = store.read(|txn| txn.archived_agent_ids()).unwrap();
        assert_eq!(archived, vec!["f.T1.dev.1".to_owned()]);
        // Its run is counted for its profile (`git sprint agents`): the
        // tally was once kept only by the other way of archiving.
        let meta = store.read(|txn| txn.meta()).unwrap();
        let tally = meta.and_then(|m| m.profiles.get(&dev.profile).cloned());
        assert_eq!(tally.as_ref().map(|t| t.runs), Some(1), "{tally:?}");
        // Nothing is left for a commit of its own.
        let snapshot = store.read(crate::state::Snapshot::read).unwrap();
        assert!(snapshot.archivable().is_empty());
    }

    #[test]
    fn a_missing_task_branch_at_merge_is_a_spent_attempt_that_says_so() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        edit_task(&store, "T1", |t| t.status = TaskStatus::InDocs);
        let before = tip(&store);
        let gone = Verdict::NoBranch {
            branch: "sprint/f/T1".into(),
        };
        record_merge(&store, "f", "T1", "sprint/f/integration", &gone, policy()).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: in_docs -> "), "{msg}");
        assert!(
            msg.contains("nothing to merge: sprint/f/T1 does not exist")
                && msg.contains("[no_change]"),
            "{msg}"
        );
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(t.cause, Some(Cause::NoChange), "{t:?}");
        assert!(t.history.iter().all(|n| n.counted), "{t:?}");
        // The next developer is told what went wrong.
        assert!(
            t.feedback.iter().any(|f| f.contains("did not exist")),
            "{t:?}"
        );
    }

    #[test]
    fn setup_failed_counts_an_attempt_with_cause_setup() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        let before = tip(&store);
        setup_failed(&store, &r("T1"), "`make deps` exited 2", policy()).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: todo -> todo"), "{msg}");
        assert!(
            msg.contains(
                "Sprint-Reason: preparing the worktree failed: `make deps` exited 2 [setup]"
            ),
            "{msg}"
        );
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!((t.attempts, t.cause), (1, Some(Cause::Setup)));
    }

    #[test]
    fn mark_dead_records_a_transition_naming_the_agent_and_cause() {
        let (_dir, store) = store();
        put_agent(&store, &agent("t1", "f/T1", AgentState::Running));
        let before = tip(&store);
        mark_dead(&store, "t1", Cause::Hung, "hung: no output for 900s").unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("t1: running -> dead\n"), "{msg}");
        assert!(
            msg.contains("Sprint-Reason: hung: no output for 900s [hung]"),
            "{msg}"
        );
        let a = store.read(|txn| txn.agent("t1")).unwrap().unwrap();
        assert_eq!((a.state, a.cause), (AgentState::Dead, Some(Cause::Hung)));
        assert!(a.ended.is_some());
    }

    #[test]
    fn mark_dead_of_an_ended_agent_records_only_a_missing_cause() {
        let (_dir, store) = store();
        put_agent(&store, &agent("t1", "f/T1", AgentState::Killed));
        let before = tip(&store);
        mark_dead(&store, "t1", Cause::Hung, "hung and stopped").unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("t1: killed -> killed\n"), "{msg}");
        assert!(msg.contains("[hung]"), "{msg}");
        // Its cause is on the record now: a second verdict writes nothing.
        let tip_then = tip(&store);
        mark_dead(&store, "t1", Cause::Crash, "session gone").unwrap();
        assert_eq!(tip(&store), tip_then);
    }

    #[test]
    fn lost_attempt_ends_the_agent_and_sends_the_task_back() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        let a = claim_developer(
            &store,
            &r("T1"),
            "scripted",
            &limits(),
            "sprint/f/T1",
            Path::new("/wt"),
            |t, id| agent(id, &format!("f/{}", t.id), AgentState::Running),
        )
        .unwrap()
        .unwrap();
        let before = tip(&store);
        lost_attempt(
            &store,
            &r("T1"),
            Some(&a.id),
            Cause::Crash,
            "its tmux session is gone",
            policy(),
        )
        .unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.contains(&format!(
                "Sprint-Task: {}\nSprint-From: running\nSprint-To: dead",
                a.id
            )),
            "{msg}"
        );
        assert!(
            msg.contains("Sprint-Task: f/T1\nSprint-From: in_progress\nSprint-To: todo"),
            "{msg}"
        );
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::Todo);
        let dead = store.read(|txn| txn.agent(&a.id)).unwrap().unwrap();
        assert_eq!(dead.state, AgentState::Dead);
    }

    #[test]
    fn developer_done_moves_to_review_or_fails_a_run_without_a_commit() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        let claim = |store: &Store| {
            claim_developer(
                store,
                &r("T1"),
                "scripted",
                &limits(),
                "sprint/f/T1",
                Path::new("/wt"),
                |t, id| agent(id, &format!("f/{}", t.id), AgentState::Exited),
            )
            .unwrap()
            .unwrap()
        };
        let a = claim(&store);
        let before = tip(&store);
        developer_done(&store, &r("T1"), &a.id, false, policy()).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: in_progress -> todo"), "{msg}");
        assert!(msg.contains("[no_change]"), "{msg}");
        let a = claim(&store);
        let before = tip(&store);
        developer_done(&store, &r("T1"), &a.id, true, policy()).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: in_progress -> in_review"), "{msg}");
    }

    #[test]
    fn claim_tester_names_one_tester_with_a_subject() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        edit_task(&store, "T1", |t| t.status = TaskStatus::InTests);
        let before = tip(&store);
        let a = claim_tester(&store, &r("T1"), 1, "scripted", &limits(), |t, id| {
            agent(id, &format!("f/{}", t.id), AgentState::Starting)
        })
        .unwrap()
        .expect("a tester is owed");
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with(&format!("f/T1: tester {} starting", a.id)),
            "{msg}"
        );
        let again = claim_tester(&store, &r("T1"), 1, "scripted", &limits(), |t, id| {
            agent(id, &format!("f/{}", t.id), AgentState::Starting)
        })
        .unwrap();
        assert!(again.is_none(), "its tester is named and running");
    }

    fn add_convoy(store: &Store) {
        store
            .transact(&Actor::named("person"), |txn| {
                txn.put_convoy(
                    "f",
                    &Convoy {
                        id: "US1".into(),
                        title: String::new(),
                        status: ConvoyStatus::Open,
                        tasks: vec!["T1".into()],
                        attempts: 0,
                        reason: None,
                        runs: 0,
                        librarian: None,
                        retry_after: None,
                    },
                )?;
                txn.subject("f/US1: added by the test");
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn claim_librarian_puts_the_convoy_in_docs_once() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        add_convoy(&store);
        let lib = agent("f-US1-docs-librarian-1", "f/US1-docs", AgentState::Starting);
        let before = tip(&store);
        assert!(claim_librarian(&store, "f", "US1", 1, &limits(), &lib).unwrap());
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/US1: open -> in_docs"), "{msg}");
        assert!(!claim_librarian(&store, "f", "US1", 1, &limits(), &lib).unwrap());
    }

    #[test]
    fn restart_librarian_spends_no_attempt_and_backs_off() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        add_convoy(&store);
        let lib = agent("f.docs-US1.docs.1", "f/docs-US1", AgentState::Starting);
        assert!(claim_librarian(&store, "f", "US1", 1, &limits(), &lib).unwrap());
        // Another librarian's failure is not this one's.
        restart_librarian(&store, "f", "US1", "other", Cause::Auth, policy()).unwrap();
        let c = store.read(|txn| txn.convoy("f", "US1")).unwrap().unwrap();
        assert_eq!(c.status, ConvoyStatus::InDocs);
        let before = tip(&store);
        restart_librarian(&store, "f", "US1", &lib.id, Cause::Auth, policy()).unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with("f/US1: in_docs -> open")
                && msg.contains("librarian f.docs-US1.docs.1 failed (auth)"),
            "{msg}"
        );
        let c = store.read(|txn| txn.convoy("f", "US1")).unwrap().unwrap();
        assert_eq!((c.status, c.attempts, c.runs), (ConvoyStatus::Open, 0, 1));
        assert!(c.librarian.is_none() && c.retry_after.is_some(), "{c:?}");
    }

    #[test]
    fn a_failed_librarian_with_nothing_to_merge_is_a_spent_attempt_not_done() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        add_convoy(&store);
        let lib = agent("f.docs-US1.docs.1", "f/docs-US1", AgentState::Starting);
        assert!(claim_librarian(&store, "f", "US1", 1, &limits(), &lib).unwrap());
        let nothing = Verdict::NothingToMerge { tip: "abc".into() };
        let crashed = "librarian f.docs-US1.docs.1 exited with status 2 (crash)";
        let before = tip(&store);
        record_docs(&store, "f", "US1", "i", &nothing, policy(), Some(crashed)).unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with("f/US1: in_docs -> open") && msg.contains("(crash)"),
            "{msg}"
        );
        let c = store.read(|txn| txn.convoy("f", "US1")).unwrap().unwrap();
        assert_eq!((c.attempts, c.reason.as_deref()), (1, None), "{c:?}");
        // Past the limit the convoy ends, saying the docs were not written.
        let lib = agent("f.docs-US1.docs.2", "f/docs-US1", AgentState::Starting);
        assert!(claim_librarian(&store, "f", "US1", 2, &limits(), &lib).unwrap());
        let before = tip(&store);
        let policy = AttemptPolicy {
            max_attempts: 2,
            ..policy()
        };
        record_docs(&store, "f", "US1", "i", &nothing, policy, Some(crashed)).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.contains("docs not written after 2 attempts"), "{msg}");
        // A run that went well and changed nothing is done, as before.
        add_convoy(&store);
        let lib = agent("f.docs-US1.docs.3", "f/docs-US1", AgentState::Starting);
        assert!(claim_librarian(&store, "f", "US1", 1, &limits(), &lib).unwrap());
        let before = tip(&store);
        record_docs(&store, "f", "US1", "i", &nothing, policy, None).unwrap();
        assert!(last_commit(&store, before).contains("changed no docs"));
    }

    #[test]
    fn closing_a_convoy_and_a_feature_are_transitions() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        add_convoy(&store);
        let before = tip(&store);
        close_convoy(&store, "f", "US1").unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/US1: open -> done"), "{msg}");
        assert!(msg.contains("Sprint-Actor: refinery"), "{msg}");
        let before = tip(&store);
        let f = close_feature(&store, "f").unwrap().expect("f was open");
        assert_eq!(f.status, FeatureStatus::Done);
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f: planned -> done"), "{msg}");
        assert!(close_feature(&store, "f").unwrap().is_none());
        let before = tip(&store);
        feature_note(&store, "f", "merged into main at 0123456789ab\nmore").unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with("f: merged into main at 0123456789ab\n"),
            "{msg}"
        );
    }

    #[test]
    fn block_and_unblock_are_transitions() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        let before = tip(&store);
        block(&store, &r("T1"), "T0 failed").unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: todo -> blocked"), "{msg}");
        let before = tip(&store);
        unblock(&store, &r("T1")).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("f/T1: blocked -> todo"), "{msg}");
    }

    #[test]
    fn an_open_breaker_holds_developers_back_until_a_probe_is_admitted() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        store
            .transact(&Actor::named("person"), |txn| {
                let mut meta = txn.meta()?.expect("the first write made sprint.yaml");
                meta.breakers.insert(
                    "scripted".into(),
                    crate::state::Breaker {
                        failures: 3,
                        last_failure: clock::now(),
                        cause: Some(Cause::RateLimit),
                        ..Default::default()
                    },
                );
                txn.put_meta(&meta)?;
                txn.subject("breaker/scripted: failures by the test");
                Ok(())
            })
            .unwrap();
        let before = tip(&store);
        open_breaker(&store, "scripted", 3).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("breaker/scripted: closed -> open"), "{msg}");
        assert!(
            msg.contains("Sprint-Policy: circuit breaker: 3 rate_limit failures in a row"),
            "{msg}"
        );
        let make = |t: &Task, id: &str| agent(id, &format!("f/{}", t.id), AgentState::Starting);
        let cooling = Limits {
            breaker_cooldown_secs: 3600,
            ..limits()
        };
        let held = claim_developer(
            &store,
            &r("T1"),
            "scripted",
            &cooling,
            "b",
            Path::new("/wt"),
            make,
        );
        assert!(held.unwrap().is_none(), "the breaker is open");
        let cooled = Limits {
            breaker_cooldown_secs: 0,
            ..limits()
        };
        let before = tip(&store);
        let probe = claim_developer(
            &store,
            &r("T1"),
            "scripted",
            &cooled,
            "b",
            Path::new("/wt"),
            make,
        )
        .unwrap()
        .expect("one probe run after the cooldown");
        let msg = last_commit(&store, before);
        assert!(
            msg.contains("Sprint-Task: breaker/scripted\nSprint-From: open\nSprint-To: half_open"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "{} probes whether the agent works again",
                probe.id
            )),
            "{msg}"
        );
    }

    #[test]
    fn budget_stops_are_recorded_when_reached_and_when_raised() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        let stops = BTreeMap::from([("sprint".to_owned(), "spent $5.00 of $5.00".to_owned())]);
        let before = tip(&store);
        record_budgets(&store, &stops).unwrap();
        let msg = last_commit(&store, before);
        assert!(msg.starts_with("budget/sprint: open -> reached"), "{msg}");
        let same = tip(&store);
        record_budgets(&store, &stops).unwrap();
        assert_eq!(tip(&store), same, "nothing new to record");
        record_budgets(&store, &BTreeMap::new()).unwrap();
        let msg = last_commit(&store, same);
        assert!(msg.starts_with("budget/sprint: reached -> open"), "{msg}");
    }

    #[test]
    fn restart_tester_forgets_the_tester_without_spending_an_attempt() {
        let (_dir, store) = store();
        add_task(&store, "T1");
        edit_task(&store, "T1", |t| {
            t.status = TaskStatus::InTests;
            t.tester = Some("tester-1".into());
            t.attempts = 1;
        });
        let before = tip(&store);
        restart_tester(&store, &r("T1"), "tester-1", Cause::Overloaded, policy()).unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with("f/T1: tester tester-1 failed (overloaded); another in"),
            "{msg}"
        );
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!((t.tester, t.attempts, t.infra_failures), (None, 1, 1));
    }

    fn passed() -> gates::StageOutcome {
        gates::StageOutcome {
            passed: true,
            results: Vec::new(),
            not_run: Vec::new(),
            skipped: Vec::new(),
        }
    }

    fn reviewer(store: &Store, gate: &str) -> Agent {
        claim_reviewer(store, &r("T1"), gate, "scripted", &limits(), |t, id| {
            let mut a = agent(id, &format!("f/{}", t.id), AgentState::Exited);
            a.role = "reviewer".into();
            a
        })
        .unwrap()
        .expect("a reviewer is owed")
    }

    fn judged(verdict: Result<&str, &str>) -> Judged {
        Judged {
            verdict: verdict
                .map(|text| gates::review::parse(text).unwrap())
                .map_err(str::to_owned),
            discarded: None,
        }
    }

    fn in_review(store: &Store) {
        add_task(store, "T1");
        edit_task(store, "T1", |t| {
            t.status = TaskStatus::InReview;
            t.attempts = 1;
            t.runs = 1;
        });
    }

    /// A task whose review commands passed, with a Reviewer for `gates[0]`.
    fn under_review(gates: &[String]) -> (tempfile::TempDir, Store, Agent) {
        let (dir, store) = store();
        in_review(&store);
        record_verdict(
            &store,
            "f",
            "T1",
            GateStage::Review,
            &passed(),
            policy(),
            gates,
        )
        .unwrap();
        let a = reviewer(&store, &gates[0]);
        (dir, store, a)
    }

    #[test]
    fn ai_reviewers_follow_the_review_commands_one_at_a_time_then_tests() {
        let (_dir, store) = store();
        in_review(&store);
        let gates = ["ai".to_owned(), "security".to_owned()];
        let before = tip(&store);
        record_verdict(
            &store,
            "f",
            "T1",
            GateStage::Review,
            &passed(),
            policy(),
            &gates,
        )
        .unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with("f/T1: no review command gate had to run; AI review gate ai next"),
            "{msg}"
        );
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::InReview);
        assert_eq!(t.review, Some(crate::state::Review::default()));

        let first = reviewer(&store, "ai");
        assert_eq!(first.id, "f.T1.review.1");
        let again = claim_reviewer(&store, &r("T1"), "ai", "scripted", &limits(), |_, id| {
            agent(id, "f/T1", AgentState::Starting)
        })
        .unwrap();
        assert!(again.is_none(), "its reviewer is named");
        let before = tip(&store);
        let approve = judged(Ok("verdict: APPROVE"));
        record_review(
            &store,
            &r("T1"),
            &first.id,
            "ai",
            &approve,
            &gates,
            policy(),
        )
        .unwrap();
        let msg = last_commit(&store, before);
        assert!(
            msg.starts_with(
                "f/T1: reviewer f.T1.review.1 approved (review gate ai); AI review gate security next"
            ),
            "{msg}"
        );
        // A stale verdict of the same reviewer changes nothing.
        let stale = tip(&store);
        record_review(
            &store,
            &r("T1"),
            &first.id,
            "ai",
            &approve,
            &gates,
            policy(),
        )
        .unwrap();
        assert_eq!(tip(&store), stale);

        let second = reviewer(&store, "security");
        assert_eq!(second.id, "f.T1.review.1-2", "ids never repeat");
        record_review(
            &store,
            &r("T1"),
            &second.id,
            "security",
            &approve,
            &gates,
            policy(),
        )
        .unwrap();
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::InTests);
        assert_eq!(t.review, None);
        let results: Vec<_> = t
            .gates
            .iter()
            .map(|g| (g.gate.as_str(), g.verdict.as_deref(), g.agent.as_deref()))
            .collect();
        assert_eq!(
            results,
            [
                ("ai", Some("APPROVE"), Some("f.T1.review.1")),
                ("security", Some("APPROVE"), Some("f.T1.review.1-2"))
            ]
        );
    }

    #[test]
    fn a_request_for_changes_or_no_verdict_spends_the_attempt() {
        let gates = ["ai".to_owned()];
        let (_dir, store, a) = under_review(&gates);
        let changes = judged(Ok(
            "verdict: REQUEST_CHANGES\ncomments: [{path: a.rs, line: 3, body: check the bound}]",
        ));
        record_review(&store, &r("T1"), &a.id, "ai", &changes, &gates, policy()).unwrap();
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(
            (t.status, t.cause, t.review.clone()),
            (TaskStatus::InProgress, Some(Cause::Gate), None)
        );
        assert_eq!(
            t.feedback,
            ["review gate ai: the Reviewer (f.T1.review.1) requested changes:\n- a.rs:3: check the bound\n"]
        );
        assert!(!t.gates[0].passed && t.gates[0].comments.len() == 1);

        let (_dir2, store, a) = under_review(&gates);
        let none = judged(Err("the Reviewer gave no verdict"));
        record_review(&store, &r("T1"), &a.id, "ai", &none, &gates, policy()).unwrap();
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::InProgress);
        assert!(t.feedback.is_empty(), "nothing for the developer to fix");
        let reason = t.reason.unwrap_or_default();
        assert!(
            reason.starts_with(
                "review gate ai failed: the Reviewer gave no verdict [gate]; attempt 1 of 3"
            ),
            "{reason}"
        );
        assert_eq!(t.gates[0].verdict, None);
        assert_eq!(
            t.gates[0].output_tail,
            "[git-sprint] the Reviewer gave no verdict"
        );
    }

    #[test]
    fn restart_reviewer_forgets_the_reviewer_without_spending_an_attempt() {
        let gates = ["ai".to_owned()];
        let (_dir, store, a) = under_review(&gates);
        restart_reviewer(&store, &r("T1"), &a.id, Cause::RateLimit, policy()).unwrap();
        let t = task(&store, &r("T1")).unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::InReview);
        assert_eq!(t.review, Some(crate::state::Review::default()));
        assert_eq!((t.attempts, t.infra_failures), (1, 1));
        assert_eq!(reviewer(&store, "ai").id, "f.T1.review.1-2");
    }

    #[test]
    fn leaving_review_by_any_path_ends_its_ai_review() {
        let (_dir, store) = store();
        in_review(&store);
        edit_task(&store, "T1", |t| {
            t.review = Some(crate::state::Review {
                approved: vec!["ai".into()],
                reviewer: None,
            })
        });
        store
            .transact(&Actor::named("person"), |txn| {
                ops::move_task(txn, &r("T1"), TaskStatus::InProgress, Some("by hand"), true)?;
                Ok(())
            })
            .unwrap();
        assert_eq!(task(&store, &r("T1")).unwrap().unwrap().review, None);
    }
}
