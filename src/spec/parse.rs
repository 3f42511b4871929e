//! Line-level reader for tasks.md: classifies lines, attaches continuation lines to their
//! task, assigns phases, then checks IDs and dependencies so a bad file is refused whole.

use std::collections::HashMap;

use super::{paths, Note, Phase, SpecError, SpecFile, Task, MAX_TASKS, MAX_TEXT};

/// Parses a tasks.md. `file` is only used in error messages.
///
/// Rejects duplicate IDs, dependencies on unknown tasks and dependency cycles (including
/// cycles through phase order), and a file without tasks.
pub fn parse(file: &str, text: &str) -> Result<SpecFile, SpecError> {
    // Before any work on it: a huge line costs time in every pass below.
    if let Some((i, line)) = text
        .split('\n')
        .enumerate()
        .find(|(_, l)| l.len() > MAX_TEXT)
    {
        return Err(SpecError::TooLong {
            file: file.to_string(),
            line: i + 1,
            what: "this line".into(),
            len: line.len(),
            max: MAX_TEXT,
        });
    }
    let lines = classify(text);
    let heading_tasks = !lines.iter().any(|l| matches!(l, Line::Task { .. }));
    let mut b = Builder::new(heading_tasks);
    b.phase_level = lines.iter().find_map(|l| match l {
        Line::Heading { level, text, .. }
            if is_phase_heading(text) && !(heading_tasks && task_id(text).is_some()) =>
        {
            Some(*level)
        }
        _ => None,
    });
    for (i, line) in lines.iter().enumerate() {
        b.line(i + 1, line);
    }
    b.close();
    let spec = b.finish(file)?;
    // Cycles, including those through phase order, are found by building the graph.
    super::plan::Graph::build(&spec, false)?;
    Ok(spec)
}

#[derive(Debug)]
enum Line<'a> {
    Blank,
    /// Front matter, comments, fences and fenced code: never tasks, never paths.
    Code {
        indent: usize,
    },
    Heading {
        level: usize,
        text: &'a str,
    },
    Task {
        indent: usize,
        marker: char,
        rest: &'a str,
    },
    Other {
        indent: usize,
        text: &'a str,
    },
}

fn indent_of(s: &str) -> usize {
    let mut n = 0;
    for c in s.chars() {
        match c {
            ' ' => n += 1,
            '\t' => n += 4,
            _ => break,
        }
    }
    n
}

fn classify(text: &str) -> Vec<Line<'_>> {
    let raw: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut out = Vec::with_capacity(raw.len());
    // YAML front matter, only when it is closed.
    let mut front_end = 0;
    if raw.first().map(|l| l.trim_end()) == Some("---") {
        if let Some(end) = raw
            .iter()
            .skip(1)
            .position(|l| matches!(l.trim_end(), "---" | "..."))
        {
            front_end = end + 2;
        }
    }
    let mut fence: Option<(char, usize, usize)> = None;
    let mut comment = false;
    for (i, line) in raw.iter().enumerate() {
        let indent = indent_of(line);
        let t = line.trim();
        if i < front_end {
            out.push(Line::Code { indent: 0 });
            continue;
        }
        if let Some((ch, len, find)) = fence {
            let run = t.chars().take_while(|&c| c == ch).count();
            if run >= len && t.chars().skip(run).all(char::is_whitespace) {
                fence = None;
            }
            out.push(Line::Code { indent: find });
            continue;
        }
        if comment {
            if t.contains("-->") {
                comment = false;
            }
            out.push(Line::Code { indent });
            continue;
        }
        if t.is_empty() {
            out.push(Line::Blank);
            continue;
        }
        if let Some(ch) = t.chars().next().filter(|c| *c == '`' || *c == '~') {
            let run = t.chars().take_while(|&c| c == ch).count();
            if run >= 3 && !(ch == '`' && t[run..].contains('`')) {
                fence = Some((ch, run, indent));
                out.push(Line::Code { indent });
                continue;
            }
        }
        if let Some(rest) = t.strip_prefix("<!--") {
            comment = !rest.contains("-->");
            out.push(Line::Code { indent });
            continue;
        }
        if indent <= 3 {
            if let Some(h) = heading(t) {
                out.push(h);
                continue;
            }
        }
        if let Some((marker, rest)) = checkbox(t) {
            out.push(Line::Task {
                indent,
                marker,
                rest,
            });
            continue;
        }
        out.push(Line::Other { indent, text: t });
    }
    out
}

fn heading(t: &str) -> Option<Line<'_>> {
    let level = t.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let mut text = rest.trim();
    // Optional closing sequence: `## Title ##`.
    let closing = text.trim_end_matches('#');
    if closing.len() < text.len() && (closing.is_empty() || closing.ends_with([' ', '\t'])) {
        text = closing.trim_end();
    }
    Some(Line::Heading { level, text })
}

/// `- [x] rest`, `* [ ] rest`, `1. [ ] rest`: the marker and what follows the checkbox.
fn checkbox(t: &str) -> Option<(char, &str)> {
    let after_bullet = if let Some(r) = t.strip_prefix(['-', '*', '+']) {
        r
    } else {
        let digits = t.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        t[digits..].strip_prefix(['.', ')'])?
    };
    if !after_bullet.starts_with([' ', '\t']) {
        return None;
    }
    let r = after_bullet.trim_start().strip_prefix('[')?;
    let mut chars = r.chars();
    let marker = chars.next()?;
    let r = chars.as_str().strip_prefix(']')?;
    if !r.is_empty() && !r.starts_with([' ', '\t']) {
        return None;
    }
    Some((marker, r.trim()))
}

/// Done or not for a checkbox marker; `None` if the marker is not a task status.
fn marker_done(m: char) -> Option<bool> {
    match m {
        ' ' | '~' | '/' => Some(false),
        // `[A]` = archived (implemented), as in the corpus's status-marker file.
        'x' | 'X' | 'A' => Some(true),
        _ => None,
    }
}

/// A task ID at the start of `s` (`T001`, `T002a`, `T1`) and the text after it.
fn task_id(s: &str) -> Option<(&str, &str)> {
    let r = s.strip_prefix('T')?;
    let digits = r.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let letters = r[digits..]
        .chars()
        .take_while(char::is_ascii_lowercase)
        .count();
    let end = 1 + digits + letters;
    let rest = &s[end..];
    if rest.chars().next().is_some_and(char::is_alphanumeric) || rest.starts_with('_') {
        return None;
    }
    Some((&s[..end], rest))
}

/// `Phase 3: …`, `Phase N+1 …`, and a few translations.
fn is_phase_heading(text: &str) -> bool {
    let lower = text.to_lowercase();
    ["phase", "fase", "stage", "étape", "etape"]
        .iter()
        .any(|w| {
            lower.starts_with(w)
                && !lower[w.len()..]
                    .chars()
                    .next()
                    .is_some_and(char::is_alphabetic)
        })
        || ["阶段", "階段", "フェーズ", "단계"]
            .iter()
            .any(|w| lower.starts_with(w))
}

struct RawPhase {
    title: String,
    line: usize,
}

struct RawTask {
    id: String,
    line: usize,
    indent: usize,
    done: bool,
    parallel: bool,
    story: Option<String>,
    labels: Vec<String>,
    title: Vec<String>,
    body: Vec<(usize, String)>,
    in_title: bool,
    saw_blank: bool,
    phase: usize,
}

struct Builder {
    heading_tasks: bool,
    phase_level: Option<usize>,
    phases: Vec<RawPhase>,
    tasks: Vec<RawTask>,
    open: Option<RawTask>,
    notes: Vec<Note>,
    /// Lines outside any task, for prose dependency lines (`T012 depends on T010`).
    prose: Vec<(usize, String)>,
}

impl Builder {
    fn new(heading_tasks: bool) -> Builder {
        Builder {
            heading_tasks,
            phase_level: None,
            phases: vec![RawPhase {
                title: String::new(),
                line: 0,
            }],
            tasks: Vec::new(),
            open: None,
            notes: Vec::new(),
            prose: Vec::new(),
        }
    }

    fn close(&mut self) {
        if let Some(t) = self.open.take() {
            self.tasks.push(t);
        }
    }

    fn line(&mut self, n: usize, line: &Line<'_>) {
        match *line {
            Line::Heading { level, text } => {
                self.close();
                if self.heading_tasks {
                    if let Some((id, rest)) = task_id(text) {
                        self.open_task(n, 0, false, id, rest);
                        return;
                    }
                }
                if self.phase_level.is_some_and(|p| level <= p) {
                    self.phases.push(RawPhase {
                        title: text.to_string(),
                        line: n,
                    });
                }
            }
            Line::Task {
                indent,
                marker,
                rest,
            } => match (marker_done(marker), task_id(rest)) {
                (Some(done), Some((id, after))) => {
                    self.close();
                    self.open_task(n, indent, done, id, after);
                }
                (done, id) => {
                    let nested = self.open.as_ref().is_some_and(|t| indent > t.indent);
                    if !nested && marker != 'P' {
                        let message = match (done, id) {
                            (None, Some((id, _))) => {
                                format!("{id} has an unknown checkbox marker [{marker}]; skipped")
                            }
                            _ => "checkbox without a task ID; skipped".to_string(),
                        };
                        self.notes.push(Note { line: n, message });
                    }
                    self.other(n, indent, line_text(rest, marker));
                }
            },
            Line::Other { indent, text } => self.other(n, indent, text.to_string()),
            Line::Blank => {
                if let Some(t) = self.open.as_mut() {
                    t.saw_blank = true;
                    t.in_title = false;
                }
            }
            Line::Code { indent } => {
                if !self.heading_tasks && self.open.as_ref().is_some_and(|t| indent <= t.indent) {
                    self.close();
                }
            }
        }
    }

    fn other(&mut self, n: usize, indent: usize, text: String) {
        let Some(t) = self.open.as_mut() else {
            self.prose.push((n, text));
            return;
        };
        if self.heading_tasks {
            t.body.push((n, text));
            return;
        }
        let bullet = is_block_start(&text);
        let rule = text.len() >= 3 && text.chars().all(|c| matches!(c, '-' | '*' | '_' | ' '));
        let continues = !rule && (indent > t.indent || (!t.saw_blank && !bullet));
        if !continues {
            self.close();
            self.prose.push((n, text));
            return;
        }
        if t.in_title && !bullet {
            t.title.push(text);
        } else {
            t.in_title = false;
            t.body.push((n, text));
        }
    }

    fn open_task(&mut self, n: usize, indent: usize, done: bool, id: &str, rest: &str) {
        let mut rest = rest.trim_start_matches(|c: char| {
            c.is_whitespace() || matches!(c, '—' | '–' | '-' | ':' | '.' | '·' | '|')
        });
        let mut parallel = false;
        let mut story = None;
        let mut labels = Vec::new();
        while let Some(r) = rest.strip_prefix('[') {
            let Some(end) = r.find(']') else { break };
            tag(&r[..end], &mut parallel, &mut story, &mut labels);
            rest = r[end + 1..].trim_start();
        }
        self.open = Some(RawTask {
            id: id.to_string(),
            line: n,
            indent,
            done,
            parallel,
            story,
            labels,
            title: vec![rest.to_string()],
            body: Vec::new(),
            in_title: true,
            saw_blank: false,
            phase: self.phases.len() - 1,
        });
    }

    fn finish(self, file: &str) -> Result<SpecFile, SpecError> {
        if self.tasks.is_empty() {
            return Err(SpecError::NoTasks {
                file: file.to_string(),
            });
        }
        if self.tasks.len() > MAX_TASKS {
            return Err(SpecError::TooManyTasks {
                file: file.to_string(),
                count: self.tasks.len(),
                max: MAX_TASKS,
            });
        }
        let mut first: HashMap<String, usize> = HashMap::new();
        for t in &self.tasks {
            if let Some(&first_line) = first.get(t.id.as_str()) {
                return Err(SpecError::DuplicateId {
                    file: file.to_string(),
                    line: t.line,
                    id: t.id.clone(),
                    first_line,
                });
            }
            first.insert(t.id.clone(), t.line);
        }

        // Keep phases that hold tasks; number them 1.. in file order.
        let mut new_index = vec![0; self.phases.len()];
        let mut phases: Vec<Phase> = Vec::new();
        for (i, p) in self.phases.iter().enumerate() {
            if self.tasks.iter().any(|t| t.phase == i) {
                let index = phases.len() + 1;
                new_index[i] = index;
                let mut slug = slug(&p.title, index, self.phase_level.is_none());
                if phases.iter().any(|q| q.slug == slug) {
                    slug = format!("{slug}-{index}");
                }
                phases.push(Phase {
                    index,
                    title: p.title.clone(),
                    line: p.line,
                    slug,
                    story: false,
                });
            }
        }

        // Task IDs sorted by number, for ranges (`T001–T006`).
        let mut order: Vec<(u64, String, String)> = self
            .tasks
            .iter()
            .filter_map(|t| id_key(&t.id).map(|(n, s)| (n, s.to_string(), t.id.clone())))
            .collect();
        order.sort();
        let mut prose: Vec<(usize, ProseEdge)> = self
            .prose
            .iter()
            .flat_map(|(n, text)| {
                prose_edges(text)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |e| (*n, e))
            })
            .collect();
        let mut notes = self.notes;

        let mut tasks = Vec::with_capacity(self.tasks.len());
        for raw in self.tasks {
            let mut title = raw.title.join(" ");
            let mut parallel = raw.parallel;
            let mut story = raw.story;
            let mut labels = raw.labels;
            let trailing = strip_trailing_tags(&mut title);
            for t in trailing.iter().rev() {
                tag(t, &mut parallel, &mut story, &mut labels);
            }
            let mut deps: Vec<(String, usize)> = Vec::new();
            let mut paths_found = Vec::new();
            let mut description = title.clone();
            for (n, text) in
                std::iter::once((raw.line, raw.title.join(" "))).chain(raw.body.iter().cloned())
            {
                // A sub-bullet such as `T004 requires T001–T003` names its own dependant.
                let edges = if n == raw.line {
                    None
                } else {
                    prose_edges(&text)
                };
                if let Some(edges) = edges {
                    prose.extend(edges.into_iter().map(|e| (n, e)));
                } else {
                    for r in dependencies(&text) {
                        for d in expand(&r, &order).map_err(|dep| SpecError::UnknownDependency {
                            file: file.to_string(),
                            line: n,
                            task: raw.id.clone(),
                            dep,
                        })? {
                            if !deps.iter().any(|(x, _)| *x == d) {
                                deps.push((d, n));
                            }
                        }
                    }
                }
                paths::extract_into(&text, &mut paths_found);
                if n != raw.line {
                    description.push('\n');
                    description.push_str(&text);
                }
            }
            for (what, len) in [("title", title.len()), ("description", description.len())] {
                if len > MAX_TEXT {
                    return Err(SpecError::TooLong {
                        file: file.to_string(),
                        line: raw.line,
                        what: format!("task {}'s {what}", raw.id),
                        len,
                        max: MAX_TEXT,
                    });
                }
            }
            tasks.push(Task {
                id: raw.id,
                line: raw.line,
                title,
                description,
                done: raw.done,
                parallel,
                story,
                labels,
                deps: deps.into_iter().map(|(d, _)| d).collect(),
                paths: paths_found,
                phase: new_index[raw.phase],
            });
        }
        // Prose edges: `T012 depends on T010 and T011`, `T014 → T015`. Prose is read by
        // heuristics, so a name that is no task here is a note, not a refused file.
        prose.sort_by_key(|(n, _)| *n);
        let position: HashMap<String, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        for (n, edge) in prose {
            let resolve = |refs: &[Ref]| -> Result<Vec<String>, String> {
                let mut out = Vec::new();
                for r in refs {
                    out.extend(expand(r, &order)?);
                }
                Ok(out)
            };
            let (dependants, deps) = match (resolve(&edge.dependants), resolve(&edge.deps)) {
                (Ok(a), Ok(b)) => (a, b),
                (Err(id), _) | (_, Err(id)) => {
                    notes.push(Note {
                        line: n,
                        message: format!(
                            "{id} is not a task in this file; this dependency line is ignored"
                        ),
                    });
                    continue;
                }
            };
            for a in &dependants {
                let Some(&i) = position.get(a) else { continue };
                for d in &deps {
                    if d != a && !tasks[i].deps.contains(d) {
                        tasks[i].deps.push(d.clone());
                    }
                }
            }
        }
        notes.sort_by_key(|n| n.line);
        for p in &mut phases {
            p.story = is_story_phase(&p.title, tasks.iter().filter(|t| t.phase == p.index));
        }

        Ok(SpecFile {
            file: file.to_string(),
            phases,
            tasks,
            notes,
        })
    }
}

/// A list item, quote or table row: not a wrapped line of the paragraph above it.
fn is_block_start(text: &str) -> bool {
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    ["- ", "* ", "+ ", "> "].iter().any(|p| text.starts_with(p))
        || text == "-"
        || text.starts_with('|')
        || (digits > 0 && (text[digits..].starts_with(". ") || text[digits..].starts_with(") ")))
}

/// Text of a skipped checkbox line, for the description of the task it may belong to.
fn line_text(rest: &str, marker: char) -> String {
    format!("- [{marker}] {rest}")
}

fn tag(t: &str, parallel: &mut bool, story: &mut Option<String>, labels: &mut Vec<String>) {
    let t = t.trim();
    let upper = t.to_ascii_uppercase();
    if upper == "P" {
        *parallel = true;
    } else if story.is_none()
        && upper.len() > 2
        && upper.starts_with("US")
        && upper[2..].chars().all(|c| c.is_ascii_digit())
    {
        *story = Some(upper);
    } else if !t.is_empty() && !labels.iter().any(|l| l == t) {
        labels.push(t.to_string());
    }
}

/// Removes `[tag]` groups from the end of `title`, returning them last-first.
fn strip_trailing_tags(title: &mut String) -> Vec<String> {
    let mut tags = Vec::new();
    loop {
        let t = title.trim_end();
        let Some(body) = t.strip_suffix(']') else {
            break;
        };
        let Some(open) = body.rfind('[') else { break };
        let before = &body[..open];
        if !(before.is_empty() || before.ends_with(char::is_whitespace))
            || body[open..].contains(']')
        {
            break;
        }
        tags.push(body[open + 1..].to_string());
        *title = before.trim_end().to_string();
    }
    tags
}

/// A dependency as written: one task, or a range (`T001 through T006`, `T001–T006`,
/// `T001..T006`) that stands for every task numbered between its ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    Id(String),
    Range(String, String),
}

/// A prose dependency line: every task of `dependants` waits for every task of `deps`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ProseEdge {
    dependants: Vec<Ref>,
    deps: Vec<Ref>,
}

/// `T002a` → (2, "a"): the order ranges use.
fn id_key(id: &str) -> Option<(u64, &str)> {
    let r = id.strip_prefix('T')?;
    let digits = r.chars().take_while(char::is_ascii_digit).count();
    Some((r[..digits].parse().ok()?, &r[digits..]))
}

/// The task IDs a reference names, or the first end that is no task in the file.
fn expand(r: &Ref, order: &[(u64, String, String)]) -> Result<Vec<String>, String> {
    let known = |id: &str| {
        let (n, s) = id_key(id).ok_or_else(|| id.to_string())?;
        order
            .iter()
            .any(|(m, t, _)| *m == n && t == s)
            .then_some((n, s.to_string()))
            .ok_or_else(|| id.to_string())
    };
    match r {
        Ref::Id(id) => known(id).map(|_| vec![id.clone()]),
        Ref::Range(a, b) => {
            let (mut lo, mut hi) = (known(a)?, known(b)?);
            if hi < lo {
                std::mem::swap(&mut lo, &mut hi);
            }
            Ok(order
                .iter()
                .filter(|(n, s, _)| {
                    let k = (*n, s.clone());
                    lo <= k && k <= hi
                })
                .map(|(_, _, id)| id.clone())
                .collect())
        }
    }
}

/// Task IDs in `seg` (lowercased), with `a through b`, `a–b`, `a..b` read as ranges.
fn refs(seg: &str) -> Vec<Ref> {
    let bytes = seg.as_bytes();
    let mut found: Vec<(usize, usize, String)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphanumeric() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if let Some(rest) = seg[start..i].strip_prefix('t') {
            let upper = format!("T{rest}");
            if let Some((id, "")) = task_id(&upper) {
                found.push((start, i, id.to_string()));
            }
        }
    }
    let mut out: Vec<Ref> = Vec::new();
    let mut k = 0;
    while k < found.len() {
        let (_, end, a) = &found[k];
        if let Some((start, _, b)) = found.get(k + 1) {
            let between = seg[*end..*start].trim();
            if matches!(
                between,
                "-" | "–" | "—" | ".." | "..." | "…" | "~" | "〜" | "through" | "thru" | "to"
            ) {
                out.push(Ref::Range(a.clone(), b.clone()));
                k += 2;
                continue;
            }
        }
        if !out.contains(&Ref::Id(a.clone())) {
            out.push(Ref::Id(a.clone()));
        }
        k += 1;
    }
    out
}

/// Task IDs named as dependencies in `text`: `(depends on T012, T013)`, `depends: T012`,
/// `Dependencies: T001, T002`, `depends on T001 through T006`. Stops at `)`, `;` or the
/// end of the line.
fn dependencies(text: &str) -> Vec<Ref> {
    // `**Dependencies**:` is the same key in bold.
    let lower = text.to_lowercase().replace(['*', '_'], "");
    let mut out = Vec::new();
    for key in [
        "depends on",
        "depends:",
        "depends-on:",
        "dependencies:",
        "dependency:",
        "deps:",
        "dépend de",
        "blocked by",
    ] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let start = from + i + key.len();
            let seg = &lower[start..];
            let end = seg.find([')', ';', ']']).unwrap_or(seg.len());
            for r in refs(&seg[..end]) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            from = start;
        }
    }
    out
}

/// A line that says which task waits for which: `T012 depends on T010 and T011`,
/// `**Dependencies**: T004 requires T001–T003`, `T003 before T004`, `- T014 → T015`
/// (arrows chain left to right). `None` when the line names no task on both sides.
fn prose_edges(text: &str) -> Option<Vec<ProseEdge>> {
    let lower = text.to_lowercase().replace(['*', '_'], "");
    let mut arrows = lower.clone();
    for a in ["⟶", "→", "->", "=>", "⇒"] {
        arrows = arrows.replace(a, "\u{1}");
    }
    if arrows.contains('\u{1}') {
        // Each side ends at a clause break: `T003 → T004 (same file), then T005` is one edge.
        let parts: Vec<&str> = arrows.split('\u{1}').collect();
        let last = parts.len() - 1;
        let segments: Vec<Vec<Ref>> = parts
            .iter()
            .enumerate()
            .map(|(k, part)| {
                let from = if k == 0 {
                    part.rfind([';', ':']).map_or(0, |i| i + 1)
                } else {
                    0
                };
                let to = if k == last {
                    part.find([';', '(', ',', ':']).unwrap_or(part.len())
                } else {
                    part.len()
                };
                refs(part.get(from..to.max(from)).unwrap_or(""))
            })
            .collect();
        let edges: Vec<ProseEdge> = segments
            .windows(2)
            .filter(|w| !w[0].is_empty() && !w[1].is_empty())
            .map(|w| ProseEdge {
                dependants: w[1].clone(),
                deps: w[0].clone(),
            })
            .collect();
        return (!edges.is_empty()).then_some(edges);
    }
    // (keyword, whether the left side waits for the right side)
    const KEYS: &[(&str, bool)] = &[
        ("depends on", true),
        ("depend on", true),
        ("requires", true),
        ("require", true),
        ("needs", true),
        ("blocked by", true),
        ("waits for", true),
        ("after", true),
        ("dépend de", true),
        ("before", false),
        ("blocks", false),
    ];
    let word_at = |i: usize, key: &str| {
        let before = lower[..i].chars().next_back();
        let after = lower[i + key.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    };
    let (at, key, forward) = KEYS
        .iter()
        .filter_map(|&(key, fwd)| {
            lower
                .match_indices(key)
                .find(|&(i, _)| word_at(i, key))
                .map(|(i, _)| (i, key, fwd))
        })
        .min_by_key(|&(i, _, _)| i)?;
    let left = refs(&lower[..at]);
    let rest = &lower[at + key.len()..];
    let right = refs(&rest[..rest.find([';', ')', '(']).unwrap_or(rest.len())]);
    if left.is_empty() || right.is_empty() {
        return None;
    }
    let (dependants, deps) = if forward {
        (left, right)
    } else {
        (right, left)
    };
    Some(vec![ProseEdge { dependants, deps }])
}

/// A user-story phase (`Phase 3: User Story 1 - …`, or one whose story-tagged tasks
/// all carry the same `[USn]`): it runs beside the story phases next to it.
fn is_story_phase<'a>(title: &str, tasks: impl Iterator<Item = &'a Task>) -> bool {
    let lower = title.to_lowercase();
    if ["setup", "foundation", "polish", "final", "cross-cutting"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return false;
    }
    let named = [
        "user story",
        "user-story",
        "userstory",
        "historia de usuario",
        "histoire utilisateur",
        "用户故事",
        "用戶故事",
        "ユーザーストーリー",
    ]
    .iter()
    .any(|w| lower.contains(w))
        || lower.split(|c: char| !c.is_ascii_alphanumeric()).any(|w| {
            w.len() > 2 && w.starts_with("us") && w[2..].bytes().all(|b| b.is_ascii_digit())
        })
        || lower
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| {
                let n = w[1].trim_end_matches([':', '.', ')']);
                w[0] == "story" && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            });
    if named || title.is_empty() {
        return named;
    }
    let mut total = 0;
    let mut story: Option<&str> = None;
    let mut tagged = 0;
    for t in tasks {
        total += 1;
        if let Some(s) = &t.story {
            if story.is_some_and(|x| x != s) {
                return false;
            }
            story = Some(s);
            tagged += 1;
        }
    }
    tagged > 0 && tagged * 2 >= total
}

/// Short convoy name for a phase: `Phase 1: Setup (…)` → `setup`; generic names
/// (`User Story 1`, non-Latin text) → `phase-3`.
fn slug(title: &str, index: usize, implicit: bool) -> String {
    if title.is_empty() {
        return if implicit {
            "tasks".to_string()
        } else {
            format!("phase-{index}")
        };
    }
    let mut rest = title;
    if is_phase_heading(title) {
        // Drop the phase word and its number (`Phase 3`, `Phase N+1`, `Phase A`).
        let mut words = title.splitn(3, char::is_whitespace);
        words.next();
        let number = words.next().unwrap_or("");
        rest = words.next().unwrap_or("");
        if number.is_empty() {
            rest = "";
        }
    }
    let words: Vec<String> = rest
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let generic = ["user", "story", "us", "phase"];
    match words.first() {
        Some(w) if w.chars().all(|c| c.is_ascii_alphabetic()) && !generic.contains(&w.as_str()) => {
            if w.len() <= 2 {
                match words.get(1) {
                    Some(w2) => format!("{w}-{w2}"),
                    None => w.clone(),
                }
            } else {
                w.clone()
            }
        }
        _ => format!("phase-{index}"),
    }
}
