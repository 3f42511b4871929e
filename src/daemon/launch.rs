//! Starting and stopping agents: a task's worktree and its setup, the
//! prompt's variables, the state transaction that claims the task (in
//! [`super::record`]), and the agent's tmux session. Stopping a running one
//! keeps its work. Jobs that run beside the loop (gates, merges, syncs)
//! live in [`super::jobs`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::engine::{task_ref, Engine, EngineError};
use super::record;
use crate::clock;
use crate::fleet::session_name;
use crate::prompt;
use crate::skills::{deliver, Skill};
use crate::stages::{self, agent_id, librarian, task_branch};
use crate::state::{liveness, Agent, AgentState, Cause, Snapshot, Task, TaskRef};

impl Engine {
    /// The task's worktree on `sprint/<feature>/<task>`, made from the
    /// integration branch the first time and kept across attempts, once its
    /// setup has run. `None`: its setup commands run on a job thread now
    /// (they may take minutes; the loop goes on), and the job's end wakes
    /// the loop to look again. A setup that fails or times out is recorded
    /// against `task` by the job, when the task is a developer's to start.
    pub(super) fn ensure_worktree(
        &self,
        feature: &str,
        task: &str,
        integration: &str,
        setup_fails: Option<&TaskRef>,
    ) -> Result<Option<PathBuf>, EngineError> {
        let path = self.task_worktree(feature, task);
        let key = stages::key(feature, task);
        if self.busy.keys().contains(&key) {
            return Ok(None); // its setup runs, or waits after a failure
        }
        if fs_exists(&path) {
            match unready(&path, &task_branch(feature, task)) {
                None => return Ok(Some(path)),
                Some(why) => {
                    tracing::warn!(worktree = %path.display(), "task worktree made again: {why}");
                    self.fleet.pool.discard(&self.fleet.git, &path);
                }
            }
        }
        self.add_worktree(&path, feature, task, integration)?;
        let Some(marker) = setup_marker(&path) else {
            return Err(EngineError::Other(format!(
                "{} is not a linked worktree after `git worktree add`",
                path.display()
            )));
        };
        let setup = &self.config.setup;
        if setup.commands.is_empty() {
            // Copying files is quick: done here, no job needed.
            match crate::worker::worktree::setup(
                &self.root,
                &path,
                &setup.copy,
                &[],
                setup.timeout.0,
            ) {
                Ok(report) => {
                    warn_skipped(&path, &report);
                    // Unmarked, it would be made again at every look.
                    if let Err(e) = std::fs::write(&marker, "") {
                        remove_half_made(&self.root, &path);
                        return Err(EngineError::Other(format!(
                            "cannot mark the setup of {} done in {}: {e}",
                            path.display(),
                            marker.display()
                        )));
                    }
                    return Ok(Some(path));
                }
                Err(e) => {
                    remove_half_made(&self.root, &path);
                    return Err(e.into());
                }
            }
        }
        self.spawn_setup(key, path, marker, setup_fails.cloned());
        Ok(None)
    }

    /// The task's branch (made from `integration` the first time) in a
    /// worktree from the pool or a new one at `path`, where nothing is;
    /// fast, so it runs on the loop.
    fn add_worktree(
        &self,
        path: &Path,
        feature: &str,
        task: &str,
        integration: &str,
    ) -> Result<(), EngineError> {
        let branch = task_branch(feature, task);
        let git = &self.fleet.git;
        // git keeps a record per worktree, named after its directory; one
        // left for this path would fail `git worktree add`. Without one
        // there is nothing to prune (a process each task saved).
        let common = &self.fleet.common_dir;
        if has_worktree_record(common, path) {
            let _ = git.command(["worktree", "prune"]).output();
        }
        // A lock on the task's branch can only be left by a process killed
        // while writing it (an orchestrator in `git worktree add`, an agent
        // committing): while its task has no agent nothing writes the
        // branch, and `git worktree add` would fail on it every attempt.
        let ref_lock = common.join(format!("refs/heads/{branch}.lock"));
        match crate::state::clear_leftover_lock(&ref_lock, common) {
            Ok(Some(gone)) => tracing::warn!(
                lock = %gone.path.display(),
                age_secs = gone.age.as_secs(),
                "removed a lock on a task branch left by a killed git"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "a leftover lock on a task branch stays"),
        }
        if !git.branch_exists(integration)? {
            let base = crate::ingest::base_branch(self.fleet.store.repo())
                .unwrap_or_else(|| "HEAD".into());
            crate::ingest::ensure_branch(self.fleet.store.repo(), integration, &base)?;
        }
        // A pooled worktree re-pointed, else `git worktree add`.
        self.fleet.pool.add(git, path, &branch, integration)?;
        Ok(())
    }

    pub(super) fn prompt_vars(
        &self,
        feature: &str,
        t: &Task,
        integration: &str,
    ) -> BTreeMap<&'static str, String> {
        prompt::task_vars(feature, t, integration)
    }

    pub(super) fn start_developer(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        route: &crate::router::Choice,
    ) -> Result<(), EngineError> {
        let name = &route.profile;
        let profile = self.config.agent(name).map_err(EngineError::Other)?;
        if !self.policy_admits(snapshot, feature, task, "developer", name, &profile)? {
            return Ok(());
        }
        let integration = self.integration(snapshot, feature);
        let r = task_ref(feature, task);
        let worktree = match self.ensure_worktree(feature, task, &integration, Some(&r)) {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(()), // setup runs; its end wakes us
            Err(e) => {
                // A worktree that cannot be prepared is a failed attempt
                // (cause `setup`), so a broken setup cannot loop for ever.
                record::setup_failed(&self.fleet.store, &r, &e.to_string(), self.attempt_policy())?;
                return Err(e);
            }
        };
        let skills = match self.task_skills(snapshot, feature, task, "developer", name) {
            Ok(s) => s,
            Err(e) => {
                // A broken skill is the project's to fix; the reason shows
                // on the task and the attempt is bounded like any setup.
                let why = format!("the task's skills: {e}");
                record::setup_failed(&self.fleet.store, &r, &why, self.attempt_policy())?;
                return Err(EngineError::Other(why));
            }
        };
        let base_commit = self.branch_tip(&task_branch(feature, task));
        let limits = self.limits();
        let branch = task_branch(feature, task);
        let template = prompt::template(&self.root, "developer");
        let run = RoutedRun {
            role: "developer",
            r: &r,
            worktree: &worktree,
            integration: &integration,
            route,
            profile: &profile,
            template: &template,
            skills: &skills,
        };
        let agent = record::claim_developer(
            &self.fleet.store,
            &r,
            name,
            &limits,
            &branch,
            &worktree,
            |t, id| {
                let mut a = self.routed_agent(&run, t, id);
                a.base_commit = base_commit.clone();
                a
            },
        )?;
        let Some(agent) = agent else {
            return Ok(());
        };
        let started = self
            .deliver_skills(&worktree, &profile, &skills)
            .and_then(|()| self.launch(&agent));
        if let Err(e) = started {
            let why = format!("could not start developer {}: {e}", agent.id);
            record::lost_attempt(
                &self.fleet.store,
                &r,
                Some(&agent.id),
                Cause::Setup,
                &why,
                self.attempt_policy(),
            )?;
            return Err(e);
        }
        Ok(())
    }

    pub(super) fn start_tester(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        attempt: u32,
        route: &crate::router::Choice,
    ) -> Result<(), EngineError> {
        let name = &route.profile;
        let profile = self.config.agent(name).map_err(EngineError::Other)?;
        if !self.policy_admits(snapshot, feature, task, "tester", name, &profile)? {
            return Ok(());
        }
        let integration = self.integration(snapshot, feature);
        let Some(worktree) = self.ensure_worktree(feature, task, &integration, None)? else {
            return Ok(());
        };
        let r = task_ref(feature, task);
        let skills = self
            .task_skills(snapshot, feature, task, "tester", name)
            .map_err(|e| EngineError::Other(format!("{r}: the task's skills: {e}")))?;
        let limits = self.limits();
        let template = prompt::template(&self.root, "tester");
        let run = RoutedRun {
            role: "tester",
            r: &r,
            worktree: &worktree,
            integration: &integration,
            route,
            profile: &profile,
            template: &template,
            skills: &skills,
        };
        let agent =
            record::claim_tester(&self.fleet.store, &r, attempt, name, &limits, |t, id| {
                self.routed_agent(&run, t, id)
            })?;
        let Some(agent) = agent else {
            return Ok(());
        };
        if let Err(e) = self.deliver_skills(&worktree, &profile, &skills) {
            record::mark_dead(&self.fleet.store, &agent.id, Cause::Setup, &e.to_string())?;
            return Err(e);
        }
        self.launch(&agent)
    }

    /// Whether the policy lets an agent of `profile_name` take `role`'s work
    /// on the task now: a `take` rule that refuses it is recorded (the task
    /// is blocked, or failed if past todo) and a profile at its
    /// `concurrency` cap waits for one of its agents to end.
    fn policy_admits(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        role: &str,
        profile_name: &str,
        profile: &crate::worker::profile::AgentProfile,
    ) -> Result<bool, EngineError> {
        let labels = snapshot
            .feature(feature)
            .and_then(|f| f.tasks.iter().find(|t| t.id == task))
            .map(|t| t.labels.clone())
            .unwrap_or_default();
        if let Err(refused) =
            self.policy
                .may_take(role, profile_name, profile.model.as_deref(), &labels)
        {
            let mut d = crate::policy::Decision::new(
                &refused.rule,
                &format!("{feature}/{task}"),
                crate::policy::Verdict::Deny,
                "manager",
            );
            d.policy = self.policy.blob.clone();
            d.reason = Some(refused.why.clone());
            d.inputs.insert("role".into(), role.into());
            d.inputs.insert("profile".into(), profile_name.into());
            if let Some(m) = &profile.model {
                d.inputs.insert("model".into(), m.as_str().into());
            }
            d.inputs.insert("labels".into(), serde_json::json!(labels));
            d.inputs
                .insert("rule_at".into(), refused.origin.as_str().into());
            record::refuse_claim(
                &self.fleet.store,
                &task_ref(feature, task),
                &format!("policy: rule {}: {}", refused.rule, refused.why),
                &d,
            )?;
            return Ok(false);
        }
        if let Some(cap) = self.policy.cap(profile_name) {
            // Fresh, not the reconcile's snapshot: agents started earlier in
            // this same pass count too.
            let now = self.fleet.store.read(Snapshot::read)?;
            let running = now
                .agents
                .iter()
                .filter(|a| a.profile == profile_name && crate::stages::running(a))
                .count();
            if running >= cap as usize {
                tracing::debug!(
                    profile = profile_name,
                    cap,
                    "profile at its concurrency cap"
                );
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The skills `role` gets for `feature`/`task` when `profile` runs it,
    /// from the base branch (see [`crate::skills`]).
    pub(super) fn task_skills(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        role: &str,
        profile: &str,
    ) -> Result<Vec<Skill>, crate::skills::SkillError> {
        let set = crate::skills::load(self.fleet.store.repo(), &self.config.base_branch)?;
        let t = snapshot
            .feature(feature)
            .and_then(|f| f.tasks.iter().find(|t| t.id == task));
        let (labels, paths) = match t {
            Some(t) => (crate::router::labels(t), t.paths.clone()),
            None => (Vec::new(), Vec::new()),
        };
        let q = crate::skills::Query {
            role,
            profile,
            labels: &labels,
            paths: &paths,
        };
        Ok(set.resolve(&q)?.into_iter().cloned().collect())
    }

    /// Puts the skills' files where the profile's CLI reads them (and
    /// clears an earlier run's).
    fn deliver_skills(
        &self,
        worktree: &Path,
        profile: &crate::worker::profile::AgentProfile,
        skills: &[Skill],
    ) -> Result<(), EngineError> {
        let refs: Vec<&Skill> = skills.iter().collect();
        deliver::write_native(worktree, profile, &refs)
            .map(drop)
            .map_err(|e| EngineError::Other(format!("writing the agent's skill files: {e}")))
    }

    /// Starts the agent's tmux session; if that fails, the record says the
    /// agent is dead, so nothing waits for it.
    pub(super) fn launch(&self, agent: &Agent) -> Result<(), EngineError> {
        let Err(e) = self.fleet.start_session(&self.exe, agent) else {
            return Ok(());
        };
        record::mark_dead(
            &self.fleet.store,
            &agent.id,
            Cause::Setup,
            &format!("its tmux session could not start: {e}"),
        )?;
        Err(e.into())
    }

    /// The record of a routed Developer or Tester the claim names `id`
    /// for task `t`: its prompt with its skills, and its route.
    fn routed_agent(&self, run: &RoutedRun<'_>, t: &Task, id: &str) -> Agent {
        let vars = self.prompt_vars(&run.r.feature, t, run.integration);
        let mut a = self.agent_record(
            id,
            run.role,
            run.r,
            run.worktree,
            run.integration,
            &run.route.profile,
            run.profile,
            t,
            deliver::render(run.template, vars, run.skills),
        );
        a.skills = run.skills.iter().map(Skill::usage).collect();
        a.route = Some(run.route.clone());
        a
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn agent_record(
        &self,
        id: &str,
        role: &str,
        r: &TaskRef,
        worktree: &Path,
        integration: &str,
        profile_name: &str,
        profile: &crate::worker::profile::AgentProfile,
        t: &Task,
        prompt: String,
    ) -> Agent {
        Agent {
            id: id.to_owned(),
            role: role.to_owned(),
            state: AgentState::Starting,
            task: Some(r.to_string()),
            batch: None,
            profile: profile_name.to_owned(),
            session: session_name(id),
            pid: None,
            worktree: worktree.display().to_string(),
            branch: task_branch(&r.feature, &r.id),
            base: integration.to_owned(),
            prompt,
            started: clock::now(),
            heartbeat: 0,
            ended: None,
            exit_status: None,
            wip_commit: None,
            runner_pid: None,
            base_commit: None,
            end_commit: None,
            launch: Some(crate::state::AgentLaunch::from(profile)),
            model: None,
            paths: t.paths.clone(),
            signal: None,
            followups: Vec::new(),
            usage: None,
            cause: None,
            error: None,
            skills: Vec::new(),
            route: None,
            machine: self.machine().map(str::to_owned),
        }
    }

    /// Stops a running agent's session and waits for its wrapper to save
    /// the work; if the wrapper died too (kill -9), saves it here.
    pub(super) fn stop_agent(&self, a: &Agent, reason: &str) {
        // Another machine's agent is that machine's to stop: its session
        // and worktree are there (a lost machine's agents stop when it
        // comes back, see `stop_orphans`).
        if self.elsewhere(a) {
            return;
        }
        if self.fleet.tmux.kill_session(&a.session).unwrap_or(false) {
            if let Some(pid) = a.runner_pid {
                crate::fleet::wait_for_exit(pid, std::time::Duration::from_secs(10));
            }
        }
        let wt = crate::worker::worktree::Git::new(&a.worktree);
        if Path::new(&a.worktree).exists() && wt.is_dirty().unwrap_or(false) {
            let _ = self.fleet.save_wip(
                Path::new(&a.worktree),
                &a.id,
                &format!("WIP: {} ({reason})", a.id),
            );
        }
    }

    /// A lost attempt: stop the agent (its work is kept), then retry the
    /// task after a backoff, or fail it past the attempt limit.
    pub(super) fn retry(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        agent: Option<&str>,
        cause: Cause,
        reason: &str,
    ) -> Result<(), EngineError> {
        if let Some(a) = agent.and_then(|id| stages::agent(snapshot, id)) {
            if liveness::is_running(a) {
                self.stop_agent(a, reason);
            }
        }
        let r = task_ref(feature, task);
        record::lost_attempt(
            &self.fleet.store,
            &r,
            agent,
            cause,
            reason,
            self.attempt_policy(),
        )?;
        Ok(())
    }

    pub(super) fn start_librarian(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        convoy: &str,
        attempt: u32,
    ) -> Result<(), EngineError> {
        let role = &self.config.roles.librarian;
        let profile = self.config.agent(&role.agent).map_err(EngineError::Other)?;
        let integration = self.integration(snapshot, feature);
        let docs = librarian::docs_task(convoy);
        let Some(worktree) = self.ensure_worktree(feature, &docs, &integration, None)? else {
            return Ok(());
        };
        let fs = snapshot.feature(feature);
        let Some(c) = fs.and_then(|f| f.convoys.iter().find(|c| c.id == convoy)) else {
            return Ok(());
        };
        // Numbered by run, not attempt: a run the API failed spent no
        // attempt, and its id must not come back.
        let id = agent_id(feature, &docs, "librarian", c.runs + 1);
        let tasks: Vec<String> = c
            .tasks
            .iter()
            .filter_map(|id| fs?.tasks.iter().find(|t| &t.id == id))
            .map(|t| format!("- {}: {}", t.id, t.title))
            .collect();
        let mut feedback = Vec::new();
        feedback.extend(c.reason.clone());
        // What the convoy changed, as a summary for the docs.
        let base = snapshot
            .feature(feature)
            .and_then(|f| f.feature.base_branch.clone())
            .unwrap_or_else(|| "HEAD".into());
        let diffstat = self
            .fleet
            .git
            .command([
                "diff",
                "--stat=100",
                &format!("{base}...{integration}"),
                "--",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let vars = BTreeMap::from([
            ("feature", feature.to_owned()),
            ("convoy", convoy.to_owned()),
            ("integration", integration.clone()),
            ("tasks", tasks.join("\n")),
            ("docs", self.config.docs.join(", ")),
            ("diffstat", diffstat),
            ("feedback", prompt::feedback(&feedback)),
        ]);
        // The Librarian's skills: by role and by the docs it keeps.
        let skills = crate::skills::load(self.fleet.store.repo(), &self.config.base_branch)
            .and_then(|set| {
                let q = crate::skills::Query {
                    role: "librarian",
                    profile: &role.agent,
                    labels: &[],
                    paths: &self.config.docs,
                };
                Ok(set
                    .resolve(&q)?
                    .into_iter()
                    .cloned()
                    .collect::<Vec<Skill>>())
            })
            .map_err(|e| {
                EngineError::Other(format!("{feature}/{convoy}: the librarian's skills: {e}"))
            })?;
        let template = prompt::template(&self.root, "librarian");
        let prompt_text = deliver::render(&template, vars, &skills);
        let r = TaskRef {
            feature: feature.to_owned(),
            id: docs.clone(),
        };
        let mut agent = self.agent_record(
            &id,
            "librarian",
            &r,
            &worktree,
            &integration,
            &role.agent,
            &profile,
            &Task::new(&docs, "", ""),
            prompt_text,
        );
        agent.paths = self.config.docs.clone();
        agent.skills = skills.iter().map(Skill::usage).collect();
        if !record::claim_librarian(
            &self.fleet.store,
            feature,
            convoy,
            attempt,
            &self.limits(),
            &agent,
        )? {
            return Ok(());
        }
        if let Err(e) = self.deliver_skills(&worktree, &profile, &skills) {
            record::mark_dead(&self.fleet.store, &agent.id, Cause::Setup, &e.to_string())?;
            return Err(e);
        }
        self.launch(&agent)
    }

    /// Whether a developer left a commit beyond where its run started (the
    /// wrapper's WIP commit counts). Unknown start: assume it did.
    pub(super) fn developer_changed(&self, snapshot: &Snapshot, agent: &str) -> bool {
        let Some(a) = stages::agent(snapshot, agent) else {
            return true;
        };
        let Some(start) = a.base_commit.as_deref() else {
            return true;
        };
        match self.branch_tip(&a.branch) {
            Some(tip) => tip != start,
            None => true,
        }
    }

    /// The commit `branch` points at, read in-process.
    pub(super) fn branch_tip(&self, branch: &str) -> Option<String> {
        self.fleet.branch_tip(branch).map(|id| id.to_string())
    }
}

/// What a routed Developer's or Tester's record is made of, but the task
/// and the id its claim decides.
struct RoutedRun<'a> {
    role: &'a str,
    r: &'a TaskRef,
    worktree: &'a Path,
    integration: &'a str,
    route: &'a crate::router::Choice,
    profile: &'a crate::worker::profile::AgentProfile,
    template: &'a str,
    skills: &'a [Skill],
}

/// Why the task worktree at `path` is not ready for an agent, if it is
/// not: ready is set up (its setup marker written, the last step of making
/// it) and on `branch`. One that is not was cut short by a killed
/// orchestrator (taken from the pool but not yet re-pointed, half added,
/// half set up) or moved off its branch by an agent; it is made again, and
/// the branch keeps every commit. Read as plain files: no git runs in it.
fn unready(path: &Path, branch: &str) -> Option<String> {
    let Some(marker) = setup_marker(path) else {
        return Some("its .git does not name a linked worktree's git directory".into());
    };
    if !marker.exists() {
        return Some("it was never set up to the end".into());
    }
    let head = marker.with_file_name("HEAD");
    let head = match std::fs::read_to_string(&head) {
        Ok(h) => h,
        Err(e) => return Some(format!("{}: {e}", head.display())),
    };
    let want = format!("ref: refs/heads/{branch}");
    if head.trim_end() != want {
        return Some(format!("its HEAD is `{}`, not `{want}`", head.trim_end()));
    }
    None
}

/// Whether anything (a file, a directory, a dangling link) is at `path`.
fn fs_exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Where a worktree's setup is marked done: a file in its private git
/// directory (`<common>/worktrees/<name>/`), so nothing shows in the
/// worktree itself, and a setup cut short by a crash runs again.
pub(super) fn setup_marker(worktree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let gitdir = text.strip_prefix("gitdir:")?.trim();
    Some(worktree.join(gitdir).join(crate::worker::pool::SETUP_DONE))
}

pub(super) fn warn_skipped(path: &Path, report: &crate::worker::worktree::SetupReport) {
    for (file, why) in &report.skipped {
        tracing::warn!(worktree = %path.display(), file = %file.display(), "setup file not copied: {why}");
    }
}

/// No half-made worktree: the next attempt makes it again and runs setup
/// again; the branch keeps any commits.
pub(super) fn remove_half_made(root: &Path, path: &Path) {
    let _ = crate::worker::worktree::Git::new(root).remove_worktree(path, true);
    let _ = std::fs::remove_dir_all(path);
}

/// Whether git has a worktree record (`<common>/worktrees/<name>*`) that may
/// be for `path`: git names it after the directory, with a number added on a
/// clash.
fn has_worktree_record(common: &Path, path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return true;
    };
    match std::fs::read_dir(common.join("worktrees")) {
        Ok(entries) => entries
            .flatten()
            .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(name))),
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}
