//! `git sprint logs`: a worker's output, from the log its session writes.

use std::io::{Read, Seek, SeekFrom};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::{person, CommandError, Ctx, Result};
use crate::fleet::{Fleet, FleetError};

/// Show a worker's output (its tmux pane, as logged)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The worker
    pub id: String,
    /// How many lines from the end
    #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
    pub lines: usize,
    /// Keep printing new output until the worker ends
    #[arg(short = 'f', long)]
    pub follow: bool,
}

enum Event {
    Changed,
    Ended,
}

pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    let actor = person(&fleet.store, None);
    let (a, live) = fleet.worker(&actor, &args.id)?;
    let a = &a;
    let path = fleet.log_path(&a.id);
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            writeln!(ctx.out, "No output from {} yet.", a.id)?;
            return Ok(());
        }
        Err(e) => return Err(read_error(&path, e)),
    };
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| read_error(&path, e))?;
    let mut offset = text.len() as u64;
    write_clean(ctx, &tail_lines(&text, args.lines))?;
    if !args.follow || !live {
        return Ok(());
    }

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
    while let Ok(event) = rx.recv() {
        offset = copy_new(ctx, &mut file, offset, &path)?;
        if matches!(event, Event::Ended) {
            // tmux may still be flushing the last bytes of the pane.
            std::thread::sleep(Duration::from_millis(100));
            copy_new(ctx, &mut file, offset, &path)?;
            break;
        }
    }
    Ok(())
}

fn copy_new(
    ctx: &mut Ctx<'_>,
    file: &mut std::fs::File,
    offset: u64,
    path: &std::path::Path,
) -> Result<u64> {
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| read_error(path, e))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| read_error(path, e))?;
    write_clean(ctx, &buf)?;
    ctx.out.flush()?;
    Ok(offset + buf.len() as u64)
}

/// Terminal line ends (`\r\n`) become plain newlines and escape sequences
/// go: the wrapper writes a clean transcript, but a log can hold whatever an
/// agent printed before it (or a person typed into the pane).
fn write_clean(ctx: &mut Ctx<'_>, bytes: &[u8]) -> Result {
    let cleaned = crate::worker::stream::strip_terminal(&String::from_utf8_lossy(bytes));
    ctx.out.write_all(cleaned.as_bytes())?;
    Ok(())
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
