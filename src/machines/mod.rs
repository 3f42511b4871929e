//! Machines: the clones whose orchestrators work on one sprint through a
//! shared remote (`sprint.remote`). Each records who it is in the state
//! (`machines/<name>.yaml`: host, cores, RAM, agent limit, version) and
//! beats on a ref of its own, `refs/ai-sprint-machines/<name>`: a
//! parentless commit holding `heartbeat.yaml` (CPU, RAM, load, free disk,
//! running agents), force-pushed. Heartbeats never touch `refs/ai-sprint`,
//! so liveness never contends with state transitions, and the ref holds
//! only the last beat, so it does not grow.
//!
//! A machine is named by `git config sprint.machine NAME` (so that tests run
//! several on one host), else by its host name.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::state::{Actor, StateError, Store};

pub(crate) mod branches;
pub(crate) mod duty;
pub(crate) mod lease;

/// Where each machine's heartbeat lives.
pub(crate) const HEARTBEAT_REFS: &str = "refs/ai-sprint-machines/";

/// A machine whose last beat is older than this is `lost` unless
/// `timeouts.machine` says otherwise; it beats three times in the span.
pub const LOST_AFTER_SECS: i64 = 90;

/// How often a machine beats, given when it counts as lost: three beats
/// in the span, so one late beat never loses a machine.
pub(crate) fn beat_every(lost_after: std::time::Duration) -> std::time::Duration {
    (lost_after / 3).max(std::time::Duration::from_millis(500))
}

/// Who a machine is, recorded in the state when its orchestrator starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) cores: usize,
    pub(crate) ram_mb: u64,
    /// How many developers its orchestrator runs at once.
    pub(crate) developers: u32,
    /// Its labels (`sprint.machine-labels`), for `machines:` placement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    pub(crate) version: String,
    /// When its orchestrator last started (RFC 3339).
    pub(crate) started: String,
}

/// One heartbeat: how the machine is doing now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Unix seconds.
    pub at: i64,
    /// Busy share of all cores since the previous beat, in percent (none
    /// on the first beat).
    #[serde(default)]
    pub(crate) cpu_percent: Option<f64>,
    pub(crate) ram_used_mb: u64,
    pub(crate) ram_total_mb: u64,
    pub(crate) load1: f64,
    pub(crate) disk_free_mb: u64,
    /// Agent sessions running on it.
    pub(crate) agents: usize,
}

/// A machine as `list --machines` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct MachineView {
    pub(crate) name: String,
    /// `up`, `lost` (no beat for `timeouts.machine`) or `unknown` (no beat
    /// seen yet).
    pub(crate) status: &'static str,
    /// Whether it holds the leader lease.
    pub(crate) leader: bool,
    pub(crate) machine: Option<Machine>,
    pub heartbeat: Option<Heartbeat>,
    /// Seconds since the last beat.
    pub(crate) beat_age_secs: Option<i64>,
}

/// This machine's name: `configured` (`sprint.machine`), else the host name.
pub(crate) fn name(configured: Option<&str>) -> String {
    match configured.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => n.to_owned(),
        None => host_name(),
    }
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) writes at most `len` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match rc {
        0 if end > 0 => String::from_utf8_lossy(&buf[..end]).into_owned(),
        _ => "localhost".to_owned(),
    }
}

fn state_path(name: &str) -> String {
    format!("machines/{name}.yaml")
}

/// Records `machine` in the state (one commit, only when it changed).
pub fn record(store: &Store, machine: &Machine) -> Result<(), StateError> {
    crate::state::check_name("machine", &machine.name)
        .map_err(crate::state::Refusal::InvalidName)?;
    store.transact(&Actor::named("orchestrator"), |txn| {
        let path = state_path(&machine.name);
        let before: Option<Machine> = txn.read(&path).ok().flatten();
        // A restart changes `started` only: not worth a commit.
        if before.as_ref().map(|b| Machine {
            started: machine.started.clone(),
            ..b.clone()
        }) != Some(machine.clone())
        {
            txn.write(&path, machine)?;
            txn.subject(format!("machine {} joined", machine.name));
        }
        Ok(())
    })?;
    Ok(())
}

/// What this machine is, for [`record`].
pub fn describe(name: &str, developers: u32, labels: &[String]) -> Machine {
    let (_, total) = memory_mb();
    Machine {
        name: name.to_owned(),
        host: host_name(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ram_mb: total,
        developers,
        labels: labels.to_vec(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started: clock::now_rfc3339(),
    }
}

/// CPU times from `/proc/stat`: (busy, total) jiffies of all cores.
pub(crate) type CpuTimes = (u64, u64);

/// Measures the machine now; `previous` CPU times give the CPU share
/// since then. Returns the beat and the CPU times to pass next time.
pub fn measure(
    dir: &Path,
    agents: usize,
    previous: Option<CpuTimes>,
) -> (Heartbeat, Option<CpuTimes>) {
    let cpu = cpu_times();
    let cpu_percent = match (previous, cpu) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
            Some(((b1.saturating_sub(b0)) as f64 * 100.0 / (t1 - t0) as f64 * 10.0).round() / 10.0)
        }
        _ => None,
    };
    let (used, total) = memory_mb();
    let load1 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let disk_free_mb = rustix::fs::statvfs(dir)
        .map(|s| s.f_bavail * s.f_frsize / (1024 * 1024))
        .unwrap_or(0);
    let beat = Heartbeat {
        at: clock::now(),
        cpu_percent,
        ram_used_mb: used,
        ram_total_mb: total,
        load1,
        disk_free_mb,
        agents,
    };
    (beat, cpu)
}

fn cpu_times() -> Option<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are
    // not busy.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// (used, total) RAM in MiB, from `/proc/meminfo`.
fn memory_mb() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let total = field("MemTotal:") / 1024;
    let available = field("MemAvailable:") / 1024;
    (total.saturating_sub(available), total)
}

/// Publishes `beat` as machine `name`'s heartbeat: here, and on the remote
/// when there is one.
pub fn beat(store: &Store, name: &str, beat: &Heartbeat) -> Result<(), StateError> {
    let repo = store.repo();
    let yaml = serde_yaml::to_string(beat).map_err(|source| StateError::Yaml {
        path: "heartbeat.yaml".into(),
        source,
    })?;
    let blob = repo
        .write_blob(yaml.as_bytes())
        .map_err(|e| StateError::git("writing a heartbeat", e))?;
    let mut editor = repo
        .edit_tree(gix::ObjectId::empty_tree(repo.object_hash()))
        .map_err(|e| StateError::git("writing a heartbeat", e))?;
    editor
        .upsert("heartbeat.yaml", gix::object::tree::EntryKind::Blob, blob)
        .map_err(|e| StateError::git("writing a heartbeat", e))?;
    let tree = editor
        .write()
        .map_err(|e| StateError::git("writing a heartbeat", e))?;
    let sig = gix::actor::Signature {
        name: name.into(),
        email: format!("{name}@git-sprint").into(),
        time: gix::date::Time::new(beat.at, 0),
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let sig = sig.to_ref(&mut buf);
    let commit = repo
        .new_commit_as(
            sig,
            sig,
            format!("heartbeat of {name}"),
            tree,
            None::<gix::ObjectId>,
        )
        .map_err(|e| StateError::git("writing a heartbeat", e))?;
    store.publish_ref(
        &format!("{HEARTBEAT_REFS}{name}"),
        commit.id,
        "git-sprint: heartbeat",
    )
}

/// The running heartbeat of this machine; it stops when this is dropped.
pub(crate) struct Beating {
    _stop: std::sync::mpsc::Sender<()>,
}

/// Beats for machine `name` every `every`, from a thread of its own (first
/// beat at once), on the repository at `dir`, and brings the other
/// machines' beats each time, so that the orchestrator can tell when one
/// is lost. A beat that cannot be published is logged and the next one
/// tried: a machine that cannot reach the remote goes on working and shows
/// as lost elsewhere.
pub(crate) fn start_beating(
    dir: &Path,
    name: String,
    every: std::time::Duration,
) -> Option<Beating> {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let dir = dir.to_owned();
    std::thread::Builder::new()
        .name("sprint-heartbeat".into())
        .spawn(move || {
            // Neither a Store nor a Fleet is Send: the thread opens its own.
            let Ok(fleet) = crate::fleet::Fleet::open(&dir) else {
                return;
            };
            let mut cpu = None;
            loop {
                let agents = fleet.tmux.sessions_with_activity().map_or(0, |s| s.len());
                let (b, now_cpu) = measure(&dir, agents, cpu);
                cpu = now_cpu;
                if let Err(e) = beat(&fleet.store, &name, &b) {
                    tracing::warn!(error = %e, machine = %name, "publishing the heartbeat failed");
                }
                if let Err(e) = fleet.store.fetch_refs(&format!("{HEARTBEAT_REFS}*")) {
                    tracing::debug!(error = %e, "fetching the other machines' heartbeats failed");
                }
                match stopped.recv_timeout(every) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })
        .ok()?;
    Some(Beating { _stop: stop })
}

/// The last beat of every machine with a heartbeat ref here (unix
/// seconds), read in-process: what the orchestrator judges liveness by.
pub(crate) fn last_beats(store: &Store) -> std::collections::BTreeMap<String, i64> {
    let repo = store.repo();
    let mut out = std::collections::BTreeMap::new();
    let Ok(refs) = repo.references() else {
        return out;
    };
    let Ok(iter) = refs.prefixed(HEARTBEAT_REFS) else {
        return out;
    };
    for r in iter.flatten() {
        let full = r.name().as_bstr().to_string();
        let Some(name) = full.strip_prefix(HEARTBEAT_REFS).map(str::to_owned) else {
            continue;
        };
        let Ok(id) = r.into_fully_peeled_id() else {
            continue;
        };
        if let Some(b) = read_beat(repo, id.detach()) {
            out.insert(name, b.at);
        }
    }
    out
}

/// `timeouts.machine` as the orchestrator recorded it in the state's
/// settings (for views without the configuration at hand), in seconds.
pub(crate) fn recorded_lost_after(meta: Option<&crate::state::SprintMeta>) -> i64 {
    meta.and_then(|m| m.settings.get("timeouts.machine"))
        .and_then(|v| v.as_str())
        .and_then(|s| clock::parse_duration(s).ok())
        .map_or(LOST_AFTER_SECS, |d| d.as_secs() as i64)
}

/// Whether a machine whose last beat was at `beat` is lost at `now`.
pub(crate) fn is_lost(beat: Option<i64>, now: i64, lost_after_secs: i64) -> bool {
    beat.is_none_or(|at| now - at > lost_after_secs)
}

/// Every machine the state or a heartbeat ref names, with its status at
/// `now` (lost after `lost_after_secs` without a beat). Fetches the state
/// and the heartbeats from the remote first, when there is one.
pub(crate) fn list(
    store: &Store,
    now: i64,
    lost_after_secs: i64,
) -> Result<Vec<MachineView>, StateError> {
    store.refresh()?;
    store.fetch_refs(&format!("{HEARTBEAT_REFS}*"))?;
    views(store, now, lost_after_secs)
}

/// [`list`] from what this clone has, fetching nothing.
pub(crate) fn views(
    store: &Store,
    now: i64,
    lost_after_secs: i64,
) -> Result<Vec<MachineView>, StateError> {
    let leader = store
        .read(|txn| txn.meta())?
        .and_then(|m| m.leader)
        .map(|l| l.machine);
    let mut out: std::collections::BTreeMap<String, MachineView> = Default::default();
    let view = |name: &str| MachineView {
        name: name.to_owned(),
        status: "unknown",
        leader: leader.as_deref() == Some(name),
        machine: None,
        heartbeat: None,
        beat_age_secs: None,
    };
    for name in store.read(|txn| txn.list("machines"))? {
        let machine: Option<Machine> = store.read(|txn| txn.read(&state_path(&name)))?;
        out.entry(name.clone())
            .or_insert_with(|| view(&name))
            .machine = machine;
    }
    let repo = store.repo();
    let refs = repo
        .references()
        .map_err(|e| StateError::git("listing heartbeats", e))?;
    let iter = refs
        .prefixed(HEARTBEAT_REFS)
        .map_err(|e| StateError::git("listing heartbeats", e))?;
    for r in iter.flatten() {
        let full = r.name().as_bstr().to_string();
        let Some(name) = full.strip_prefix(HEARTBEAT_REFS) else {
            continue;
        };
        let Ok(id) = r.into_fully_peeled_id() else {
            continue;
        };
        let beat = read_beat(repo, id.detach());
        out.entry(name.to_owned())
            .or_insert_with(|| view(name))
            .heartbeat = beat;
    }
    let mut machines: Vec<MachineView> = out.into_values().collect();
    for m in &mut machines {
        if let Some(b) = &m.heartbeat {
            let age = (now - b.at).max(0);
            m.beat_age_secs = Some(age);
            m.status = if is_lost(Some(b.at), now, lost_after_secs) {
                "lost"
            } else {
                "up"
            };
        }
    }
    Ok(machines)
}

/// The heartbeat in commit `id`; none when it does not read (a machine's
/// ref is its own business: one that does not parse shows as no beat).
fn read_beat(repo: &gix::Repository, id: gix::ObjectId) -> Option<Heartbeat> {
    let tree = repo.find_commit(id).ok()?.tree().ok()?;
    let entry = tree.find_entry("heartbeat.yaml")?;
    let blob = entry.object().ok()?;
    serde_yaml::from_slice(&blob.data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        Store::temp()
    }

    #[test]
    fn a_configured_name_wins_over_the_host_name() {
        assert_eq!(name(Some(" m1 ")), "m1");
        assert_eq!(name(Some("")), host_name());
        assert_eq!(name(None), host_name());
        assert!(!host_name().is_empty());
    }

    #[test]
    fn a_measure_reads_this_machine_and_the_second_has_a_cpu_share() {
        let dir = tempfile::tempdir().unwrap();
        let (first, cpu) = measure(dir.path(), 2, None);
        assert_eq!(first.cpu_percent, None);
        assert!(first.ram_total_mb > 0 && first.ram_used_mb <= first.ram_total_mb);
        assert!(first.disk_free_mb > 0);
        assert_eq!(first.agents, 2);
        // Burn a little CPU so that the jiffies move.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let (second, _) = measure(dir.path(), 0, cpu);
        let share = second.cpu_percent.expect("a share since the first measure");
        assert!((0.0..=100.0).contains(&share), "{share}");
    }

    #[test]
    fn beats_and_records_list_with_their_status() {
        let (dir, store) = store();
        let now = 1_000_000;
        let m1 = Machine {
            name: "m1".into(),
            ..describe("m1", 2, &[])
        };
        record(&store, &m1).unwrap();
        let (mut b, _) = measure(dir.path(), 1, None);
        b.at = now - 10;
        beat(&store, "m1", &b).unwrap();
        b.at = now - LOST_AFTER_SECS - 1;
        beat(&store, "m2", &b).unwrap();
        let listed = list(&store, now, LOST_AFTER_SECS).unwrap();
        let rows: Vec<_> = listed
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.status,
                    m.machine.is_some(),
                    m.beat_age_secs,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("m1", "up", true, Some(10)),
                ("m2", "lost", false, Some(LOST_AFTER_SECS + 1))
            ]
        );
        // A second beat replaces the first: the ref holds one commit.
        b.at = now;
        beat(&store, "m2", &b).unwrap();
        let listed = list(&store, now, LOST_AFTER_SECS).unwrap();
        assert_eq!(listed[1].status, "up");
        // Recording the same machine again makes no commit.
        let tip = store.tip().unwrap();
        record(
            &store,
            &Machine {
                started: "later".into(),
                ..m1
            },
        )
        .unwrap();
        assert_eq!(store.tip().unwrap(), tip);
    }
}
