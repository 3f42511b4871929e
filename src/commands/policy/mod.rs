//! `git sprint policy`: check and show the policy rules.

use super::{Ctx, Result};

pub(crate) mod show;
pub(crate) mod validate;

/// Check or show the policy rules that judge each task's diff
///
/// Rules judge each task's diff after the Developer: `deny` sends the task
/// back with the rule as feedback, `require_approval` holds the merge for
/// 'git sprint approve', `warn` lets it through on the record. The sprint
/// runs on the file as committed on the base branch.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Validate(validate::Args),
    Show(show::Args),
}

/// Runs a `git sprint policy` subcommand.
pub fn run(ctx: &mut Ctx<'_>, command: &Command) -> Result {
    match command {
        Command::Validate(a) => validate::run(ctx, a),
        Command::Show(a) => show::run(ctx, a),
    }
}
