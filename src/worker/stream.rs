//! Reading an agent CLI's output: a readable transcript for the pane and the
//! log, and at the end what the run cost and why it failed.
//!
//! The CLIs that have a streaming JSON mode run in it (Claude Code
//! `--output-format stream-json`, Codex `exec --json`, Gemini CLI
//! `--output-format stream-json`, OpenCode `run --format json`); the others
//! print text. A [`StreamReader`] is fed one line at a time, as the wrapper
//! reads it, and returns the lines to show: assistant text, tool calls,
//! edited files, the final message — never raw JSON, and never terminal
//! escape sequences, whatever the agent (untrusted) printed. When the agent
//! has exited, [`StreamReader::finish`] turns what it saw into an
//! [`Outcome`]: the run's [`Usage`] (the CLI's own cost where it reports one,
//! else the config's price table) and, for a failed run, a [`Cause`] with the
//! CLI's own error line — from the structured result where there is one,
//! else from the text the CLI printed last.
//!
//! It is pure (no I/O, no clock) so it is tested with real captured output
//! (`fixtures/streams/`), and the wrapper owns the pipes and the timing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Price;
use crate::fleet::terminal_text::TerminalText;
use crate::state::{Cause, Usage};

/// How an agent CLI writes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OutputFormat {
    /// Plain text (Aider, shell commands, anything without a JSON mode).
    #[default]
    Text,
    /// Claude Code `-p --output-format stream-json --verbose`.
    Claude,
    /// Codex `exec --json`.
    Codex,
    /// Gemini CLI `--output-format stream-json`.
    Gemini,
    /// OpenCode `run --format json`.
    Opencode,
}

impl OutputFormat {
    pub(crate) fn is_text(&self) -> bool {
        *self == OutputFormat::Text
    }

    /// The name in configuration and in the sprint state (`text`, `claude`, …).
    pub(crate) fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Claude => "claude",
            OutputFormat::Codex => "codex",
            OutputFormat::Gemini => "gemini",
            OutputFormat::Opencode => "opencode",
        }
    }

    fn label(self) -> &'static str {
        match self {
            OutputFormat::Text => "agent",
            OutputFormat::Claude => "claude",
            OutputFormat::Codex => "codex",
            OutputFormat::Gemini => "gemini",
            OutputFormat::Opencode => "opencode",
        }
    }
}

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Stdout,
    Stderr,
}

/// How the agent process ended, as the wrapper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// The exit code, or `128 + signal`.
    pub(crate) status: i32,
    pub(crate) signal: Option<i32>,
    /// The wrapper ended it (a kill): the one who asked says why.
    pub(crate) killed: bool,
    /// Wall-clock time of the run, used when the CLI reports none.
    pub(crate) elapsed_ms: u64,
}

/// What a run came to.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) usage: Usage,
    /// Why it failed; `None` for a run that succeeded (or was killed).
    pub(crate) cause: Option<Cause>,
    /// The CLI's own error line for `cause`.
    pub(crate) error: Option<String>,
}

/// Lines of plain text kept for classifying a failure.
const TAIL_LINES: usize = 40;
/// A transcript line longer than this is cut.
const MAX_SHOWN: usize = 400;
/// Lines of a tool's output shown under the call.
const TOOL_OUTPUT_LINES: usize = 3;

/// Reads one agent run's output; see the module docs.
#[derive(Debug)]
pub(crate) struct StreamReader {
    format: OutputFormat,
    usage: Usage,
    /// Usage per message id as the messages went by (Claude), for a run
    /// that ends before its result event.
    partial: BTreeMap<String, Usage>,
    saw_result: bool,
    model: Option<String>,
    /// Cause and line from the structured stream.
    failure: Option<(Option<Cause>, String)>,
    /// A retried API error (Claude `api_retry`), in case nothing better comes.
    retried: Option<(Cause, String)>,
    /// The last plain-text lines (stderr, non-JSON stdout), newest last.
    tail: VecDeque<String>,
    /// Gemini streams assistant text in pieces: the unfinished line.
    pending: String,
    /// The agent's final message (Claude's result, Codex's last agent
    /// message, or a plain-text agent's output), bounded.
    final_message: String,
}

/// A final message is kept up to this many bytes (its end, for plain text).
const FINAL_MESSAGE_BYTES: usize = 64 * 1024;

impl StreamReader {
    pub(crate) fn new(format: OutputFormat) -> StreamReader {
        StreamReader {
            format,
            usage: Usage::default(),
            partial: BTreeMap::new(),
            saw_result: false,
            model: None,
            failure: None,
            retried: None,
            tail: VecDeque::new(),
            pending: String::new(),
            final_message: String::new(),
        }
    }

    /// Takes one line of output (without its line end) and returns the
    /// transcript lines it makes, if any.
    pub(crate) fn feed(&mut self, source: Source, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let trimmed = line.trim_end_matches(['\r', '\n']);
        let event = (source == Source::Stdout && !self.format.is_text())
            .then(|| trimmed.trim_start())
            .filter(|t| t.starts_with('{'))
            .map(serde_json::from_str::<Value>);
        match event {
            Some(Ok(v)) if v.get("type").is_some_and(Value::is_string) => {
                match self.format {
                    OutputFormat::Claude => self.claude(&v, &mut out),
                    OutputFormat::Codex => self.codex(&v, &mut out),
                    OutputFormat::Gemini => self.gemini(&v, &mut out),
                    OutputFormat::Opencode => self.opencode(&v, &mut out),
                    OutputFormat::Text => {}
                }
                return out.into_iter().map(|l| shown(&l)).collect();
            }
            Some(Ok(_)) | Some(Err(_)) => {
                // JSON this reader does not know, or an event cut short:
                // never shown raw.
                return vec![format!(
                    "{}: (an output line of {} bytes that is not an event)",
                    self.format.label(),
                    trimmed.len()
                )];
            }
            None => {}
        }
        let text = strip_terminal(trimmed);
        if source == Source::Stdout && self.format.is_text() {
            self.final_message.push_str(&text);
            self.final_message.push('\n');
            if self.final_message.len() > FINAL_MESSAGE_BYTES {
                let mut cut = self.final_message.len() - FINAL_MESSAGE_BYTES;
                while !self.final_message.is_char_boundary(cut) {
                    cut += 1;
                }
                self.final_message.drain(..cut);
            }
        }
        if text.trim().is_empty() {
            return Vec::new();
        }
        self.tail.push_back(text.clone());
        if self.tail.len() > TAIL_LINES {
            self.tail.pop_front();
        }
        vec![shown(&text)]
    }

    /// The agent's final message so far: where a Reviewer that cannot
    /// write files leaves its verdict.
    pub(crate) fn final_message(&self) -> &str {
        &self.final_message
    }

    /// Lines still held back (an unfinished line of streamed text).
    pub(crate) fn flush(&mut self) -> Vec<String> {
        let rest = std::mem::take(&mut self.pending);
        text_lines(&rest).into_iter().map(|l| shown(&l)).collect()
    }

    /// What the run came to, once the agent has exited. `model` names the
    /// model the agent was started with, for a CLI that does not say.
    pub(crate) fn finish(
        mut self,
        exit: &Exit,
        prices: &BTreeMap<String, Price>,
        model: Option<&str>,
    ) -> Outcome {
        if !self.saw_result && !self.partial.is_empty() {
            for u in self.partial.values() {
                add_usage(&mut self.usage, u);
            }
        }
        let mut usage = self.usage;
        if usage.model.is_none() {
            usage.model = self.model.clone().or_else(|| model.map(str::to_owned));
        }
        if usage.duration_ms == 0 {
            usage.duration_ms = exit.elapsed_ms;
        }
        // A figure that is no amount of money is no figure.
        usage.cost_usd = usage.cost_usd.filter(|c| c.is_finite() && *c >= 0.0);
        if usage.cost_usd.is_none() && usage.tokens() > 0 {
            usage.cost_usd = usage
                .model
                .as_deref()
                .and_then(|m| price_for(prices, m))
                .map(|p| cost(&usage, p));
        }
        // The structured stream's word first; for a failed run with none,
        // the text it printed last, a retried API error, or a crash.
        let failed = (exit.status != 0 || exit.signal.is_some()) && !exit.killed;
        let guess = classify_tail(&self.tail).or(self.retried.clone());
        let (cause, error) = match self.failure.take() {
            Some((cause, line)) => match cause.or_else(|| classify(&line)) {
                Some(cause) => (Some(cause), Some(line)),
                None if failed => match guess {
                    Some((cause, tail)) => (Some(cause), Some(tail)),
                    None => (Some(Cause::Crash), Some(line)),
                },
                None => (None, Some(line)),
            },
            None if failed => match guess {
                Some((cause, line)) => (Some(cause), Some(line)),
                None => {
                    let last = self
                        .tail
                        .back()
                        .cloned()
                        .unwrap_or_else(|| match exit.signal {
                            Some(s) => format!("ended by signal {s}"),
                            None => format!("exited with status {}", exit.status),
                        });
                    (Some(Cause::Crash), Some(last))
                }
            },
            None => (None, None),
        };
        Outcome {
            usage,
            cause,
            error,
        }
    }

    fn fail(&mut self, cause: Option<Cause>, line: &str) {
        // The first structured failure is the cause; what follows is its echo.
        if self.failure.is_none() {
            self.failure = Some((cause, strip_terminal(line).trim().to_owned()));
        }
    }

    // -- Claude Code stream-json ------------------------------------------

    fn claude(&mut self, v: &Value, out: &mut Vec<String>) {
        match str_of(v, "type") {
            "system" => match str_of(v, "subtype") {
                "init" => {
                    let model = str_of(v, "model");
                    out.push(format!("claude: session started (model {model})"));
                }
                "api_retry" => {
                    let status = v.get("error_status").and_then(Value::as_u64);
                    let error = str_of(v, "error");
                    let line = format!(
                        "API error {}{}; retry {} of {} in {:.1}s",
                        status.map(|s| s.to_string()).unwrap_or_default(),
                        if error.is_empty() {
                            String::new()
                        } else {
                            format!(" ({error})")
                        },
                        v.get("attempt").and_then(Value::as_u64).unwrap_or(0),
                        v.get("max_retries").and_then(Value::as_u64).unwrap_or(0),
                        v.get("retry_delay_ms")
                            .and_then(Value::as_f64)
                            .unwrap_or(0.0)
                            / 1000.0,
                    );
                    if let Some(cause) = status
                        .and_then(cause_of_status)
                        .or_else(|| claude_error_kind(error))
                    {
                        self.retried = Some((cause, line.clone()));
                    }
                    out.push(format!("claude: {line}"));
                }
                _ => {}
            },
            "assistant" => {
                let msg = &v["message"];
                let model = str_of(msg, "model");
                if self.model.is_none() && !model.is_empty() && !model.starts_with('<') {
                    self.model = Some(model.to_owned());
                }
                if let (Some(id), Some(u)) =
                    (msg.get("id").and_then(Value::as_str), msg.get("usage"))
                {
                    if !model.starts_with('<') {
                        self.partial.insert(id.to_owned(), anthropic_usage(u));
                    }
                }
                for block in msg["content"].as_array().into_iter().flatten() {
                    match str_of(block, "type") {
                        "text" => out.extend(text_lines(str_of(block, "text"))),
                        "tool_use" => out.push(describe_tool(
                            str_of(block, "name"),
                            block.get("input").unwrap_or(&Value::Null),
                        )),
                        _ => {}
                    }
                }
                if let Some(kind) = v.get("error").and_then(Value::as_str) {
                    self.retried = claude_error_kind(kind)
                        .map(|c| (c, kind.to_owned()))
                        .or(self.retried.take());
                }
            }
            "user" => {
                for block in v["message"]["content"].as_array().into_iter().flatten() {
                    if str_of(block, "type") != "tool_result" {
                        continue;
                    }
                    let text = tool_result_text(block.get("content").unwrap_or(&Value::Null));
                    let failed = block.get("is_error").and_then(Value::as_bool) == Some(true);
                    out.extend(tool_output(&text, failed));
                }
            }
            "result" => {
                self.saw_result = true;
                let mut usage = v.get("usage").map(anthropic_usage).unwrap_or_default();
                usage.cost_usd = v.get("total_cost_usd").and_then(Value::as_f64);
                usage.duration_ms = v.get("duration_ms").and_then(Value::as_u64).unwrap_or(0);
                usage.turns = v.get("num_turns").and_then(Value::as_u64).unwrap_or(0) as u32;
                // The model that cost the most did the work (others answer
                // side questions); Claude Code names it with a context suffix.
                usage.model = v
                    .get("modelUsage")
                    .and_then(Value::as_object)
                    .and_then(|m| {
                        m.iter()
                            .max_by(|a, b| {
                                let c = |x: &Value| x["costUSD"].as_f64().unwrap_or(0.0);
                                c(a.1).total_cmp(&c(b.1))
                            })
                            .map(|(k, _)| k.split('[').next().unwrap_or(k).to_owned())
                    })
                    .or_else(|| self.model.clone());
                self.usage = usage;
                let result = str_of(v, "result");
                self.final_message = bounded(result);
                let is_error = v.get("is_error").and_then(Value::as_bool) == Some(true)
                    || str_of(v, "subtype").starts_with("error");
                if is_error {
                    let line = if result.is_empty() {
                        str_of(v, "subtype").replace('_', " ")
                    } else {
                        first_line(result)
                    };
                    let cause = v
                        .get("api_error_status")
                        .and_then(Value::as_u64)
                        .and_then(cause_of_status)
                        .or_else(|| classify(&line))
                        .or_else(|| self.retried.as_ref().map(|r| r.0));
                    out.push(format!("claude: failed: {line}"));
                    self.fail(cause, &line);
                } else {
                    out.push(format!(
                        "claude: finished: {}",
                        if result.is_empty() {
                            "(no final message)".to_owned()
                        } else {
                            first_line(result)
                        }
                    ));
                }
                out.push(format!("claude: {}", describe_usage(&self.usage)));
            }
            _ => {}
        }
    }

    // -- Codex exec --json ------------------------------------------------

    fn codex(&mut self, v: &Value, out: &mut Vec<String>) {
        match str_of(v, "type") {
            "thread.started" => out.push("codex: session started".to_owned()),
            "turn.completed" => {
                // Totals for the session so far: the last one is the run's.
                let u = &v["usage"];
                let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                let cached = n("cached_input_tokens");
                let written = n("cache_write_input_tokens");
                // OpenAI counts cached and cache-written tokens inside input_tokens.
                self.usage.input_tokens = n("input_tokens").saturating_sub(cached + written);
                self.usage.cache_read_tokens = cached;
                self.usage.cache_write_tokens = written;
                self.usage.output_tokens = n("output_tokens");
                self.usage.turns += 1;
                self.saw_result = true;
                out.push(format!("codex: turn done; {}", describe_usage(&self.usage)));
            }
            "turn.failed" => {
                self.usage.turns += 1;
                let msg = str_of(&v["error"], "message");
                out.push(format!("codex: failed: {}", first_line(msg)));
                self.fail(classify(msg).or(Some(Cause::ApiError)), &first_line(msg));
            }
            "error" => {
                let msg = str_of(v, "message");
                out.push(format!("codex: error: {}", first_line(msg)));
                if let Some(cause) = classify(msg) {
                    self.fail(Some(cause), &first_line(msg));
                }
            }
            "item.started" => {
                let item = &v["item"];
                if str_of(item, "type") == "command_execution" {
                    out.push(format!("» $ {}", first_line(str_of(item, "command"))));
                }
            }
            "item.completed" => {
                let item = &v["item"];
                match str_of(item, "type") {
                    "agent_message" => {
                        self.final_message = bounded(str_of(item, "text"));
                        out.extend(text_lines(str_of(item, "text")))
                    }
                    "reasoning" => {
                        out.push(format!("(thinking) {}", first_line(str_of(item, "text"))))
                    }
                    "command_execution" => {
                        let code = item.get("exit_code").and_then(Value::as_i64);
                        let output = str_of(item, "aggregated_output");
                        let failed =
                            code.is_some_and(|c| c != 0) || str_of(item, "status") == "failed";
                        if failed {
                            out.push(format!(
                                "  ! exit {}",
                                code.map(|c| c.to_string()).unwrap_or_else(|| "?".into())
                            ));
                        }
                        out.extend(tool_output(output, false));
                    }
                    "file_change" => {
                        for change in item["changes"].as_array().into_iter().flatten() {
                            let verb = match str_of(change, "kind") {
                                "add" => "added",
                                "delete" => "deleted",
                                _ => "edited",
                            };
                            out.push(format!("» {verb} {}", str_of(change, "path")));
                        }
                    }
                    "mcp_tool_call" => out.push(format!(
                        "» {}.{}",
                        str_of(item, "server"),
                        str_of(item, "tool")
                    )),
                    "web_search" => out.push(format!("» web search: {}", str_of(item, "query"))),
                    "todo_list" => {
                        for t in item["items"].as_array().into_iter().flatten() {
                            let done = t.get("completed").and_then(Value::as_bool) == Some(true);
                            out.push(format!(
                                "  [{}] {}",
                                if done { "x" } else { " " },
                                str_of(t, "text")
                            ));
                        }
                    }
                    "error" => out.push(format!(
                        "codex: warning: {}",
                        first_line(str_of(item, "message"))
                    )),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    // -- Gemini CLI stream-json -------------------------------------------

    fn gemini(&mut self, v: &Value, out: &mut Vec<String>) {
        let kind = str_of(v, "type");
        if kind != "message" {
            out.extend(self.flush());
        }
        match kind {
            "init" => {
                let model = str_of(v, "model");
                if !model.is_empty() {
                    self.model = Some(model.to_owned());
                }
                out.push(format!("gemini: session started (model {model})"));
            }
            "message" if str_of(v, "role") == "assistant" => {
                self.pending.push_str(str_of(v, "content"));
                if v.get("delta").and_then(Value::as_bool) != Some(true) {
                    self.pending.push('\n');
                }
                if let Some(cut) = self.pending.rfind('\n') {
                    let done: String = self.pending.drain(..=cut).collect();
                    out.extend(text_lines(&done));
                }
            }
            "tool_use" => out.push(describe_tool(
                str_of(v, "tool_name"),
                v.get("parameters").unwrap_or(&Value::Null),
            )),
            "tool_result" => {
                let failed = str_of(v, "status") == "error";
                let text = if failed {
                    str_of(&v["error"], "message").to_owned()
                } else {
                    str_of(v, "output").to_owned()
                };
                out.extend(tool_output(&text, failed));
            }
            "error" => out.push(format!(
                "gemini: {}: {}",
                match str_of(v, "severity") {
                    "" => "error",
                    s => s,
                },
                first_line(str_of(v, "message"))
            )),
            "result" => {
                self.saw_result = true;
                let s = &v["stats"];
                let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
                let cached = n("cached");
                self.usage.input_tokens = s
                    .get("input")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| n("input_tokens").saturating_sub(cached));
                self.usage.cache_read_tokens = cached;
                self.usage.output_tokens = n("output_tokens");
                self.usage.duration_ms = n("duration_ms");
                if str_of(v, "status") == "error" {
                    let e = &v["error"];
                    let line = first_line(str_of(e, "message"));
                    let cause = classify(&line).or_else(|| classify(str_of(e, "type")));
                    out.push(format!("gemini: failed: {line}"));
                    self.fail(cause, &line);
                } else {
                    out.push("gemini: finished".to_owned());
                }
                out.push(format!("gemini: {}", describe_usage(&self.usage)));
            }
            _ => {}
        }
    }

    // -- OpenCode run --format json ---------------------------------------

    fn opencode(&mut self, v: &Value, out: &mut Vec<String>) {
        let part = &v["part"];
        match str_of(v, "type") {
            "text" => out.extend(text_lines(str_of(part, "text"))),
            "tool_use" => {
                let state = &part["state"];
                out.push(describe_tool(
                    str_of(part, "tool"),
                    state.get("input").unwrap_or(&Value::Null),
                ));
                let failed = str_of(state, "status") == "error";
                let text = if failed {
                    str_of(state, "error")
                } else {
                    str_of(state, "output")
                };
                out.extend(tool_output(text, failed));
            }
            "step_finish" => {
                self.saw_result = true;
                let t = &part["tokens"];
                let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
                let step = Usage {
                    input_tokens: n(t, "input"),
                    output_tokens: n(t, "output") + n(t, "reasoning"),
                    cache_read_tokens: n(&t["cache"], "read"),
                    cache_write_tokens: n(&t["cache"], "write"),
                    turns: 1,
                    cost_usd: part.get("cost").and_then(Value::as_f64),
                    ..Usage::default()
                };
                add_usage(&mut self.usage, &step);
            }
            "error" => {
                let e = &v["error"];
                let name = str_of(e, "name");
                let message = match str_of(&e["data"], "message") {
                    "" => str_of(v, "message"),
                    m => m,
                };
                let line = first_line(if message.is_empty() { name } else { message });
                let cause = if name.contains("Auth") {
                    Some(Cause::Auth)
                } else {
                    e["data"]
                        .get("statusCode")
                        .and_then(Value::as_u64)
                        .and_then(cause_of_status)
                        .or_else(|| classify(&line))
                };
                out.push(format!("opencode: error: {line}"));
                self.fail(cause, &line);
            }
            _ => {}
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn anthropic_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cache_read_tokens: n("cache_read_input_tokens"),
        cache_write_tokens: n("cache_creation_input_tokens"),
        ..Usage::default()
    }
}

fn add_usage(total: &mut Usage, u: &Usage) {
    total.input_tokens += u.input_tokens;
    total.output_tokens += u.output_tokens;
    total.cache_read_tokens += u.cache_read_tokens;
    total.cache_write_tokens += u.cache_write_tokens;
    total.turns += u.turns;
    if let Some(c) = u.cost_usd {
        total.cost_usd = Some(total.cost_usd.unwrap_or(0.0) + c);
    }
}

/// The price of `model`: its own entry, else the longest key it starts with
/// (`claude-sonnet-4-5` prices `claude-sonnet-4-5-20250929`).
fn price_for<'a>(prices: &'a BTreeMap<String, Price>, model: &str) -> Option<&'a Price> {
    prices.get(model).or_else(|| {
        prices
            .iter()
            .filter(|(k, _)| model.starts_with(k.as_str()))
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| p)
    })
}

/// US dollars for `usage` at `price` (per million tokens).
/// `text`, or its first [`FINAL_MESSAGE_BYTES`] bytes.
fn bounded(text: &str) -> String {
    let mut end = text.len().min(FINAL_MESSAGE_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

pub(crate) fn cost(usage: &Usage, price: &Price) -> f64 {
    (usage.input_tokens as f64 * price.input
        + usage.output_tokens as f64 * price.output
        + usage.cache_read_tokens as f64 * price.cache_read
        + usage.cache_write_tokens as f64 * price.cache_write)
        / 1_000_000.0
}

/// `45,584 tokens, $0.0473, 3 turns, 1.3s` — what a run cost, for people.
pub(crate) fn describe_usage(u: &Usage) -> String {
    let mut parts = vec![format!("{} tokens", thousands(u.tokens()))];
    if let Some(c) = u.cost_usd {
        parts.push(format!("${c:.4}"));
    }
    if u.turns > 0 {
        parts.push(format!(
            "{} turn{}",
            u.turns,
            if u.turns == 1 { "" } else { "s" }
        ));
    }
    if u.duration_ms > 0 {
        parts.push(format!("{:.1}s", u.duration_ms as f64 / 1000.0));
    }
    parts.join(", ")
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The cause an HTTP status names.
fn cause_of_status(status: u64) -> Option<Cause> {
    Some(match status {
        401 | 403 => Cause::Auth,
        429 => Cause::RateLimit,
        529 => Cause::Overloaded,
        500..=599 => Cause::ApiError,
        400..=499 => Cause::ApiError,
        _ => return None,
    })
}

/// Claude Code's error kinds on a synthetic assistant message.
fn claude_error_kind(kind: &str) -> Option<Cause> {
    Some(match kind {
        "authentication_failed" | "billing_error" => Cause::Auth,
        "rate_limit" => Cause::RateLimit,
        "overloaded" => Cause::Overloaded,
        "server_error" | "invalid_request" | "unknown" => Cause::ApiError,
        _ => return None,
    })
}

/// The cause a line of CLI output names, if it names one.
pub(crate) fn classify(line: &str) -> Option<Cause> {
    static RULES: OnceLock<Vec<(Cause, Regex)>> = OnceLock::new();
    let rules = RULES.get_or_init(|| {
        let rule = |cause, pattern: &str| {
            (
                cause,
                Regex::new(&format!("(?i){pattern}")).expect("classifier patterns are valid"),
            )
        };
        vec![
            // Claude Code as root without IS_SANDBOX; bad flags (clap, yargs).
            rule(
                Cause::Refused,
                r"cannot be used with root|(unexpected|unknown|unrecognized) (argument|option)",
            ),
            rule(
                Cause::Auth,
                r"\b(401|403)\b|unauthori[sz]ed|invalid.{0,3}(x-)?api.?key|incorrect api key|authentication.?(error|failed)|not logged in|/login\b",
            ),
            rule(Cause::RateLimit, r"\b429\b|rate.?limit|too many requests"),
            rule(Cause::Overloaded, r"\b529\b|overloaded|high demand"),
            rule(
                Cause::Network,
                r"ECONNREFUSED|ENOTFOUND|ECONNRESET|ETIMEDOUT|EAI_AGAIN|EHOSTUNREACH|connection (refused|reset)|could not resolve|getaddrinfo|network (error|is unreachable)|error sending request|stream disconnected|unable to connect|timed out",
            ),
            rule(
                Cause::ApiError,
                r"\b(status|error:?|http/\d(\.\d)?) 5\d\d\b|\b5\d\d (internal|bad gateway|service unavailable|gateway timeout)|internal server error|\bapi_error\b|\bserver_error\b|bad gateway|service unavailable",
            ),
        ]
    });
    rules
        .iter()
        .find(|(_, re)| re.is_match(line))
        .map(|(cause, _)| *cause)
}

/// The newest line of `tail` that names a cause.
fn classify_tail(tail: &VecDeque<String>) -> Option<(Cause, String)> {
    tail.iter()
        .rev()
        .find_map(|l| classify(l).map(|c| (c, l.trim().to_owned())))
}

/// `» Bash: git commit -m …`, `» Write src/a.rs`: one tool call, for people.
fn describe_tool(name: &str, input: &Value) -> String {
    let path = [
        "file_path",
        "filePath",
        "path",
        "notebook_path",
        "absolute_path",
    ]
    .iter()
    .find_map(|k| input.get(*k).and_then(Value::as_str));
    let command = input
        .get("command")
        .or_else(|| input.get("cmd"))
        .and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            Value::Array(parts) => Some(
                parts
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        });
    match (path, command) {
        (Some(p), _) => format!("» {name} {p}"),
        (None, Some(c)) => format!("» {name}: {}", first_line(&c)),
        (None, None) => {
            let summary = ["pattern", "query", "url", "description", "prompt"]
                .iter()
                .find_map(|k| input.get(*k).and_then(Value::as_str))
                .map(first_line);
            match summary {
                Some(s) => format!("» {name}: {s}"),
                None => format!("» {name}"),
            }
        }
    }
}

fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A tool's output under its call: the first few lines, indented.
fn tool_output(text: &str, failed: bool) -> Vec<String> {
    let lines = text_lines(text);
    let mark = if failed { "  ! " } else { "  │ " };
    let mut out: Vec<String> = lines
        .iter()
        .take(TOOL_OUTPUT_LINES)
        .map(|l| format!("{mark}{l}"))
        .collect();
    if lines.len() > TOOL_OUTPUT_LINES {
        out.push(format!(
            "{mark}({} more lines)",
            lines.len() - TOOL_OUTPUT_LINES
        ));
    }
    out
}

fn text_lines(text: &str) -> Vec<String> {
    strip_terminal(text)
        .lines()
        .map(|l| l.trim_end().to_owned())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

fn first_line(text: &str) -> String {
    text_lines(text).into_iter().next().unwrap_or_default()
}

/// A line as shown: escape-free (again: callers may have built it from
/// event fields) and cut to a readable length.
fn shown(line: &str) -> String {
    let clean = strip_terminal(line);
    if clean.chars().count() <= MAX_SHOWN {
        return clean;
    }
    let cut: String = clean.chars().take(MAX_SHOWN).collect();
    format!("{cut}…")
}

/// `text` as a terminal would have shown it, as plain text
/// ([`TerminalText`]): escape sequences and control characters gone, a line
/// redrawn after `\r` as it ended. Tabs and newlines stay.
pub(crate) fn strip_terminal(text: &str) -> String {
    let mut plain = String::from_utf8_lossy(&TerminalText::plain(text.as_bytes())).into_owned();
    // `plain` ends every line; keep the caller's last line open if it was.
    if !text.ends_with('\n') && plain.ends_with('\n') {
        plain.pop();
    }
    plain
}

#[cfg(test)]
mod tests;
