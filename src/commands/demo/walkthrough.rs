//! `git sprint demo`: the README's first run. It makes a throwaway
//! repository holding a tiny project, its spec and tasks.md, and a config
//! whose agent is the scripted stand-in; then it runs the whole sprint and
//! prints each state transition as it lands on `refs/ai-sprint`.
//!
//! Everything the demo needs is compiled into the binary (the project and
//! spec under `templates/demo/`, the scripted agent from `fixtures/`), so it
//! runs from any directory after `cargo install`, without network. The
//! orchestrator runs on a thread of this process through
//! [`daemon::run_until`], so the demo can stop it, and Ctrl-C (which stops
//! the orchestrator) still cleans up. Progress comes from inotify on the
//! repository's refs, like the orchestrator's own wake-ups: no polling.
//! The agents run on a private tmux server that is killed when the demo
//! ends, whatever the outcome.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gix::ObjectId;

use crate::commands::{self, CommandError, Ctx};
use crate::daemon::{self, watch};
use crate::fleet::{Fleet, FleetError, SOCKET_ENV};
use crate::hint::Hint;
use crate::state::log::{self, Entry};
use crate::state::{Actor, FeatureStatus, Snapshot, StateError, Store, TaskStatus};
use crate::worker::tmux::Tmux;

/// The demo's feature, as named by its spec directory.
pub(crate) const FEATURE: &str = "001-notes";

/// The project as first committed: (path, content, executable).
const PROJECT: &[(&str, &str, bool)] = &[
    (
        "README.md",
        include_str!("../../../templates/demo/README.md"),
        false,
    ),
    (
        "check.sh",
        include_str!("../../../templates/demo/check.sh"),
        true,
    ),
    (
        ".git-sprint.yaml",
        include_str!("../../../templates/demo/git-sprint.yaml"),
        false,
    ),
    (
        "tools/scripted-agent",
        include_str!("../../../fixtures/agents/scripted-agent"),
        true,
    ),
];

/// The spec, committed second, as a person would after planning.
const SPEC: &[(&str, &str, bool)] = &[
    (
        "specs/001-notes/spec.md",
        include_str!("../../../templates/demo/specs/001-notes/spec.md"),
        false,
    ),
    (
        "specs/001-notes/tasks.md",
        include_str!("../../../templates/demo/specs/001-notes/tasks.md"),
        false,
    ),
];

/// Lines of a failed agent's output shown.
const LOG_TAIL: usize = 12;

/// The identity of the demo repository's own commits.
const USER_NAME: &str = "git-sprint demo";
const USER_EMAIL: &str = "demo@git-sprint.invalid";

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Make the repository here and leave it; else in a temp dir, removed.
    pub(crate) keep: Option<PathBuf>,
    /// Give up when the feature is not done after this long.
    pub(crate) timeout: Duration,
    /// This binary, for hooks and agent sessions to call back.
    pub(crate) exe: PathBuf,
    /// Serve the board here during the sprint and after it until Ctrl-C.
    pub(crate) serve: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{} is not empty; the demo makes a new repository there", path.display())]
    NotEmpty { path: PathBuf },

    #[error("{action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Git(#[from] crate::worker::worktree::WorktreeError),

    #[error("{step}")]
    Step {
        step: &'static str,
        #[source]
        source: Box<CommandError>,
    },

    #[error(transparent)]
    State(#[from] StateError),

    #[error(transparent)]
    Fleet(#[from] FleetError),

    #[error(transparent)]
    Watch(#[from] watch::WatchError),

    #[error("the orchestrator failed")]
    Daemon(#[source] daemon::DaemonError),

    #[error("the orchestrator stopped before {FEATURE} was done (interrupted?)")]
    Interrupted { dir: PathBuf },

    #[error("{FEATURE} was not done after {}s", after.as_secs())]
    TimedOut { after: Duration, dir: PathBuf },

    #[error("task {task} failed: {reason}")]
    TaskFailed {
        task: String,
        reason: String,
        dir: PathBuf,
    },

    #[error("writing output")]
    Output(#[from] std::io::Error),
}

impl Hint for DemoError {
    fn hint(&self) -> Option<String> {
        let look = |dir: &Path| {
            let dir = dir.display();
            format!(
                "the repository is kept for a look: git sprint -C {dir} status; git sprint -C {dir} log; git sprint -C {dir} logs <worker>"
            )
        };
        match self {
            DemoError::NotEmpty { .. } => {
                Some("give --keep a new or empty directory, or leave it out".into())
            }
            DemoError::Git(_) => Some("is git 2.32 or newer installed and on PATH?".into()),
            DemoError::Step { source, .. } => source.hint(),
            DemoError::State(e) => e.hint(),
            DemoError::Fleet(e) => e.hint(),
            DemoError::Daemon(e) => e.hint(),
            DemoError::Interrupted { dir }
            | DemoError::TimedOut { dir, .. }
            | DemoError::TaskFailed { dir, .. } => Some(look(dir)),
            DemoError::Io { .. } | DemoError::Watch(_) | DemoError::Output(_) => None,
        }
    }
}

type Result<T = ()> = std::result::Result<T, DemoError>;

/// Runs the demo, writing its story to `out`. Ok only when the feature is
/// done.
///
/// The demo owns its process: it sets the environment every process it
/// starts inherits (no global or system git config, its own tmux socket),
/// so call it before any other thread runs.
pub(crate) fn run(out: &mut dyn Write, opts: &Options) -> Result {
    let socket = isolate_environment();
    let tmux = Tmux::new(socket);
    tmux.check().map_err(FleetError::from)?;

    let mut place = Place::new(opts.keep.as_deref())?;
    let dir = place.path.clone();
    writeln!(out, "Demo repository: {}", dir.display())?;
    create_project(&dir)?;
    writeln!(
        out,
        "Committed a tiny shell project, its check.sh, and {} (3 stories, 11 tasks);",
        SPEC[1].0
    )?;
    writeln!(
        out,
        "the agent is tools/scripted-agent, a stand-in for an AI that writes the files its task names."
    )?;

    // What `git sprint start` does before it starts the orchestrator.
    let mut quiet = Vec::new();
    let mut ctx = Ctx {
        cwd: dir.clone(),
        out: &mut quiet,
    };
    commands::init::setup(&mut ctx, &commands::init::Options::default())
        .map_err(step("setting up git-sprint in the demo repository"))?;
    let store = Store::discover(&dir)?;
    let outcomes = commands::ingest::ingest_all(&store, &Actor::named(USER_NAME), None, &[])
        .map_err(step("reading the demo's tasks.md into the sprint state"))?;
    for o in &outcomes {
        commands::ingest::report(out, o).map_err(step("reporting the ingest"))?;
    }

    // Declared after `place`, so dropped first: the agents go before their
    // directory does.
    let _server = Server(tmux);
    // `git sprint start` keeps the server up with its orchestrator session;
    // running in-process, the demo keeps it up with this one. Without it
    // the server exits whenever no agent runs, racing the next agent's start.
    let keeper = ["tail", "-f", "/dev/null"].map(std::ffi::OsString::from);
    _server
        .0
        .new_session("demo", &dir, &keeper, &[])
        .map_err(FleetError::from)?;
    writeln!(
        out,
        "\nSprint started: developers and testers run in tmux (socket {}).\n",
        _server.0.socket()
    )?;
    // Declared after the tmux server: the board goes first.
    let board = match opts.serve {
        Some(addr) => Some(Board::start(out, &opts.exe, &dir, addr)?),
        None => None,
    };
    let started = Instant::now();
    let result = sprint(out, &store, &dir, opts, started);
    if result.is_err() {
        place.keep = true;
        return result;
    }
    writeln!(
        out,
        "\n{FEATURE} is done in {:.1}s: every task developed, reviewed, tested and merged.",
        started.elapsed().as_secs_f64()
    )?;
    finale(out, &dir)?;
    if let Some(board) = board {
        board.until_interrupted(out)?;
    }
    if place.keep {
        writeln!(
            out,
            "\nThe repository stays in {}; look around:",
            dir.display()
        )?;
        writeln!(out, "  cd {}", dir.display())?;
        writeln!(
            out,
            "  git sprint status; git sprint log; git sprint show T005"
        )?;
        writeln!(
            out,
            "  git log --graph --oneline sprint/{FEATURE}/integration; sh check.sh"
        )?;
    } else {
        writeln!(
            out,
            "\nRemoved the demo repository (keep it with 'git sprint demo --keep DIR')."
        )?;
    }
    Ok(())
}

/// Sets what every process the demo starts inherits, and returns the tmux
/// socket: `$GIT_SPRINT_TMUX_SOCKET` when set (tests choose theirs), else
/// one named after this process.
fn isolate_environment() -> String {
    // A user's global config could sign commits, move the hooks directory
    // (init would then install into theirs) or change merge behaviour.
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CEILING_DIRECTORIES",
        "GIT_SPRINT_NOW",
        "GIT_SPRINT_HOOKS",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
    std::env::set_var("GIT_TERMINAL_PROMPT", "0");
    let socket = std::env::var(SOCKET_ENV)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("git-sprint-demo-{}", std::process::id()));
    std::env::set_var(SOCKET_ENV, &socket);
    socket
}

/// Writes the project, makes it a repository and commits it in two steps.
fn create_project(dir: &Path) -> Result {
    git(dir, &["init", "--quiet", "--initial-branch=main"])?;
    git(dir, &["config", "user.name", USER_NAME])?;
    git(dir, &["config", "user.email", USER_EMAIL])?;
    write_files(dir, PROJECT)?;
    git(dir, &["add", "--all"])?;
    git(
        dir,
        &[
            "commit",
            "--quiet",
            "-m",
            "notes: project, check.sh and the sprint config",
        ],
    )?;
    write_files(dir, SPEC)?;
    git(dir, &["add", "--all"])?;
    git(
        dir,
        &["commit", "--quiet", "-m", "specs/001-notes: spec and tasks"],
    )?;
    Ok(())
}

fn write_files(dir: &Path, files: &[(&str, &str, bool)]) -> Result {
    for (rel, content, executable) in files {
        let path = dir.join(rel);
        let io = |action| {
            let path = path.clone();
            move |source| DemoError::Io {
                action,
                path,
                source,
            }
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io("creating the directory of"))?;
        }
        std::fs::write(&path, content).map_err(io("writing"))?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(io("making executable"))?;
        }
    }
    Ok(())
}

/// Runs git in `dir`; its output on success.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    Ok(crate::worker::worktree::Git::new(dir).run(args)?)
}

fn step(step: &'static str) -> impl Fn(CommandError) -> DemoError {
    move |e| DemoError::Step {
        step,
        source: Box::new(e),
    }
}

/// Starts the orchestrator on a thread, reports progress until the feature
/// is done (or fails, or time runs out), and stops the orchestrator.
fn sprint(
    out: &mut dyn Write,
    store: &Store,
    dir: &Path,
    opts: &Options,
    started: Instant,
) -> Result {
    let fleet = Fleet::open(dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DemoError::Io {
            action: "starting the demo's runtime for",
            path: dir.to_owned(),
            source,
        })?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let (wake_tx, wake_rx) = tokio::sync::mpsc::unbounded_channel();
    // Watch before the orchestrator starts, so no transition is missed.
    let watching = watch::start(&fleet.common_dir, dir, wake_tx)?;
    let seen = store.tip()?;
    let orchestrator = {
        let (cwd, exe) = (dir.to_owned(), opts.exe.clone());
        std::thread::Builder::new()
            .name("orchestrator".into())
            .spawn(move || {
                let _ = ended_tx.send(daemon::run_until(&cwd, exe, stop_rx));
            })
            .map_err(|source| DemoError::Io {
                action: "starting the orchestrator thread for",
                path: dir.to_owned(),
                source,
            })?
    };
    let progress = Progress {
        store,
        fleet: &fleet,
        dir,
        started,
        timeout: opts.timeout,
    };
    let result = rt.block_on(progress.follow(out, seen, wake_rx, ended_rx));
    drop(watching);
    // A stopped orchestrator finishes its reconcile and lets go of its lock.
    let _ = stop_tx.send(true);
    let _ = orchestrator.join();
    result
}

struct Progress<'a> {
    store: &'a Store,
    fleet: &'a Fleet,
    dir: &'a Path,
    started: Instant,
    timeout: Duration,
}

type Ended = std::result::Result<(), daemon::DaemonError>;

impl Progress<'_> {
    /// Prints what happened since `seen` whenever a ref changes, until the
    /// feature is done, a task failed, the orchestrator ended or time ran out.
    async fn follow(
        &self,
        out: &mut dyn Write,
        mut seen: Option<ObjectId>,
        mut wake: tokio::sync::mpsc::UnboundedReceiver<watch::Wake>,
        mut ended: tokio::sync::oneshot::Receiver<Ended>,
    ) -> Result {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let entries = log::since(self.store, seen)?;
            for e in &entries {
                self.line(out, e)?;
            }
            if let Some(last) = entries.last() {
                seen = ObjectId::from_hex(last.commit.as_bytes()).ok();
            }
            out.flush()?;
            let snapshot = self.store.read(Snapshot::read)?;
            if let Some(fs) = snapshot.feature(FEATURE) {
                if fs.feature.status == FeatureStatus::Done {
                    return Ok(());
                }
                if let Some(t) = fs.tasks.iter().find(|t| t.status == TaskStatus::Failed) {
                    self.last_output(out, &snapshot, &format!("{FEATURE}/{}", t.id))?;
                    return Err(DemoError::TaskFailed {
                        task: t.id.clone(),
                        reason: t
                            .feedback
                            .last()
                            .map(|f| f.trim().to_owned())
                            .unwrap_or_else(|| "no feedback recorded".into()),
                        dir: self.dir.to_owned(),
                    });
                }
            }
            tokio::select! {
                w = wake.recv() => {
                    if w.is_none() {
                        return Err(DemoError::Interrupted { dir: self.dir.to_owned() });
                    }
                    // One state commit moves a ref and writes a reflog: one look.
                    while wake.try_recv().is_ok() {}
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.unfinished(out)?;
                    return Err(DemoError::TimedOut {
                        after: self.timeout,
                        dir: self.dir.to_owned(),
                    });
                }
                r = &mut ended => {
                    return Err(match r {
                        Ok(Err(e)) => DemoError::Daemon(e),
                        _ => DemoError::Interrupted { dir: self.dir.to_owned() },
                    });
                }
            }
        }
    }

    /// One line per transition of the feature, its tasks and convoys; the
    /// agents' own records (started, exited) are left out as noise.
    fn line(&self, out: &mut dyn Write, e: &Entry) -> Result {
        let at = format!("[{:>5.1}s]", self.started.elapsed().as_secs_f64());
        let prefix = format!("{FEATURE}/");
        if e.transitions.is_empty() {
            // A note about a task without a move, such as a tester starting;
            // heartbeats and bookkeeping are left out.
            let note = e
                .subject
                .strip_prefix(&prefix)
                .and_then(|s| s.split_once(": "));
            if let Some((what, rest)) = note.filter(|(_, rest)| !rest.starts_with("heartbeat")) {
                writeln!(out, "{at} {what:<6} {rest}")?;
            }
            return Ok(());
        }
        for t in &e.transitions {
            let what = match t.task.strip_prefix(&prefix) {
                Some(id) => id,
                None if t.task == FEATURE => FEATURE,
                None => continue,
            };
            let reason = t
                .reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default();
            writeln!(out, "{at} {what:<6} {} -> {}{reason}", t.from, t.to)?;
        }
        Ok(())
    }

    /// The end of the output of the last agent that worked on `task`.
    fn last_output(&self, out: &mut dyn Write, snapshot: &Snapshot, task: &str) -> Result {
        let Some(agent) = snapshot
            .agents
            .iter()
            .filter(|a| a.task.as_deref() == Some(task))
            .max_by_key(|a| a.started)
        else {
            return Ok(());
        };
        let path = self.fleet.log_path(&agent.id);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        writeln!(
            out,
            "\nThe last output of {} ({}):",
            agent.id,
            path.display()
        )?;
        for line in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
            writeln!(out, "  {line}")?;
        }
        Ok(())
    }

    /// On a timeout: where every unfinished task is, and what the agents
    /// still at work last printed.
    fn unfinished(&self, out: &mut dyn Write) -> Result {
        let snapshot = self.store.read(Snapshot::read)?;
        writeln!(out, "\nTimed out; unfinished tasks:")?;
        for fs in &snapshot.features {
            for t in fs.tasks.iter().filter(|t| t.status != TaskStatus::Done) {
                let last = t.feedback.last().map(|f| f.lines().next().unwrap_or(""));
                writeln!(
                    out,
                    "  {:<6} {}{}",
                    t.id,
                    t.status,
                    last.map(|f| format!("  (last feedback: {f})"))
                        .unwrap_or_default()
                )?;
            }
            for t in fs
                .tasks
                .iter()
                .filter(|t| t.status == TaskStatus::InProgress)
            {
                let task = format!("{}/{}", fs.feature.name, t.id);
                self.last_output(out, &snapshot, &task)?;
            }
        }
        Ok(())
    }
}

/// The board, the integration branch and the audit trail.
fn finale(out: &mut dyn Write, dir: &Path) -> Result {
    writeln!(out, "\n$ git sprint status")?;
    let store = Store::discover(dir)?;
    commands::status::show(&store, out, &commands::status::Options { json: false })
        .map_err(step("showing the board"))?;
    let integration = crate::names::integration_branch(FEATURE);
    writeln!(out, "\n$ git log --oneline --first-parent {integration}")?;
    out.write_all(git(dir, &["log", "--oneline", "--first-parent", &integration])?.as_bytes())?;
    writeln!(out, "\n$ git log --oneline refs/ai-sprint | head")?;
    out.write_all(git(dir, &["log", "--oneline", "-n", "10", "refs/ai-sprint"])?.as_bytes())?;
    Ok(())
}

/// The demo's directory: a fresh temp dir removed on drop, or the one the
/// user chose (created if missing, refused unless empty), kept.
struct Place {
    path: PathBuf,
    keep: bool,
}

impl Place {
    fn new(keep: Option<&Path>) -> Result<Place> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| DemoError::Io {
                action,
                path,
                source,
            }
        };
        let (path, keep) = match keep {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
                let mut entries = std::fs::read_dir(dir).map_err(io("reading", dir))?;
                if entries.next().is_some() {
                    return Err(DemoError::NotEmpty {
                        path: dir.to_owned(),
                    });
                }
                (dir.to_owned(), true)
            }
            None => {
                let base = std::env::temp_dir();
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let dir = base.join(format!(
                    "git-sprint-demo-{}-{stamp:08x}",
                    std::process::id()
                ));
                // create_dir, not create_dir_all: never reuse someone's directory.
                std::fs::create_dir(&dir).map_err(io("creating", &dir))?;
                (dir, false)
            }
        };
        // Canonical, so paths printed and stored match what git reports.
        let path = path.canonicalize().map_err(io("resolving", &path))?;
        Ok(Place { path, keep })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The demo's tmux server, killed when the demo ends however it ends.
struct Server(Tmux);

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.0.kill_server() {
            tracing::warn!(socket = self.0.socket(), error = %e, "could not stop the demo's tmux server");
        }
        self.0.remove_socket_file();
    }
}

/// `demo --serve`: `git sprint serve` on the demo's repository, as its own
/// process (the demo's process owns its environment and signals).
struct Board {
    child: std::process::Child,
    url: String,
}

impl Board {
    fn start(
        out: &mut dyn Write,
        exe: &Path,
        dir: &Path,
        addr: std::net::SocketAddr,
    ) -> Result<Board> {
        use std::io::BufRead;
        let io = |source| DemoError::Io {
            action: "starting the board (git sprint serve) in",
            path: dir.to_owned(),
            source,
        };
        let mut child = std::process::Command::new(exe)
            .args(["serve", "--open", "--addr", &addr.to_string()])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(io)?;
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut board = Board {
            child,
            url: String::new(),
        };
        // The first line says where it listens; anything else means it failed
        // (its error went to stderr, which is the demo's).
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        match first.strip_prefix("Serving the board on ") {
            Some(url) => board.url = url.trim().to_owned(),
            None => {
                return Err(io(std::io::Error::other(format!(
                    "it did not start{}",
                    if first.is_empty() {
                        String::new()
                    } else {
                        format!(": {first}")
                    }
                ))))
            }
        }
        // The rest of its output is not the demo's story.
        std::thread::spawn(move || lines.for_each(drop));
        writeln!(out, "The board: {} (a live page of this sprint)", board.url)?;
        Ok(board)
    }

    /// Keeps the board up over the finished sprint until Ctrl-C, which ends
    /// the board and lets the demo clean up after itself.
    fn until_interrupted(mut self, out: &mut dyn Write) -> Result {
        writeln!(
            out,
            "\nThe board stays up at {}; press Ctrl-C to end the demo.",
            self.url
        )?;
        out.flush()?;
        // Ctrl-C reaches the whole foreground group: the board stops on it,
        // and this process, ignoring it, goes on to clean up.
        // SAFETY: setting a signal's disposition to ignore has no handler to race.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository holding the project as the demo commits it.
    fn project() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["config", "user.name", "t"],
            &["config", "user.email", "t@example.com"],
        ] {
            git(dir, args).unwrap();
        }
        write_files(dir, PROJECT).unwrap();
        write_files(dir, SPEC).unwrap();
        git(dir, &["add", "-A"]).unwrap();
        git(dir, &["commit", "-q", "-m", "init"]).unwrap();
        tmp
    }

    fn check(dir: &Path) -> (bool, String) {
        let out = std::process::Command::new("sh")
            .arg("check.sh")
            .current_dir(dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), text)
    }

    fn commit(dir: &Path, message: &str) {
        git(dir, &["add", "-A"]).unwrap();
        git(dir, &["commit", "-q", "--allow-empty", "-m", message]).unwrap();
    }

    #[test]
    fn check_passes_when_every_promised_file_carries_its_task() {
        let tmp = project();
        let dir = tmp.path();
        assert!(check(dir).0, "{}", check(dir).1);
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("lib/add.sh"), "001-notes/T005: add\n").unwrap();
        commit(dir, "001-notes/T005: add");
        let (ok, text) = check(dir);
        assert!(ok && text.contains("1 promised files"), "{text}");
    }

    #[test]
    fn check_fails_when_a_task_left_out_its_file() {
        let tmp = project();
        let dir = tmp.path();
        commit(dir, "001-notes/T008: tests for list");
        let (ok, text) = check(dir);
        assert!(!ok && text.contains("T008 promises tests/list.t"), "{text}");
    }

    #[test]
    fn check_fails_on_a_file_another_task_wrote() {
        let tmp = project();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("lib/add.sh"), "001-notes/T009: search\n").unwrap();
        commit(dir, "001-notes/T005: add");
        let (ok, text) = check(dir);
        assert!(!ok && text.contains("does not carry T005"), "{text}");
    }

    #[test]
    fn check_fails_on_conflict_markers() {
        let tmp = project();
        let dir = tmp.path();
        std::fs::write(
            dir.join("README.md"),
            "<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> topic\n",
        )
        .unwrap();
        commit(dir, "a bad merge");
        let (ok, text) = check(dir);
        assert!(!ok && text.contains("conflict markers"), "{text}");
    }

    #[test]
    fn every_task_names_files_with_a_slash_and_no_globs() {
        let text = SPEC[1].1;
        let tasks: Vec<&str> = text.lines().filter(|l| l.starts_with("- [ ] T")).collect();
        assert_eq!(tasks.len(), 11);
        for line in tasks {
            let paths: Vec<&str> = line.split('`').skip(1).step_by(2).collect();
            assert!(!paths.is_empty(), "{line}");
            assert!(
                paths.iter().all(|p| p.contains('/') && !p.contains('*')),
                "{line}"
            );
        }
    }

    #[test]
    fn demo_config_is_valid() {
        let tmp = project();
        let loaded = crate::config::load(tmp.path(), &tmp.path().join(".git")).unwrap();
        assert_eq!(loaded.config.roles.developer.agent, "scripted");
        assert!(!loaded.config.gates.post_merge.is_empty());
    }
}
