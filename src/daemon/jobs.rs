//! Jobs that run beside the orchestrator's loop, each on a thread of its
//! own so the loop stays responsive: gate stages, Refinery merges, syncing
//! the base into a feature, closing a feature. A task being worked on by a
//! job is `busy` (the stages leave it alone); a job's verdict is a state
//! commit, and it wakes the loop when it ends. One that failed without a
//! verdict waits out a backoff (see [`super::busy`]).

use std::path::PathBuf;

use super::engine::{Engine, EngineError};
use super::record;
use crate::gates::{self, Gate};
use crate::refinery::Verdict;
use crate::stages::{librarian, task_branch, GateStage};
use crate::state::{Snapshot, StateError, TaskRef, TaskStatus};

impl Engine {
    /// Runs a gate stage on a thread; the verdict is a state commit, which
    /// wakes the orchestrator again.
    pub(super) fn run_gates(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        stage: GateStage,
    ) -> Result<(), EngineError> {
        let key = format!("{feature}/{task}");
        if !self.busy.take(&key) {
            return Ok(());
        }
        let gates: Vec<Gate> = match stage {
            GateStage::Review => self.config.gates.review.clone(),
            GateStage::Test => self.config.gates.test.clone(),
        };
        let worktree = self.task_worktree(feature, task);
        // The task's change is its branch against the integration branch
        // (from their merge-base), whatever the worktree holds uncommitted.
        let integration = format!("refs/heads/{}", self.integration(snapshot, feature));
        let branch = format!("refs/heads/{}", task_branch(feature, task));
        let store_dir = self.root.clone();
        let policy = self.attempt_policy();
        // The policy judges the diff before the review gates (the
        // Developer's work) and again before the test gates (a Tester may
        // have added to it), with the rules for the role that wrote last.
        let judge = {
            let paths = snapshot
                .features
                .iter()
                .find(|f| f.feature.name == feature)
                .and_then(|f| f.tasks.iter().find(|t| t.id == task))
                .map(|t| t.paths.clone())
                .unwrap_or_default();
            let (role, profile) = match stage {
                GateStage::Review => ("developer", self.config.roles.developer.agent.clone()),
                GateStage::Test => ("tester", self.config.roles.tester.agent.clone()),
            };
            Some((self.policy.clone(), role, profile, paths))
        };
        let reviewers = self.reviewer_gates();
        let (feature, task) = (feature.to_owned(), task.to_owned());
        let busy = self.busy.clone();
        let runner = self.gates.clone();
        std::thread::spawn(move || {
            let git = crate::worker::worktree::Git::new(&store_dir);
            let judged = judge.map(|(policy, role, profile, paths)| {
                crate::policy::Judgement::of_branch(
                    &policy,
                    &git,
                    &integration,
                    &branch,
                    &key,
                    (role, &profile),
                    &paths,
                )
            });
            let judged = match judged {
                Some(Ok(j)) => Some(j),
                None => None,
                Some(Err(e)) => {
                    // Never let a change through unjudged: the task stays in
                    // review and is judged again after a wait.
                    busy.failed(
                        &key,
                        "cannot read the task's diff for the policy; review waits",
                        &e,
                    );
                    return;
                }
            };
            if let Some(j) = judged.as_ref().filter(|j| j.denied()) {
                let result = crate::state::Store::discover(&store_dir).and_then(|store| {
                    record::record_policy_denial(&store, &feature, &task, stage, j, policy)
                });
                end_job(&busy, &key, result, "recording the policy's denial failed");
                return;
            }
            let outcome = gates::run_stage_for_change(
                &runner,
                &gates,
                &worktree,
                &[("SPRINT_TASK".to_owned(), key.clone())],
                &git,
                &gates::Change::Branch {
                    base: &integration,
                    tip: &branch,
                },
            );
            let result = crate::state::Store::discover(&store_dir).and_then(|store| {
                record::record_judged_verdict(
                    &store,
                    &feature,
                    &task,
                    stage,
                    &outcome,
                    policy,
                    &reviewers,
                    judged.as_ref(),
                )
            });
            end_job(&busy, &key, result, "recording the gate verdict failed");
        });
        Ok(())
    }

    /// Merges a task on a thread; the verdict is a state commit.
    pub(super) fn merge(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
    ) -> Result<(), EngineError> {
        let title = snapshot
            .feature(feature)
            .and_then(|f| f.tasks.iter().find(|t| t.id == task))
            .map(|t| t.title.clone())
            .unwrap_or_default();
        let integration = self.integration(snapshot, feature);
        let security = self.config.gates.security.clone();
        let policy = self.attempt_policy();
        let (f, t, i) = (feature.to_owned(), task.to_owned(), integration.clone());
        self.spawn_merge(
            feature,
            task,
            title,
            integration,
            security,
            move |store, v| record::record_merge(store, &f, &t, &i, v, policy),
        );
        Ok(())
    }

    /// Merges a convoy's docs branch; the convoy is done once they are in.
    pub(super) fn merge_docs(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        convoy: &str,
        failed: Option<String>,
    ) -> Result<(), EngineError> {
        let integration = self.integration(snapshot, feature);
        let (f, c, i) = (feature.to_owned(), convoy.to_owned(), integration.clone());
        let policy = self.attempt_policy();
        self.spawn_merge(
            feature,
            &librarian::docs_task(convoy),
            format!("docs for convoy {convoy}"),
            integration,
            Vec::new(),
            move |store, v| record::record_docs(store, &f, &c, &i, v, policy, failed.as_deref()),
        );
        Ok(())
    }

    /// Merges the base's new commits into the feature's integration branch
    /// on a thread (the Refinery's lock keeps it apart from task merges);
    /// the result is a state commit, which wakes the loop.
    pub(super) fn sync_base(&self, feature: &str) {
        let key = format!("{feature}/base");
        if !self.busy.take(&key) {
            return;
        }
        let (common, root) = (self.fleet.common_dir.clone(), self.root.clone());
        let post_merge = self.config.gates.post_merge.clone();
        let runner = self.gates.clone();
        let feature = feature.to_owned();
        let busy = self.busy.clone();
        std::thread::spawn(move || {
            let result = crate::state::Store::discover(&root)
                .map_err(crate::sync::SyncError::from)
                .and_then(|store| {
                    crate::sync::sync_feature(
                        &store,
                        &common,
                        &root,
                        &feature,
                        &post_merge,
                        &runner,
                    )
                });
            match result {
                Ok(synced) => {
                    tracing::info!(%feature, ?synced, "base synced");
                    busy.done(&key);
                }
                Err(e) => busy.failed(&key, "syncing the base failed", &e),
            }
        });
    }

    /// Runs one Refinery merge of `sprint/<feature>/<task>` on a thread (the
    /// Refinery's lock makes merges serial across processes), then records
    /// the verdict and wakes the loop.
    pub(super) fn spawn_merge(
        &self,
        feature: &str,
        task: &str,
        title: String,
        integration: String,
        security: Vec<Gate>,
        record: impl FnOnce(&crate::state::Store, &Verdict) -> Result<(), StateError> + Send + 'static,
    ) {
        let key = format!("{feature}/{task}");
        if !self.busy.take(&key) {
            return;
        }
        let (common, root) = (self.fleet.common_dir.clone(), self.root.clone());
        let task_wt = self.task_worktree(feature, task);
        let post_merge = self.config.gates.post_merge.clone();
        let branch = task_branch(feature, task);
        let busy = self.busy.clone();
        let pool = self.fleet.pool.clone();
        let remote = self.here.as_ref().map(|h| h.remote.clone());
        let runner = self.gates.clone();
        std::thread::spawn(move || {
            let git = crate::worker::worktree::Git::new(&root);
            let before = git
                .commit_id(&format!("refs/heads/{integration}"))
                .ok()
                .flatten();
            let verdict = crate::refinery::merge(&crate::refinery::Merge {
                common_dir: &common,
                root: &root,
                task: &key,
                title: &title,
                task_branch: &branch,
                task_worktree: &task_wt,
                integration: &integration,
                security: &security,
                post_merge: &post_merge,
                gates: &runner,
            });
            // Shared through a remote, a merge counts once the remote has
            // it: every machine starts its tasks from there.
            let verdict = verdict.map_err(|e| e.to_string()).and_then(|v| {
                let (Verdict::Merged { .. }, Some(old)) = (&v, &before) else {
                    return Ok(v);
                };
                Engine::share_integration(remote.as_deref(), &git, &integration, old).map(|()| v)
            });
            let recorded = verdict.and_then(|v| {
                crate::state::Store::discover(&root)
                    .and_then(|store| record(&store, &v))
                    .map_err(|e| e.to_string())?;
                if matches!(v, Verdict::Merged { .. } | Verdict::AlreadyMerged { .. }) {
                    // The work is in; its worktree goes back to the pool
                    // (or away), its branch stays.
                    match pool.retire(&crate::worker::worktree::Git::new(&root), &task_wt) {
                        Ok(crate::worker::pool::Retired::Discarded(why)) => {
                            tracing::warn!(worktree = %task_wt.display(), "worktree not pooled: {why}")
                        }
                        Err(e) => {
                            tracing::warn!(worktree = %task_wt.display(), error = %e, "removing a merged task's worktree failed")
                        }
                        Ok(_) => {}
                    }
                }
                Ok(())
            });
            end_job(&busy, &key, recorded, "merge failed");
        });
    }

    /// Marks the feature done, deletes the branches of its merged tasks, and
    /// with `merge.auto` merges it into its base branch.
    pub(super) fn close_feature(
        &self,
        snapshot: &Snapshot,
        feature: &str,
    ) -> Result<(), EngineError> {
        let Some(f) = record::close_feature(&self.fleet.store, feature)? else {
            return Ok(());
        };
        // The agents' logs were kept for their failures; the work is merged.
        if let Err(e) = self.fleet.remove_feature_logs(feature) {
            tracing::warn!(feature, error = %e, "removing the agents' logs failed");
        }
        let integration = self.integration(snapshot, feature);
        // Their work is in the integration branch; a branch with anything
        // more is kept.
        if let Some(fs) = snapshot.feature(feature) {
            let names = fs
                .tasks
                .iter()
                .filter(|t| t.status == TaskStatus::Done)
                .map(|t| t.id.clone())
                .chain(fs.convoys.iter().map(|c| librarian::docs_task(&c.id)));
            for name in names {
                let _ = self.fleet.git.delete_branch_if_merged(
                    &task_branch(feature, &name),
                    &integration,
                    false,
                );
            }
        }
        if !self.config.merge.auto {
            return Ok(());
        }
        let base = f
            .base_branch
            .clone()
            .or_else(|| crate::ingest::base_branch(self.fleet.store.repo()))
            .unwrap_or_else(|| "main".into());
        if let Some(pattern) = self.policy.protects(&base) {
            let note = format!(
                "not merged: {base} is protected by the policy (protected_branches: {pattern}); merge {integration} by hand"
            );
            let mut d = crate::policy::Decision::new(
                "protected_branches",
                feature,
                crate::policy::Verdict::Deny,
                "refinery",
            );
            d.policy = self.policy.blob.clone();
            d.inputs.insert("branch".into(), base.as_str().into());
            d.inputs.insert("pattern".into(), pattern.into());
            record::feature_note_decided(&self.fleet.store, feature, &note, &d)?;
            return Ok(());
        }
        let verdict = crate::refinery::merge_into_base(
            &self.fleet.common_dir,
            &self.root,
            &integration,
            &base,
            self.config.merge.mode,
            &self.config.gates.post_merge,
            &self.gates,
        );
        use crate::refinery::BaseVerdict;
        let note = match verdict {
            Ok(BaseVerdict::Merged { commit }) => {
                format!("merged into {base} at {}", crate::names::record_id(&commit))
            }
            Ok(BaseVerdict::AlreadyMerged) => format!("already in {base}"),
            Ok(BaseVerdict::NotFastForward) => format!(
                "not merged: {base} moved on; merge {integration} by hand or use merge.mode: merge"
            ),
            Ok(BaseVerdict::Dirty { worktree }) => format!(
                "not merged: {base} is checked out with uncommitted changes in {}",
                worktree.display()
            ),
            Ok(BaseVerdict::Conflict { files }) => {
                format!("not merged: conflicts with {base} in {}", files.join(", "))
            }
            Ok(BaseVerdict::GatesFailed { outcome }) => format!(
                "not merged: the post-merge gates failed on the merge into {base}:\n{}",
                outcome.feedback()
            ),
            Err(e) => format!("not merged: {e}"),
        };
        record::feature_note(&self.fleet.store, feature, &note)?;
        Ok(())
    }

    /// Runs a new worktree's setup (copies and `setup.commands`, each bounded
    /// by `setup.timeout`) on a thread. Done, it marks the worktree set up;
    /// failed or timed out, it removes the half-made worktree and, for a
    /// developer's task `fails`, records a failed attempt (cause `setup`).
    /// Either way it wakes the loop, which then starts the agent or retries.
    pub(super) fn spawn_setup(
        &self,
        key: String,
        path: PathBuf,
        marker: PathBuf,
        fails: Option<TaskRef>,
    ) {
        if !self.busy.take(&key) {
            return;
        }
        let root = self.root.clone();
        let setup = self.config.setup.clone();
        let policy = self.attempt_policy();
        let busy = self.busy.clone();
        std::thread::spawn(move || {
            let ran = crate::worker::worktree::setup(
                &root,
                &path,
                &setup.copy,
                &setup.commands,
                setup.timeout.0,
            );
            match ran {
                Ok(report) => {
                    super::launch::warn_skipped(&path, &report);
                    match std::fs::write(&marker, "") {
                        Ok(()) => busy.done(&key),
                        Err(e) => busy.failed(
                            &key,
                            "marking the setup done failed; the worktree is made again",
                            &e,
                        ),
                    }
                }
                Err(e) => {
                    tracing::warn!(task = %key, error = %e, "worktree setup failed");
                    super::launch::remove_half_made(&root, &path);
                    match &fails {
                        Some(r) => {
                            let recorded = crate::state::Store::discover(&root).and_then(|store| {
                                record::setup_failed(&store, r, &e.to_string(), policy)
                            });
                            end_job(&busy, &key, recorded, "recording the failed setup failed");
                        }
                        // Nothing is recorded (a Tester's worktree): the
                        // next try waits.
                        None => busy.failed(&key, "worktree setup failed", &e),
                    }
                }
            }
        });
    }
}

/// Ends the job on `key`: recorded, or failed (as `what`).
fn end_job<E: std::fmt::Display>(
    busy: &super::busy::Busy,
    key: &str,
    result: Result<(), E>,
    what: &str,
) {
    match result {
        Ok(()) => busy.done(key),
        Err(e) => busy.failed(key, what, &e),
    }
}
