//! Running gates: `sh -c` in the worktree, in its own process group, with a timeout,
//! its output captured through one pipe, and everything it started killed at its end.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::config::Gate;
use super::figure::extract_figure;
use super::outcome::{tail, GateOutcome, StageOutcome};
use crate::clock::human_duration;
use crate::worker::reap::{self, Ledger};
use crate::worker::sandbox::{Places, Plan, Sandbox};

/// Output kept for the figure regex; summaries come last, so older output may go.
const FIGURE_WINDOW: usize = 1024 * 1024;
/// How long a timed-out gate gets to exit on SIGTERM before its group is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the output pipe to close once the group is dead; only a
/// process that left the group (`setsid`) can hold it open longer.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How this process runs gates: recorded in a ledger while they run (the
/// orchestrator's `<common>/sprint/gates/`, so the gates of one killed
/// mid-run die at the next start) and confined like the agents whose code
/// they run. [`Runner::default`] runs them unrecorded and unconfined.
///
/// A value, handed to each run, rather than a setting of the process: two
/// orchestrators (or tests) in one process each run gates their own way.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    ledger: Option<Ledger>,
    confinement: Option<Confinement>,
}

impl Runner {
    /// Gates recorded in `ledger` (if any) and confined as `confinement`
    /// says (`None`: unconfined).
    pub(crate) fn new(ledger: Option<Ledger>, confinement: Option<Confinement>) -> Runner {
        Runner {
            ledger,
            confinement,
        }
    }

    /// Confines the gates run from now on as `confinement` says (the
    /// configuration changed).
    pub(crate) fn confine(&mut self, confinement: Option<Confinement>) {
        self.confinement = confinement;
    }
}

/// Where a confined gate runs. A gate runs the agent's code (its tests, its
/// build scripts), so it gets the agent's sandbox: it may write its
/// worktree, the object store, refs, temp directories and
/// `sandbox.writable`, never the shared `.git/config`, the hooks, the main
/// worktree or the rest of `$HOME` (DESIGN.md "Trust model").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Confinement {
    pub(crate) common_dir: PathBuf,
    pub(crate) main_worktree: Option<PathBuf>,
    pub(crate) home: Option<PathBuf>,
    /// `sandbox.writable` from the configuration.
    pub(crate) writable: Vec<String>,
}

impl Confinement {
    /// The confinement of the gates of the sprint in `common_dir` with
    /// its main worktree at `main_worktree`. Gates run the agents' code, so
    /// they run in the agents' sandbox: `None` only with `sandbox: off`.
    pub(crate) fn of_sprint(
        common_dir: &Path,
        main_worktree: &Path,
        sandbox: &crate::config::SandboxConfig,
    ) -> Option<Confinement> {
        sandbox.enabled.then(|| Confinement {
            common_dir: common_dir.to_path_buf(),
            main_worktree: Some(main_worktree.to_path_buf()),
            home: std::env::var_os("HOME").map(PathBuf::from),
            writable: sandbox.writable.clone(),
        })
    }
}

/// The sandbox for one gate run in `worktree`, or `None` when gates run
/// unconfined or the kernel has no Landlock (the orchestrator says so at
/// its start).
fn gate_sandbox(
    confinement: Option<&Confinement>,
    worktree: &Path,
    mark: &str,
) -> std::io::Result<Option<Sandbox>> {
    let Some(c) = confinement else {
        return Ok(None);
    };
    let plan = Plan::new(&Places {
        common_dir: &c.common_dir,
        worktree,
        main_worktree: c.main_worktree.as_deref(),
        home: c.home.as_deref(),
        worker: mark,
        program: "",
        writable: &c.writable,
    })
    .and_then(Sandbox::build)
    .map_err(|e| std::io::Error::other(format!("confining the gate: {e}")))?;
    Ok(plan)
}

/// A mark no other gate run shares: this process, a counter and the time.
fn gate_mark() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "gate-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Runs the gates in order and stops at the first failure.
pub(crate) fn run_stage(
    runner: &Runner,
    gates: &[Gate],
    worktree: &Path,
    env: &[(String, String)],
) -> StageOutcome {
    run_stage_inner(runner, gates, worktree, env, None)
}

/// Like [`run_stage`], but skips gates whose `paths` the diff (`changed`, repo-relative
/// paths) does not touch.
pub(crate) fn run_stage_for_diff<S: AsRef<str>>(
    runner: &Runner,
    gates: &[Gate],
    worktree: &Path,
    env: &[(String, String)],
    changed: &[S],
) -> StageOutcome {
    let changed: Vec<&str> = changed.iter().map(AsRef::as_ref).collect();
    run_stage_inner(runner, gates, worktree, env, Some(&changed))
}

fn run_stage_inner(
    runner: &Runner,
    gates: &[Gate],
    worktree: &Path,
    env: &[(String, String)],
    changed: Option<&[&str]>,
) -> StageOutcome {
    let mut out = StageOutcome {
        passed: true,
        results: Vec::new(),
        not_run: Vec::new(),
        skipped: Vec::new(),
    };
    for gate in gates {
        // An AI Reviewer is an agent the CAB starts after the commands pass.
        if !gate.kind.is_command() {
            continue;
        }
        if !out.passed {
            out.not_run.push(gate.name.clone());
            continue;
        }
        if changed.is_some_and(|c| !gate.applies_to(c)) {
            out.skipped.push(gate.name.clone());
            continue;
        }
        let outcome = run_gate(runner, gate, worktree, env);
        out.passed = outcome.passed;
        out.results.push((gate.name.clone(), outcome));
    }
    out
}

/// Runs one gate in `worktree`. `env` is added to the inherited environment, then the
/// gate's own `env` over it. Never panics: a misconfigured gate or a command that
/// cannot start is a failed outcome that says why.
pub(crate) fn run_gate(
    runner: &Runner,
    gate: &Gate,
    worktree: &Path,
    env: &[(String, String)],
) -> GateOutcome {
    match gate.timeout() {
        Ok(timeout) => run_gate_limited(runner, gate, worktree, env, timeout, TERM_GRACE),
        Err(e) => GateOutcome::not_started(
            &gate.run,
            format!("gate is misconfigured: {}", error_chain(&e)),
            Instant::now(),
        ),
    }
}

fn run_gate_limited(
    runner: &Runner,
    gate: &Gate,
    worktree: &Path,
    env: &[(String, String)],
    timeout: Duration,
    term_grace: Duration,
) -> GateOutcome {
    let started = Instant::now();
    let figure_re = match gate
        .figure
        .as_ref()
        .map(|f| f.compile("figure"))
        .transpose()
    {
        Ok(re) => re,
        Err(e) => {
            let why = format!("gate is misconfigured: {}", error_chain(&e));
            return GateOutcome::not_started(&gate.run, why, started);
        }
    };
    let envs = env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(gate.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let ran = match execute(runner, &gate.run, worktree, envs, timeout, term_grace) {
        Ok(ran) => ran,
        Err(e) => {
            let why = format!("could not start `sh -c` in {}: {e}", worktree.display());
            return GateOutcome::not_started(&gate.run, why, started);
        }
    };

    let text = String::from_utf8_lossy(&ran.output);
    let mut figure = None;
    let mut figure_problem = None;
    if let (Some(spec), Some(re)) = (&gate.figure, &figure_re) {
        match extract_figure(re, &text) {
            Ok(v) => {
                figure = Some(v);
                figure_problem = spec.violation(v);
            }
            Err(why) => figure_problem = Some(why),
        }
    }
    let exit_code = ran.status.and_then(|s| s.code());
    let failure = if ran.timed_out {
        Some(format!(
            "timed out after {}; its processes were killed",
            human_duration(timeout)
        ))
    } else {
        match ran.status {
            None => Some("its exit status was lost".to_string()),
            Some(s) if s.success() => figure_problem,
            Some(s) => Some(match (s.code(), s.signal()) {
                (Some(code), _) => format!("exited with code {code}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => format!("ended abnormally ({s})"),
            }),
        }
    };
    let mut output_tail = tail(&ran.output, ran.dropped);
    if let Some(why) = &failure {
        if !output_tail.is_empty() {
            output_tail.push('\n');
        }
        output_tail.push_str(&format!("[git-sprint] {why}"));
    }
    GateOutcome {
        passed: failure.is_none(),
        command: gate.run.clone(),
        exit_code: if ran.timed_out { None } else { exit_code },
        timed_out: ran.timed_out,
        figure,
        failure,
        output_tail,
        duration: started.elapsed(),
    }
}

/// A finished (or killed) command.
struct Ran {
    status: Option<ExitStatus>,
    timed_out: bool,
    /// The last [`FIGURE_WINDOW`] or so bytes of output.
    output: Vec<u8>,
    /// Bytes of output dropped from the front.
    dropped: u64,
}

#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    dropped: u64,
}

impl Capture {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
        // Trim in large steps so the copy is amortized.
        if self.buf.len() > 2 * FIGURE_WINDOW {
            let cut = self.buf.len() - FIGURE_WINDOW;
            self.buf.drain(..cut);
            self.dropped += cut as u64;
        }
    }
}

fn execute<'a>(
    runner: &Runner,
    run: &str,
    worktree: &Path,
    envs: impl Iterator<Item = (&'a str, &'a str)>,
    timeout: Duration,
    term_grace: Duration,
) -> std::io::Result<Ran> {
    // One pipe for both streams keeps stdout and stderr interleaved as written.
    let (mut reader, writer) = std::io::pipe()?;
    let mark = gate_mark();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(run)
        .current_dir(worktree)
        .envs(envs)
        .env(reap::MARK_ENV, &mark)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    // Kept until the gate ends: the child uses its ruleset at exec, and its
    // private temp directory goes with it.
    let sandbox = gate_sandbox(runner.confinement.as_ref(), worktree, &mark)?;
    if let Some(s) = &sandbox {
        s.confine(&mut cmd);
        cmd.envs(s.env());
    }
    let mut child = cmd.spawn()?;
    // The Command holds our copies of the write end; the reader sees EOF only once
    // they and every process of the group are gone.
    drop(cmd);
    let pgid = child.id() as i32;
    // Removed when this function returns, whatever way it does.
    let _record = runner.ledger.as_ref().and_then(|l| match l.enter(&mark, child.id(), run) {
        Ok(entry) => Some(entry),
        Err(e) => {
            tracing::warn!(error = %e, dir = %l.dir().display(), "cannot record a running gate");
            None
        }
    });

    let capture = Arc::new(Mutex::new(Capture::default()));
    let (drained_tx, drained_rx) = mpsc::channel::<()>();
    {
        let capture = Arc::clone(&capture);
        thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        if let Ok(mut c) = capture.lock() {
                            c.push(&chunk[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = drained_tx.send(());
        });
    }
    let (exited_tx, exited_rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = exited_tx.send(child.wait());
    });

    let (status, timed_out) = match exited_rx.recv_timeout(timeout) {
        Ok(status) => (status.ok(), false),
        Err(RecvTimeoutError::Timeout) => {
            // SIGTERM first so tools can release locks; SIGKILL whatever is left.
            signal_group(pgid, libc::SIGTERM);
            let status = match exited_rx.recv_timeout(term_grace) {
                Ok(s) => s.ok(),
                Err(_) => {
                    signal_group(pgid, libc::SIGKILL);
                    exited_rx.recv().ok().and_then(Result::ok)
                }
            };
            (status, true)
        }
        Err(RecvTimeoutError::Disconnected) => (None, false),
    };
    // Background children the command left behind die with it, and so do
    // those that left the group.
    signal_group(pgid, libc::SIGKILL);
    reap::terminate(|| reap::marked(&mark), Duration::ZERO);
    let _ = drained_rx.recv_timeout(DRAIN_GRACE);

    if let Some(tmp) = sandbox.as_ref().and_then(Sandbox::private_tmpdir) {
        let _ = std::fs::remove_dir_all(tmp);
    }
    let (output, dropped) = match capture.lock() {
        Ok(mut c) => (std::mem::take(&mut c.buf), c.dropped),
        Err(_) => (Vec::new(), 0),
    };
    Ok(Ran {
        status,
        timed_out,
        output,
        dropped,
    })
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    // pgid is the shell's pid, made a group leader by `process_group(0)`; a group
    // id is not reused while any member lives. ESRCH (group already gone) is fine.
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn exit_code_decides() {
        let ok = run(&gate("ok", "echo fine"));
        assert!(ok.passed, "{ok:?}");
        assert_eq!(ok.exit_code, Some(0));
        assert_eq!(ok.failure, None);
        assert_eq!(ok.output_tail, "fine");

        let bad = run(&gate("bad", "echo oops >&2; exit 3"));
        assert!(!bad.passed);
        assert_eq!(bad.exit_code, Some(3));
        assert!(!bad.timed_out);
        assert_eq!(bad.failure.as_deref(), Some("exited with code 3"));
        assert_eq!(bad.output_tail, "oops\n[git-sprint] exited with code 3");
    }

    #[test]
    fn stdout_and_stderr_interleave_in_order() {
        let o = run(&gate("mix", "echo a; echo b >&2; echo c; echo d >&2"));
        assert_eq!(o.output_tail, "a\nb\nc\nd");
    }

    #[test]
    fn runs_in_the_worktree_with_layered_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("marker"), "here").unwrap();
        let mut g = gate("env", "cat marker; echo \" $A $B\"");
        g.env.insert("B".into(), "gate".into());
        let env = [("A".into(), "caller".into()), ("B".into(), "caller".into())];
        let o = run_gate(&Runner::default(), &g, dir.path(), &env);
        assert_eq!(o.output_tail, "here caller gate");
    }

    #[test]
    fn figure_within_threshold_passes() {
        let g = with_figure(
            gate("coverage", "echo 'TOTAL  120  8  93.33%  10  0  100.00%'"),
            r"TOTAL.*?(\d+\.\d+)%",
            Some(80.0),
            None,
        );
        let o = run(&g);
        assert!(o.passed, "{o:?}");
        assert_eq!(o.figure, Some(93.33));
    }

    #[test]
    fn figure_below_min_or_above_max_fails() {
        let low = run(&with_figure(
            gate("coverage", "echo 'run 1: 99%'; echo 'TOTAL 72.5%'"),
            r"(\d+(?:\.\d+)?)%",
            Some(80.0),
            None,
        ));
        // The last match counts: summaries come last.
        assert_eq!(low.figure, Some(72.5));
        assert!(!low.passed);
        assert_eq!(low.exit_code, Some(0));
        let why = "figure 72.5 is below the minimum 80";
        assert_eq!(low.failure.as_deref(), Some(why));
        assert!(low.output_tail.ends_with(why), "{}", low.output_tail);

        let high = run(&with_figure(
            gate("complexity", "echo 'max complexity: 31'"),
            r"complexity: (\d+)",
            None,
            Some(15.0),
        ));
        assert!(!high.passed);
        assert_eq!(
            high.failure.as_deref(),
            Some("figure 31 is above the maximum 15")
        );
    }

    #[test]
    fn figure_regex_without_match_fails_and_says_so() {
        let o = run(&with_figure(
            gate("coverage", "echo 'no summary here'"),
            r"TOTAL.*?(\d+\.\d+)%",
            Some(80.0),
            None,
        ));
        assert!(!o.passed);
        assert_eq!(o.figure, None);
        assert!(
            o.output_tail.ends_with(
                r"[git-sprint] figure regex 'TOTAL.*?(\d+\.\d+)%' matched nothing in the output"
            ),
            "{}",
            o.output_tail
        );

        let nan = run(&with_figure(
            gate("coverage", "echo 'score=n/a'"),
            r"score=(\S+)",
            Some(80.0),
            None,
        ));
        assert!(!nan.passed);
        assert!(nan
            .failure
            .unwrap()
            .contains("captured 'n/a', which is not a number"));
    }

    #[test]
    fn a_failed_exit_wins_over_the_figure() {
        let o = run(&with_figure(
            gate("coverage", "echo 'TOTAL 95.0%'; exit 1"),
            r"TOTAL.*?(\d+\.\d+)%",
            Some(80.0),
            None,
        ));
        assert!(!o.passed);
        assert_eq!(o.figure, Some(95.0));
        assert_eq!(o.failure.as_deref(), Some("exited with code 1"));
    }

    #[test]
    fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let g = gate("hang", "sleep 1000 & echo child=$!; wait");
        let started = Instant::now();
        let o = run_gate_limited(
            &Runner::default(),
            &g,
            dir.path(),
            &[],
            Duration::from_millis(300),
            Duration::from_millis(200),
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{o:?}");
        assert!(o.timed_out && !o.passed);
        assert_eq!(o.exit_code, None);
        assert_eq!(
            o.failure.as_deref(),
            Some("timed out after 300ms; its processes were killed")
        );
        let pid = child_pid(&o.output_tail);
        assert!(eventually_gone(pid), "sleep {pid} outlived its gate");
    }

    #[test]
    fn timeout_sigkills_what_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        // Ignored signals are inherited, so the child ignores SIGTERM too.
        let g = gate("stubborn", "trap '' TERM; sleep 1000 & echo child=$!; wait");
        let o = run_gate_limited(
            &Runner::default(),
            &g,
            dir.path(),
            &[],
            Duration::from_millis(200),
            Duration::from_millis(100),
        );
        assert!(o.timed_out);
        let pid = child_pid(&o.output_tail);
        assert!(eventually_gone(pid), "sleep {pid} outlived its gate");
    }

    #[test]
    fn background_children_of_a_finished_gate_are_killed() {
        let started = Instant::now();
        // The child holds the output pipe open; the gate must not wait for it.
        let o = run(&gate("leaky", "sleep 1000 & echo child=$!"));
        assert!(o.passed, "{o:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(eventually_gone(child_pid(&o.output_tail)));
    }

    #[test]
    fn setsid_children_of_a_finished_gate_are_killed() {
        // Leaves the gate's process group and session, and outlives the shell.
        let g = gate(
            "escape",
            "setsid sleep 317.25 </dev/null >/dev/null 2>&1 & echo \"child=$!\"",
        );
        let o = run(&g);
        assert!(o.passed, "{}", o.output_tail);
        // `$!` is setsid's pid, which execs sleep (or forks it when it is
        // already a group leader); the mark finds it either way.
        assert!(eventually_gone(child_pid(&o.output_tail)));
        let left: Vec<u32> = crate::worker::procstat::Snapshot::take()
            .unwrap()
            .running()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sleep\x00317.25"))
            })
            .collect();
        assert!(
            left.is_empty(),
            "the setsid sleep outlived its gate: {left:?}"
        );
    }

    #[test]
    fn a_running_gate_is_in_the_ledger_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path().join("gates"));
        // The ledger is the runner's, not the process's: an orchestrator
        // that another test runs meanwhile has its own (regression: this
        // test flaked when the ledger was a process-wide setting).
        // The record is written once the gate's process exists (it names
        // the pid), so the gate may start before it: it waits, boundedly.
        let mut g = gate(
            "look",
            "echo \"mark=$GIT_SPRINT_MARK\"; i=0; while [ ! -e \"$LEDGER/$GIT_SPRINT_MARK\" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; ls \"$LEDGER\"",
        );
        g.env
            .insert("LEDGER".into(), ledger.dir().display().to_string());
        let o = run_gate_limited(
            &Runner::new(Some(ledger.clone()), None),
            &g,
            dir.path(),
            &[],
            super::super::config::DEFAULT_TIMEOUT,
            TERM_GRACE,
        );
        assert!(o.passed, "{}", o.output_tail);
        let mark = o
            .output_tail
            .lines()
            .find_map(|l| l.strip_prefix("mark="))
            .expect("the gate sees its mark")
            .to_owned();
        assert!(mark.starts_with("gate-"), "{mark}");
        assert!(
            o.output_tail.lines().any(|l| l == mark),
            "recorded while running: {}",
            o.output_tail
        );
        assert!(!ledger.dir().join(&mark).exists(), "removed at its end");
    }

    #[test]
    fn stage_stops_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let gates = [
            gate("fmt", "true"),
            gate("clippy", "echo 'warning: unused variable' >&2; exit 101"),
            gate("doc", "touch ran-doc"),
        ];
        let s = run_stage(&Runner::default(), &gates, dir.path(), &[]);
        assert!(!s.passed);
        let names: Vec<&str> = s.results.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["fmt", "clippy"]);
        assert_eq!(s.not_run, ["doc"]);
        assert!(!dir.path().join("ran-doc").exists());
        assert_eq!(s.failed().map(|(n, _)| n), Some("clippy"));

        let fb = s.feedback();
        assert_eq!(
            fb,
            "Gate `clippy` failed: exited with code 101.\n\
             Command: echo 'warning: unused variable' >&2; exit 101\n\
             Passed before it: fmt.\n\
             Not run after it: doc.\n\
             Output (last lines):\n\
             ```text\n\
             warning: unused variable\n\
             [git-sprint] exited with code 101\n\
             ```\n"
        );

        let all = run_stage(&Runner::default(), &gates[..1], dir.path(), &[]);
        assert!(all.passed && all.not_run.is_empty());
        assert_eq!(all.feedback(), "All gates passed: fmt.");
    }

    #[test]
    fn gates_run_only_for_the_paths_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut py = gate("py", "true");
        py.paths = Some(vec!["**/*.py".into(), "pyproject.toml".into()]);
        let mut docs = gate("docs", "true");
        docs.paths = Some(vec!["docs".into()]);
        assert!(py.applies_to(&["src/a/b.py"]));
        assert!(py.applies_to(&["pyproject.toml"]));
        assert!(!py.applies_to(&["src/main.rs"]));
        assert!(docs.applies_to(&["docs/guide/intro.md"]));
        assert!(!docs.applies_to(&["docsite/x.md"]));
        assert!(gate("any", "true").applies_to::<&str>(&[]));

        let s = run_stage_for_diff(
            &Runner::default(),
            &[py, docs],
            dir.path(),
            &[],
            &["docs/x.md"],
        );
        assert_eq!(s.skipped, ["py"]);
        assert_eq!(s.results.len(), 1);
        assert_eq!(
            s.feedback(),
            "All gates passed: docs. (py skipped: the change touches none of its paths.)"
        );
    }

    #[test]
    fn a_gate_that_cannot_start_fails_with_a_reason() {
        let o = run_gate(
            &Runner::default(),
            &gate("x", "true"),
            Path::new("/nonexistent/worktree"),
            &[],
        );
        assert!(!o.passed);
        assert!(o
            .failure
            .unwrap()
            .starts_with("could not start `sh -c` in /nonexistent/worktree"));

        let mut bad = gate("x", "true");
        bad.timeout = Some("soon".into());
        let o = run(&bad);
        assert!(o
            .failure
            .unwrap()
            .contains("gate is misconfigured: gate.timeout: invalid duration 'soon'"));
    }
}
