//! Gates and probes for the gate tests: a plain gate, one with a figure, a run in a
//! throwaway directory, and whether a process the gate started is gone.

use std::collections::BTreeMap;

use std::thread;
use std::time::{Duration, Instant};

use super::config::Figure;
use super::run::run_gate;
use super::*;

pub(super) fn gate(name: &str, run: &str) -> Gate {
    Gate {
        name: name.to_string(),
        kind: GateKind::Command,
        run: run.to_string(),
        agent: None,
        timeout: None,
        figure: None,
        env: BTreeMap::new(),
        paths: None,
    }
}

pub(super) fn with_figure(mut g: Gate, regex: &str, min: Option<f64>, max: Option<f64>) -> Gate {
    g.figure = Some(Figure {
        regex: regex.to_string(),
        min,
        max,
    });
    g
}

pub(super) fn run(g: &Gate) -> GateOutcome {
    let dir = tempfile::tempdir().unwrap();
    run_gate(&super::run::Runner::default(), g, dir.path(), &[])
}

/// The pid a gate printed as `child=<pid>`.
pub(super) fn child_pid(tail: &str) -> i32 {
    tail.lines()
        .find_map(|l| l.strip_prefix("child="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no child pid in {tail:?}"))
}

/// Gone, or a zombie waiting for init to reap it: either way no longer running.
pub(super) fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

pub(super) fn eventually_gone(pid: i32) -> bool {
    // SIGKILL is asynchronous; give the kernel a moment (test-only wait).
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if is_gone(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}
