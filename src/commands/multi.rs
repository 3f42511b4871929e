//! `git sprint multi`: several workers with their own prompts, as one batch.

use super::spawn::{resolve, AgentOpts};
use super::{CommandError, Ctx, Result};

/// Start several agents at once, each with its own name and prompt
///
/// Each worker is given as <name>:<prompt>, e.g.
///   git sprint multi fix-auth:"Fix login" add-tests:"Add test coverage"
/// They form one batch (default id: multi-<time>).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Workers as <name>:<prompt>
    #[arg(required = true, value_name = "NAME:PROMPT")]
    pub(crate) workers: Vec<String>,
    /// The batch id (default: multi-<time>)
    #[arg(long)]
    pub(crate) batch: Option<String>,
    #[command(flatten)]
    pub(crate) agent: AgentOpts,
}

/// Runs `git sprint multi`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let mut pairs = Vec::new();
    for w in &args.workers {
        let Some((name, prompt)) = w.split_once(':') else {
            return Err(CommandError::Usage {
                message: format!("'{w}' is not <name>:<prompt>"),
                hint: Some("write each worker as name:\"what to do\"".into()),
            });
        };
        if prompt.trim().is_empty() {
            return Err(CommandError::usage(format!(
                "worker '{name}' has an empty prompt"
            )));
        }
        crate::state::check_name("worker", name).map_err(CommandError::usage)?;
        pairs.push((name.to_owned(), prompt.to_owned()));
    }
    let batch = match &args.batch {
        Some(b) => {
            crate::state::check_name("batch", b).map_err(CommandError::usage)?;
            b.clone()
        }
        None => format!(
            "multi-{}",
            crate::clock::rfc3339(crate::clock::now())
                .replace(['-', ':'], "")
                .trim_end_matches('Z')
                .replace('T', "-")
        ),
    };
    let r = resolve(ctx, &args.agent)?;
    let specs: Vec<_> = pairs
        .iter()
        .map(|(n, p)| r.spec(n, p, args.agent.model.as_deref()))
        .collect();
    r.start(ctx, &specs, Some(&batch))
}
