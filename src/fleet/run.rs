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
//! Recording the end is an operation on the record as it is then: when the
//! record is gone (`kill` removed it), nothing is written.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;

use super::{sys, Fleet, FleetError, Result};
use crate::clock;
use crate::state::{Actor, Agent, AgentState, Transition};
use crate::worker::profile::{AgentProfile, RenderInput};

/// How an agent ended, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// The exit code, or `128 + signal` when a signal ended it.
    pub exit_status: i32,
    pub signal: Option<i32>,
    /// The WIP commit made of uncommitted work, if there was any.
    pub wip_commit: Option<String>,
    /// Whether a signal to the wrapper (a kill) ended the run.
    pub killed: bool,
}

/// Runs worker `id`'s agent to its end and records it; `log` gets the
/// wrapper's own messages (the pane, which tmux copies to the log file).
pub fn agent_run(fleet: &Fleet, id: &str, log: &mut dyn Write) -> Result<RunEnd> {
    sys::forward_terminating_signals();
    let agent = fleet.agent(id)?;
    let actor = Actor::named(id);
    let worktree = std::path::PathBuf::from(&agent.worktree);
    let profile = match &agent.launch {
        Some(p) => p.clone(),
        None => AgentProfile::preset(&agent.profile).map_err(|source| FleetError::Profile {
            worker: id.to_owned(),
            source,
        })?,
    };
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
    // Where the agent's work begins, for `list` (the engine's records have none).
    let start_tip = fleet.branch_tip(&agent.branch).map(|t| t.to_string());
    let mut child = match launch.spawn(&worktree) {
        Ok(c) => c,
        Err(source) => {
            let err = FleetError::Profile {
                worker: id.to_owned(),
                source,
            };
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

    let status = child.wait().map_err(|source| FleetError::Io {
        action: "waiting for the agent in",
        path: worktree.clone(),
        source,
    })?;
    let signal = status.signal();
    let exit_status = status.code().unwrap_or(128 + signal.unwrap_or(0));
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
    let end = RunEnd {
        exit_status,
        signal,
        wip_commit,
        killed: sys::received().is_some(),
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
            .map(|c| format!("; uncommitted work saved as {}", &c[..c.len().min(7)]))
            .unwrap_or_default()
    );
    Ok(end)
}

/// Records how worker `id` ended, if its record still exists.
pub fn record_end(fleet: &Fleet, actor: &Actor, id: &str, end: &RunEnd) -> Result<Option<Agent>> {
    let now = clock::now();
    let done = fleet.store.transact(actor, |txn| {
        let Some(mut a) = txn.agent(id)? else {
            return Ok(None);
        };
        let from = a.state.to_string();
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
        txn.put_agent(&a)?;
        let ok = a.exit_status == Some(0) && a.cause.is_none();
        crate::state::ops::account_run(txn, &a.profile, id, ok, a.cause, a.error.as_deref())?;
        let to = super::describe(&a);
        txn.subject(format!("{id}: {from} -> {to}"));
        txn.record(Transition {
            task: id.to_owned(),
            from,
            to: a.state.to_string(),
            reason: Some(match &end.wip_commit {
                Some(c) => format!("{to}; uncommitted work saved as {c}"),
                None => to.clone(),
            }),
            policy: None,
        });
        Ok(Some(a))
    })?;
    Ok(done.value)
}
