//! `git sprint hook <name>`: what the installed git hooks run.
//!
//! A hook must be fast and must never fail the user's git command: every
//! error becomes one line on stderr and exit 0, and a watchdog ends the
//! process at [`hooks::timeout`] whatever it is waiting for (a hung network
//! filesystem, a config include that blocks), so git is never held up.
//!
//! Every way a commit lands on the base branch ingests a changed tasks.md:
//! `post-commit` and `post-applypatch` (`git am`) compare the new commit with
//! its parent, `post-merge` and `post-rewrite` after a rebase compare HEAD
//! with `ORIG_HEAD`, the tip before the operation. An amend needs nothing
//! from `post-rewrite`: git runs `post-commit` for it too.

use std::io::Write;
use std::path::Path;

use super::{person, Ctx, IoContext, Result};
use crate::hint::Hint;
use crate::hooks;
use crate::ingest;
use crate::state::Store;

/// Run git-sprint's part of a git hook (called by the installed shims)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The hook: post-commit, post-merge, post-applypatch, post-rewrite or
    /// prepare-commit-msg
    pub(crate) name: String,
    /// The hook's arguments from git
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) args: Vec<String>,
}

/// Runs `git sprint hook`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    if hooks::disabled() {
        return Ok(());
    }
    let _span = tracing::info_span!("hook", name = %args.name).entered();
    let limit = hooks::timeout();
    let name = args.name.clone();
    // Detached: when the work ends first, the process simply exits.
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        let _ = writeln!(
            std::io::stderr().lock(),
            "git-sprint: {name} hook stopped after {}s; 'git sprint ingest' catches up",
            limit.as_secs()
        );
        std::process::exit(0);
    });
    let done = match args.name.as_str() {
        "prepare-commit-msg" => agent_trailer(ctx, &args.args),
        name => react(ctx, name, &args.args),
    };
    if let Err(e) = done {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "git-sprint ({} hook): {e}", args.name);
        if let Some(h) = e.hint() {
            let _ = writeln!(err, "git-sprint: hint: {h}");
        }
    }
    Ok(())
}

/// In an agent's commit (the wrapper sets `SPRINT_WORKER` for the agent
/// only), adds `Sprint-Agent: <id>` to the message in file `args[0]`. git
/// interpret-trailers knows where trailers go (after a blank line, before
/// comments) and leaves the message alone when it already has this one.
fn agent_trailer(ctx: &Ctx<'_>, args: &[String]) -> Result {
    let Ok(id) = std::env::var("SPRINT_WORKER") else {
        return Ok(());
    };
    let Some(file) = args.first() else {
        return Ok(());
    };
    // Only a name git-sprint could have given: the value lands in the message.
    if crate::state::check_name("worker", &id).is_err() {
        return Ok(());
    }
    let out = crate::worker::worktree::Git::new(&ctx.cwd)
        .command([
            "interpret-trailers",
            "--in-place",
            "--if-exists",
            "addIfDifferent",
            "--trailer",
        ])
        .arg(format!("{}: {id}", crate::fleet::AGENT_TRAILER))
        .arg(file)
        .output()
        .doing("running git interpret-trailers on", Path::new(file))?;
    if !out.status.success() {
        return Err(super::CommandError::Failed {
            message: format!(
                "git interpret-trailers could not add the {} trailer to {file}: {}",
                crate::fleet::AGENT_TRAILER,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            hint: None,
        });
    }
    Ok(())
}

/// In a sprint shared through a remote, an agent's commit leaves its
/// machine at once (a fast-forward push of its branch), so that its work
/// survives the machine: another takes the task over from there.
fn share_commit(store: &crate::state::Store, cwd: &Path, worker: &str) {
    let Some(remote) = store.remote_name() else {
        return;
    };
    let Ok(Some(agent)) = store.read(|txn| txn.agent(worker)) else {
        return;
    };
    if agent.machine.is_none() {
        return; // a fleet worker's branch is its own
    }
    let git = crate::worker::worktree::Git::new(cwd);
    match crate::machines::branches::push(&git, remote, &agent.branch, false) {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(branch = %agent.branch, "the remote's branch moved on elsewhere; this commit stays here")
        }
        Err(e) => {
            tracing::warn!(error = %e, "pushing the agent's commit failed; its end pushes it again")
        }
    }
}

fn react(ctx: &mut Ctx<'_>, name: &str, args: &[String]) -> Result {
    if name == "post-rewrite" && args.first().map(String::as_str) != Some("rebase") {
        // `amend`: post-commit has seen it already.
        return Ok(());
    }
    let store = ctx.store()?;
    // A commit by an agent (the worker wrapper sets these): a heartbeat.
    if let (Ok(task), Ok(worker)) = (std::env::var("SPRINT_TASK"), std::env::var("SPRINT_WORKER")) {
        let actor = crate::state::Actor::named(&worker);
        let beat = store.transact(&actor, |txn| {
            let r = crate::state::ops::resolve(txn, &task)?;
            crate::state::ops::heartbeat(txn, &r, &worker)
        });
        // Not holding a lease (a tester, a fleet worker) is fine.
        if let Err(e) = beat {
            tracing::debug!(error = %e, "no heartbeat recorded");
        }
        share_commit(&store, &ctx.cwd, &worker);
        return Ok(());
    }
    let repo = store.repo();
    let Ok(head) = repo.head_id() else {
        return Ok(());
    };
    let head = head.detach();
    let on_base = match (repo.head_name().ok().flatten(), ingest::base_branch(repo)) {
        (Some(branch), Some(base)) => branch.shorten() == base.as_str(),
        _ => false,
    };
    if !on_base {
        return Ok(());
    }
    let before = match name {
        "post-merge" | "post-rewrite" => repo
            .rev_parse_single("ORIG_HEAD")
            .ok()
            .map(|id| id.detach()),
        _ => repo
            .find_commit(head)
            .ok()
            .and_then(|c| c.parent_ids().next().map(|p| p.detach())),
    };
    let changed = ingest::changed_features(repo, head, before)?;
    if changed.is_empty() {
        return Ok(());
    }
    ingest_changed(&store, head, &changed)
}

fn ingest_changed(store: &Store, head: gix::ObjectId, features: &[String]) -> Result {
    let actor = person(store, None);
    let base = ingest::base_branch(store.repo());
    let mut err = std::io::stderr().lock();
    for source in ingest::sources(store.repo(), "HEAD", head, features)? {
        match ingest::ingest(store, &actor, &source, base.as_deref()) {
            Ok(o) if o.unchanged => {}
            Ok(o) => {
                let _ = writeln!(
                    err,
                    "git-sprint: {}: {} ingested: {}",
                    o.feature,
                    o.path,
                    o.summary()
                );
            }
            Err(e) => {
                let _ = writeln!(err, "git-sprint: {e} ({} not ingested)", source.path);
            }
        }
    }
    Ok(())
}
