//! The router: which agent profile takes a task.
//!
//! A task's labels are its tasks.md tags (`[US1]`, `[Risk: High]`, any
//! `[tag]` but `[P]`) and the languages of the paths it names (`rust` for
//! `src/lib.rs`); skills and `route:` rules match on them ([`rules`]),
//! against what the registry knows of each profile ([`registry`]).

pub(crate) mod registry;
pub(crate) mod rules;

pub(crate) use registry::{stats, Routing};
pub(crate) use rules::{choose, Candidate, Choice, RouteRule, TaskView};

use crate::state::Task;

/// The task's labels: its story, its tags, then its paths' languages;
/// each once.
pub(crate) fn labels(task: &Task) -> Vec<String> {
    labels_of(task.story.as_deref(), &task.labels, &task.paths)
}

/// [`labels`] from the parts, for a task not yet in the state (`plan`).
pub(crate) fn labels_of(story: Option<&str>, tags: &[String], paths: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |l: &str| {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(l)) {
            out.push(l.to_owned());
        }
    };
    if let Some(s) = story {
        add(s);
    }
    for l in tags {
        add(l);
    }
    for l in languages(paths) {
        add(l);
    }
    out
}

/// The languages of `paths`, by file extension.
pub(crate) fn languages(paths: &[String]) -> Vec<&'static str> {
    let mut out = Vec::new();
    for p in paths {
        let ext = p.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if ext.contains('/') {
            continue;
        }
        let lang = match ext.to_ascii_lowercase().as_str() {
            "rs" => "rust",
            "go" => "go",
            "py" | "pyi" => "python",
            "ts" | "tsx" => "typescript",
            "js" | "jsx" | "mjs" | "cjs" => "javascript",
            "rb" => "ruby",
            "java" => "java",
            "kt" | "kts" => "kotlin",
            "swift" => "swift",
            "c" | "h" => "c",
            "cc" | "cpp" | "cxx" | "hpp" | "hh" => "cpp",
            "cs" => "csharp",
            "php" => "php",
            "sh" | "bash" => "shell",
            "md" => "markdown",
            _ => continue,
        };
        if !out.contains(&lang) {
            out.push(lang);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_story_tags_and_languages_once_each() {
        let mut t = Task::new("T1", "x", "");
        t.story = Some("US1".into());
        t.labels = vec!["Risk: High".into(), "us1".into()];
        t.paths = vec![
            "src/a.rs".into(),
            "src/b.rs".into(),
            "web/app.tsx".into(),
            "docs/".into(),
        ];
        assert_eq!(labels(&t), ["US1", "Risk: High", "rust", "typescript"]);
    }
}
