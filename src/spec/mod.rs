//! tasks.md → plan: the parser and planner for spec-kit task lists.
//!
//! [`parse`] reads a `specs/<feature>/tasks.md` into a [`SpecFile`] (tasks, phases, explicit
//! dependencies, path locks) and rejects a malformed file whole with `file:line: what is wrong`.
//! [`plan()`] turns it into a [`Plan`]: the effective dependency graph (phase barriers, in-phase
//! order, explicit edges, serialized path conflicts), convoys and waves. [`render_plan`] prints it
//! for people. Everything here is pure: no git, no file system, so the state layer, the CLI and
//! tests all call the same code on a string.
//!
//! Rules, chosen to be safe for unattended agents while following spec-kit's own order:
//! - Task lines are `- [ ] T001 [P] [US1] Description`, at any indent, with `*`/`+`/`1.`
//!   bullets too. `[x]`/`[X]` are done, `[A]` (archived) counts as done, `[~]`/`[/]`
//!   (in progress) as not done. A file without any checkbox task uses headings that start
//!   with an ID (`### T1 · Title`) as tasks.
//! - Phases: headings at the level of the first `Phase …` heading start a new phase, in file
//!   order. No phase heading: one phase. A user-story phase (`Phase 3: User Story 1 …`, or one
//!   whose story-tagged tasks all carry one `[USn]`) waits for the phases before its run of
//!   story phases (Setup, Foundational), not for the other stories; the phase after a run of
//!   story phases (Polish) waits for every story. [`Options::serial_stories`] chains them
//!   instead. Other phases wait for the phase (or the run of stories) before them.
//! - A barrier means every task of the earlier phase, whatever is checked: a done task
//!   satisfies its own edge, but the open tasks it waits for still block (done tasks are
//!   contracted out of the schedule, so their dependants inherit what they waited for).
//! - Inside a phase, consecutive `[P]` tasks form a group that runs together; a group waits
//!   for the task before it, and a task without `[P]` waits for the task or group before it.
//! - `(depends on T012, T013)`, `depends: T012` and `Dependencies: T012` sub-bullets add edges;
//!   `T001 through T006`, `T001–T006` and `T001..T006` are ranges. Lines anywhere that name
//!   tasks on both sides of a dependency word or arrow (`T012 depends on T010 and T011`,
//!   `T004 requires T001–T003`, `- T014 → T015`) add edges too.
//! - Two tasks naming overlapping paths never run at once: if the graph does not order them,
//!   the later one (in file order) waits for the earlier one (a "serialized conflict").
//!   spec-kit's own documents (`spec.md`, `plan.md`, `contracts/…`) are named relative to
//!   tasks.md, so they lock `specs/<feature>/…`.
//! - Chores (commit, push, open or merge a PR, wait for CI) are git-sprint's job: with
//!   [`Options::chores`] set they are `skipped` (counted as done, never given an agent).
//! - Done tasks are not scheduled (no wave, no conflicts) but satisfy the tasks that depend
//!   on them.

mod parse;
mod paths;
mod plan;
mod render;
#[cfg(test)]
mod tests;

use serde::Serialize;

pub use parse::parse;
pub(crate) use plan::plan_with;
pub use plan::{plan, Plan, PlannedTask};
pub(crate) use render::render_plan;

/// A parsed tasks.md: its tasks in file order and the phases that hold them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecFile {
    /// The path the caller gave, used in error messages.
    pub(crate) file: String,
    /// Phases that hold at least one task, in file order.
    pub(crate) phases: Vec<Phase>,
    /// Tasks in file order.
    pub(crate) tasks: Vec<Task>,
    /// Lines that looked like tasks but were skipped, e.g. a checkbox without a task ID.
    pub(crate) notes: Vec<Note>,
}

/// A phase: a barrier between the tasks before it and the tasks after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Phase {
    /// 1-based position among the phases that hold tasks.
    pub(crate) index: usize,
    /// Heading text, empty for tasks before any phase heading.
    pub(crate) title: String,
    /// 1-based line of the heading, 0 when there is none.
    pub(crate) line: usize,
    /// Short name for the convoy of this phase's tasks without a story (`setup`, `phase-3`).
    pub(crate) slug: String,
    /// A user-story phase: it runs beside the story phases next to it.
    pub(crate) story: bool,
}

/// One task as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Task {
    pub id: String,
    /// 1-based line of the task's checkbox (or heading).
    pub(crate) line: usize,
    /// The first paragraph without leading and trailing tags; wrapped lines joined.
    pub(crate) title: String,
    /// The title followed by the task's sub-bullets and indented lines, one per line.
    pub(crate) description: String,
    pub(crate) done: bool,
    /// Marked `[P]`: may run together with the neighbouring `[P]` tasks of its phase.
    pub(crate) parallel: bool,
    /// `US1`, `US12`, … from a `[USn]` tag.
    pub(crate) story: Option<String>,
    /// Other bracket tags, without brackets: `GIT`, `PRD: P0-R5-AC1`, `FR-002, FR-009`.
    pub(crate) labels: Vec<String>,
    /// Explicit dependencies (`depends on …`), in the order written.
    pub(crate) deps: Vec<String>,
    /// Files, directories and globs the task names: its path locks.
    pub(crate) paths: Vec<String>,
    /// [`Phase::index`] of the task's phase.
    pub(crate) phase: usize,
}

/// A line the parser skipped but a person may want to know about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Note {
    pub(crate) line: usize,
    pub(crate) message: String,
}

/// Why a tasks.md was rejected. Every message starts with `file:line:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{file}:{line}: duplicate task ID {id} (first defined at line {first_line})")]
    DuplicateId {
        file: String,
        line: usize,
        id: String,
        first_line: usize,
    },
    #[error("{file}:{line}: task {task} depends on {dep}, which is not a task in this file")]
    UnknownDependency {
        file: String,
        line: usize,
        task: String,
        dep: String,
    },
    #[error("{file}:{line}: dependency cycle: {path}{hint}")]
    Cycle {
        file: String,
        line: usize,
        /// The cycle's task IDs, first one repeated at the end.
        ids: Vec<String>,
        /// `T003 (line 5) -> T005 (line 9) -> T003 (line 5)`; `a -> b` means a waits for b.
        path: String,
        hint: String,
    },
    #[error("{file}: no tasks found (expected lines like `- [ ] T001 Description`)")]
    NoTasks { file: String },
    #[error("{file}:{line}: {what} is {len} bytes, more than the {max} allowed: keep tasks short and put the detail in spec.md or plan.md")]
    TooLong {
        file: String,
        line: usize,
        /// `task T001's title`, `task T001's description`, `this line`.
        what: String,
        len: usize,
        max: usize,
    },
    #[error("{file}: {count} tasks is more than the {max} a plan can hold")]
    TooManyTasks {
        file: String,
        count: usize,
        max: usize,
    },
}

impl crate::hint::Hint for SpecError {
    fn hint(&self) -> Option<String> {
        Some("fix the file; nothing was changed".into())
    }
}

/// Why a chore is not given an agent, as `plan` and the state show it.
pub(crate) const CHORE_REASON: &str = "handled by git-sprint";

/// Title patterns (regular expressions, matched case-insensitively) of tasks that only ask
/// for what git-sprint does itself: commit, push, open or merge a PR, wait for CI, keep the
/// branch current. Anchored at the start so `Create PR template in .github/…` is work.
pub(crate) const DEFAULT_CHORES: &[&str] = &[
    r"^(git\s+)?commit\b",
    r"^(git\s+)?push(\s+(the\s+|all\s+|your\s+)?(feature\s+)?(branch|changes|commits?|work)\b.*|\s+to\s+.*)?$",
    r"^(create|open|update|merge)(/(create|open|update|merge))?\s+(a\s+|the\s+)?(pr|pull request)\b(\s+(to|into|for|against|with)\b.*)?$",
    r"^(verify|check|ensure|wait for|confirm)\b.*\bci\b.*\b(pass|passes|green|succeed|succeeds)\b",
    r"^wait for ci\b",
    r"^report pr\b.*\bready\b",
    r"^(verify|check|ensure|confirm)\b.*\bworking tree is clean\b",
    r"^(pull|rebase|fetch)\b.*\b(origin|upstream|main|latest)\b",
    r"^(create|switch to|check out|checkout)\s+(a\s+|the\s+)?(feature\s+)?branch\b",
    r"^verify on (the )?main branch\b",
];

/// How [`plan_with`] schedules a file (the `planning` section of the configuration).
#[derive(Debug, Clone)]
pub struct Options {
    /// Story phases wait for each other in file order instead of running side by side.
    pub(crate) serial_stories: bool,
    /// Title patterns of chores to skip; empty runs chores like any task.
    pub(crate) chores: Vec<regex::Regex>,
    /// Where spec-kit's documents live (`specs/<feature>`); `None`: beside the file.
    pub(crate) spec_dir: Option<String>,
}

impl Options {
    /// Compiles chore patterns (case-insensitive); the error names the bad pattern.
    pub(crate) fn chore_patterns(patterns: &[String]) -> Result<Vec<regex::Regex>, String> {
        patterns
            .iter()
            .map(|p| {
                regex::RegexBuilder::new(p)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| {
                        format!("chore pattern `{p}` is not a valid regular expression: {e}")
                    })
            })
            .collect()
    }
}

impl Default for Options {
    fn default() -> Self {
        let defaults: Vec<String> = DEFAULT_CHORES.iter().map(|s| s.to_string()).collect();
        Options {
            serial_stories: false,
            chores: Options::chore_patterns(&defaults).expect("built-in chore patterns compile"),
            spec_dir: None,
        }
    }
}

/// Most tasks a file may hold: path-lock checks are quadratic, and no real file comes close.
pub(crate) const MAX_TASKS: usize = 5000;

/// Most bytes a task's title or description (and any one line) may hold. A
/// task's text goes into the state, every prompt and the audit trail; the
/// longest real ones are a few hundred bytes, so 64 KiB only stops mistakes
/// and abuse (a 10 MB title stored in the state).
pub(crate) const MAX_TEXT: usize = 64 * 1024;

/// Whether two tasks' path locks overlap (same file, a glob matching the
/// other's path, or a directory holding it): such tasks never run at once.
pub(crate) fn paths_overlap(a: &[String], b: &[String]) -> bool {
    let b: Vec<paths::Lock> = b.iter().map(|p| paths::Lock::new(p)).collect();
    a.iter()
        .map(|p| paths::Lock::new(p))
        .any(|la| b.iter().any(|lb| la.overlaps(lb)))
}
