//! Rules and how one judges a task's diff. A rule has an id, an action
//! (`warn`, `require_approval`, `deny`, or `off`) and exactly one kind of
//! test: `paths` (globs on changed files), `content` / `secrets` (regular
//! expressions on added lines; `secrets: true` is a built-in set), size
//! limits (`max_files`, `max_lines`), or `scope` (files outside the task's
//! named paths and their tests). Rules are compiled once, when the policy
//! loads, so a bad glob or regex is an error of the file, not of a task.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::diff::FileChange;

/// What a matching rule does, mildest first (the order a later layer may
/// only climb, unless the rule is `overridable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RuleAction {
    /// The rule is switched off (only an `overridable` rule may be).
    Off,
    /// Let through, with a decision record saying what matched.
    Warn,
    /// Let through review, but the merge waits for `git sprint approve`.
    RequireApproval,
    /// Send the task back with the rule and what matched as feedback.
    Deny,
}

impl RuleAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RuleAction::Off => "off",
            RuleAction::Warn => "warn",
            RuleAction::RequireApproval => "require_approval",
            RuleAction::Deny => "deny",
        }
    }
}

/// A rule as written in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub(crate) id: String,
    pub(crate) action: RuleAction,
    /// A later layer may relax (or switch off) this rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) overridable: bool,
    /// Globs on the changed files (`migrations/**`, `.github/**`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) paths: Vec<String>,
    /// Regular expressions on added lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) content: Vec<String>,
    /// The built-in secret patterns (keys, tokens, private keys).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) secrets: bool,
    /// Most files one task may change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_files: Option<u64>,
    /// Most lines (added + deleted) one task may change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_lines: Option<u64>,
    /// Files changed outside the task's named paths and their tests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) scope: bool,
}

/// The kinds of test a rule can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Paths,
    Content,
    Size,
    Scope,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Paths => "paths",
            Kind::Content => "content",
            Kind::Size => "size",
            Kind::Scope => "scope",
        }
    }
}

impl RuleSpec {
    /// The one kind of test the rule makes, or what is wrong.
    pub(crate) fn kind(&self) -> Result<Kind, String> {
        let mut kinds = Vec::new();
        if !self.paths.is_empty() {
            kinds.push(Kind::Paths);
        }
        if !self.content.is_empty() || self.secrets {
            kinds.push(Kind::Content);
        }
        if self.max_files.is_some() || self.max_lines.is_some() {
            kinds.push(Kind::Size);
        }
        if self.scope {
            kinds.push(Kind::Scope);
        }
        match kinds.as_slice() {
            [k] => Ok(*k),
            [] => Err(format!(
                "rule `{}` tests nothing: give it `paths`, `content` or `secrets`, `max_files` or `max_lines`, or `scope: true`",
                self.id
            )),
            _ => Err(format!(
                "rule `{}` mixes {}: one rule makes one test; split it into several rules",
                self.id,
                kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(" and ")
            )),
        }
    }

    /// Whether `self`, replacing `earlier` (same id), is at least as strict.
    pub(crate) fn tightens(&self, earlier: &RuleSpec) -> bool {
        let superset = |new: &[String], old: &[String]| old.iter().all(|o| new.contains(o));
        let at_most = |new: Option<u64>, old: Option<u64>| match (new, old) {
            (_, None) => true,
            (Some(n), Some(o)) => n <= o,
            (None, Some(_)) => false,
        };
        self.action >= earlier.action
            && self.kind().ok() == earlier.kind().ok()
            && superset(&self.paths, &earlier.paths)
            && superset(&self.content, &earlier.content)
            && (self.secrets || !earlier.secrets)
            && at_most(self.max_files, earlier.max_files)
            && at_most(self.max_lines, earlier.max_lines)
            && (self.scope || !earlier.scope)
    }

    /// The test in a few words, for `policy show`.
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.paths.is_empty() {
            parts.push(format!("paths {}", self.paths.join(", ")));
        }
        if self.secrets {
            parts.push("secrets (built-in)".to_owned());
        }
        if !self.content.is_empty() {
            parts.push(format!("content {}", self.content.join(", ")));
        }
        if let Some(n) = self.max_files {
            parts.push(format!("more than {n} files"));
        }
        if let Some(n) = self.max_lines {
            parts.push(format!("more than {n} lines"));
        }
        if self.scope {
            parts.push("files outside the task's paths".to_owned());
        }
        parts.join("; ")
    }
}

/// The built-in secret patterns: name and regular expression. Matches are
/// reported by name and place, never by the text that matched.
pub(crate) const SECRETS: &[(&str, &str)] = &[
    ("aws-access-key", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    (
        "private-key",
        r"-----BEGIN ([A-Z]+ )?PRIVATE KEY( BLOCK)?-----",
    ),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    ("api-key", r"\bsk-(ant-)?[A-Za-z0-9_-]{20,}"),
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}\b"),
    (
        "password-assignment",
        r#"(?i)\b(password|passwd|secret|api[_-]?key|access[_-]?token)\b["']?\s*[:=]\s*["'][^"'\s]{8,}["']"#,
    ),
];

/// A rule ready to judge, with where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) spec: RuleSpec,
    /// `file:line` of the definition in effect.
    pub(crate) origin: String,
    /// What it replaced, oldest first: `file:line (action)`.
    pub(crate) overrides: Vec<String>,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Paths(GlobSet),
    Content(Vec<(String, Regex)>),
    Size {
        files: Option<u64>,
        lines: Option<u64>,
    },
    Scope,
}

impl Rule {
    /// Compiles `spec`; the error says which glob or pattern is wrong.
    pub(crate) fn compile(spec: RuleSpec, origin: String) -> Result<Rule, String> {
        let test = match spec.kind()? {
            Kind::Paths => {
                let mut set = GlobSetBuilder::new();
                for p in &spec.paths {
                    let glob = Glob::new(p).map_err(|e| {
                        format!("rule `{}`: `{p}` is not a valid glob: {e}", spec.id)
                    })?;
                    set.add(glob);
                }
                Test::Paths(
                    set.build()
                        .map_err(|e| format!("rule `{}`: {e}", spec.id))?,
                )
            }
            Kind::Content => {
                let mut patterns = Vec::new();
                if spec.secrets {
                    for (name, re) in SECRETS {
                        patterns.push(((*name).to_owned(), Regex::new(re).expect("built-in")));
                    }
                }
                for p in &spec.content {
                    let re = Regex::new(p).map_err(|e| {
                        format!(
                            "rule `{}`: `{p}` is not a valid regular expression: {e}",
                            spec.id
                        )
                    })?;
                    patterns.push((p.clone(), re));
                }
                Test::Content(patterns)
            }
            Kind::Size => Test::Size {
                files: spec.max_files,
                lines: spec.max_lines,
            },
            Kind::Scope => Test::Scope,
        };
        Ok(Rule {
            spec,
            origin,
            overrides: Vec::new(),
            test,
        })
    }

    /// What the rule finds in `files` (a task's change) for a task naming
    /// `task_paths`; `None` when it does not match (or is off).
    pub(crate) fn judge(&self, files: &[FileChange], task_paths: &[String]) -> Option<Finding> {
        if self.spec.action == RuleAction::Off {
            return None;
        }
        let mut inputs = BTreeMap::new();
        let matched: Vec<String> = match &self.test {
            Test::Paths(set) => files
                .iter()
                .filter(|f| set.is_match(&f.path))
                .map(|f| f.path.clone())
                .collect(),
            Test::Content(patterns) => {
                let mut hits = Vec::new();
                for f in files {
                    for (line, text) in &f.added_lines {
                        if let Some((name, _)) = patterns.iter().find(|(_, re)| re.is_match(text)) {
                            hits.push(format!("{}:{line} ({name})", f.path));
                        }
                    }
                }
                hits
            }
            Test::Size {
                files: mf,
                lines: ml,
            } => {
                let n_files = files.len() as u64;
                let n_lines: u64 = files.iter().map(|f| f.added + f.deleted).sum();
                inputs.insert("files".to_owned(), n_files.into());
                inputs.insert("lines".to_owned(), n_lines.into());
                let mut over = Vec::new();
                if let Some(m) = mf.filter(|m| n_files > *m) {
                    inputs.insert("max_files".to_owned(), m.into());
                    over.push(format!("{n_files} files changed (at most {m})"));
                }
                if let Some(m) = ml.filter(|m| n_lines > *m) {
                    inputs.insert("max_lines".to_owned(), m.into());
                    over.push(format!("{n_lines} lines changed (at most {m})"));
                }
                over
            }
            Test::Scope => {
                if task_paths.is_empty() {
                    // A task that names no paths has no scope to leave.
                    return None;
                }
                inputs.insert("task_paths".to_owned(), serde_json::json!(task_paths));
                files
                    .iter()
                    .filter(|f| !in_scope(&f.path, task_paths))
                    .map(|f| f.path.clone())
                    .collect()
            }
        };
        if matched.is_empty() {
            return None;
        }
        inputs.insert("matched".to_owned(), serde_json::json!(matched));
        Some(Finding {
            rule: self.spec.id.clone(),
            action: self.spec.action,
            origin: self.origin.clone(),
            matched,
            inputs,
        })
    }
}

/// Whether `file` is one of the task's `paths`, under one of them (a
/// directory), or a test of one: its name holds the path's stem and it sits
/// in a test file or directory (`tests/auth.rs`, `auth_test.go`,
/// `auth.test.ts`, `test_auth.py`).
pub(crate) fn in_scope(file: &str, paths: &[String]) -> bool {
    let lower = file.to_ascii_lowercase();
    let testish = lower
        .split('/')
        .any(|part| part.contains("test") || part.contains("spec"));
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    paths.iter().any(|p| {
        let p = p.trim_end_matches('/');
        if file == p || file.starts_with(&format!("{p}/")) {
            return true;
        }
        let base = p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
        let stem = base.split('.').next().unwrap_or(&base);
        testish && !stem.is_empty() && name.contains(stem)
    })
}

/// A rule that matched a task's change.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finding {
    pub(crate) rule: String,
    pub(crate) action: RuleAction,
    /// `file:line` of the rule.
    pub(crate) origin: String,
    /// What matched: paths, `path:line (pattern)`, or the sizes over a limit.
    pub(crate) matched: Vec<String>,
    /// The record's inputs (matched, sizes, limits).
    pub(crate) inputs: BTreeMap<String, serde_json::Value>,
}

impl Finding {
    /// The line that goes into feedback and transitions:
    /// `policy rule no-migrations (deny): migrations/001.sql`.
    pub(crate) fn line(&self) -> String {
        const SHOWN: usize = 10;
        let mut what = self
            .matched
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if self.matched.len() > SHOWN {
            what.push_str(&format!(" and {} more", self.matched.len() - SHOWN));
        }
        format!(
            "policy rule {} ({}): {what}",
            self.rule,
            self.action.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> RuleSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn change(path: &str, lines: &[&str]) -> FileChange {
        FileChange {
            path: path.into(),
            added: lines.len() as u64,
            deleted: 0,
            added_lines: lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i as u32 + 1, (*l).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_path_rule_names_the_files_it_matched() {
        let r = Rule::compile(
            spec("{id: mig, action: deny, paths: ['migrations/**']}"),
            "p:1".into(),
        )
        .unwrap();
        let files = [change("migrations/001.sql", &[]), change("src/a.rs", &[])];
        let f = r.judge(&files, &[]).unwrap();
        assert_eq!(f.matched, vec!["migrations/001.sql"]);
        assert_eq!(f.line(), "policy rule mig (deny): migrations/001.sql");
        assert!(r.judge(&files[1..], &[]).is_none());
    }

    #[test]
    fn secrets_are_found_by_name_and_place_never_quoted() {
        let r = Rule::compile(spec("{id: s, action: deny, secrets: true}"), "p:1".into()).unwrap();
        let key = format!("AKIA{}", "ABCDEFGHIJKLMNOP");
        let files = [change(
            "src/conf.rs",
            &["let a = 1;", &format!("let k = \"{key}\";")],
        )];
        let f = r.judge(&files, &[]).unwrap();
        assert_eq!(f.matched, vec!["src/conf.rs:2 (aws-access-key)"]);
        assert!(!f.line().contains(&key));
        assert!(r.judge(&[change("a", &["let a = 1;"])], &[]).is_none());
    }

    #[test]
    fn size_and_scope_rules_report_what_they_measured() {
        let size =
            Rule::compile(spec("{id: big, action: warn, max_files: 1}"), "p:1".into()).unwrap();
        let files = [
            change("src/auth.rs", &["x"]),
            change("tests/auth_login.rs", &["y"]),
        ];
        let f = size.judge(&files, &[]).unwrap();
        assert_eq!(f.inputs["files"], serde_json::json!(2));
        let scope =
            Rule::compile(spec("{id: sc, action: warn, scope: true}"), "p:1".into()).unwrap();
        assert!(scope.judge(&files, &["src/auth.rs".into()]).is_none());
        let out = scope
            .judge(&[change("README.md", &[])], &["src/auth.rs".into()])
            .unwrap();
        assert_eq!(out.matched, vec!["README.md"]);
        assert!(scope.judge(&[change("README.md", &[])], &[]).is_none());
    }

    #[test]
    fn a_rule_tests_one_thing_and_bad_patterns_say_which() {
        let e = spec("{id: x, action: deny}").kind().unwrap_err();
        assert!(e.contains("tests nothing"), "{e}");
        let e = spec("{id: x, action: deny, paths: [a], scope: true}")
            .kind()
            .unwrap_err();
        assert!(e.contains("paths and scope"), "{e}");
        let e =
            Rule::compile(spec("{id: x, action: deny, content: ['(']}"), "p".into()).unwrap_err();
        assert!(e.contains("`(` is not a valid regular expression"), "{e}");
    }

    #[test]
    fn tightening_climbs_the_action_and_keeps_every_pattern() {
        let base = spec("{id: x, action: require_approval, paths: [a]}");
        assert!(spec("{id: x, action: deny, paths: [a, b]}").tightens(&base));
        assert!(!spec("{id: x, action: warn, paths: [a]}").tightens(&base));
        assert!(!spec("{id: x, action: deny, paths: [b]}").tightens(&base));
        let size = spec("{id: s, action: warn, max_lines: 100}");
        assert!(spec("{id: s, action: warn, max_lines: 50}").tightens(&size));
        assert!(!spec("{id: s, action: warn, max_lines: 500}").tightens(&size));
    }
}
