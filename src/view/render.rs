//! The board `git sprint watch` draws, as a pure function: a state snapshot,
//! the last output line of each running agent, the latest transitions, the
//! time and the screen's size in; lines of text, each with a style, out.
//!
//! Nothing here reads the clock, the terminal or git, so every choice (the
//! bar, the ETA, what is highlighted, what is cut to fit) is unit-tested.
//! Styles are painted by the caller, so cutting a line to the screen's width
//! counts characters that are really shown, never escape sequences.

use std::collections::BTreeMap;

use crate::clock;
use crate::stages::trouble::Trouble;
use crate::state::log::Entry;
use crate::state::{AgentState, FeatureState, Snapshot, TaskStatus};

/// How a line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    /// A heading.
    Bold,
    /// Failed work, a quarantined record, an open breaker, a budget stop.
    Failure,
    /// Blocked or stalled work.
    Warning,
    /// A finished feature.
    Done,
    /// Secondary detail.
    Dim,
}

/// One line of the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    pub(crate) style: Style,
}

impl Line {
    fn new(text: impl Into<String>, style: Style) -> Line {
        Line {
            text: text.into(),
            style,
        }
    }
}

/// Everything one frame is drawn from.
pub(crate) struct Frame<'a> {
    pub(crate) snapshot: &'a Snapshot,
    /// The state's tip, short.
    pub(crate) tip: Option<&'a str>,
    /// What needs a person (see [`crate::stages::trouble`]).
    pub(crate) trouble: &'a [Trouble],
    /// The last line each running agent printed, by agent id.
    pub(crate) last_lines: &'a BTreeMap<String, String>,
    /// The latest state commits, newest last.
    pub(crate) recent: &'a [Entry],
    /// Seconds each finished task took from its first `in_progress` to
    /// `done`, by feature.
    pub(crate) durations: &'a BTreeMap<String, Vec<i64>>,
    pub(crate) now: i64,
    /// Whether keys work (a live board), so the header says how to leave.
    pub(crate) live: bool,
    pub(crate) width: usize,
    pub(crate) height: usize,
}

/// Width of the progress bar, in cells.
const BAR: usize = 24;

/// Draws the board: a header, per feature its progress bar, counts and ETA,
/// the running agents, what needs a person, and the last transitions; cut
/// to `width` columns and `height` rows.
pub(crate) fn render(f: &Frame<'_>) -> Vec<Line> {
    // No clock in the header: a board that nothing changed is not redrawn.
    let mut lines = Vec::new();
    let paused = f.snapshot.meta.as_ref().is_some_and(|m| m.paused);
    lines.push(Line::new(
        format!(
            "git sprint watch  refs/ai-sprint {}{}{}",
            f.tip.unwrap_or("(none yet)"),
            if paused { " (paused)" } else { "" },
            if f.live { "   q quits" } else { "" },
        ),
        Style::Bold,
    ));
    if f.snapshot.features.is_empty() {
        lines.push(Line::new(
            "No features yet: commit a specs/<feature>/tasks.md, or 'git sprint add' a task.",
            Style::Dim,
        ));
    }
    for fs in &f.snapshot.features {
        lines.push(Line::new("", Style::Plain));
        let no_durations = Vec::new();
        let durations = f.durations.get(&fs.feature.name).unwrap_or(&no_durations);
        lines.extend(feature(fs, durations));
    }

    let running: Vec<_> = f
        .snapshot
        .agents
        .iter()
        .filter(|a| matches!(a.state, AgentState::Starting | AgentState::Running))
        .collect();
    lines.push(Line::new("", Style::Plain));
    lines.push(Line::new(
        format!("Running ({})", running.len()),
        Style::Bold,
    ));
    for a in &running {
        let usage = a
            .usage
            .as_ref()
            .map(|u| {
                let cost = u.cost_usd.map(|c| format!(" ${c:.2}")).unwrap_or_default();
                format!("{} tok{cost}", short_count(u.tokens()))
            })
            .unwrap_or_else(|| "-".into());
        let last = f.last_lines.get(&a.id).map(String::as_str).unwrap_or("");
        lines.push(Line::new(
            format!(
                "  {}  {}  {}  {}  {}  {}",
                a.id,
                a.role,
                a.task.as_deref().unwrap_or("-"),
                clock::short_age(f.now - a.started),
                usage,
                last
            ),
            Style::Plain,
        ));
    }

    if !f.trouble.is_empty() {
        lines.push(Line::new("", Style::Plain));
        lines.push(Line::new("Needs a person", Style::Bold));
        for t in f.trouble {
            lines.push(Line::new(
                format!("  {} {}: {}", t.kind, t.subject, t.message),
                trouble_style(t.kind),
            ));
        }
    }

    if !f.recent.is_empty() {
        lines.push(Line::new("", Style::Plain));
        lines.push(Line::new("Last transitions", Style::Bold));
        for e in f.recent {
            lines.extend(entry(e));
        }
    }
    fit(lines, f.width, f.height)
}

/// A feature's heading, bar, counts and ETA.
fn feature(fs: &FeatureState, durations: &[i64]) -> Vec<Line> {
    let mut counts: BTreeMap<TaskStatus, usize> = BTreeMap::new();
    for t in &fs.tasks {
        *counts.entry(t.status).or_default() += 1;
    }
    let n = |s| counts.get(&s).copied().unwrap_or(0);
    // Cancelled tasks left tasks.md: they count neither way.
    let total = fs.tasks.len() - n(TaskStatus::Cancelled);
    let done = n(TaskStatus::Done);
    let active = fs.tasks.iter().filter(|t| t.status.is_active()).count();
    let open = n(TaskStatus::Todo) + active;
    let eta = match eta(durations, open, active.max(1)) {
        _ if open == 0 => String::new(),
        Some(secs) => format!("  ETA {}", clock::short_age(secs)),
        None => "  ETA \u{2014}".into(),
    };
    let style = if n(TaskStatus::Failed) > 0 {
        Style::Failure
    } else if n(TaskStatus::Blocked) > 0 {
        Style::Warning
    } else if fs.feature.status == crate::state::FeatureStatus::Done {
        Style::Done
    } else {
        Style::Bold
    };
    let mut out = vec![Line::new(
        format!(
            "{}  {}  {} {done}/{total} done{eta}",
            fs.feature.name,
            fs.feature.status,
            bar(done, total)
        ),
        style,
    )];
    let by_status: Vec<String> = TaskStatus::ALL
        .iter()
        .filter(|s| **s != TaskStatus::Done && n(**s) > 0)
        .map(|s| format!("{} {s}", n(*s)))
        .collect();
    if !by_status.is_empty() {
        out.push(Line::new(format!("  {}", by_status.join("  ")), Style::Dim));
    }
    out
}

/// `[########----------------]`: `done` of `total` in [`BAR`] cells.
pub(crate) fn bar(done: usize, total: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        (done.min(total) * BAR).div_ceil(total).min(BAR)
    };
    // A bar is full only when everything is done.
    let filled = if done < total {
        filled.min(BAR - 1)
    } else {
        filled
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR - filled))
}

/// Seconds until `open` tasks are done, `parallel` at a time, each taking
/// the mean of `durations`; `None` with nothing to go on.
pub(crate) fn eta(durations: &[i64], open: usize, parallel: usize) -> Option<i64> {
    if durations.is_empty() {
        return None;
    }
    let mean = durations.iter().sum::<i64>() / durations.len() as i64;
    let rounds = open.div_ceil(parallel.max(1)) as i64;
    Some(mean * rounds)
}

/// The transitions of one state commit, one line each (the subject when it
/// has none), failures and blocks highlighted.
fn entry(e: &Entry) -> Vec<Line> {
    let head = format!("  {} {:<10}", time_of_day(e.time), e.actor);
    if e.transitions.is_empty() {
        return vec![Line::new(format!("{head} {}", e.subject), Style::Dim)];
    }
    e.transitions
        .iter()
        .map(|t| {
            let reason = t
                .reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default();
            let style = match t.to.as_str() {
                "failed" => Style::Failure,
                "blocked" => Style::Warning,
                "done" => Style::Done,
                _ => Style::Plain,
            };
            Line::new(
                format!("{head} {}: {} -> {}{reason}", t.task, t.from, t.to),
                style,
            )
        })
        .collect()
}

fn trouble_style(kind: &str) -> Style {
    match kind {
        "blocked" | "stalled" => Style::Warning,
        _ => Style::Failure,
    }
}

/// Cuts lines to `width` characters and the board to `height` rows, the
/// last row saying how many were left out.
fn fit(mut lines: Vec<Line>, width: usize, height: usize) -> Vec<Line> {
    if height > 0 && lines.len() > height {
        let hidden = lines.len() - (height - 1);
        lines.truncate(height - 1);
        lines.push(Line::new(
            format!("... {hidden} more lines (a taller terminal shows them)"),
            Style::Dim,
        ));
    }
    for l in &mut lines {
        if l.text.chars().count() > width {
            let mut cut: String = l.text.chars().take(width.saturating_sub(1)).collect();
            if width > 0 {
                cut.push('\u{2026}');
            }
            l.text = cut;
        }
    }
    lines
}

/// `HH:MM:SS` in UTC, as the state's times are.
fn time_of_day(unix: i64) -> String {
    let t = clock::rfc3339(unix);
    t.get(11..19).unwrap_or(&t).to_owned()
}

/// `950`, `12.4k`, `3.1M`.
fn short_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1000..=999_999 => format!("{:.1}k", n as f64 / 1000.0),
        _ => format!("{:.1}M", n as f64 / 1_000_000.0),
    }
}

/// The escape sequence that starts `style` (SGR), and the one that ends it:
/// the one table of colours, which the CLI's `commands::style` tones use too.
pub(crate) fn sgr(style: Style) -> (&'static str, &'static str) {
    match style {
        Style::Plain => ("", ""),
        Style::Bold => ("\x1b[1m", "\x1b[0m"),
        Style::Failure => ("\x1b[1;31m", "\x1b[0m"),
        Style::Warning => ("\x1b[33m", "\x1b[0m"),
        Style::Done => ("\x1b[32m", "\x1b[0m"),
        Style::Dim => ("\x1b[2m", "\x1b[0m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::log::LoggedTransition;
    use crate::state::{Agent, Feature, FeatureStatus, Task, Usage};

    fn task(id: &str, status: TaskStatus) -> Task {
        let mut t = Task::new(id, id, "2026-01-01T00:00:00Z");
        t.status = status;
        t
    }

    fn snapshot(statuses: &[TaskStatus]) -> Snapshot {
        let mut feature = Feature::new("001-auth", "x");
        feature.status = FeatureStatus::Active;
        Snapshot {
            meta: None,
            features: vec![FeatureState {
                feature,
                convoys: Vec::new(),
                tasks: statuses
                    .iter()
                    .enumerate()
                    .map(|(i, s)| task(&format!("T{:03}", i + 1), *s))
                    .collect(),
            }],
            agents: Vec::new(),
            quarantined: Vec::new(),
        }
    }

    fn draw(s: &Snapshot, recent: &[Entry], durations: &[i64], width: usize) -> Vec<Line> {
        let durations = BTreeMap::from([("001-auth".to_owned(), durations.to_vec())]);
        let trouble = crate::stages::trouble::list(s);
        render(&Frame {
            snapshot: s,
            tip: Some("abc1234"),
            trouble: &trouble,
            last_lines: &BTreeMap::from([("a1".to_owned(), "compiling foo".to_owned())]),
            recent,
            durations: &durations,
            now: 1_000_000,
            live: true,
            width,
            height: 0,
        })
    }

    #[test]
    fn the_bar_fills_in_proportion_and_only_full_when_all_done() {
        assert_eq!(bar(0, 4), format!("[{}]", "-".repeat(BAR)));
        assert_eq!(bar(2, 4), format!("[{}{}]", "#".repeat(12), "-".repeat(12)));
        assert_eq!(bar(99, 100).matches('#').count(), BAR - 1);
        assert_eq!(bar(4, 4), format!("[{}]", "#".repeat(BAR)));
        assert_eq!(bar(0, 0), format!("[{}]", "-".repeat(BAR)));
    }

    #[test]
    fn eta_is_the_mean_duration_times_rounds_of_parallel_work() {
        assert_eq!(eta(&[], 5, 2), None);
        assert_eq!(eta(&[60, 120], 4, 2), Some(180));
        assert_eq!(eta(&[60], 3, 2), Some(120));
        assert_eq!(eta(&[60], 3, 0), Some(180));
    }

    #[test]
    fn a_feature_shows_counts_by_status_and_an_eta_or_a_dash() {
        use TaskStatus::*;
        let s = snapshot(&[Done, Done, InProgress, Todo]);
        let lines = draw(&s, &[], &[60, 60], 200);
        let head = lines
            .iter()
            .find(|l| l.text.starts_with("001-auth"))
            .unwrap();
        assert!(head.text.contains("2/4 done"), "{}", head.text);
        assert!(head.text.contains("ETA 2m"), "{}", head.text);
        assert!(lines.iter().any(|l| l.text == "  1 todo  1 in_progress"));
        let lines = draw(&s, &[], &[], 200);
        assert!(lines.iter().any(|l| l.text.contains("ETA \u{2014}")));
    }

    #[test]
    fn failed_and_blocked_work_is_highlighted() {
        use TaskStatus::*;
        let mut s = snapshot(&[Failed, Blocked, Done]);
        s.features[0].tasks[1].reason = Some("T001 failed".into());
        let recent = [Entry {
            commit: "c".into(),
            time: 999_990,
            actor: "cab".into(),
            subject: "s".into(),
            decisions: Vec::new(),
            transitions: vec![LoggedTransition {
                task: "001-auth/T001".into(),
                from: "in_progress".into(),
                to: "failed".into(),
                ..Default::default()
            }],
        }];
        let lines = draw(&s, &recent, &[], 200);
        let style_of = |needle: &str| {
            lines
                .iter()
                .find(|l| l.text.contains(needle))
                .unwrap_or_else(|| panic!("no line with {needle}: {lines:#?}"))
                .style
        };
        assert_eq!(style_of("001-auth  active"), Style::Failure);
        assert_eq!(style_of("in_progress -> failed"), Style::Failure);
        assert_eq!(style_of("blocked 001-auth/T002"), Style::Warning);
    }

    #[test]
    fn a_running_agent_shows_role_task_age_usage_and_its_last_line() {
        let mut s = snapshot(&[TaskStatus::InProgress]);
        let mut a: Agent = serde_yaml::from_str(
            "id: a1\nrole: developer\nstate: running\ntask: 001-auth/T001\nstarted: 999940\n",
        )
        .unwrap();
        a.usage = Some(Usage {
            input_tokens: 12_000,
            output_tokens: 400,
            cost_usd: Some(0.031),
            ..Default::default()
        });
        s.agents.push(a);
        let lines = draw(&s, &[], &[], 200);
        assert!(lines.iter().any(|l| l.text == "Running (1)"));
        assert!(
            lines
                .iter()
                .any(|l| l.text
                    == "  a1  developer  001-auth/T001  60s  12.4k tok $0.03  compiling foo"),
            "{lines:#?}"
        );
    }

    #[test]
    fn with_no_agent_running_the_clock_alone_changes_nothing_on_screen() {
        let s = snapshot(&[TaskStatus::Todo, TaskStatus::Done]);
        let at = |now| {
            render(&Frame {
                snapshot: &s,
                tip: Some("abc1234"),
                trouble: &[],
                last_lines: &BTreeMap::new(),
                recent: &[],
                durations: &BTreeMap::new(),
                now,
                live: true,
                width: 100,
                height: 40,
            })
        };
        assert_eq!(at(1_000_000), at(1_000_037));
    }

    #[test]
    fn lines_are_cut_to_the_width_and_the_board_to_the_height() {
        let s = snapshot(&[TaskStatus::Todo; 3]);
        for l in draw(&s, &[], &[], 12) {
            assert!(l.text.chars().count() <= 12, "{l:?}");
        }
        let long: Vec<Line> = (0..10)
            .map(|i| Line::new(i.to_string(), Style::Plain))
            .collect();
        let cut = fit(long, 80, 4);
        assert_eq!(cut.len(), 4);
        assert_eq!(
            cut[3].text,
            "... 7 more lines (a taller terminal shows them)"
        );
    }
}
