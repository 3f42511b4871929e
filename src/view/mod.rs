//! Views of the sprint. The read views ([`status`], [`task`], [`workers`],
//! [`health`]) are what the read commands and the board's API show, each
//! gathered by one function that takes plain options and returns a typed
//! view, rendered as text or serialised as JSON by its callers. The live
//! views are the board `git sprint watch` draws and the stream
//! `git sprint log --follow` prints.
//!
//! Both wake on the orchestrator's own inotify watch of the ref storage
//! ([`crate::daemon::watch`]), so a view redraws when `refs/ai-sprint` moves
//! and never polls git. The board also follows the running agents' logs
//! (inotify on the fleet's log directory) for their last output line, and a
//! one-second clock re-renders ages from what it already holds, painting only
//! when a line changed. The drawing itself is [`render`], a pure function.

pub(crate) mod health;
pub(crate) mod render;
pub(crate) mod status;
pub(crate) mod task;
pub(crate) mod term;
pub(crate) mod workers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use gix::ObjectId;
use notify::{RecursiveMode, Watcher};

use crate::daemon::watch::{Wake, Watch, WatchError};
use crate::fleet::terminal_text::TerminalText;
use crate::fleet::{Fleet, FleetError};
use crate::hint::Hint;
use crate::stages::trouble::Trouble;
use crate::state::log::{since, Entry};
use crate::state::{AgentState, Snapshot, StateError, Store};

use render::{Frame, Line};

/// How many state commits the board keeps on screen.
const RECENT: usize = 8;
/// How much of the end of an agent's log is read for its last line.
const LOG_TAIL: u64 = 16 * 1024;

/// What a live view failed with.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("cannot follow refs/ai-sprint")]
    Watch(#[from] WatchError),
    #[error("cannot watch the agents' logs in {}", path.display())]
    Logs {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("setting up the terminal")]
    Terminal(#[source] std::io::Error),
    #[error("cannot catch signals")]
    Signals(#[source] std::io::Error),
}

impl Hint for ViewError {
    fn hint(&self) -> Option<String> {
        match self {
            ViewError::State(e) => e.hint(),
            ViewError::Fleet(e) => e.hint(),
            ViewError::Watch(_) | ViewError::Logs { .. } => Some(
                "raise fs.inotify.max_user_watches (sysctl) or close other watchers, then retry"
                    .into(),
            ),
            ViewError::Terminal(_) | ViewError::Signals(_) => Some(
                "run it in a terminal, or pipe it ('git sprint watch | cat') for a one-shot view"
                    .into(),
            ),
        }
    }
}

/// Wake-ups when any ref moves, from the orchestrator's watcher; keep the
/// returned [`Watch`] alive while reading the receiver.
pub(crate) fn ref_wakes(store: &Store) -> Result<(Watch, mpsc::Receiver<()>), ViewError> {
    let common = absolute(store.repo().common_dir());
    let top = store
        .repo()
        .workdir()
        .map(absolute)
        .unwrap_or_else(|| common.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = crate::daemon::watch::start(&common, &top, tx)?;
    let (out, wakes) = mpsc::channel();
    // The watcher speaks tokio's channel; a view is plain threads.
    std::thread::spawn(move || {
        while let Some(w) = rx.blocking_recv() {
            if w == Wake::Refs && out.send(()).is_err() {
                break;
            }
        }
    });
    Ok((watch, wakes))
}

fn absolute(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_owned())
}

/// What the board is drawn from, kept up to date by [`Board::refresh`] and
/// [`Board::refresh_log`].
pub(crate) struct Board {
    fleet: Fleet,
    seen: Option<ObjectId>,
    snapshot: Snapshot,
    trouble: Vec<Trouble>,
    recent: VecDeque<Entry>,
    /// When each task (`feature/T001`) first went `in_progress`.
    started: HashMap<String, i64>,
    durations: BTreeMap<String, Vec<i64>>,
    last_lines: BTreeMap<String, String>,
}

impl Board {
    /// Reads the whole state and its history once.
    pub(crate) fn open(cwd: &Path) -> Result<Board, ViewError> {
        let fleet = Fleet::open(cwd)?;
        let mut board = Board {
            fleet,
            seen: None,
            snapshot: Snapshot::default(),
            trouble: Vec::new(),
            recent: VecDeque::new(),
            started: HashMap::new(),
            durations: BTreeMap::new(),
            last_lines: BTreeMap::new(),
        };
        board.refresh()?;
        Ok(board)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.fleet.store
    }

    /// Catches up with refs/ai-sprint: the snapshot, the commits since the
    /// last read, and the last lines of agents that started since.
    pub(crate) fn refresh(&mut self) -> Result<(), ViewError> {
        let store = &self.fleet.store;
        let tip = store.tip()?;
        if tip == self.seen {
            return Ok(());
        }
        let entries = since(store, self.seen)?;
        self.snapshot = store.read(Snapshot::read)?;
        self.trouble = crate::stages::trouble::list(&self.snapshot);
        self.seen = tip;
        for e in entries {
            for t in &e.transitions {
                if t.to == "in_progress" {
                    self.started.entry(t.task.clone()).or_insert(e.time);
                } else if t.to == "done" {
                    if let Some(start) = self.started.get(&t.task) {
                        let feature = t.task.split('/').next().unwrap_or("").to_owned();
                        self.durations
                            .entry(feature)
                            .or_default()
                            .push(e.time - start);
                    }
                }
            }
            self.recent.push_back(e);
            if self.recent.len() > RECENT {
                self.recent.pop_front();
            }
        }
        let running: Vec<String> = self.running().map(|a| a.to_owned()).collect();
        self.last_lines.retain(|id, _| running.contains(id));
        for id in running {
            self.refresh_log(&id);
        }
        Ok(())
    }

    fn running(&self) -> impl Iterator<Item = &str> {
        self.snapshot
            .agents
            .iter()
            .filter(|a| matches!(a.state, AgentState::Starting | AgentState::Running))
            .map(|a| a.id.as_str())
    }

    /// Where the agents' logs are.
    pub(crate) fn logs_dir(&self) -> PathBuf {
        self.fleet
            .log_path("x")
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default()
    }

    /// Re-reads the last output line of agent `id`, if it is running.
    pub(crate) fn refresh_log(&mut self, id: &str) {
        if !self.running().any(|r| r == id) {
            return;
        }
        if let Some(line) = last_line(&self.fleet.log_path(id)) {
            self.last_lines.insert(id.to_owned(), line);
        }
    }

    /// The board at `now` on a `width` × `height` screen (0: any height);
    /// `live` when keys work.
    pub(crate) fn frame(&self, now: i64, live: bool, width: usize, height: usize) -> Vec<Line> {
        let tip = self.seen.map(|t| crate::names::short_id(&t));
        let recent: Vec<Entry> = self.recent.iter().cloned().collect();
        render::render(&Frame {
            snapshot: &self.snapshot,
            tip: tip.as_deref(),
            trouble: &self.trouble,
            last_lines: &self.last_lines,
            recent: &recent,
            durations: &self.durations,
            now,
            live,
            width,
            height,
        })
    }
}

/// The last non-blank line of a log as plain text (escapes stripped), from
/// its last [`LOG_TAIL`] bytes.
fn last_line(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL))).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = TerminalText::plain(&buf);
    String::from_utf8_lossy(&text)
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().filter(|c| !c.is_control()).collect())
}

/// What wakes the board.
enum Event {
    Refs,
    Log(String),
    Resize,
    Quit,
}

/// Paints `lines` with their styles (SGR sequences).
pub(crate) fn paint(lines: &[Line], colour: bool) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let (on, off) = if colour {
                render::sgr(l.style)
            } else {
                ("", "")
            };
            format!("{on}{}{off}", l.text)
        })
        .collect()
}

/// Runs the board on the terminal until `q`, Ctrl-C, SIGTERM or SIGHUP,
/// leaving the terminal as it found it; `colour` paints the styles.
pub(crate) fn live(cwd: &Path, colour: bool) -> Result<(), ViewError> {
    let mut board = Board::open(cwd)?;
    let (tx, rx) = mpsc::channel();

    let (_refs_watch, refs) = ref_wakes(board.store())?;
    let refs_tx = tx.clone();
    std::thread::spawn(move || {
        while refs.recv().is_ok() {
            if refs_tx.send(Event::Refs).is_err() {
                break;
            }
        }
    });

    let logs = board.logs_dir();
    std::fs::create_dir_all(&logs).map_err(|e| ViewError::Logs {
        path: logs.clone(),
        source: notify::Error::io(e),
    })?;
    let logs_tx = tx.clone();
    let mut logs_watch = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for p in &event.paths {
            if let Some(id) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
            {
                let _ = logs_tx.send(Event::Log(id.to_owned()));
            }
        }
    })
    .map_err(|source| ViewError::Logs {
        path: logs.clone(),
        source,
    })?;
    logs_watch
        .watch(&logs, RecursiveMode::NonRecursive)
        .map_err(|source| ViewError::Logs {
            path: logs.clone(),
            source,
        })?;

    signals(tx.clone())?;
    let screen = term::Screen::enter().map_err(ViewError::Terminal)?;
    // Keys: q, Q, Ctrl-C and Ctrl-D leave. The thread stays blocked in
    // read until the process ends, which is right after.
    let keys_tx = tx;
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdin.read(&mut byte) {
            if matches!(byte[0], b'q' | b'Q' | 3 | 4) {
                let _ = keys_tx.send(Event::Quit);
                break;
            }
        }
    });

    let mut shown: Vec<String> = Vec::new();
    loop {
        let (width, height) = term::size();
        let painted = paint(
            &board.frame(crate::clock::now(), true, width, height),
            colour,
        );
        if painted != shown {
            screen.draw(&painted).map_err(ViewError::Terminal)?;
            shown = painted;
        }
        // Ages on screen change with the clock; the wait ends at the next
        // second (a re-render from memory, painted only if a line changed)
        // or at the first event, and a burst of events is taken at once.
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(e) => e,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let mut refs_moved = false;
        let mut logs = Vec::new();
        for event in std::iter::once(first).chain(rx.try_iter()) {
            match event {
                Event::Quit => return Ok(()),
                Event::Refs => refs_moved = true,
                Event::Log(id) => logs.push(id),
                Event::Resize => shown.clear(),
            }
        }
        if refs_moved {
            board.refresh()?;
        }
        logs.sort();
        logs.dedup();
        for id in logs {
            board.refresh_log(&id);
        }
    }
}

/// SIGWINCH redraws; SIGTERM, SIGHUP and SIGINT leave through the normal
/// return, so the terminal is restored.
fn signals(tx: mpsc::Sender<Event>) -> Result<(), ViewError> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ViewError::Signals)?;
    let (mut winch, mut term, mut hup, mut int) = {
        let _in_runtime = rt.enter();
        let on = |kind| signal(kind).map_err(ViewError::Signals);
        (
            on(SignalKind::window_change())?,
            on(SignalKind::terminate())?,
            on(SignalKind::hangup())?,
            on(SignalKind::interrupt())?,
        )
    };
    std::thread::spawn(move || {
        rt.block_on(async move {
            loop {
                let event = tokio::select! {
                    _ = winch.recv() => Event::Resize,
                    _ = term.recv() => Event::Quit,
                    _ = hup.recv() => Event::Quit,
                    _ = int.recv() => Event::Quit,
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
    });
    Ok(())
}
