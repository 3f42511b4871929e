//! `git sprint logs`: a worker's output, from the log its session writes.
//!
//! The log is the pane's raw output; what is shown is its plain text
//! ([`TerminalText`]), unless `--raw`. A log outlives its worker's record
//! (`kill` keeps it), so a log is found by id even when no record names it.

use std::io::{Read, Seek, SeekFrom};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::{person, CommandError, Ctx, Result};
use crate::fleet::terminal_text::TerminalText;
use crate::fleet::{Fleet, FleetError};
use crate::state::check_name;

/// Show a worker's output (its tmux pane, as logged)
///
/// Terminal escape sequences are left out and a line redrawn in place shows
/// as it ended; --raw prints the log as recorded. A log outlives its worker:
/// after 'git sprint kill' it is still here, until its feature is done or
/// --prune removes it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker
    #[arg(required_unless_present = "prune", conflicts_with = "prune")]
    pub(crate) id: Option<String>,
    /// How many lines from the end
    #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
    pub(crate) lines: usize,
    /// Keep printing new output until the worker ends
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// Print the bytes as recorded, terminal escape sequences and all
    #[arg(long)]
    pub(crate) raw: bool,
    /// Remove the logs of workers that no longer run and have no record (killed)
    #[arg(long, conflicts_with_all = ["follow", "raw"])]
    pub(crate) prune: bool,
    /// With --prune: also the logs of workers that ended but are still listed
    #[arg(long, requires = "prune")]
    pub(crate) all: bool,
}

enum Event {
    Changed,
    Ended,
}

/// How the log is shown: filtered to plain text, or as recorded.
enum View {
    Plain(TerminalText),
    Raw,
}

impl View {
    fn render(&mut self, bytes: &[u8]) -> Vec<u8> {
        match self {
            View::Plain(t) => {
                let mut out = Vec::with_capacity(bytes.len());
                t.push(bytes, &mut out);
                out
            }
            View::Raw => bytes.to_vec(),
        }
    }

    /// What is still held back (an unfinished line), at the end.
    fn finish(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let View::Plain(t) = self {
            t.finish(&mut out);
        }
        out
    }
}

/// Runs `git sprint logs`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    let actor = person(&fleet.store, None);
    if args.prune {
        return prune(ctx, &fleet, &actor, args.all);
    }
    let id = args
        .id
        .as_deref()
        .expect("clap requires an id without --prune");
    let path = fleet.log_path(id);
    // A worker without a record (killed) still has its log, found by id.
    let (agent, live) = match fleet.worker(&actor, id) {
        Ok((a, live)) => (Some(a), live),
        Err(FleetError::UnknownWorker { .. })
            if check_name("worker", id).is_ok() && path.is_file() =>
        {
            (None, false)
        }
        Err(e) => return Err(e.into()),
    };
    let running = agent
        .as_ref()
        .is_some_and(crate::state::liveness::is_running);
    let opened = match std::fs::File::open(&path) {
        // Following a worker whose pane has printed nothing yet: make the
        // (empty) log that tmux appends to, and follow it from the start.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && running && args.follow => {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .read(true)
                .open(&path)
        }
        other => other,
    };
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if running {
                writeln!(ctx.out, "No output from {id} yet.")?;
            } else {
                writeln!(
                    ctx.out,
                    "No log for {id}: logs are removed when their feature is done, or by 'git sprint logs --prune'."
                )?;
            }
            return Ok(());
        }
        Err(e) => return Err(read_error(&path, e)),
    };
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| read_error(&path, e))?;
    let mut offset = text.len() as u64;
    let mut view = if args.raw {
        View::Raw
    } else {
        View::Plain(TerminalText::new())
    };
    let follow = args.follow && live;
    let mut shown = view.render(&text);
    if !follow {
        shown.extend(view.finish());
    }
    ctx.out.write_all(&tail_lines(&shown, args.lines))?;
    let Some(a) = agent.filter(|_| follow) else {
        return Ok(());
    };

    // Follow: file events from notify, and the wrapper's exit from a thread
    // blocked on its pidfd; nothing polls.
    let (tx, rx) = mpsc::channel();
    let watch_tx = tx.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = watch_tx.send(Event::Changed);
        }
    })
    .map_err(|e| CommandError::Failed {
        message: format!("watching {}: {e}", path.display()),
        hint: None,
    })?;
    watcher
        .watch(&path, RecursiveMode::NonRecursive)
        .map_err(|e| CommandError::Failed {
            message: format!("watching {}: {e}", path.display()),
            hint: None,
        })?;
    // The pane's process is the wrapper (tmux execs it), known to tmux from
    // the start, even before the wrapper has recorded itself.
    let runner = fleet.tmux.pane_pid(&a.session).ok().or(a.runner_pid);
    if let Some(pid) = runner {
        std::thread::spawn(move || {
            crate::fleet::wait_for_exit(pid, Duration::from_secs(365 * 86400));
            let _ = tx.send(Event::Ended);
        });
    }
    ctx.out.flush()?;
    while let Ok(event) = rx.recv() {
        offset = copy_new(ctx, &mut file, offset, &path, &mut view)?;
        if matches!(event, Event::Ended) {
            // tmux may still be flushing the last bytes of the pane.
            std::thread::sleep(Duration::from_millis(100));
            copy_new(ctx, &mut file, offset, &path, &mut view)?;
            break;
        }
    }
    ctx.out.write_all(&view.finish())?;
    Ok(())
}

/// `logs --prune`: removes what no one will ask for, and says what.
fn prune(ctx: &mut Ctx<'_>, fleet: &Fleet, actor: &crate::state::Actor, all: bool) -> Result {
    let removed = fleet.prune_logs(actor, all)?;
    match removed.len() {
        0 if all => writeln!(ctx.out, "No logs to remove.")?,
        0 => writeln!(
            ctx.out,
            "No logs of killed workers to remove (--all also removes those of workers that ended)."
        )?,
        n => writeln!(
            ctx.out,
            "Removed {n} log{}: {}",
            if n == 1 { "" } else { "s" },
            removed.join(", ")
        )?,
    }
    Ok(())
}

fn copy_new(
    ctx: &mut Ctx<'_>,
    file: &mut std::fs::File,
    offset: u64,
    path: &std::path::Path,
    view: &mut View,
) -> Result<u64> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| read_error(path, e))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| read_error(path, e))?;
    ctx.out.write_all(&view.render(&buf))?;
    ctx.out.flush()?;
    Ok(offset + buf.len() as u64)
}

fn tail_lines(text: &[u8], n: usize) -> Vec<u8> {
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut count = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            count += 1;
            if count == n {
                return text[i + 1..].to_vec();
            }
        }
    }
    if n == 0 {
        return Vec::new();
    }
    text.to_vec()
}

fn read_error(path: &std::path::Path, source: std::io::Error) -> CommandError {
    FleetError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    }
    .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(super::tail_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(super::tail_lines(b"a\nb\nc", 5), b"a\nb\nc");
        assert_eq!(super::tail_lines(b"a\n", 0), b"");
    }
}
