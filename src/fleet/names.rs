//! Names: a worker's tmux session name, the trailer that names an agent in
//! its commits, and worker-name slugs made from a prompt.

/// The trailer naming the agent in its commits.
pub(crate) const AGENT_TRAILER: &str = "Sprint-Agent";

/// The tmux session name of worker `id`: tmux mangles `.` and non-ASCII.
pub(crate) fn session_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `message` with the `Sprint-Agent: <id>` trailer, for commits git-sprint
/// makes of an agent's work (the agent's own get it from the
/// `prepare-commit-msg` hook).
pub(crate) fn with_agent_trailer(message: &str, id: &str) -> String {
    format!("{}\n\n{AGENT_TRAILER}: {id}\n", message.trim_end())
}

/// A worker-name slug from the first words of a prompt (`fanout` when none).
pub(crate) fn slug(prompt: &str) -> String {
    let mut out = String::new();
    for word in prompt.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if !out.is_empty() {
            if out.len() + 1 + word.len() > 24 {
                break;
            }
            out.push('-');
        }
        out.push_str(&word.to_ascii_lowercase());
        if out.len() >= 24 {
            out.truncate(24);
            break;
        }
    }
    if out.is_empty() {
        "fanout".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::check_name;

    #[test]
    fn names() {
        assert_eq!(session_name("fix.auth-1"), "fix_auth-1");
        assert_eq!(
            slug("Refactor the auth module, please!"),
            "refactor-the-auth-module"
        );
        assert_eq!(slug("!!!"), "fanout");
        assert!(check_name("worker", &slug("Ünïcode things")).is_ok());
    }
}
