//! `git sprint policy show`: the effective rules and where each came from.

use std::io::Write;

use super::super::{write_json, Ctx, Result};
use crate::policy::{self, Rule};

/// Show the effective policy: each rule, its action and its test
///
/// Layers merge first to last: your ~/.config/git-sprint/policy.yaml, the
/// repository's .git-sprint/policy.yaml (as committed on the base branch),
/// then `roles.<role>` and `agents.<profile>` sections. A later layer may
/// tighten a rule; it may relax only one marked `overridable`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also say where each rule was defined and what it overrode
    #[arg(long)]
    pub(crate) explain: bool,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(serde::Serialize)]
struct RuleView<'a> {
    #[serde(flatten)]
    spec: &'a crate::policy::RuleSpec,
    origin: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    overrides: &'a [String],
}

#[derive(serde::Serialize)]
struct View<'a> {
    layers: &'a [policy::file::LayerInfo],
    rules: Vec<RuleView<'a>>,
    sections: std::collections::BTreeMap<String, Vec<RuleView<'a>>>,
    take: &'a [policy::Take],
    concurrency: std::collections::BTreeMap<&'a str, u32>,
    protected_branches: Vec<&'a str>,
}

fn views(rules: &[Rule]) -> Vec<RuleView<'_>> {
    rules
        .iter()
        .map(|r| RuleView {
            spec: &r.spec,
            origin: &r.origin,
            overrides: &r.overrides,
        })
        .collect()
}

pub(crate) fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let store = ctx.store()?;
    let p = policy::load(store.repo())?;
    if args.json {
        let view = View {
            layers: &p.layers,
            rules: views(p.base()),
            sections: p.sections().map(|(n, r)| (n, views(r))).collect(),
            take: &p.take,
            concurrency: p
                .concurrency
                .iter()
                .map(|(k, (n, _))| (k.as_str(), *n))
                .collect(),
            protected_branches: p
                .protected_branches
                .iter()
                .map(|(b, _)| b.as_str())
                .collect(),
        };
        return write_json(ctx.out, &view);
    }
    if p.layers.is_empty() {
        writeln!(
            ctx.out,
            "no policy: neither {} nor {} (committed on the base branch) exists",
            policy::user_file()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "~/.config/git-sprint/policy.yaml".into()),
            policy::FILE_NAME
        )?;
        return Ok(());
    }
    if args.explain {
        writeln!(ctx.out, "layers, first to last:")?;
        for l in &p.layers {
            match &l.blob {
                Some(b) => writeln!(ctx.out, "  {} (blob {})", l.name, super::super::short(b))?,
                None => writeln!(ctx.out, "  {}", l.name)?,
            }
        }
    }
    writeln!(ctx.out, "rules:")?;
    print_rules(ctx.out, p.base(), args.explain)?;
    for (name, rules) in p.sections() {
        writeln!(ctx.out, "{name}:")?;
        print_rules(ctx.out, rules, args.explain)?;
    }
    let at = |origin: &str| {
        if args.explain {
            format!("  (from {origin})")
        } else {
            String::new()
        }
    };
    if !p.take.is_empty() {
        writeln!(ctx.out, "take:")?;
        for t in &p.take {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "any".to_owned()
                } else {
                    v.join(", ")
                }
            };
            writeln!(
                ctx.out,
                "  {}  {} work on tasks labelled {}: agents {}, models {}{}",
                t.spec.id,
                list(&t.spec.roles),
                list(&t.spec.labels),
                list(&t.spec.agents),
                list(&t.spec.models),
                at(&t.origin)
            )?;
        }
    }
    if !p.concurrency.is_empty() {
        writeln!(ctx.out, "concurrency:")?;
        for (profile, (n, origin)) in &p.concurrency {
            writeln!(ctx.out, "  {profile}: at most {n} at once{}", at(origin))?;
        }
    }
    if !p.protected_branches.is_empty() {
        writeln!(
            ctx.out,
            "protected branches (the Refinery never writes them):"
        )?;
        for (b, origin) in &p.protected_branches {
            writeln!(ctx.out, "  {b}{}", at(origin))?;
        }
    }
    Ok(())
}

fn print_rules(out: &mut dyn Write, rules: &[Rule], explain: bool) -> Result {
    if rules.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let width = rules.iter().map(|r| r.spec.id.len()).max().unwrap_or(0);
    for r in rules {
        let lock = if r.spec.overridable {
            " (overridable)"
        } else {
            ""
        };
        writeln!(
            out,
            "  {:<width$}  {:<16}  {}{lock}",
            r.spec.id,
            r.spec.action.as_str(),
            r.spec.describe()
        )?;
        if explain {
            writeln!(out, "  {:<width$}  from {}", "", r.origin)?;
            for o in &r.overrides {
                writeln!(out, "  {:<width$}  overrides {o}", "")?;
            }
        }
    }
    Ok(())
}
