//! `git-sprint`: the command line. Parses, dispatches to `commands`, and
//! renders errors once.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use git_sprint::commands::{self, CommandError, Ctx};
use git_sprint::hint::Hint;

/// Run many AI coding agents on one codebase without losing control of it
///
/// Commit a specs/<feature>/tasks.md and git sprint turns it into tasks, runs
/// agents in their own worktrees, gates and merges their work. Every decision
/// is a commit on refs/ai-sprint: 'git sprint log' (or 'git log
/// refs/ai-sprint') is the audit trail.
#[derive(Debug, Parser)]
#[command(
    name = "git-sprint",
    bin_name = "git sprint",
    version,
    max_term_width = 100
)]
struct Cli {
    /// Run as if started in PATH
    #[arg(short = 'C', global = true, value_name = "PATH")]
    directory: Option<PathBuf>,

    /// Colour the output: auto (on a terminal, unless NO_COLOR is set), always or never
    #[arg(
        long,
        global = true,
        value_name = "WHEN",
        require_equals = true,
        default_value = "auto",
        num_args = 0..=1,
        default_missing_value = "always"
    )]
    color: commands::style::ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(commands::init::Args),
    Demo(commands::demo::Args),
    Start(commands::start::Args),
    Stop(commands::stop::Args),
    Status(commands::status::Args),
    Watch(commands::watch::Args),
    Serve(commands::serve::Args),
    Health(commands::health::Args),
    Plan(commands::plan::Args),
    Ingest(commands::ingest::Args),
    Log(commands::log::Args),
    Show(commands::show::Args),
    Add(commands::add::Args),
    Claim(commands::claim::Args),
    Move(commands::move_::Args),
    Approve(commands::approve::Args),
    Reject(commands::reject::Args),
    #[command(subcommand)]
    Policy(commands::policy::Command),
    Heartbeat(commands::heartbeat::Args),
    Release(commands::release::Args),
    Done(commands::done::Args),
    Retry(commands::retry::Args),
    Sync(commands::sync::Args),
    Cancel(commands::cancel::Args),
    Repair(commands::repair::Args),
    Pause(commands::pause::Args),
    /// Start scheduling new work again after a pause
    ///
    /// With the orchestrator running, the agents it starts from now on get
    /// this shell's environment, as after 'git sprint start'.
    Resume(commands::pause::Args),
    Spawn(commands::spawn::Args),
    Fanout(commands::fanout::Args),
    Multi(commands::multi::Args),
    List(commands::list::Args),
    Agents(commands::agents::Args),
    Prompt(commands::prompt::Args),
    #[command(subcommand)]
    Skill(commands::skill::Command),
    Attach(commands::attach::Args),
    Logs(commands::logs::Args),
    Kill(commands::kill::Args),
    #[command(subcommand)]
    Config(commands::config::Command),
    #[command(subcommand)]
    Notify(commands::notify::Command),
    Recover(commands::recover::Args),
    Uninstall(commands::uninstall::Args),
    Completions(commands::completions::Args),
    InstallMan(commands::man::Args),
    #[command(hide = true)]
    Hook(commands::hook::Args),
    #[command(hide = true)]
    AgentRun(commands::agent_run::Args),
}

fn main() -> ExitCode {
    // A process we started in tmux takes the environment handed to it, not
    // the tmux server's; this re-executes, so it comes before anything else.
    if let Err(e) = git_sprint::fleet::env::adopt_handoff() {
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        eprintln!("git-sprint: {e}{cause}; running with the tmux server's environment instead");
    }
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let cwd = match &cli.directory {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    };
    let stdout = std::io::stdout();
    commands::style::set(commands::style::decide(
        cli.color,
        std::io::IsTerminal::is_terminal(&stdout),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    ));
    let mut out = stdout.lock();
    let mut ctx = Ctx { cwd, out: &mut out };
    let result = dispatch(&mut ctx, &cli.command).and_then(|()| Ok(ctx.out.flush()?));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

fn dispatch(ctx: &mut Ctx<'_>, command: &Command) -> commands::Result {
    match command {
        Command::Init(a) => commands::init::run(ctx, a),
        Command::Demo(a) => commands::demo::run(ctx, a),
        Command::Serve(a) => commands::serve::run(ctx, a),
        Command::Status(a) => commands::status::run(ctx, a),
        Command::Watch(a) => commands::watch::run(ctx, a),
        Command::Add(a) => commands::add::run(ctx, a),
        Command::Claim(a) => commands::claim::run(ctx, a),
        Command::Move(a) => commands::move_::run(ctx, a),
        Command::Approve(a) => commands::approve::run(ctx, a),
        Command::Reject(a) => commands::reject::run(ctx, a),
        Command::Policy(c) => commands::policy::run(ctx, c),
        Command::Heartbeat(a) => commands::heartbeat::run(ctx, a),
        Command::Release(a) => commands::release::run(ctx, a),
        Command::Show(a) => commands::show::run(ctx, a),
        Command::Log(a) => commands::log::run(ctx, a),
        Command::Start(a) => commands::start::run(ctx, a),
        Command::Stop(a) => commands::stop::run(ctx, a),
        Command::Health(a) => commands::health::run(ctx, a),
        Command::Plan(a) => commands::plan::run(ctx, a),
        Command::Done(a) => commands::done::run(ctx, a),
        Command::Retry(a) => commands::retry::run(ctx, a),
        Command::Sync(a) => commands::sync::run(ctx, a),
        Command::Cancel(a) => commands::cancel::run(ctx, a),
        Command::Repair(a) => commands::repair::run(ctx, a),
        Command::Recover(a) => commands::recover::run(ctx, a),
        Command::Pause(a) => commands::pause::run(ctx, a, true),
        Command::Resume(a) => commands::pause::run(ctx, a, false),
        Command::Ingest(a) => commands::ingest::run(ctx, a),
        Command::Uninstall(a) => commands::uninstall::run(ctx, a),
        Command::Hook(a) => commands::hook::run(ctx, a),
        Command::Spawn(a) => commands::spawn::run(ctx, a),
        Command::Fanout(a) => commands::fanout::run(ctx, a),
        Command::Multi(a) => commands::multi::run(ctx, a),
        Command::List(a) => commands::list::run(ctx, a),
        Command::Agents(a) => commands::agents::run(ctx, a),
        Command::Prompt(a) => commands::prompt::run(ctx, a),
        Command::Skill(c) => commands::skill::run(ctx, c),
        Command::Attach(a) => commands::attach::run(ctx, a),
        Command::Logs(a) => commands::logs::run(ctx, a),
        Command::Kill(a) => commands::kill::run(ctx, a),
        Command::Config(c) => commands::config::run(ctx, c),
        Command::Notify(c) => commands::notify::run(ctx, c),
        Command::AgentRun(a) => commands::agent_run::run(ctx, a),
        Command::Completions(a) => commands::completions::run(ctx, a, Cli::command()),
        Command::InstallMan(a) => commands::man::run(ctx, a, Cli::command()),
    }
}

/// Prints `error: …`, its causes, and a `hint:`; a closed stdout (as in
/// `git sprint log | head`) is not an error.
fn report(err: &CommandError) -> ExitCode {
    if let CommandError::Output(io) = err {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {err}");
    let mut source = std::error::Error::source(err);
    // `transparent` variants repeat their inner message as the first source.
    let mut last = err.to_string();
    while let Some(cause) = source {
        let text = cause.to_string();
        if text != last {
            let _ = writeln!(stderr, "  caused by: {text}");
        }
        last = text;
        source = cause.source();
    }
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
    ExitCode::from(err.exit_code())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GIT_SPRINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
