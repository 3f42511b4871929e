//! Prompts for the agents, rendered from the templates in `templates/`.
//!
//! The templates are compiled in, so the binary alone has everything it
//! needs; a repository may override one with `.git-sprint/<role>.md`.

use std::collections::BTreeMap;
use std::path::Path;

pub(crate) const DEVELOPER: &str = include_str!("../templates/developer.md");
pub(crate) const TESTER: &str = include_str!("../templates/tester.md");
pub(crate) const LIBRARIAN: &str = include_str!("../templates/librarian.md");
pub(crate) const REVIEWER: &str = include_str!("../templates/reviewer.md");

/// The template for `role`, from the repository if it has one.
pub(crate) fn template(worktree: &Path, role: &str) -> String {
    let custom = worktree.join(".git-sprint").join(format!("{role}.md"));
    if let Ok(text) = std::fs::read_to_string(custom) {
        return text;
    }
    match role {
        "tester" => TESTER,
        "librarian" => LIBRARIAN,
        "reviewer" => REVIEWER,
        _ => DEVELOPER,
    }
    .to_owned()
}

/// Replaces each `{key}` with its value; unknown placeholders stay as they
/// are, so a template can show braces.
pub(crate) fn render(template: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if vars.contains_key(&after[..close]) => {
                out.push_str(&vars[&after[..close]]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The variables of a Developer's or Tester's prompt for task `t` of
/// `feature`, whose work merges into `integration`.
pub(crate) fn task_vars(
    feature: &str,
    t: &crate::state::Task,
    integration: &str,
) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("feature", feature.to_owned()),
        ("task", t.id.clone()),
        ("title", t.title.clone()),
        ("description", t.description.clone()),
        (
            "paths",
            if t.paths.is_empty() {
                "(none named)".into()
            } else {
                t.paths.join(", ")
            },
        ),
        ("branch", crate::stages::task_branch(feature, &t.id)),
        ("integration", integration.to_owned()),
        ("feedback", feedback(&t.feedback)),
    ])
}

/// The feedback section: what earlier attempts were told, newest last.
pub(crate) fn feedback(items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Feedback from earlier attempts (fix these first)\n");
    for (i, f) in items.iter().enumerate() {
        out.push_str(&format!("\n## Attempt {}\n{}\n", i + 1, f.trim_end()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_keys_and_keeps_other_braces() {
        let vars = BTreeMap::from([("task", "T001".to_owned()), ("title", "Add {x}".to_owned())]);
        assert_eq!(
            render("{task}: {title} {unknown} {", &vars),
            "T001: Add {x} {unknown} {"
        );
    }

    #[test]
    fn reviewer_prompt_holds_the_diff_the_verdict_file_and_the_rule_not_to_edit() {
        let vars = BTreeMap::from([
            ("task", "T1".to_owned()),
            ("gate", "ai-review".to_owned()),
            ("diff", "+fn added() {}".to_owned()),
            (
                "verdict_file",
                "/repo/.git/sprint/verdicts/x/verdict.yaml".to_owned(),
            ),
            ("verdict_env", "GIT_SPRINT_VERDICT".to_owned()),
            ("feedback", String::new()),
        ]);
        let p = render(REVIEWER, &vars);
        for want in [
            "review gate `ai-review`",
            "Do not edit",
            "$GIT_SPRINT_VERDICT names (/repo/.git/sprint/verdicts/x/verdict.yaml)",
            "verdict: REQUEST_CHANGES",
            "+fn added() {}",
        ] {
            assert!(p.contains(want), "{want} not in:\n{p}");
        }
        assert!(!p.contains("{diff}") && !p.contains("{gate}"), "{p}");
    }

    #[test]
    fn developer_prompt_carries_feedback() {
        let vars = BTreeMap::from([
            ("feature", "f".to_owned()),
            ("task", "T1".to_owned()),
            (
                "feedback",
                feedback(&["clippy failed: unused variable".into()]),
            ),
        ]);
        let p = render(DEVELOPER, &vars);
        assert!(
            p.contains("task T1") && p.contains("## Attempt 1\nclippy failed"),
            "{p}"
        );
    }
}
