//! Which words of a task are file paths, and when two paths overlap.
//!
//! Tasks name their files in prose, so this is a heuristic tuned on real tasks.md files:
//! a backticked word is a path if it has a `/` or a known extension; a bare word only if it
//! ends with a known extension, is a directory (`src/`) or a glob with a `/`. Commands
//! (backticks with spaces), URLs, absolute paths and API routes (`/v1/models`) are not paths:
//! a missed lock is a conflict at merge time, a false lock only costs parallelism.

use globset::{GlobBuilder, GlobMatcher};

const EXTENSIONS: &[&str] = &[
    "rs",
    "go",
    "ts",
    "tsx",
    "js",
    "jsx",
    "mjs",
    "cjs",
    "py",
    "pyi",
    "rb",
    "java",
    "kt",
    "kts",
    "swift",
    "c",
    "h",
    "cc",
    "cpp",
    "cxx",
    "hpp",
    "hh",
    "cs",
    "fs",
    "php",
    "lua",
    "pl",
    "sh",
    "bash",
    "zsh",
    "fish",
    "ps1",
    "bat",
    "md",
    "mdx",
    "markdown",
    "rst",
    "txt",
    "adoc",
    "json",
    "jsonc",
    "json5",
    "yaml",
    "yml",
    "toml",
    "ini",
    "cfg",
    "conf",
    "env",
    "lock",
    "xml",
    "html",
    "htm",
    "css",
    "scss",
    "sass",
    "less",
    "vue",
    "svelte",
    "astro",
    "sql",
    "prisma",
    "graphql",
    "gql",
    "proto",
    "tf",
    "hcl",
    "nix",
    "dockerfile",
    "tmpl",
    "tpl",
    "j2",
    "hbs",
    "ejs",
    "csv",
    "tsv",
    "ipynb",
    "jl",
    "ex",
    "exs",
    "erl",
    "hrl",
    "elm",
    "hs",
    "ml",
    "mli",
    "clj",
    "cljs",
    "scala",
    "dart",
    "zig",
    "nim",
    "sol",
    "wasm",
    "gradle",
    "properties",
    "mod",
    "sum",
    "plist",
    "svg",
    "png",
    "jpg",
    "jpeg",
    "gif",
    "ico",
    "webp",
    "pdf",
    "geojson",
    "ttf",
    "otf",
    "woff",
    "woff2",
    "mk",
    "cmake",
    "gitignore",
    "example",
    "sample",
    "patch",
    "diff",
    "snap",
    "http",
];

/// Well-known files without an extension.
const BARE_NAMES: &[&str] = &[
    "Makefile",
    "Dockerfile",
    "Justfile",
    "justfile",
    "Rakefile",
    "Gemfile",
    "Procfile",
    "LICENSE",
    "CODEOWNERS",
    "Containerfile",
];

/// Product names that look like files.
const NOT_FILES: &[&str] = &[
    "node.js",
    "vue.js",
    "next.js",
    "nuxt.js",
    "react.js",
    "express.js",
    "three.js",
    "d3.js",
    "chart.js",
    "angular.js",
    "ember.js",
    "backbone.js",
];

const TLDS: &[&str] = &["com", "org", "net", "io", "dev", "co", "ai", "app", "sh"];

/// Paths named in `line`, normalized, in order of appearance, appended to `out` unless present.
pub(crate) fn extract_into(line: &str, out: &mut Vec<String>) {
    for (i, seg) in line.split('`').enumerate() {
        if i % 2 == 1 {
            let s = seg.trim();
            if !s.is_empty() && !s.contains(char::is_whitespace) {
                push(normalize(s, true), out);
            }
        } else {
            // `[text](target)`: look at the target on its own.
            let plain = seg.replace("](", "] (");
            for tok in plain.split(|c: char| !is_bare_char(c)) {
                push(normalize(tok, false), out);
            }
        }
    }
}

/// spec-kit's own documents, which a tasks.md names relative to its own directory.
const SPEC_DOCS: &[&str] = &[
    "spec.md",
    "plan.md",
    "tasks.md",
    "research.md",
    "data-model.md",
    "quickstart.md",
    "checklist.md",
];

/// Directories of spec-kit's documents beside tasks.md.
const SPEC_DIRS: &[&str] = &["contracts/", "checklists/"];

/// The directory of the tasks.md named `file` (`specs/<feature>`), without a `@rev`
/// suffix; empty for a file at the top.
pub(crate) fn spec_dir_of(file: &str) -> String {
    let file = match file.rfind(".md@") {
        Some(i) => &file[..i + 3],
        None => file,
    };
    match file.rfind('/') {
        Some(i) => file[..i].to_string(),
        None => String::new(),
    }
}

/// `spec.md`, `contracts/api.yaml` → under `dir` (`specs/<feature>/spec.md`); any other
/// path unchanged.
pub(crate) fn under_spec_dir(path: &str, dir: &str) -> String {
    let spec_doc = SPEC_DOCS.contains(&path) || SPEC_DIRS.iter().any(|d| path.starts_with(d));
    if dir.is_empty() || !spec_doc {
        return path.to_string();
    }
    format!("{}/{path}", dir.trim_end_matches('/'))
}

fn push(p: Option<String>, out: &mut Vec<String>) {
    if let Some(p) = p {
        if !out.contains(&p) {
            out.push(p);
        }
    }
}

fn is_bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '_' | '-'
                | '.'
                | '/'
                | '*'
                | '?'
                | '['
                | ']'
                | '{'
                | '}'
                | '@'
                | '+'
                | '~'
                | '\\'
                | ':'
                | '#'
                | '('
                | ')'
        )
}

fn strip_wrapping(mut t: &str) -> &str {
    loop {
        let before = t;
        for m in ["**", "__"] {
            if t.len() > 4 && t.starts_with(m) && t.ends_with(m) {
                t = &t[2..t.len() - 2];
            }
        }
        t = t.trim_end_matches(['.', ',', ':', ';', '!', '?', '\'', '"']);
        for (open, close) in [('(', ')'), ('[', ']'), ('{', '}')] {
            if t.starts_with(open) && !t.contains(close) {
                t = &t[1..];
            }
            if t.ends_with(close) && !t.contains(open) {
                t = &t[..t.len() - 1];
            }
            if t.starts_with(open) && t.ends_with(close) && t.len() >= 2 {
                let inner = &t[1..t.len() - 1];
                if !inner.contains(open) && !inner.contains(close) {
                    t = inner;
                }
            }
        }
        if t == before {
            return t;
        }
    }
}

/// Strips `:12`, `:12:5` and `#L12` location suffixes.
fn strip_location(t: &str) -> &str {
    let mut t = t;
    if let Some(i) = t.rfind("#L") {
        if t[i + 2..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == 'L')
        {
            t = &t[..i];
        }
    }
    for _ in 0..2 {
        if let Some(i) = t.rfind(':') {
            let tail = &t[i + 1..];
            if !tail.is_empty() && tail.chars().all(|c| c.is_ascii_digit()) {
                t = &t[..i];
            }
        }
    }
    t
}

fn has_extension(last: &str) -> bool {
    match last.rfind('.') {
        Some(i) if i > 0 => {
            let ext = last[i + 1..].to_ascii_lowercase();
            EXTENSIONS.contains(&ext.as_str())
        }
        _ => false,
    }
}

fn is_dotfile(last: &str) -> bool {
    last.len() > 1
        && last.starts_with('.')
        && last[1..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

/// Returns the path `tok` names, if it names one.
fn normalize(tok: &str, backticked: bool) -> Option<String> {
    // Fast exit for plain words, which are nearly all of the tokens.
    if !tok.contains(['/', '.', '\\'])
        && !BARE_NAMES.contains(&tok.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
    {
        return None;
    }
    let t = strip_location(strip_wrapping(tok.trim()));
    // Parentheses inside a bare word are code (`ROUND(SUM(a/b))`), not a path.
    if !backticked && t.contains(['(', ')']) {
        return None;
    }
    if t.is_empty()
        || t.contains("://")
        || t.starts_with("www.")
        || t.contains("...")
        || t.starts_with('/')
        || t.starts_with('~')
        || t.starts_with('-')
        || t.contains(|c: char| c.is_whitespace() || "<>|\"'=;&$:,#`".contains(c))
        || !t.contains(|c: char| c.is_ascii_alphanumeric())
    {
        return None;
    }
    let mut p = t.replace('\\', "/");
    while p.contains("//") {
        p = p.replace("//", "/");
    }
    while let Some(rest) = p.strip_prefix("./") {
        p = rest.to_string();
    }
    let is_dir = p.ends_with('/');
    let body = p.trim_end_matches('/');
    if body.is_empty() {
        return None;
    }
    let segments: Vec<&str> = body.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return None;
    }
    let last = segments[segments.len() - 1];
    let has_slash = segments.len() > 1 || is_dir;
    let glob = body.contains(['*', '?']);
    let ext = has_extension(last);
    if NOT_FILES.contains(&body.to_ascii_lowercase().as_str()) {
        return None;
    }
    if segments.len() > 1 {
        let first = segments[0];
        if let Some(i) = first.rfind('.') {
            if TLDS.contains(&&first[i + 1..]) && !ext {
                return None;
            }
        }
    }
    // `N/A`, `I/O`, `GET/PUT/PATCH`: words with slashes, not paths.
    let wordish = segments.iter().all(|s| {
        s.len() <= 2
            || s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    });
    if !ext && wordish {
        return None;
    }
    let ok = if backticked {
        has_slash || ext || is_dotfile(last) || BARE_NAMES.contains(&last)
    } else {
        ext || (has_slash && (is_dir || glob))
            || BARE_NAMES.contains(&last)
            || (is_dotfile(last) && segments.len() == 1 && last.len() > 3)
    };
    if !ok {
        return None;
    }
    Some(if is_dir {
        format!("{body}/")
    } else {
        body.to_string()
    })
}

/// A path lock, ready for overlap checks.
pub(crate) struct Lock {
    path: String,
    glob: Option<GlobMatcher>,
    /// For a glob: the directory part before the first wildcard, with a trailing `/`.
    prefix: String,
}

impl Lock {
    pub(crate) fn new(p: &str) -> Lock {
        let path = p.trim_end_matches('/').to_string();
        let glob = if path.contains(['*', '?']) {
            GlobBuilder::new(&path)
                .literal_separator(true)
                .build()
                .ok()
                .map(|g| g.compile_matcher())
        } else {
            None
        };
        let prefix = match path.find(['*', '?', '[', '{']) {
            Some(i) => match path[..i].rfind('/') {
                Some(j) => path[..=j].to_string(),
                None => String::new(),
            },
            None => String::new(),
        };
        Lock { path, glob, prefix }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.path
    }

    pub(crate) fn overlaps(&self, other: &Lock) -> bool {
        match (&self.glob, &other.glob) {
            (None, None) => nested(&self.path, &other.path) || nested(&other.path, &self.path),
            (Some(g), None) => glob_vs_literal(g, &self.prefix, &other.path),
            (None, Some(g)) => glob_vs_literal(g, &other.prefix, &self.path),
            // Two globs: overlap unless their fixed directories are disjoint.
            (Some(_), Some(_)) => {
                self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix)
            }
        }
    }
}

/// `inner` is `outer` or lies under the directory `outer`.
fn nested(outer: &str, inner: &str) -> bool {
    inner == outer
        || (inner.len() > outer.len()
            && inner.starts_with(outer)
            && inner.as_bytes()[outer.len()] == b'/')
}

fn glob_vs_literal(g: &GlobMatcher, prefix: &str, lit: &str) -> bool {
    // The literal may be a directory holding matches, or a file the glob matches.
    g.is_match(lit) || nested(lit, prefix.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(line: &str) -> Vec<String> {
        let mut v = Vec::new();
        extract_into(line, &mut v);
        v
    }

    #[test]
    fn takes_backticked_and_bare_paths() {
        assert_eq!(
            paths("Create `src/a.rs` and tests/b.rs, then edit README.md."),
            ["src/a.rs", "tests/b.rs", "README.md"]
        );
        assert_eq!(
            paths("在 internal/config/config.go（`type X`"),
            ["internal/config/config.go"]
        );
        assert_eq!(
            paths("see `src/x.ts:89` and `a\\b.py`"),
            ["src/x.ts", "a/b.py"]
        );
        assert_eq!(
            paths("dirs (src/, tests/, specs/)"),
            ["src/", "tests/", "specs/"]
        );
        assert_eq!(paths("stage `specs/003/**` only"), ["specs/003/**"]);
        assert_eq!(
            paths("Next `app/api/[id]/route.ts`"),
            ["app/api/[id]/route.ts"]
        );
    }

    #[test]
    fn skips_commands_urls_and_words() {
        assert!(paths("Run `go vet ./... && go build ./cmd/x`").is_empty());
        assert!(paths("see https://example.com/a/b.md and github.com/a/b").is_empty());
        assert!(paths("N/A, GET/PUT/PATCH, `N/A`, and/or, Node.js, `db:types`").is_empty());
        assert!(paths("route `/v1/models` and `/api/x`").is_empty());
        assert!(paths("`gpt-5-*` and `cfg.Packycode.enabled`").is_empty());
    }

    #[test]
    fn overlap_rules() {
        let o = |a: &str, b: &str| Lock::new(a).overlaps(&Lock::new(b));
        assert!(o("src/a.rs", "src/a.rs"));
        assert!(!o("src/a.rs", "src/ab.rs"));
        assert!(o("src/", "src/a.rs"));
        assert!(o("src/a.rs", "src"));
        assert!(o("src/*.rs", "src/a.rs"));
        assert!(!o("src/*.rs", "src/x/a.rs"));
        assert!(o("src/**", "src/x/a.rs"));
        assert!(o("src/**/*.rs", "src/"));
        assert!(!o("src/**/*.rs", "docs/a.md"));
        assert!(o("src/**/*.rs", "src/x/*.rs"));
        assert!(!o("src/*.rs", "docs/*.md"));
    }
}
