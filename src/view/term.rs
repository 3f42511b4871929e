//! The terminal for a live view: raw input (so `q` and Ctrl-C arrive as
//! keys) and the alternate screen, both undone when the guard drops — on a
//! normal return, on an error, and on a panic's unwind. SIGTERM, SIGHUP and
//! SIGINT become a normal return (see [`super::live`]), so they restore it too.
//!
//! Hand-written over libc's termios (already a dependency) rather than a
//! terminal crate: the view needs four escape sequences and one ioctl.

use std::io::{IsTerminal, Write};

/// Enter the alternate screen, hide the cursor.
const ENTER: &str = "\x1b[?1049h\x1b[?25l";
/// Show the cursor, leave the alternate screen.
const LEAVE: &str = "\x1b[?25h\x1b[?1049l";

/// Raw input and the alternate screen until dropped.
pub(crate) struct Screen {
    /// stdin's settings before, when stdin is a terminal.
    saved: Option<libc::termios>,
}

impl Screen {
    /// Takes over the terminal; stdout must be one.
    pub(crate) fn enter() -> std::io::Result<Screen> {
        let saved = if std::io::stdin().is_terminal() {
            let mut t = std::mem::MaybeUninit::<libc::termios>::uninit();
            // SAFETY: fd 0 is open (a terminal, checked above) and `t` is a
            // valid place for tcgetattr to write a termios into.
            if unsafe { libc::tcgetattr(0, t.as_mut_ptr()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: tcgetattr succeeded, so `t` is initialised.
            let saved = unsafe { t.assume_init() };
            let mut raw = saved;
            // Keys one at a time, unechoed, Ctrl-C as a byte; output
            // processing stays on so "\n" still returns the carriage.
            raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
            raw.c_iflag &= !(libc::IXON | libc::ICRNL);
            raw.c_cc[libc::VMIN] = 1;
            raw.c_cc[libc::VTIME] = 0;
            // SAFETY: fd 0 is a terminal and `raw` a valid termios.
            if unsafe { libc::tcsetattr(0, libc::TCSANOW, &raw) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Some(saved)
        } else {
            None
        };
        let screen = Screen { saved };
        let mut out = std::io::stdout().lock();
        out.write_all(ENTER.as_bytes())?;
        out.flush()?;
        Ok(screen)
    }

    /// Replaces what is shown with `text` (lines already painted).
    pub(crate) fn draw(&self, lines: &[String]) -> std::io::Result<()> {
        let mut buf = String::from("\x1b[H");
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                buf.push_str("\r\n");
            }
            buf.push_str(l);
            buf.push_str("\x1b[K");
        }
        buf.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        out.write_all(buf.as_bytes())?;
        out.flush()
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(LEAVE.as_bytes());
        let _ = out.flush();
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read from the same fd in `enter`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}

/// Columns and rows of the terminal on stdout; 80×24 when it cannot say.
pub(crate) fn size() -> (usize, usize) {
    let mut ws = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes a winsize into the valid place given.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, ws.as_mut_ptr()) } == 0;
    // SAFETY: zeroed is a valid winsize whether or not ioctl wrote it.
    let ws = unsafe { ws.assume_init() };
    if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (ws.ws_col as usize, ws.ws_row as usize)
    } else {
        (80, 24)
    }
}
