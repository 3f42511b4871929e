//! A pager for long output on a terminal, chosen as git chooses its own:
//! `$GIT_PAGER`, then `pager.sprint`, then `core.pager`, then `$PAGER`,
//! then `less`, with `LESS=FRX` unless set (quit if one screen, keep
//! colours, leave the screen as it was). `cat` or an empty command means
//! none, as does output that is not a terminal.

use std::io::{IsTerminal, Write};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::state::Store;

/// A running pager; write to it, then [`Pager::finish`].
pub(crate) struct Pager {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// The pager command, from git's sources in git's order; `None` for none.
/// `pager_sprint` is `pager.sprint`: a command, or a boolean.
pub(crate) fn choose(
    git_pager: Option<&str>,
    pager_sprint: Option<&str>,
    core_pager: Option<&str>,
    pager: Option<&str>,
) -> Option<String> {
    let sprint = match pager_sprint.map(str::trim) {
        Some("false" | "no" | "off" | "0") => return None,
        Some("true" | "yes" | "on" | "1" | "") | None => None,
        Some(cmd) => Some(cmd),
    };
    let cmd = git_pager
        .or(sprint)
        .or(core_pager)
        .or(pager)
        .unwrap_or("less")
        .trim();
    (!cmd.is_empty() && cmd != "cat").then(|| cmd.to_owned())
}

impl Pager {
    /// Starts the pager when stdout is a terminal and one is configured;
    /// `None` means write straight out (also when the pager cannot start).
    pub(crate) fn start(store: &Store) -> Option<Pager> {
        if !std::io::stdout().is_terminal() {
            return None;
        }
        let config = store.repo().config_snapshot();
        let value = |key: &str| config.string(key).map(|v| v.to_string());
        let env = |key: &str| std::env::var(key).ok();
        let cmd = choose(
            env("GIT_PAGER").as_deref(),
            value("pager.sprint").as_deref(),
            value("core.pager").as_deref(),
            env("PAGER").as_deref(),
        )?;
        let mut command = Command::new("sh");
        command.arg("-c").arg(&cmd).stdin(Stdio::piped());
        if std::env::var_os("LESS").is_none() {
            command.env("LESS", "FRX");
        }
        if std::env::var_os("LV").is_none() {
            command.env("LV", "-c");
        }
        let mut child = command.spawn().ok()?;
        let stdin = child.stdin.take();
        Some(Pager { child, stdin })
    }

    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        self.stdin.as_mut().expect("stdin until finish")
    }

    /// Closes the pager's input and waits until the person leaves it.
    pub(crate) fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn the_pager_is_chosen_in_gits_order_and_cat_means_none() {
        assert_eq!(choose(None, None, None, None).as_deref(), Some("less"));
        assert_eq!(
            choose(Some("most"), Some("x"), Some("y"), Some("z")).as_deref(),
            Some("most")
        );
        assert_eq!(
            choose(None, Some("true"), Some("y"), Some("z")).as_deref(),
            Some("y")
        );
        assert_eq!(
            choose(None, None, None, Some("more")).as_deref(),
            Some("more")
        );
        assert_eq!(choose(None, Some("false"), None, Some("more")), None);
        assert_eq!(choose(None, None, Some("cat"), None), None);
        assert_eq!(choose(Some(""), None, None, None), None);
    }
}
