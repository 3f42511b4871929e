//! Worker records against reality: [`Fleet::reconcile`] records a worker
//! whose session and wrapper are both gone as `dead`, and [`Fleet::status`]
//! measures each worker's progress and resource use for `list`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::{alive, is_runner_of, Fleet, FleetError, Result};
use crate::clock;
use crate::state::{Actor, Agent, AgentState};
use crate::worker::procstat::{self, Snapshot};

impl Fleet {
    /// Worker `id` as reality has it (see [`Fleet::reconcile`]), and whether
    /// its session is alive.
    pub(crate) fn worker(&self, actor: &Actor, id: &str) -> Result<(Agent, bool)> {
        let (agents, sessions) = self.reconcile(actor)?;
        let known = || agents.iter().map(|a| a.id.clone()).collect();
        // A finished sprint agent is archived: still a known worker.
        if !agents.iter().any(|a| a.id == id) {
            if let Some(a) = self.store.read(|txn| txn.archived_agent(id))? {
                return Ok((a, false));
            }
        }
        let a = agents
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| FleetError::UnknownWorker {
                id: id.to_owned(),
                known: known(),
            })?;
        let live = sessions.contains(&a.session);
        Ok((a.clone(), live))
    }

    /// Worker `id`, refusing when its session is not running.
    pub(crate) fn running_worker(&self, actor: &Actor, id: &str) -> Result<Agent> {
        match self.worker(actor, id)? {
            (a, true) => Ok(a),
            (a, false) => Err(FleetError::NotRunning {
                id: a.id.clone(),
                state: describe(&a),
            }),
        }
    }

    /// Compares the records with tmux and `/proc`: a `starting` or `running`
    /// worker whose session is gone and whose wrapper is not alive is
    /// recorded `dead` (one commit for all, only when something changed),
    /// unless it is being launched (see [`liveness::launching`]).
    /// Returns the records as they are after that, and the live session names.
    ///
    /// [`liveness::launching`]: crate::state::liveness::launching
    pub(crate) fn reconcile(&self, actor: &Actor) -> Result<(Vec<Agent>, HashSet<String>)> {
        let agents = self.agents()?;
        let sessions: HashSet<String> = self.tmux.list_sessions()?.into_iter().collect();
        let now = crate::clock::now();
        let gone = |a: &Agent| {
            crate::state::liveness::is_running(a)
                && !sessions.contains(&a.session)
                && !crate::state::liveness::launching(a, now)
                && !a.runner_pid.is_some_and(|p| match a.state {
                    // The wrapper, unless its pid went to another process.
                    AgentState::Running => is_runner_of(p, &a.id),
                    // The spawner, still making the session.
                    _ => alive(p),
                })
        };
        if !agents.iter().any(gone) {
            return Ok((agents, sessions));
        }
        let done = self.store.transact(actor, |txn| {
            let mut dead = Vec::new();
            for id in txn.agent_ids()? {
                let Some(a) = txn.agent(&id)? else {
                    continue;
                };
                if !gone(&a) {
                    continue;
                }
                crate::state::ops::agent_dead(
                    txn,
                    &id,
                    crate::state::Cause::Crash,
                    "tmux session gone and no wrapper process",
                )?;
                dead.push(a.id.clone());
            }
            if !dead.is_empty() {
                txn.subject(format!(
                    "fleet: {} dead (tmux session gone)",
                    dead.join(", ")
                ));
            }
            Ok(())
        })?;
        let _ = done;
        Ok((self.agents()?, sessions))
    }

    /// Everything `list` shows, after reconciling. CPU is measured over
    /// `interval`, only when some agent is running.
    pub(crate) fn status(&self, actor: &Actor, interval: Duration) -> Result<Vec<WorkerStatus>> {
        let (_, sessions) = self.reconcile(actor)?;
        // Archived (finished) sprint agents are listed too, as before the
        // archive; a live-only view leaves out `Txn::archived_agent_ids`.
        let agents = self.all_agents()?;
        let now = clock::now();
        let progress = self.progress(&agents);
        let running: Vec<u32> = agents
            .iter()
            .filter(|a| crate::state::liveness::is_running(a))
            .filter_map(|a| a.runner_pid.filter(|p| alive(*p)))
            .collect();
        let usage: BTreeMap<u32, procstat::TreeUsage> = if running.is_empty() {
            BTreeMap::new()
        } else {
            let before = Snapshot::take().ok();
            std::thread::sleep(interval);
            let after = Snapshot::take().ok();
            match (before, after) {
                (Some(b), Some(a)) => running
                    .iter()
                    .filter_map(|p| procstat::usage(&b, &a, *p).map(|u| (*p, u)))
                    .collect(),
                _ => BTreeMap::new(),
            }
        };
        Ok(agents
            .into_iter()
            .zip(progress)
            .map(|(a, (ahead, files))| {
                let u = a.runner_pid.and_then(|p| usage.get(&p));
                WorkerStatus {
                    state: describe(&a),
                    session: sessions.contains(&a.session),
                    age_secs: now - a.started,
                    ahead,
                    files_changed: files,
                    cpu_percent: u.map(|u| (u.cpu_percent * 10.0).round() / 10.0),
                    rss_bytes: u.map(|u| u.rss_bytes),
                    log: self.log_path(&a.id).display().to_string(),
                    agent: a,
                }
            })
            .collect())
    }

    /// The commit branch `branch` points at, if it exists.
    pub(crate) fn branch_tip(&self, branch: &str) -> Option<gix::ObjectId> {
        self.store
            .repo()
            .try_find_reference(format!("refs/heads/{branch}").as_str())
            .ok()
            .flatten()
            .and_then(|mut r| r.peel_to_id().ok().map(|id| id.detach()))
    }

    /// Commits ahead of the base and files changed, per agent: one revision
    /// walk in-process each, and one `git diff-tree --stdin` for all.
    fn progress(&self, agents: &[Agent]) -> Vec<(Option<usize>, Option<usize>)> {
        let repo = self.store.repo();
        let mut tips = Vec::new();
        for a in agents {
            // An agent that ended is measured at its end: the branch may have
            // moved on (a Tester after a Developer) or be gone (merged).
            let end = a
                .end_commit
                .as_deref()
                .and_then(|c| gix::ObjectId::from_hex(c.as_bytes()).ok());
            let tip = end.or_else(|| self.branch_tip(&a.branch));
            let base = a
                .base_commit
                .as_deref()
                .and_then(|b| gix::ObjectId::from_hex(b.as_bytes()).ok());
            tips.push(tip.zip(base));
        }
        let ahead: Vec<Option<usize>> = tips
            .iter()
            .map(|pair| {
                let (tip, base) = (*pair)?;
                if tip == base {
                    return Some(0);
                }
                let walk = repo.rev_walk([tip]).with_hidden([base]).all().ok()?;
                Some(walk.filter(|c| c.is_ok()).count())
            })
            .collect();
        let files = self.files_changed(&tips);
        ahead.into_iter().zip(files).collect()
    }

    fn files_changed(
        &self,
        pairs: &[Option<(gix::ObjectId, gix::ObjectId)>],
    ) -> Vec<Option<usize>> {
        let mut out: Vec<Option<usize>> = pairs
            .iter()
            .map(|p| {
                p.map(|(t, b)| if t == b { Some(0) } else { None })
                    .unwrap_or(None)
            })
            .collect();
        // Lines `<tip> <base>`: diff-tree prints `<tip>` and then the names,
        // for each pair with a difference, in input order.
        let todo: Vec<usize> = (0..pairs.len())
            .filter(|i| pairs[*i].is_some() && out[*i].is_none())
            .collect();
        if todo.is_empty() {
            return out;
        }
        let mut input = String::new();
        for &i in &todo {
            let (t, b) = pairs[i].expect("filtered");
            input.push_str(&format!("{t} {b}\n"));
        }
        let result = (|| -> std::io::Result<String> {
            use std::io::Write;
            let mut child = self
                .git
                .command(["diff-tree", "--stdin", "-r", "--name-only", "--no-renames"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()?;
            let mut stdin = child.stdin.take().expect("piped");
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
            let output = child.wait_with_output()?;
            let _ = writer.join();
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        })();
        let Ok(text) = result else { return out };
        for &i in &todo {
            out[i] = Some(0);
        }
        let mut k = 0;
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let parsed = gix::ObjectId::from_hex(line.as_bytes()).ok();
            // Advance to the next pending pair whose tip this header names.
            let header = todo[k..]
                .iter()
                .position(|&i| pairs[i].is_some_and(|(t, _)| Some(t) == parsed));
            if let Some(off) = header {
                current = Some(todo[k + off]);
                k += off + 1;
                continue;
            }
            if let Some(i) = current {
                if !line.is_empty() {
                    out[i] = Some(out[i].unwrap_or(0) + 1);
                }
            }
        }
        out
    }
}

/// `running`, `exited 0`, `killed (SIGHUP)`, `dead`, `starting`.
pub(crate) fn describe(a: &Agent) -> String {
    match a.state {
        AgentState::Exited | AgentState::Killed => match (a.signal, a.exit_status) {
            (Some(sig), _) => format!("{} (signal {sig})", a.state),
            (None, Some(code)) => format!("{} {code}", a.state),
            (None, None) => a.state.to_string(),
        },
        s => s.to_string(),
    }
}

/// One row of `list`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkerStatus {
    #[serde(flatten)]
    pub(crate) agent: Agent,
    /// `running`, `exited 0`, `dead`, …
    #[serde(rename = "status")]
    pub(crate) state: String,
    /// Whether its tmux session exists.
    #[serde(rename = "session_alive")]
    pub(crate) session: bool,
    pub(crate) age_secs: i64,
    pub(crate) ahead: Option<usize>,
    pub(crate) files_changed: Option<usize>,
    pub(crate) cpu_percent: Option<f64>,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) log: String,
}
