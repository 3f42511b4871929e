//! The event stream: one Server-Sent Event per state commit, as it lands.
//!
//! One thread per server follows `refs/ai-sprint` on the orchestrator's own
//! inotify watch ([`crate::view::ref_wakes`]), reads the commits since the
//! last tip it saw and broadcasts each as an audit-trail entry (the JSON
//! `git sprint log --json` prints), its id the state commit's. A client that
//! reconnects with `Last-Event-ID` first gets every commit after that one,
//! then the live ones, each once.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast;

use super::BoardError;
use crate::state::log::{since, Entry};
use crate::state::Store;

/// One state commit, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub(crate) id: String,
    pub(crate) json: Arc<String>,
}

impl Committed {
    fn of(e: &Entry) -> Committed {
        Committed {
            id: e.commit.clone(),
            json: Arc::new(serde_json::to_string(e).unwrap_or_else(|_| "{}".into())),
        }
    }
}

/// The live feed every client subscribes to.
pub(crate) struct Hub {
    tx: broadcast::Sender<Committed>,
    /// The newest state commit the feed has seen (keys the status cache).
    tip: Arc<Mutex<Option<gix::ObjectId>>>,
    /// Where the repository is: a store is not `Send`, so each reader
    /// opens its own.
    git_dir: PathBuf,
}

/// How many commits a slow client may fall behind before it catches up
/// from the history instead.
const BACKLOG: usize = 1024;

impl Hub {
    /// Starts following the state ref.
    pub(crate) fn start(store: &Store) -> Result<Hub, BoardError> {
        // Watch first, then read the tip: a commit in between is not missed.
        let (watch, wakes) = crate::view::ref_wakes(store)?;
        let mut seen = store.tip()?;
        let tip = Arc::new(Mutex::new(seen));
        let (tx, _) = broadcast::channel(BACKLOG);
        let feed = tx.clone();
        let newest_tip = tip.clone();
        let git_dir = store.repo().git_dir().to_owned();
        let dir = git_dir.clone();
        std::thread::Builder::new()
            .name("board-events".into())
            .spawn(move || {
                let _watch = watch;
                let Ok(reader) = Store::discover(&dir) else {
                    return;
                };
                while wakes.recv().is_ok() {
                    // A burst of ref events is one read.
                    while wakes.try_recv().is_ok() {}
                    let Ok(new) = since(&reader, seen) else {
                        continue;
                    };
                    if let Some(newest) = new.last() {
                        seen = gix::ObjectId::from_hex(newest.commit.as_bytes()).ok();
                        // Before the events go out: a client that asks for
                        // the status on one must not get the older one.
                        *newest_tip.lock().unwrap_or_else(|p| p.into_inner()) = seen;
                    }
                    for e in &new {
                        // No subscriber is not an error: the next may come.
                        let _ = feed.send(Committed::of(e));
                    }
                }
            })
            .map_err(BoardError::Server)?;
        Ok(Hub { tx, tip, git_dir })
    }

    /// The newest state commit the feed has seen.
    pub(crate) fn tip(&self) -> Option<gix::ObjectId> {
        *self.tip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The commits after `after` (all of them when it is not in the
    /// history), oldest first.
    fn after(&self, after: gix::ObjectId) -> Vec<Committed> {
        let Ok(store) = Store::discover(&self.git_dir) else {
            return Vec::new();
        };
        since(&store, Some(after))
            .map(|v| v.iter().map(Committed::of).collect())
            .unwrap_or_default()
    }

    /// The stream for one client; `last` is its `Last-Event-ID`.
    pub(crate) fn stream(
        self: &Arc<Self>,
        last: Option<gix::ObjectId>,
    ) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
        // Subscribe before reading the backlog: a commit landing in between
        // is in one or the other (or both, and then sent once).
        let rx = self.tx.subscribe();
        let backlog: VecDeque<Committed> = last.map(|l| self.after(l)).unwrap_or_default().into();
        let sent: HashSet<String> = backlog.iter().map(|c| c.id.clone()).collect();
        let hub = Arc::clone(self);
        let last = backlog
            .back()
            .map(|c| c.id.clone())
            .or_else(|| last.map(|l| l.to_string()));
        let state = Client {
            rx,
            queue: backlog,
            sent,
            last,
            hub,
        };
        let events = stream::unfold(state, |mut c| async move {
            loop {
                if let Some(next) = c.queue.pop_front() {
                    c.last = Some(next.id.clone());
                    let event = Event::default()
                        .id(next.id.clone())
                        .event("commit")
                        .data(next.json.as_str());
                    return Some((Ok(event), c));
                }
                match c.rx.recv().await {
                    Ok(next) => {
                        if c.sent.insert(next.id.clone()) {
                            c.queue.push_back(next);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind: catch up from the history.
                        let from = c
                            .last
                            .as_deref()
                            .and_then(|l| gix::ObjectId::from_hex(l.as_bytes()).ok());
                        let missed = match from {
                            Some(f) => {
                                let hub = Arc::clone(&c.hub);
                                tokio::task::spawn_blocking(move || hub.after(f))
                                    .await
                                    .unwrap_or_default()
                            }
                            None => Vec::new(),
                        };
                        for m in missed {
                            if c.sent.insert(m.id.clone()) {
                                c.queue.push_back(m);
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Sse::new(events).keep_alive(KeepAlive::default())
    }
}

struct Client {
    rx: broadcast::Receiver<Committed>,
    queue: VecDeque<Committed>,
    /// Ids already sent, so a commit in both the backlog and the feed goes once.
    sent: HashSet<String>,
    last: Option<String>,
    hub: Arc<Hub>,
}
