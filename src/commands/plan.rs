//! `git sprint plan`: a dry run of a tasks.md.

use std::path::{Path, PathBuf};

use super::{write_json, CommandError, Ctx, Result};
use crate::ingest;
use crate::spec;

/// Show what a tasks.md would become: convoys, waves, path conflicts, warnings
///
/// Story phases run side by side and chores are skipped as the `planning`
/// section of the configuration says; each wave's width and the critical
/// path (the longest chain of open tasks) are printed last.
///
/// Reads the working-tree file by default (so you can check it before you
/// commit), or the committed one with --rev. Changes nothing. A malformed file
/// is rejected with file:line and what is wrong.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A feature (reads specs/<feature>/tasks.md) or the path of a tasks.md
    pub(crate) target: String,
    /// Read the file as committed at REV instead of the working tree
    #[arg(long, value_name = "REV")]
    pub(crate) rev: Option<String>,
    /// Also show the agent profile the `route:` rules give each open task,
    /// and the rule that gives it (as if every profile were idle)
    #[arg(long)]
    pub(crate) route: bool,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

/// One task's route, for `--route`.
#[derive(serde::Serialize)]
struct Route {
    task: String,
    labels: Vec<String>,
    #[serde(flatten)]
    choice: Option<crate::router::Choice>,
    /// Why no profile could take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    waits: Option<String>,
}

#[derive(serde::Serialize)]
struct RoutedPlan<'a> {
    #[serde(flatten)]
    plan: &'a spec::Plan,
    routes: Vec<Route>,
}

/// Each open task's developer profile under `config`'s rules.
fn routes(plan: &spec::Plan, config: &crate::config::Config) -> Vec<Route> {
    let routing = crate::router::Routing::from_config(config);
    let idle = std::collections::BTreeMap::new();
    plan.tasks
        .iter()
        .filter(|t| !t.done && t.skipped.is_none())
        .map(|t| {
            let labels = crate::router::labels_of(t.story.as_deref(), &t.labels, &t.paths);
            let view = crate::router::TaskView {
                role: "developer",
                labels: &labels,
                paths: &t.paths,
            };
            let chosen =
                crate::router::choose(&routing.rules, &config.roles.developer.agent, &view, &idle);
            let (choice, waits) = match chosen {
                Ok(c) => (Some(c), None),
                Err(e) => (None, Some(e)),
            };
            Route {
                task: t.id.clone(),
                labels,
                choice,
                waits,
            }
        })
        .collect()
}

/// Runs `git sprint plan`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let (name, text) = match &args.rev {
        Some(rev) => committed(ctx, &args.target, rev)?,
        None => working_tree(ctx, &args.target)?,
    };
    // Outside a repository there is no configuration: the defaults apply.
    let config = match ctx.store() {
        Ok(store) => crate::config::load_from(store.repo(), None)?.config,
        Err(_) => crate::config::Config::default(),
    };
    let planning = config.planning.clone();
    // A feature's documents live in specs/<feature>/; a file's beside it.
    let feature = if args.target.ends_with(".md") {
        ""
    } else {
        args.target.as_str()
    };
    let options = ingest::plan_options(&planning, feature);
    let plan = spec::plan_with(&spec::parse(&name, &text)?, &options)?;
    let routes = args.route.then(|| routes(&plan, &config));
    if args.json {
        return match routes {
            Some(routes) => write_json(
                ctx.out,
                &RoutedPlan {
                    plan: &plan,
                    routes,
                },
            ),
            None => write_json(ctx.out, &plan),
        };
    }
    if let Some(routes) = &routes {
        // After the plan, so the plan reads as without --route.
        let mut text = Vec::new();
        spec::render_plan(&plan, &mut text)?;
        ctx.out.write_all(&text)?;
        writeln!(ctx.out, "\nroutes (developer profile per open task)")?;
        for r in routes {
            match (&r.choice, &r.waits) {
                (Some(c), _) => writeln!(ctx.out, "  {:<8} {:<16} {}", r.task, c.profile, c.rule)?,
                (None, Some(w)) => writeln!(ctx.out, "  {:<8} waits: {w}", r.task)?,
                (None, None) => {}
            }
        }
        return Ok(());
    }
    if !super::style::enabled() {
        spec::render_plan(&plan, ctx.out)?;
        return Ok(());
    }
    // Conflicts and warnings stand out: their section headings in colour.
    let mut text = Vec::new();
    spec::render_plan(&plan, &mut text)?;
    for line in String::from_utf8_lossy(&text).lines() {
        if line == "warnings" || line.starts_with("serialized conflicts") {
            writeln!(
                ctx.out,
                "{}",
                super::style::paint(line, Some(super::style::Tone::Warn))
            )?;
        } else {
            writeln!(ctx.out, "{line}")?;
        }
    }
    Ok(())
}

/// A path that exists is a file; anything else names a feature.
fn working_tree(ctx: &Ctx<'_>, target: &str) -> Result<(String, String)> {
    let direct = ctx.cwd.join(target);
    let path: PathBuf = if direct.is_file() {
        direct
    } else {
        let store = ctx.store()?;
        super::worktree_root(&store)?.join(ingest::tasks_path(target))
    };
    let text = std::fs::read_to_string(&path).map_err(|e| CommandError::Failed {
        message: format!("cannot read {}: {e}", path.display()),
        hint: Some(format!(
            "name a feature with a specs/<feature>/tasks.md, or the path of a tasks.md (not '{target}')"
        )),
    })?;
    Ok((shown(ctx, &path), text))
}

fn committed(ctx: &Ctx<'_>, target: &str, rev: &str) -> Result<(String, String)> {
    let store = ctx.store()?;
    let repo = store.repo();
    let (rev_name, commit) = ingest::resolve_rev(repo, Some(rev))?;
    let feature = if target.ends_with(".md") {
        Path::new(target)
            .parent()
            .and_then(Path::file_name)
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        target.to_owned()
    };
    let source = ingest::sources(repo, &rev_name, commit, &[feature])?.remove(0);
    Ok((format!("{}@{rev}", source.path), source.text))
}

/// The path relative to where the user is, as they would type it.
fn shown(ctx: &Ctx<'_>, path: &Path) -> String {
    path.strip_prefix(&ctx.cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}
