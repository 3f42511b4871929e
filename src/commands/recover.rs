//! `git sprint recover`: put back a lost `refs/ai-sprint`.

use super::{person, short, write_json, CommandError, Ctx, Result};
use crate::state::recover::{self, Recovery};
use crate::state::{BACKUP_REF, STATE_REF};

/// Restore refs/ai-sprint from the last state recorded outside it
///
/// Every state write also goes into the backup (refs/ai-sprint-backup and
/// its reflog); when refs/ai-sprint is gone (deleted by hand, or by a tool),
/// this puts it back at the newest recorded state commit (the backup, else
/// the ref's reflog) and records the
/// recovery in the audit trail. With --fresh it starts a new, empty state
/// instead, keeping the old one as refs/ai-sprint-abandoned/<time>; the
/// Refinery still never merges a task twice, since it reads the integration
/// branch's Sprint-Task trailers.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start a new, empty state instead of restoring the old one
    #[arg(long)]
    pub(crate) fresh: bool,
    /// Record the recovery as NAME instead of your git user.name
    #[arg(long = "as", value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `git sprint recover`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let actor = person(&store, args.actor.as_deref());
    if args.fresh {
        let Some(fresh) = recover::start_fresh(&store, &actor)? else {
            let tip = store.tip()?.map(|t| short(&t)).unwrap_or_default();
            return Err(CommandError::Failed {
                message: format!(
                    "{STATE_REF} exists (at {tip}): --fresh only starts over when it is missing"
                ),
                hint: Some(format!(
                    "to abandon it, delete it first: git update-ref -d {STATE_REF}"
                )),
            });
        };
        if args.json {
            return write_json(ctx.out, &fresh);
        }
        writeln!(
            ctx.out,
            "Started a new sprint state at {STATE_REF} ({})",
            short(&fresh.commit)
        )?;
        if !fresh.evidence.is_empty() {
            writeln!(ctx.out, "left as they were: {}", fresh.evidence)?;
        }
        if let Some(kept) = &fresh.kept_as {
            writeln!(ctx.out, "the old state is kept as {kept}")?;
        }
        return Ok(());
    }
    let recovery = recover::recover(&store, &actor)?;
    if args.json {
        write_json(ctx.out, &recovery)?;
    } else {
        match &recovery {
            Recovery::Present { tip } => writeln!(
                ctx.out,
                "{STATE_REF} is at {}: nothing to recover",
                short(&tip)
            )?,
            Recovery::Restored {
                source,
                commit,
                recorded,
                features,
                tasks,
                agents,
                skipped,
            } => {
                for s in skipped {
                    writeln!(ctx.out, "skipped {s}")?;
                }
                writeln!(
                    ctx.out,
                    "Restored {STATE_REF} from {source} at {}: {features} feature{}, {tasks} task{}, {agents} agent{}",
                    short(&commit),
                    plural(*features),
                    plural(*tasks),
                    plural(*agents),
                )?;
                if let Some(r) = recorded {
                    writeln!(ctx.out, "recorded as {}", short(&r))?;
                }
                writeln!(
                    ctx.out,
                    "a running orchestrator carries on from there; 'git sprint start' starts one"
                )?;
            }
            Recovery::Nothing { evidence, skipped } => {
                for s in skipped {
                    writeln!(ctx.out, "skipped {s}")?;
                }
                if evidence.is_empty() {
                    writeln!(
                        ctx.out,
                        "Nothing to recover: {STATE_REF} is missing and nothing shows an earlier sprint"
                    )?;
                    writeln!(ctx.out, "'git sprint init' starts one")?;
                }
            }
        }
    }
    if let Recovery::Nothing { evidence, .. } = &recovery {
        if !evidence.is_empty() {
            return Err(CommandError::Failed {
                message: format!(
                    "nothing to recover: no {BACKUP_REF} and no reflog for {STATE_REF}, but {evidence}"
                ),
                hint: Some(
                    "'git sprint recover --fresh' starts a new state; branches and worktrees stay, \
                     and no task already on an integration branch is merged again"
                        .into(),
                ),
            });
        }
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
