//! Skills: instructions a project gives its agents, chosen per task.
//!
//! A skill is a directory `.git-sprint/skills/<name>/` holding a `SKILL.md`
//! (YAML front matter, then Markdown) and any files it refers to. Shared
//! skills sit directly under `skills/`; a profile's own skills under
//! `skills/@<profile>/<name>/`, and one of those replaces a shared skill of
//! the same name for that profile. The front matter says which tasks get the
//! skill (`applies_to`: roles, task labels, path globs; an empty list matches
//! everything) and which other skills it needs (`requires`), so a task's
//! skills are the matching ones plus everything they require.
//!
//! Skills are read from the base branch's tip, like `.git-sprint.yaml`: they
//! are instructions the orchestrator hands to agents, so they must be what a
//! person committed on the branch the work merges into, never a task
//! branch's copy. The front matter is Claude Code's SKILL.md format extended
//! with three keys; other keys (`allowed-tools`, …) are kept for the CLIs
//! that read the file natively ([`deliver`]).

pub(crate) mod deliver;

use std::collections::{BTreeMap, BTreeSet};

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::hint::Hint;

/// Where skills live in the base branch's tree.
pub(crate) const DIR: &str = ".git-sprint/skills";
/// The file that makes a directory a skill.
pub(crate) const FILE: &str = "SKILL.md";
/// Roles a skill may name in `applies_to.roles`.
pub(crate) const ROLES: &[&str] = &["developer", "tester", "librarian"];

/// Something wrong with the project's skills.
#[derive(Debug, Error)]
pub enum SkillError {
    #[error("reading {what}")]
    Git {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{path}: {problem}")]
    Invalid { path: String, problem: String },
    #[error(
        "skill `{skill}` ({path}) requires `{requires}`, which {whom} has no skill of that name"
    )]
    MissingRequirement {
        skill: String,
        path: String,
        requires: String,
        whom: String,
    },
    #[error("no skill `{name}`{}", profile.as_ref().map(|p| format!(" for profile `{p}`")).unwrap_or_default())]
    Unknown {
        name: String,
        profile: Option<String>,
        known: Vec<String>,
    },
    #[error("{doing} {}", path.display())]
    Io {
        doing: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Hint for SkillError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            SkillError::Git { .. } => "check that the base branch's commit is readable (git fsck)".into(),
            SkillError::Invalid { .. } => format!(
                "fix the file and commit it on the base branch; a {FILE} starts with `---`, YAML with `name` and `description`, then `---`"
            ),
            SkillError::MissingRequirement { requires, .. } => format!(
                "add {DIR}/{requires}/{FILE}, or remove `{requires}` from `requires`"
            ),
            SkillError::Unknown { known, .. } if known.is_empty() => {
                format!("no skills are committed: add {DIR}/<name>/{FILE} on the base branch")
            }
            SkillError::Unknown { known, .. } => format!("known skills: {}", known.join(", ")),
            SkillError::Io { .. } => return None,
        })
    }
}

/// Which tasks get a skill; every non-empty list must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AppliesTo {
    /// Roles, e.g. `developer`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) roles: Vec<String>,
    /// Task labels (tasks.md tags such as `US1` or `Risk: High`, and the
    /// languages of its paths); any one matches, case-insensitively.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) labels: Vec<String>,
    /// Globs over the task's paths (`src/**/*.rs`); any one matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) paths: Vec<String>,
}

/// The keys of a SKILL.md's front matter this tool reads; the rest are the
/// CLIs' own.
#[derive(Debug, Deserialize)]
struct FrontMatter {
    name: String,
    description: String,
    #[serde(default)]
    version: Option<serde_yaml::Value>,
    #[serde(default)]
    applies_to: AppliesTo,
    #[serde(default)]
    requires: Vec<String>,
}

/// One skill as committed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Skill {
    pub(crate) name: String,
    pub(crate) description: String,
    /// As written (`1.2`, `2026-01`); `0` when the file names none.
    pub(crate) version: String,
    /// `None` for a shared skill, else the profile it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub(crate) applies_to: AppliesTo,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) requires: Vec<String>,
    /// The SKILL.md's path in the repository.
    pub(crate) path: String,
    /// The Markdown after the front matter.
    #[serde(skip)]
    pub(crate) body: String,
    /// Every file of the skill's directory (SKILL.md included), by path
    /// relative to it, for CLIs that read skills from disk.
    #[serde(skip)]
    pub(crate) files: Vec<(String, Vec<u8>)>,
    #[serde(skip)]
    globs: Vec<GlobMatcher>,
}

fn is_default(a: &AppliesTo) -> bool {
    a == &AppliesTo::default()
}

/// A skill given to one agent, as recorded on its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SkillUse {
    pub(crate) name: String,
    pub(crate) version: String,
    /// Set when it was the profile's own skill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) profile: Option<String>,
}

/// The task a selection is made for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<'a> {
    pub(crate) role: &'a str,
    pub(crate) profile: &'a str,
    pub(crate) labels: &'a [String],
    pub(crate) paths: &'a [String],
}

/// Every committed skill.
#[derive(Debug, Clone, Default)]
pub(crate) struct SkillSet {
    /// Shared skills, then each profile's, each sorted by name.
    pub(crate) skills: Vec<Skill>,
}

impl Skill {
    /// Parses `text`, the SKILL.md at `path` in directory `dir_name`.
    pub(crate) fn parse(
        path: &str,
        dir_name: &str,
        profile: Option<&str>,
        text: &str,
    ) -> Result<Skill, SkillError> {
        let invalid = |problem: String| SkillError::Invalid {
            path: path.to_owned(),
            problem,
        };
        let (yaml, body) = split_front_matter(text).ok_or_else(|| {
            invalid("has no front matter (`---` lines around YAML at the top)".into())
        })?;
        let fm: FrontMatter =
            serde_yaml::from_str(yaml).map_err(|e| invalid(format!("front matter: {e}")))?;
        if fm.name != dir_name {
            return Err(invalid(format!(
                "`name: {}` must be the directory's name `{dir_name}`",
                fm.name
            )));
        }
        check_name(&fm.name).map_err(|p| invalid(format!("`name`: {p}")))?;
        if fm.description.trim().is_empty() {
            return Err(invalid(
                "`description` is empty: say what the skill is for and when to use it".into(),
            ));
        }
        for r in &fm.applies_to.roles {
            if !ROLES.contains(&r.as_str()) {
                return Err(invalid(format!(
                    "`applies_to.roles`: `{r}` is not a role (one of {})",
                    ROLES.join(", ")
                )));
            }
        }
        let mut globs = Vec::new();
        for (i, g) in fm.applies_to.paths.iter().enumerate() {
            let m = GlobBuilder::new(g)
                .literal_separator(true)
                .build()
                .map_err(|e| invalid(format!("`applies_to.paths[{i}]`: {e}")))?;
            globs.push(m.compile_matcher());
        }
        for r in &fm.requires {
            check_name(r).map_err(|p| invalid(format!("`requires`: `{r}`: {p}")))?;
        }
        let version = match fm.version {
            None | Some(serde_yaml::Value::Null) => "0".to_owned(),
            Some(serde_yaml::Value::String(s)) => s,
            Some(serde_yaml::Value::Number(n)) => n.to_string(),
            Some(_) => return Err(invalid("`version` must be a string or a number".into())),
        };
        Ok(Skill {
            name: fm.name,
            description: fm.description.trim().to_owned(),
            version,
            profile: profile.map(str::to_owned),
            applies_to: fm.applies_to,
            requires: fm.requires,
            path: path.to_owned(),
            body: body.trim().to_owned(),
            files: Vec::new(),
            globs,
        })
    }

    /// Whether the task of `q` gets this skill by its own `applies_to`.
    pub(crate) fn applies(&self, q: &Query<'_>) -> bool {
        let a = &self.applies_to;
        let role = a.roles.is_empty() || a.roles.iter().any(|r| r == q.role);
        let label = a.labels.is_empty()
            || a.labels
                .iter()
                .any(|l| q.labels.iter().any(|t| t.eq_ignore_ascii_case(l)));
        let path = self.globs.is_empty()
            || q.paths.iter().any(|p| {
                let p = p.trim_end_matches('/');
                self.globs.iter().any(|g| g.is_match(p))
            });
        role && label && path
    }

    pub(crate) fn usage(&self) -> SkillUse {
        SkillUse {
            name: self.name.clone(),
            version: self.version.clone(),
            profile: self.profile.clone(),
        }
    }
}

/// A name is what Claude Code accepts for a skill: lowercase letters,
/// digits and hyphens, at most 64.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may hold only lowercase letters, digits and `-`".into());
    }
    Ok(())
}

/// `(yaml, body)` of a text that opens with a `---` line and has a closing one.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut at = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some((&rest[..at], &rest[at + line.len()..]));
        }
        at += line.len();
    }
    None
}

impl SkillSet {
    /// The skills a profile sees: shared ones, with its own replacing
    /// shared ones of the same name.
    pub(crate) fn visible(&self, profile: &str) -> BTreeMap<&str, &Skill> {
        let mut out = BTreeMap::new();
        for s in self.skills.iter().filter(|s| s.profile.is_none()) {
            out.insert(s.name.as_str(), s);
        }
        for s in self
            .skills
            .iter()
            .filter(|s| s.profile.as_deref() == Some(profile))
        {
            out.insert(s.name.as_str(), s);
        }
        out
    }

    /// The skill `name` as `profile` (or, without one, a shared one) sees it.
    pub(crate) fn find(&self, name: &str, profile: Option<&str>) -> Result<&Skill, SkillError> {
        let found = match profile {
            Some(p) => self.visible(p).get(name).copied(),
            None => self
                .skills
                .iter()
                .find(|s| s.name == name && s.profile.is_none())
                .or_else(|| self.skills.iter().find(|s| s.name == name)),
        };
        found.ok_or_else(|| SkillError::Unknown {
            name: name.to_owned(),
            profile: profile.map(str::to_owned),
            known: self
                .skills
                .iter()
                .map(|s| match &s.profile {
                    Some(p) => format!("@{p}/{}", s.name),
                    None => s.name.clone(),
                })
                .collect(),
        })
    }

    /// The skills the task of `q` gets: those whose `applies_to` matches,
    /// and everything they require; each required skill comes before the
    /// ones that need it, otherwise by name.
    pub(crate) fn resolve(&self, q: &Query<'_>) -> Result<Vec<&Skill>, SkillError> {
        let visible = self.visible(q.profile);
        let mut out: Vec<&Skill> = Vec::new();
        let mut seen = BTreeSet::new();
        for s in visible.values().filter(|s| s.applies(q)) {
            add_with_requirements(s, &visible, q.profile, &mut seen, &mut out)?;
        }
        Ok(out)
    }
}

fn add_with_requirements<'s>(
    skill: &'s Skill,
    visible: &BTreeMap<&str, &'s Skill>,
    profile: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<&'s Skill>,
) -> Result<(), SkillError> {
    // Marked before its requirements, so a cycle ends here.
    if !seen.insert(skill.name.clone()) {
        return Ok(());
    }
    for r in &skill.requires {
        let Some(dep) = visible.get(r.as_str()) else {
            return Err(SkillError::MissingRequirement {
                skill: skill.name.clone(),
                path: skill.path.clone(),
                requires: r.clone(),
                whom: format!("profile `{profile}`"),
            });
        };
        add_with_requirements(dep, visible, profile, seen, out)?;
    }
    out.push(skill);
    Ok(())
}

/// The skills committed at the tip of `branch` (none when it has no commit
/// or no `.git-sprint/skills`).
pub(crate) fn load(repo: &gix::Repository, branch: &str) -> Result<SkillSet, SkillError> {
    let git = |what: String| {
        move |e: Box<dyn std::error::Error + Send + Sync>| SkillError::Git { what, source: e }
    };
    let Ok(Some(mut r)) = repo.try_find_reference(format!("refs/heads/{branch}").as_str()) else {
        return Ok(SkillSet::default());
    };
    let Ok(commit) = r.peel_to_commit() else {
        return Ok(SkillSet::default());
    };
    let what = format!(
        "{DIR} at {branch} ({})",
        crate::names::short_id(&commit.id.to_string())
    );
    let tree = commit.tree().map_err(|e| git(what.clone())(e.into()))?;
    let Some(entry) = tree
        .lookup_entry_by_path(DIR)
        .map_err(|e| git(what.clone())(e.into()))?
    else {
        return Ok(SkillSet::default());
    };
    if !entry.mode().is_tree() {
        return Err(SkillError::Invalid {
            path: DIR.into(),
            problem: "must be a directory".into(),
        });
    }
    let files = read_tree(repo, entry.oid().to_owned(), "", &what)?;
    from_files(&files)
}

/// Every regular file under tree `id`, by path relative to it.
fn read_tree(
    repo: &gix::Repository,
    id: gix::ObjectId,
    prefix: &str,
    what: &str,
) -> Result<Vec<(String, Vec<u8>)>, SkillError> {
    let git = |e: Box<dyn std::error::Error + Send + Sync>| SkillError::Git {
        what: what.to_owned(),
        source: e,
    };
    let tree = repo.find_tree(id).map_err(|e| git(e.into()))?;
    let decoded = tree.decode().map_err(|e| git(e.into()))?;
    let mut out = Vec::new();
    for e in &decoded.entries {
        let name = String::from_utf8_lossy(e.filename).into_owned();
        if name == "." || name == ".." || name.contains('/') || name.eq_ignore_ascii_case(".git") {
            continue; // git itself refuses such names; a crafted tree might not
        }
        let path = format!("{prefix}{name}");
        if e.mode.is_tree() {
            out.extend(read_tree(
                repo,
                e.oid.to_owned(),
                &format!("{path}/"),
                what,
            )?);
        } else if e.mode.is_blob() {
            let blob = repo.find_blob(e.oid).map_err(|e| git(e.into()))?;
            out.push((path, blob.data.clone()));
        }
        // Symlinks and submodules are skipped: a link could point anywhere.
    }
    Ok(out)
}

/// A file's path and bytes.
type File = (String, Vec<u8>);

/// Builds the set from `(path under skills/, bytes)` pairs.
pub(crate) fn from_files(files: &[(String, Vec<u8>)]) -> Result<SkillSet, SkillError> {
    // (profile, skill dir) → its files.
    let mut dirs: BTreeMap<(Option<String>, String), Vec<File>> = BTreeMap::new();
    for (path, bytes) in files {
        let parts: Vec<&str> = path.split('/').collect();
        let (profile, name, rest) = match parts.as_slice() {
            [p, name, rest @ ..] if p.starts_with('@') && !rest.is_empty() => {
                (Some(p[1..].to_owned()), *name, rest.join("/"))
            }
            [p, ..] if p.starts_with('@') => continue,
            [name, rest @ ..] if !rest.is_empty() => (None, *name, rest.join("/")),
            _ => continue, // a loose file such as a README
        };
        dirs.entry((profile, name.to_owned()))
            .or_default()
            .push((rest, bytes.clone()));
    }
    let mut skills = Vec::new();
    for ((profile, name), files) in dirs {
        let dir = match &profile {
            Some(p) => format!("{DIR}/@{p}/{name}"),
            None => format!("{DIR}/{name}"),
        };
        let path = format!("{dir}/{FILE}");
        let Some((_, bytes)) = files.iter().find(|(f, _)| f == FILE) else {
            return Err(SkillError::Invalid {
                path: dir,
                problem: format!("has no {FILE}"),
            });
        };
        if profile.as_deref() == Some("") {
            return Err(SkillError::Invalid {
                path,
                problem: "`@` needs a profile name (`@claude`)".into(),
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SkillError::Invalid {
            path: path.clone(),
            problem: "is not UTF-8 text".into(),
        })?;
        let mut skill = Skill::parse(&path, &name, profile.as_deref(), text)?;
        skill.files = files;
        skills.push(skill);
    }
    // Shared ones first.
    skills.sort_by(|a, b| (&a.profile, &a.name).cmp(&(&b.profile, &b.name)));
    Ok(SkillSet { skills })
}

#[cfg(test)]
mod tests;
