//! `git sprint config`: show or edit the project configuration.

use super::{Ctx, Result};

pub(crate) mod edit;
pub(crate) mod show;

/// Show or edit the configuration (.git-sprint.yaml plus git config sprint.*)
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    Show(show::Args),
    Edit(edit::Args),
}

/// Runs a `git sprint config` subcommand.
pub fn run(ctx: &mut Ctx<'_>, command: &Command) -> Result {
    match command {
        Command::Show(a) => show::run(ctx, a),
        Command::Edit(a) => edit::run(ctx, a),
    }
}
