//! `git sprint show`: one task and its history.

use std::io::Write;

use super::{write_json, Ctx, Result};
use crate::clock;
use crate::view::task::{self, TaskView};

/// Show one task: its record and every transition it went through
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `git sprint show`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let view = task::show(&ctx.store()?, &args.task)?;
    if args.json {
        return write_json(ctx.out, &view);
    }
    let TaskView { name, task, .. } = &view;
    let out = &mut *ctx.out;
    match &task.skipped {
        Some(why) => writeln!(out, "{name}  {} (skipped: {why})", task.status)?,
        None => writeln!(out, "{name}  {}", task.status)?,
    }
    writeln!(out, "  title:    {}", task.title)?;
    let opt = |label: &str, v: &Option<String>, out: &mut dyn Write| -> Result {
        if let Some(v) = v {
            writeln!(out, "  {label:<9} {v}")?;
        }
        Ok(())
    };
    opt("story:", &task.story, out)?;
    opt("convoy:", &task.convoy, out)?;
    let list = |label: &str, v: &[String], out: &mut dyn Write| -> Result {
        if !v.is_empty() {
            writeln!(out, "  {label:<9} {}", v.join(", "))?;
        }
        Ok(())
    };
    list("deps:", &task.deps, out)?;
    list("paths:", &task.paths, out)?;
    list("labels:", &task.labels, out)?;
    if task.line > 0 {
        writeln!(out, "  line:     {}", task.line)?;
    }
    if task.priority != 0 {
        writeln!(out, "  priority: {}", task.priority)?;
    }
    writeln!(out, "  attempts: {}", task.attempts)?;
    if task.tokens > 0 || task.cost_usd > 0.0 {
        writeln!(
            out,
            "  spent:    {} tokens, ${:.4}",
            task.tokens, task.cost_usd
        )?;
    }
    if let Some(c) = task.cause {
        writeln!(out, "  cause:    {c}")?;
    }
    if let Some(at) = task.retry_after.filter(|at| *at > clock::now()) {
        writeln!(out, "  next try: after {}", clock::rfc3339(at))?;
    }
    if let Some(c) = &task.claim {
        writeln!(
            out,
            "  claim:    {} until {}",
            c.holder,
            clock::rfc3339(c.expires)
        )?;
    }
    opt("branch:", &task.branch, out)?;
    opt("worktree:", &task.worktree, out)?;
    opt("reason:", &task.reason, out)?;
    if let Some(r) = task.review.as_ref() {
        let by = r
            .reviewer
            .as_deref()
            .map(|id| format!("reviewer {id}"))
            .unwrap_or_else(|| "a reviewer to start".into());
        let approved = if r.approved.is_empty() {
            String::new()
        } else {
            format!("; approved by {}", r.approved.join(", "))
        };
        writeln!(out, "  review:   AI review: {by}{approved}")?;
    }
    for g in &task.gates {
        let verdict = if g.passed { "passed" } else { "failed" };
        writeln!(
            out,
            "  gate:     {}/{} {verdict} at {}",
            g.stage, g.gate, g.at
        )?;
        // An AI Reviewer's result: who, what it said, what it cost.
        if let Some(agent) = &g.agent {
            let said = g.verdict.as_deref().unwrap_or("no verdict");
            let cost = if g.tokens > 0 || g.cost_usd > 0.0 {
                format!(" ({} tokens, ${:.4})", g.tokens, g.cost_usd)
            } else {
                String::new()
            };
            writeln!(out, "            {agent}: {said}{cost}")?;
            for c in &g.comments {
                let at = match (&c.path, c.line) {
                    (Some(p), Some(l)) => format!("{p}:{l}: "),
                    (Some(p), None) => format!("{p}: "),
                    _ => String::new(),
                };
                let body = c.body.lines().next().unwrap_or_default();
                writeln!(out, "            - {at}{body}")?;
            }
            if !g.passed {
                for line in g.output_tail.lines() {
                    writeln!(out, "            {line}")?;
                }
            }
        }
    }
    for (i, f) in task.feedback.iter().enumerate() {
        writeln!(
            out,
            "  feedback {}: {}",
            i + 1,
            f.lines().next().unwrap_or_default()
        )?;
    }
    for n in &task.history {
        writeln!(
            out,
            "  attempt {}: {} [{}{}] {}",
            n.attempt,
            n.at,
            n.cause,
            if n.counted { "" } else { ", not counted" },
            n.note
        )?;
    }
    if let Some(a) = &task.approval {
        let state = match &a.by {
            Some(by) => format!("approved by {by}"),
            None => "waiting: git sprint approve | reject".to_owned(),
        };
        writeln!(out, "  approval: {} ({state})", a.rules.join(", "))?;
    }
    let decisions = view.decisions();
    if !decisions.is_empty() {
        writeln!(out, "policy decisions:")?;
        for d in decisions.iter().rev() {
            write!(out, "  ")?;
            super::log::decision_line(out, d)?;
        }
    }
    writeln!(out, "history:")?;
    for e in view.history.iter().rev() {
        write!(out, "  ")?;
        super::log::line(out, e, Some(name))?;
    }
    Ok(())
}
