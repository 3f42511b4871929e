//! `git sprint skill list | show | test`: the project's skills, and which a
//! task gets.

use serde::Serialize;

use super::{write_json, CommandError, Ctx, Result};
use crate::fleet::Fleet;
use crate::skills::{self, deliver, Query, Skill, SkillSet};
use crate::state::{ops, Snapshot};

/// See the skills agents get: .git-sprint/skills/<name>/SKILL.md on the base branch
///
/// A skill is a directory with a SKILL.md: YAML front matter (name,
/// description, version, applies_to: {roles, labels, paths}, requires:
/// [other skills]) and then Markdown instructions. Shared skills sit in
/// .git-sprint/skills/; a profile's own in .git-sprint/skills/@<profile>/,
/// where one replaces a shared skill of the same name. A task gets every
/// skill whose applies_to matches it (an empty list matches anything) and
/// the skills those require, in its prompt; Claude Code also finds them in
/// its worktree's .claude/skills/. Skills are read as committed on the base
/// branch, like .git-sprint.yaml.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    List(ListArgs),
    Show(ShowArgs),
    Test(TestArgs),
}

/// List the committed skills
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only the skills this profile sees (shared ones and its own)
    #[arg(long, value_name = "PROFILE")]
    pub(crate) profile: Option<String>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Show one skill: where it applies, what it requires, and its text
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The skill's name
    pub(crate) name: String,
    /// The skill as this profile sees it (its own replaces a shared one)
    #[arg(long, value_name = "PROFILE")]
    pub(crate) profile: Option<String>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Show which skills a task gets, and the prompt its agent would be given
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The task: <feature>/<id>, or <id> when only one feature has it
    pub(crate) task: String,
    /// The role whose prompt to render: developer or tester
    #[arg(long, default_value = "developer", value_parser = ["developer", "tester"])]
    pub(crate) role: String,
    /// The agent profile (default: the role's agent in the configuration)
    #[arg(long, value_name = "PROFILE")]
    pub(crate) profile: Option<String>,
    /// Print only the skills, not the prompt
    #[arg(long)]
    pub(crate) no_prompt: bool,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs a `git sprint skill` subcommand.
pub fn run(ctx: &mut Ctx<'_>, command: &Command) -> Result {
    match command {
        Command::List(a) => list(ctx, a),
        Command::Show(a) => show(ctx, a),
        Command::Test(a) => test(ctx, a),
    }
}

/// The skills on the base branch, and the configuration naming it.
fn load(ctx: &Ctx<'_>) -> Result<(SkillSet, crate::config::Config)> {
    let store = ctx.store()?;
    let config = crate::config::load_from(store.repo(), None)?.config;
    let set = skills::load(store.repo(), &config.base_branch)?;
    Ok((set, config))
}

fn scope(s: &Skill) -> String {
    match &s.profile {
        Some(p) => format!("@{p}"),
        None => "shared".into(),
    }
}

fn applies_text(s: &Skill) -> String {
    let a = &s.applies_to;
    let mut parts = Vec::new();
    if !a.roles.is_empty() {
        parts.push(format!("roles {}", a.roles.join(",")));
    }
    if !a.labels.is_empty() {
        parts.push(format!("labels {}", a.labels.join(",")));
    }
    if !a.paths.is_empty() {
        parts.push(format!("paths {}", a.paths.join(",")));
    }
    if parts.is_empty() {
        "every task".into()
    } else {
        parts.join("; ")
    }
}

fn list(ctx: &mut Ctx<'_>, args: &ListArgs) -> Result {
    let (set, config) = load(ctx)?;
    let shown: Vec<&Skill> = match &args.profile {
        Some(p) => set.visible(p).into_values().collect(),
        None => set.skills.iter().collect(),
    };
    if args.json {
        return write_json(ctx.out, &shown);
    }
    if shown.is_empty() {
        writeln!(
            ctx.out,
            "No skills on {}: add {}/<name>/{} and commit it.",
            config.base_branch,
            skills::DIR,
            skills::FILE
        )?;
        return Ok(());
    }
    for s in shown {
        writeln!(
            ctx.out,
            "{:<20} {:<8} {:<10} {}",
            s.name,
            s.version,
            scope(s),
            s.description.lines().next().unwrap_or("")
        )?;
        writeln!(ctx.out, "{:<20} applies to {}", "", applies_text(s))?;
        if !s.requires.is_empty() {
            writeln!(ctx.out, "{:<20} requires {}", "", s.requires.join(", "))?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ShowJson<'a> {
    #[serde(flatten)]
    skill: &'a Skill,
    body: &'a str,
    files: Vec<&'a str>,
}

fn show(ctx: &mut Ctx<'_>, args: &ShowArgs) -> Result {
    let (set, _) = load(ctx)?;
    let s = set.find(&args.name, args.profile.as_deref())?;
    let files = s.files.iter().map(|(f, _)| f.as_str()).collect();
    if args.json {
        return write_json(
            ctx.out,
            &ShowJson {
                skill: s,
                body: &s.body,
                files,
            },
        );
    }
    let out = &mut *ctx.out;
    writeln!(out, "{}  (version {}, {})", s.name, s.version, scope(s))?;
    writeln!(out, "  file:        {}", s.path)?;
    writeln!(out, "  description: {}", s.description)?;
    writeln!(out, "  applies to:  {}", applies_text(s))?;
    if !s.requires.is_empty() {
        writeln!(out, "  requires:    {}", s.requires.join(", "))?;
    }
    if s.files.len() > 1 {
        let files: Vec<&str> = files.into_iter().filter(|f| *f != skills::FILE).collect();
        writeln!(out, "  files:       {}", files.join(", "))?;
    }
    writeln!(out)?;
    writeln!(out, "{}", s.body)?;
    Ok(())
}

#[derive(Serialize)]
struct Chosen<'a> {
    name: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    /// `applies`, or `required by <skill>`.
    why: String,
}

#[derive(Serialize)]
struct TestJson<'a> {
    task: String,
    role: &'a str,
    profile: &'a str,
    labels: &'a [String],
    paths: &'a [String],
    skills: Vec<Chosen<'a>>,
    /// Where Claude Code finds them, when the profile reads skill files.
    #[serde(skip_serializing_if = "Option::is_none")]
    native_dir: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
}

fn test(ctx: &mut Ctx<'_>, args: &TestArgs) -> Result {
    let fleet = Fleet::open(&ctx.cwd)?;
    let store = &fleet.store;
    let config = crate::config::load_from(store.repo(), None)?.config;
    let set = skills::load(store.repo(), &config.base_branch)?;
    let (r, task) = store.read(|txn| {
        let r = ops::resolve(txn, &args.task)?;
        let task = txn.task(&r.feature, &r.id)?.expect("resolved tasks exist");
        Ok((r, task))
    })?;
    let role = match args.role.as_str() {
        "tester" => &config.roles.tester,
        _ => &config.roles.developer,
    };
    let profile_name = args.profile.clone().unwrap_or_else(|| role.agent.clone());
    let profile = config
        .agent(&profile_name)
        .map_err(|message| CommandError::Failed {
            message,
            hint: Some("name a profile of the `agents:` section or a preset".into()),
        })?;
    let labels = crate::router::labels(&task);
    let q = Query {
        role: &args.role,
        profile: &profile_name,
        labels: &labels,
        paths: &task.paths,
    };
    let chosen = set.resolve(&q)?;
    let why = |s: &Skill| {
        if s.applies(&q) {
            "applies".to_owned()
        } else {
            let by = chosen
                .iter()
                .find(|o| o.requires.contains(&s.name))
                .map(|o| o.name.as_str())
                .unwrap_or("?");
            format!("required by {by}")
        }
    };
    let prompt = if args.no_prompt {
        None
    } else {
        let snapshot = store.read(Snapshot::read)?;
        let integration = snapshot
            .feature(&r.feature)
            .and_then(|f| f.feature.integration_branch.clone())
            .unwrap_or_else(|| crate::stages::integration_branch(&r.feature));
        let root = fleet.main_worktree()?;
        let template = crate::prompt::template(&root, &args.role);
        let owned: Vec<Skill> = chosen.iter().map(|s| (*s).clone()).collect();
        Some(deliver::render(
            &template,
            crate::prompt::task_vars(&r.feature, &task, &integration),
            &owned,
        ))
    };
    let native_dir = deliver::reads_native(&profile).then_some(deliver::CLAUDE_DIR);
    if args.json {
        return write_json(
            ctx.out,
            &TestJson {
                task: r.to_string(),
                role: &args.role,
                profile: &profile_name,
                labels: &labels,
                paths: &task.paths,
                skills: chosen
                    .iter()
                    .map(|s| Chosen {
                        name: &s.name,
                        version: &s.version,
                        profile: s.profile.as_deref(),
                        why: why(s),
                    })
                    .collect(),
                native_dir,
                prompt,
            },
        );
    }
    let out = &mut *ctx.out;
    writeln!(out, "{r} as {} run by {profile_name}", args.role)?;
    let shown = |v: &[String]| {
        if v.is_empty() {
            "(none)".to_owned()
        } else {
            v.join(", ")
        }
    };
    writeln!(out, "  labels: {}", shown(&labels))?;
    writeln!(out, "  paths:  {}", shown(&task.paths))?;
    if chosen.is_empty() {
        writeln!(out, "  skills: none")?;
    } else {
        writeln!(out, "  skills:")?;
        for s in &chosen {
            writeln!(
                out,
                "    {:<20} {:<8} {:<10} {}",
                s.name,
                s.version,
                scope(s),
                why(s)
            )?;
        }
        if let Some(dir) = native_dir {
            writeln!(
                out,
                "  also written to the worktree's {dir}/ for {profile_name}"
            )?;
        }
    }
    if let Some(p) = prompt {
        writeln!(out, "\n--- prompt ---")?;
        writeln!(out, "{}", p.trim_end())?;
    }
    Ok(())
}
