//! A task's change as the policy judges it: each file the branch changed
//! (from its merge-base with the integration branch, as the gates see it —
//! see `gates::diff`), with line counts and the lines it added. Asked of git
//! with a pinned output format (`--no-renames`, fixed prefixes, no colour,
//! no external diff), so a user's diff settings cannot hide a change.

use crate::worker::worktree::{Git, WorktreeError};

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileChange {
    /// Repository-relative path (the new path; a deleted file's old one).
    pub(crate) path: String,
    pub(crate) added: u64,
    pub(crate) deleted: u64,
    /// Added lines with their line numbers in the new file.
    pub(crate) added_lines: Vec<(u32, String)>,
}

/// The change of branch `tip` against its merge-base with `base`.
pub(crate) fn branch_change(
    git: &Git,
    base: &str,
    tip: &str,
) -> Result<Vec<FileChange>, WorktreeError> {
    let mb = git.run(&["merge-base", base, tip])?;
    let range = format!("{}..{tip}", mb.trim());
    let common = [
        "-c",
        "core.quotePath=false",
        "diff",
        "--no-renames",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--src-prefix=a/",
        "--dst-prefix=b/",
    ];
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["--numstat", "-z", &range, "--"]);
    let numstat = git.run(&args)?;
    let mut files = parse_numstat(&numstat);
    let mut args: Vec<&str> = common.to_vec();
    args.extend(["-U0", &range, "--"]);
    let patch = git.run(&args)?;
    for (path, lines) in parse_added(&patch) {
        if let Some(f) = files.iter_mut().find(|f| f.path == path) {
            f.added_lines = lines;
        }
    }
    Ok(files)
}

/// `added\tdeleted\tpath\0` records; a binary file counts `-` as 0.
fn parse_numstat(out: &str) -> Vec<FileChange> {
    out.split('\0')
        .filter_map(|rec| {
            let rec = rec.trim_start_matches('\n');
            let mut parts = rec.splitn(3, '\t');
            let added = parts.next()?.parse().unwrap_or(0);
            let deleted = parts.next()?.parse().unwrap_or(0);
            let path = parts.next()?.to_owned();
            (!path.is_empty()).then_some(FileChange {
                path,
                added,
                deleted,
                added_lines: Vec::new(),
            })
        })
        .collect()
}

/// The added lines of a `-U0` patch, by file. A line starting `diff --git`
/// can only be a header (patch lines start with `+`, `-`, ` ` or `\`), so
/// an added line that looks like a header is never mistaken for one.
fn parse_added(patch: &str) -> Vec<(String, Vec<(u32, String)>)> {
    let mut out: Vec<(String, Vec<(u32, String)>)> = Vec::new();
    let mut in_hunk = false;
    let mut next_line = 0u32;
    for line in patch.lines() {
        if line.starts_with("diff --git ") {
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            if let Some(path) = line.strip_prefix("+++ ") {
                let path = unquote(path);
                if let Some(p) = path.strip_prefix("b/") {
                    out.push((p.to_owned(), Vec::new()));
                }
            } else if line.starts_with("@@") {
                in_hunk = true;
                next_line = hunk_start(line);
            }
            continue;
        }
        if line.starts_with("@@") {
            next_line = hunk_start(line);
        } else if let Some(text) = line.strip_prefix('+') {
            if let Some((_, lines)) = out.last_mut() {
                lines.push((next_line, text.to_owned()));
            }
            next_line += 1;
        }
    }
    out
}

/// The new file's first line of a hunk header `@@ -a,b +c,d @@`.
fn hunk_start(header: &str) -> u32 {
    header
        .split_whitespace()
        .find_map(|w| w.strip_prefix('+'))
        .and_then(|w| w.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A path git quoted (`"b/a\tb"`): C escapes undone; others as they are.
fn unquote(p: &str) -> String {
    let Some(inner) = p.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return p.to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::testutil::TestRepo;

    #[test]
    fn a_branch_change_lists_files_counts_and_added_lines() {
        let repo = TestRepo::new();
        let git = &repo.git;
        git.run(&["checkout", "-q", "-b", "topic"]).unwrap();
        std::fs::create_dir_all(repo.work.join("migrations")).unwrap();
        std::fs::write(repo.work.join("migrations/001.sql"), "create;\n+++ b/x\n").unwrap();
        std::fs::write(repo.work.join("notes.txt"), "one\ndiff --git a b\n").unwrap();
        git.run(&["add", "-A"]).unwrap();
        git.run(&["commit", "-q", "-m", "change"]).unwrap();
        let mut files = branch_change(git, "main", "topic").unwrap();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0].path, "migrations/001.sql");
        assert_eq!(
            files[0].added_lines,
            vec![(1, "create;".to_owned()), (2, "+++ b/x".to_owned())]
        );
        assert_eq!((files[1].added, files[1].deleted), (2, 0));
        assert_eq!(files[1].added_lines[1], (2, "diff --git a b".to_owned()));
    }
}
