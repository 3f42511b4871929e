//! Containment of one agent run, for the `agent-run` wrapper: the sandbox
//! and the saved shared files before the agent starts, and after it ends the
//! leftover processes killed, the shared files put back and the sprint
//! configuration checked — each broken rule a line of the run's `policy`
//! error.
//!
//! The pieces live in `worker/` (`sandbox`, `guard`, `reap`); this module only
//! decides what applies to a worker and says it in the worker's log, so the
//! wrapper needs one call before the spawn and two after the wait.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Fleet, FleetError};
use crate::config::SandboxConfig;
use crate::state::Agent;
use crate::worker::guard::{self, Guard};
use crate::worker::reap;
use crate::worker::sandbox::{Places, Plan, Sandbox, Support};

/// What surrounds one run of an agent.
pub(crate) struct Containment {
    guard: Guard,
    sandbox: Option<Sandbox>,
}

impl Containment {
    /// Saves the shared files and builds the sandbox (when the configuration
    /// asks for it and the kernel has Landlock), telling `log` which.
    pub(crate) fn prepare(
        fleet: &Fleet,
        agent: &Agent,
        worktree: &Path,
        program: &str,
        log: &mut dyn Write,
    ) -> Result<Containment, FleetError> {
        let id = &agent.id;
        let root = fleet.main_worktree().ok();
        let mut settings = sandbox_settings(fleet, root.as_deref(), log, id);
        if agent.role == "reviewer" {
            // Its verdict file's own directory, and no other.
            let verdict = crate::gates::review::verdict_path(&fleet.common_dir, id);
            if let Some(dir) = verdict.parent() {
                settings.writable.push(dir.display().to_string());
            }
        }
        // A shared sprint's agent pushes its commits as it makes them: to
        // a remote that is a path here, that is a write there.
        if let (Some(_), Some(remote)) = (&agent.machine, fleet.store.remote_name()) {
            if let Some(dir) = crate::machines::branches::local_path(&fleet.git, remote) {
                settings.writable.push(dir.display().to_string());
            }
        }
        let hooks_path = root
            .as_deref()
            .and_then(|r| guard::hooks_path(&fleet.git.at(r), r));
        let guard = Guard::take(&fleet.common_dir, worktree, hooks_path.as_deref());
        let support = Support::detect();
        let sandbox = if let Some(line) = support.unconfined_line(settings.enabled) {
            let _ = writeln!(log, "git-sprint: {id}: {line}");
            None
        } else {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let plan = Plan::new(&Places {
                common_dir: &fleet.common_dir,
                worktree,
                main_worktree: root.as_deref(),
                home: home.as_deref(),
                worker: id,
                program,
                writable: &settings.writable,
            })
            .map_err(|e| sandbox_error(id, e))?;
            for note in &plan.notes {
                let _ = writeln!(log, "git-sprint: {id}: {note}");
            }
            let sandbox = Sandbox::build(plan).map_err(|e| sandbox_error(id, e))?;
            match &sandbox {
                Some(s) => {
                    let _ = writeln!(log, "git-sprint: {id}: {}", s.summary());
                }
                None => {
                    let _ = writeln!(
                        log,
                        "git-sprint: {id}: sandbox: Landlock refused the ruleset: the agent runs unconfined"
                    );
                }
            }
            sandbox
        };
        Ok(Containment { guard, sandbox })
    }

    /// The sandbox to start the agent in, if any.
    pub(crate) fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// After the agent ended, before anything runs git in its worktree
    /// again: kills what its tree left running and puts back the shared
    /// files. Returns the policy breaches found.
    pub(crate) fn after_exit(&self, id: &str, mark: &str, log: &mut dyn Write) -> Vec<String> {
        let killed = reap::terminate(
            || {
                let mut pids = reap::descendants();
                pids.extend(reap::marked(mark));
                pids.sort_unstable();
                pids.dedup();
                pids
            },
            reap::GRACE,
        );
        reap::reap_ended_children();
        if killed > 0 {
            let _ = writeln!(
                log,
                "git-sprint: {id}: killed {killed} process{} the agent left running",
                if killed == 1 { "" } else { "es" }
            );
        }
        let mut breaches = Vec::new();
        for change in self.guard.restore() {
            let line = format!("the agent's run left {change}");
            let _ = writeln!(log, "git-sprint: {id}: policy: {line}");
            breaches.push(line);
        }
        breaches
    }

    /// After the WIP commit: the agent's commits may change the sprint's own
    /// configuration only when its task names the file.
    pub(crate) fn after_commit(
        &self,
        fleet: &Fleet,
        agent: &Agent,
        worktree: &Path,
        log: &mut dyn Write,
    ) -> Vec<String> {
        // Fleet workers have no task to name files: a person started them
        // for whatever they asked, and nothing merges their branch unasked.
        if agent.task.is_none() {
            return Vec::new();
        }
        // The commit it started from, else what it branched from (sprint
        // workers: the integration branch, compared from the merge base).
        let base = agent.base_commit.as_deref().unwrap_or(&agent.base);
        let git = fleet.git.at(worktree);
        match guard::config_changes(&git, base, "HEAD", &agent.paths) {
            Ok(files) => files
                .into_iter()
                .map(|f| {
                    let line = format!(
                        "the agent's commits change {f}, which its task does not name (gates and policy come from it)"
                    );
                    let _ = writeln!(log, "git-sprint: {}: policy: {line}", agent.id);
                    line
                })
                .collect(),
            Err(e) => {
                let _ = writeln!(
                    log,
                    "git-sprint: {}: could not check the agent's commits for configuration changes: {e}",
                    agent.id
                );
                Vec::new()
            }
        }
    }
}

/// How agents of this repository run: `landlock ABI 7`, `off`, or
/// `unavailable: …`, and the line to print when they run unconfined.
pub(crate) fn sandbox_status(fleet: &Fleet) -> (String, Option<String>) {
    let enabled = fleet
        .main_worktree()
        .ok()
        .and_then(|root| crate::config::load(&root, &fleet.common_dir).ok())
        .is_none_or(|l| l.config.sandbox.enabled);
    let support = Support::detect();
    let status = if enabled {
        support.describe()
    } else {
        "off".to_owned()
    };
    (status, support.unconfined_line(enabled))
}

/// The `sandbox` section of the configuration; its defaults (on) when the
/// configuration cannot be read, since confinement fails safe.
fn sandbox_settings(
    fleet: &Fleet,
    root: Option<&Path>,
    log: &mut dyn Write,
    id: &str,
) -> SandboxConfig {
    let Some(root) = root else {
        return SandboxConfig::default();
    };
    match crate::config::load(root, &fleet.common_dir) {
        Ok(loaded) => loaded.config.sandbox,
        Err(e) => {
            let _ = writeln!(
                log,
                "git-sprint: {id}: reading the configuration: {e}; the sandbox keeps its defaults"
            );
            SandboxConfig::default()
        }
    }
}

fn sandbox_error(id: &str, e: crate::worker::sandbox::SandboxError) -> FleetError {
    FleetError::Sandbox {
        worker: id.to_owned(),
        source: e,
    }
}
