//! `git sprint start`: run the orchestrator.

use std::time::Duration;

use super::{current_exe, CommandError, Ctx, Result};
use crate::daemon::{self, lock};
use crate::fleet::Fleet;

/// Start the sprint: agents build the committed specs, through the gates
///
/// Initializes the repository if needed, ingests the specs committed on the
/// base branch, and starts the orchestrator in the tmux session
/// 'orchestrator' of the repository's tmux server (or here, with
/// --foreground). The orchestrator starts Developers on ready tasks, runs
/// the review gates, Testers and test gates, and retries lost attempts; it
/// sleeps until something changes. One runs per repository; 'git sprint
/// stop' stops it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run in this terminal instead of a tmux session
    #[arg(long)]
    pub foreground: bool,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    if store.tip()?.is_none() {
        super::init::run(
            ctx,
            &super::init::Args {
                no_hooks: false,
                shared_hooks: false,
            },
        )?;
    }
    let fleet = Fleet::open(&ctx.cwd)?;
    let tmux = fleet.tmux.socket().to_owned();
    if let Some(pid) = lock::holder(&fleet.common_dir) {
        writeln!(
            ctx.out,
            "The orchestrator is already running (pid {pid}); watch it with: tmux -L {tmux} attach -t {}",
            daemon::SESSION
        )?;
        return Ok(());
    }
    // The configuration the orchestrator will run with, checked here so a
    // mistake shows now rather than in its log.
    let root = fleet.main_worktree()?;
    let loaded = crate::config::load_from(store.repo(), Some(&root))?;
    if let Some(notice) = loaded.notice() {
        writeln!(ctx.out, "note: {notice}")?;
    }
    let actor = super::person(&store, None);
    match super::ingest::ingest_all(&store, &actor, None, &[]) {
        Ok(outcomes) => {
            for o in outcomes.iter().filter(|o| !o.unchanged) {
                super::ingest::report(ctx.out, o)?;
            }
        }
        Err(CommandError::Ingest(crate::ingest::IngestError::NoSpecs { .. })) => {}
        Err(e) => return Err(e),
    }
    let exe = current_exe()?;
    if args.foreground {
        writeln!(ctx.out, "Orchestrator running here; Ctrl-C stops it")?;
        ctx.out.flush()?;
        daemon::run(&ctx.cwd, exe)?;
        return Ok(());
    }
    let log = fleet
        .common_dir
        .join("sprint")
        .join("logs")
        .join("orchestrator.log");
    std::fs::create_dir_all(log.parent().expect("log dir"))?;
    let mut env: Vec<(String, String)> = vec![(
        "GIT_SPRINT_LOG".into(),
        std::env::var("GIT_SPRINT_LOG").unwrap_or_else(|_| "info".into()),
    )];
    for var in [crate::fleet::SOCKET_ENV, "GIT_SPRINT_NOW"] {
        if let Ok(v) = std::env::var(var) {
            env.push((var.to_owned(), v));
        }
    }
    // A session left by an orchestrator that was killed (its lock is free).
    let _ = fleet.tmux.kill_session(daemon::SESSION);
    let argv = vec![exe.into_os_string(), "start".into(), "--foreground".into()];
    fleet
        .tmux
        .new_session_logged(daemon::SESSION, &root, &argv, &env, &log)
        .map_err(crate::fleet::FleetError::from)?;
    // The session is up; the orchestrator holds its lock a moment later.
    for _ in 0..100 {
        if let Some(pid) = lock::holder(&fleet.common_dir) {
            writeln!(
                ctx.out,
                "Orchestrator started (pid {pid}) in tmux session '{}'",
                daemon::SESSION
            )?;
            writeln!(
                ctx.out,
                "watch it: tmux -L {tmux} attach -t {}   log: {}",
                daemon::SESSION,
                log.display()
            )?;
            return Ok(());
        }
        if !fleet.tmux.has_session(daemon::SESSION).unwrap_or(false) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(CommandError::Failed {
        message: "the orchestrator did not start".into(),
        hint: Some(format!("see its log: {}", log.display())),
    })
}
