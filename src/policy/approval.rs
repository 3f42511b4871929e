//! A person's answer to a task parked in `awaiting_approval`: `approve`
//! sends it on to the merge, `reject` sends it back to the Developer with
//! the reason as feedback (an attempt with cause `policy`). Each is one
//! state commit carrying its decision records.

use super::{Decision, Verdict};
use crate::daemon::record::{end_attempt, AttemptPolicy};
use crate::state::{ops, Actor, Cause, Refusal, StateError, Store, Task, TaskRef, TaskStatus, Txn};

/// The task `name` names, if it waits for approval.
fn waiting(txn: &Txn<'_>, name: &str) -> Result<(TaskRef, Task), StateError> {
    let r = ops::resolve(txn, name)?;
    let t = ops::load(txn, &r)?;
    if t.status != TaskStatus::AwaitingApproval {
        return Err(Refusal::NotAwaitingApproval {
            task: r.to_string(),
            status: t.status,
        }
        .into());
    }
    Ok((r, t))
}

/// One record per rule that asked for the approval.
fn records(
    t: &Task,
    subject: &str,
    verdict: Verdict,
    actor: &str,
    reason: Option<&str>,
) -> Vec<Decision> {
    let approval = t.approval.clone().unwrap_or_default();
    let rules = if approval.rules.is_empty() {
        vec!["approval".to_owned()]
    } else {
        approval.rules.clone()
    };
    rules
        .iter()
        .map(|rule| {
            let mut d = Decision::new(rule, subject, verdict, actor);
            if !approval.matched.is_empty() {
                d.inputs
                    .insert("matched".into(), serde_json::json!(approval.matched));
            }
            d.reason = reason.map(str::to_owned);
            d
        })
        .collect()
}

/// Approves the task `name` as `actor`: on to `in_docs`, where the Refinery
/// merges it.
pub(crate) fn approve(
    store: &Store,
    name: &str,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<(TaskRef, Task), StateError> {
    let done = store.transact(actor, |txn| {
        let (r, mut t) = waiting(txn, name)?;
        let subject = r.to_string();
        for d in records(&t, &subject, Verdict::ApprovalGranted, &actor.name, reason) {
            txn.decide(&d);
        }
        if let Some(a) = t.approval.as_mut() {
            a.by = Some(actor.name.clone());
            a.reason = reason.map(str::to_owned);
        }
        txn.put_task(&r.feature, &t)?;
        let why = match reason {
            Some(why) => format!("approved by {}: {why}", actor.name),
            None => format!("approved by {}", actor.name),
        };
        let t = ops::move_task(txn, &r, TaskStatus::InDocs, Some(&why), false)?;
        txn.record_policy_note(&subject, &format!("approval granted by {}", actor.name));
        Ok((r, t))
    })?;
    Ok(done.value)
}

/// Rejects the task `name` as `actor`: back to the Developer with `reason`
/// as feedback; the attempt counts (cause `policy`), so a task rejected past
/// its attempt limit fails.
pub(crate) fn reject(
    store: &Store,
    name: &str,
    actor: &Actor,
    reason: &str,
    policy: AttemptPolicy,
) -> Result<(TaskRef, Task), StateError> {
    let done = store.transact(actor, |txn| {
        let (r, mut t) = waiting(txn, name)?;
        let subject = r.to_string();
        for d in records(
            &t,
            &subject,
            Verdict::ApprovalRejected,
            &actor.name,
            Some(reason),
        ) {
            txn.decide(&d);
        }
        t.approval = None;
        txn.put_task(&r.feature, &t)?;
        let note = format!("approval rejected by {}: {reason}", actor.name);
        end_attempt(
            txn,
            &r,
            None,
            Cause::Policy,
            &note,
            Some(format!(
                "{} rejected this change before the merge: {reason}\nRework it to answer that.",
                actor.name
            )),
            policy,
            TaskStatus::InProgress,
        )?;
        txn.record_policy_note(&subject, &format!("approval rejected by {}", actor.name));
        let t = ops::load(txn, &r)?;
        Ok((r, t))
    })?;
    Ok(done.value)
}
