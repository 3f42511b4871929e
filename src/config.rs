//! Project configuration: `.git-sprint.yaml` at the repository root, per-user
//! overrides from `git config sprint.*`, and built-in defaults.
//!
//! The three layers are merged as YAML values before anything is typed:
//! defaults, then the file (mappings merge key by key, everything else
//! replaces), then git config. Only then is the result deserialized, with
//! `deny_unknown_fields` everywhere and the failing key's path reported, so
//! a typo names the file (or the git config key), the key and what was
//! expected. Because merging works on values, a new section is one more field
//! of [`Config`] with a `Default`: it gets file loading, git config overrides
//! and `config show` provenance for free.
//!
//! Git config keys map flatly onto paths: `sprint.<a>.<b>.<c>` is the path
//! `a.b.c`, with `-` in the last part standing for `_` (git forbids `_` in
//! variable names): `sprint.roles.developer.count`, `sprint.timeouts.lease`,
//! `sprint.base-branch`, `sprint.agents.claude.model`.
//!
//! The file layer is the file *as committed at the base branch's tip* ([`load`]),
//! never the working tree's copy and never a task branch's: gates, setup
//! commands and agent profiles are code the orchestrator runs, so they must be
//! what the person committed on the branch the work merges into, not whatever
//! happens to be checked out (a side branch, an agent's branch under review).
//! Every command reads it this way, fleet commands included, so that "not used
//! until committed" is one rule with no exceptions; the working-tree file only
//! shows up as a notice when it differs ([`Loaded::notice`]), and `config edit`
//! checks it before it is committed ([`load_working_file`]). Git config
//! overrides are per-user and apply as before. The base branch itself comes
//! from `git config sprint.base-branch`, else the `base_branch` of the file
//! committed on the default branch, else the default branch ([`base_branch`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::{Mapping, Value};

use crate::hint::Hint;
use crate::worker::profile::{AgentProfile, PromptMode, PRESETS};
use crate::worker::stream::OutputFormat;

/// The file name, at the root of the main worktree.
pub(crate) const FILE_NAME: &str = ".git-sprint.yaml";

/// The commented example `git sprint init` writes.
pub(crate) const TEMPLATE: &str = include_str!("../templates/git-sprint.yaml");

/// What is wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading or writing {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{origin}: not valid YAML: {message}")]
    Syntax { origin: String, message: String },

    /// The committed file could not be read from the repository.
    #[error("reading a committed file from {what}")]
    Git {
        what: String,
        #[source]
        source: Box<gix::Error>,
    },

    /// The committed `.git-sprint.yaml` is a symlink, a directory or not text.
    #[error("{origin}: {problem}")]
    NotAFile { origin: String, problem: String },

    /// A key of the merged configuration is unknown or has the wrong type.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },

    #[error("running `git config` in {}", dir.display())]
    GitConfig {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Hint for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Syntax { .. } | ConfigError::Invalid { .. } => Some(format!(
                "fix it with 'git sprint config edit'; the commented example is in 'git sprint init's {FILE_NAME}"
            )),
            ConfigError::GitConfig { .. } => Some("is git installed and on PATH?".into()),
            ConfigError::NotAFile { .. } => Some(format!(
                "commit {FILE_NAME} as a regular file on the base branch"
            )),
            ConfigError::Read { .. } | ConfigError::Git { .. } => None,
        }
    }
}

/// A duration written like `10m`, `90s` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Configured durations are whole seconds; zero reads better as `0s`
        // than as clock's `0ms`.
        if self.0.as_secs() == 0 {
            return f.write_str("0s");
        }
        f.write_str(&crate::clock::human_duration(self.0))
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept a bare number of seconds too (`lease: 600`).
        let v = Value::deserialize(d)?;
        let text = match &v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom(
                    "expected a duration such as 30s, 10m or 1h30m",
                ))
            }
        };
        let d = crate::clock::parse_duration(&text).map_err(serde::de::Error::custom)?;
        // No setting means "no time at all": a 0s lease, gate or backoff
        // would only make work fail or spin.
        if d.is_zero() {
            return Err(serde::de::Error::custom(
                "must be longer than 0s (the shortest is 1s)",
            ));
        }
        Ok(HumanDuration(d))
    }
}

/// A named agent: a preset with overrides, or a full command profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AgentEntry {
    /// A built-in profile to start from: claude, codex, gemini, aider, opencode, shell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) preset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) command: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prompt: Option<PromptMode>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) model_args: Option<Vec<String>>,
    /// How the agent writes its output: text, claude, codex, gemini or
    /// opencode (a preset sets the one its CLI streams).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) output: Option<OutputFormat>,
    /// Free-form labels (`fast`, `reviewer`), shown by `git sprint agents`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    /// What the profile can do, for the router (`route:`).
    #[serde(skip_serializing_if = "crate::router::rules::Capabilities::is_empty")]
    pub(crate) capabilities: crate::router::rules::Capabilities,
    /// Machine labels this profile needs (a CLI installed only there, a
    /// GPU): only machines with every one of them run it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) machines: Vec<String>,
}

impl AgentEntry {
    /// The profile this entry describes: the preset (if any) with the
    /// entry's fields laid over it.
    pub(crate) fn resolve(&self) -> Result<AgentProfile, String> {
        let mut profile = match (&self.preset, &self.command) {
            (Some(name), _) => AgentProfile::preset(name).map_err(|e| e.to_string())?,
            (None, Some(_)) => AgentProfile::from_command(""),
            (None, None) => {
                return Err(format!(
                    "needs `preset` (one of {}) or `command`",
                    PRESETS.join(", ")
                ))
            }
        };
        if let Some(command) = &self.command {
            profile.command = command.clone();
            profile.prompt = PromptMode::Arg;
        }
        if let Some(prompt) = self.prompt {
            profile.prompt = prompt;
        }
        profile.env.extend(self.env.clone());
        if self.model.is_some() {
            profile.model = self.model.clone();
        }
        if let Some(args) = &self.model_args {
            profile.model_args = args.clone();
        }
        if let Some(output) = self.output {
            profile.output = output;
        }
        profile.validate().map_err(|e| e.to_string())?;
        Ok(profile)
    }
}

/// One AI role: which agent plays it and how many run at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Role {
    pub(crate) agent: String,
    /// How many run at once on each machine (each orchestrator schedules
    /// its own; `git config sprint.roles.<role>.count` sets one clone's).
    pub(crate) count: u32,
    /// Machine labels this role needs: with the state shared through a
    /// remote, only machines with every one of them run it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) machines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Roles {
    pub(crate) developer: Role,
    pub(crate) tester: Role,
    pub(crate) librarian: Role,
}

impl Default for Roles {
    fn default() -> Self {
        let role = |count| Role {
            agent: "claude".into(),
            count,
            machines: Vec::new(),
        };
        Roles {
            developer: role(3),
            tester: role(3),
            librarian: role(1),
        }
    }
}

/// How a fresh worktree is prepared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Setup {
    /// Files copied from the main worktree when they exist (e.g. `.env`).
    pub(crate) copy: Vec<PathBuf>,
    /// Shell commands run in the new worktree, in order.
    pub(crate) commands: Vec<String>,
    /// The longest one setup command may run; past it, it is killed and the
    /// attempt fails with cause `setup`.
    pub(crate) timeout: HumanDuration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            copy: vec![PathBuf::from(".env")],
            commands: Vec::new(),
            timeout: HumanDuration(Duration::from_secs(10 * 60)),
        }
    }
}

/// `worktrees`: the pool of finished workers' worktrees that new workers
/// reuse (see `worker::pool`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Worktrees {
    /// How many finished worktrees are kept for reuse (0 turns the pool off;
    /// at most 64).
    pub(crate) pool: usize,
    /// Paths `git clean` spares when a pooled worktree is reused (built
    /// dependencies such as `target` or `node_modules`).
    pub(crate) keep: Vec<PathBuf>,
}

impl Default for Worktrees {
    fn default() -> Self {
        Worktrees {
            pool: 4,
            keep: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Timeouts {
    /// A task's lease; heartbeats renew it.
    pub(crate) lease: HumanDuration,
    /// No output and no commit for this long: the agent is hung.
    pub(crate) hung: HumanDuration,
    /// The longest one gate may run.
    pub(crate) gate: HumanDuration,
    /// With the state shared through a remote: a machine with no heartbeat
    /// for this long is lost (it beats three times in this span); its
    /// agents' tasks go back to the queue and another takes the lead.
    pub(crate) machine: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let m = |n: u64| HumanDuration(Duration::from_secs(n * 60));
        Timeouts {
            lease: m(10),
            hung: m(15),
            gate: m(10),
            machine: HumanDuration(Duration::from_secs(90)),
        }
    }
}

/// The merged configuration. Add a section by adding a field (with a
/// `Default`) here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The branch workers start from and merge into.
    pub(crate) base_branch: String,
    /// Named agent profiles; preset names work without an entry.
    pub(crate) agents: BTreeMap<String, AgentEntry>,
    pub(crate) roles: Roles,
    pub(crate) setup: Setup,
    pub(crate) worktrees: Worktrees,
    pub(crate) timeouts: Timeouts,
    /// Commands that judge work at each stage (see templates/gates/).
    pub(crate) gates: crate::gates::GateSet,
    pub(crate) policy: Policy,
    /// Docs the Librarian keeps up to date when a convoy is done (none: no
    /// Librarian runs).
    pub(crate) docs: Vec<String>,
    /// What happens to a finished feature's integration branch.
    pub(crate) merge: MergePolicy,
    /// Spending limits; reaching one stops starting agents in its scope.
    pub(crate) budget: Budget,
    /// Prices per million tokens by model, for CLIs that report no cost.
    pub(crate) prices: BTreeMap<String, Price>,
    /// How agents sign their commits.
    pub(crate) identity: Identity,
    /// The Landlock sandbox agents run in.
    pub(crate) sandbox: SandboxConfig,
    /// How tasks.md becomes a schedule.
    pub(crate) planning: Planning,
    /// Which agent profile takes which task (first matching rule).
    #[serde(default)]
    pub(crate) route: Vec<crate::router::RouteRule>,
    /// Who is told of which sprint events, by receiver name (see
    /// [`crate::notify`]).
    #[serde(default)]
    pub(crate) notify: BTreeMap<String, crate::notify::Receiver>,
    /// The git remote that holds the sprint state, so clones on several
    /// machines share one sprint (none: the state is this clone's alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) remote: Option<String>,
    /// This clone's machine name among those sharing the remote (none: the
    /// host name). Per clone: `git config sprint.machine NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) machine: Option<String>,
    /// This clone's machine labels (`gpu`, `big`), for roles and profiles
    /// that name `machines:`. Per clone: `git config sprint.machine-labels
    /// gpu,big`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "labels"
    )]
    pub(crate) machine_labels: Vec<String>,
}

/// A list of labels, or one string of them separated by commas (git
/// config holds no lists).
fn labels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Labels {
        One(String),
        Many(Vec<String>),
    }
    let all = match Labels::deserialize(d)? {
        Labels::One(s) => s.split(',').map(str::to_owned).collect(),
        Labels::Many(v) => v,
    };
    Ok(all
        .into_iter()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// `planning`: story order and chores, read by `plan` and every ingest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Planning {
    /// `parallel`: user-story phases run side by side once the phases before
    /// them are done; `serial`: one after another in file order.
    pub(crate) stories: StoryOrder,
    /// `skip`: tasks whose title matches a chore pattern are marked skipped
    /// (handled by git-sprint) and get no agent; `run`: they run like any task.
    pub(crate) chores: ChoreMode,
    /// Chore title patterns: regular expressions, matched case-insensitively.
    #[serde(deserialize_with = "chore_patterns")]
    pub(crate) chore_patterns: Vec<String>,
}

impl Default for Planning {
    fn default() -> Self {
        Planning {
            stories: StoryOrder::Parallel,
            chores: ChoreMode::Skip,
            chore_patterns: crate::spec::DEFAULT_CHORES
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
        }
    }
}

/// `planning.stories`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StoryOrder {
    Parallel,
    Serial,
}

/// `planning.chores`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChoreMode {
    Skip,
    Run,
}

/// A list of patterns that all compile, or an error naming the bad one.
fn chore_patterns<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let patterns = Vec::<String>::deserialize(d)?;
    crate::spec::Options::chore_patterns(&patterns).map_err(serde::de::Error::custom)?;
    Ok(patterns)
}

/// `budget`: limits in US dollars and tokens; unset means no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Budget {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) feature_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sprint_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_tokens: Option<u64>,
    /// Per agent profile: past it the router falls back to another profile.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) profile_usd: BTreeMap<String, f64>,
}

/// US dollars per million tokens of each kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Price {
    pub(crate) input: f64,
    pub(crate) output: f64,
    pub(crate) cache_read: f64,
    pub(crate) cache_write: f64,
}

/// `identity`: agents author their commits as `<agent-id> <email>`; the
/// committer stays the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Identity {
    /// The author email; `{agent}` is replaced by the agent id.
    pub(crate) email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            email: "{agent}@git-sprint.invalid".into(),
        }
    }
}

/// `sandbox`: Landlock confinement of agent processes. Written as a mapping,
/// or as a bare `off` / `on` (`false` / `true`) for `enabled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct SandboxConfig {
    /// Confine agents where the kernel supports Landlock.
    pub(crate) enabled: bool,
    /// Extra paths agents may write (`~` is the home directory).
    pub(crate) writable: Vec<String>,
}

impl<'de> Deserialize<'de> for SandboxConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Full {
            enabled: bool,
            writable: Vec<String>,
        }
        impl Default for Full {
            fn default() -> Self {
                let d = SandboxConfig::default();
                Full {
                    enabled: d.enabled,
                    writable: d.writable,
                }
            }
        }
        let switch = |enabled| SandboxConfig {
            enabled,
            ..SandboxConfig::default()
        };
        let config = match Value::deserialize(d)? {
            Value::Bool(b) => switch(b),
            Value::String(s) if s == "on" => switch(true),
            Value::String(s) if s == "off" => switch(false),
            v @ Value::Mapping(_) => {
                let full: Full = serde_yaml::from_value(v).map_err(serde::de::Error::custom)?;
                SandboxConfig {
                    enabled: full.enabled,
                    writable: full.writable,
                }
            }
            _ => {
                return Err(serde::de::Error::custom(
                    "expected off, on, or a mapping with `enabled` and `writable`",
                ))
            }
        };
        for entry in &config.writable {
            if !(entry.starts_with('/') || entry == "~" || entry.starts_with("~/")) {
                return Err(serde::de::Error::custom(format!(
                    "writable: `{entry}` is not an absolute path: write it as /path or ~/path"
                )));
            }
        }
        Ok(config)
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            enabled: true,
            writable: Vec::new(),
        }
    }
}

/// `merge.auto`: the Refinery merges a finished feature into its base
/// branch itself (`mode: ff` or `merge`, a gated merge commit).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergePolicy {
    pub(crate) auto: bool,
    pub(crate) mode: crate::refinery::MergeMode,
}

/// Rules of the task life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Policy {
    /// Attempts a task gets before it is `failed` and its dependants blocked.
    pub(crate) max_attempts: u32,
    /// The first pause between two attempts of a task; it doubles each
    /// time (with jitter), up to 32 times this.
    pub(crate) retry_backoff: HumanDuration,
    /// Infrastructure failures in a row that open an agent profile's
    /// circuit breaker.
    pub(crate) breaker_threshold: u32,
    /// How long an open breaker waits before one probe run.
    pub(crate) breaker_cooldown: HumanDuration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_attempts: 3,
            retry_backoff: HumanDuration(Duration::from_secs(10)),
            breaker_threshold: 3,
            breaker_cooldown: HumanDuration(Duration::from_secs(300)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            base_branch: "main".into(),
            agents: BTreeMap::from([(
                "claude".to_owned(),
                AgentEntry {
                    preset: Some("claude".into()),
                    ..AgentEntry::default()
                },
            )]),
            roles: Roles::default(),
            setup: Setup::default(),
            worktrees: Worktrees::default(),
            timeouts: Timeouts::default(),
            gates: crate::gates::GateSet::default(),
            policy: Policy::default(),
            docs: Vec::new(),
            merge: MergePolicy::default(),
            budget: Budget::default(),
            prices: BTreeMap::new(),
            identity: Identity::default(),
            sandbox: SandboxConfig::default(),
            planning: Planning::default(),
            route: Vec::new(),
            notify: BTreeMap::new(),
            remote: None,
            machine: None,
            machine_labels: Vec::new(),
        }
    }
}

impl Config {
    /// The profile named `name`: a configured agent, else a preset.
    pub(crate) fn agent(&self, name: &str) -> Result<AgentProfile, String> {
        if let Some(entry) = self.agents.get(name) {
            return entry.resolve().map_err(|e| format!("agent `{name}`: {e}"));
        }
        if PRESETS.contains(&name) {
            return AgentProfile::preset(name).map_err(|e| e.to_string());
        }
        let mut known: Vec<&str> = self.agents.keys().map(String::as_str).collect();
        known.extend(PRESETS.iter().filter(|p| !self.agents.contains_key(**p)));
        Err(format!(
            "no agent profile `{name}` (known: {})",
            known.join(", ")
        ))
    }
}

/// Where a value of the merged configuration came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub(crate) enum Source {
    Default,
    File(String),
    GitConfig(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {p}"),
            Source::GitConfig(k) => write!(f, "git config {k}"),
        }
    }
}

/// The configuration with the origin of every leaf value.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) config: Config,
    /// Leaf path (`roles.developer.count`) → where its value came from.
    pub(crate) sources: BTreeMap<String, Source>,
    /// The file, when one was read (for the committed file: where it is
    /// checked out in the main worktree).
    pub(crate) file: Option<PathBuf>,
    /// The branch (and its tip) the file was read from; `None` for the
    /// working-tree file of [`load_working_file`].
    pub(crate) base: Option<BaseFile>,
    /// The working tree's file differs from the committed one that is used.
    pub(crate) uncommitted: bool,
}

/// Where the sprint's `.git-sprint.yaml` was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct BaseFile {
    /// The base branch.
    pub(crate) branch: String,
    /// Its tip, or `None` when it has no commit yet (then defaults apply).
    pub(crate) commit: Option<String>,
}

impl Loaded {
    /// The one line to show when the working tree's file is not the one in
    /// use, e.g. "`.git-sprint.yaml` has uncommitted changes: not used until
    /// committed on main".
    pub(crate) fn notice(&self) -> Option<String> {
        self.uncommitted
            .then(|| notice_text(self.base.as_ref().map(|b| b.branch.as_str())))
    }

    /// Where the file came from, for people: `.git-sprint.yaml at main (1a2b3c4)`.
    pub(crate) fn origin(&self) -> String {
        match &self.base {
            Some(BaseFile {
                branch,
                commit: Some(c),
            }) => format!("{FILE_NAME} at {branch} ({})", crate::names::short_id(c)),
            Some(BaseFile {
                branch,
                commit: None,
            }) => format!("{FILE_NAME} on {branch} (no commit yet)"),
            None => self
                .file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| FILE_NAME.to_owned()),
        }
    }
}

fn notice_text(branch: Option<&str>) -> String {
    let on = branch.map(|b| format!(" on {b}")).unwrap_or_default();
    format!("`{FILE_NAME}` has uncommitted changes: not used until committed{on}")
}

/// [`Loaded::notice`] without loading the configuration (for `status`,
/// which must show the board even when the committed file is broken):
/// `None` when the main worktree `root` holds the committed file, or when
/// something cannot be read.
pub(crate) fn uncommitted_notice(repo: &gix::Repository, root: &Path) -> Option<String> {
    let overrides = git_overrides(git_config_dir(repo)).unwrap_or_default();
    let base = resolve_base(repo, &overrides);
    let committed = match base.as_deref().and_then(|b| branch_tip(repo, b)) {
        Some(c) => committed_file(repo, c, FILE_NAME).ok()?,
        None => None,
    };
    let here = match std::fs::read(path(root)) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(_) => return None,
    };
    (here != committed).then(|| notice_text(base.as_deref()))
}

/// The configuration file of the repository whose main worktree is `root`.
pub(crate) fn path(root: &Path) -> PathBuf {
    root.join(FILE_NAME)
}

/// The commented example, with the ready gate set `gates` (the text of one
/// of [`crate::gates::TEMPLATES`]) in place of its empty `gates:` section.
pub(crate) fn example(gates: Option<&str>) -> String {
    let Some(set) = gates else {
        return TEMPLATE.to_owned();
    };
    // The template ends with its `gates:` section; the set's header says
    // what its tools are, except the line telling a reader to copy it here.
    let head = TEMPLATE
        .find("\ngates:\n")
        .map_or(TEMPLATE, |at| &TEMPLATE[..=at]);
    let mut text = head.to_owned();
    for line in set.lines() {
        if line.starts_with("# Copy the `gates:` section") {
            continue;
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Writes the commented example (with the gate set `gates`, see
/// [`example`]) to `root` unless a file is there; returns the path when it
/// wrote one.
pub(crate) fn write_example(
    root: &Path,
    gates: Option<&str>,
) -> Result<Option<PathBuf>, ConfigError> {
    let file = path(root);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&file)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(example(gates).as_bytes())
                .map_err(|source| ConfigError::Read {
                    path: file.clone(),
                    source,
                })?;
            Ok(Some(file))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(source) => Err(ConfigError::Read { path: file, source }),
    }
}

/// The sprint's configuration for the repository at `git_dir` (any directory
/// of it) whose main worktree is `root`: the file committed at the base
/// branch's tip, with git config overrides (see the module docs).
pub(crate) fn load(root: &Path, git_dir: &Path) -> Result<Loaded, ConfigError> {
    let repo = gix::open(git_dir).map_err(|e| ConfigError::Git {
        what: format!("the repository at {}", git_dir.display()),
        source: Box::new(e),
    })?;
    load_from(&repo, Some(root))
}

/// [`load`] with a repository already open; `root` is the main worktree
/// whose file is compared with the committed one (`None`: no comparison).
pub(crate) fn load_from(
    repo: &gix::Repository,
    root: Option<&Path>,
) -> Result<Loaded, ConfigError> {
    let overrides = git_overrides(git_config_dir(repo))?;
    let base = resolve_base(repo, &overrides);
    let commit = base.as_deref().and_then(|b| branch_tip(repo, b));
    let origin = match (&base, commit) {
        (Some(b), Some(c)) => format!("{FILE_NAME} at {b} ({})", crate::names::short_id(&c)),
        _ => FILE_NAME.to_owned(),
    };
    let bytes = match commit {
        Some(c) => committed_file(repo, c, &origin)?,
        None => None,
    };
    let text = match &bytes {
        Some(b) => Some(std::str::from_utf8(b).map_err(|_| ConfigError::NotAFile {
            origin: origin.clone(),
            problem: "not UTF-8 text".into(),
        })?),
        None => None,
    };
    let mut loaded = merge(text, &origin, &overrides)?;
    if let Some(b) = &base {
        // A base found by the default-branch rules is the base, whatever
        // the built-in default says.
        if loaded.sources.get("base_branch") == Some(&Source::Default) {
            loaded.config.base_branch = b.clone();
        }
    }
    loaded.file = match (text.is_some(), root) {
        (true, Some(root)) => Some(path(root)),
        _ => None,
    };
    loaded.base = base.map(|branch| BaseFile {
        branch,
        commit: commit.map(|c| c.to_string()),
    });
    if let Some(root) = root {
        let here = match std::fs::read(path(root)) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path(root),
                    source,
                })
            }
        };
        loaded.uncommitted = here != bytes;
    }
    Ok(loaded)
}

/// The working tree's file of the main worktree `root` with git config
/// overrides: what `config edit` checks before the file is committed. The
/// sprint never runs on this; see [`load`].
pub(crate) fn load_working_file(root: &Path, git_dir: &Path) -> Result<Loaded, ConfigError> {
    let file = path(root);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(ConfigError::Read { path: file, source }),
    };
    let overrides = git_overrides(git_dir)?;
    let mut loaded = merge(text.as_deref(), &file.display().to_string(), &overrides)?;
    loaded.file = text.is_some().then_some(file);
    Ok(loaded)
}

/// The branch tasks.md is read from, workers start from and features merge
/// into: `git config sprint.base-branch`, else `base_branch` in the
/// `.git-sprint.yaml` committed on the default branch, else the default
/// branch: the remote's default branch, else `main` or `master` when one
/// exists, else the branch HEAD is on. Never the working tree's file: a
/// checked-out side branch must not be able to name itself the base.
pub(crate) fn base_branch(repo: &gix::Repository) -> Option<String> {
    let overrides = git_overrides(git_config_dir(repo)).unwrap_or_default();
    resolve_base(repo, &overrides)
}

fn git_config_dir(repo: &gix::Repository) -> &Path {
    repo.workdir().unwrap_or_else(|| repo.git_dir())
}

fn resolve_base(repo: &gix::Repository, overrides: &[(String, String)]) -> Option<String> {
    let from_git = overrides
        .iter()
        .rev()
        .find(|(k, _)| git_key_to_path(k).is_some_and(|p| p == ["base_branch"]))
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    if from_git.is_some() {
        return from_git;
    }
    let default = default_branch(repo)?;
    let named = branch_tip(repo, &default)
        .and_then(|c| committed_file(repo, c, FILE_NAME).ok().flatten())
        .and_then(|bytes| serde_yaml::from_slice::<Value>(&bytes).ok())
        .and_then(|v| v.get("base_branch")?.as_str().map(str::to_owned))
        .filter(|b| !b.trim().is_empty());
    Some(named.unwrap_or(default))
}

/// The remote's default branch, else `main` or `master`, else HEAD's branch.
fn default_branch(repo: &gix::Repository) -> Option<String> {
    use gix::bstr::ByteSlice;
    if let Ok(Some(r)) = repo.try_find_reference("refs/remotes/origin/HEAD") {
        if let gix::refs::TargetRef::Symbolic(name) = r.target() {
            if let Some(b) = name
                .as_bstr()
                .to_str_lossy()
                .strip_prefix("refs/remotes/origin/")
            {
                return Some(b.to_owned());
            }
        }
    }
    for b in ["main", "master"] {
        if let Ok(Some(_)) = repo.try_find_reference(format!("refs/heads/{b}").as_str()) {
            return Some(b.to_owned());
        }
    }
    repo.head_name()
        .ok()
        .flatten()
        .map(|n| n.shorten().to_str_lossy().into_owned())
}

/// The commit at the tip of local branch `branch`, if it has one.
fn branch_tip(repo: &gix::Repository, branch: &str) -> Option<gix::ObjectId> {
    let mut r = repo
        .try_find_reference(format!("refs/heads/{branch}").as_str())
        .ok()??;
    r.peel_to_commit().ok().map(|c| c.id)
}

/// The bytes of `.git-sprint.yaml` in `commit`'s tree, if it has one.
fn committed_file(
    repo: &gix::Repository,
    commit: gix::ObjectId,
    origin: &str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    Ok(committed_blob(repo, commit, FILE_NAME, origin)?.map(|(_, bytes)| bytes))
}

/// A file as committed at the base branch's tip: what the sprint runs on
/// for every committed file of its own (`.git-sprint.yaml`, the policy).
#[derive(Debug, Clone)]
pub(crate) struct CommittedFile {
    /// The base branch and its tip, when there is a base branch.
    pub(crate) base: Option<BaseFile>,
    /// The file's blob id and bytes; `None` when the tip has no such file.
    pub(crate) blob: Option<(gix::ObjectId, Vec<u8>)>,
}

/// The file at repository path `rel` as committed at the base branch's tip
/// (the base resolved as for [`load`]), never the working tree's copy.
pub(crate) fn committed_at_base(
    repo: &gix::Repository,
    rel: &str,
) -> Result<CommittedFile, ConfigError> {
    let overrides = git_overrides(git_config_dir(repo))?;
    let base = resolve_base(repo, &overrides);
    let commit = base.as_deref().and_then(|b| branch_tip(repo, b));
    let origin = match (&base, commit) {
        (Some(b), Some(c)) => format!("{rel} at {b} ({})", crate::names::short_id(&c)),
        _ => rel.to_owned(),
    };
    let blob = match commit {
        Some(c) => committed_blob(repo, c, rel, &origin)?,
        None => None,
    };
    Ok(CommittedFile {
        base: base.map(|branch| BaseFile {
            branch,
            commit: commit.map(|c| c.to_string()),
        }),
        blob,
    })
}

/// The blob id and bytes of `rel` in `commit`'s tree, if it has that file.
fn committed_blob(
    repo: &gix::Repository,
    commit: gix::ObjectId,
    rel: &str,
    origin: &str,
) -> Result<Option<(gix::ObjectId, Vec<u8>)>, ConfigError> {
    let git = |e: gix::Error| ConfigError::Git {
        what: format!("commit {commit}"),
        source: Box::new(e),
    };
    let tree = repo
        .find_commit(commit)
        .map_err(&git)?
        .tree()
        .map_err(&git)?;
    let Some(entry) = tree.lookup_entry_by_path(rel).map_err(&git)? else {
        return Ok(None);
    };
    if !entry.mode().is_blob() {
        // A committed link would make the config whatever it points at.
        let what = if entry.mode().is_link() {
            "a symlink"
        } else {
            "not a regular file"
        };
        return Err(ConfigError::NotAFile {
            origin: origin.to_owned(),
            problem: format!("is {what}"),
        });
    }
    let id = entry.object_id();
    let blob = entry.object().map_err(&git)?;
    Ok(Some((id, blob.detach().data)))
}

/// Merges defaults, the file's text and git config `(key, value)` pairs;
/// `origin` names the file in errors and sources.
pub(crate) fn merge(
    text: Option<&str>,
    origin: &str,
    overrides: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let file_name = origin.to_owned();
    let mut value = serde_yaml::to_value(Config::default()).expect("defaults serialize");
    let mut sources = BTreeMap::new();
    leaves(&value, "", &mut |p| {
        sources.insert(p, Source::Default);
    });
    if let Some(text) = text {
        let parsed: Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: file_name.clone(),
            message: e.to_string(),
        })?;
        match parsed {
            Value::Null => {}
            Value::Mapping(_) => {
                leaves(&parsed, "", &mut |p| {
                    sources.retain(|k, _| !(k.starts_with(&format!("{p}.")) || *k == p));
                    sources.insert(p, Source::File(file_name.clone()));
                });
                deep_merge(&mut value, parsed);
            }
            _ => return Err(ConfigError::Invalid {
                origin: file_name,
                key: "(top level)".into(),
                message:
                    "expected a mapping of sections (base_branch, agents, roles, setup, timeouts)"
                        .into(),
            }),
        }
    }
    for (key, raw) in overrides {
        let Some(path) = git_key_to_path(key) else {
            continue;
        };
        let scalar: Value = serde_yaml::from_str(raw).unwrap_or(Value::String(raw.clone()));
        let scalar = match scalar {
            Value::Mapping(_) | Value::Sequence(_) | Value::Null => Value::String(raw.clone()),
            v => v,
        };
        set_path(&mut value, &path, scalar).map_err(|message| ConfigError::Invalid {
            origin: format!("git config {key}"),
            key: path.join("."),
            message,
        })?;
        let dotted = path.join(".");
        sources.retain(|k, _| !k.starts_with(&format!("{dotted}.")));
        sources.insert(dotted, Source::GitConfig(key.clone()));
    }
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let origin = origin_of(&sources, &key).unwrap_or_else(|| file_name.clone());
        ConfigError::Invalid {
            origin,
            key,
            message: e.into_inner().to_string(),
        }
    })?;
    let invalid = |key: String, message: String| ConfigError::Invalid {
        origin: origin_of(&sources, &key).unwrap_or_else(|| file_name.clone()),
        key,
        message,
    };
    for (name, entry) in &config.agents {
        entry
            .resolve()
            .map_err(|message| invalid(format!("agents.{name}"), message))?;
    }
    for (role, r) in [
        ("developer", &config.roles.developer),
        ("tester", &config.roles.tester),
        ("librarian", &config.roles.librarian),
    ] {
        let key = format!("roles.{role}.agent");
        let profile = config
            .agent(&r.agent)
            .map_err(|m| invalid(key.clone(), m))?;
        // Sprint prompts hold task text and gate output, which agents can
        // shape: a profile that executes its prompt would run their code.
        if let Some(how) = profile.prompt_as_code() {
            return Err(invalid(
                key,
                format!(
                    "agent `{}` {how}, and a sprint's prompt holds task text and gate output: \
                     use a `command:` profile that reads $SPRINT_PROMPT_FILE as data, \
                     or use `{}` only with fleet commands (spawn, fanout, multi)",
                    r.agent, r.agent
                ),
            ));
        }
    }
    config
        .gates
        .validate()
        .map_err(|e| invalid(e.key().to_owned(), gate_message(&e)))?;
    for (i, gate) in config.gates.review.iter().enumerate() {
        // An AI Reviewer's profile, like a role's: it must exist, and must
        // not run its prompt (which holds the diff) as code.
        let Some(name) = gate.agent.as_deref() else {
            continue;
        };
        let key = format!("gates.review[{i}].agent");
        let profile = config.agent(name).map_err(|m| invalid(key.clone(), m))?;
        if let Some(how) = profile.prompt_as_code() {
            return Err(invalid(
                key,
                format!(
                    "agent `{name}` {how}, and a Reviewer's prompt holds the task's diff: \
                     use a `command:` profile that reads $SPRINT_PROMPT_FILE as data"
                ),
            ));
        }
    }
    check_bounds(&config).map_err(|(key, message)| invalid(key.into(), message.into()))?;
    check_routes(&config).map_err(|(key, message)| invalid(key, message))?;
    for (i, rel) in config.setup.copy.iter().enumerate() {
        if !crate::worker::worktree::is_safe_copy_path(rel) {
            return Err(invalid(
                format!("setup.copy[{i}]"),
                format!(
                    "`{}` must be a relative path inside the repository (no `..`, not absolute)",
                    rel.display()
                ),
            ));
        }
    }
    for (i, rel) in config.worktrees.keep.iter().enumerate() {
        if !crate::worker::worktree::is_safe_copy_path(rel) {
            return Err(invalid(
                format!("worktrees.keep[{i}]"),
                format!(
                    "`{}` must be a relative path inside the worktree (no `..`, not absolute)",
                    rel.display()
                ),
            ));
        }
    }
    for (name, receiver) in &config.notify {
        receiver.check(name).map_err(|(key, message)| {
            let key = if key.is_empty() {
                format!("notify.{name}")
            } else {
                format!("notify.{name}.{key}")
            };
            invalid(key, message)
        })?;
    }
    Ok(Loaded {
        config,
        sources,
        file: None,
        base: None,
        uncommitted: false,
    })
}

/// A gate error's message without its key (the caller names the key), with
/// its causes.
fn gate_message(e: &crate::gates::GateConfigError) -> String {
    let full = e.to_string();
    let mut out = full
        .strip_prefix(&format!("{}: ", e.key()))
        .unwrap_or(&full)
        .to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

/// Counts that must not be zero. A tester or librarian count of 0 is
/// allowed and means the role is off: with no Tester the test gates alone
/// decide, with no Librarian a finished convoy closes without a docs pass.
fn check_bounds(config: &Config) -> Result<(), (&'static str, &'static str)> {
    if config.roles.developer.count == 0 {
        return Err((
            "roles.developer.count",
            "must be at least 1: with no developer no task would ever start",
        ));
    }
    if config.policy.max_attempts == 0 {
        return Err((
            "policy.max_attempts",
            "must be at least 1: with 0 no task could ever be attempted",
        ));
    }
    if config.worktrees.pool > crate::worker::pool::MAX_POOL {
        return Err((
            "worktrees.pool",
            "must be at most 64: each pooled worktree is a full checkout kept on disk",
        ));
    }
    if config.policy.breaker_threshold == 0 {
        return Err((
            "policy.breaker_threshold",
            "must be at least 1 (failures in a row before an agent profile is paused)",
        ));
    }
    Ok(())
}

/// Route rules name profiles that exist, roles that exist and globs that build.
fn check_routes(config: &Config) -> Result<(), (String, String)> {
    for (i, rule) in config.route.iter().enumerate() {
        let names = rule.agent.list();
        if names.is_empty() {
            return Err((format!("route[{i}].agent"), "names no agent profile".into()));
        }
        let named = names
            .iter()
            .map(|n| ("agent", *n))
            .chain(rule.fallback.iter().map(|n| ("fallback", n.as_str())));
        for (key, name) in named {
            config
                .agent(name)
                .map_err(|m| (format!("route[{i}].{key}"), m))?;
        }
        if let Some(role) = &rule.when.role {
            if !["developer", "tester"].contains(&role.as_str()) {
                return Err((
                    format!("route[{i}].when.role"),
                    format!("`{role}` is not a routed role (developer or tester)"),
                ));
            }
        }
        for (j, g) in rule.when.paths.iter().enumerate() {
            if let Err(e) = globset::GlobBuilder::new(g).literal_separator(true).build() {
                return Err((format!("route[{i}].when.paths[{j}]"), e.to_string()));
            }
        }
    }
    for (name, entry) in &config.agents {
        if entry.capabilities.max_parallel == Some(0) {
            return Err((
                format!("agents.{name}.capabilities.max_parallel"),
                "must be at least 1 (leave it out for no limit)".into(),
            ));
        }
    }
    Ok(())
}

/// The source of `key` or of the nearest leaf under or above it.
fn origin_of(sources: &BTreeMap<String, Source>, key: &str) -> Option<String> {
    let mut candidates: Vec<(&String, &Source)> = sources
        .iter()
        .filter(|(k, _)| {
            *k == key || k.starts_with(&format!("{key}.")) || key.starts_with(&format!("{k}."))
        })
        .collect();
    candidates.sort_by_key(|(_, s)| match s {
        Source::GitConfig(_) => 0,
        Source::File(_) => 1,
        Source::Default => 2,
    });
    candidates.first().and_then(|(_, s)| match s {
        Source::Default => None,
        Source::File(f) => Some(f.clone()),
        Source::GitConfig(k) => Some(format!("git config {k}")),
    })
}

/// `sprint.roles.developer.count` → `["roles", "developer", "count"]`.
fn git_key_to_path(key: &str) -> Option<Vec<String>> {
    let rest = key.strip_prefix("sprint.")?;
    let mut parts: Vec<String> = rest.split('.').map(str::to_owned).collect();
    let last = parts.last_mut()?;
    *last = last.replace('-', "_");
    // git lowercases variable names: `baseBranch` arrives as `basebranch`.
    if parts.len() == 1 && parts[0] == "basebranch" {
        parts[0] = "base_branch".into();
    }
    Some(parts)
}

fn set_path(root: &mut Value, path: &[String], scalar: Value) -> Result<(), String> {
    let mut node = root;
    for (i, part) in path.iter().enumerate() {
        let Value::Mapping(map) = node else {
            return Err(format!(
                "`{}` is not a section, so `{}` cannot be set",
                path[..i].join("."),
                path.join(".")
            ));
        };
        let key = Value::String(part.clone());
        if i + 1 == path.len() {
            map.insert(key, scalar);
            return Ok(());
        }
        node = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    Err("empty key".into())
}

fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Calls `f` with the dotted path of every leaf (non-mapping value).
fn leaves(v: &Value, prefix: &str, f: &mut dyn FnMut(String)) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                };
                let p = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &p, f);
            }
        }
        _ => f(prefix.to_owned()),
    }
}

/// Every leaf of the merged configuration with its value as JSON text
/// (`"main"`, `3`), for people.
pub(crate) fn flatten(config: &Config) -> Vec<(String, String)> {
    values(config)
        .into_iter()
        .map(|(k, v)| (k, serde_json::to_string(&v).unwrap_or_default()))
        .collect()
}

/// Every leaf of the merged configuration with its typed value, for the
/// state and for tools.
pub(crate) fn values(config: &Config) -> Vec<(String, serde_json::Value)> {
    let value = serde_yaml::to_value(config).expect("config serializes");
    let mut out = Vec::new();
    collect(&value, "", &mut out);
    out
}

fn collect(v: &Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let k = k.as_str().map(str::to_owned).unwrap_or_default();
                let p = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                collect(v, &p, out);
            }
        }
        _ => {
            let value = serde_json::to_value(v).unwrap_or_default();
            out.push((prefix.to_owned(), value));
        }
    }
}

/// The state remote the committed `.git-sprint.yaml` names, for a store
/// opened without `git config sprint.remote`. Every store opens through
/// here (each command, each hook), so it stays in-process: git config is
/// read from gix's snapshot and only the `remote` key of the file is
/// parsed. A configuration that does not load names none here; the
/// commands that load it say why.
pub(crate) fn state_remote(repo: &gix::Repository) -> Option<String> {
    let config = repo.config_snapshot();
    let overrides: Vec<(String, String)> = ["sprint.base-branch", "sprint.baseBranch"]
        .iter()
        .find_map(|k| config.string(*k))
        .map(|b| vec![("sprint.base_branch".to_owned(), b.to_string())])
        .unwrap_or_default();
    let base = resolve_base(repo, &overrides)?;
    let bytes = committed_file(repo, branch_tip(repo, &base)?, FILE_NAME).ok()??;
    let file: Value = serde_yaml::from_slice(&bytes).ok()?;
    file.get("remote")?
        .as_str()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
}

/// `sprint.*` entries of git config, in the order git reports them (later wins).
fn git_overrides(dir: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let out = crate::worker::worktree::Git::new(dir)
        .command(["config", "--null", "--get-regexp", r"^sprint\."])
        .output()
        .map_err(|source| ConfigError::GitConfig {
            dir: dir.to_owned(),
            source,
        })?;
    // Exit 1 means no such keys.
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .split('\0')
        .filter(|e| !e.is_empty())
        .map(|e| match e.split_once('\n') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (e.to_owned(), "true".to_owned()),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    /// Every key the commented template shows must change behaviour: some
    /// code outside this file reads it as `<section>.<key>` (or the last
    /// key through a binding of its section). A key nothing reads fails.
    #[test]
    fn every_key_of_the_config_template_is_read_somewhere() {
        fn leaves(v: &Value, path: &str, out: &mut Vec<String>) {
            match v {
                // Maps keyed by user names are one key each.
                Value::Mapping(m)
                    if !m.is_empty() && !["agents", "prices", "gates"].contains(&path) =>
                {
                    for (k, v) in m {
                        let k = k.as_str().unwrap_or_default();
                        let p = if path.is_empty() {
                            k.to_owned()
                        } else {
                            format!("{path}.{k}")
                        };
                        leaves(v, &p, out);
                    }
                }
                _ => out.push(path.to_owned()),
            }
        }
        let template: Value = serde_yaml::from_str(TEMPLATE).unwrap();
        let mut keys = Vec::new();
        leaves(&template, "", &mut keys);
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        fn read_rs(dir: &Path, code: &mut String) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    read_rs(&p, code);
                } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("config.rs") {
                    code.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let mut code = String::new();
        read_rs(&src, &mut code);
        let mut unread = Vec::new();
        for key in &keys {
            let parts: Vec<&str> = key.split('.').collect();
            let last = parts[parts.len() - 1];
            let read = match parts.len() {
                // `agents` is read through `config.agent(name)`.
                1 => {
                    code.contains(&format!("config.{last}"))
                        || code.contains(&format!("config.{}(", last.trim_end_matches('s')))
                }
                _ => {
                    let section = parts[parts.len() - 2];
                    code.contains(&format!("{section}.{last}"))
                        || (code.contains(&format!(".{section}"))
                            && code.contains(&format!(".{last}")))
                }
            };
            if !read {
                unread.push(key.clone());
            }
        }
        assert!(keys.len() > 20, "{keys:?}");
        assert!(unread.is_empty(), "template keys nothing reads: {unread:?}");
    }

    use super::*;

    #[test]
    fn durations_print_as_clock_writes_them_and_read_back() {
        // Zero is refused on reading, but a value made in code still prints.
        assert_eq!(HumanDuration(Duration::ZERO).to_string(), "0s");
        for (secs, text) in [(10, "10s"), (600, "10m"), (5400, "1h30m"), (7200, "2h")] {
            let d = HumanDuration(Duration::from_secs(secs));
            assert_eq!(d.to_string(), text);
            let back: HumanDuration = serde_yaml::from_str(text).unwrap();
            assert_eq!(back, d, "{text}");
        }
    }

    fn load_text(text: &str, git: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let git: Vec<(String, String)> = git
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        merge(Some(text), "/r/.git-sprint.yaml", &git)
    }

    #[test]
    fn a_bad_chore_pattern_or_story_order_names_the_key() {
        let e = load_text("planning: { chore_patterns: ['^commit(' ] }\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("planning.chore_patterns"), "{e}");
        assert!(
            e.contains("chore pattern `^commit(` is not a valid regular expression"),
            "{e}"
        );
        let e = load_text("planning: { stories: sideways }\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("planning.stories"), "{e}");
        let ok = load_text("planning: { stories: serial, chores: run }\n", &[]).unwrap();
        assert_eq!(ok.config.planning.stories, StoryOrder::Serial);
        assert_eq!(ok.config.planning.chores, ChoreMode::Run);
        assert_eq!(
            ok.config.planning.chore_patterns.len(),
            crate::spec::DEFAULT_CHORES.len()
        );
    }

    #[test]
    fn template_is_valid_and_defaults_hold() {
        let loaded = load_text(TEMPLATE, &[]).unwrap();
        assert_eq!(loaded.config.roles.developer.count, 3);
        let none = merge(None, "x", &[]).unwrap();
        assert_eq!(none.config, Config::default());
        assert_eq!(none.sources["roles.tester.count"], Source::Default);
    }

    #[test]
    fn layers_merge_and_record_where_values_came_from() {
        let text = "roles:\n  developer:\n    count: 5\nagents:\n  fast:\n    preset: claude\n    model: haiku\n";
        let l = load_text(
            text,
            &[
                ("sprint.roles.developer.agent", "fast"),
                ("sprint.timeouts.lease", "20m"),
            ],
        )
        .unwrap();
        assert_eq!(l.config.roles.developer.count, 5);
        assert_eq!(l.config.roles.developer.agent, "fast");
        assert_eq!(l.config.roles.tester.count, 3);
        assert_eq!(l.config.timeouts.lease.0.as_secs(), 1200);
        assert_eq!(
            l.config.agent("fast").unwrap().model.as_deref(),
            Some("haiku")
        );
        assert!(l.config.agents.contains_key("claude"));
        assert!(matches!(
            l.sources["roles.developer.count"],
            Source::File(_)
        ));
        assert!(matches!(
            l.sources["roles.developer.agent"],
            Source::GitConfig(_)
        ));
        assert_eq!(l.sources["roles.tester.count"], Source::Default);
    }

    #[test]
    fn gates_are_checked_when_the_configuration_is_read() {
        let e = load_text("gates:\n  test:\n    - {name: ai, kind: agent}\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`gates.test[0].kind`") && e.contains("move it to gates.review"),
            "{e}"
        );
        let e = load_text(
            "gates:\n  review:\n    - {name: ai, kind: agent, agent: nope}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`gates.review[0].agent`") && e.contains("no agent profile `nope`"),
            "{e}"
        );
        let e = load_text(
            "gates:\n  review:\n    - {name: c, run: x, figure: {regex: '('}}\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`gates.review[0].figure.regex`: invalid regex: regex parse error"),
            "{e}"
        );
        let l = load_text(
            "gates:\n  review:\n    - {name: ai, kind: agent, agent: claude, timeout: 5m}\n",
            &[],
        )
        .unwrap();
        assert_eq!(l.config.gates.review[0].agent.as_deref(), Some("claude"));
    }

    #[test]
    fn mistakes_name_the_key_the_file_and_the_expectation() {
        let e = load_text("roles:\n  developer:\n    count: many\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/r/.git-sprint.yaml") && e.contains("roles.developer.count"),
            "{e}"
        );
        assert!(e.contains("u32") || e.contains("integer"), "{e}");

        let e = load_text("timeouts:\n  leese: 3m\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("leese") && e.contains("expected one of"), "{e}");

        let e = load_text("timeouts:\n  lease: soon\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeouts.lease") && e.contains("soon"), "{e}");

        let e = load_text("", &[("sprint.roles.developer.count", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("git config sprint.roles.developer.count"), "{e}");

        let e = load_text("roles:\n  developer:\n    agent: nope\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("roles.developer.agent") && e.contains("nope"),
            "{e}"
        );

        let e = load_text("agents:\n  x:\n    model: m\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("agents.x") && e.contains("preset"), "{e}");

        let e = load_text("base_branch: [", &[]).unwrap_err().to_string();
        assert!(e.contains("not valid YAML"), "{e}");
    }

    #[test]
    fn sandbox_takes_off_on_or_a_mapping_and_checks_writable_paths() {
        let on = load_text("", &[]).unwrap().config.sandbox;
        assert!(on.enabled && on.writable.is_empty());
        for (text, enabled) in [
            ("sandbox: off\n", false),
            ("sandbox: on\n", true),
            ("sandbox: false\n", false),
            ("sandbox:\n  enabled: false\n", false),
        ] {
            let l = load_text(text, &[]).unwrap();
            assert_eq!(l.config.sandbox.enabled, enabled, "{text}");
        }
        let l = load_text("sandbox:\n  writable: [~/.cargo, /opt/cache]\n", &[]).unwrap();
        assert!(l.config.sandbox.enabled);
        assert_eq!(l.config.sandbox.writable, ["~/.cargo", "/opt/cache"]);
        let l = load_text("", &[("sprint.sandbox", "off")]).unwrap();
        assert!(!l.config.sandbox.enabled);
        let l = load_text("", &[("sprint.sandbox.enabled", "false")]).unwrap();
        assert!(!l.config.sandbox.enabled);

        let e = load_text("sandbox: maybe\n", &[]).unwrap_err().to_string();
        assert!(
            e.contains("sandbox") && e.contains("expected off, on"),
            "{e}"
        );
        let e = load_text("sandbox:\n  writable: [cache]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sandbox") && e.contains("`cache`"), "{e}");
        let e = load_text("sandbox:\n  enabeld: false\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("enabeld"), "{e}");
    }

    #[test]
    fn an_agent_entry_says_how_its_output_reads() {
        let l = load_text(
            "agents:\n  mine:\n    command: [my-claude, -p, '{prompt}']\n    output: claude\n  c:\n    preset: codex\n",
            &[],
        )
        .unwrap();
        assert_eq!(l.config.agent("mine").unwrap().output, OutputFormat::Claude);
        assert_eq!(l.config.agent("c").unwrap().output, OutputFormat::Codex);
        let e = load_text("agents:\n  x:\n    preset: claude\n    output: xml\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("agents.x") && e.contains("xml"), "{e}");
    }

    #[test]
    fn zero_durations_and_counts_are_rejected_with_key_and_origin() {
        for (text, key) in [
            ("timeouts:\n  lease: 0s\n", "timeouts.lease"),
            ("timeouts:\n  hung: 0\n", "timeouts.hung"),
            ("timeouts:\n  gate: 0m\n", "timeouts.gate"),
            ("policy:\n  retry_backoff: 0s\n", "policy.retry_backoff"),
            (
                "policy:\n  breaker_cooldown: 0h\n",
                "policy.breaker_cooldown",
            ),
            (
                "roles:\n  developer:\n    count: 0\n",
                "roles.developer.count",
            ),
            ("policy:\n  max_attempts: 0\n", "policy.max_attempts"),
            (
                "policy:\n  breaker_threshold: 0\n",
                "policy.breaker_threshold",
            ),
        ] {
            let e = load_text(text, &[]).unwrap_err().to_string();
            assert!(
                e.starts_with("/r/.git-sprint.yaml: ") && e.contains(&format!("`{key}`")),
                "{text}: {e}"
            );
            assert!(e.contains("0s") || e.contains("at least 1"), "{e}");
        }
        let e = load_text("", &[("sprint.timeouts.lease", "0s")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("git config sprint.timeouts.lease: `timeouts.lease`"),
            "{e}"
        );
        // 0 testers or librarians turns the role off: still valid.
        let off = load_text(
            "roles:\n  tester:\n    count: 0\n  librarian:\n    count: 0\n",
            &[],
        )
        .unwrap();
        assert_eq!(off.config.roles.tester.count, 0);
    }

    #[test]
    fn a_role_whose_agent_runs_the_prompt_as_code_is_refused() {
        let e = load_text("roles:\n  developer:\n    agent: shell\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`roles.developer.agent`"), "{e}");
        assert!(e.contains("runs the prompt file as a script"), "{e}");
        assert!(
            e.contains("$SPRINT_PROMPT_FILE") && e.contains("fleet"),
            "{e}"
        );
        let e = load_text(
            "agents:\n  inline:\n    command: [bash, -c, 'agent \"{prompt}\"']\nroles:\n  tester:\n    agent: inline\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`roles.tester.agent`") && e.contains("inline"),
            "{e}"
        );
        let e = load_text("", &[("sprint.roles.librarian.agent", "shell")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("git config sprint.roles.librarian.agent"),
            "{e}"
        );
        // Defined but not given a role: fine (fleet commands may use it).
        load_text("agents:\n  s:\n    preset: shell\n", &[]).unwrap();
    }

    #[test]
    fn worktree_pool_is_bounded_and_keep_paths_stay_inside() {
        let e = load_text("worktrees:\n  pool: 65\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`worktrees.pool`") && e.contains("at most 64"),
            "{e}"
        );
        let e = load_text("worktrees:\n  keep: [target, ../up]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`worktrees.keep[1]`") && e.contains("../up"),
            "{e}"
        );
        let ok = load_text("worktrees:\n  pool: 0\n  keep: [target]\n", &[]).unwrap();
        assert_eq!(ok.config.worktrees.pool, 0);
        assert_eq!(Config::default().worktrees.pool, 4);
    }

    #[test]
    fn setup_copy_entries_must_stay_inside_the_repository() {
        for bad in ["../secrets", "/etc/passwd", "a/../../b"] {
            let text = format!("setup:\n  copy: [.env, '{bad}']\n");
            let e = load_text(&text, &[]).unwrap_err().to_string();
            assert!(e.contains("`setup.copy[1]`") && e.contains(bad), "{e}");
        }
        load_text("setup:\n  copy: [.env, config/local.toml]\n", &[]).unwrap();
    }

    /// `init --gates <set>` writes a file the loader takes, with the set's
    /// gates in every stage and the rest of the example unchanged.
    #[test]
    fn the_example_with_each_gate_set_loads_with_its_gates() {
        let plain: Config = serde_yaml::from_str(&example(None)).unwrap();
        for (name, set) in crate::gates::TEMPLATES {
            let text = example(Some(set));
            let loaded = load_text(&text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
            for stage in crate::gates::Stage::ALL {
                assert!(
                    !loaded.config.gates.stage(stage).is_empty(),
                    "{name}: {stage}"
                );
            }
            assert_eq!(loaded.config.roles, plain.roles, "{name}");
            assert!(!text.contains("Copy the `gates:` section"), "{name}");
        }
    }

    /// The keys of the schema, walked through serde itself: a mapping with
    /// an unknown key at `path` fails with the list of the fields expected
    /// there. Maps keyed by user names (`agents`, `prices`) are walked
    /// through one entry `<name>`; what names no struct is a leaf.
    fn schema_keys(path: &mut Vec<String>, out: &mut Vec<String>) {
        const PROBE: &str = "zz_no_such_key";
        let mut value =
            Value::Mapping([(Value::from(PROBE), Value::from(0))].into_iter().collect());
        for p in path.iter().rev() {
            value = Value::Mapping([(Value::from(p.as_str()), value)].into_iter().collect());
        }
        let err = match serde_yaml::from_value::<Config>(value) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        };
        let marker = format!("unknown field `{PROBE}`, expected ");
        let Some(rest) = err.split(&marker).nth(1) else {
            if path.len() == 1 && ["agents", "prices"].contains(&path[0].as_str()) {
                path.push("<name>".into());
                schema_keys(path, out);
                path.pop();
            } else {
                out.push(path.join("."));
            }
            return;
        };
        let fields: Vec<String> = rest
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        for f in fields {
            path.push(f);
            schema_keys(path, out);
            path.pop();
        }
    }

    /// Every key of the configuration is shown in the generated config
    /// (`git sprint init`'s commented file, where a commented-out line
    /// counts) or in the README (as `section.key`, or in a YAML example).
    #[test]
    fn every_key_of_the_schema_is_documented() {
        let mut keys = Vec::new();
        schema_keys(&mut Vec::new(), &mut keys);
        assert!(keys.len() > 30, "{keys:?}");
        assert!(keys.contains(&"merge.auto".to_owned()), "{keys:?}");
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
                .unwrap();
        // YAML keys as a file shows them: at a line's start (after any
        // comment mark) or inside a flow mapping.
        let shows_key = |text: &str, key: &str| {
            let key_re =
                regex::Regex::new(&format!(r"(?m)(^[\s#]*|[{{,]\s*){}:", regex::escape(key)))
                    .unwrap();
            key_re.is_match(text)
        };
        let mut missing = Vec::new();
        for key in &keys {
            let parts: Vec<&str> = key.split('.').filter(|p| *p != "<name>").collect();
            let in_template = parts.iter().all(|p| shows_key(TEMPLATE, p));
            let in_readme =
                readme.contains(&parts.join(".")) || parts.iter().all(|p| shows_key(&readme, p));
            if !in_template && !in_readme {
                missing.push(key.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "config keys documented nowhere: {missing:?}"
        );
    }

    /// The state tells typed settings from the JSON text older versions
    /// wrote by their numbers and booleans (`state::model::read_settings`).
    #[test]
    fn values_are_typed_and_include_numbers_and_booleans() {
        let values: BTreeMap<_, _> = values(&Config::default()).into_iter().collect();
        assert!(values["base_branch"].is_string(), "{values:?}");
        assert!(values.values().any(|v| v.is_number()), "{values:?}");
        assert!(values.values().any(|v| v.is_boolean()), "{values:?}");
    }

    #[test]
    fn git_keys_map_to_paths() {
        assert_eq!(
            git_key_to_path("sprint.base-branch").unwrap(),
            vec!["base_branch"]
        );
        assert_eq!(
            git_key_to_path("sprint.basebranch").unwrap(),
            vec!["base_branch"]
        );
        assert_eq!(
            git_key_to_path("sprint.agents.claude.model").unwrap(),
            vec!["agents", "claude", "model"]
        );
    }
}
