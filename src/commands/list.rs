//! `git sprint list`: the workers, as they really are.

use super::{person, write_json, Ctx, Result};
use crate::clock;
use crate::fleet::Fleet;
use crate::view::workers::{self, Workers};

/// List workers: state, age, commits ahead, files changed, CPU, memory and cost
///
/// Only live workers (starting or running) by default; --all adds those that
/// ended (exited, dead, killed), which stay listed until their feature is done.
///
/// The state of an ended worker names why it failed (`auth`, `no_change`,
/// …) when it did; COST is what its run reported (tokens and dollars are in
/// --json, under `agent.usage`).
///
/// Records are checked against tmux and the processes first: a worker whose
/// session vanished is reported (and recorded) as dead.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON for tools instead of a table
    #[arg(long)]
    pub(crate) json: bool,
    /// Only the workers of this batch
    #[arg(long, value_name = "B")]
    pub(crate) batch: Option<String>,
    /// Also the workers that ended (the history)
    #[arg(long, short = 'a')]
    pub(crate) all: bool,
    /// The machines sharing this sprint through its remote instead
    /// (`sprint.remote`): name, status (up, or lost after 90 s without a
    /// heartbeat), host, cores, RAM, load, free disk, agents
    #[arg(long, conflicts_with_all = ["batch", "all"])]
    pub(crate) machines: bool,
}

/// Runs `git sprint list`.
pub fn run(ctx: &mut Ctx<'_>, args: &Args) -> Result {
    if args.machines {
        return machines(ctx, args.json);
    }
    let fleet = Fleet::open(&ctx.cwd)?;
    let filter = workers::Filter {
        batch: args.batch.clone(),
        all: args.all,
    };
    let listed = workers::list(&fleet, &person(&fleet.store, None), &filter)?;
    if args.json {
        return write_json(ctx.out, &listed);
    }
    let Workers { rows, ended } = listed;
    if rows.is_empty() && ended > 0 {
        writeln!(
            ctx.out,
            "No live workers; {ended} ended ('git sprint list --all' shows them)."
        )?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(ctx.out, "No workers.")?;
        writeln!(
            ctx.out,
            "hint: start one with 'git sprint spawn <name> --prompt TEXT'"
        )?;
        return Ok(());
    }
    let table: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let opt = |v: Option<usize>| v.map_or("-".into(), |n| n.to_string());
            [
                r.agent.id.clone(),
                r.agent.batch.clone().unwrap_or_else(|| "-".into()),
                r.agent.branch.clone(),
                match r.agent.cause {
                    Some(cause) if !r.state.contains(cause.as_str()) => {
                        format!("{} ({cause})", r.state)
                    }
                    _ => r.state.clone(),
                },
                clock::short_age(r.age_secs),
                opt(r.ahead),
                opt(r.files_changed),
                r.cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
                r.rss_bytes.map_or("-".into(), human_bytes),
                r.agent
                    .usage
                    .as_ref()
                    .and_then(|u| u.cost_usd)
                    .map_or("-".into(), |c| format!("${c:.2}")),
            ]
        })
        .collect();
    let header = [
        "ID", "BATCH", "BRANCH", "STATE", "AGE", "AHEAD", "FILES", "CPU", "RSS", "COST",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>, body: bool| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let cell = if i + 1 == cells.len() {
                c.to_string()
            } else {
                format!("{c:<w$}  ")
            };
            // The STATE column, painted after padding (escapes have no width).
            if body && i == 3 {
                s.push_str(&super::style::state(&cell));
            } else {
                s.push_str(&cell);
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(ctx.out, "{}", line(header.to_vec(), false))?;
    for row in &table {
        writeln!(
            ctx.out,
            "{}",
            line(row.iter().map(String::as_str).collect(), true)
        )?;
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if b as f64 >= 1024.0 * MB {
        format!("{:.1}G", b as f64 / (1024.0 * MB))
    } else {
        format!("{:.0}M", b as f64 / MB)
    }
}

/// `list --machines`: every machine the state or a heartbeat names.
fn machines(ctx: &mut Ctx<'_>, json: bool) -> Result {
    let rows = workers::machines(&ctx.store()?)?;
    if json {
        return write_json(ctx.out, &rows);
    }
    if rows.is_empty() {
        writeln!(ctx.out, "No machines.")?;
        writeln!(
            ctx.out,
            "hint: machines appear once 'git sprint start' runs in a clone with sprint.remote set"
        )?;
        return Ok(());
    }
    writeln!(
        ctx.out,
        "{:<16} {:<8} {:<6} {:<16} {:>5} {:>11} {:>6} {:>6} {:>10} {:>6} {:>8}",
        "MACHINE",
        "STATUS",
        "LEADS",
        "HOST",
        "CORES",
        "RAM",
        "CPU",
        "LOAD",
        "DISK FREE",
        "AGENTS",
        "BEAT"
    )?;
    for m in &rows {
        let (host, cores) = match &m.machine {
            Some(r) => (r.host.clone(), r.cores.to_string()),
            None => ("-".into(), "-".into()),
        };
        let dash = || "-".to_owned();
        let b = m.heartbeat.as_ref();
        writeln!(
            ctx.out,
            "{:<16} {:<8} {:<6} {:<16} {:>5} {:>11} {:>6} {:>6} {:>10} {:>6} {:>8}",
            m.name,
            m.status,
            if m.leader { "yes" } else { "-" },
            host,
            cores,
            b.map_or_else(dash, |b| format!("{}/{}M", b.ram_used_mb, b.ram_total_mb)),
            b.and_then(|b| b.cpu_percent)
                .map_or_else(dash, |c| format!("{c:.0}%")),
            b.map_or_else(dash, |b| format!("{:.2}", b.load1)),
            b.map_or_else(dash, |b| format!("{}M", b.disk_free_mb)),
            b.map_or_else(dash, |b| b.agents.to_string()),
            m.beat_age_secs
                .map_or_else(dash, |a| format!("{} ago", clock::short_age(a))),
        )?;
    }
    Ok(())
}
