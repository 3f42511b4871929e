//! `git sprint fanout`: n workers on one prompt, as one batch.

use super::spawn::{resolve, AgentOpts};
use super::{CommandError, Ctx, Result};
use crate::fleet::slug;

/// Start N agents on the same prompt, to compare or pick the best result
///
/// Workers (and branches) are <name>-1 … <name>-N, grouped as batch <name>:
/// 'git sprint list --batch <name>' shows them, 'git sprint kill --batch
/// <name>' stops them. The name defaults to the prompt's first words.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many workers (1-50)
    #[arg(value_parser = clap::value_parser!(u32).range(1..=50))]
    pub(crate) count: u32,
    /// Name prefix and batch id (default: from the prompt)
    pub(crate) name: Option<String>,
    /// What every agent should do
    #[arg(long, short = 'p')]
    pub(crate) prompt: String,
    #[command(flatten)]
    pub(crate) agent: AgentOpts,
}

/// Runs `git sprint fanout`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let name = args.name.clone().unwrap_or_else(|| slug(&args.prompt));
    crate::state::check_name("batch", &name).map_err(CommandError::usage)?;
    let r = resolve(ctx, &args.agent)?;
    let specs: Vec<_> = (1..=args.count)
        .map(|i| {
            r.spec(
                &format!("{name}-{i}"),
                &args.prompt,
                args.agent.model.as_deref(),
            )
        })
        .collect();
    r.start(ctx, &specs, Some(&name))
}
