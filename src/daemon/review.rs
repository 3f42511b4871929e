//! The AI Reviewer at the CAB: starting a Reviewer agent on a task's work
//! and judging it when it ends.
//!
//! A Reviewer runs like a Tester — its own tmux session, in the task's
//! worktree, under the same wrapper, sandbox and stream parsing — with the
//! task's text and its diff against the integration branch in the prompt,
//! told not to edit. It must not change the branch all the same: when it
//! ends, any commit it made (or the wrapper saved for it) and any change
//! left in the worktree are put back to the reviewed tip before its verdict
//! is read, and what was discarded is recorded (its tip kept under
//! `refs/sprint/discarded/<agent>`, so nothing it wrote is lost).

use std::path::Path;

use super::engine::{task_ref, Engine, EngineError};
use super::record;
use crate::gates::review;
use crate::prompt;
use crate::stages::{self, task_branch};
use crate::state::{Agent, Snapshot};

/// The diff in a Reviewer's prompt is cut past this many bytes.
const MAX_DIFF_BYTES: usize = 96 * 1024;

impl Engine {
    /// The names of the review gates judged by AI Reviewers, in order.
    pub(super) fn reviewer_gates(&self) -> Vec<String> {
        self.config
            .gates
            .review
            .iter()
            .filter(|g| g.kind == crate::gates::GateKind::Agent)
            .map(|g| g.name.clone())
            .collect()
    }

    pub(super) fn start_reviewer(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        gate: &str,
    ) -> Result<(), EngineError> {
        let Some(g) = self.config.gates.review.iter().find(|g| g.name == gate) else {
            return Ok(());
        };
        let profile_name = g
            .agent
            .clone()
            .unwrap_or_else(|| self.config.roles.developer.agent.clone());
        let profile = self
            .config
            .agent(&profile_name)
            .map_err(|m| EngineError::Other(format!("gates.review `{gate}`: {m}")))?;
        let integration = self.integration(snapshot, feature);
        let Some(worktree) = self.ensure_worktree(feature, task, &integration, None)? else {
            return Ok(());
        };
        let branch = task_branch(feature, task);
        let reviewed = self.branch_tip(&branch);
        let diff = self.review_diff(&integration, &branch);
        let r = task_ref(feature, task);
        let template = prompt::template(&self.root, "reviewer");
        let common = self.fleet.common_dir.clone();
        let agent = record::claim_reviewer(
            &self.fleet.store,
            &r,
            gate,
            &profile_name,
            &self.limits(),
            |t, id| {
                let mut vars = self.prompt_vars(feature, t, &integration);
                vars.insert("gate", gate.to_owned());
                vars.insert("diff", diff.clone());
                vars.insert(
                    "verdict_file",
                    review::verdict_path(&common, id).display().to_string(),
                );
                vars.insert("verdict_env", review::VERDICT_ENV.to_owned());
                let mut a = self.agent_record(
                    id,
                    "reviewer",
                    &r,
                    &worktree,
                    &integration,
                    &profile_name,
                    &profile,
                    t,
                    prompt::render(&template, &vars),
                );
                a.base_commit = reviewed.clone();
                a
            },
        )?;
        let Some(agent) = agent else {
            return Ok(());
        };
        self.launch(&agent)
    }

    /// `git diff integration...branch`: a summary, then the patch, cut at
    /// [`MAX_DIFF_BYTES`].
    fn review_diff(&self, integration: &str, branch: &str) -> String {
        let range = format!("{integration}...{branch}");
        let out = self
            .fleet
            .git
            .command(["diff", "--stat=100", "--patch", "--no-color", &range, "--"])
            .output();
        let text = match out {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
            Ok(o) => format!(
                "(git diff {range} failed: {})",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("(git diff {range} could not run: {e})"),
        };
        if text.len() <= MAX_DIFF_BYTES {
            return text;
        }
        let mut end = MAX_DIFF_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!(
            "{}\n[git-sprint] the diff is cut here: {} more bytes; read it with `git diff {range}`\n",
            &text[..end],
            text.len() - end
        )
    }

    /// The Reviewer ended: put back whatever it changed, read its verdict,
    /// record the gate's result, and remove the verdict file.
    pub(super) fn judge_review(
        &self,
        snapshot: &Snapshot,
        feature: &str,
        task: &str,
        agent: &str,
        gate: &str,
    ) -> Result<(), EngineError> {
        let a = stages::agent(snapshot, agent);
        let discarded = a.and_then(|a| self.discard_reviewer_changes(a));
        let path = review::verdict_path(&self.fleet.common_dir, agent);
        let verdict = review::read(&path).map_err(|e| {
            let mut why = e.to_string();
            // How the run ended says why it left nothing.
            if let Some(a) = a.filter(|a| a.cause.is_some()) {
                let cause = a.cause.map(|c| c.to_string()).unwrap_or_default();
                why.push_str(&format!(
                    " (the reviewer's run ended: {cause}{})",
                    a.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
            why
        });
        record::record_review(
            &self.fleet.store,
            &task_ref(feature, task),
            agent,
            gate,
            &record::Judged { verdict, discarded },
            &self.reviewer_gates(),
            self.attempt_policy(),
        )?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// Puts the task's branch and worktree back to the commit the Reviewer
    /// was given; says what was discarded, if anything was.
    fn discard_reviewer_changes(&self, a: &Agent) -> Option<String> {
        let reviewed = a.base_commit.as_deref()?;
        let wt = Path::new(&a.worktree);
        let tip = self.branch_tip(&a.branch);
        let git = self.fleet.git.at(wt);
        let dirty = wt.exists() && git.is_dirty().unwrap_or(false);
        let head = git
            .command(["symbolic-ref", "-q", "HEAD"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        let on_branch = head.as_deref() == Some(&format!("refs/heads/{}", a.branch));
        if tip.as_deref() == Some(reviewed) && !dirty && (on_branch || !wt.exists()) {
            return None;
        }
        let mut said = Vec::new();
        if let Some(tip) = tip.as_deref().filter(|t| *t != reviewed) {
            let commits = self
                .fleet
                .git
                .command(["rev-list", "--count", &format!("{reviewed}..{tip}")])
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .ok()
                })
                .unwrap_or(0);
            let keep = format!("refs/sprint/discarded/{}", a.id);
            let _ = self.fleet.git.command(["update-ref", &keep, tip]).output();
            said.push(format!(
                "{commits} commit(s) on {} (kept as {keep})",
                a.branch
            ));
        }
        if dirty {
            said.push("uncommitted changes in the worktree".to_owned());
        }
        if !on_branch && wt.exists() {
            said.push(format!(
                "a checkout of {}",
                head.filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "a detached HEAD".into())
            ));
        }
        // A rebase or cherry-pick it left half done would outlive the reset
        // and meet the next developer; with none in progress these fail
        // harmlessly.
        for op in ["rebase", "cherry-pick", "revert", "merge"] {
            let _ = git.command([op, "--abort"]).output();
        }
        let reset = git
            .command(["checkout", "-q", "-f", "-B", &a.branch, reviewed])
            .output();
        let cleaned = git.command(["clean", "-q", "-f", "-d"]).output();
        let failed = [reset, cleaned]
            .into_iter()
            .filter_map(|o| match o {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
                Err(e) => Some(e.to_string()),
            })
            .collect::<Vec<_>>();
        let mut line = format!(
            "reviewer {} changed what it reviewed, which a Reviewer must not: discarded {}; reset to {}",
            a.id,
            said.join(", "),
            crate::names::short_id(&reviewed)
        );
        if !failed.is_empty() {
            line.push_str(&format!(" (putting it back failed: {})", failed.join("; ")));
            tracing::warn!(agent = %a.id, "{line}");
        }
        Some(line)
    }
}
