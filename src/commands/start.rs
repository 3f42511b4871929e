//! `git sprint start`: run the orchestrator.

use std::time::Duration;

use super::{current_exe, CommandError, Ctx, IoContext, Result};
use crate::daemon::{self, lock};
use crate::fleet::env::Environment;
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
///
/// The agents it starts get this shell's environment (saved in
/// $GIT_COMMON_DIR/sprint/environment, readable by you only), not the tmux
/// server's: run start again, while it runs, to hand new agents a changed
/// environment.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run in this terminal instead of a tmux session
    #[arg(long)]
    pub(crate) foreground: bool,
    /// Started by 'start' itself in tmux: the environment is saved already
    #[arg(long, hide = true, requires = "foreground")]
    pub(crate) handed_over: bool,
}

/// Runs `git sprint start`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    if store.tip()?.is_none() {
        super::init::setup(ctx, &super::init::Options::default())?;
    }
    let fleet = Fleet::open(&ctx.cwd)?;
    let tmux = fleet.tmux.socket().to_owned();
    // The environment the orchestrator's agents get, this shell's; it holds
    // what the shell holds (API keys), hence a file only the user can read.
    let env = Environment::of_this_process();
    if !args.handed_over {
        env.save_for_sprint(&fleet.common_dir)
            .map_err(crate::fleet::FleetError::from)?;
    }
    if let Some(pid) = lock::holder(&fleet.common_dir) {
        writeln!(
            ctx.out,
            "The orchestrator is already running (pid {pid}); new agents will use this shell's environment"
        )?;
        writeln!(
            ctx.out,
            "watch it: tmux -L {tmux} attach -t {}",
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
    // So is the policy: on an invalid one nothing starts.
    crate::policy::load(store.repo())?;
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
    if let Some(line) = crate::fleet::contain::sandbox_status(&fleet).1 {
        writeln!(ctx.out, "{line}")?;
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
    let log_dir = log.parent().expect("log dir");
    std::fs::create_dir_all(log_dir).doing("creating the log directory", log_dir)?;
    // The orchestrator (and so its gates) runs with this shell's
    // environment too, not the tmux server's.
    let mut env = env;
    if env.get("GIT_SPRINT_LOG").is_none() {
        env.set("GIT_SPRINT_LOG", "info");
    }
    // A session left by an orchestrator that was killed (its lock is free).
    let _ = fleet.tmux.kill_session(daemon::SESSION);
    let argv = vec![
        exe.into_os_string(),
        "start".into(),
        "--foreground".into(),
        "--handed-over".into(),
    ];
    fleet.start_handed_over(daemon::SESSION, &root, &argv, &env, &log)?;
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
    // Say why, from the error the orchestrator printed as it stopped.
    let (why, hint) = last_error(&std::fs::read_to_string(&log).unwrap_or_default());
    Err(CommandError::Failed {
        message: match why {
            Some(why) => format!("the orchestrator did not start: {why}"),
            None => "the orchestrator did not start".into(),
        },
        hint: Some(match hint {
            Some(hint) => format!("{hint} (its log: {})", log.display()),
            None => format!("see its log: {}", log.display()),
        }),
    })
}

/// The last `error: …` block of a log (with its `caused by:` lines folded
/// in) and the `hint:` after it, as `main`'s report prints them.
fn last_error(log: &str) -> (Option<String>, Option<String>) {
    let lines: Vec<&str> = log.lines().collect();
    let Some(at) = lines.iter().rposition(|l| l.starts_with("error: ")) else {
        return (None, None);
    };
    let mut why = lines[at]["error: ".len()..].to_owned();
    let mut hint = None;
    for line in &lines[at + 1..] {
        if let Some(cause) = line.trim_start().strip_prefix("caused by: ") {
            why.push_str(": ");
            why.push_str(cause);
        } else if let Some(h) = line.strip_prefix("hint: ") {
            hint = Some(h.to_owned());
        }
    }
    (Some(why), hint)
}

#[cfg(test)]
mod tests {
    use super::last_error;

    #[test]
    fn the_last_error_of_the_log_is_the_reason() {
        let log = "INFO started\nerror: old\nerror: cannot lock\n  caused by: busy\nhint: wait\n";
        assert_eq!(
            last_error(log),
            (Some("cannot lock: busy".into()), Some("wait".into()))
        );
        assert_eq!(last_error("INFO nothing wrong\n"), (None, None));
    }
}
