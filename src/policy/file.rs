//! Policy files and how their layers merge.
//!
//! Layers, first to last: the user's `~/.config/git-sprint/policy.yaml`
//! (`$XDG_CONFIG_HOME` honoured), then the repository's
//! `.git-sprint/policy.yaml` as committed at the base branch's tip (read the
//! way `.git-sprint.yaml` is, never from a task branch or the working tree),
//! then each file's `roles.<role>` section, then each file's
//! `agents.<profile>` section. Rules merge by id: a rule with a new id is
//! added; one with a known id replaces the earlier one only if it tightens it
//! (an action at least as strict, every earlier pattern kept, limits no
//! higher) or the earlier one is marked `overridable`. Anything else is an
//! error naming the file and line of both, and the orchestrator does not start
//! on an invalid policy. Every combination of sections is merged when the
//! policy loads, so a relaxation hiding in one agent's section is found by
//! `policy validate`, not by the task that first meets it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::diff::FileChange;
use globset::{Glob, GlobSet, GlobSetBuilder};

use super::rules::{Finding, Rule, RuleSpec};
use super::take::{Refused, Take, TakeSpec};
use crate::hint::Hint;

/// The repository's policy file, relative to its root.
pub(crate) const FILE_NAME: &str = ".git-sprint/policy.yaml";

/// The roles a section may name.
const ROLES: [&str; 3] = ["developer", "tester", "librarian"];

/// What is wrong with a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}:{line}: {message}")]
    Invalid {
        file: String,
        line: usize,
        message: String,
    },

    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("reading the committed {FILE_NAME}")]
    Committed(#[source] crate::config::ConfigError),
}

impl Hint for PolicyError {
    fn hint(&self) -> Option<String> {
        match self {
            PolicyError::Invalid { file, .. } if file.ends_with(FILE_NAME) => Some(format!(
                "fix {FILE_NAME}, commit it on the base branch, and check it with 'git sprint policy validate'"
            )),
            PolicyError::Invalid { .. } => {
                Some("fix the file; 'git sprint policy validate' checks it".into())
            }
            PolicyError::Committed(e) => e.hint(),
            PolicyError::Read { .. } => None,
        }
    }
}

/// One policy file's text and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    /// For people and errors: a path, or `main:.git-sprint/policy.yaml`.
    pub(crate) name: String,
    pub(crate) text: String,
    /// The blob id, for a committed file.
    pub(crate) blob: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileSpec {
    rules: Vec<RuleSpec>,
    roles: BTreeMap<String, Section>,
    agents: BTreeMap<String, Section>,
    take: Vec<TakeSpec>,
    concurrency: BTreeMap<String, u32>,
    protected_branches: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Section {
    rules: Vec<RuleSpec>,
}

/// The effective policy: every layer merged, for each role and profile.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    /// The layers read, first to last.
    pub(crate) layers: Vec<LayerInfo>,
    /// The blob id of the committed `.git-sprint/policy.yaml`, if any.
    pub(crate) blob: Option<String>,
    base: Vec<Rule>,
    /// Rules by (role section, agent section) named in some file.
    sections: BTreeMap<(Option<String>, Option<String>), Vec<Rule>>,
    /// Who may take which work.
    pub(crate) take: Vec<Take>,
    /// The most agents of a profile at once, and where the cap is written.
    pub(crate) concurrency: BTreeMap<String, (u32, String)>,
    /// Branch globs the Refinery never writes, with where each is written.
    pub(crate) protected_branches: Vec<(String, String)>,
    protected: GlobSet,
}

/// A layer as `policy show` names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct LayerInfo {
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) blob: Option<String>,
}

impl Policy {
    /// The rules for an agent of `profile` in `role`.
    pub(crate) fn rules_for(&self, role: &str, profile: &str) -> &[Rule] {
        let role = Some(role.to_owned());
        let profile = Some(profile.to_owned());
        for key in [
            (role.clone(), profile.clone()),
            (role, None),
            (None, profile),
        ] {
            if let Some(rules) = self.sections.get(&key) {
                return rules;
            }
        }
        &self.base
    }

    /// The rules every role and profile gets.
    pub(crate) fn base(&self) -> &[Rule] {
        &self.base
    }

    /// The sections some file names, with their merged rules.
    pub(crate) fn sections(&self) -> impl Iterator<Item = (String, &[Rule])> {
        self.sections.iter().map(|((role, agent), rules)| {
            let name = match (role, agent) {
                (Some(r), Some(a)) => format!("roles.{r} + agents.{a}"),
                (Some(r), None) => format!("roles.{r}"),
                (None, Some(a)) => format!("agents.{a}"),
                (None, None) => String::new(),
            };
            (name, rules.as_slice())
        })
    }

    /// What the rules for `role`/`profile` find in a task's change.
    pub(crate) fn judge(
        &self,
        role: &str,
        profile: &str,
        files: &[FileChange],
        task_paths: &[String],
    ) -> Vec<Finding> {
        self.rules_for(role, profile)
            .iter()
            .filter_map(|r| r.judge(files, task_paths))
            .collect()
    }

    /// Whether no layer holds a rule.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.base.is_empty()
            && self.sections.values().all(Vec::is_empty)
            && self.take.is_empty()
            && self.concurrency.is_empty()
            && self.protected_branches.is_empty()
    }

    /// Why `profile` (running `model`) may not take `role`'s work on a task
    /// labelled `labels`, if a `take` rule refuses it.
    pub(crate) fn may_take(
        &self,
        role: &str,
        profile: &str,
        model: Option<&str>,
        labels: &[String],
    ) -> Result<(), Refused> {
        for t in &self.take {
            if let Some(why) = t.spec.refuses(role, profile, model, labels) {
                return Err(Refused {
                    rule: t.spec.id.clone(),
                    origin: t.origin.clone(),
                    why,
                });
            }
        }
        Ok(())
    }

    /// The most agents of `profile` that may run at once, if capped.
    pub(crate) fn cap(&self, profile: &str) -> Option<u32> {
        self.concurrency.get(profile).map(|(n, _)| *n)
    }

    /// The protected-branch pattern `branch` matches, if any.
    pub(crate) fn protects(&self, branch: &str) -> Option<&str> {
        self.protected
            .matches(branch)
            .first()
            .map(|i| self.protected_branches[*i].0.as_str())
    }

    /// Merges `layers`, first to last (see the module docs).
    pub(crate) fn from_layers(layers: &[Layer]) -> Result<Policy, PolicyError> {
        let mut files = Vec::new();
        for layer in layers {
            files.push(parse(layer)?);
        }
        let mut base = Vec::new();
        let mut take: Vec<Take> = Vec::new();
        let mut concurrency: BTreeMap<String, (u32, String)> = BTreeMap::new();
        let mut protected_branches: Vec<(String, String)> = Vec::new();
        let mut protected = GlobSetBuilder::new();
        for (layer, spec) in layers.iter().zip(&files) {
            merge(&mut base, &spec.rules, layer, None)?;
            merge_take(&mut take, &spec.take, layer)?;
            for (profile, cap) in &spec.concurrency {
                let line = line_of(&layer.text, &format!("{profile}:"), 0);
                let invalid = |message: String| PolicyError::Invalid {
                    file: layer.name.clone(),
                    line,
                    message,
                };
                if *cap == 0 {
                    return Err(invalid(format!(
                        "concurrency.{profile}: must be at least 1 (a profile that may never run: leave it out of `roles`)"
                    )));
                }
                if let Some((old, at)) = concurrency.get(profile) {
                    if cap > old {
                        return Err(invalid(format!(
                            "concurrency.{profile}: {cap} raises the cap of {old} at {at}; a later layer may only lower it"
                        )));
                    }
                }
                concurrency.insert(profile.clone(), (*cap, format!("{}:{line}", layer.name)));
            }
            for pattern in &spec.protected_branches {
                let line = line_of_value(&layer.text, pattern);
                let glob = Glob::new(pattern).map_err(|e| PolicyError::Invalid {
                    file: layer.name.clone(),
                    line,
                    message: format!("protected_branches: `{pattern}` is not a valid glob: {e}"),
                })?;
                protected.add(glob);
                protected_branches.push((pattern.clone(), format!("{}:{line}", layer.name)));
            }
        }
        let protected = protected.build().unwrap_or_else(|_| GlobSet::empty());
        let roles: BTreeSet<String> = files.iter().flat_map(|f| f.roles.keys().cloned()).collect();
        let agents: BTreeSet<String> = files
            .iter()
            .flat_map(|f| f.agents.keys().cloned())
            .collect();
        let mut sections = BTreeMap::new();
        let role_keys: Vec<Option<String>> = std::iter::once(None)
            .chain(roles.iter().cloned().map(Some))
            .collect();
        let agent_keys: Vec<Option<String>> = std::iter::once(None)
            .chain(agents.iter().cloned().map(Some))
            .collect();
        for role in &role_keys {
            for agent in &agent_keys {
                if role.is_none() && agent.is_none() {
                    continue;
                }
                let mut rules = base.clone();
                if let Some(r) = role {
                    for (layer, spec) in layers.iter().zip(&files) {
                        if let Some(s) = spec.roles.get(r) {
                            merge(&mut rules, &s.rules, layer, Some(&format!("roles.{r}")))?;
                        }
                    }
                }
                if let Some(a) = agent {
                    for (layer, spec) in layers.iter().zip(&files) {
                        if let Some(s) = spec.agents.get(a) {
                            merge(&mut rules, &s.rules, layer, Some(&format!("agents.{a}")))?;
                        }
                    }
                }
                sections.insert((role.clone(), agent.clone()), rules);
            }
        }
        Ok(Policy {
            layers: layers
                .iter()
                .map(|l| LayerInfo {
                    name: l.name.clone(),
                    blob: l.blob.clone(),
                })
                .collect(),
            blob: layers.iter().rev().find_map(|l| l.blob.clone()),
            base,
            sections,
            take,
            concurrency,
            protected_branches,
            protected,
        })
    }
}

/// The file parsed, with a bad key or value reported at its line.
fn parse(layer: &Layer) -> Result<FileSpec, PolicyError> {
    let invalid = |line: usize, message: String| PolicyError::Invalid {
        file: layer.name.clone(),
        line,
        message,
    };
    let value: serde_yaml::Value = serde_yaml::from_str(&layer.text).map_err(|e| {
        invalid(
            e.location().map_or(1, |l| l.line()),
            format!("not valid YAML: {e}"),
        )
    })?;
    if value.is_null() {
        return Ok(FileSpec::default());
    }
    let spec: FileSpec = serde_yaml::from_str(&layer.text).map_err(|e| {
        let line = e.location().map_or(1, |l| l.line());
        let message = e.to_string();
        // serde_yaml appends " at line N column M"; the line is said already.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        invalid(line, message)
    })?;
    for name in spec.roles.keys() {
        if !ROLES.contains(&name.as_str()) {
            return Err(invalid(
                line_of(&layer.text, &format!("{name}:"), 0),
                format!(
                    "`roles.{name}`: no such role (roles are {})",
                    ROLES.join(", ")
                ),
            ));
        }
    }
    Ok(spec)
}

/// Merges `specs` (one section of `layer`) into `rules`.
fn merge(
    rules: &mut Vec<Rule>,
    specs: &[RuleSpec],
    layer: &Layer,
    section: Option<&str>,
) -> Result<(), PolicyError> {
    let mut seen = BTreeSet::new();
    for (i, spec) in specs.iter().enumerate() {
        let nth = specs[..i].iter().filter(|s| s.id == spec.id).count();
        let line = line_of_id(&layer.text, &spec.id, section, nth);
        let invalid = |message: String| PolicyError::Invalid {
            file: layer.name.clone(),
            line,
            message,
        };
        if spec.id.trim().is_empty() {
            return Err(invalid("a rule needs a non-empty `id`".into()));
        }
        if !seen.insert(spec.id.clone()) {
            return Err(invalid(format!(
                "rule `{}` is defined twice in the same section; give each rule its own id",
                spec.id
            )));
        }
        let origin = format!("{}:{line}", layer.name);
        let mut rule = Rule::compile(spec.clone(), origin).map_err(invalid)?;
        match rules.iter_mut().find(|r| r.spec.id == spec.id) {
            None => rules.push(rule),
            Some(old) => {
                if !(spec.tightens(&old.spec) || old.spec.overridable) {
                    return Err(invalid(format!(
                        "rule `{}` relaxes the rule at {}, which is not `overridable`: a later layer may only tighten it \
                         (an action at least as strict, every earlier pattern kept, limits no higher)",
                        spec.id, old.origin
                    )));
                }
                // A locked rule stays locked however it is tightened.
                rule.spec.overridable = spec.overridable && old.spec.overridable;
                rule.overrides = old.overrides.clone();
                rule.overrides
                    .push(format!("{} ({})", old.origin, old.spec.action.as_str()));
                *old = rule;
            }
        }
    }
    Ok(())
}

/// Merges `take` rules by id, as [`merge`] does rules.
fn merge_take(takes: &mut Vec<Take>, specs: &[TakeSpec], layer: &Layer) -> Result<(), PolicyError> {
    for (i, spec) in specs.iter().enumerate() {
        let nth = specs[..i].iter().filter(|s| s.id == spec.id).count();
        let line = line_of_id(&layer.text, &spec.id, Some("take"), nth);
        let invalid = |message: String| PolicyError::Invalid {
            file: layer.name.clone(),
            line,
            message,
        };
        spec.check().map_err(invalid)?;
        if nth > 0 {
            return Err(invalid(format!(
                "take rule `{}` is defined twice; give each rule its own id",
                spec.id
            )));
        }
        let origin = format!("{}:{line}", layer.name);
        match takes.iter_mut().find(|t| t.spec.id == spec.id) {
            None => takes.push(Take {
                spec: spec.clone(),
                origin,
            }),
            Some(old) => {
                if !(spec.tightens(&old.spec) || old.spec.overridable) {
                    return Err(invalid(format!(
                        "take rule `{}` widens the rule at {}, which is not `overridable`: a later layer may only allow fewer agents or models",
                        spec.id, old.origin
                    )));
                }
                let overridable = spec.overridable && old.spec.overridable;
                *old = Take {
                    spec: TakeSpec {
                        overridable,
                        ..spec.clone()
                    },
                    origin,
                };
            }
        }
    }
    Ok(())
}

/// The 1-based line of the first line that holds `value` as a YAML scalar
/// (a list item or inside a flow list), or 1.
fn line_of_value(text: &str, value: &str) -> usize {
    text.lines()
        .position(|l| {
            l.contains(&format!("'{value}'"))
                || l.contains(&format!("\"{value}\""))
                || l.trim_start().trim_start_matches("- ").trim() == value
                || l.contains(&format!("[{value}"))
                || l.contains(&format!(" {value},"))
                || l.contains(&format!(" {value}]"))
        })
        .map_or(1, |i| i + 1)
}

/// The 1-based line of the `nth` (from 0) rule `id` in `text` (inside
/// `section`, when given, e.g. `agents.codex`), or 1 when it cannot be told.
fn line_of_id(text: &str, id: &str, section: Option<&str>, nth: usize) -> usize {
    let from = section
        .and_then(|s| s.rsplit('.').next())
        .map(|name| line_of(text, &format!("{name}:"), 0))
        .unwrap_or(0);
    let lines: Vec<&str> = text.lines().collect();
    let is_id = |l: &str| {
        let l = l.trim_start().trim_start_matches(['-', '{', ' ']);
        let Some(rest) = l.strip_prefix("id:") else {
            return l.contains(&format!(" id: {id},")) || l.contains(&format!("{{id: {id},"));
        };
        let v = rest
            .split([',', '}', '#'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(['"', '\'']);
        v == id
    };
    lines
        .iter()
        .enumerate()
        .skip(from.saturating_sub(1))
        .filter(|(_, l)| is_id(l))
        .nth(nth)
        .map_or(1, |(i, _)| i + 1)
}

/// The 1-based line of the first line (from index `from`) whose trimmed
/// text starts with `needle`, or 1.
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.trim_start().starts_with(needle))
        .map_or(1, |(i, _)| i + 1)
}

/// The user's policy file: `$XDG_CONFIG_HOME/git-sprint/policy.yaml`, else
/// `~/.config/git-sprint/policy.yaml`.
pub(crate) fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("git-sprint").join("policy.yaml"))
}

/// The user's layer, if the file exists.
fn user_layer() -> Result<Option<Layer>, PolicyError> {
    let Some(path) = user_file() else {
        return Ok(None);
    };
    read_layer(&path)
}

fn read_layer(path: &Path) -> Result<Option<Layer>, PolicyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(Layer {
            name: path.display().to_string(),
            text,
            blob: None,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PolicyError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The policy the sprint runs on: the user's file, then the repository's as
/// committed at the base branch's tip.
pub(crate) fn load(repo: &gix::Repository) -> Result<Policy, PolicyError> {
    let mut layers: Vec<Layer> = user_layer()?.into_iter().collect();
    let committed =
        crate::config::committed_at_base(repo, FILE_NAME).map_err(PolicyError::Committed)?;
    if let Some((id, bytes)) = committed.blob {
        let name = match &committed.base {
            Some(b) => format!("{}:{FILE_NAME}", b.branch),
            None => FILE_NAME.to_owned(),
        };
        let text = String::from_utf8(bytes).map_err(|_| PolicyError::Invalid {
            file: name.clone(),
            line: 1,
            message: "not UTF-8 text".into(),
        })?;
        layers.push(Layer {
            name,
            text,
            blob: Some(id.to_string()),
        });
    }
    Policy::from_layers(&layers)
}

/// The policy with the working tree's file of `root` in place of the
/// committed one: what `policy validate` checks before a commit.
pub(crate) fn load_working(root: &Path) -> Result<Option<Policy>, PolicyError> {
    let Some(here) = read_layer(&root.join(FILE_NAME))? else {
        return Ok(None);
    };
    let mut layers: Vec<Layer> = user_layer()?.into_iter().collect();
    layers.push(Layer {
        name: FILE_NAME.to_owned(),
        ..here
    });
    Policy::from_layers(&layers).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(name: &str, text: &str) -> Layer {
        Layer {
            name: name.into(),
            text: text.into(),
            blob: None,
        }
    }

    const USER: &str = "\
rules:
  - id: ci
    action: require_approval
    paths: ['.github/**']
  - id: size
    action: warn
    max_lines: 400
    overridable: true
";

    #[test]
    fn a_later_layer_tightens_adds_and_relaxes_only_what_is_overridable() {
        let repo = "\
rules:
  - id: ci
    action: deny
    paths: ['.github/**', '.gitlab-ci.yml']
  - id: size
    action: off
    max_lines: 400
  - id: mig
    action: deny
    paths: ['migrations/**']
";
        let p =
            Policy::from_layers(&[layer("user.yaml", USER), layer("main:p.yaml", repo)]).unwrap();
        let ids: Vec<(&str, &str)> = p
            .base()
            .iter()
            .map(|r| (r.spec.id.as_str(), r.spec.action.as_str()))
            .collect();
        assert_eq!(ids, vec![("ci", "deny"), ("size", "off"), ("mig", "deny")]);
        let ci = &p.base()[0];
        assert_eq!(ci.origin, "main:p.yaml:2");
        assert_eq!(ci.overrides, vec!["user.yaml:2 (require_approval)"]);
        assert!(!ci.spec.overridable);
    }

    #[test]
    fn relaxing_a_locked_rule_names_both_places() {
        let repo = "rules:\n  - id: ci\n    action: warn\n    paths: ['.github/**']\n";
        let e = Policy::from_layers(&[layer("user.yaml", USER), layer("main:p.yaml", repo)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("main:p.yaml:2: rule `ci` relaxes the rule at user.yaml:2"),
            "{e}"
        );
    }

    #[test]
    fn role_and_agent_sections_layer_over_the_base() {
        let repo = "\
rules:
  - id: mig
    action: require_approval
    overridable: true
    paths: ['migrations/**']
roles:
  developer:
    rules:
      - id: scope
        action: warn
        scope: true
agents:
  codex:
    rules:
      - id: mig
        action: deny
        paths: ['migrations/**']
  trusted:
    rules:
      - id: mig
        action: off
        paths: ['migrations/**']
";
        let p = Policy::from_layers(&[layer("main:p.yaml", repo)]).unwrap();
        let action = |role: &str, agent: &str, id: &str| {
            p.rules_for(role, agent)
                .iter()
                .find(|r| r.spec.id == id)
                .map(|r| r.spec.action.as_str())
        };
        assert_eq!(action("developer", "codex", "mig"), Some("deny"));
        assert_eq!(action("developer", "codex", "scope"), Some("warn"));
        assert_eq!(
            action("developer", "claude", "mig"),
            Some("require_approval")
        );
        assert_eq!(action("tester", "claude", "scope"), None);
        assert_eq!(action("tester", "trusted", "mig"), Some("off"));
        let agent_line = p.rules_for("tester", "codex")[0].origin.clone();
        assert_eq!(agent_line, "main:p.yaml:15");
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let cases = [
            ("rules:\n  - id: a\n    action: deny\n    paths: ['[']\n", "p:2: rule `a`: `[` is not a valid glob"),
            ("rules:\n  - id: a\n    action: never\n    paths: [x]\n", "p:3: rules[0].action: unknown variant `never`"),
            ("rules:\n  - id: a\n    action: deny\n", "p:2: rule `a` tests nothing"),
            ("rules: [\n", "p:2: not valid YAML"),
            ("roles:\n  reviewer:\n    rules: []\n", "p:2: `roles.reviewer`: no such role"),
            ("rules:\n  - id: a\n    action: deny\n    paths: [x]\n  - id: a\n    action: deny\n    paths: [y]\n", "p:5: rule `a` is defined twice"),
            ("rule: []\n", "p:1: unknown field `rule`"),
        ];
        for (text, want) in cases {
            let e = Policy::from_layers(&[layer("p", text)])
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}");
        }
        assert!(Policy::from_layers(&[layer("p", "")]).unwrap().is_empty());
    }

    #[test]
    fn caps_only_go_down_protected_branches_add_up_and_take_rules_narrow() {
        let user = "take:\n  - id: sec\n    labels: [security]\n    agents: [claude, codex]\nconcurrency:\n  codex: 2\nprotected_branches: [main]\n";
        let repo = "take:\n  - id: sec\n    labels: [security]\n    agents: [claude]\nconcurrency:\n  codex: 1\nprotected_branches: ['release/*']\n";
        let p = Policy::from_layers(&[layer("u", user), layer("r", repo)]).unwrap();
        assert_eq!(p.cap("codex"), Some(1));
        assert_eq!(p.protects("main"), Some("main"));
        assert_eq!(p.protects("release/1.0"), Some("release/*"));
        assert_eq!(p.protects("sprint/f/integration"), None);
        let sec = vec!["security".to_owned()];
        let refused = p.may_take("developer", "codex", None, &sec).unwrap_err();
        assert_eq!(
            (refused.rule.as_str(), refused.origin.as_str()),
            ("sec", "r:2")
        );
        assert!(p.may_take("developer", "claude", None, &sec).is_ok());

        let raise = "concurrency:\n  codex: 3\n";
        let e = Policy::from_layers(&[layer("u", user), layer("r", raise)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r:2: concurrency.codex: 3 raises the cap of 2 at u:6"),
            "{e}"
        );
        let widen =
            "take:\n  - id: sec\n    labels: [security]\n    agents: [claude, codex, gemini]\n";
        let e = Policy::from_layers(&[layer("u", user), layer("r", widen)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r:2: take rule `sec` widens the rule at u:2"),
            "{e}"
        );
        let bad = "protected_branches: ['[']\n";
        let e = Policy::from_layers(&[layer("r", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("r:1: protected_branches: `[` is not a valid glob"),
            "{e}"
        );
    }

    #[test]
    fn the_user_file_honours_xdg_config_home() {
        // Read, not set: tests run in parallel and share the environment.
        let want = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("git-sprint/policy.yaml"),
            None => match std::env::var_os("HOME") {
                Some(h) => PathBuf::from(h).join(".config/git-sprint/policy.yaml"),
                None => return,
            },
        };
        assert_eq!(user_file(), Some(want));
    }
}
