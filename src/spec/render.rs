//! The human-readable plan printed by `git sprint plan`: compact, stable, line-oriented,
//! so golden tests can pin it and a diff between two plans reads well.

use std::io::{self, Write};

use super::Plan;

/// Longest title shown; the rest is in `--json`.
const TITLE_CHARS: usize = 72;

/// Writes `plan` for a person: summary, phases, convoys with their tasks, waves,
/// serialized conflicts and warnings.
pub(crate) fn render_plan(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    let done = plan.tasks.iter().filter(|t| t.done).count();
    let skipped = plan.tasks.iter().filter(|t| t.skipped.is_some()).count();
    let skipped = if skipped > 0 {
        format!(", {skipped} skipped: {}", super::CHORE_REASON)
    } else {
        String::new()
    };
    writeln!(out, "plan for {}", plan.file)?;
    writeln!(
        out,
        "{} ({done} done{skipped}), {}, {}, {}",
        count(plan.tasks.len(), "task"),
        count(plan.phases.len(), "phase"),
        count(plan.convoys.len(), "convoy"),
        count(plan.waves.len(), "wave"),
    )?;

    writeln!(
        out,
        "\nphases (each waits for the one before; story phases side by side)"
    )?;
    for p in &plan.phases {
        let title = if p.title.is_empty() {
            "(no heading)"
        } else {
            &p.title
        };
        let count = plan.tasks.iter().filter(|t| t.phase == p.index).count();
        let s = if count == 1 { "" } else { "s" };
        let story = if p.story { ", story" } else { "" };
        writeln!(out, "  {}. {}  [{count} task{s}{story}]", p.index, title)?;
    }

    let width = plan.tasks.iter().map(|t| t.id.len()).max().unwrap_or(0);
    writeln!(out, "\nconvoys")?;
    for c in &plan.convoys {
        let kind = match (&c.story, c.phase) {
            (Some(_), _) => "story".to_string(),
            (None, Some(p)) => format!("phase {p}"),
            (None, None) => "tasks".to_string(),
        };
        writeln!(
            out,
            "  {} ({}, {}/{} done)",
            c.name,
            kind,
            c.done,
            c.tasks.len()
        )?;
        for id in &c.tasks {
            let Some(t) = plan.tasks.iter().find(|t| &t.id == id) else {
                continue;
            };
            let mark = match (t.done, &t.skipped) {
                (true, _) => "x",
                (false, Some(_)) => "-",
                (false, None) => " ",
            };
            let p = if t.parallel { "P" } else { " " };
            let mut line = format!("    [{mark}] {:width$} {p} {}", t.id, short(&t.title));
            if let Some(w) = t.wave {
                line.push_str(&format!("  (wave {w}"));
                if !t.deps.is_empty() {
                    line.push_str(&format!("; after {}", t.deps.join(" ")));
                }
                line.push(')');
            }
            if let Some(why) = &t.skipped {
                line.push_str(&format!("  (skipped: {why})"));
            }
            writeln!(out, "{}", line.trim_end())?;
            if t.wave.is_some() && !t.paths.is_empty() {
                writeln!(out, "    {:width$}     files: {}", "", t.paths.join(" "))?;
            }
        }
    }

    writeln!(out, "\nwaves (tasks not done; each wave can run at once)")?;
    if plan.waves.is_empty() {
        writeln!(out, "  none: every task is done")?;
    }
    for (i, w) in plan.waves.iter().enumerate() {
        writeln!(out, "  {} [{}]: {}", i + 1, w.len(), w.join(" "))?;
    }
    if !plan.critical_path.is_empty() {
        let widest = plan.waves.iter().map(Vec::len).max().unwrap_or(0);
        writeln!(
            out,
            "  widest wave: {}; critical path: {} ({})",
            count(widest, "task"),
            count(plan.critical_path.len(), "task"),
            plan.critical_path.join(" -> ")
        )?;
    }

    if !plan.conflicts.is_empty() {
        writeln!(
            out,
            "\nserialized conflicts (same paths; the later task waits)"
        )?;
        for c in &plan.conflicts {
            writeln!(
                out,
                "  {} waits for {}: {}",
                c.second,
                c.first,
                c.paths.join(" ")
            )?;
        }
    }

    if !plan.warnings.is_empty() {
        writeln!(out, "\nwarnings")?;
        for w in &plan.warnings {
            writeln!(out, "  line {}: {}", w.line, w.message)?;
        }
    }
    Ok(())
}

fn short(s: &str) -> String {
    if s.chars().count() <= TITLE_CHARS {
        return s.to_string();
    }
    let mut t: String = s.chars().take(TITLE_CHARS - 3).collect();
    t.push_str("...");
    t
}

/// `1 task`, `2 tasks`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
