//! The `gates:` section of the project configuration: stages, gates, figures and
//! templates, and the checks that name the offending YAML key.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::parse_duration;

/// The timeout of a gate that names none.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Ready gate sets, by toolchain: YAML with a top-level `gates:` key, commented for
/// a user to copy into the project configuration.
pub(crate) const TEMPLATES: [(&str, &str); 3] = [
    ("rust", include_str!("../../templates/gates/rust.yaml")),
    ("python", include_str!("../../templates/gates/python.yaml")),
    ("node", include_str!("../../templates/gates/node.yaml")),
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
    pub(crate) const ALL: [Stage; 4] = [
        Stage::Review,
        Stage::Test,
        Stage::Security,
        Stage::PostMerge,
    ];

    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct GateSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) review: Vec<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) test: Vec<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) security: Vec<Gate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) post_merge: Vec<Gate>,
}

/// What judges a gate: a command, or an AI Reviewer (review stage only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum GateKind {
    /// `run`, a shell command; exit 0 (and the figure in bounds) passes.
    #[default]
    Command,
    /// A Reviewer agent reads the task and its diff and writes a verdict:
    /// APPROVE passes, REQUEST_CHANGES fails with its comments as feedback.
    Agent,
}

/// One configured gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Unique within its stage; shown in feedback and stored with the task.
    pub(crate) name: String,
    /// `command` (the default) or `agent` (an AI Reviewer at the CAB).
    #[serde(default, skip_serializing_if = "GateKind::is_command")]
    pub(crate) kind: GateKind,
    /// A shell command line, run with `sh -c` in the worktree (command gates).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) run: String,
    /// The agent profile of an `agent` gate's Reviewer; the developer's if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) agent: Option<String>,
    /// A duration such as `90s`, `10m` or `1h30m` (a bare number is seconds); 10m if unset.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "duration_text"
    )]
    pub(crate) timeout: Option<String>,
    /// A number to extract from the output and hold to a threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) figure: Option<Figure>,
    /// Extra environment for the command; these win over the caller's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) env: BTreeMap<String, String>,
    /// Run only when the diff touches one of these (globs; `*` stays inside a
    /// directory, `**` crosses them; a plain path also covers what is under it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) paths: Option<Vec<String>>,
}

impl GateKind {
    pub(crate) fn is_command(&self) -> bool {
        *self == GateKind::Command
    }
}

/// A number pulled out of a gate's output, e.g. a coverage percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Figure {
    /// A regex with exactly one capture group, the number; the last match counts.
    pub(crate) regex: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max: Option<f64>,
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
pub(crate) enum GateConfigError {
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
    pub(crate) fn key(&self) -> &str {
        match self {
            GateConfigError::Invalid { key, .. }
            | GateConfigError::Regex { key, .. }
            | GateConfigError::Glob { key, .. } => key,
        }
    }

    pub(super) fn invalid(key: String, message: impl Into<String>) -> Self {
        GateConfigError::Invalid {
            key,
            message: message.into(),
        }
    }
}

impl GateSet {
    pub(crate) fn stage(&self, stage: Stage) -> &[Gate] {
        match stage {
            Stage::Review => &self.review,
            Stage::Test => &self.test,
            Stage::Security => &self.security,
            Stage::PostMerge => &self.post_merge,
        }
    }

    /// Checks every gate; keys in errors start with `gates.`.
    pub(crate) fn validate(&self) -> Result<(), GateConfigError> {
        self.validate_under("gates")
    }

    /// Checks every gate, naming keys under `prefix` (e.g. `sprint.gates`).
    pub(crate) fn validate_under(&self, prefix: &str) -> Result<(), GateConfigError> {
        for stage in Stage::ALL {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, gate) in self.stage(stage).iter().enumerate() {
                let key = format!("{prefix}.{stage}[{i}]");
                gate.validate(&key)?;
                if gate.kind == GateKind::Agent && stage != Stage::Review {
                    return Err(GateConfigError::invalid(
                        format!("{key}.kind"),
                        format!(
                            "an `agent` gate is an AI Reviewer at the CAB: move it to {prefix}.review"
                        ),
                    ));
                }
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
    pub(crate) fn validate(&self, key: &str) -> Result<(), GateConfigError> {
        if self.name.trim().is_empty() {
            return Err(GateConfigError::invalid(
                format!("{key}.name"),
                "must not be empty",
            ));
        }
        if self.kind == GateKind::Agent {
            return self.validate_agent(key);
        }
        if self.run.trim().is_empty() {
            return Err(GateConfigError::invalid(
                format!("{key}.run"),
                "must not be empty",
            ));
        }
        if self.agent.is_some() {
            return Err(GateConfigError::invalid(
                format!("{key}.agent"),
                "only an `agent` gate runs an agent: add `kind: agent` or remove the key",
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

    /// An `agent` gate takes a Reviewer's profile and a timeout; what only
    /// a command has is refused rather than ignored.
    fn validate_agent(&self, key: &str) -> Result<(), GateConfigError> {
        let refuse = |field: &str, why: &str| {
            Err(GateConfigError::invalid(
                format!("{key}.{field}"),
                why.to_owned(),
            ))
        };
        if !self.run.is_empty() {
            return refuse(
                "run",
                "an `agent` gate runs a Reviewer, not a command: remove `run` (or `kind: agent`)",
            );
        }
        if self.figure.is_some() {
            return refuse(
                "figure",
                "a Reviewer's verdict has no figure: remove the key",
            );
        }
        if !self.env.is_empty() {
            return refuse(
                "env",
                "a Reviewer gets the agent profile's environment: set `env` on the profile",
            );
        }
        if self.paths.is_some() {
            return refuse(
                "paths",
                "an `agent` gate reviews every change: remove `paths`",
            );
        }
        if self.agent.as_deref().is_some_and(|a| a.trim().is_empty()) {
            return refuse(
                "agent",
                "must name an agent profile, or be left out for the developer's",
            );
        }
        self.timeout_in(key)?;
        Ok(())
    }

    /// The gate's timeout: its `timeout`, or [`DEFAULT_TIMEOUT`].
    pub(crate) fn timeout(&self) -> Result<Duration, GateConfigError> {
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
    pub(crate) fn applies_to<S: AsRef<str>>(&self, changed: &[S]) -> bool {
        match self.path_matcher("gate") {
            Ok(Some(set)) => changed.iter().any(|p| set.is_match(p.as_ref())),
            Ok(None) | Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::run::error_chain;
    use super::*;

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
            ("review: [{name: t, kind: agent, run: x}]", "gates.review[0].run"),
            ("review: [{name: t, kind: agent, figure: {regex: '(\\d+)'}}]", "gates.review[0].figure"),
            ("review: [{name: t, kind: agent, env: {A: b}}]", "gates.review[0].env"),
            ("review: [{name: t, kind: agent, paths: [src]}]", "gates.review[0].paths"),
            ("review: [{name: t, kind: agent, agent: ' '}]", "gates.review[0].agent"),
            ("review: [{name: t, kind: agent, timeout: 0s}]", "gates.review[0].timeout"),
            ("review: [{name: t, run: x, agent: claude}]", "gates.review[0].agent"),
            ("review: [{name: t}]", "gates.review[0].run"),
            ("test: [{name: t, kind: agent}]", "gates.test[0].kind"),
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
        let set = parse("review: [{name: ai, kind: agent, agent: claude, timeout: 20m}]");
        set.validate().unwrap();
        assert_eq!(set.review[0].kind, GateKind::Agent);
        assert_eq!(set.review[0].timeout().unwrap(), Duration::from_secs(1200));
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
}
