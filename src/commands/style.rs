//! Colour on the terminal: decided once in `main` from `--color`, whether
//! stdout is a terminal, `NO_COLOR` and `TERM`, then asked by the commands
//! that print a board (`status`, `list`, `health`, `plan`).
//!
//! One process-wide switch rather than a field of every output handle: the
//! decision is about this process's stdout, and a command writing into a
//! buffer (tests, the demo) gets plain text because nothing turned it on.
//! Only what needs a person stands out: failed, dead and blocked work in red,
//! stalled and waiting work in yellow, finished work in green.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicBool, Ordering};

/// `--color`: when to colour output, as git's `--color[=<when>]`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    // On a terminal, unless NO_COLOR is set or TERM is dumb.
    #[default]
    Auto,
    Always,
    Never,
}

static ON: AtomicBool = AtomicBool::new(false);

/// Whether to colour, from the choice and the environment. `NO_COLOR` set to
/// anything but the empty string turns `auto` off (no-color.org); an
/// explicit `always` still wins, as a command-line flag should.
pub fn decide(
    choice: ColorChoice,
    stdout_is_terminal: bool,
    no_color: Option<&OsStr>,
    term: Option<&OsStr>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            stdout_is_terminal
                && no_color.is_none_or(|v| v.is_empty())
                && term.is_none_or(|t| t != "dumb")
        }
    }
}

/// Turns colour on or off for the rest of the process (`main` only).
pub fn set(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

/// Whether output is coloured.
pub(crate) fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// What a piece of text says to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    /// Failed, dead, blocked: needs a person now.
    Bad,
    /// Stalled, waiting, expired: worth a look.
    Warn,
    /// Done, healthy.
    Good,
}

impl Tone {
    /// The board style of the same meaning: one table of escape codes
    /// ([`crate::view::render::sgr`]) for `watch` and the other boards.
    fn style(self) -> crate::view::render::Style {
        use crate::view::render::Style;
        match self {
            Tone::Bad => Style::Failure,
            Tone::Warn => Style::Warning,
            Tone::Good => Style::Done,
        }
    }
}

/// `text` in its tone when colour is on; pad before painting, since the
/// escape codes have no width.
pub(crate) fn paint(text: &str, tone: Option<Tone>) -> Cow<'_, str> {
    match tone {
        Some(tone) if enabled() => {
            let (start, end) = crate::view::render::sgr(tone.style());
            Cow::Owned(format!("{start}{text}{end}"))
        }
        _ => Cow::Borrowed(text),
    }
}

/// The tone of a state word as the boards print it (task and feature
/// statuses, worker states, trouble kinds, health problems).
pub(crate) fn tone_of(word: &str) -> Option<Tone> {
    let word = word.trim();
    let head = word.split([' ', '(']).next().unwrap_or(word);
    match head {
        "failed" | "dead" | "blocked" | "quarantined" | "breaker" | "budget" | "base_conflict"
        | "error" | "unhealthy" | "lost" | "killed" => Some(Tone::Bad),
        "stalled" | "paused" | "expired" | "stale" | "warning" | "conflict" | "approval"
        | "awaiting_approval" => Some(Tone::Warn),
        "done" | "merged" | "ok" | "running" | "healthy" => Some(Tone::Good),
        _ => None,
    }
}

/// `text` painted in the tone of its first word.
pub(crate) fn state(text: &str) -> Cow<'_, str> {
    paint(text, tone_of(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colours_a_terminal_only() {
        assert!(decide(ColorChoice::Auto, true, None, None));
        assert!(!decide(ColorChoice::Auto, false, None, None));
    }

    #[test]
    fn no_color_turns_auto_off_unless_empty() {
        let set = Some(OsStr::new("1"));
        assert!(!decide(ColorChoice::Auto, true, set, None));
        assert!(decide(ColorChoice::Auto, true, Some(OsStr::new("")), None));
        // An explicit flag beats the environment.
        assert!(decide(ColorChoice::Always, true, set, None));
        assert!(decide(ColorChoice::Always, false, None, None));
    }

    #[test]
    fn never_and_a_dumb_terminal_mean_plain_text() {
        assert!(!decide(ColorChoice::Never, true, None, None));
        let dumb = Some(OsStr::new("dumb"));
        assert!(!decide(ColorChoice::Auto, true, None, dumb));
        assert!(decide(
            ColorChoice::Auto,
            true,
            None,
            Some(OsStr::new("xterm-256color"))
        ));
    }

    #[test]
    fn failed_blocked_and_stalled_stand_out() {
        assert_eq!(tone_of("failed"), Some(Tone::Bad));
        assert_eq!(tone_of("failed (auth)"), Some(Tone::Bad));
        assert_eq!(tone_of("blocked 2"), Some(Tone::Bad));
        assert_eq!(tone_of("stalled"), Some(Tone::Warn));
        assert_eq!(tone_of("done"), Some(Tone::Good));
        assert_eq!(tone_of("todo"), None);
        assert_eq!(tone_of("in_progress"), None);
    }
}
