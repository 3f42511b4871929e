//! The agent's output as the `agent-run` wrapper follows it: both pipes read
//! line by line into a [`StreamReader`], its transcript written to the pane
//! (which tmux copies into the log), and every line taken as a sign of life.
//!
//! A sign of life becomes a heartbeat — the agent record's `heartbeat` and,
//! when the agent holds its task's claim, the lease — at most once per third
//! of the lease, so a chatty agent costs a few state commits per lease, not
//! one per event, and a quiet-but-working one (`claude -p` prints nothing
//! until it ends in text mode; in stream-json it prints every step) is not
//! taken for hung.
//!
//! Reading is bounded: a line longer than [`MAX_LINE`] is cut (an agent is
//! untrusted and may print without end), and once the agent has exited the
//! pipes get a short grace to drain — a process it left behind may hold them
//! open for ever.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Fleet;
use crate::clock;
use crate::state::{ops, Actor, TaskRef};
use crate::worker::stream::{Source, StreamReader};

/// The longest line read whole; the rest of a longer one is dropped.
pub(crate) const MAX_LINE: usize = 4 * 1024 * 1024;

/// How long the pipes may still deliver after the agent exited.
const DRAIN: Duration = Duration::from_secs(2);

enum Event {
    Line(Source, Vec<u8>, bool),
    Eof,
    Exited(io::Result<ExitStatus>),
}

/// Records heartbeats for one worker, at most once per `every`.
pub(crate) struct Liveness<'a> {
    fleet: &'a Fleet,
    actor: &'a Actor,
    id: &'a str,
    every: Duration,
    last: Instant,
    warned: bool,
}

impl<'a> Liveness<'a> {
    /// Heartbeats for worker `id`: a third of its claim's lease when it holds
    /// its task's claim, else a third of `lease`.
    pub(crate) fn new(
        fleet: &'a Fleet,
        actor: &'a Actor,
        id: &'a str,
        lease: Duration,
    ) -> Liveness<'a> {
        let ttl = fleet
            .store
            .read(|txn| {
                let Some(r) = txn.agent(id)?.as_ref().and_then(task_of) else {
                    return Ok(None);
                };
                Ok(txn
                    .task(&r.feature, &r.id)?
                    .and_then(|t| t.claim)
                    .filter(|c| c.holder == id)
                    .map(|c| Duration::from_secs(c.ttl)))
            })
            .ok()
            .flatten()
            .unwrap_or(lease);
        Liveness {
            fleet,
            actor,
            id,
            every: (ttl / 3).max(Duration::from_millis(500)),
            // The record says `running` with a fresh heartbeat as we start.
            last: Instant::now(),
            warned: false,
        }
    }

    /// A sign of life: records a heartbeat if the last is old enough.
    pub(crate) fn sign(&mut self, log: &mut dyn Write) {
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let id = self.id;
        let done = self.fleet.store.transact(self.actor, |txn| {
            let Some(mut a) = txn.agent(id)? else {
                return Ok(());
            };
            a.heartbeat = clock::now();
            txn.put_agent(&a)?;
            txn.subject(format!("{id}: heartbeat"));
            if let Some(r) = task_of(&a) {
                let holds = txn
                    .task(&r.feature, &r.id)?
                    .and_then(|t| t.claim)
                    .is_some_and(|c| c.holder == id);
                if holds {
                    ops::heartbeat(txn, &r, id)?;
                }
            }
            Ok(())
        });
        if let Err(e) = done {
            // The run goes on; the Witness judges by the output as well.
            if !self.warned {
                let _ = writeln!(log, "git-sprint: {id}: could not record a heartbeat: {e}");
                self.warned = true;
            }
        }
    }
}

/// `feature/T001` of a sprint worker; fleet workers have no task record.
pub(crate) fn task_of(a: &crate::state::Agent) -> Option<TaskRef> {
    let (feature, id) = a.task.as_deref()?.split_once('/')?;
    Some(TaskRef::new(feature, id))
}

/// Reads the child's stdout and stderr through `reader` until it has exited
/// and its pipes are drained, writing the transcript to `log` and giving
/// `liveness` every line. Returns how the child ended.
pub(crate) fn follow(
    mut child: Child,
    reader: &mut StreamReader,
    liveness: &mut Liveness<'_>,
    log: &mut dyn Write,
) -> io::Result<ExitStatus> {
    let (tx, rx) = mpsc::channel();
    let mut open = 0;
    if let Some(out) = child.stdout.take() {
        pump(Source::Stdout, out, tx.clone());
        open += 1;
    }
    if let Some(err) = child.stderr.take() {
        pump(Source::Stderr, err, tx.clone());
        open += 1;
    }
    std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(Event::Exited(status));
    });
    let mut status = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        let event = match drain_until {
            Some(deadline) => {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(e) => e,
                    Err(_) => break,
                }
            }
            None => match rx.recv() {
                Ok(e) => e,
                Err(_) => break,
            },
        };
        match event {
            Event::Line(source, bytes, cut) => {
                let text = String::from_utf8_lossy(&bytes);
                let mut shown = reader.feed(source, &text);
                if cut {
                    shown.push(format!(
                        "git-sprint: (a line longer than {} MiB was cut)",
                        MAX_LINE >> 20
                    ));
                }
                for line in shown {
                    let _ = writeln!(log, "{line}");
                }
                let _ = log.flush();
                liveness.sign(log);
            }
            Event::Eof => open -= 1,
            Event::Exited(s) => {
                status = Some(s?);
                drain_until = Some(Instant::now() + DRAIN);
            }
        }
        if open == 0 && status.is_some() {
            break;
        }
    }
    for line in reader.flush() {
        let _ = writeln!(log, "{line}");
    }
    let _ = log.flush();
    status.ok_or_else(|| io::Error::other("the agent's waiter thread went away"))
}

/// Reads `pipe` line by line on a thread of its own, at most [`MAX_LINE`]
/// bytes of each line.
fn pump(source: Source, pipe: impl Read + Send + 'static, tx: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        while let Ok(Some((line, cut))) = read_line(&mut pipe) {
            if tx.send(Event::Line(source, line, cut)).is_err() {
                return;
            }
        }
        let _ = tx.send(Event::Eof);
    });
}

/// One line without its `\n`, cut at [`MAX_LINE`] (then true); `None` at
/// the end of the input.
fn read_line(pipe: &mut impl BufRead) -> io::Result<Option<(Vec<u8>, bool)>> {
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match pipe.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((!line.is_empty() || cut).then_some((line, cut)));
        }
        let (chunk, end) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        if chunk.len() > room {
            cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = end.unwrap_or(buf.len());
        pipe.consume(used);
        if end.is_some() {
            return Ok(Some((line, cut)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_an_endless_one_is_cut() {
        let mut input = b"one\ntwo\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend(b"\nlast");
        let mut r = io::Cursor::new(input);
        assert_eq!(read_line(&mut r).unwrap(), Some((b"one".to_vec(), false)));
        assert_eq!(read_line(&mut r).unwrap(), Some((b"two\r".to_vec(), false)));
        let (long, cut) = read_line(&mut r).unwrap().unwrap();
        assert!(cut);
        assert_eq!(long.len(), MAX_LINE);
        assert_eq!(read_line(&mut r).unwrap(), Some((b"last".to_vec(), false)));
        assert_eq!(read_line(&mut r).unwrap(), None);
    }
}
