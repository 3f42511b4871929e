//! Agent profiles: how to start an AI coding agent on a prompt, and the
//! [`Launch`] (argv, environment, stdin) a profile renders to.
//!
//! A profile is an argv template, never a shell string: placeholders
//! `{prompt}`, `{prompt_file}`, `{model}` and `{worktree}` expand inside one
//! argv element each, so a prompt full of quotes, `$` and newlines stays one
//! argument. Expansion is a single pass, so a prompt that itself contains
//! `{model}` is passed through untouched; any other brace text is literal.
//! Flags that only make sense with a model (`--model {model}`) go in
//! `model_args`, appended only when a model is set; `{model}` in `command` or
//! `env` with no model is an error rather than an empty argument.
//!
//! Every launch also gets `SPRINT_PROMPT_FILE`, `SPRINT_WORKTREE`, `SPRINT_MODEL`
//! (when set) and `SPRINT_PROMPT` (when the prompt fits in one environment
//! string), plus the caller's variables (`SPRINT_TASK`, `SPRINT_WORKER`, …).
//!
//! Prompts are data. A sprint's prompt holds task text and gate output, which
//! agents can shape, so no preset puts the prompt anywhere a program would
//! execute it: it is one argv element (never starting with `-`, so never an
//! option), a file the agent reads, stdin, or the environment. In `env` mode
//! (`--agent-command`, which runs `sh -c CMD`) `{prompt}` is not expanded at
//! all, so the command string never holds task text. The `shell` preset,
//! which runs the prompt as a script, is for fleet commands, where the prompt
//! is the person's own; [`AgentProfile::prompt_as_code`] finds it and its
//! look-alikes so config loading can refuse them for sprint roles.
//!
//! A profile also says how the agent writes its output (`output`): the
//! presets run each CLI in its streaming JSON mode where it has one, so the
//! wrapper can show a readable transcript, see every event as a sign of
//! life and record what the run cost and why it failed
//! ([`crate::worker::stream`]).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::stream::OutputFormat;
use crate::state::AgentLaunch;

/// Names of the built-in presets, for help text and errors.
pub(crate) const PRESETS: &[&str] = &["claude", "codex", "gemini", "aider", "opencode", "shell"];

/// Programs that execute a script named as their first operand, with the
/// short flag that makes them run code given inline instead.
const INTERPRETERS: &[(&str, char)] = &[
    ("sh", 'c'),
    ("bash", 'c'),
    ("dash", 'c'),
    ("zsh", 'c'),
    ("ksh", 'c'),
    ("mksh", 'c'),
    ("ash", 'c'),
    ("yash", 'c'),
    ("fish", 'c'),
    ("python", 'c'),
    ("python3", 'c'),
    ("perl", 'e'),
    ("ruby", 'e'),
    ("node", 'e'),
    ("php", 'r'),
    ("lua", 'e'),
];

/// Linux refuses (E2BIG) any single argument or `KEY=value` string longer than
/// this (MAX_ARG_STRLEN, 32 pages, minus the terminating NUL).
const MAX_STRING: usize = 32 * 4096 - 1;

/// What went wrong rendering or starting a profile.
#[derive(Debug, Error)]
pub enum ProfileError {
    /// No preset has this name.
    #[error("unknown agent preset `{name}`: use one of {}", PRESETS.join(", "))]
    UnknownPreset { name: String },
    /// The command template is empty.
    #[error("agent profile has an empty `command`: give at least the program to run")]
    EmptyCommand,
    /// The prompt mode needs a placeholder the command does not contain.
    #[error("agent profile has `prompt: {mode}` but no `{placeholder}` in `command`: add it where the agent expects the prompt")]
    MissingPlaceholder {
        mode: &'static str,
        placeholder: &'static str,
    },
    /// `{model}` is used outside `model_args` and no model is set.
    #[error("agent profile uses `{{model}}` in {place} but no model is set: set `model:` or move the flag to `model_args`")]
    ModelRequired { place: String },
    /// An environment variable name is unusable.
    #[error("invalid environment variable name `{key}` in agent profile")]
    BadEnvKey { key: String },
    /// An argument or variable is longer than the kernel accepts.
    #[error("{what} is {len} bytes, over the {MAX_STRING}-byte limit for one argument: use `prompt: file` with `{{prompt_file}}`")]
    TooLong { what: String, len: usize },
    /// A launch recorded in the sprint state names a mode this build does not know.
    #[error("the recorded agent launch has `{key}: {value}`, which this git-sprint does not know: respawn the agent, or use a git-sprint that knows it")]
    UnknownRecorded { key: &'static str, value: String },
    /// The agent program could not be started.
    #[error("could not start agent `{program}`: is it installed and on PATH?")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
}

type Result<T> = std::result::Result<T, ProfileError>;

/// How the agent receives its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PromptMode {
    /// As an argument: `command` must contain `{prompt}`.
    #[default]
    Arg,
    /// On standard input, which is then closed.
    Stdin,
    /// In a file: `command` must contain `{prompt_file}`.
    File,
    /// Only through `$SPRINT_PROMPT` / `$SPRINT_PROMPT_FILE` (for `--agent-command`).
    Env,
}

impl PromptMode {
    fn name(self) -> &'static str {
        match self {
            PromptMode::Arg => "arg",
            PromptMode::Stdin => "stdin",
            PromptMode::File => "file",
            PromptMode::Env => "env",
        }
    }
}

/// How to run one kind of agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentProfile {
    /// The argv template, e.g. `["claude", "-p", "{prompt}"]`.
    pub(crate) command: Vec<String>,
    /// Where the agent finds the prompt.
    #[serde(default)]
    pub(crate) prompt: PromptMode,
    /// Extra environment; values may use placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, String>,
    /// The default model, overridable per launch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    /// Appended to the argv only when a model is set, e.g. `["--model", "{model}"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) model_args: Vec<String>,
    /// How the agent writes its output: `text`, or a CLI's JSON event stream
    /// (`claude`, `codex`, `gemini`, `opencode`).
    #[serde(default, skip_serializing_if = "OutputFormat::is_text")]
    pub(crate) output: OutputFormat,
}

/// What a profile is rendered with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderInput<'a> {
    /// The full prompt text.
    pub(crate) prompt: &'a str,
    /// A file holding the same prompt (the caller writes it).
    pub(crate) prompt_file: &'a Path,
    /// The worktree the agent works in.
    pub(crate) worktree: &'a Path,
    /// Overrides the profile's model.
    pub(crate) model: Option<&'a str>,
    /// Extra variables such as `SPRINT_TASK`, `SPRINT_WORKER`, `SPRINT_BRANCH`.
    pub(crate) env: &'a [(String, String)],
}

/// A rendered agent command, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    /// Program and arguments; each element is one argument.
    pub(crate) argv: Vec<OsString>,
    /// Variables to add to the inherited environment, sorted by name.
    pub(crate) env: Vec<(String, OsString)>,
    /// Bytes to write to the agent's stdin before closing it; `None` leaves
    /// stdin inherited (the pane's terminal, so a person can type).
    pub(crate) stdin: Option<Vec<u8>>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl From<&AgentProfile> for AgentLaunch {
    fn from(p: &AgentProfile) -> Self {
        AgentLaunch {
            command: p.command.clone(),
            prompt: p.prompt.name().to_owned(),
            env: p.env.clone(),
            model: p.model.clone(),
            model_args: p.model_args.clone(),
            output: p.output.name().to_owned(),
        }
    }
}

impl TryFrom<&AgentLaunch> for AgentProfile {
    type Error = ProfileError;

    fn try_from(l: &AgentLaunch) -> Result<Self> {
        // The enums' serde names are the recorded strings; parsing through serde
        // keeps one spelling of each.
        fn parse<T: serde::de::DeserializeOwned>(key: &'static str, value: &str) -> Result<T> {
            serde_yaml::from_value(serde_yaml::Value::String(value.to_owned())).map_err(|_| {
                ProfileError::UnknownRecorded {
                    key,
                    value: value.to_owned(),
                }
            })
        }
        Ok(AgentProfile {
            command: l.command.clone(),
            prompt: parse("prompt", &l.prompt)?,
            env: l.env.clone(),
            model: l.model.clone(),
            model_args: l.model_args.clone(),
            output: parse("output", &l.output)?,
        })
    }
}

impl AgentProfile {
    /// The built-in profile `name` (see [`PRESETS`]).
    pub(crate) fn preset(name: &str) -> Result<AgentProfile> {
        let model_flag = strings(&["--model", "{model}"]);
        let profile = |command: &[&str], prompt: PromptMode, output: OutputFormat| AgentProfile {
            command: strings(command),
            prompt,
            env: BTreeMap::new(),
            model: None,
            model_args: model_flag.clone(),
            output,
        };
        Ok(match name {
            // Claude Code CLI reference (code.claude.com/docs, "CLI reference" and
            // "Run Claude Code programmatically"): -p/--print runs one prompt
            // non-interactively; --output-format stream-json prints one JSON
            // event per line as the session goes (it needs --verbose with -p),
            // ending in a `result` event with usage and total_cost_usd;
            // --dangerously-skip-permissions (same as --permission-mode
            // bypassPermissions) lets it edit and run commands unattended. It
            // refuses to start as root unless IS_SANDBOX=1.
            "claude" => profile(
                &[
                    "claude",
                    "-p",
                    "{prompt}",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--dangerously-skip-permissions",
                ],
                PromptMode::Arg,
                OutputFormat::Claude,
            ),
            // Codex CLI docs (developers.openai.com/codex, "Non-interactive
            // mode"; openai/codex codex-rs/exec/src/exec_events.rs): `codex exec
            // --json PROMPT` prints JSONL events (thread.started, item.*,
            // turn.completed with usage, turn.failed, error). Not
            // --full-auto: its workspace-write sandbox cannot write the
            // worktree's git metadata (it lives in the main repository's
            // common dir), so the agent could not commit. The worktree is the
            // isolation, hence --dangerously-bypass-approvals-and-sandbox.
            "codex" => profile(
                &[
                    "codex",
                    "exec",
                    "--json",
                    "--dangerously-bypass-approvals-and-sandbox",
                    "{prompt}",
                ],
                PromptMode::Arg,
                OutputFormat::Codex,
            ),
            // Gemini CLI `gemini --help` / headless-mode docs (geminicli.com,
            // "Headless mode reference"): -p/--prompt runs non-interactively;
            // --output-format stream-json prints JSONL events (init, message,
            // tool_use, tool_result, error, result with stats); --approval-mode
            // yolo auto-approves every tool call (--yolo is its deprecated alias).
            "gemini" => profile(
                &[
                    "gemini",
                    "--approval-mode",
                    "yolo",
                    "--output-format",
                    "stream-json",
                    "-p",
                    "{prompt}",
                ],
                PromptMode::Arg,
                OutputFormat::Gemini,
            ),
            // Aider "Scripting aider" (aider.chat/docs/scripting.html):
            // --message-file runs one instruction from a file and exits;
            // --yes-always answers every confirmation. Aider commits its own
            // edits by default. It has no JSON output: text.
            "aider" => profile(
                &["aider", "--yes-always", "--message-file", "{prompt_file}"],
                PromptMode::File,
                OutputFormat::Text,
            ),
            // OpenCode CLI docs (opencode.ai/docs/cli): `opencode run [message..]`
            // runs non-interactively; --format json prints JSONL events
            // (step_start, text, tool_use, step_finish with tokens and cost,
            // error); --model takes provider/model.
            "opencode" => profile(
                &["opencode", "run", "--format", "json", "{prompt}"],
                PromptMode::Arg,
                OutputFormat::Opencode,
            ),
            // The prompt is a POSIX shell script: scripted work, demos, tests.
            "shell" => AgentProfile {
                model_args: Vec::new(),
                ..profile(
                    &["sh", "{prompt_file}"],
                    PromptMode::File,
                    OutputFormat::Text,
                )
            },
            _ => {
                return Err(ProfileError::UnknownPreset {
                    name: name.to_owned(),
                })
            }
        })
    }

    /// A profile for `--agent-command CMD`: `sh -c CMD`, with the prompt in
    /// `$SPRINT_PROMPT` and its file in `$SPRINT_PROMPT_FILE`.
    pub(crate) fn from_command(cmd: &str) -> AgentProfile {
        AgentProfile {
            command: strings(&["sh", "-c", cmd]),
            prompt: PromptMode::Env,
            env: BTreeMap::new(),
            model: None,
            model_args: Vec::new(),
            output: OutputFormat::Text,
        }
    }

    /// How this profile would execute its prompt as code, if it would: the
    /// prompt (or its file) as an interpreter's script, the prompt inside a
    /// `-c`/`-e` command string, or the prompt on a bare interpreter's stdin.
    /// `None` when the prompt stays data. (A best effort for look-alikes; the
    /// `shell` preset is the case it must catch.)
    pub(crate) fn prompt_as_code(&self) -> Option<&'static str> {
        let program = self.command.first()?;
        let name = Path::new(program).file_name()?.to_str()?;
        let (_, inline_flag) = INTERPRETERS.iter().find(|(n, _)| *n == name)?;
        let mut args = self.command[1..].iter();
        let mut inline = false;
        let mut operand = None;
        while let Some(a) = args.next() {
            if a == "--" {
                operand = args.next();
                break;
            }
            if a == "-o" || a == "+o" {
                args.next();
                continue;
            }
            if a.starts_with('-') && a.len() > 1 {
                if !a.starts_with("--") && a[1..].contains(*inline_flag) {
                    inline = true;
                }
                continue;
            }
            operand = Some(a);
            break;
        }
        let expands_prompt = self.prompt != PromptMode::Env;
        match operand {
            Some(code) if inline => (expands_prompt && code.contains("{prompt}"))
                .then_some("puts the prompt inside an inline command string"),
            Some(script) if script.contains("{prompt_file}") => {
                Some("runs the prompt file as a script")
            }
            Some(script) if expands_prompt && script.contains("{prompt}") => {
                Some("runs the prompt as a script")
            }
            None if !inline && self.prompt == PromptMode::Stdin => {
                Some("feeds the prompt to an interpreter's standard input")
            }
            _ => None,
        }
    }

    /// Checks the profile without rendering it (for config loading).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.command.first().is_none_or(|p| p.is_empty()) {
            return Err(ProfileError::EmptyCommand);
        }
        let needs = match self.prompt {
            PromptMode::Arg => Some("{prompt}"),
            PromptMode::File => Some("{prompt_file}"),
            PromptMode::Stdin | PromptMode::Env => None,
        };
        if let Some(placeholder) = needs {
            if !self.command.iter().any(|a| a.contains(placeholder)) {
                return Err(ProfileError::MissingPlaceholder {
                    mode: self.prompt.name(),
                    placeholder,
                });
            }
        }
        for key in self.env.keys() {
            check_env_key(key)?;
        }
        Ok(())
    }

    /// Renders the profile into a [`Launch`].
    pub(crate) fn render(&self, input: &RenderInput<'_>) -> Result<Launch> {
        self.validate()?;
        let model = input.model.or(self.model.as_deref());
        // An argument that starts with `-` is an option to the agent's CLI;
        // a prompt must never become one (a custom template may start with
        // a task title).
        let guarded;
        let prompt = if input.prompt.starts_with('-') {
            guarded = format!(" {}", input.prompt);
            guarded.as_str()
        } else {
            input.prompt
        };
        let values = Values {
            // Env mode keeps the prompt out of argv: `{prompt}` stays literal.
            prompt: (self.prompt != PromptMode::Env).then_some(prompt),
            prompt_file: input.prompt_file.as_os_str(),
            worktree: input.worktree.as_os_str(),
            model,
        };

        let mut argv = Vec::with_capacity(self.command.len() + self.model_args.len());
        for (i, element) in self.command.iter().enumerate() {
            argv.push(values.expand(element, || format!("command element {i} `{element}`"))?);
        }
        if model.is_some() {
            for element in &self.model_args {
                argv.push(values.expand(element, String::new)?);
            }
        }

        let mut env: BTreeMap<String, OsString> = BTreeMap::new();
        for (key, value) in &self.env {
            env.insert(
                key.clone(),
                values.expand(value, || format!("env `{key}`"))?,
            );
        }
        for (key, value) in input.env {
            check_env_key(key)?;
            env.insert(key.clone(), value.into());
        }
        env.insert("SPRINT_PROMPT_FILE".into(), input.prompt_file.into());
        env.insert("SPRINT_WORKTREE".into(), input.worktree.into());
        if let Some(model) = model {
            env.insert("SPRINT_MODEL".into(), model.into());
        }
        // Only env mode relies on $SPRINT_PROMPT; elsewhere a huge prompt
        // simply leaves it out rather than failing the exec with E2BIG.
        let prompt_fits = "SPRINT_PROMPT=".len() + input.prompt.len() <= MAX_STRING;
        if prompt_fits || self.prompt == PromptMode::Env {
            env.insert("SPRINT_PROMPT".into(), input.prompt.into());
        }

        for (i, arg) in argv.iter().enumerate() {
            if arg.len() > MAX_STRING {
                return Err(ProfileError::TooLong {
                    what: format!("argument {i}"),
                    len: arg.len(),
                });
            }
        }
        for (key, value) in &env {
            let len = key.len() + 1 + value.len();
            if len > MAX_STRING {
                return Err(ProfileError::TooLong {
                    what: format!("environment variable {key}"),
                    len,
                });
            }
        }

        Ok(Launch {
            argv,
            env: env.into_iter().collect(),
            stdin: (self.prompt == PromptMode::Stdin).then(|| input.prompt.as_bytes().to_vec()),
        })
    }
}

impl Launch {
    /// The program to run, for messages.
    pub(crate) fn program(&self) -> String {
        self.argv
            .first()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A [`Command`] for this launch in `cwd` (stdin piped when there are stdin bytes).
    pub(crate) fn command(&self, cwd: &Path) -> Command {
        let mut cmd = Command::new(self.argv.first().map_or(OsStr::new(""), |p| p.as_os_str()));
        cmd.args(self.argv.iter().skip(1))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd);
        if self.stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        cmd
    }

    /// Starts the agent in `cwd`; stdin bytes are written from a thread, then
    /// stdin is closed so the agent sees end of input.
    #[cfg(test)]
    pub(crate) fn spawn(&self, cwd: &Path) -> Result<Child> {
        self.spawn_with(cwd, None, false)
    }

    /// Like [`Launch::spawn`], with stdout and stderr piped to the caller
    /// (the wrapper reads them: [`crate::worker::stream`]), confining the
    /// agent to `sandbox` when given (its variables, such as a private `TMPDIR`, are
    /// added too).
    pub(crate) fn spawn_confined(
        &self,
        cwd: &Path,
        sandbox: Option<&super::sandbox::Sandbox>,
    ) -> Result<Child> {
        self.spawn_with(cwd, sandbox, true)
    }

    fn spawn_with(
        &self,
        cwd: &Path,
        sandbox: Option<&super::sandbox::Sandbox>,
        captured: bool,
    ) -> Result<Child> {
        let mut cmd = self.command(cwd);
        if captured {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        if let Some(sandbox) = sandbox {
            // The profile's own settings win.
            let own = |k: &String| self.env.iter().any(|(key, _)| key == k);
            cmd.envs(sandbox.env().into_iter().filter(|(k, _)| !own(k)));
            sandbox.confine(&mut cmd);
        }
        let mut child = cmd.spawn().map_err(|source| ProfileError::Spawn {
            program: self.program(),
            source,
        })?;
        if let (Some(bytes), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // An agent that exits without reading gives EPIPE: not our error.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        Ok(child)
    }
}

struct Values<'a> {
    /// `None`: `{prompt}` is not expanded.
    prompt: Option<&'a str>,
    prompt_file: &'a OsStr,
    worktree: &'a OsStr,
    model: Option<&'a str>,
}

impl Values<'_> {
    /// Expands placeholders in one template string, in a single left-to-right
    /// pass, so substituted text is never expanded again.
    fn expand(&self, template: &str, place: impl Fn() -> String) -> Result<OsString> {
        let mut out = OsString::new();
        let mut rest = template;
        while let Some(at) = rest.find('{') {
            out.push(&rest[..at]);
            let tail = &rest[at..];
            let (value, len): (&OsStr, usize) = if tail.starts_with("{prompt}") {
                match self.prompt {
                    Some(prompt) => (OsStr::new(prompt), "{prompt}".len()),
                    None => (OsStr::new("{prompt}"), "{prompt}".len()),
                }
            } else if tail.starts_with("{prompt_file}") {
                (self.prompt_file, "{prompt_file}".len())
            } else if tail.starts_with("{worktree}") {
                (self.worktree, "{worktree}".len())
            } else if tail.starts_with("{model}") {
                let Some(model) = self.model else {
                    return Err(ProfileError::ModelRequired { place: place() });
                };
                (OsStr::new(model), "{model}".len())
            } else {
                (OsStr::new("{"), 1)
            };
            out.push(value);
            rest = &tail[len..];
        }
        out.push(rest);
        Ok(out)
    }
}

fn check_env_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ProfileError::BadEnvKey {
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn a_recorded_launch_reads_as_the_profile_it_was_made_from() {
        for name in PRESETS {
            let mut profile = AgentProfile::preset(name).unwrap();
            profile.env.insert("K".into(), "v".into());
            profile.model = Some("m".into());
            let launch = AgentLaunch::from(&profile);
            assert_eq!(AgentProfile::try_from(&launch).unwrap(), profile, "{name}");
            // The state keeps the shape the profile itself serialises to, so
            // records written before the state had its own type still read.
            let as_profile = serde_yaml::to_string(&profile).unwrap();
            assert_eq!(
                serde_yaml::to_string(&launch).unwrap(),
                as_profile,
                "{name}"
            );
            let back: AgentLaunch = serde_yaml::from_str(&as_profile).unwrap();
            assert_eq!(back, launch, "{name}");
        }
        let defaults: AgentLaunch = serde_yaml::from_str("command: [sh]").unwrap();
        assert_eq!(
            (defaults.prompt.as_str(), defaults.output.as_str()),
            ("arg", "text")
        );

        let mut odd = AgentLaunch::from(&AgentProfile::preset("claude").unwrap());
        odd.output = "telepathy".into();
        let err = AgentProfile::try_from(&odd).unwrap_err().to_string();
        assert!(err.contains("`output: telepathy`"), "{err}");
    }

    fn input<'a>(
        prompt: &'a str,
        model: Option<&'a str>,
        env: &'a [(String, String)],
    ) -> RenderInput<'a> {
        RenderInput {
            prompt,
            prompt_file: Path::new("/tmp/sprint/prompt.md"),
            worktree: Path::new("/repo/.git/sprint/worktrees/T001"),
            model,
            env,
        }
    }

    fn env_of<'a>(launch: &'a Launch, key: &str) -> Option<&'a OsStr> {
        launch
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_os_str())
    }

    #[test]
    fn placeholders_stay_one_element_and_are_not_reexpanded() {
        let profile = AgentProfile {
            command: strings(&[
                "agent",
                "--msg={prompt}",
                "--in",
                "{worktree}",
                "{x}",
                "{prompt_file}",
            ]),
            prompt: PromptMode::Arg,
            env: BTreeMap::from([("AGENT_DIR".into(), "{worktree}/.agent".into())]),
            model: None,
            model_args: strings(&["--model", "{model}"]),
            output: OutputFormat::Text,
        };
        let prompt = "fix it; rm -rf \"$HOME\" 'now' {model} {worktree}\nline 2";
        let launch = profile.render(&input(prompt, None, &[])).unwrap();
        assert_eq!(
            launch.argv,
            vec![
                OsString::from("agent"),
                format!("--msg={prompt}").into(),
                "--in".into(),
                "/repo/.git/sprint/worktrees/T001".into(),
                "{x}".into(),
                "/tmp/sprint/prompt.md".into(),
            ]
        );
        assert_eq!(
            env_of(&launch, "AGENT_DIR").unwrap(),
            "/repo/.git/sprint/worktrees/T001/.agent"
        );
        assert_eq!(env_of(&launch, "SPRINT_PROMPT").unwrap(), prompt);
        assert_eq!(launch.stdin, None);
        assert_eq!(env_of(&launch, "SPRINT_MODEL"), None);
    }

    #[test]
    fn model_args_only_with_a_model_and_launch_model_wins() {
        let mut profile = AgentProfile::preset("claude").unwrap();
        let no_model = profile.render(&input("p", None, &[])).unwrap();
        assert!(!no_model.argv.iter().any(|a| a == "--model"));

        profile.model = Some("sonnet".into());
        let default = profile.render(&input("p", None, &[])).unwrap();
        assert_eq!(
            &default.argv[default.argv.len() - 2..],
            ["--model", "sonnet"]
        );

        let overridden = profile.render(&input("p", Some("opus"), &[])).unwrap();
        assert_eq!(overridden.argv.last().unwrap(), "opus");
        assert_eq!(env_of(&overridden, "SPRINT_MODEL").unwrap(), "opus");
    }

    #[test]
    fn model_placeholder_without_model_is_an_error() {
        let profile = AgentProfile {
            command: strings(&["agent", "-m", "{model}", "{prompt}"]),
            prompt: PromptMode::Arg,
            env: BTreeMap::new(),
            model: None,
            model_args: Vec::new(),
            output: OutputFormat::Text,
        };
        let err = profile.render(&input("p", None, &[])).unwrap_err();
        assert!(matches!(err, ProfileError::ModelRequired { .. }), "{err}");
        assert!(err.to_string().contains("command element 2"), "{err}");
        assert!(profile.render(&input("p", Some("m"), &[])).is_ok());
    }

    #[test]
    fn every_preset_renders() {
        let extra = vec![
            ("SPRINT_TASK".to_owned(), "T001".to_owned()),
            ("SPRINT_WORKER".to_owned(), "dev-1".to_owned()),
        ];
        for name in PRESETS {
            let profile = AgentProfile::preset(name).unwrap();
            let launch = profile
                .render(&input("do the task", Some("m1"), &extra))
                .unwrap();
            let argv: Vec<String> = launch
                .argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let expected_program = if *name == "shell" { "sh" } else { name };
            assert_eq!(argv[0], expected_program);
            let has_prompt = argv.iter().any(|a| a == "do the task")
                || argv.iter().any(|a| a == "/tmp/sprint/prompt.md");
            assert!(has_prompt, "{name}: {argv:?}");
            assert_eq!(env_of(&launch, "SPRINT_TASK").unwrap(), "T001");
            assert_eq!(env_of(&launch, "SPRINT_WORKER").unwrap(), "dev-1");
            assert_eq!(
                env_of(&launch, "SPRINT_PROMPT_FILE").unwrap(),
                "/tmp/sprint/prompt.md"
            );
        }
        let claude = AgentProfile::preset("claude").unwrap();
        let launch = claude.render(&input("x y", None, &[])).unwrap();
        assert_eq!(
            launch.argv,
            [
                "claude",
                "-p",
                "x y",
                "--output-format",
                "stream-json",
                "--verbose",
                "--dangerously-skip-permissions"
            ]
            .map(OsString::from)
            .to_vec()
        );
        assert_eq!(claude.output, OutputFormat::Claude);
        assert_eq!(
            AgentProfile::preset("aider").unwrap().output,
            OutputFormat::Text
        );
        let err = AgentProfile::preset("cursor").unwrap_err();
        assert!(err.to_string().contains("claude, codex"), "{err}");
    }

    #[test]
    fn from_command_runs_sh_with_prompt_in_env() {
        let profile = AgentProfile::from_command("my-agent --go \"$SPRINT_PROMPT\"");
        let launch = profile.render(&input("it's $5", None, &[])).unwrap();
        assert_eq!(
            launch.argv,
            ["sh", "-c", "my-agent --go \"$SPRINT_PROMPT\""]
                .map(OsString::from)
                .to_vec()
        );
        let dir = tempfile::tempdir().unwrap();
        let profile =
            AgentProfile::from_command("printf '%s|%s' \"$SPRINT_PROMPT\" \"$SPRINT_TASK\"");
        let env = vec![("SPRINT_TASK".to_owned(), "T9".to_owned())];
        let launch = profile.render(&input("it's $5", None, &env)).unwrap();
        let out = launch.command(dir.path()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's $5|T9");
    }

    #[test]
    fn stdin_mode_feeds_the_prompt() {
        let profile = AgentProfile {
            command: strings(&["cat"]),
            prompt: PromptMode::Stdin,
            env: BTreeMap::new(),
            model: None,
            model_args: Vec::new(),
            output: OutputFormat::Text,
        };
        let launch = profile.render(&input("from stdin\n", None, &[])).unwrap();
        assert_eq!(launch.stdin.as_deref(), Some(&b"from stdin\n"[..]));
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = launch.command(dir.path());
        cmd.stdout(Stdio::piped());
        let child = {
            let mut c = cmd.spawn().unwrap();
            c.stdin.take().unwrap().write_all(b"from stdin\n").unwrap();
            c
        };
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.stdout, b"from stdin\n");
        // spawn() writes and closes stdin itself.
        let status = launch.spawn(dir.path()).unwrap().wait().unwrap();
        assert!(status.success());
    }

    #[test]
    fn invalid_profiles_are_errors() {
        let mut p = AgentProfile::from_command("x");
        p.command.clear();
        assert!(matches!(p.validate(), Err(ProfileError::EmptyCommand)));
        let p = AgentProfile {
            command: strings(&["agent"]),
            prompt: PromptMode::Arg,
            env: BTreeMap::new(),
            model: None,
            model_args: Vec::new(),
            output: OutputFormat::Text,
        };
        assert!(matches!(
            p.validate(),
            Err(ProfileError::MissingPlaceholder {
                placeholder: "{prompt}",
                ..
            })
        ));
        let p = AgentProfile {
            prompt: PromptMode::File,
            ..p
        };
        assert!(matches!(
            p.validate(),
            Err(ProfileError::MissingPlaceholder { .. })
        ));

        let big = "x".repeat(MAX_STRING + 1);
        let claude = AgentProfile::preset("claude").unwrap();
        let err = claude.render(&input(&big, None, &[])).unwrap_err();
        assert!(matches!(err, ProfileError::TooLong { .. }), "{err}");
        // In file mode a huge prompt is fine: SPRINT_PROMPT is left out.
        let aider = AgentProfile::preset("aider").unwrap();
        let launch = aider.render(&input(&big, None, &[])).unwrap();
        assert_eq!(env_of(&launch, "SPRINT_PROMPT"), None);

        let bad_env = vec![("NOT-OK".to_owned(), "v".to_owned())];
        assert!(matches!(
            claude.render(&input("p", None, &bad_env)),
            Err(ProfileError::BadEnvKey { .. })
        ));
        let missing = Launch {
            argv: vec!["/nonexistent/agent".into()],
            env: Vec::new(),
            stdin: None,
        };
        let err = missing.spawn(&PathBuf::from("/")).unwrap_err();
        assert!(matches!(err, ProfileError::Spawn { .. }), "{err}");
    }

    fn profile(command: &[&str], prompt: PromptMode) -> AgentProfile {
        AgentProfile {
            command: strings(command),
            prompt,
            env: BTreeMap::new(),
            model: None,
            model_args: Vec::new(),
            output: OutputFormat::Text,
        }
    }

    #[test]
    fn only_profiles_that_execute_the_prompt_are_prompt_as_code() {
        use PromptMode::*;
        let shell = AgentProfile::preset("shell").unwrap();
        assert_eq!(
            shell.prompt_as_code(),
            Some("runs the prompt file as a script")
        );
        for name in ["claude", "codex", "gemini", "aider", "opencode"] {
            let p = AgentProfile::preset(name).unwrap();
            assert_eq!(p.prompt_as_code(), None, "{name}");
        }
        let code = [
            profile(&["/bin/bash", "-e", "{prompt_file}"], File),
            profile(&["sh", "-c", "my-agent '{prompt}'"], Arg),
            profile(&["bash", "-ec", "run {prompt}"], Arg),
            profile(&["python3", "{prompt_file}"], File),
            profile(&["sh"], Stdin),
            profile(&["bash", "-o", "pipefail", "{prompt_file}"], File),
        ];
        for p in &code {
            assert!(p.prompt_as_code().is_some(), "{:?}", p.command);
        }
        let data = [
            AgentProfile::from_command("my-agent --task \"$SPRINT_PROMPT\""),
            // Env mode never expands {prompt}: the string stays literal.
            AgentProfile::from_command("echo {prompt}"),
            profile(
                &["sh", "-c", "my-agent < \"$1\"", "sh", "{prompt_file}"],
                File,
            ),
            profile(&["my-agent", "{prompt}"], Arg),
            profile(&["sh", "-c", "my-agent"], Stdin),
        ];
        for p in &data {
            assert_eq!(p.prompt_as_code(), None, "{:?}", p.command);
        }
    }

    #[test]
    fn env_mode_never_puts_the_prompt_into_the_command_string() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let hostile = format!("$(touch {}) `touch {}`", marker.display(), marker.display());
        let p = AgentProfile::from_command("printf '%s' '{prompt}'");
        let launch = p.render(&input(&hostile, None, &[])).unwrap();
        assert_eq!(launch.argv[2], OsString::from("printf '%s' '{prompt}'"));
        let out = launch.command(dir.path()).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "{prompt}");
        assert!(!marker.exists());
    }

    #[test]
    fn a_prompt_never_becomes_an_option() {
        let claude = AgentProfile::preset("claude").unwrap();
        let launch = claude
            .render(&input("--dangerously-do-something", None, &[]))
            .unwrap();
        assert_eq!(
            launch.argv[2],
            OsString::from(" --dangerously-do-something")
        );
        // The environment keeps the text as it is.
        assert_eq!(
            env_of(&launch, "SPRINT_PROMPT").unwrap(),
            "--dangerously-do-something"
        );
    }

    #[test]
    fn yaml_round_trip() {
        let yaml = "command: [aider, --yes-always, --message-file, '{prompt_file}']\nprompt: file\nenv:\n  AIDER_DARK_MODE: 'true'\nmodel: gpt-5\nmodel_args: [--model, '{model}']\n";
        let p: AgentProfile = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(p.prompt, PromptMode::File);
        assert_eq!(p.model.as_deref(), Some("gpt-5"));
        let back: AgentProfile = serde_yaml::from_str(&serde_yaml::to_string(&p).unwrap()).unwrap();
        assert_eq!(p, back);
        let minimal: AgentProfile = serde_yaml::from_str("command: [a, '{prompt}']").unwrap();
        assert_eq!(minimal.prompt, PromptMode::Arg);
        assert_eq!(minimal.output, OutputFormat::Text);
        let codex = AgentProfile::preset("codex").unwrap();
        let text = serde_yaml::to_string(&codex).unwrap();
        assert!(text.contains("output: codex"), "{text}");
        assert_eq!(serde_yaml::from_str::<AgentProfile>(&text).unwrap(), codex);
        assert!(serde_yaml::from_str::<AgentProfile>("command: [a]\nbogus: 1").is_err());
    }
}
