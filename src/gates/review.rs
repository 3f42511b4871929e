//! The AI Reviewer's verdict: a review gate of `kind: agent` ends in a small
//! YAML (or JSON) document, `verdict: APPROVE | REQUEST_CHANGES` with
//! `comments: [{path, line, body}]`.
//!
//! The Reviewer writes it to the file `$GIT_SPRINT_VERDICT` names, outside
//! its worktree (the one place its sandbox grants beside the worktree). A
//! CLI that cannot write files may end its final message with a fenced
//! ```` ```verdict ```` block instead; its wrapper copies that block into the
//! file when the run ends, so the CAB reads one place. The Reviewer is
//! untrusted: a missing, malformed or oversized verdict is a failed gate
//! with a cause that says which, never an approval, and what reaches the
//! next prompt is bounded.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::state::ReviewComment;

/// The environment variable naming the verdict file.
pub(crate) const VERDICT_ENV: &str = "GIT_SPRINT_VERDICT";

/// A verdict file longer than this is refused unread.
const MAX_BYTES: u64 = 64 * 1024;
/// Comments kept from one verdict; more are summed up in one line.
const MAX_COMMENTS: usize = 50;
/// A comment's body is cut to this many characters.
const MAX_BODY: usize = 2000;

/// Where Reviewer `agent` writes its verdict: a directory of its own under
/// `$GIT_COMMON_DIR/sprint/verdicts/`, so it can write no other's.
pub(crate) fn verdict_path(common_dir: &Path, agent: &str) -> PathBuf {
    common_dir
        .join("sprint")
        .join("verdicts")
        .join(agent)
        .join("verdict.yaml")
}

/// What the Reviewer decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Approve,
    RequestChanges,
}

impl Decision {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "APPROVE",
            Decision::RequestChanges => "REQUEST_CHANGES",
        }
    }
}

/// A verdict as read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) decision: Decision,
    pub(crate) comments: Vec<ReviewComment>,
}

/// Why there is no usable verdict; each says what the Reviewer must do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum VerdictError {
    #[error(
        "the Reviewer gave no verdict: it wrote no {} and its final message held no ```verdict block",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("the Reviewer's verdict in {} is malformed: {message}", path.display())]
    Malformed { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    verdict: String,
    #[serde(default)]
    comments: Vec<RawComment>,
}

/// A comment in full, or just its text.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawComment {
    Text(String),
    Full {
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        line: Option<u64>,
        body: String,
    },
}

/// Reads and checks the verdict at `path`.
pub(crate) fn read(path: &Path) -> Result<Verdict, VerdictError> {
    let malformed = |message: String| VerdictError::Malformed {
        path: path.to_owned(),
        message,
    };
    match std::fs::symlink_metadata(path) {
        Err(_) => {
            return Err(VerdictError::Missing {
                path: path.to_owned(),
            })
        }
        Ok(m) if !m.is_file() => return Err(malformed("not a regular file".into())),
        Ok(m) if m.len() > MAX_BYTES => {
            return Err(malformed(format!(
                "{} bytes; a verdict is at most {MAX_BYTES}",
                m.len()
            )))
        }
        Ok(_) => {}
    }
    let text = std::fs::read_to_string(path).map_err(|e| malformed(e.to_string()))?;
    parse(&text).map_err(malformed)
}

/// Parses a verdict document (YAML or JSON).
pub(crate) fn parse(text: &str) -> Result<Verdict, String> {
    let raw: Raw = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let norm = raw
        .verdict
        .trim()
        .to_ascii_uppercase()
        .replace([' ', '-'], "_");
    let decision = match norm.as_str() {
        "APPROVE" | "APPROVED" => Decision::Approve,
        "REQUEST_CHANGES" | "CHANGES_REQUESTED" => Decision::RequestChanges,
        _ => {
            return Err(format!(
                "verdict `{}` is neither APPROVE nor REQUEST_CHANGES",
                raw.verdict
            ))
        }
    };
    let total = raw.comments.len();
    let mut comments: Vec<ReviewComment> = raw
        .comments
        .into_iter()
        .map(|c| match c {
            RawComment::Text(body) => ReviewComment {
                path: None,
                line: None,
                body,
            },
            RawComment::Full { path, line, body } => ReviewComment { path, line, body },
        })
        .map(|mut c| {
            c.body = cut(c.body.trim(), MAX_BODY);
            c.path = c.path.map(|p| cut(p.trim(), 300)).filter(|p| !p.is_empty());
            c
        })
        .filter(|c| !c.body.is_empty())
        .take(MAX_COMMENTS)
        .collect();
    if total > MAX_COMMENTS {
        comments.push(ReviewComment {
            path: None,
            line: None,
            body: format!("({} more comments not shown)", total - MAX_COMMENTS),
        });
    }
    if decision == Decision::RequestChanges && comments.is_empty() {
        return Err("REQUEST_CHANGES with no comment saying what to change".into());
    }
    Ok(Verdict { decision, comments })
}

/// The last fenced ```` ```verdict ```` block of a final message (or the
/// last ```` ```yaml ````/```` ```json ```` block that names a `verdict`).
pub(crate) fn from_message(text: &str) -> Option<String> {
    let mut found = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let info = info.trim().to_ascii_lowercase();
        let mut body = String::new();
        for inner in lines.by_ref() {
            if inner.trim_start().starts_with("```") {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        let named = info == "verdict";
        let likely = matches!(info.as_str(), "yaml" | "yml" | "json") && body.contains("verdict");
        if named || likely {
            found = Some(body);
        }
    }
    found
}

/// The developer's feedback from a Reviewer that asked for changes.
pub(crate) fn feedback(gate: &str, agent: &str, comments: &[ReviewComment]) -> String {
    let mut out = format!("review gate {gate}: the Reviewer ({agent}) requested changes:\n");
    for c in comments {
        let at = match (&c.path, c.line) {
            (Some(p), Some(l)) => format!("{p}:{l}: "),
            (Some(p), None) => format!("{p}: "),
            _ => String::new(),
        };
        out.push_str(&format!("- {at}{}\n", c.body.replace('\n', "\n  ")));
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_verdicts_in_yaml_and_json() {
        let v = parse("verdict: APPROVE\n").unwrap();
        assert_eq!(v.decision, Decision::Approve);
        assert!(v.comments.is_empty());
        let v = parse(
            r#"{"verdict": "request_changes", "comments": [{"path": "src/a.rs", "line": 3, "body": "unwrap on input"}, "add a test"]}"#,
        )
        .unwrap();
        assert_eq!(v.decision, Decision::RequestChanges);
        assert_eq!(v.comments.len(), 2);
        assert_eq!(v.comments[0].path.as_deref(), Some("src/a.rs"));
        assert_eq!(v.comments[1].body, "add a test");
        assert_eq!(
            feedback("ai", "f.T1.review.1", &v.comments),
            "review gate ai: the Reviewer (f.T1.review.1) requested changes:\n\
             - src/a.rs:3: unwrap on input\n- add a test\n"
        );
    }

    #[test]
    fn refuses_what_is_no_verdict() {
        for (text, says) in [
            ("verdict: LGTM\n", "neither APPROVE"),
            ("verdict: REQUEST_CHANGES\n", "no comment"),
            ("verdict: REQUEST_CHANGES\ncomments: ['  ']\n", "no comment"),
            ("comments: []\n", "missing field `verdict`"),
            ("verdict: APPROVE\nscore: 3\n", "unknown field `score`"),
            ("- not a map\n", "invalid type"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn bounds_what_reaches_the_next_prompt() {
        let many: Vec<String> = (0..60).map(|i| format!("'c{i}'")).collect();
        let v = parse(&format!(
            "verdict: REQUEST_CHANGES\ncomments: [{}]\n",
            many.join(", ")
        ))
        .unwrap();
        assert_eq!(v.comments.len(), MAX_COMMENTS + 1);
        assert_eq!(
            v.comments[MAX_COMMENTS].body,
            "(10 more comments not shown)"
        );
        let long = "x".repeat(MAX_BODY + 10);
        let v = parse(&format!("verdict: REQUEST_CHANGES\ncomments: ['{long}']\n")).unwrap();
        assert_eq!(v.comments[0].body.chars().count(), MAX_BODY + 1);
    }

    #[test]
    fn reads_the_file_and_names_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = verdict_path(dir.path(), "f.T1.review.1");
        assert!(path.ends_with("sprint/verdicts/f.T1.review.1/verdict.yaml"));
        let e = read(&path).unwrap_err();
        assert!(matches!(e, VerdictError::Missing { .. }), "{e}");
        assert!(e.to_string().contains("```verdict block"), "{e}");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "verdict: maybe\n").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("is malformed: verdict `maybe`"), "{e}");
        std::fs::write(&path, "x".repeat(MAX_BYTES as usize + 1)).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains("a verdict is at most"), "{e}");
        std::fs::write(&path, "verdict: APPROVE\n").unwrap();
        assert_eq!(read(&path).unwrap().decision, Decision::Approve);
    }

    #[test]
    fn finds_the_last_verdict_block_of_a_message() {
        let msg =
            "I looked.\n```rust\nlet verdict = 1;\n```\n```verdict\nverdict: REQUEST_CHANGES\n\
                   comments: [fix it]\n```\nthanks\n```yaml\nverdict: APPROVE\n```\n";
        assert_eq!(from_message(msg).unwrap(), "verdict: APPROVE\n");
        assert!(from_message("no block here").is_none());
        assert!(from_message("```sh\necho verdict\n```").is_none());
    }
}
