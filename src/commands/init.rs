//! `git sprint init`: start keeping sprint state in this repository.

use super::{short, Ctx, Result};
use crate::clock;
use crate::hooks::{self, Installed};
use crate::state::{Actor, SprintMeta, StateError, Transition};

/// Set up git-sprint in this repository: the state ref and the git hooks
///
/// Creates refs/ai-sprint if it is missing (but refuses when sprint
/// branches, worktrees or a backup show that a state was lost: 'git sprint
/// recover' restores it), writes a commented .git-sprint.yaml if there is
/// none, and installs the post-commit, post-merge, post-applypatch,
/// post-rewrite and prepare-commit-msg hooks (any hook already there is kept
/// and still runs; run init again to add a hook a newer version brings). A
/// core.hooksPath outside this repository is refused unless --shared-hooks
/// is given. The state is shared by every worktree of the repository;
/// nothing in your branches or working tree changes. Running it again
/// changes nothing.
///
/// With --gates, the new .git-sprint.yaml comes with a ready set of quality
/// gates for the toolchain (format, lint, complexity, tests, coverage,
/// security audit), built into this binary.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Do not install git hooks
    #[arg(long, conflicts_with = "shared_hooks")]
    pub(crate) no_hooks: bool,
    /// Install into core.hooksPath even when it is outside this repository
    /// (the hooks then run for every repository that shares it)
    #[arg(long)]
    pub(crate) shared_hooks: bool,
    /// Write the new .git-sprint.yaml with the ready gate set for this toolchain
    #[arg(long, value_name = "TOOLCHAIN", value_parser = gate_sets())]
    pub(crate) gates: Option<String>,
}

/// The names of the gate sets built in (`rust`, `python`, `node`).
fn gate_sets() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(crate::gates::TEMPLATES.map(|(name, _)| name))
}

/// The hooks directory of the repository of `store`, checked to be its own
/// unless `shared` (for init and uninstall).
pub(crate) fn hooks_dir(store: &crate::state::Store, shared: bool) -> Result<std::path::PathBuf> {
    let top = super::worktree_root(store)?;
    let dir = hooks::hooks_dir(&top)?;
    let main = crate::worker::worktree::Git::new(&top)
        .main_worktree()
        .ok()
        .flatten();
    let mut inside = vec![store.repo().common_dir(), top.as_path()];
    inside.extend(main.as_deref());
    hooks::check_location(&dir, &inside, shared)?;
    Ok(dir)
}

/// What `init` does: [`Args`] resolved, for callers without a command line
/// (`start` and the demo set up a repository the way `init` does).
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Leave the git hooks out.
    pub(crate) no_hooks: bool,
    /// Install into a core.hooksPath outside the repository.
    pub(crate) shared_hooks: bool,
    /// The built-in gate set to write a new .git-sprint.yaml with.
    pub(crate) gates: Option<String>,
}

/// Runs `git sprint init`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    setup(
        ctx,
        &Options {
            no_hooks: args.no_hooks,
            shared_hooks: args.shared_hooks,
            gates: args.gates.clone(),
        },
    )
}

/// Sets up git-sprint in the repository of `ctx` as `opts` say.
pub(crate) fn setup(ctx: &mut Ctx<'_>, opts: &Options) -> Result {
    let store = ctx.store()?;
    if store.tip()?.is_none() {
        // A new state over an old sprint's branches would run its tasks
        // again from scratch: refuse, and point to recover.
        let evidence = store.evidence()?;
        if !evidence.is_empty() {
            return Err(StateError::Lost {
                evidence: evidence.to_string(),
            }
            .into());
        }
    }
    // Refuse before writing anything: a refusal leaves no half set-up repository.
    let top = super::worktree_root(&store)?;
    let gates = match &opts.gates {
        Some(name) => {
            let file = crate::config::path(&top);
            if file.exists() {
                return Err(super::CommandError::Failed {
                    message: format!(
                        "{} exists already; --gates writes a new one",
                        file.display()
                    ),
                    hint: Some(format!(
                        "move it aside, run 'git sprint init --gates {name}' again and carry your settings over"
                    )),
                });
            }
            crate::gates::template(name)
        }
        None => None,
    };
    let hooks_dir = if opts.no_hooks {
        None
    } else {
        Some(hooks_dir(&store, opts.shared_hooks)?)
    };
    let done = store.transact(&Actor::named("git-sprint"), |txn| {
        if txn.meta()?.is_some() {
            return Ok(());
        }
        txn.put_meta(&SprintMeta::new(&clock::now_rfc3339()))?;
        txn.subject("sprint: initialized");
        txn.record(Transition {
            from: "none".into(),
            to: "initialized".into(),
            ..Default::default()
        });
        Ok(())
    })?;
    match done.commit {
        Some(id) => writeln!(
            ctx.out,
            "Initialized sprint state at refs/ai-sprint ({})",
            short(&id)
        )?,
        None => {
            let tip = store.tip()?.map(|t| short(&t)).unwrap_or_default();
            writeln!(
                ctx.out,
                "Sprint state already initialized (refs/ai-sprint at {tip})"
            )?
        }
    }
    if let Some(path) = crate::config::write_example(&top, gates)? {
        match &opts.gates {
            Some(name) => writeln!(
                ctx.out,
                "Wrote {} with the {name} gates (commit it)",
                path.display()
            )?,
            None => writeln!(ctx.out, "Wrote {} (commit it)", path.display())?,
        }
    }
    let Some(dir) = hooks_dir else {
        return Ok(());
    };
    let bin = super::current_exe()?;
    let outcomes = hooks::install(&dir, &bin)?;
    for (name, outcome) in &outcomes {
        let what = match outcome {
            Installed::New => "installed",
            Installed::Chained => "installed; your existing hook is kept and runs first",
            Installed::Updated => "updated",
            Installed::Unchanged => continue,
        };
        writeln!(ctx.out, "{name} hook {what}")?;
    }
    if outcomes.iter().all(|(_, o)| *o == Installed::Unchanged) {
        writeln!(ctx.out, "Hooks already installed; nothing changed")?;
    }
    Ok(())
}
