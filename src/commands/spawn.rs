//! `git sprint spawn`: one worker on one prompt.

use super::{person, CommandError, Ctx, Result};
use crate::config::{self, Loaded};
use crate::fleet::{Fleet, WorkerSpec};
use crate::worker::profile::AgentProfile;

/// Start one agent in its own worktree, branch and tmux session
///
/// Creates the worktree under $GIT_COMMON_DIR/sprint/worktrees/<name> on a
/// new branch <name>, copies the setup files and runs the setup commands from
/// .git-sprint.yaml (as committed on the base branch), then runs the agent in
/// tmux session <name>. The agent's
/// uncommitted work is committed as a WIP commit when it ends. If anything
/// fails part way, everything made so far is removed again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker's name: also its branch and tmux session
    pub(crate) name: String,
    /// What the agent should do
    #[arg(long, short = 'p')]
    pub(crate) prompt: String,
    #[command(flatten)]
    pub(crate) agent: AgentOpts,
}

/// Which agent runs, on what, from where (shared by spawn, fanout and multi).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct AgentOpts {
    /// Agent profile from the config, or a preset (default: the developer role's)
    #[arg(long, value_name = "PROFILE", conflicts_with = "agent_command")]
    pub(crate) agent: Option<String>,
    /// Run this shell command as the agent (prompt in $SPRINT_PROMPT); needs no config
    #[arg(long, value_name = "CMD")]
    pub(crate) agent_command: Option<String>,
    /// The model to ask the agent for
    #[arg(long, value_name = "M")]
    pub(crate) model: Option<String>,
    /// Start from this revision (default: the configured base branch, else HEAD)
    #[arg(long, value_name = "REV")]
    pub(crate) from: Option<String>,
}

/// The fleet, the configuration and the resolved agent of a spawning command.
pub(crate) struct Resolved {
    pub(crate) fleet: Fleet,
    pub(crate) loaded: Loaded,
    pub(crate) profile_name: String,
    pub(crate) profile: AgentProfile,
    pub(crate) from: String,
}

/// Opens the fleet, loads the config and resolves `opts` (parse, then resolve:
/// nothing is created until every option is known to be good).
pub(crate) fn resolve(ctx: &Ctx<'_>, opts: &AgentOpts) -> Result<Resolved> {
    let mut fleet = Fleet::open(&ctx.cwd)?;
    let root = fleet.main_worktree()?;
    let loaded = config::load_from(fleet.store.repo(), Some(&root))?;
    fleet.identity = loaded.config.identity.clone();
    fleet.configure_pool(&loaded.config.worktrees);
    let (profile_name, profile) = match (&opts.agent_command, &opts.agent) {
        (Some(cmd), _) => ("command".to_owned(), AgentProfile::from_command(cmd)),
        (None, Some(name)) => (
            name.clone(),
            loaded.config.agent(name).map_err(|m| CommandError::Usage {
                message: m,
                hint: Some("define it under `agents:` with 'git sprint config edit'".into()),
            })?,
        ),
        (None, None) => {
            let name = loaded.config.roles.developer.agent.clone();
            let profile = loaded
                .config
                .agent(&name)
                .map_err(|m| CommandError::Failed {
                    message: m,
                    hint: None,
                })?;
            (name, profile)
        }
    };
    let from = match &opts.from {
        Some(rev) => rev.clone(),
        None => {
            let base = &loaded.config.base_branch;
            if fleet
                .git
                .is_commit(base)
                .map_err(crate::fleet::FleetError::from)?
            {
                base.clone()
            } else {
                "HEAD".to_owned()
            }
        }
    };
    Ok(Resolved {
        fleet,
        loaded,
        profile_name,
        profile,
        from,
    })
}

impl Resolved {
    /// A fleet worker on branch `id`.
    pub(crate) fn spec(&self, id: &str, prompt: &str, model: Option<&str>) -> WorkerSpec {
        WorkerSpec {
            id: id.to_owned(),
            branch: id.to_owned(),
            role: "fleet".into(),
            task: None,
            paths: Vec::new(),
            prompt: prompt.to_owned(),
            profile_name: self.profile_name.clone(),
            profile: self.profile.clone(),
            model: model.map(str::to_owned),
            from: self.from.clone(),
        }
    }

    /// Starts `specs` and prints one line per worker.
    pub(crate) fn start(
        &self,
        ctx: &mut Ctx<'_>,
        specs: &[WorkerSpec],
        batch: Option<&str>,
    ) -> Result {
        if let Some(notice) = self.loaded.notice() {
            writeln!(ctx.out, "note: {notice}")?;
        }
        let actor = person(&self.fleet.store, None);
        let exe = super::current_exe()?;
        let agents = self
            .fleet
            .spawn(&actor, &exe, specs, batch, &self.loaded.config.setup)?;
        for a in &agents {
            writeln!(
                ctx.out,
                "Started {} ({}) on branch {} from {} in {}",
                a.id, a.profile, a.branch, a.base, a.worktree
            )?;
        }
        if let Some(b) = batch {
            writeln!(ctx.out, "Batch {b}: {} workers", agents.len())?;
        }
        writeln!(
            ctx.out,
            "hint: 'git sprint list' shows progress, 'git sprint attach {}' opens the session",
            agents.first().map(|a| a.id.as_str()).unwrap_or("<name>")
        )?;
        Ok(())
    }
}

/// Runs `git sprint spawn`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let r = resolve(ctx, &args.agent)?;
    let spec = r.spec(&args.name, &args.prompt, args.agent.model.as_deref());
    r.start(ctx, &[spec], None)
}
