//! Quality gates: configured shell commands that decide whether a task's work moves on.
//!
//! A gate is `sh -c <run>` in a worktree with a timeout; it passes when it exits 0 and,
//! when it has a `figure` (coverage, mutation score), when the number its regex pulls out
//! of the output lies within `min`/`max`. Gates come in four stages (DESIGN.md "Task
//! life"): `review` (CAB, after the Developer), `test` (after the Tester), `security`
//! (before the merge) and `post_merge` (in the Refinery's worktree). A stage runs its
//! gates in order and stops at the first failure, whose output tail becomes the
//! developer's feedback for the next attempt.
//!
//! Each gate runs in its own process group, and the whole group is killed when the
//! gate ends or times out, so a test runner's stray children never outlive it or hold
//! its output pipe open. What left the group (`setsid`) is found by the mark every
//! process of the run inherits (`GIT_SPRINT_MARK`, see `worker/reap.rs`) and killed
//! too; while a gate runs, the orchestrator keeps a record of it in its ledger
//! (its [`Runner`]), so gates orphaned by a killed orchestrator die at the next
//! start. The timeout is a blocking wait on a channel, not a poll.
//!
//! A gate with `paths` runs only when the change touched one of them (a task's
//! branch from its merge-base with the integration branch; a merge's old tip to
//! its new); a gate so skipped is named in the stage's outcome.
//!
//! A review gate of `kind: agent` is no command: after the stage's commands
//! pass, the CAB starts a Reviewer agent on the task and its diff, and
//! [`review`] reads the verdict it leaves.
//!
//! The module is split by job: [`config`] reads and checks the `gates:` section,
//! [`diff`] finds what a change touched, [`run`] runs a gate with its limits and
//! captures its output, [`figure`] pulls a
//! number out of that output, and [`outcome`] turns runs into records and feedback.

mod config;
mod diff;
mod figure;
mod outcome;
pub(crate) mod review;
mod run;
#[cfg(test)]
mod testutil;

// The configuration and outcome types appear in the public configuration and
// Refinery types (and benches build gates); the templates are what
// `init --gates` offers. Running gates is the crate's business.
pub use config::{template, Gate, Stage};
pub(crate) use config::{GateConfigError, GateKind, GateSet, TEMPLATES};
pub(crate) use diff::{run_stage_for_change, Change};
#[cfg(test)]
pub(crate) use outcome::GateOutcome;
pub(crate) use outcome::StageOutcome;
pub(crate) use run::Confinement;
pub use run::Runner;
