//! Quality gates: configured shell commands that decide whether a task's work moves on.
//!
//! A gate is `sh -c <run>` in a worktree with a timeout; it passes when it exits 0 and,
//! when it has a `figure` (coverage, mutation score), when the number its regex pulls out
//! of the output lies within `min`/`max`. Gates come in four stages (DESIGN.md "Task
//! life"): `review` (CAB, after the Developer), `test` (after the Tester), `security`
//! (before the merge) and `post_merge` (in the Refinery's worktree). A stage runs its
//! gates in order and stops at the first failure, whose output tail becomes the
//! developer's feedback for the next attempt.
//!
//! Each gate runs in its own process group, and the whole group is killed when the
//! gate ends or times out, so a test runner's stray children never outlive it or hold
//! its output pipe open. What left the group (`setsid`) is found by the mark every
//! process of the run inherits (`GIT_SPRINT_MARK`, see `worker/reap.rs`) and killed
//! too; while a gate runs, the orchestrator keeps a record of it in its ledger
//! ([`keep_ledger`]), so gates orphaned by a killed orchestrator die at the next
//! start. The timeout is a blocking wait on a channel, not a poll.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::parse_duration;
use crate::state::GateResult;
use crate::worker::reap::{self, Ledger};

/// The timeout of a gate that names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The output tail keeps at most this many lines...
pub const TAIL_LINES: usize = 60;
/// ...and at most this many bytes: enough to show an error, small enough for a prompt.
pub const TAIL_BYTES: usize = 8 * 1024;
/// Output kept for the figure regex; summaries come last, so older output may go.
const FIGURE_WINDOW: usize = 1024 * 1024;
/// How long a timed-out gate gets to exit on SIGTERM before its group is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the output pipe to close once the group is dead; only a
/// process that left the group (`setsid`) can hold it open longer.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Where running gates are recorded (the orchestrator's
/// `<common>/sprint/gates/`); none outside an orchestrator.
static LEDGER: Mutex<Option<Ledger>> = Mutex::new(None);

/// Records every gate this process runs from now on in `ledger` (`None`
/// stops recording). The orchestrator calls it once it holds its lock.
pub fn keep_ledger(ledger: Option<Ledger>) {
    *LEDGER.lock().unwrap_or_else(|e| e.into_inner()) = ledger;
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

/// Ready gate sets, by toolchain: YAML with a top-level `gates:` key, commented for
/// a user to copy into the project configuration.
pub const TEMPLATES: [(&str, &str); 3] = [
    ("rust", include_str!("../templates/gates/rust.yaml")),
    ("python", include_str!("../templates/gates/python.yaml")),
    ("node", include_str!("../templates/gates/node.yaml")),
];

/// The template for a toolchain (`rust`, `python`, `node`).
pub fn template(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// When a stage's gates run (DESIGN.md "Task life").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// CAB, in the developer's worktree, after the developer ends.
    Review,
    /// After the Tester agent, in the same worktree.
    Test,
    /// Before the merge.
    Security,
    /// In the refinery's worktree after each merge.
    PostMerge,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::Review,
        Stage::Test,
        Stage::Security,
        Stage::PostMerge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Review => "review",
            Stage::Test => "test",
            Stage::Security => "security",
            Stage::PostMerge => "post_merge",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `gates:` section of the project configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review: Vec<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security: Vec<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_merge: Vec<Gate>,
}

/// One configured gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Unique within its stage; shown in feedback and stored with the task.
    pub name: String,
    /// A shell command line, run with `sh -c` in the worktree.
    pub run: String,
    /// A duration such as `90s`, `10m` or `1h30m` (a bare number is seconds); 10m if unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub timeout: Option<String>,
    /// A number to extract from the output and hold to a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figure: Option<Figure>,
    /// Extra environment for the command; these win over the caller's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Run only when the diff touches one of these (globs; `*` stays inside a
    /// directory, `**` crosses them; a plain path also covers what is under it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

/// A number pulled out of a gate's output, e.g. a coverage percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    /// A regex with exactly one capture group, the number; the last match counts.
    pub regex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Accepts `timeout: 10m` and `timeout: 600` alike.
fn duration_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Secs(u64),
        Text(String),
    }
    Ok(Some(match Text::deserialize(d)? {
        Text::Secs(n) => n.to_string(),
        Text::Text(s) => s,
    }))
}

/// Invalid gate configuration; the key is the YAML path, e.g. `gates.test[0].figure.regex`.
#[derive(Debug, thiserror::Error)]
pub enum GateConfigError {
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("{key}: invalid regex")]
    Regex {
        key: String,
        #[source]
        source: regex::Error,
    },
    #[error("{key}: invalid glob")]
    Glob {
        key: String,
        #[source]
        source: globset::Error,
    },
}

impl GateConfigError {
    /// The YAML path of the offending key.
    pub fn key(&self) -> &str {
        match self {
            GateConfigError::Invalid { key, .. }
            | GateConfigError::Regex { key, .. }
            | GateConfigError::Glob { key, .. } => key,
        }
    }

    fn invalid(key: String, message: impl Into<String>) -> Self {
        GateConfigError::Invalid {
            key,
            message: message.into(),
        }
    }
}

impl GateSet {
    pub fn stage(&self, stage: Stage) -> &[Gate] {
        match stage {
            Stage::Review => &self.review,
            Stage::Test => &self.test,
            Stage::Security => &self.security,
            Stage::PostMerge => &self.post_merge,
        }
    }

    /// Checks every gate; keys in errors start with `gates.`.
    pub fn validate(&self) -> Result<(), GateConfigError> {
        self.validate_under("gates")
    }

    /// Checks every gate, naming keys under `prefix` (e.g. `sprint.gates`).
    pub fn validate_under(&self, prefix: &str) -> Result<(), GateConfigError> {
        for stage in Stage::ALL {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, gate) in self.stage(stage).iter().enumerate() {
                let key = format!("{prefix}.{stage}[{i}]");
                gate.validate(&key)?;
                if let Some(first) = seen.insert(gate.name.as_str(), i) {
                    return Err(GateConfigError::invalid(
                        format!("{key}.name"),
                        format!(
                            "duplicate gate name '{}' (also {prefix}.{stage}[{first}])",
                            gate.name
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Gate {
    /// Checks this gate; `key` is its YAML path, e.g. `gates.review[0]`.
    pub fn validate(&self, key: &str) -> Result<(), GateConfigError> {
        if self.name.trim().is_empty() {
            return Err(GateConfigError::invalid(
                format!("{key}.name"),
                "must not be empty",
            ));
        }
        if self.run.trim().is_empty() {
            return Err(GateConfigError::invalid(
                format!("{key}.run"),
                "must not be empty",
            ));
        }
        self.timeout_in(key)?;
        if let Some(figure) = &self.figure {
            figure.compile(&format!("{key}.figure"))?;
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(GateConfigError::invalid(
                    format!("{key}.env.{name}"),
                    "not a valid environment variable name",
                ));
            }
        }
        self.path_matcher(key)?;
        Ok(())
    }

    /// The gate's timeout: its `timeout`, or [`DEFAULT_TIMEOUT`].
    pub fn timeout(&self) -> Result<Duration, GateConfigError> {
        self.timeout_in("gate")
    }

    fn timeout_in(&self, key: &str) -> Result<Duration, GateConfigError> {
        let Some(text) = &self.timeout else {
            return Ok(DEFAULT_TIMEOUT);
        };
        let key = || format!("{key}.timeout");
        let d = parse_duration(text).map_err(|m| GateConfigError::invalid(key(), m))?;
        if d.is_zero() {
            return Err(GateConfigError::invalid(key(), "must be longer than 0s"));
        }
        Ok(d)
    }

    fn path_matcher(&self, key: &str) -> Result<Option<GlobSet>, GateConfigError> {
        let Some(paths) = &self.paths else {
            return Ok(None);
        };
        if paths.is_empty() {
            return Err(GateConfigError::invalid(
                format!("{key}.paths"),
                "an empty list would never run the gate; name a glob or remove the key",
            ));
        }
        let mut set = GlobSetBuilder::new();
        for (j, p) in paths.iter().enumerate() {
            let p = p.trim_end_matches('/');
            let glob = |pat: &str| {
                GlobBuilder::new(pat)
                    .literal_separator(true)
                    .build()
                    .map_err(|source| GateConfigError::Glob {
                        key: format!("{key}.paths[{j}]"),
                        source,
                    })
            };
            set.add(glob(p)?);
            // A plain path is a file or a directory: cover what is under it too.
            if !p.contains(['*', '?', '[', '{']) {
                set.add(glob(&format!("{p}/**"))?);
            }
        }
        set.build()
            .map(Some)
            .map_err(|source| GateConfigError::Glob {
                key: format!("{key}.paths"),
                source,
            })
    }

    /// Whether the gate should run for a diff that touched `changed` (repo-relative
    /// paths). A gate without `paths` always runs; so does one whose globs are invalid,
    /// since skipping a gate by mistake is worse than running it.
    pub fn applies_to<S: AsRef<str>>(&self, changed: &[S]) -> bool {
        match self.path_matcher("gate") {
            Ok(Some(set)) => changed.iter().any(|p| set.is_match(p.as_ref())),
            Ok(None) | Err(_) => true,
        }
    }
}

impl Figure {
    fn compile(&self, key: &str) -> Result<Regex, GateConfigError> {
        let re = Regex::new(&self.regex).map_err(|source| GateConfigError::Regex {
            key: format!("{key}.regex"),
            source,
        })?;
        let groups = re.captures_len() - 1;
        if groups != 1 {
            return Err(GateConfigError::invalid(
                format!("{key}.regex"),
                format!("needs exactly one capture group, around the number; found {groups}"),
            ));
        }
        for (name, bound) in [("min", self.min), ("max", self.max)] {
            if bound.is_some_and(|b| !b.is_finite()) {
                return Err(GateConfigError::invalid(
                    format!("{key}.{name}"),
                    "must be a finite number",
                ));
            }
        }
        if let (Some(min), Some(max)) = (self.min, self.max) {
            if min > max {
                return Err(GateConfigError::invalid(
                    key.to_string(),
                    format!("min ({min}) is greater than max ({max})"),
                ));
            }
        }
        Ok(re)
    }

    /// Why `value` is out of bounds, if it is.
    fn violation(&self, value: f64) -> Option<String> {
        if let Some(min) = self.min.filter(|m| value < *m) {
            return Some(format!("figure {value} is below the minimum {min}"));
        }
        if let Some(max) = self.max.filter(|m| value > *m) {
            return Some(format!("figure {value} is above the maximum {max}"));
        }
        None
    }
}

/// What one gate run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct GateOutcome {
    pub passed: bool,
    /// The command line that ran.
    pub command: String,
    /// `None` when the command was killed by a signal, timed out or never started.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub figure: Option<f64>,
    /// One line on why the gate failed, e.g. `exited with code 101`.
    pub failure: Option<String>,
    /// The end of stdout and stderr, interleaved as written (at most [`TAIL_LINES`]
    /// lines and [`TAIL_BYTES`] bytes), ending with `[git-sprint] <failure>` on failure.
    pub output_tail: String,
    pub duration: Duration,
}

impl GateOutcome {
    /// The record stored with the task. A passing gate's output is left out: it is
    /// noise in the task file, and nobody's next prompt needs it.
    pub fn to_result(&self, name: &str, stage: Stage, at: &str) -> GateResult {
        GateResult {
            gate: name.to_string(),
            stage: stage.as_str().to_string(),
            passed: self.passed,
            figure: self.figure,
            output_tail: if self.passed {
                String::new()
            } else {
                self.output_tail.clone()
            },
            at: at.to_string(),
            exit_code: self.exit_code,
            timed_out: self.timed_out,
            duration_ms: u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }

    fn not_started(command: &str, why: String, started: Instant) -> Self {
        GateOutcome {
            passed: false,
            command: command.to_string(),
            exit_code: None,
            timed_out: false,
            figure: None,
            output_tail: format!("[git-sprint] {why}"),
            failure: Some(why),
            duration: started.elapsed(),
        }
    }
}

/// What a stage's gates came to, in the order they ran.
#[derive(Debug, Clone, PartialEq)]
pub struct StageOutcome {
    pub passed: bool,
    pub results: Vec<(String, GateOutcome)>,
    /// Gates not run because an earlier one failed (the stage stops there).
    pub not_run: Vec<String>,
    /// Gates skipped because the diff touched none of their `paths`.
    pub skipped: Vec<String>,
}

impl StageOutcome {
    /// The gate that stopped the stage, if one did.
    pub fn failed(&self) -> Option<(&str, &GateOutcome)> {
        self.results
            .iter()
            .find(|(_, o)| !o.passed)
            .map(|(n, o)| (n.as_str(), o))
    }

    /// Records for the task file, one per gate that ran.
    pub fn to_results(&self, stage: Stage, at: &str) -> Vec<GateResult> {
        self.results
            .iter()
            .map(|(name, o)| o.to_result(name, stage, at))
            .collect()
    }

    /// A short text for the developer's next prompt: which gate failed, how, and the
    /// end of its output.
    pub fn feedback(&self) -> String {
        let passed: Vec<&str> = self
            .results
            .iter()
            .filter(|(_, o)| o.passed)
            .map(|(n, _)| n.as_str())
            .collect();
        let Some((name, o)) = self.failed() else {
            return if passed.is_empty() {
                "No gates ran.".to_string()
            } else {
                format!("All gates passed: {}.", passed.join(", "))
            };
        };
        let why = o.failure.as_deref().unwrap_or("failed");
        let mut s = format!("Gate `{name}` failed: {why}.\nCommand: {}\n", o.command);
        if let Some(fig) = o.figure {
            s.push_str(&format!("Figure: {fig}\n"));
        }
        if !passed.is_empty() {
            s.push_str(&format!("Passed before it: {}.\n", passed.join(", ")));
        }
        if !self.not_run.is_empty() {
            s.push_str(&format!("Not run after it: {}.\n", self.not_run.join(", ")));
        }
        let fence = "`".repeat(longest_backtick_run(&o.output_tail).max(2) + 1);
        s.push_str(&format!(
            "Output (last lines):\n{fence}text\n{}\n{fence}\n",
            o.output_tail
        ));
        s
    }
}

fn longest_backtick_run(s: &str) -> usize {
    s.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Runs the gates in order and stops at the first failure.
pub fn run_stage(gates: &[Gate], worktree: &Path, env: &[(String, String)]) -> StageOutcome {
    run_stage_inner(gates, worktree, env, None)
}

/// Like [`run_stage`], but skips gates whose `paths` the diff (`changed`, repo-relative
/// paths) does not touch.
pub fn run_stage_for_diff<S: AsRef<str>>(
    gates: &[Gate],
    worktree: &Path,
    env: &[(String, String)],
    changed: &[S],
) -> StageOutcome {
    let changed: Vec<&str> = changed.iter().map(AsRef::as_ref).collect();
    run_stage_inner(gates, worktree, env, Some(&changed))
}

fn run_stage_inner(
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
        if !out.passed {
            out.not_run.push(gate.name.clone());
            continue;
        }
        if changed.is_some_and(|c| !gate.applies_to(c)) {
            out.skipped.push(gate.name.clone());
            continue;
        }
        let outcome = run_gate(gate, worktree, env);
        out.passed = outcome.passed;
        out.results.push((gate.name.clone(), outcome));
    }
    out
}

/// Runs one gate in `worktree`. `env` is added to the inherited environment, then the
/// gate's own `env` over it. Never panics: a misconfigured gate or a command that
/// cannot start is a failed outcome that says why.
pub fn run_gate(gate: &Gate, worktree: &Path, env: &[(String, String)]) -> GateOutcome {
    match gate.timeout() {
        Ok(timeout) => run_gate_limited(gate, worktree, env, timeout, TERM_GRACE),
        Err(e) => GateOutcome::not_started(
            &gate.run,
            format!("gate is misconfigured: {}", error_chain(&e)),
            Instant::now(),
        ),
    }
}

fn run_gate_limited(
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
    let ran = match execute(&gate.run, worktree, envs, timeout, term_grace) {
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

/// The last match's capture, as a number.
fn extract_figure(re: &Regex, text: &str) -> Result<f64, String> {
    let Some(caps) = re.captures_iter(text).last() else {
        return Err(format!(
            "figure regex '{}' matched nothing in the output",
            re.as_str()
        ));
    };
    let raw = caps.get(1).map_or("", |m| m.as_str()).trim();
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            format!(
                "figure regex '{}' captured '{raw}', which is not a number",
                re.as_str()
            )
        })
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
    let mut child = cmd.spawn()?;
    // The Command holds our copies of the write end; the reader sees EOF only once
    // they and every process of the group are gone.
    drop(cmd);
    let pgid = child.id() as i32;
    let ledger = LEDGER.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Removed when this function returns, whatever way it does.
    let _record = ledger.and_then(|l| match l.enter(&mark, child.id(), run) {
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

/// The end of `bytes`: at most [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes, with a
/// marker line when anything was cut.
fn tail(bytes: &[u8], dropped: u64) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let mut slice = &bytes[start..];
    if start > 0 {
        // Start on a whole line (and so on a whole UTF-8 character) when one is near.
        if let Some(nl) = slice.iter().position(|&b| b == b'\n') {
            if nl + 1 < slice.len() {
                slice = &slice[nl + 1..];
            }
        }
    }
    let text = String::from_utf8_lossy(slice);
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let skip = lines.len().saturating_sub(TAIL_LINES);
    let kept = lines[skip..].join("\n");
    if skip > 0 || start > 0 || dropped > 0 {
        format!("[git-sprint] … earlier output omitted\n{kept}")
    } else {
        kept
    }
}

/// `750ms`, `45s`, `10m`, `1h30m`.
fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
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
    use super::*;

    fn gate(name: &str, run: &str) -> Gate {
        Gate {
            name: name.to_string(),
            run: run.to_string(),
            timeout: None,
            figure: None,
            env: BTreeMap::new(),
            paths: None,
        }
    }

    fn with_figure(mut g: Gate, regex: &str, min: Option<f64>, max: Option<f64>) -> Gate {
        g.figure = Some(Figure {
            regex: regex.to_string(),
            min,
            max,
        });
        g
    }

    fn run(g: &Gate) -> GateOutcome {
        let dir = tempfile::tempdir().unwrap();
        run_gate(g, dir.path(), &[])
    }

    /// The pid a gate printed as `child=<pid>`.
    fn child_pid(tail: &str) -> i32 {
        tail.lines()
            .find_map(|l| l.strip_prefix("child="))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("no child pid in {tail:?}"))
    }

    /// Gone, or a zombie waiting for init to reap it: either way no longer running.
    fn is_gone(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        }
    }

    fn eventually_gone(pid: i32) -> bool {
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
        let o = run_gate(&g, dir.path(), &env);
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
        // Other tests' gates may be recorded here meanwhile: only this one's
        // record (named by its mark) is checked.
        keep_ledger(Some(ledger.clone()));
        let mut g = gate("look", "echo \"mark=$GIT_SPRINT_MARK\"; ls \"$LEDGER\"");
        g.env
            .insert("LEDGER".into(), ledger.dir().display().to_string());
        let o = run(&g);
        keep_ledger(None);
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
    fn output_tail_keeps_the_end() {
        let o = run(&gate(
            "long",
            "i=1; while [ $i -le 500 ]; do echo line $i; i=$((i+1)); done; exit 1",
        ));
        let lines: Vec<&str> = o.output_tail.lines().collect();
        assert_eq!(lines[0], "[git-sprint] … earlier output omitted");
        assert_eq!(lines[1], "line 441");
        assert_eq!(lines[TAIL_LINES], "line 500");
        assert_eq!(lines.last(), Some(&"[git-sprint] exited with code 1"));

        // Long lines: the byte cap applies, and the tail starts on a whole line.
        let mut bytes = Vec::new();
        for i in 0..40 {
            bytes.extend_from_slice(format!("{i:04} {}\n", "é".repeat(300)).as_bytes());
        }
        let t = tail(&bytes, 0);
        assert!(t.len() <= TAIL_BYTES + 64, "{}", t.len());
        assert!(t.ends_with(&format!("0039 {}", "é".repeat(300))));
        let first_kept = t.lines().nth(1).unwrap();
        assert!(first_kept.len() == 605 && !first_kept.contains('\u{FFFD}'));

        assert_eq!(tail(b"", 0), "");
        assert_eq!(tail(b"x\n", 5), "[git-sprint] … earlier output omitted\nx");
    }

    #[test]
    fn stage_stops_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let gates = [
            gate("fmt", "true"),
            gate("clippy", "echo 'warning: unused variable' >&2; exit 101"),
            gate("doc", "touch ran-doc"),
        ];
        let s = run_stage(&gates, dir.path(), &[]);
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

        let all = run_stage(&gates[..1], dir.path(), &[]);
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

        let s = run_stage_for_diff(&[py, docs], dir.path(), &[], &["docs/x.md"]);
        assert_eq!(s.skipped, ["py"]);
        assert_eq!(s.results.len(), 1);
    }

    #[test]
    fn a_gate_that_cannot_start_fails_with_a_reason() {
        let o = run_gate(&gate("x", "true"), Path::new("/nonexistent/worktree"), &[]);
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

    #[test]
    fn results_for_the_task_file() {
        let o = run(&gate("clippy", "echo nope; exit 2"));
        let r = o.to_result("clippy", Stage::Review, "2026-11-22T05:00:00Z");
        assert_eq!(r.gate, "clippy");
        assert_eq!(r.stage, "review");
        assert_eq!(r.exit_code, Some(2));
        assert_eq!(r.output_tail, "nope\n[git-sprint] exited with code 2");
        let yaml = serde_yaml::to_string(&r).unwrap();
        assert_eq!(serde_yaml::from_str::<GateResult>(&yaml).unwrap(), r);

        let ok = run(&gate("fmt", "echo all good"));
        let r = ok.to_result("fmt", Stage::PostMerge, "t");
        assert!(r.passed && r.output_tail.is_empty());
        assert_eq!(r.stage, "post_merge");

        // Files written before these fields existed still read.
        let old: GateResult =
            serde_yaml::from_str("gate: fmt\nstage: review\npassed: true\nat: t\n").unwrap();
        assert_eq!(
            (old.exit_code, old.timed_out, old.duration_ms),
            (None, false, 0)
        );
    }

    fn parse(yaml: &str) -> GateSet {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn key_of(yaml: &str) -> String {
        parse(yaml).validate().unwrap_err().key().to_string()
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            (
                "test: [{name: c, run: x, figure: {regex: '(', min: 80}}]",
                "gates.test[0].figure.regex",
            ),
            (
                "test: [{name: a, run: x}, {name: c, run: x, figure: {regex: 'TOTAL (\\d+) (\\d+)'}}]",
                "gates.test[1].figure.regex",
            ),
            (
                "test: [{name: c, run: x, figure: {regex: 'TOTAL \\d+'}}]",
                "gates.test[0].figure.regex",
            ),
            (
                "test: [{name: c, run: x, figure: {regex: '(\\d+)', min: 90, max: 80}}]",
                "gates.test[0].figure",
            ),
            (
                "review: [{name: fmt, run: x}, {name: fmt, run: y}]",
                "gates.review[1].name",
            ),
            ("security: [{name: a, run: x, timeout: soon}]", "gates.security[0].timeout"),
            ("security: [{name: a, run: x, timeout: 0s}]", "gates.security[0].timeout"),
            ("post_merge: [{name: '', run: x}]", "gates.post_merge[0].name"),
            ("post_merge: [{name: t, run: '  '}]", "gates.post_merge[0].run"),
            ("review: [{name: t, run: x, paths: []}]", "gates.review[0].paths"),
            ("review: [{name: t, run: x, paths: ['a', 'src/[']}]", "gates.review[0].paths[1]"),
            ("review: [{name: t, run: x, env: {'A=B': c}}]", "gates.review[0].env.A=B"),
        ];
        for (yaml, key) in cases {
            assert_eq!(key_of(yaml), key, "{yaml}");
        }

        let err = parse("test: [{name: c, run: x, figure: {regex: 'a(b)(c)'}}]")
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "gates.test[0].figure.regex: needs exactly one capture group, around the number; found 2"
        );
        let err = parse("review: [{name: fmt, run: x}, {name: fmt, run: y}]")
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "gates.review[1].name: duplicate gate name 'fmt' (also gates.review[0])"
        );
        // The same name in two stages is fine.
        parse("review: [{name: t, run: x}]\ntest: [{name: t, run: x}]")
            .validate()
            .unwrap();
    }

    #[test]
    fn unknown_keys_and_numeric_timeouts() {
        let err = serde_yaml::from_str::<GateSet>("review: [{name: a, run: x, tiemout: 5m}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `tiemout`"), "{err}");
        let err = serde_yaml::from_str::<GateSet>("reveiw: []")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `reveiw`"), "{err}");

        let set = parse("review: [{name: a, run: x, timeout: 90}]");
        assert_eq!(set.review[0].timeout().unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn templates_parse_and_validate() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Config {
            gates: GateSet,
        }
        for (name, text) in TEMPLATES {
            let cfg: Config = serde_yaml::from_str(text)
                .unwrap_or_else(|e| panic!("templates/gates/{name}.yaml: {e}"));
            cfg.gates
                .validate()
                .unwrap_or_else(|e| panic!("templates/gates/{name}.yaml: {}", error_chain(&e)));
            for stage in Stage::ALL {
                assert!(
                    !cfg.gates.stage(stage).is_empty(),
                    "{name}: no {stage} gates"
                );
            }
            let coverage = cfg
                .gates
                .test
                .iter()
                .find(|g| g.name == "coverage")
                .unwrap();
            assert_eq!(coverage.figure.as_ref().and_then(|f| f.min), Some(80.0));
            assert!(template(name).is_some());
        }
        assert!(template("cobol").is_none());
    }

    #[test]
    fn coverage_regexes_match_real_tool_output() {
        let check = |name: &str, sample: &str, want: f64| {
            let cfg: serde_yaml::Value = serde_yaml::from_str(template(name).unwrap()).unwrap();
            let set: GateSet = serde_yaml::from_value(cfg["gates"].clone()).unwrap();
            let fig = set.test.iter().find_map(|g| g.figure.clone()).unwrap();
            let re = fig.compile("t").unwrap();
            assert_eq!(extract_figure(&re, sample), Ok(want), "{name}");
        };
        check(
            "rust",
            "Filename  Regions  Missed Regions  Cover\n---\nsrc/lib.rs  100  12  88.00%  10  1  90.00%\nTOTAL  200  30  85.00%  20  2  90.00%  400  40  90.00%\n",
            85.0,
        );
        check(
            "python",
            "Name    Stmts   Miss  Cover\n---\napp.py     40      4    90%\nTOTAL      80     12    85%\n",
            85.0,
        );
        check(
            "node",
            "=============================== Coverage summary ===============================\nStatements   : 86.2% ( 100/116 )\nBranches     : 75% ( 30/40 )\nFunctions    : 90% ( 18/20 )\nLines        : 84.61% ( 99/117 )\n",
            84.61,
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_secs(600)), "10m");
        assert_eq!(human_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human_duration(Duration::from_secs(61)), "1m1s");
    }
}
