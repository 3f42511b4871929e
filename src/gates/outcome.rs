//! What gate runs come to: one gate's outcome, a stage's outcome, the record kept
//! with the task, the feedback for the developer's next prompt, and the output tail.

use std::time::{Duration, Instant};

use super::config::Stage;
use crate::state::GateResult;

/// The output tail keeps at most this many lines...
pub(crate) const TAIL_LINES: usize = 60;
/// ...and at most this many bytes: enough to show an error, small enough for a prompt.
pub(crate) const TAIL_BYTES: usize = 8 * 1024;

/// What one gate run came to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GateOutcome {
    pub(crate) passed: bool,
    /// The command line that ran.
    pub(crate) command: String,
    /// `None` when the command was killed by a signal, timed out or never started.
    pub(crate) exit_code: Option<i32>,
    pub(crate) timed_out: bool,
    pub(crate) figure: Option<f64>,
    /// One line on why the gate failed, e.g. `exited with code 101`.
    pub(crate) failure: Option<String>,
    /// The end of stdout and stderr, interleaved as written (at most [`TAIL_LINES`]
    /// lines and [`TAIL_BYTES`] bytes), ending with `[git-sprint] <failure>` on failure.
    pub(crate) output_tail: String,
    pub(crate) duration: Duration,
}

impl GateOutcome {
    /// The record stored with the task. A passing gate's output is left out: it is
    /// noise in the task file, and nobody's next prompt needs it.
    pub(crate) fn to_result(&self, name: &str, stage: Stage, at: &str) -> GateResult {
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
            verdict: None,
            comments: Vec::new(),
            agent: None,
            tokens: 0,
            cost_usd: 0.0,
        }
    }

    pub(super) fn not_started(command: &str, why: String, started: Instant) -> Self {
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
    pub(crate) passed: bool,
    pub(crate) results: Vec<(String, GateOutcome)>,
    /// Gates not run because an earlier one failed (the stage stops there).
    pub(crate) not_run: Vec<String>,
    /// Gates skipped because the diff touched none of their `paths`.
    pub(crate) skipped: Vec<String>,
}

impl StageOutcome {
    /// The gate that stopped the stage, if one did.
    pub(crate) fn failed(&self) -> Option<(&str, &GateOutcome)> {
        self.results
            .iter()
            .find(|(_, o)| !o.passed)
            .map(|(n, o)| (n.as_str(), o))
    }

    /// Records for the task file, one per gate that ran.
    pub(crate) fn to_results(&self, stage: Stage, at: &str) -> Vec<GateResult> {
        self.results
            .iter()
            .map(|(name, o)| o.to_result(name, stage, at))
            .collect()
    }

    /// Which gates were skipped and why, e.g. `docs skipped: the change touches
    /// none of its paths`; `None` when every gate was run (or stopped short).
    pub(crate) fn skipped_note(&self) -> Option<String> {
        match self.skipped.as_slice() {
            [] => None,
            [one] => Some(format!(
                "{one} skipped: the change touches none of its paths"
            )),
            many => Some(format!(
                "{} skipped: the change touches none of their paths",
                many.join(", ")
            )),
        }
    }

    /// A short text for the developer's next prompt: which gate failed, how, and the
    /// end of its output.
    pub(crate) fn feedback(&self) -> String {
        let passed: Vec<&str> = self
            .results
            .iter()
            .filter(|(_, o)| o.passed)
            .map(|(n, _)| n.as_str())
            .collect();
        let skipped = self
            .skipped_note()
            .map(|n| format!(" ({n}.)"))
            .unwrap_or_default();
        let Some((name, o)) = self.failed() else {
            return if passed.is_empty() {
                format!("No gates ran.{skipped}")
            } else {
                format!("All gates passed: {}.{skipped}", passed.join(", "))
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
        if let Some(note) = self.skipped_note() {
            s.push_str(&format!("{note}.\n"));
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

/// The end of `bytes`: at most [`TAIL_LINES`] lines and [`TAIL_BYTES`] bytes, with a
/// marker line when anything was cut.
pub(super) fn tail(bytes: &[u8], dropped: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

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
}
