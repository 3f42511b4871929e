//! `agent-run`: the wrapper each tmux pane runs around one agent.
//!
//! It reads the worker's record, writes the prompt to
//! `$GIT_COMMON_DIR/sprint/prompts/<id>.md`, renders the profile, runs the
//! agent as a child (with `SPRINT_TASK`, `SPRINT_WORKER`, `SPRINT_BRANCH` and
//! `SPRINT_PATHS`), records `running` with its pid, waits, commits whatever
//! the agent left uncommitted as a WIP commit, and records the end — all
//! under the worker's own name as actor. SIGHUP (tmux killing the session),
//! SIGTERM and SIGINT are passed to the agent and do not stop the wrapper
//! before the work is saved and the end recorded.
//!
//! The agent's stdout and stderr come through the wrapper ([`super::output`]):
//! the pane shows a readable transcript, each line is a sign of life, and the
//! end records what the run cost (`usage`) and, when it failed, why (`cause`,
//! `error`), adding its tokens and cost to the task it worked on.
//!
//! Around the run (`contain.rs`), the agent is confined by the sandbox, and
//! when it ends, whatever its tree left running is killed and any shared file
//! it changed is put back before git runs in its worktree again; a broken rule
//! makes the run's cause `policy`.
//!
//! Recording the end is an operation on the record as it is then: when the
//! record is gone (`kill` removed it), nothing is written.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::time::Instant;

use super::contain::Containment;
use super::output::{self, Liveness};
use super::{sys, Fleet, FleetError, Result};
use crate::clock;
use crate::state::{Actor, Agent, AgentState, Cause, Transition, Usage};
use crate::worker::profile::{AgentProfile, RenderInput};
use crate::worker::reap;
use crate::worker::stream::{self, Exit, StreamReader};

/// How an agent ended, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunEnd {
    /// The exit code, or `128 + signal` when a signal ended it.
    pub(crate) exit_status: i32,
    pub(crate) signal: Option<i32>,
    /// The WIP commit made of uncommitted work, if there was any.
    pub(crate) wip_commit: Option<String>,
    /// Whether a signal to the wrapper (a kill) ended the run.
    pub(crate) killed: bool,
    /// What the run cost, from the agent's output.
    pub(crate) usage: Option<Usage>,
    /// Why it failed, when it did.
    pub(crate) cause: Option<Cause>,
    /// The CLI's own line for `cause`.
    pub(crate) error: Option<String>,
    /// The rules the run broke (shared files changed, sprint configuration
    /// committed), as one line: the run's cause is then `policy`.
    pub(crate) policy: Option<String>,
}

/// Runs worker `id`'s agent to its end and records it; `log` gets the
/// wrapper's own messages (the pane, which tmux copies to the log file).
pub(crate) fn agent_run(fleet: &Fleet, id: &str, log: &mut dyn Write) -> Result<RunEnd> {
    sys::forward_terminating_signals();
    // Orphans of the agent's tree (`setsid`, double forks) are re-parented
    // to the wrapper, which kills them when the agent ends.
    if let Err(e) = reap::become_subreaper() {
        let _ = writeln!(
            log,
            "git-sprint: {id}: cannot adopt the agent's orphans: {e}"
        );
    }
    let agent = fleet.agent(id)?;
    let actor = Actor::named(id);
    let worktree = std::path::PathBuf::from(&agent.worktree);
    let profile = match &agent.launch {
        Some(launch) => AgentProfile::try_from(launch),
        None => AgentProfile::preset(&agent.profile),
    }
    .map_err(|source| FleetError::Profile {
        worker: id.to_owned(),
        source,
    })?;
    let prompt_file = fleet.prompt_path(id);
    if let Some(dir) = prompt_file.parent() {
        std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(&prompt_file, &agent.prompt).map_err(|source| FleetError::Io {
        action: "writing the prompt to",
        path: prompt_file.clone(),
        source,
    })?;
    let mut env = vec![
        (
            "SPRINT_TASK".to_owned(),
            agent.task.clone().unwrap_or_else(|| id.to_owned()),
        ),
        ("SPRINT_WORKER".to_owned(), id.to_owned()),
        ("SPRINT_BRANCH".to_owned(), agent.branch.clone()),
    ];
    if !agent.paths.is_empty() {
        env.push(("SPRINT_PATHS".to_owned(), agent.paths.join("\n")));
    }
    // A Reviewer's verdict goes to a file of its own outside the worktree;
    // one left by an earlier run of the same id is no verdict of this one.
    let verdict = (agent.role == "reviewer")
        .then(|| crate::gates::review::verdict_path(&fleet.common_dir, id));
    if let Some(path) = &verdict {
        let _ = std::fs::remove_file(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
                action: "creating",
                path: dir.to_owned(),
                source,
            })?;
        }
        env.push((
            crate::gates::review::VERDICT_ENV.to_owned(),
            path.display().to_string(),
        ));
    }
    let mark = fleet.process_mark(id);
    env.push((reap::MARK_ENV.to_owned(), mark.clone()));
    let launch = profile
        .render(&RenderInput {
            prompt: &agent.prompt,
            prompt_file: &prompt_file,
            worktree: &worktree,
            model: agent.model.as_deref(),
            env: &env,
        })
        .map_err(|source| FleetError::Profile {
            worker: id.to_owned(),
            source,
        })?;
    let _ = writeln!(log, "git-sprint: {id}: starting {}", launch.program());
    // The committed config (the base branch's), for the lease and prices.
    let config = crate::config::load_from(fleet.store.repo(), None)
        .map(|l| l.config)
        .unwrap_or_else(|e| {
            let _ = writeln!(
                log,
                "git-sprint: {id}: reading the configuration: {e}; using the defaults"
            );
            crate::config::Config::default()
        });
    // Where the agent's work begins, for `list` (the engine's records have none).
    let start_tip = fleet.branch_tip(&agent.branch).map(|t| t.to_string());
    let started = Instant::now();
    let spawned = Containment::prepare(fleet, &agent, &worktree, &launch.program(), log).and_then(
        |contained| {
            let child = launch
                .spawn_confined(&worktree, contained.sandbox())
                .map_err(|source| FleetError::Profile {
                    worker: id.to_owned(),
                    source,
                })?;
            Ok((contained, child))
        },
    );
    let (contained, child) = match spawned {
        Ok(spawned) => spawned,
        Err(err) => {
            // Record the failed start so the worker is not left `starting`.
            record_end(
                fleet,
                &actor,
                id,
                &RunEnd {
                    exit_status: 127,
                    signal: None,
                    wip_commit: None,
                    killed: false,
                    usage: None,
                    cause: Some(Cause::Setup),
                    error: Some(err_chain(&err)),
                    policy: None,
                },
            )?;
            return Err(err);
        }
    };
    sys::set_child(child.id());
    let pid = child.id();
    let me = std::process::id();
    fleet.store.transact(&actor, |txn| {
        let Some(mut a) = txn.agent(id)? else {
            return Ok(());
        };
        let from = a.state.to_string();
        a.state = AgentState::Running;
        a.pid = Some(pid);
        a.runner_pid = Some(me);
        a.heartbeat = clock::now();
        if a.base_commit.is_none() {
            a.base_commit = start_tip.clone();
        }
        txn.put_agent(&a)?;
        txn.subject(format!("{id}: {from} -> running"));
        txn.record(Transition {
            task: id.to_owned(),
            from,
            to: "running".into(),
            reason: Some(format!("agent pid {pid}")),
            policy: None,
        });
        Ok(())
    })?;

    let mut reader = StreamReader::new(profile.output);
    let mut liveness = Liveness::new(fleet, &actor, id, config.timeouts.lease.0);
    let status = output::follow(child, &mut reader, &mut liveness, log).map_err(|source| {
        FleetError::Io {
            action: "waiting for the agent in",
            path: worktree.clone(),
            source,
        }
    })?;
    let signal = status.signal();
    let exit_status = status.code().unwrap_or(128 + signal.unwrap_or(0));
    let killed = sys::received().is_some();
    if let Some(path) = verdict.as_deref().filter(|p| !p.exists()) {
        // A CLI that cannot write files ends its final message with the
        // verdict: the CAB reads one place.
        if let Some(block) = crate::gates::review::from_message(reader.final_message()) {
            if let Err(e) = std::fs::write(path, block) {
                let _ = writeln!(
                    log,
                    "git-sprint: {id}: could not keep the verdict from the final message: {e}"
                );
            }
        }
    }
    let outcome = reader.finish(
        &Exit {
            status: exit_status,
            signal,
            killed,
            elapsed_ms: started.elapsed().as_millis() as u64,
        },
        &config.prices,
        agent.model.as_deref().or(profile.model.as_deref()),
    );
    // Before git runs in the worktree again: a planted fsmonitor or hook
    // would run here, outside the sandbox.
    let mut breaches = contained.after_exit(id, &mark, log);
    let wip_commit = fleet
        .save_wip(
            &worktree,
            id,
            &format!(
                "WIP: {id}: uncommitted work when the agent ended ({})\n\nSaved by git-sprint so that no work is lost.",
                match signal {
                    Some(s) => format!("signal {s}"),
                    None => format!("exit {exit_status}"),
                }
            ),
        )
        .map_err(FleetError::from);
    let wip_commit = match wip_commit {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                log,
                "git-sprint: {id}: could not save uncommitted work: {e}"
            );
            None
        }
    };
    breaches.extend(contained.after_commit(fleet, &agent, &worktree, log));
    // Clones sharing the sprint: the work leaves this machine before its
    // end is recorded, so whichever machine acts on the end finds it.
    share_work(fleet, &agent, log);
    let policy = (!breaches.is_empty()).then(|| breaches.join("; "));
    let end = RunEnd {
        exit_status,
        signal,
        wip_commit,
        killed,
        usage: Some(outcome.usage),
        // A broken rule outweighs whatever else the run reported.
        cause: if policy.is_some() {
            Some(Cause::Policy)
        } else {
            outcome.cause
        },
        error: policy.clone().or(outcome.error),
        policy,
    };
    record_end(fleet, &actor, id, &end)?;
    let _ = writeln!(
        log,
        "git-sprint: {id}: agent {}{}",
        match signal {
            Some(s) => format!("ended by signal {s}"),
            None => format!("exited {exit_status}"),
        },
        end.wip_commit
            .as_ref()
            .map(|c| format!("; uncommitted work saved as {}", crate::names::short_id(c)))
            .unwrap_or_default()
    );
    if let Some(u) = end.usage.as_ref().filter(|u| u.tokens() > 0) {
        let _ = writeln!(log, "git-sprint: {id}: {}", stream::describe_usage(u));
    }
    if let (Some(cause), Some(error)) = (end.cause, &end.error) {
        let _ = writeln!(log, "git-sprint: {id}: {cause}: {error}");
    }
    Ok(end)
}

/// Pushes the branch of an agent a shared sprint's orchestrator started
/// (its record names its machine) to the state's remote: forced while the
/// record says it still runs (a Reviewer's discarded edits rewind a
/// branch), else only as a fast-forward, so a machine whose task was taken
/// over never overwrites the new holder's work.
fn share_work(fleet: &Fleet, agent: &Agent, log: &mut dyn Write) {
    let (Some(remote), Some(_)) = (fleet.store.remote_name(), agent.machine.as_deref()) else {
        return;
    };
    let holder = fleet
        .agent(&agent.id)
        .is_ok_and(|a| crate::state::liveness::is_running(&a));
    let git = crate::worker::worktree::Git::new(&agent.worktree);
    match crate::machines::branches::push(&git, remote, &agent.branch, holder) {
        Ok(true) => {}
        Ok(false) => {
            let _ = writeln!(
                log,
                "git-sprint: {}: {} moved on elsewhere; this work stays on this machine",
                agent.id, agent.branch
            );
        }
        Err(e) => {
            let _ = writeln!(log, "git-sprint: {}: {e}", agent.id);
        }
    }
}

/// An error and its causes on one line, for a record.
fn err_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Records how worker `id` ended, if its record still exists.
pub(crate) fn record_end(
    fleet: &Fleet,
    actor: &Actor,
    id: &str,
    end: &RunEnd,
) -> Result<Option<Agent>> {
    let now = clock::now();
    let done = fleet.store.transact(actor, |txn| {
        let Some(mut a) = txn.agent(id)? else {
            return Ok(None);
        };
        // Its machine was lost and its task went elsewhere: that record
        // stands (the run's late end changes nothing it says).
        if a.cause == Some(Cause::MachineLost) {
            return Ok(None);
        }
        let from = a.state.to_string();
        // Paid once per run: when its usage is first recorded, whoever
        // recorded the end first (a reconcile may mark the agent ended
        // before its wrapper gets here).
        let unpaid = a.usage.is_none();
        a.state = if end.killed {
            AgentState::Killed
        } else {
            AgentState::Exited
        };
        a.ended = Some(now);
        a.exit_status = Some(end.exit_status);
        if let Some(tip) = fleet.branch_tip(&a.branch) {
            a.end_commit = Some(tip.to_string());
        }
        a.signal = end.signal;
        if end.wip_commit.is_some() {
            a.wip_commit = end.wip_commit.clone();
        }
        a.usage = end.usage.clone();
        a.cause = end.cause;
        a.error = end.error.clone();
        txn.put_agent(&a)?;
        // The task pays for every run on it, once.
        if let (true, Some(u), Some(r)) = (unpaid, &end.usage, output::task_of(&a)) {
            if let Some(mut t) = txn.task(&r.feature, &r.id)? {
                t.tokens += u.tokens();
                t.cost_usd += u.cost_usd.unwrap_or(0.0);
                txn.put_task(&r.feature, &t)?;
            }
        }
        let ok = a.exit_status == Some(0) && a.cause.is_none();
        crate::state::ops::account_run(txn, &a.profile, id, ok, a.cause, a.error.as_deref())?;
        let to = super::describe(&a);
        txn.subject(format!("{id}: {from} -> {to}"));
        let mut reason = to.clone();
        if let Some(cause) = end.cause {
            reason.push_str(&format!(" ({cause}"));
            if let Some(error) = &end.error {
                reason.push_str(&format!(": {error}"));
            }
            reason.push(')');
        }
        if let Some(c) = &end.wip_commit {
            reason.push_str(&format!("; uncommitted work saved as {c}"));
        }
        txn.record(Transition {
            task: id.to_owned(),
            from,
            to: a.state.to_string(),
            reason: Some(reason),
            // A broken rule is a policy decision of the audit trail.
            policy: end.policy.clone(),
        });
        Ok(Some(a))
    })?;
    Ok(done.value)
}
