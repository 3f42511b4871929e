//! `git sprint prompt`: type a follow-up into a worker's session.

use super::{person, Ctx, Result};
use crate::fleet::{Fleet, FleetError};
use crate::state::Transition;

/// Type TEXT into a running worker's session, then press Enter
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker
    pub(crate) id: String,
    /// What to type
    pub(crate) text: String,
}

/// Runs `git sprint prompt`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    let actor = person(&fleet.store, None);
    let a = &fleet.running_worker(&actor, &args.id)?;
    fleet
        .tmux
        .send_text(&a.session, &args.text)
        .map_err(FleetError::from)?;
    let id = args.id.clone();
    let text = args.text.clone();
    fleet.store.transact(&actor, |txn| {
        if let Some(mut a) = txn.agent(&id)? {
            a.followups.push(text.clone());
            txn.put_agent(&a)?;
            txn.subject(format!("fleet: prompt {id}"));
            txn.record(Transition {
                task: id.clone(),
                from: a.state.to_string(),
                to: a.state.to_string(),
                reason: Some(text.chars().take(200).collect()),
                policy: None,
            });
        }
        Ok(())
    })?;
    writeln!(ctx.out, "Sent to {}", args.id)?;
    Ok(())
}
