//! `git sprint notify test <event>`: sends a sample event to every receiver
//! now, so a person setting one up sees it work (or why not) at once.

use serde::Serialize;

use super::super::{write_json, CommandError, Ctx, Result};
use crate::notify::{self, Delivery, Event, EventKind};

/// Send a sample event to every receiver that wants it, and say how each went
///
/// Runs in this process with this shell's environment (secret_env variables
/// are read from it), waits for each delivery, retries included, and records
/// each in the delivery log ('git sprint notify log'). Exits 1 when one
/// failed. The events: task.failed, task.blocked, approval.needed,
/// feature.done, feature.stalled, agent.hung, breaker.open, budget.reached.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event to send, e.g. task.failed
    #[arg(value_parser = parse_event)]
    pub(crate) event: EventKind,
    /// Only this receiver (a name under `notify:`), even if it does not list the event
    #[arg(long, value_name = "NAME")]
    pub(crate) receiver: Option<String>,
    /// Print JSON for tools instead of text
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_event(s: &str) -> std::result::Result<EventKind, String> {
    s.parse()
}

#[derive(Serialize)]
struct TestJson<'a> {
    event: &'a Event,
    deliveries: &'a [Delivery],
}

pub(crate) fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    let (_store, root, common) = super::places(ctx)?;
    let config = crate::config::load(&root, &common)?.config;
    if config.notify.is_empty() {
        return Err(CommandError::Failed {
            message: "no receivers are configured".into(),
            hint: Some(
                "add one under `notify:` in .git-sprint.yaml and commit it on the base branch (the README has a notify-send example)"
                    .into(),
            ),
        });
    }
    let receivers: Vec<_> = match &args.receiver {
        Some(name) => match config.notify.get(name) {
            Some(r) => vec![(name.clone(), r.clone())],
            None => {
                let known: Vec<&str> = config.notify.keys().map(String::as_str).collect();
                return Err(CommandError::usage(format!(
                    "no receiver `{name}` under `notify:`; there are: {}",
                    known.join(", ")
                )));
            }
        },
        None => config
            .notify
            .iter()
            .filter(|(_, r)| r.wants(args.event))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect(),
    };
    let mut event = Event::sample(args.event);
    event.repository = root.display().to_string();
    let env = notify::Env::of_this_process();
    let dir = notify::dir(&common);
    let deliveries: Vec<Delivery> = receivers
        .iter()
        .map(|(name, r)| notify::send_now(&dir, name, r, &event, &env))
        .collect();
    if args.json {
        write_json(
            ctx.out,
            &TestJson {
                event: &event,
                deliveries: &deliveries,
            },
        )?;
    } else {
        if deliveries.is_empty() {
            writeln!(
                ctx.out,
                "no receiver wants {}: name one with --receiver",
                args.event
            )?;
        }
        for d in &deliveries {
            writeln!(ctx.out, "{}", super::log::line(d))?;
        }
    }
    let failed = deliveries.iter().filter(|d| !d.outcome.ok).count();
    if failed > 0 {
        return Err(CommandError::Failed {
            message: format!("{failed} of {} deliveries failed", deliveries.len()),
            hint: Some("the error of each is above; fix the receiver in .git-sprint.yaml (or the variable it reads) and try again".into()),
        });
    }
    Ok(())
}
